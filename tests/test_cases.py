"""autograder.cases: wrong_answers.yml is checked against its notebook, and the sample students built from it
are the release filled in with the solution's code, with exactly one edit."""

from __future__ import annotations

import pathlib
import textwrap

import nbformat
import pytest

from autograder import cases
from autograder.expected import read_expected

ROOT = pathlib.Path(__file__).resolve().parent.parent
WITH_CASES = sorted(p.parent.name for p in (ROOT / "source").glob("*/wrong_answers.yml"))


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    for gid, kind, source, points in cells:
        md = {
            "grade_id": gid,
            "locked": kind != "solution",
            "schema_version": 3,
            "solution": kind == "solution",
            "grade": kind == "test",
        }
        if kind == "test":
            md["points"] = points
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"nbgrader": md}))
    return nb


SOURCE = _nb(
    ("q1_solution", "solution", "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n", None),
    ("q1", "test", "assert f(1) == 2", 2),
    ("q2_solution", "solution", "### BEGIN SOLUTION\ny = 3\n### END SOLUTION\n", None),
    ("q2", "test", "assert y == 3", 1),
)
RELEASE = _nb(
    ("q1_solution", "solution", "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n", None),
    ("q1", "test", "assert f(1) == 2", 2),
    ("q2_solution", "solution", "# YOUR CODE HERE\nraise NotImplementedError()\n", None),
    ("q2", "test", "assert y == 3", 1),
)


def _write(tmp_path, text):
    (tmp_path / "wrong_answers.yml").write_text(textwrap.dedent(text))
    return tmp_path


GOOD = """
    cases:
      - {id: plus-two, cell: q1_solution, replace: "x + 1", with: "x + 2", loses: [q1], why: off by one}
      - {id: y-four, cell: q2_solution, replace: "y = 3", with: "y = 4", loses: [q2], why: wrong constant}
"""


def test_cases_become_students_with_one_edit(tmp_path):
    students = cases.build_class("hwx", SOURCE, RELEASE, _write(tmp_path, GOOD))
    assert [s["id"] for s in students] == [
        "w01_plus_two",
        "w02_y_four",
        "wx_several_mistakes_a",
        "wx_several_mistakes_b",
    ]
    assert [s["ci"] for s in students] == [False, False, True, True]
    students = students[:2]
    correct = cases.fill_release(RELEASE, SOURCE)
    assert correct.cells[0].source == "def f(x):\n    return x + 1\n"
    assert correct.cells[2].source == "y = 3\n"
    assert students[1]["notebook"].cells[2].source == "y = 4\n"
    students = students[:1] * 2  # the first case stands at index 1 below
    assert students[1]["notebook"].cells[0].source == "def f(x):\n    return x + 2\n"
    assert students[1]["notebook"].cells[2].source == "y = 3\n"
    assert students[1]["notebook"].cells[1].source == RELEASE.cells[1].source  # the release's test cell
    assert cases.expected_points(SOURCE, students[1]["loses"]) == {"q1": 0.0, "q2": 1.0}


THREE_QUESTIONS = """
    cases:
      - {id: plus-two, cell: q1_solution, replace: "x + 1", with: "x + 2", loses: [q1], why: off by one}
      - {id: minus-one, cell: q1_solution, replace: "x + 1", with: "x - 1", loses: [q1], why: wrong sign}
      - {id: y-four, cell: q2_solution, replace: "y = 3", with: "y = 4", loses: [q2], why: wrong constant}
      - {id: z-in-place, cell: q1_solution, replace: "return", with: "z = 0\\n    return", loses: [q3], why: w}
"""


def test_ci_students_deal_the_first_mistake_of_each_test_cell_alternately(tmp_path):
    source, release = SOURCE.copy(), RELEASE.copy()
    source.cells = [
        *SOURCE.cells,
        nbformat.v4.new_code_cell(
            "assert 'z' not in dir()",
            metadata={
                "nbgrader": {
                    "grade_id": "q3",
                    "grade": True,
                    "solution": False,
                    "locked": True,
                    "points": 1,
                    "schema_version": 3,
                }
            },
        ),
    ]
    release.cells = [*RELEASE.cells, source.cells[-1]]
    students = {s["id"]: s for s in cases.build_class("hwx", source, release, _write(tmp_path, THREE_QUESTIONS))}
    assert [i for i, s in students.items() if not s["ci"]] == [
        "w01_plus_two",
        "w02_minus_one",
        "w03_y_four",
        "w04_z_in_place",
    ]
    a, b = students["wx_several_mistakes_a"], students["wx_several_mistakes_b"]
    # first cases per test cell: plus-two (q1), y-four (q2), z-in-place (q3); minus-one is a second q1 case
    assert (a["loses"], b["loses"]) == (["q1", "q3"], ["q2"])
    assert a["notebook"].cells[0].source == "def f(x):\n    z = 0\n    return x + 2\n"  # two edits in one cell
    assert a["notebook"].cells[2].source == "y = 3\n"
    assert b["notebook"].cells[0].source == "def f(x):\n    return x + 1\n"
    assert b["notebook"].cells[2].source == "y = 4\n"
    assert "plus-two, z-in-place" in a["note"] and "loses q1, q3 and nothing else" in a["note"]
    assert cases.expected_points(source, a["loses"]) == {"q1": 0.0, "q2": 1.0, "q3": 0.0}


def test_mistakes_that_cannot_be_combined_are_refused():
    first = cases.Case("plus-two", "q1_solution", "x + 1", "x + 2", ("q1",), "off by one")
    clash = cases.Case("minus-one", "q1_solution", "x + 1", "x - 1", ("q1",), "wrong sign")
    with pytest.raises(
        cases.CaseError,
        match="'minus-one': after the other edits in q1_solution, 'replace' occurs 0 times instead of once",
    ):
        cases.fill_release(RELEASE, SOURCE, first, clash)


@pytest.mark.parametrize(
    "text, match",
    [
        ("cases: [{id: a, cell: q1_solution, replace: 'x + 1', with: 'x', loses: [q1]}]", "missing"),
        (
            "cases: [{id: a, cell: q9_solution, replace: 'x + 1', with: 'x', loses: [q1], why: w}]",
            "not a solution cell",
        ),
        ("cases: [{id: a, cell: q1, replace: 'f(1)', with: 'f(2)', loses: [q1], why: w}]", "not a solution cell"),
        ("cases: [{id: a, cell: q1_solution, replace: 'x - 1', with: 'x', loses: [q1], why: w}]", "found 0 times"),
        ("cases: [{id: a, cell: q1_solution, replace: 'x', with: 'y', loses: [q1], why: w}]", "found 2 times"),
        (
            "cases: [{id: a, cell: q1_solution, replace: 'x + 1', with: 'x', loses: [q1_solution], why: w}]",
            "graded test cells",
        ),
        ("cases: [{id: A b, cell: q1_solution, replace: 'x + 1', with: 'x', loses: [q1], why: w}]", "slugs"),
        (
            "cases: [{id: stride-1, cell: q1_solution, replace: 'x + 1', with: 'x', loses: [q1], why: w}]",
            "end in a letter",
        ),
        ("cases: [{id: a, cell: q1_solution, replace: 'x + 1', with: 'x', loses: [q1], why: w}]", "no case loses"),
        ("cases: {a: 1}", "list under 'cases'"),
        ("cases: [oops", "not valid YAML"),
    ],
)
def test_bad_cases_files_are_refused_with_the_reason(tmp_path, text, match):
    with pytest.raises(cases.CaseError, match=match):
        cases.load_cases(_write(tmp_path, text), SOURCE)


def test_no_cases_file_means_no_cases(tmp_path):
    assert cases.load_cases(tmp_path, SOURCE) == []


@pytest.mark.parametrize("assignment", WITH_CASES)
def test_every_assignment_cases_fit_its_notebook(assignment):
    source = nbformat.read(ROOT / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    found = cases.load_cases(ROOT / "source" / assignment, source)
    assert found, f"{assignment}: wrong_answers.yml has no cases"


@pytest.mark.parametrize("assignment", WITH_CASES)
def test_sample_file_names_read_back_as_their_student(assignment):
    """The LMS file-name pattern must give back each sample student's id (a trailing number would be taken
    for a Canvas submission number and dropped)."""
    import re

    from autograder.ingest import default_pattern

    pattern = re.compile(default_pattern(assignment))
    for exp in read_expected(ROOT / "autograder" / "samples" / assignment).values():
        student = exp["file"].removesuffix(f"_{assignment}.ipynb")
        m = pattern.match(exp["file"])
        assert m and m.group("student_id") == student, exp["file"]
