"""The student edition: what a course publishes for its students, generated from this (private) repository.

    python course/student_edition.py build DEST   # write the edition to DEST (``make student DEST=...``)
    python course/student_edition.py scan PATH... # search folders, wheels and sdists for private material

The edition is an allow-list, copied from here:

- ``notebooks/`` (the week notebooks), ``release/`` (the homework as students get it), ``adl_helpers/``,
  ``course/project/`` (the project handout, rubric, report template and starter notebooks);
- ``course/syllabus.md`` and ``course/schedule.yml``, ``LICENSE``;
- written from ``course/student/``: ``pyproject.toml`` (the ``adl-helpers`` package, Python >= 3.10),
  ``README.md`` (with the week table), ``Dockerfile``, ``.dockerignore``, ``environment.yml``, and
  ``requirements.txt`` (a copy of ``requirements-student.lock``).

Nothing else: no ``source/`` (solutions, hidden tests), no ``autograder/`` (sample submissions, wrong-answer
cases), no ``tests/``. After writing, the builder scans what it wrote for every line of private material
(see :func:`private_lines`) and for nbgrader's solution and hidden-test markers; one hit and the edition is
deleted and the build fails.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import re
import shutil
import sys
import tarfile
import zipfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "course" / "student"
MARKER = ".adl-student-edition"  # written into every edition: only such a folder may be overwritten
COPIED = ("notebooks", "release", "adl_helpers", "course/project")
COPIED_FILES = ("course/syllabus.md", "course/schedule.yml", "LICENSE")
SKIP = ("__pycache__", ".ipynb_checkpoints", "*.pyc", "*.egg-info")
# Strings that never appear in anything a student receives.
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MIN_LINE = 20  # shorter lines ("return x", "pass") are too common to tell anything


class LeakError(RuntimeError):
    """Private material was found in something meant for students."""


# ---------------------------------------------------------------------------------------------------------
# What is private, and finding it


def _notebook_lines(data: bytes) -> list[str]:
    """Every line of every cell's source and text outputs of a notebook file."""
    try:
        nb = json.loads(data)
        cells = nb.get("cells", []) if isinstance(nb, dict) else []
    except (ValueError, UnicodeDecodeError):
        return data.decode("utf-8", "replace").splitlines()
    lines = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        texts = [cell.get("source", "")]
        for out in cell.get("outputs", []) or []:
            if isinstance(out, dict):
                texts += [out.get("text", ""), *(out.get("data", {}) or {}).values()]
        for text in texts:
            text = "".join(text) if isinstance(text, list) else text
            if isinstance(text, str):
                lines += text.splitlines()
    return lines


def _lines(name: str, data: bytes) -> list[str]:
    if name.endswith(".ipynb"):
        return _notebook_lines(data)
    return data.decode("utf-8", "replace").splitlines()


def _blocks(source: str, begin: str, end: str) -> list[str]:
    out, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def _norm(line: str) -> str:
    return " ".join(line.split())


def public_lines(root: pathlib.Path = ROOT) -> set[str]:
    """Lines students legitimately have: the week notebooks, the released homework and the helpers."""
    found = set()
    for pattern in ("notebooks/*.ipynb", "release/**/*", "adl_helpers/**/*.py"):
        for path in root.glob(pattern):
            if path.is_file():
                found.update(_norm(ln) for ln in _lines(path.name, path.read_bytes()))
    return found


def private_lines(root: pathlib.Path = ROOT) -> set[str]:
    """Lines that must never reach a student: every line of the solution blocks and hidden-test blocks of
    ``source/``, and of the code cells of every sample submission and wrong-answer file under
    ``autograder/samples/`` and ``source/*/wrong_answers.yml``, less the lines students have anyway
    (:func:`public_lines`: starter code, imports, the week notebooks) and lines under ``MIN_LINE``
    characters."""
    private: list[str] = []
    for path in sorted(root.glob("source/*/*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("solution") and "### BEGIN SOLUTION" not in source:
                private += source.splitlines()  # a whole-cell solution (nbgrader replaces all of it)
            private += _blocks(source, "### BEGIN SOLUTION", "### END SOLUTION")
            private += _blocks(source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    for path in sorted(root.glob("autograder/samples/**/*.ipynb")):
        private += _notebook_lines(path.read_bytes())
    for path in sorted(root.glob("source/*/wrong_answers.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for case in data.get("cases", []) if isinstance(data, dict) else data:  # {"cases": [...]}: cases.py's form
            for value in _strings(case):
                private += value.splitlines()
    public = public_lines(root)
    return {n for n in map(_norm, private) if len(n) >= MIN_LINE and n not in public}


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _members(path: pathlib.Path):
    """``(shown name, name inside, bytes)`` of every file in a folder, wheel/zip or sdist/tar, recursively
    into archives. The name inside is relative to the folder or archive, so where it lies does not matter."""
    if path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file() and not sub.is_symlink():
                rel = sub.relative_to(path).as_posix()
                for inner, data in _archive_members(rel, sub.read_bytes()):
                    yield f"{path}/{inner}", inner, data
        return
    for inner, data in _archive_members(path.name, path.read_bytes()):
        yield f"{path.parent}/{inner}", inner, data


def _archive_members(name: str, data: bytes):
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield from _archive_members(f"{name}!{info.filename}", zf.read(info))
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for info in tf.getmembers():
                if info.isfile():
                    yield from _archive_members(f"{name}!{info.name}", tf.extractfile(info).read())
    else:
        yield name, data


def scan(paths, private: set[str] | None = None) -> list[str]:
    """Every place in ``paths`` (folders, wheels, sdists, files) where private material or an nbgrader
    solution/hidden-test marker appears, as ``"file: line"``; ``[]`` when there is none."""
    private = private_lines() if private is None else private
    hits = []
    for path in paths:
        for shown, inner, data in _members(pathlib.Path(path)):
            if re.search(r"(^|[/!])(source|autograder|tests)/", inner):
                hits.append(f"{shown}: instructor-only folder")
            for line in _lines(inner, data):
                norm = _norm(line)
                if norm in private or any(m in line for m in MARKERS):
                    hits.append(f"{shown}: {norm[:120]}")
    return hits


# ---------------------------------------------------------------------------------------------------------
# Building


def notebook_table() -> str:
    """The README's week table for students (notebook, Colab badge, homework), from the checked schedule."""
    sys.path.insert(0, str(ROOT / "course"))
    import render

    return render.render_table(render.load_schedule(), marked=False)


def _prepare(dest: pathlib.Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MARKER).exists():
            raise SystemExit(
                f"student_edition: {dest} is not empty and is not a student edition; name an empty or new folder"
            )
        for child in dest.iterdir():  # an earlier edition: start again, keeping its .git
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    dest.mkdir(parents=True, exist_ok=True)


def build(dest: pathlib.Path) -> pathlib.Path:
    """Write the edition to ``dest`` and check it; returns ``dest``. Raises LeakError (and removes what it
    wrote) if anything private got in."""
    dest = dest.resolve()
    if dest == ROOT or ROOT in dest.parents and dest.parts[len(ROOT.parts)] != "build":
        raise SystemExit(f"student_edition: write the edition outside the repository or under build/, not {dest}")
    _prepare(dest)
    for folder in COPIED:
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns(*SKIP))
    for name in COPIED_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    readme = (TEMPLATES / "README.md").read_text().replace("{table}", notebook_table())
    (dest / "README.md").write_text(readme)
    for name, target in (
        ("pyproject.toml", "pyproject.toml"),
        ("Dockerfile", "Dockerfile"),
        ("dockerignore", ".dockerignore"),
        ("environment.yml", "environment.yml"),
    ):
        shutil.copy2(TEMPLATES / name, dest / target)
    shutil.copy2(ROOT / "requirements-student.lock", dest / "requirements.txt")
    (dest / MARKER).write_text(
        "Generated by course/student_edition.py from the instructor repository. Do not edit: regenerate it.\n"
    )
    hits = scan([dest])
    if hits:
        shutil.rmtree(dest)
        raise LeakError(f"{len(hits)} private lines in the student edition (removed):\n" + "\n".join(hits[:20]))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="write the student edition")
    p.add_argument("dest", type=pathlib.Path)
    p = sub.add_parser("scan", help="search folders, wheels and sdists for private material")
    p.add_argument("paths", type=pathlib.Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "build":
        dest = build(args.dest)
        files = sum(1 for p in dest.rglob("*") if p.is_file())
        print(f"student edition: {dest} ({files} files); no solution, hidden test or sample submission in it")
        return 0
    hits = scan(args.paths)
    print("\n".join(hits) if hits else "no private material found")
    return 1 if hits else 0


if __name__ == "__main__":
    raise SystemExit(main())
