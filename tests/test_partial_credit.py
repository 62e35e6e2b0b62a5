"""Partial credit inside one test cell: ``adl_helpers.partial_credit`` (per-check points) and nbgrader's convention
(a test cell whose value is a number scores it), as the grader runs them (``autograder.contract``) and scores
them (``autograder.scoring``). Each test cell runs against a fake kernel: the real kernel-side code on a dict
standing for the student's globals. No kernel process: the file runs in about a second."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from helpers import FakeKernel as Kernel

from adl_helpers import partial_credit
from adl_helpers.partial_credit import PartialCredit
from autograder import cases, contract, scoring
from autograder.contract import KernelUnavailable, Link, TrustedTests
from autograder.notebook import GradeCell

IMPORT = "from adl_helpers.partial_credit import PartialCredit as _PartialCredit\n"


def run_test(tmp_path, student: str, test: str, label: str = "q1") -> dict:
    return TrustedTests(Link(Kernel(tmp_path, student).ask)).run(test, label)


def score(cell: dict, test: str, points: float = 3.0) -> scoring.QuestionResult:
    """The question's result for a run whose only cell is ``cell`` (the test's source is ``test``)."""
    trusted = [GradeCell("q1", "code", test, False, True, True, points)]
    run = {"cells": [{"index": 0, "grade_id": "q1", **json.loads(json.dumps(cell))}], "elapsed": 1.0}
    return scoring.score_run("ana", "hw1", trusted, run, "k").questions[0]


# Three checks, one of them hidden; the student's f should double its argument.
TEST = (
    IMPORT
    + "_points = _PartialCredit()\n"
    + 'with _points.check(1, "f(1) is 2"):\n'
    + '    assert f(1) == 2, "f(1) should be 2"\n'
    + 'with _points.check(1, "f returns a float"):\n'
    + "    assert isinstance(f(1.5), float)\n"
    + "### BEGIN HIDDEN TESTS\n"
    + 'with _points.check(1, f"f of a negative number ({-2})"):\n'
    + "    adl.grading.check_close(f(-2.0), -4.0, name='f(-2)')\n"
    + "### END HIDDEN TESTS\n"
    + "_points\n"
)


def test_a_failed_check_costs_its_points_and_the_later_checks_still_run(tmp_path):
    cell = run_test(tmp_path, "def f(x):\n    return 2 * x if x > 0 else x\n", TEST)
    assert cell["status"] == "ok" and cell["score"] == 2.0
    assert [(c["points"], c["passed"]) for c in cell["checks"]] == [(1.0, True), (1.0, True), (1.0, False)]
    assert cell["checks"][2]["line"] == 9 and cell["checks"][2]["origin"] == "library"
    q = score(cell, TEST)
    assert (q.points, q.max_points, q.status) == (2.0, 3.0, "partial")
    # the check's text as typed (its f-string field cut out), never the values check_close printed
    assert q.reason == (
        "earned 2 of 3 points; lost 1 point: a hidden check failed (f of a negative number (\u2026): AssertionError)"
    )
    assert "-4" not in q.reason and "-2" not in q.reason


def test_a_public_check_names_its_line_and_the_instructors_message(tmp_path):
    cell = run_test(tmp_path, "def f(x):\n    return 2 * x + 1.0\n", TEST)
    assert cell["score"] == 1.0
    q = score(cell, TEST)
    assert q.status == "partial" and q.reason == (
        "earned 1 of 3 points; lost 1 point: a public check failed (f(1) is 2: AssertionError: f(1) should be 2) "
        'at: assert f(1) == 2, "f(1) should be 2"; lost 1 point: a hidden check failed (f of a negative number '
        "(\u2026): AssertionError)"
    )


def test_while_hidden_results_are_held_back_only_the_public_checks_are_named(tmp_path):
    hidden_only = score(run_test(tmp_path, "def f(x):\n    return 2 * x if x > 0 else x\n", TEST), TEST)
    assert hidden_only.public_reason == ""  # feedback: "no public check failed"
    both = score(run_test(tmp_path, "def f(x):\n    return 2 * x + 1.0\n", TEST), TEST)
    assert both.public_reason == (
        'a public check failed (f(1) is 2: AssertionError: f(1) should be 2) at: assert f(1) == 2, "f(1) should be 2"'
    )
    assert score({"status": "ok"}, TEST).public_reason == ""  # not a cell with checks: nothing public failed
    assert score({"status": "ok", "score": 1.0}, TEST).public_reason == ""  # a computed score is never public


def test_all_checks_pass_full_points_none_pass_zero(tmp_path):
    full = run_test(tmp_path, "def f(x):\n    return 2.0 * x\n", TEST)
    assert (score(full, TEST).points, score(full, TEST).status, score(full, TEST).reason) == (3.0, "passed", "")
    blank = run_test(tmp_path, "", TEST)  # f is not defined: every check fails, the cell still ends
    q = score(blank, TEST)
    assert (blank["status"], q.points, q.status) == ("ok", 0.0, "failed")
    assert "NameError: name 'f' is not defined" in q.reason and q.reason.count("lost 1 point") == 3


def test_a_student_exception_is_named_by_type_never_by_its_text(tmp_path):
    student = "def f(x):\n    if x < 0:\n        raise ValueError('the hidden input was -2.0')\n    return 2.0 * x\n"
    q = score(run_test(tmp_path, student, TEST), TEST)
    assert q.points == 2.0 and "f() raised ValueError" in q.reason and "-2" not in q.reason


def test_an_error_outside_the_checks_fails_the_whole_cell(tmp_path):
    test = IMPORT + "_points = _PartialCredit()\nwith _points.check(3, 'f(1) is 2'):\n    assert f(1) == 2\n"
    test += "assert f(2) == 4, 'f(2) is 4'\n_points\n"
    cell = run_test(tmp_path, "def f(x):\n    return 2\n", test)
    assert cell["status"] == "error" and "score" not in cell
    assert score(cell, test).points == 0.0 and score(cell, test).status == "failed"


def test_a_cell_that_forgets_to_end_with_its_checks_fails(tmp_path):
    """Otherwise its failed checks would be swallowed: full points for a wrong answer."""
    test = IMPORT + "_points = _PartialCredit()\nwith _points.check(3, 'f(1) is 2'):\n    assert f(1) == 2\n"
    for ending in ["print('done')\n", "1 + 1 == 2\n", ""]:
        cell = run_test(tmp_path, "def f(x):\n    return 0\n", test + ending)
        assert cell["status"] == "error" and cell["message"] == "the test cell's last line must be the checks it made"
        assert score(cell, test + ending).points == 0.0
    # ... and a later cell cannot hand in an earlier cell's checks
    tests = TrustedTests(Link(Kernel(tmp_path, "def f(x):\n    return 2\n").ask))
    assert tests.run(test + "_points\n", "q1")["score"] == 3.0
    assert tests.run("_points\n", "q2")["status"] == "error"


def test_the_checks_of_a_killed_kernel_do_not_swallow_it(tmp_path):
    """KernelUnavailable is no Exception: a check lets it through, and the runner restarts the kernel."""

    def ask(request):
        raise KernelUnavailable("timeout", "the test ran longer than 30 s")

    with pytest.raises(KernelUnavailable):
        TrustedTests(Link(ask)).run(TEST, "q1")


# ------------------------------------------------------------------------ nbgrader's convention: a number


@pytest.mark.parametrize(
    ("ending", "points", "status"),
    [
        ("1.5\n", 1.5, "partial"),
        ("np.float32(2.0)\n", 2.0, "partial"),
        ("np.int64(0)\n", 0.0, "failed"),
        ("-4\n", 0.0, "failed"),  # clamped to [0, the cell's points]
        ("7.5\n", 3.0, "passed"),
        ("True\n", 3.0, "passed"),  # a bool is no score: the cell ran without an error, all points
        ("False\n", 3.0, "passed"),
        ("np.array([1.0])\n", 3.0, "passed"),  # nor an array (nbgrader could not read it as a number either)
        ("'2'\n", 3.0, "passed"),
        ("print('q1: the visible checks pass')\n", 3.0, "passed"),
    ],
)
def test_a_test_cell_whose_value_is_a_number_scores_it(tmp_path, ending, points, status):
    cell = run_test(tmp_path, "", "import numpy as np\nassert 1 == 1\n" + ending)
    q = score(cell, ending)
    assert (q.points, q.status) == (points, status)
    if status == "partial":
        assert q.reason == f"earned {points:g} of 3 points (the score the test gave)"


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ("value = float('nan')\n", "the test's score is not a finite number"),
        ("value = float('inf')\n", "the test's score is not a finite number"),
        ("class Score(float):\n    pass\nvalue = Score(1.0)\n", None),  # arrives unreadable
    ],
)
def test_a_student_nan_or_float_subclass_never_inflates_the_score(tmp_path, student, message):
    for test in ["value\n", "3 * value\n", "np.float64(value) - 1\n"]:
        cell = run_test(tmp_path, student, test)
        q = score(cell, test)
        assert (cell["status"], q.points, q.status) == ("error", 0.0, "failed"), test
        if message:
            assert cell["message"] == message and "nan" not in q.reason and "inf" not in q.reason


def test_a_student_nan_inside_a_check_fails_that_check(tmp_path):
    test = IMPORT + "_p = _PartialCredit()\nwith _p.check(2, 'v is 1'):\n    assert math.isclose(v, 1.0)\n_p\n"
    q = score(run_test(tmp_path, "v = float('nan')\n", test), test, points=2.0)
    assert (q.points, q.status) == (0.0, "failed")


# --------------------------------------------------------------------------- points the cell cannot hold


def test_checks_worth_more_than_the_cell_are_clamped_to_its_points(tmp_path, caplog):
    test = IMPORT + "_p = _PartialCredit()\nwith _p.check(5, 'f(1) is 2'):\n    assert f(1) == 2\n"
    test += "with _p.check(1, 'f(2) is 4'):\n    assert f(2) == 4\n_p\n"
    cell = run_test(tmp_path, "def f(x):\n    return 2\n", test)
    assert cell["score"] == 5.0
    q = score(cell, test)
    assert (q.points, q.status, q.reason) == (3.0, "passed", "")
    assert "the checks of test cell q1 are worth 6 points, the cell 3" in caplog.text


def test_checks_worth_less_than_the_cell_say_so(tmp_path):
    test = IMPORT + "_p = _PartialCredit()\nwith _p.check(2, 'f(1) is 2'):\n    assert f(1) == 2\n_p\n"
    q = score(run_test(tmp_path, "def f(x):\n    return 2\n", test), test)
    assert (q.points, q.status, q.reason) == (
        2.0,
        "partial",
        "earned 2 of 3 points: the checks that ran are worth 2 points",
    )


@pytest.mark.parametrize(
    ("points", "what", "error", "message"),
    [
        (True, "x", TypeError, "points must be a number"),
        ("1", "x", TypeError, "points must be a number"),
        (-1, "x", ValueError, "finite number >= 0"),
        (math.nan, "x", ValueError, "finite number >= 0"),
        (1, "  ", TypeError, "say what is checked"),
    ],
)
def test_a_check_refuses_points_it_cannot_count(points, what, error, message):
    with pytest.raises(error, match=message), PartialCredit().check(points, what):
        pass


def test_a_check_inside_a_check_is_refused_and_counted_once(capsys):
    points = PartialCredit()
    with points.check(1, "outer"):
        with points.check(1, "inner"):
            pass
    assert [(c.what, c.passed) for c in points.checks] == [("outer", False)]
    assert isinstance(points.checks[0].error, RuntimeError) and points.score == 0.0
    assert repr(points) == "0 of 1 point from the checks that ran (failed: outer)"


def test_the_helper_says_what_it_checks():
    assert doctest.testmod(partial_credit).failed == 0


# ------------------------------------------------------------------------------- what the run carries


@pytest.mark.parametrize(
    "checks",
    [
        "not a list",
        [{"points": 1.0}],  # no passed
        [{"points": math.nan, "passed": False}],
        [{"points": -1.0, "passed": True}],
        [{"points": True, "passed": True}],
        [["points", 1]],
    ],
)
def test_malformed_checks_are_dropped_and_the_score_stands_alone(checks):
    cells = scoring.run_cells({"cells": [{"grade_id": "q1", "status": "ok", "score": 1.0, "checks": checks}]})
    assert "checks" not in cells[0] and cells[0]["score"] == 1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, "2", True, None, [1]])
def test_a_score_that_is_not_a_finite_number_is_dropped(bad):
    cells = scoring.run_cells({"cells": [{"grade_id": "q1", "status": "ok", "score": bad}]})
    assert "score" not in cells[0]


def test_a_tampered_kernel_inside_a_check_is_flagged():
    cell = {"status": "ok", "score": 1.0, "checks": [{"points": 2.0, "passed": False, "ename": "ProtocolError"}]}
    run = {"cells": [{"index": 0, "grade_id": "q1", **cell}]}
    result = scoring.score_run("ana", "hw1", [GradeCell("q1", "code", "", False, True, True, 3.0)], run, "k")
    assert result.flags == ["kernel tampered"] and result.questions[0].status == "partial"


# --------------------------------------------------------------------------- wrong-answer cases that cost part


def test_a_case_may_lose_part_of_a_cells_points(tmp_path):
    nb = _case_notebook()
    text = (
        "cases:\n  - {id: plus-two, cell: q1_solution, replace: 'x + 1', with: 'x + 2', loses: [q1], "
        "lost_points: {q1: 1}, why: w}\n"
    )
    (tmp_path / "wrong_answers.yml").write_text(text)
    (case,) = cases.load_cases(tmp_path, nb)
    assert case.lost_points == {"q1": 1.0}
    assert cases.expected_points(nb, case.loses, case.lost_points) == {"q1": 2.0}
    (student, *_) = cases.build_class("hwx", nb, nb, tmp_path)
    assert student["lost_points"] == {"q1": 1.0} and "loses 1 of q1's 3 points" in student["note"]


@pytest.mark.parametrize(
    ("lost", "message"),
    [("{q2: 1}", "names q2, which 'loses' does not"), ("{q1: 3}", "between 0 and 3"), ("{q1: x}", "between 0 and 3")],
)
def test_a_partial_loss_must_fit_its_cell(tmp_path, lost, message):
    text = (
        "cases:\n  - {id: plus-two, cell: q1_solution, replace: 'x + 1', with: 'x + 2', loses: [q1], "
        f"lost_points: {lost}, why: w}}\n"
    )
    (tmp_path / "wrong_answers.yml").write_text(text)
    with pytest.raises(cases.CaseError, match=message):
        cases.load_cases(tmp_path, _case_notebook())


def _case_notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    meta = {"grade_id": "q1_solution", "solution": True, "grade": False, "locked": False, "schema_version": 3}
    nb.cells.append(nbformat.v4.new_code_cell("def f(x):\n    return x + 1\n", metadata={"nbgrader": meta}))
    meta = {"grade_id": "q1", "solution": False, "grade": True, "locked": True, "points": 3, "schema_version": 3}
    nb.cells.append(nbformat.v4.new_code_cell("assert f(1) == 2", metadata={"nbgrader": meta}))
    return nb


def test_np_bool_is_not_a_score():
    assert contract.cell_score(np.bool_(True), "<test q1>", "", 1) == {"status": "ok"}


def test_a_score_past_floats_range_or_not_a_number_never_gives_the_points(tmp_path):
    """A student's int of 400 digits at the test's last line fails the cell (not the whole submission); a run
    whose score is not a finite number (a worker's file tampered with) is no full marks either."""
    cell = run_test(tmp_path, "big = 10 ** 400\n", "big\n")
    assert cell["status"] == "error" and "not a finite number" in cell["message"]
    for bad in (float("inf"), float("nan"), True, "3"):
        q = score({"status": "ok", "score": bad}, TEST)
        assert (q.points, q.status) == (0.0, "failed"), bad
