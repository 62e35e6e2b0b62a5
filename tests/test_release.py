"""release/ is what nbgrader generates from source/ today.

The modules that grade a course generate its releases anyway (tests/test_autograder.py: hw1,
tests/test_assignments.py: the others); each compares them with the committed release/
(``test_release_is_up_to_date``). This module checks what needs no generation.
"""

import pathlib
import shutil

from helpers import tree_diff

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_source_assignment_is_released_and_checked():
    sources = sorted(p.name for p in (ROOT / "source").iterdir() if p.is_dir())
    assert sorted(p.name for p in (ROOT / "release").iterdir() if p.is_dir()) == sources
    checked = []
    for module in ("test_autograder", "test_assignments"):
        checked += __import__(module).ASSIGNMENTS
    assert sorted(checked) == sources, "an assignment whose release no test regenerates and compares"


def test_release_has_no_solutions_or_hidden_tests():
    for nb in (ROOT / "release").rglob("*.ipynb"):
        text = nb.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{nb}: {marker}"
        assert "raise NotImplementedError()" in text
    assert not list((ROOT / "release").rglob("wrong_answers.yml")), "the instructor's wrong-answer cases were released"


def test_stale_release_is_detected(tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(ROOT / "release", copy)
    notebook = next(copy.rglob("*.ipynb"))
    notebook.write_text(notebook.read_text().replace("YOUR CODE HERE", "YOUR  CODE HERE", 1))
    (copy / "hw1" / "stray.txt").write_text("left over")
    (copy / "hw2" / "hw2.ipynb").unlink()
    problems = tree_diff(ROOT / "release", copy)
    assert f"{notebook.parent.name}/differs: {notebook.name}" in problems
    assert "hw1/only committed: stray.txt" in problems
    assert "hw2/only generated: hw2.ipynb" in problems
    assert tree_diff(ROOT / "release", ROOT / "release") == []
