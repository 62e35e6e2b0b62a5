"""The one pin set: pyproject.toml, environment.yml, the Dockerfile and the running venv agree with
requirements.lock. Each check is a function tested on a drifted copy too, so it is known to fail."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        if not m:
            raise ValueError(f"requirements.lock: not an exact pin: {line!r}")
        name = normalize(m.group(1))
        if name in pins:
            raise ValueError(f"requirements.lock: {name} pinned twice")
        pins[name] = m.group(2)
    return pins


def pyproject_drift(pyproject: dict, lock: dict[str, str]) -> list[str]:
    """Every dependency of pyproject.toml (extras included) must be an exact pin equal to the lock's."""
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    problems = []
    for req in reqs:
        m = PIN.match(req)
        if not m:
            problems.append(f"pyproject.toml: {req!r} is not an exact '==' pin")
            continue
        name, version = normalize(m.group(1)), m.group(2)
        if name not in lock:
            problems.append(f"pyproject.toml: {name} is not in requirements.lock (run 'make lock')")
        elif lock[name] != version:
            problems.append(f"pyproject.toml pins {name}=={version}, requirements.lock has {lock[name]}")
    python = project.get("requires-python", "")
    if "3.11" not in python:
        problems.append(f"pyproject.toml: requires-python {python!r} does not name 3.11")
    return problems


def environment_drift(env: dict) -> list[str]:
    """environment.yml: conda-forge, python=3.11, and pip installing exactly the lock and the package."""
    problems = []
    if env.get("channels") != ["conda-forge"]:
        problems.append(f"environment.yml: channels should be ['conda-forge'], got {env.get('channels')}")
    deps = env.get("dependencies", [])
    conda = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    if "python=3.11" not in conda:
        problems.append(f"environment.yml: needs 'python=3.11', has {conda}")
    if sorted(set(conda) - {"python=3.11"}) != ["pip"]:
        problems.append(f"environment.yml: conda packages besides python and pip would bypass the lock: {conda}")
    if pip_sections != [["-r requirements.lock", "-e ."]]:
        problems.append(f"environment.yml: pip section must be ['-r requirements.lock', '-e .'], got {pip_sections}")
    return problems


def dockerfile_drift(text: str) -> list[str]:
    problems = []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    if froms != ["FROM python:3.11-slim"]:
        problems.append(f"Dockerfile: expected one 'FROM python:3.11-slim', got {froms}")
    runs = " ".join(ln for ln in lines if ln.upper().startswith("RUN "))
    installs = re.findall(r"pip install ([^&\n]*)", runs)
    if not any(re.search(r"(^|\s)-r requirements\.lock(\s|$)", i) for i in installs):
        problems.append("Dockerfile: no 'pip install -r requirements.lock'")
    for inst in installs:
        if "requirements.lock" not in inst and "--no-deps" not in inst:
            problems.append(f"Dockerfile: 'pip install {inst.strip()}' installs outside the lock")
    users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
    if not users or users[-1] in ("root", "0"):
        problems.append(f"Dockerfile: must end as a non-root USER, got {users}")
    if "EXPOSE 8888" not in lines:
        problems.append("Dockerfile: no 'EXPOSE 8888'")
    if not any(ln.startswith("CMD") and "jupyter" in ln and "lab" in ln and "8888" in ln for ln in lines):
        problems.append("Dockerfile: CMD does not start JupyterLab on port 8888")
    return problems


def venv_drift(lock: dict[str, str]) -> list[str]:
    problems = []
    for name, version in sorted(lock.items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed")
            continue
        if installed != version:
            problems.append(f"{name}: installed {installed}, locked {version}")
    return problems


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return read_lock((ROOT / "requirements.lock").read_text())


def test_lock_pins_the_stack(lock):
    for name, version in {"tensorflow-cpu": "2.21", "keras": "3.", "nbgrader": "0.9.", "jupyterlab": "4."}.items():
        assert lock[name].startswith(version), f"{name} {lock[name]}"
    for name in ["nbval", "matplotlib", "scikit-learn", "tqdm", "mlxtend", "dask", "distributed", "nbclient"]:
        assert name in lock


def test_pyproject_agrees_with_lock(lock):
    assert pyproject_drift(tomllib.loads((ROOT / "pyproject.toml").read_text()), lock) == []


def test_environment_yml_agrees_with_lock():
    assert environment_drift(yaml.safe_load((ROOT / "environment.yml").read_text())) == []


def test_dockerfile_agrees_with_lock():
    assert dockerfile_drift((ROOT / "Dockerfile").read_text()) == []


def test_running_venv_matches_lock(lock):
    assert venv_drift(lock) == []


def test_drift_is_detected(lock):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pyproject["project"]["dependencies"] = ["numpy==1.0.0", "tqdm>=4", "notinlock==1.0"]
    problems = pyproject_drift(pyproject, lock)
    assert len(problems) == 3
    assert "requirements.lock has" in problems[0] and "exact" in problems[1] and "not in" in problems[2]

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    env["dependencies"] = ["python=3.12", "pip", "numpy", {"pip": ["tensorflow"]}]
    assert len(environment_drift(env)) == 3

    text = (ROOT / "Dockerfile").read_text().replace("python:3.11-slim", "python:3.12-slim")
    text = text.replace("USER student", "USER root") + "\nRUN pip install requests\n"
    problems = dockerfile_drift(text)
    assert len(problems) == 3, problems

    assert venv_drift({"numpy": "0.0.1", "surely-not-installed-pkg": "1.0"}) == [
        f"numpy: installed {importlib.metadata.version('numpy')}, locked 0.0.1",
        "surely-not-installed-pkg==1.0 is locked but not installed",
    ]


def test_lock_rejects_loose_lines():
    with pytest.raises(ValueError, match="not an exact pin"):
        read_lock("numpy>=1\n")
    with pytest.raises(ValueError, match="pinned twice"):
        read_lock("numpy==1\nNumPy==2\n")
