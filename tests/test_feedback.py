"""What a failed test may tell the student: the question, the exception's type and the instructor's own words,
never text that the student's code produced or that a comparison printed (which may hold a hidden test's
inputs or expected values); and the rounds of feedback, recorded and capped."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest
from helpers import scratch_course
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autograder import reports, scoring
from autograder.contract import Link, TrustedTests, instructor_message
from autograder.course import CourseError, load_course, load_settings
from autograder.notebook import GradeCell, read_source

ROOT = pathlib.Path(__file__).resolve().parent.parent


class RecordingKernel:
    """A stand-in for a student's kernel that keeps every argument the tests send it and puts the whole
    record into whatever it answers: an exception's text, a returned string, the name of an exception type.
    A call carrying the hidden test's secret input is answered honestly (so that test goes on and the secret
    is on record); every later call answers with the record."""

    def __init__(self, mode: str):
        self.mode = mode
        self.seen: list[str] = []

    def __call__(self, request: dict) -> dict:
        if request["op"] == "names":
            return {"names": {n: {"__callable__": True} for n in request["names"] if n.startswith("student_")}}
        args = json.dumps(request["args"])
        self.seen.append(args)
        record = " | ".join(self.seen)
        if "31337" in args:
            return {"value": {"__float__": "0.5"}}
        if self.mode == "raise":
            return {"raised": ["ValueError", record]}
        if self.mode == "own-type":
            return {"raised": ["Leak_" + record[:80], "x"]}
        if self.mode == "string":
            return {"value": record}
        return {"value": {"__unreadable__": "a Leak" + record[:80]}}


# A test cell with a public check and a hidden test that sends the kernel a secret input (31337.25) and
# compares with a secret expected value (271828.5).
CELL = """_out = student_f(2.0)
assert _out is not None, "student_f returned nothing"
### BEGIN HIDDEN TESTS
_secret = student_f(31337.25)
np.testing.assert_allclose(float(student_f(1.0)), 271828.5, err_msg="f(1) is off: check the sign")
assert float(_secret) == 271828.5, f"student_f(31337.25) gave {_secret}, expected {271828.5}"
### END HIDDEN TESTS
"""
TRUSTED = GradeCell(cell_type="code", grade_id="q1", points=2.0, grade=True, solution=False, locked=True, source=CELL)
SECRETS = ("31337", "271828", "Leak")


def _grade(mode: str, source: str = CELL) -> dict:
    tests = TrustedTests(Link(RecordingKernel(mode)))
    return tests.run(source, "q1")


@pytest.mark.parametrize("mode", ["raise", "own-type", "string", "unreadable"])
def test_a_recording_kernel_gets_nothing_back_through_the_reason(mode):
    """Question 1's hidden test sends the kernel a secret input; question 2's public check then gets the
    kernel's whole record back, in each way a student's code can answer."""
    kernel = RecordingKernel(mode)
    tests = TrustedTests(Link(kernel))
    hidden_only = "### BEGIN HIDDEN TESTS\n_secret = student_f(31337.25)\n### END HIDDEN TESTS\n"
    assert tests.run(hidden_only, "q1")["status"] == "ok"
    public = '_out = student_f(2.0)\nassert float(_out) == 4.0, f"student_f(2.0) returned {_out}"\n'
    outcome = tests.run(public, "q2")
    assert outcome["status"] == "error" and "31337" in " ".join(kernel.seen)
    if mode in ("raise", "string"):
        assert "31337" in outcome["evalue"]  # the attack works: the instructor's record holds the secret input
    reason = scoring.reason(outcome, dataclasses.replace(TRUSTED, grade_id="q2", source=public))
    assert reason.startswith("a public check failed (")
    assert not any(s in reason for s in SECRETS), reason


def test_comparison_output_and_fstring_values_are_cut():
    class Kernel(RecordingKernel):
        def __call__(self, request):
            if request["op"] == "names":
                return super().__call__(request)
            return {"value": {"__float__": "1.5"}}

    tests = TrustedTests(Link(Kernel("value")))
    outcome = tests.run(CELL, "q1")
    assert outcome["ename"] == "AssertionError" and outcome["origin"] == "library"
    assert "271828.5" in outcome["evalue"] and "DESIRED" in outcome["evalue"]  # NumPy printed the expected value
    assert outcome["message"] == "f(1) is off: check the sign"  # the instructor's err_msg, as written
    reason = scoring.reason(outcome, TRUSTED)
    assert reason == "a hidden test failed (AssertionError: f(1) is off: check the sign)"
    one = CELL.replace(
        'np.testing.assert_allclose(float(student_f(1.0)), 271828.5, err_msg="f(1) is off: check the sign")\n', ""
    )
    outcome = tests.run(one, "q1")
    assert outcome["message"] == "student_f(31337.25) gave \u2026, expected \u2026"
    assert "271828" not in scoring.reason(outcome, dataclasses.replace(TRUSTED, source=one))


def test_a_public_check_names_its_line_and_a_student_exception_only_its_type():
    outcome = _grade("raise")
    assert outcome["origin"] == "student" and outcome["function"] == "student_f"
    reason = scoring.reason(outcome, TRUSTED)
    assert reason == "a public check failed (student_f() raised ValueError) at: _out = student_f(2.0)"
    outcome = _grade("own-type")
    assert outcome["ename"] == "StudentError"
    assert scoring.reason(outcome, TRUSTED).startswith(
        "a public check failed (student_f() raised an exception of a type of its own)"
    )
    outcome = _grade("unreadable")
    assert outcome["origin"] == "unreadable" and outcome["ename"] == "TypeError"
    assert "Leak" in outcome["evalue"] and "Leak" not in scoring.reason(outcome, TRUSTED)


def test_a_name_the_public_checks_use_is_named_and_a_hidden_one_is_not():
    source = "_a = student_g(1)\n### BEGIN HIDDEN TESTS\n_b = secret_helper_name(2)\n### END HIDDEN TESTS\n"
    cell = dataclasses.replace(TRUSTED, source=source)
    tests = TrustedTests(Link(lambda r: {"names": {}}))
    reason = scoring.reason(tests.run(source, "q1"), cell)
    assert "name 'student_g' is not defined" in reason
    tests = TrustedTests(
        Link(lambda r: {"names": {"student_g": {"__callable__": True}}} if r["op"] == "names" else {"value": 1})
    )
    reason = scoring.reason(tests.run(source, "q1"), cell)
    assert reason.startswith("a hidden test failed (NameError: a name the test uses") and "secret" not in reason


@pytest.mark.parametrize(
    ("source", "line", "expected"),
    [
        ('assert x, "plain words"', 1, "plain words"),
        ('assert x, f"got {x!r:>10}, expected {y}"', 1, "got \u2026, expected \u2026"),
        ('assert x, ("two " \n  f"parts {x}")', 2, "two parts \u2026"),
        ('raise AssertionError(f"no error for {shapes}")', 1, "no error for \u2026"),
        ('np.testing.assert_allclose(\n  a, b,\n  err_msg="off by a sign")', 1, "off by a sign"),
        ("assert x, message_variable", 1, None),
        ("assert x", 1, None),
        ("y = float(x)", 1, None),
        ("not python (", 1, None),
        ('assert x, "' + "w " * 400 + '"', 1, ("w " * 150)[:299] + "\u2026"),
    ],
)
def test_instructor_message(source, line, expected):
    assert instructor_message(source, line) == expected


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    evalue=st.text(min_size=6, max_size=300),
    ename=st.text(max_size=40),
    origin=st.sampled_from(["student", "test", "library", "unreadable", None, 7]),
    line=st.one_of(st.none(), st.integers(-3, 12), st.text(max_size=5)),
    function=st.one_of(st.none(), st.text(max_size=30)),
)
def test_a_reason_never_holds_the_exception_text(evalue, ename, origin, line, function):
    cell = {
        "status": "error",
        "ename": ename,
        "evalue": evalue,
        "origin": origin,
        "line": line,
        "function": function,
        "message": None,
    }
    reason = scoring.reason(cell, TRUSTED)
    words = evalue.strip()
    if len(words) >= 6 and words not in CELL and words not in scoring.reason({**cell, "evalue": ""}, TRUSTED):
        assert words not in reason
    assert reason.isprintable()


# ------------------------------------------------------------------------------------------ rounds


@pytest.fixture
def course(tmp_path, monkeypatch):
    scratch_course(tmp_path, ["hw1"], monkeypatch, feedback_rounds=2)
    course = load_course(tmp_path)
    assert course.settings("hw1").feedback_rounds == 2
    return course


def _result(key: str, points: float) -> scoring.Result:
    _, trusted = read_source(ROOT / "source" / "hw1" / "hw1.ipynb")
    qs = [
        scoring.QuestionResult(
            c.grade_id,
            points if i == 0 else 0.0,
            c.points,
            "passed" if i == 0 and points else "failed",
            "" if i == 0 else "a hidden test failed",
        )
        for i, c in enumerate(c for c in trusted if c.autograded_test)
    ]
    return scoring.Result("ana", "hw1", qs, [], 1.0, key)


def test_rounds_are_recorded_and_capped(course):
    first = reports.write_feedback(course, _result("k1", 2.0)).read_text()
    assert "Feedback round 1 of 2." in first and "Score: <strong>2 / 14</strong>" in first
    assert "Feedback round 1 of 2." in reports.write_feedback(course, _result("k1", 2.0)).read_text()  # same one
    assert "round 2 of 2" in reports.write_feedback(course, _result("k2", 0.0)).read_text()
    third = reports.write_feedback(course, _result("k3", 2.0)).read_text()
    assert "Feedback round 3" in third and "released after the deadline" in third
    assert "Score:" not in third and "q1_sigmoid" not in third and "hidden test failed" not in third
    rounds = reports.feedback_rounds(course, "hw1", "ana")
    assert [(r["key"], r["withheld"]) for r in rounds] == [("k1", False), ("k2", False), ("k3", True)]
    final = reports.write_feedback(course, _result("k3", 2.0), final=True).read_text()
    assert "Score: <strong>2 / 14</strong>" in final and "q1_sigmoid" in final
    assert len(reports.feedback_rounds(course, "hw1", "ana")) == 3  # final feedback is not a round


def test_a_round_is_a_submission_not_a_grading(course):
    """Grading the same notebook again (a newer grader gives its result a new key) is the same round; a new
    notebook is a new one."""
    notebook = course.submitted / "ana" / "hw1" / "hw1.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text("first")
    reports.write_feedback(course, _result("k1", 2.0))
    assert "round 1 of 2" in reports.write_feedback(course, _result("k1-regraded", 2.0)).read_text()
    notebook.write_text("second")
    assert "round 2 of 2" in reports.write_feedback(course, _result("k2", 2.0)).read_text()
    assert len(reports.feedback_rounds(course, "hw1", "ana")) == 2


def test_a_damaged_round_record_is_reported_not_reset(course):
    reports.write_feedback(course, _result("k1", 2.0))
    path = course.build / "feedback_rounds" / "hw1" / "ana.json"
    path.write_text("{not json")
    with pytest.raises(CourseError, match="not valid JSON.*delete it"):
        reports.write_feedback(course, _result("k2", 2.0))
    assert path.read_text() == "{not json"


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True])
def test_feedback_rounds_setting_is_validated(tmp_path, value):
    path = tmp_path / "assignments.yml"
    path.write_text(f"assignments:\n  hw1:\n    feedback_rounds: {json.dumps(value)}\n")
    with pytest.raises(CourseError, match="feedback_rounds"):
        load_settings("hw1", path)


def test_numpy_is_the_graders_own():  # the tests above compare with the grader's NumPy, not a kernel's
    assert TrustedTests(Link(lambda r: {"names": {}})).imports["np"] == np.__name__


# ------------------------------------------------------------------ what feedback may say while hidden results wait

HELPER_TEST = (
    "def _check(x, want):\n"
    '    assert f(x) == want, "f gives the wrong value"\n'
    "_check(1, 2)\n"
    "### BEGIN HIDDEN TESTS\n"
    "_check(7, 14)\n"
    "### END HIDDEN TESTS\n"
)


def _held_back_view(tmp_path, student: str, test: str) -> tuple[scoring.QuestionResult, str]:
    from helpers import FakeKernel

    from autograder.feedback import public_view

    cell = TrustedTests(Link(FakeKernel(tmp_path, student).ask)).run(test, "q1")
    trusted = [GradeCell("q1", "code", test, False, True, True, 2.0)]
    run = {"cells": [{"index": 0, "grade_id": "q1", **json.loads(json.dumps(cell))}]}
    q = scoring.score_run("ana", "hw1", trusted, run, "k").questions[0]
    return q, public_view(q)


def test_a_public_helper_that_fails_in_a_hidden_test_is_a_hidden_failure(tmp_path):
    """The public part defines the helper, the hidden part calls it: the failure is the hidden call's, so the
    page that holds hidden results back says the same as for a student who passed."""
    passed, shown_passed = _held_back_view(tmp_path, "def f(x):\n    return 2 * x\n", HELPER_TEST)
    failed, shown_failed = _held_back_view(tmp_path, "def f(x):\n    return 2 * x if x < 5 else 0\n", HELPER_TEST)
    assert (passed.points, failed.points) == (2.0, 0.0)
    assert failed.reason == "a hidden test failed (AssertionError: f gives the wrong value)"
    assert shown_failed == shown_passed == "no public check failed"
    public, shown = _held_back_view(tmp_path, "def f(x):\n    return 0\n", HELPER_TEST)
    assert shown == public.reason == "a public check failed (AssertionError: f gives the wrong value) at: _check(1, 2)"


def test_what_the_grader_cannot_place_or_a_computed_score_says_nothing_while_held_back():
    trusted = [GradeCell("q1", "code", HELPER_TEST, False, True, True, 2.0)]
    runs = {
        "unplaced": {"status": "error", "ename": "ProtocolError", "origin": "student", "line": None},
        "timeout in a hidden test": {"status": "timeout", "evalue": "the test ran longer than 60 s", "line": 5},
        "timeout before any line": {"status": "timeout", "evalue": "the test ran longer than 60 s", "line": None},
        "a computed score of 0": {"status": "ok", "score": 0.0},
    }
    from autograder.feedback import public_view

    for what, cell in runs.items():
        q = scoring.score_run("ana", "hw1", trusted, {"cells": [{"grade_id": "q1", **cell}]}, "k").questions[0]
        assert q.points == 0.0 and public_view(q) == "no public check failed", what
    public_timeout = {"status": "timeout", "evalue": "the test ran longer than 60 s", "line": 3}
    q = scoring.score_run("ana", "hw1", trusted, {"cells": [{"grade_id": "q1", **public_timeout}]}, "k").questions[0]
    assert public_view(q) == "the test could not run: the test ran longer than 60 s"


def test_a_kernel_lost_in_a_hidden_test_is_placed_there(tmp_path):
    """A student's function that loops forever on a hidden input: the time limit is placed on the hidden call."""
    from helpers import FakeKernel

    from autograder.contract import KernelUnavailable

    kernel = FakeKernel(tmp_path, "def f(x):\n    return 2 * x\n")

    def ask(request):
        if request.get("op") == "call" and request.get("args") == {"__list__": [7]}:
            raise KernelUnavailable("timeout", "the test ran longer than 60 s")
        return kernel.ask(request)

    with pytest.raises(KernelUnavailable) as caught:
        TrustedTests(Link(ask)).run(HELPER_TEST, "q1")
    assert caught.value.line == 5  # _check(7, 14), in the hidden part
