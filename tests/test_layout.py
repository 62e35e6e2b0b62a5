"""The autograder's layout as its README describes it: every module in the table, and only those; the pipeline
module holds the steps and their scheduling only; nbgrader's gradebook is opened in one module."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "autograder"


def _table_modules() -> list[str]:
    text = (PACKAGE / "README.md").read_text()
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+\.py)` \|", section, re.M)


def test_the_readme_lists_every_module_once():
    listed = _table_modules()
    present = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(listed) == present


def test_the_pipeline_is_small():
    lines = (PACKAGE / "pipeline.py").read_text().count("\n")
    assert lines < 250, f"pipeline.py has {lines} lines: move what is not scheduling into its own module"


def test_only_the_gradebook_module_opens_the_gradebook():
    users = sorted(p.name for p in PACKAGE.rglob("*.py") if "nbgrader.api" in p.read_text())
    assert users == ["gradebook.py"]


def test_the_job_is_built_in_one_place():
    """The worker's job is a Job, never a dict spelled out by hand (its fields are checked when it is read)."""
    for path in [*PACKAGE.glob("*.py"), *(ROOT / "tests").glob("*.py")]:
        if path.name == "test_job.py":  # the tests of the JSON form itself
            continue
        text = path.read_text()
        assert not re.search(r"\{\s*\"workdir\"\s*:", text), f"{path.name} writes a job by hand: use autograder.job.Job"


def test_the_longest_first_order_names_files_that_exist():
    """conftest.py starts these files first in `make test`: a renamed file would silently lose its place."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [path for path in module.LONGEST_FIRST if not (ROOT / path).is_file()]
    assert missing == []


def test_no_module_is_over_400_lines():
    long = {p.name: n for p in PACKAGE.glob("*.py") if (n := p.read_text().count("\n")) > 400}
    assert long == {}, "split these by what they do (see the README's module table)"
