"""Every assignment after hw1, graded by the real autograder: the solution earns full marks, the blank release
earns nothing in every test cell, and each wrong-answer case (source/<assignment>/wrong_answers.yml, built into
autograder/samples/<assignment>/ by make_sample_class.py) loses exactly the test cells it names.

CI grades, as `make demo` does, the two students per assignment who make the first mistake of each test cell
between them (``"ci": true`` in expected.json, see autograder/cases.py): every question is lost by a plausible
mistake and kept despite the other student's. `adl-grade demo --all-cases` and
``autograder/samples/check_cases.py`` grade every mistake on its own.
"""

from __future__ import annotations

import html as html_mod
import json
import pathlib
import shutil

import pytest
from helpers import hidden_test_lines, stale_release

from adl_helpers import pretrained as adl_pretrained
from autograder import pipeline
from autograder.course import load_course

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "autograder" / "samples"
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "source").glob("*/wrong_answers.yml"))
# The order the fixture's one queue starts them in, slowest first (seconds per submission in
# benchmarks/results.md), so that the last submissions to finish are short ones.
SLOWEST_FIRST = ["hw5", "hw6", "hw3", "hw4", "hw2"]


def _expected(assignment: str) -> dict:
    return json.loads((SAMPLES / assignment / "expected.json").read_text())["students"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """{assignment: {student: Result}}: solution, blank and the CI cases of every assignment, graded in one queue."""
    tmp = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", tmp)
    for a in ASSIGNMENTS:
        shutil.copytree(ROOT / "source" / a, tmp / "source" / a)
    mp = pytest.MonkeyPatch()
    mp.setenv("ADL_GRADEBOOK_URL", f"sqlite:///{tmp / 'gradebook.db'}")
    course = load_course(tmp)
    for a in ASSIGNMENTS:
        pipeline.release(course, a)
        download = tmp_path_factory.mktemp(f"download-{a}")
        shutil.copy(course.source_notebook(a), download / f"solution_{a}.ipynb")
        shutil.copy(course.release_notebook(a), download / f"blank_{a}.ipynb")
        for exp in _expected(a).values():
            if exp["ci"]:
                shutil.copy(SAMPLES / a / exp["file"], download / exp["file"])
        got = pipeline.collect(course, a, download)
        assert got.rejected == []
    graded = pipeline.autograde_all(course, {a: None for a in SLOWEST_FIRST}, workers=2, progress=False)
    out = {a: {r.student: r for r in results} for a, results in graded.items()}
    yield course, out
    mp.undo()


def test_every_assignment_is_in_the_grading_order():
    assert sorted(SLOWEST_FIRST) == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(graded, assignment):
    course, _ = graded
    problems = stale_release(course, assignment, ROOT)
    assert problems == [], f"release/{assignment} is stale: run 'make release' and commit it ({problems})"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_blank_zero(graded, assignment):
    course, results = graded
    solution, blank = results[assignment]["solution"], results[assignment]["blank"]
    assert solution.max_score > 0
    assert solution.score == solution.max_score, [q for q in solution.questions if q.status != "passed"]
    assert solution.flags == [], solution.notes
    run = json.loads((course.autograded / "solution" / assignment / "run.json").read_text())
    failing = [(c["index"], c.get("grade_id"), c["status"], c.get("evalue")) for c in run["cells"] if c["status"] != "ok"]
    assert failing == [], f"the solution notebook has failing cells (nbval does not run source/): {failing}"
    assert all(q.points == 0 for q in blank.questions), [q for q in blank.questions if q.points]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_wrong_answer_loses_exactly_its_question(graded, assignment):
    _, results = graded
    if assignment == "hw5" and adl_pretrained.weights_source((96, 96, 3)) == "stand-in":
        pytest.skip("hw5's wrong answers cost accuracy, which needs ImageNet features: without the data mirror "
                    "(ADL_DATA_MIRROR) the smoke profile's stand-in backbone has random weights")
    expected = _expected(assignment)
    ci = {s: e for s, e in expected.items() if e["ci"]}
    graded_cells = {q.grade_id for q in results[assignment]["solution"].questions}
    assert {g for e in ci.values() for g, p in e["points"].items() if p == 0} == graded_cells, \
        "every test cell needs a wrong-answer case that loses it"
    for student, exp in ci.items():
        r = results[assignment][student]
        got = {q.grade_id: q.points for q in r.questions}
        assert got == exp["points"], (student, exp["note"], [q for q in r.questions if q.points != exp["points"][q.grade_id]])
        assert r.flags == [], (student, r.flags, r.notes)


def test_feedback_never_shows_hidden_tests(graded):
    course, results = graded
    for a in ASSIGNMENTS:
        hidden = hidden_test_lines(course.source_notebook(a))
        assert hidden, f"{a} has no hidden tests"
        for r in results[a].values():
            shown = {line.strip() for line in html_mod.unescape(pipeline.write_feedback(course, r).read_text()).splitlines()}
            assert [h for h in hidden if h in shown] == [], r.student


def test_gradebook_holds_every_assignment(graded):
    course, results = graded
    for a in ASSIGNMENTS:
        scores = pipeline.gradebook_scores(course, a)
        assert {s: sum(v.values()) for s, v in scores.items()} == {s: r.score for s, r in results[a].items()}


def test_sample_classes_are_built_from_every_case():
    for a in ASSIGNMENTS:
        files = {p.name for p in (SAMPLES / a).glob(f"*_{a}.ipynb")}
        assert files == {e["file"] for e in _expected(a).values()}
        assert load_course(ROOT).settings(a).notebook == f"{a}.ipynb"
