"""Run every week notebook, project starter and homework solution in an environment that imitates Colab.

    python course/colab.py run [--python python3.13] [--venv build/colab-venv] [--lock requirements-colab.lock]
    python course/colab.py run --latest --venv build/colab-latest-venv   # the newest versions pip offers

What it does, in order (``make test-colab`` and ``make test-colab-latest`` call it):

1. Builds the student edition into ``build/colab/student`` (``course/student_edition.py``).
2. Makes a venv with Colab's Python (3.13) and installs ``requirements-colab.lock``: TensorFlow, Keras, NumPy
   and the rest at the versions of Colab's published package list (``--latest``: the newest ones instead).
   The venv is reused while the lock and the interpreter stay the same.
3. Installs the course helpers exactly as a notebook's setup cell does on Colab: the same ``pip install``
   line, read from the first week notebook, with the GitHub address replaced by the local edition. That
   line must leave the preinstalled TensorFlow, Keras and NumPy alone: a version change fails the run.
4. Writes each homework solution as a student would run it (``source/`` with the hidden tests removed)
   into ``build/colab/homework/`` and executes it, with every week notebook and every project starter
   (``course/project/starters/``), with nbval in the smoke profile, two at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course"))
import locks  # noqa: E402
import student_edition  # noqa: E402

WORK = ROOT / "build" / "colab"
INSTALL = re.compile(r"^\s*%pip install (?P<args>.*\"adl-helpers(?:\[[^\]]*\])? @ git\+https://[^\"]+\".*)$", re.M)
KEPT = ("tensorflow", "keras", "numpy")  # Colab's own builds: installing the helpers must not touch them
LATEST = (*locks.COLAB_PACKAGES, *locks.COLAB_TEST_TOOLS)  # the Colab set and our test tools, at pip's newest


def run(cmd, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup_cell_install(notebook: pathlib.Path) -> list[str]:
    """The pip arguments of the notebook's Colab install line (``%pip install ...``)."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            m = INSTALL.search("".join(cell["source"]))
            if m:
                return shlex.split(m.group("args"))
    raise SystemExit(f"colab.py: {notebook} has no '%pip install \"adl-helpers @ git+https://...\"' line")


def local_install_args(args: list[str], edition: pathlib.Path) -> list[str]:
    """The setup cell's pip arguments with the GitHub address replaced by the local edition."""
    return [re.sub(r"@ git\+https://\S+$", f"@ {edition.as_uri()}", a) if "adl-helpers" in a else a for a in args]


def find_python(name: str) -> tuple[str, str]:
    """The interpreter ``name`` names and its version. A name on the PATH that does not run (a pyenv shim
    of a version that is installed but not selected) is looked up among pyenv's installed versions."""
    minor = re.search(r"(\d+\.\d+)$", name)
    candidates = [shutil.which(name)]
    if minor:
        pyenv_root = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
        candidates += sorted(
            map(str, pyenv_root.glob(f"versions/{minor.group(1)}.*/bin/python{minor.group(1)}")), reverse=True
        )
    for exe in filter(None, candidates):
        proc = subprocess.run([exe, "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
        if proc.returncode == 0:
            return exe, proc.stdout.strip()
    raise SystemExit(
        f"colab.py: no working {name} found; Colab runs Python 3.13 "
        "(install python3.13, or pass --python /path/to/python3.13)"
    )


def make_venv(python: str, venv: pathlib.Path, lock: pathlib.Path | None) -> pathlib.Path:
    exe, version = find_python(python)
    key = hashlib.sha256(f"{exe}\n{version}\n{lock.read_text() if lock else 'latest'}".encode()).hexdigest()
    stamp = venv / ".colab-key"
    if stamp.exists() and stamp.read_text() == key and lock is not None:
        print(f"colab.py: reusing {venv} (Python {version.split()[0]}, {lock.name} unchanged)")
        return venv / "bin" / "python"
    shutil.rmtree(venv, ignore_errors=True)
    run([exe, "-m", "venv", venv])
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=24"])
    if lock is not None:
        run([py, "-m", "pip", "install", "--quiet", "-r", lock])
    else:
        run([py, "-m", "pip", "install", "--quiet", "--upgrade", *LATEST])
    stamp.write_text(key)
    return py


def versions(py: pathlib.Path, names) -> dict[str, str]:
    code = "import importlib.metadata as m, json, sys\nprint(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    out = subprocess.run([py, "-c", code, *names], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def homework_solutions(dest: pathlib.Path) -> list[pathlib.Path]:
    """Each source notebook with its hidden tests removed: a correct solution with the public checks."""
    from autograder.notebook import HIDDEN_TESTS

    shutil.rmtree(dest, ignore_errors=True)
    out = []
    for source in sorted(ROOT.glob("source/*/*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        for cell in nb.cells:
            cell.source = HIDDEN_TESTS.sub("", cell.source)
        target = dest / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        out.append(target)
    return out


def project_starters() -> list[pathlib.Path]:
    """The course project's starter notebooks, run like the week notebooks."""
    return sorted((ROOT / "course" / "project" / "starters").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="build the Colab imitation and run every notebook in it")
    p.add_argument("--python", default="python3.13")
    p.add_argument("--venv", type=pathlib.Path, default=ROOT / "build" / "colab-venv")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--lock", type=pathlib.Path, default=ROOT / "requirements-colab.lock")
    group.add_argument("--latest", action="store_true", help="the newest versions pip offers, not the lock")
    p.add_argument("notebooks", nargs="*", type=pathlib.Path, help="only these (default: all)")
    args = parser.parse_args(argv)

    edition = student_edition.build(WORK / "student")
    py = make_venv(args.python, args.venv.resolve(), None if args.latest else args.lock.resolve())
    before = versions(py, KEPT)
    weeks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    run([py, "-m", "pip", "install", "--quiet", *local_install_args(setup_cell_install(weeks[0]), edition)])
    after = versions(py, KEPT)
    if before != after:
        raise SystemExit(f"colab.py: the setup cell's install changed Colab's packages: {before} -> {after}")
    print("colab.py: " + ", ".join(f"{k} {v}" for k, v in after.items()) + " (left as installed)")

    targets = args.notebooks or [*weeks, *project_starters(), *homework_solutions(WORK / "homework")]
    env = dict(
        os.environ,
        ADL_PROFILE="smoke",
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",  # Colab's ipykernel 6.17 and debugpy on Python 3.13
        ADL_DATA_DIR=str(ROOT / "build" / "data-cache"),
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the helpers quiet TensorFlow themselves, as on Colab
    proc = subprocess.run(
        [
            py,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--dist",
            "loadfile",
            "--nbval-lax",
            "--nbval-current-env",
            "-q",
            *[str(t) for t in targets],
        ],
        cwd=ROOT,
        env=env,
    )
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
