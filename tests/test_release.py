"""release/ is what nbgrader generates from source/ today: a stale release fails this test."""

import filecmp
import pathlib
import shutil

import pytest

from autograder import pipeline
from autograder.course import load_course

ROOT = pathlib.Path(__file__).resolve().parent.parent


def fresh_release(tmp_path) -> pathlib.Path:
    """Generate the release of every assignment in a scratch copy of the course."""
    course_dir = tmp_path / "course"
    course_dir.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course_dir)
    shutil.copytree(ROOT / "source", course_dir / "source", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    course = load_course(course_dir)
    for assignment in course.assignments():
        pipeline.release(course, assignment)
    return course.release


def tree_diff(generated: pathlib.Path, committed: pathlib.Path) -> list[str]:
    left, right = generated, committed
    cmp = filecmp.dircmp(left, right, ignore=["__pycache__", ".ipynb_checkpoints"])
    out = [f"only generated: {n}" for n in cmp.left_only] + [f"only committed: {n}" for n in cmp.right_only]
    out += [f"differs: {n}" for n in cmp.diff_files]
    # shallow=False: compare bytes, not stat signatures
    _, mismatch, errors = filecmp.cmpfiles(left, right, cmp.common_files, shallow=False)
    out += [f"differs: {n}" for n in mismatch if f"differs: {n}" not in out] + [f"unreadable: {n}" for n in errors]
    for sub in cmp.common_dirs:
        out += [f"{sub}/{line}" for line in tree_diff(left / sub, right / sub)]
    return sorted(set(out))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("release")
    monkeypatch_module.setenv("ADL_GRADEBOOK_URL", f"sqlite:///{tmp / 'gradebook.db'}")
    return fresh_release(tmp)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_release_is_up_to_date(regenerated):
    problems = tree_diff(regenerated, ROOT / "release")
    assert problems == [], f"release/ is stale: run 'make release' and commit it ({problems})"


def test_release_has_no_solutions_or_hidden_tests():
    for nb in (ROOT / "release").rglob("*.ipynb"):
        text = nb.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{nb}: {marker}"
        assert "raise NotImplementedError()" in text
    assert not list((ROOT / "release").rglob("wrong_answers.yml")), "the instructor's wrong-answer cases were released"


def test_stale_release_is_detected(regenerated, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(ROOT / "release", copy)
    notebook = next(copy.rglob("*.ipynb"))
    notebook.write_text(notebook.read_text().replace("YOUR CODE HERE", "YOUR  CODE HERE", 1))
    (copy / "hw1" / "stray.txt").write_text("left over")
    problems = tree_diff(regenerated, copy)
    assert f"{notebook.parent.name}/differs: {notebook.name}" in problems
    assert "hw1/only committed: stray.txt" in problems
