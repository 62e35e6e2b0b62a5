"""Late submissions (autograder/late.py): due dates, the policy's boundaries, late days across the course,
extensions, and the penalty recorded where nbgrader keeps it, shown beside the raw score in the exports and the
feedback. No kernel runs: results are made from the source's cells."""

from __future__ import annotations

import csv
import dataclasses
import datetime

import pytest
import yaml
from helpers import scratch_course
from hypothesis import given
from hypothesis import strategies as st

from autograder import gradebook, late, pipeline, reports
from autograder.course import SETTINGS_FILE, CourseError, load_course
from autograder.notebook import read_source
from autograder.scoring import score_run

DUE = datetime.datetime(2026, 10, 1, 23, 59, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
SECOND = datetime.timedelta(seconds=1)


def _course(tmp_path, monkeypatch, policies: dict, top: dict | None = None, assignments=("hw1", "hw2", "midterm")):
    """A scratch course whose settings give ``policies`` ({assignment: {due:, late_policy:}}) and ``top``
    (late_days, extensions)."""
    root = tmp_path / "course"
    root.mkdir(parents=True)
    scratch_course(root, list(assignments), monkeypatch)
    raw = yaml.safe_load(SETTINGS_FILE.read_text())
    for name, entry in policies.items():
        raw["assignments"][name] = {**(raw["assignments"].get(name) or {}), **entry}
    raw.update(top or {})
    (root / "assignments.yml").write_text(yaml.safe_dump(raw))
    return load_course(root)


def _submit(course, assignment: str, student: str, moment: datetime.datetime) -> None:
    """A collected submission stamped ``moment``, as collect writes it."""
    folder = course.submitted / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / course.settings(assignment).notebook).write_text("{}")
    (folder / "timestamp.txt").write_text(moment.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))


POLICY = {"per_day": "10%", "cap": "50%"}


@pytest.mark.parametrize(
    ("after_due", "grace", "share"),
    [
        (-SECOND, "0s", 0.0),  # one second before: on time
        (datetime.timedelta(0), "0s", 0.0),  # on the dot: on time
        (SECOND, "0s", 0.1),  # one second after: a begun day
        (DAY, "0s", 0.1),
        (DAY + SECOND, "0s", 0.2),
        (datetime.timedelta(minutes=15), "15m", 0.0),  # the last second of the grace period
        (datetime.timedelta(minutes=15) + SECOND, "15m", 0.1),  # past it: counted from the due date
        (10 * DAY, "0s", 0.5),  # the cap
    ],
)
def test_penalty_at_the_boundaries(tmp_path, monkeypatch, after_due, grace, share):
    course = _course(
        tmp_path, monkeypatch, {"hw1": {"due": DUE.isoformat(), "late_policy": {**POLICY, "grace": grace}}}
    )
    _submit(course, "hw1", "s01", DUE + after_due)
    lt = late.lateness(course, "hw1", "s01")
    assert lt.penalty_share == share
    assert lt.seconds_late == max(0.0, after_due.total_seconds())
    assert lt.penalty(17.0) == round(17 * share, 6)


def test_per_hour_and_no_due_date(tmp_path, monkeypatch):
    course = _course(tmp_path, monkeypatch, {"hw1": {"due": "2026-10-01T23:59", "late_policy": {"per_hour": "2%"}}})
    _submit(course, "hw1", "s01", DUE + datetime.timedelta(hours=3, minutes=1))  # a due date without a zone is UTC
    _submit(course, "hw2", "s01", DUE + 30 * DAY)
    assert late.lateness(course, "hw1", "s01").penalty_share == 0.08
    assert late.lateness(course, "hw1", "s01").describe() == "3.0 h late, penalty 8% of the maximum score"
    assert late.lateness(course, "hw2", "s01").penalty_share == 0.0  # hw2 has no due date: never late
    assert late.lateness(course, "hw2", "s01").describe() == ""


def test_late_days_are_spent_in_due_date_order_until_exhausted(tmp_path, monkeypatch):
    with_days = {**POLICY, "late_days": True}
    course = _course(
        tmp_path,
        monkeypatch,
        {  # due in the order midterm, hw2, hw1: the names' order must not matter
            "midterm": {"due": DUE.isoformat(), "late_policy": with_days},
            "hw2": {"due": (DUE + 7 * DAY).isoformat(), "late_policy": with_days},
            "hw1": {"due": (DUE + 14 * DAY).isoformat(), "late_policy": with_days},
        },
        {"late_days": 3},
    )
    _submit(course, "midterm", "s01", DUE + 1.5 * DAY)  # 2 late days cover it
    _submit(course, "hw2", "s01", DUE + 7 * DAY + 2 * DAY)  # the last late day covers one of its 2 days
    _submit(course, "hw1", "s01", DUE + 14 * DAY + SECOND)  # none left
    got = {a: late.lateness(course, a, "s01") for a in ("midterm", "hw2", "hw1")}
    assert [(got[a].late_days_used, got[a].penalty_share) for a in ("midterm", "hw2", "hw1")] == [
        (2, 0.0),
        (1, 0.1),
        (0, 0.1),
    ]
    assert got["hw2"].describe() == "2.0 days late, 1 late day used, penalty 10% of the maximum score"
    _submit(course, "hw1", "s02", DUE + 14 * DAY + 2 * DAY)
    assert late.lateness(course, "hw1", "s02").late_days_used == 2  # another student's days are their own


def test_an_assignment_without_late_days_leaves_them_for_later(tmp_path, monkeypatch):
    course = _course(
        tmp_path,
        monkeypatch,
        {
            "hw1": {"due": DUE.isoformat(), "late_policy": POLICY},  # late_days not allowed here
            "hw2": {"due": (DUE + 7 * DAY).isoformat(), "late_policy": {**POLICY, "late_days": True}},
        },
        {"late_days": 1},
    )
    _submit(course, "hw1", "s01", DUE + 3 * DAY)
    _submit(course, "hw2", "s01", DUE + 7 * DAY + 0.5 * DAY)
    assert (late.lateness(course, "hw1", "s01").penalty_share, late.lateness(course, "hw1", "s01").late_days_used) == (
        0.3,
        0,
    )
    assert late.lateness(course, "hw2", "s01").late_days_used == 1
    assert late.lateness(course, "hw2", "s01").penalty_share == 0.0


def test_extensions_move_the_due_date(tmp_path, monkeypatch):
    course = _course(
        tmp_path,
        monkeypatch,
        {"hw1": {"due": DUE.isoformat(), "late_policy": POLICY}},
        {"extensions": {"hw1/s01": "2d", "hw1/s02": "2026-10-05T12:00"}},
    )
    for student in ("s01", "s02", "s03"):
        _submit(course, "hw1", student, DUE + 3 * DAY)
    assert late.lateness(course, "hw1", "s01").penalty_share == 0.1  # one day past the extended due date
    assert late.lateness(course, "hw1", "s01").extended
    assert late.lateness(course, "hw1", "s02").seconds_late == 0.0
    assert late.lateness(course, "hw1", "s03").penalty_share == 0.3


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ({"extensions": {"hw1/s99_nobody": "2d"}}, "'hw1/s99_nobody' names a student with no submission of hw1"),
        ({"extensions": {"hw9/s01": "2d"}}, "'hw9/s01' names an unknown assignment"),
        ({"extensions": {"s01": "2d"}}, "must be <assignment>/<student>"),
        ({"extensions": {"hw1/s01": "two days"}}, "expected an ISO 8601 time"),
        ({"extensions": ["hw1/s01: 2d"]}, "extensions must be a mapping"),
        ({"late_days": -1}, "late_days must be a whole number"),
    ],
)
def test_bad_course_settings_are_named(tmp_path, monkeypatch, top, message):
    course = _course(tmp_path, monkeypatch, {"hw1": {"due": DUE.isoformat(), "late_policy": POLICY}}, top)
    _submit(course, "hw1", "s01", DUE)
    with pytest.raises(CourseError, match=message.replace("(", r"\(")):
        late.lateness(course, "hw1", "s01")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"late_policy": {"per_day": "10%", "per_hour": "1%"}}, "exactly one of per_day or per_hour"),
        ({"late_policy": {"cap": "50%"}}, "exactly one of per_day or per_hour"),
        ({"late_policy": {"per_day": 10}}, "expected a percentage"),
        ({"late_policy": {"per_day": "120%"}}, "expected a percentage"),
        ({"late_policy": {"per_day": "10%", "grace": "soon"}}, "late_policy.grace: expected a duration"),
        ({"late_policy": {"per_day": "10%", "late_days": "yes"}}, "late_days must be true or false"),
        ({"late_policy": {"per_week": "10%"}}, "unknown late_policy key"),
        ({"late_policy": "10% a day"}, "late_policy must be a mapping"),
        ({"due": "next friday"}, "hw1: due: expected an ISO 8601 time"),
        ({"hidden_results": "sometimes"}, "hidden_results must be one of"),
    ],
)
def test_a_malformed_policy_is_refused_when_the_course_is_read(tmp_path, monkeypatch, entry, message):
    with pytest.raises(CourseError, match=message):
        _course(tmp_path, monkeypatch, {"hw1": entry}).settings("hw1")


def test_lateness_is_no_part_of_the_grading_key(tmp_path, monkeypatch):
    """A due date or a policy changed after grading must not grade anything again: only the recorded penalty
    changes."""
    plain = _course(tmp_path / "a", monkeypatch, {}, assignments=("hw1",)).settings("hw1")
    dated = _course(tmp_path / "b", monkeypatch, {"hw1": {"due": DUE.isoformat(), "late_policy": POLICY}})
    assert repr(plain) == repr(dated.settings("hw1"))


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """hw1 released into a gradebook: one nbgrader run for the module's tests."""
    root = tmp_path_factory.mktemp("released")
    mp = pytest.MonkeyPatch()
    scratch_course(root, ["hw1"], mp)
    pipeline.release(load_course(root), "hw1")
    yield root
    mp.undo()


def _result(course, student: str, hidden_failure: bool = False):
    """A result as grading gives it: every test passed, or the first test cell's hidden test failed."""
    _, trusted = read_source(course.source_notebook("hw1"))
    tests = [c for c in trusted if c.autograded_test]
    cells = [{"grade_id": c.grade_id, "status": "ok"} for c in tests]
    if hidden_failure:
        first = tests[0]
        cells[0] = {
            "grade_id": first.grade_id,
            "status": "error",
            "ename": "AssertionError",
            "origin": "test",
            "line": min(first.hidden_lines),
        }
    return score_run(student, "hw1", trusted, {"cells": cells, "elapsed": 1.0}, "key-" + student)


def _settings(root, **entry):
    raw = yaml.safe_load(SETTINGS_FILE.read_text())
    raw["assignments"]["hw1"].update(entry)
    (root / "assignments.yml").write_text(yaml.safe_dump(raw))
    return load_course(root)


def test_the_penalty_is_recorded_for_nbgrader_and_exported_beside_the_raw_score(released):
    from nbgrader.api import Gradebook

    course = _settings(released, due=DUE.isoformat(), late_policy={**POLICY, "grace": "1h"})
    _submit(course, "hw1", "ontime", DUE - SECOND)
    _submit(course, "hw1", "late2", DUE + DAY + SECOND)
    for student in ("ontime", "late2"):
        gradebook.record(course, _result(course, student))
    raw = _result(course, "late2").score
    top = late.max_score(course, "hw1")
    with Gradebook(course.db_url, course_id=course.course_id) as gb:  # what the formgrader and nbgrader's export read
        sub = gb.find_submission("hw1", "late2")
        assert sub.late_submission_penalty == pytest.approx(0.2 * top)
        assert sub.total_seconds_late == pytest.approx(DAY.total_seconds() + 1)
        assert gb.find_submission("hw1", "ontime").late_submission_penalty == 0.0
    rows = {r["student_id"]: r for r in csv.DictReader(reports.export_csv(course, "hw1").open())}
    assert float(rows["late2"]["raw_score"]) == raw
    assert float(rows["late2"]["late_penalty"]) == pytest.approx(0.2 * top)
    assert float(rows["late2"]["score"]) == pytest.approx(max(0.0, raw - 0.2 * top))
    assert rows["late2"]["late"] == "1.0 days late, penalty 20% of the maximum score"
    assert (rows["ontime"]["late_penalty"], rows["ontime"]["late"]) == ("0.0", "on time")
    report = reports.write_report(course, "hw1", [_result(course, s) for s in ("ontime", "late2")]).read_text()
    assert "1 of 2 submissions late" in report
    assert f"| late2 | {raw:g} | {0.2 * top:g} | {max(0.0, raw - 0.2 * top):g} | 1.0 days late" in report
    canvas = list(csv.reader(reports.export_canvas(course, "hw1")[0].open()))
    assert [r[-1] for r in canvas if r[0] == "late2"] == [f"{max(0.0, raw - 0.2 * top):g}"]

    # an extension granted after grading: the export works it out again and the gradebook follows
    raw_doc = yaml.safe_load((released / "assignments.yml").read_text())
    raw_doc["extensions"] = {"hw1/late2": "2d"}
    (released / "assignments.yml").write_text(yaml.safe_dump(raw_doc))
    course = load_course(released)
    rows = {r["student_id"]: r for r in csv.DictReader(reports.export_csv(course, "hw1").open())}
    assert (float(rows["late2"]["late_penalty"]), float(rows["late2"]["score"])) == (0.0, raw)
    assert gradebook.penalties(course, "hw1")["late2"] == 0.0

    # the due date taken away: nothing of it is left in the gradebook for the formgrader or nbgrader's export
    course = _settings(released, due=DUE.isoformat(), late_policy=POLICY)
    reports.export_csv(course, "hw1")
    assert gradebook.penalties(course, "hw1")["late2"] > 0
    course = _settings(released, due=None, late_policy=None)
    rows = {r["student_id"]: r for r in csv.DictReader(reports.export_csv(course, "hw1").open())}
    assert (float(rows["late2"]["late_penalty"]), rows["late2"]["late"]) == (0.0, "")
    assert set(gradebook.penalties(course, "hw1").values()) == {0.0}


def test_feedback_holds_back_hidden_results_until_the_due_date(released):
    course = _settings(released, due="2999-01-01T00:00", hidden_results="after_due")
    _submit(course, "hw1", "early", DUE)
    result = _result(course, "early", hidden_failure=True)
    page = reports.write_feedback(course, result).read_text()
    assert "a hidden test failed" not in page and "Score" not in page
    assert "no public check failed" in page and "after your due date, 2999-01-01 00:00 UTC" in page
    final = reports.write_feedback(course, result, final=True).read_text()  # the instructor releases them
    assert "a hidden test failed" in final and f"{result.score:g} / {result.max_score:g}" in final

    course = _settings(released, due="2000-01-01T00:00", hidden_results="after_due")
    assert "a hidden test failed" in reports.write_feedback(course, result).read_text()  # the due date has passed

    course = _settings(released, hidden_results="after_due", due=None)
    assert "a hidden test failed" in reports.write_feedback(course, result).read_text()  # no due date to wait for
    course = _settings(released, hidden_results="on_release", due=None)
    page = reports.write_feedback(course, result).read_text()
    assert "a hidden test failed" not in page and "when your instructor releases them" in page


def test_feedback_shows_the_penalty_beside_the_graded_score(released):
    course = _settings(released, due=DUE.isoformat(), late_policy=POLICY, hidden_results="always")
    _submit(course, "hw1", "late3", DUE + 2 * DAY + SECOND)
    result = _result(course, "late3")
    page = reports.write_feedback(course, result).read_text()
    penalty = 0.3 * result.max_score
    assert f"{max(0.0, result.score - penalty):g} / {result.max_score:g}" in page
    assert f"graded {result.score:g}, less a late penalty of {penalty:g}" in page
    assert "2.0 days late, penalty 30% of the maximum score" in page


@given(
    seconds=st.lists(st.floats(0, 30 * 86400), min_size=1, max_size=40),
    per=st.integers(0, 100),
    cap=st.integers(0, 100),
    grace=st.floats(0, 86400),
    hourly=st.booleans(),
)
def test_the_penalty_never_falls_as_lateness_grows_and_never_passes_the_cap(seconds, per, cap, grace, hourly):
    policy = late.parse_policy(
        {"per_hour" if hourly else "per_day": f"{per}%", "cap": f"{cap}%", "grace": grace}, "property"
    )
    shares = [policy.penalty_share(s) for s in sorted(seconds)]
    assert all(a <= b for a, b in zip(shares, shares[1:], strict=False))
    assert all(0.0 <= s <= cap / 100 for s in shares)
    assert all(policy.penalty_share(s) == 0.0 for s in seconds if s <= grace)


def test_held_back_feedback_names_public_failures_only():
    from autograder.feedback import public_view
    from autograder.scoring import QuestionResult

    hidden = QuestionResult("q1", 0.0, 2.0, "failed", "a hidden test failed (AssertionError: shape)")
    public = QuestionResult("q2", 0.0, 2.0, "failed", "a public check failed (AssertionError) at: assert f(1) == 2")
    checks = QuestionResult("q3", 3.0, 4.0, "partial", "earned 3 of 4 points; lost 1 point: a hidden check failed")
    public_check = dataclasses.replace(checks, public_reason="lost 1 point: a public check failed (shapes)")
    assert public_view(hidden) == "no public check failed"
    assert public_view(public) == public.reason
    assert public_view(dataclasses.replace(checks, public_reason="")) == "no public check failed"
    assert public_view(public_check) == "lost 1 point: a public check failed (shapes)"


def test_collect_lists_late_submissions_by_the_settings_due_date_and_extensions(tmp_path, monkeypatch, capsys):
    import os

    from helpers import ROOT

    from autograder import cli

    course = _course(
        tmp_path,
        monkeypatch,
        {"hw1": {"due": DUE.isoformat(), "late_policy": POLICY}},
        {"extensions": {"hw1/s02": "2d"}},
        assignments=("hw1",),
    )
    download = tmp_path / "download"
    download.mkdir()
    for student, moment in (("s01", DUE + DAY), ("s02", DUE + DAY), ("s03", DUE - SECOND)):
        path = download / f"{student}_hw1.ipynb"
        path.write_bytes((ROOT / "release" / "hw1" / "hw1.ipynb").read_bytes())
        os.utime(path, (moment.timestamp(), moment.timestamp()))
    assert cli.main(["--course", str(course.root), "collect", "hw1", str(download)]) == 0
    out = capsys.readouterr().out
    assert "late: s01: 1.0 days late, penalty 10% of the maximum score" in out
    assert "s02" not in out.split("collected")[1] and "s03" not in out  # an extension; on time
