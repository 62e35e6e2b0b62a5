"""Checks shared by the test modules that grade a course (imported as ``helpers``: pytest puts tests/ on the path)."""

from __future__ import annotations

import dataclasses
import filecmp
import pathlib
import shutil

from autograder.course import Course
from autograder.notebook import read_source

ROOT = pathlib.Path(__file__).resolve().parent.parent


def hidden_test_lines(source_notebook: pathlib.Path) -> list[str]:
    """The lines of the notebook's hidden tests that appear nowhere in its public cells (long enough to be
    telling): feedback that shows one of them has leaked a hidden test."""
    _, cells = read_source(source_notebook)
    hidden = []
    for c in cells:
        inside = False
        for line in c.source.splitlines():
            if "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                hidden.append(line.strip())
    public = {line.strip() for c in cells for line in c.public_source.splitlines()}
    return [h for h in hidden if h not in public]


def tree_diff(generated: pathlib.Path, committed: pathlib.Path) -> list[str]:
    """How two folders differ, file by file (bytes, not stat signatures); [] if they are the same."""
    cmp = filecmp.dircmp(generated, committed, ignore=["__pycache__", ".ipynb_checkpoints"])
    out = [f"only generated: {n}" for n in cmp.left_only] + [f"only committed: {n}" for n in cmp.right_only]
    out += [f"differs: {n}" for n in cmp.diff_files]
    _, mismatch, errors = filecmp.cmpfiles(generated, committed, cmp.common_files, shallow=False)
    out += [f"differs: {n}" for n in mismatch if f"differs: {n}" not in out] + [f"unreadable: {n}" for n in errors]
    for sub in cmp.common_dirs:
        out += [f"{sub}/{line}" for line in tree_diff(generated / sub, committed / sub)]
    return sorted(set(out))


def stale_release(course, assignment: str, root: pathlib.Path) -> list[str]:
    """How the committed ``release/<assignment>`` of ``root`` differs from the one just generated in ``course``."""
    return tree_diff(course.release / assignment, root / "release" / assignment)


def scratch_course(tmp: pathlib.Path, assignments, mp, cell_timeout: int | None = None) -> None:
    """Make ``tmp`` a course folder holding ``assignments`` from ``source/`` and a SQLite gradebook of its own
    (``mp``, a pytest MonkeyPatch, sets ``ADL_GRADEBOOK_URL``). With ``cell_timeout``, that course's cells time
    out after that many seconds instead of what assignments.yml says; other courses keep its settings."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp)
    for a in assignments:
        shutil.copytree(ROOT / "source" / a, tmp / "source" / a)
    mp.setenv("ADL_GRADEBOOK_URL", f"sqlite:///{tmp / 'gradebook.db'}")
    if cell_timeout is None:
        return
    settings = Course.settings

    def shorter_timeout(self, assignment):
        found = settings(self, assignment)
        return dataclasses.replace(found, cell_timeout=cell_timeout) if self.root == tmp else found

    mp.setattr(Course, "settings", shorter_timeout)
