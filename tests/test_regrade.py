"""Regrading with history (autograder/regrade.py, autograder/audit.py, ``adl-grade regrade``): a changed test
shows who gains and who loses before anything is recorded; declining leaves no trace; recording keeps every
earlier score in the audit log, which ``export --audit`` writes. Grading is a stand-in for grade_one (results
made from the source's cells): what is tested is what happens around it."""

from __future__ import annotations

import csv
import shutil

import pytest
import yaml
from helpers import scratch_course

from autograder import audit, cli, gradebook, pipeline
from autograder.course import SETTINGS_FILE, load_course
from autograder.files import write_json
from autograder.notebook import read_source
from autograder.scoring import score_run

STUDENTS = ("s01", "s02", "=cmd|'calc'!A0")  # the third: a student id a spreadsheet would run


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """hw1 released into a gradebook once for the module (nbgrader takes seconds); each test gets a copy."""
    root = tmp_path_factory.mktemp("released") / "course"
    root.mkdir()
    mp = pytest.MonkeyPatch()
    scratch_course(root, ["hw1"], mp)
    pipeline.release(load_course(root), "hw1")
    mp.undo()
    return root


@pytest.fixture
def course(released, tmp_path, monkeypatch):
    root = tmp_path / "course"
    shutil.copytree(released, root)
    monkeypatch.setenv("ADL_GRADEBOOK_URL", f"sqlite:///{root / 'gradebook.db'}")
    course = load_course(root)
    for s in STUDENTS:
        folder = course.submitted / s / "hw1"
        folder.mkdir(parents=True)
        (folder / "hw1.ipynb").write_text("{}")
    return course


def grader(failing: dict[str, set[str]]):
    """A grade_one whose tests fail ``failing[student]`` (grade ids), writing the cache as grade_one does."""

    def grade_one(course, assignment, student, force=False):
        _, trusted = read_source(course.source_notebook(assignment))
        cells = [
            {"grade_id": c.grade_id, "status": "error" if c.grade_id in failing.get(student, ()) else "ok"}
            for c in trusted
            if c.autograded_test
        ]
        result = score_run(student, assignment, trusted, {"cells": cells}, f"key-{sorted(failing.get(student, ()))}")
        path = course.autograded / student / assignment / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result.to_json())
        return result

    return grade_one


def test_regrade_shows_gains_and_losses_and_records_with_history(course, monkeypatch, capsys):
    tests = [c.grade_id for c in read_source(course.source_notebook("hw1"))[1] if c.autograded_test]
    first, second = tests[0], tests[1]
    monkeypatch.setattr(pipeline, "grade_one", grader({"s01": {first}, "s02": set(), STUDENTS[2]: {second}}))
    pipeline.autograde(course, "hw1", progress=False)
    before = gradebook.scores(course, "hw1")
    cached = (course.autograded / "s01" / "hw1" / "result.json").read_bytes()

    # a test changed: s01 now passes the first question, s02 fails it
    monkeypatch.setattr(pipeline, "grade_one", grader({"s01": set(), "s02": {first}, STUDENTS[2]: {second}}))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert cli.main(["--course", str(course.root), "regrade", "hw1", "--reason", "fixed q1's tolerance"]) == 0
    out = capsys.readouterr().out
    points = {c.grade_id: c.points for c in read_source(course.source_notebook("hw1"))[1] if c.grade}
    assert f"{first} 0->{points[first]:g}" in out and f"{first} {points[first]:g}->0" in out
    assert "1 gain, 1 lose, 1 unchanged" in out
    assert f"net change by question: {first} +0" in out  # one gains what the other loses
    assert "nothing recorded" in out
    assert gradebook.scores(course, "hw1") == before  # declined: the gradebook, the cache and the log are untouched
    assert (course.autograded / "s01" / "hw1" / "result.json").read_bytes() == cached
    assert [r["reason"] for r in audit.read(course, "hw1")] == ["autograde"] * len(audit.read(course, "hw1"))

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert cli.main(["--course", str(course.root), "regrade", "hw1", "--reason", "fixed q1's tolerance"]) == 0
    assert "recorded: 2 students changed" in capsys.readouterr().out
    after = gradebook.scores(course, "hw1")
    assert (after["s01"][first], after["s02"][first]) == (points[first], 0.0)
    history = [r for r in audit.read(course, "hw1") if r["question"] == first and r["student_id"] in ("s01", "s02")]
    # in the order recorded: first grades as they finished (either order), then the regrade
    assert sorted(
        (r["reason"] != "autograde", r["student_id"], r["before"], r["after"], r["reason"]) for r in history
    ) == [
        (False, "s01", "", "0", "autograde"),
        (False, "s02", "", f"{points[first]:g}", "autograde"),
        (True, "s01", "0", f"{points[first]:g}", "regrade: fixed q1's tolerance"),
        (True, "s02", f"{points[first]:g}", "0", "regrade: fixed q1's tolerance"),
    ]
    assert [r["reason"] for r in history][2:] == ["regrade: fixed q1's tolerance"] * 2
    assert all(r["time"] for r in history)

    assert cli.main(["--course", str(course.root), "export", "hw1", "--audit"]) == 0
    exported = course.build / "grades" / "hw1-audit.csv"
    rows = list(csv.DictReader(exported.open()))
    assert rows == audit.read(course, "hw1")
    assert all(not r["student_id"].startswith("=") for r in rows)  # inert in a spreadsheet
    assert any(r["student_id"] == "'" + STUDENTS[2] for r in rows)


def test_regrade_of_one_student_without_a_terminal_records_only_with_yes(course, monkeypatch, capsys):
    tests = [c.grade_id for c in read_source(course.source_notebook("hw1"))[1] if c.autograded_test]
    monkeypatch.setattr(pipeline, "grade_one", grader({}))
    pipeline.autograde(course, "hw1", progress=False)
    monkeypatch.setattr(pipeline, "grade_one", grader({"s01": {tests[2]}, "s02": {tests[2]}}))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    argv = ["--course", str(course.root), "regrade", "hw1", "--student", "s01", "--reason", "new test"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "s01" in out and "s02" not in out and "run again with --yes" in out
    assert gradebook.scores(course, "hw1")["s01"][tests[2]] > 0
    assert cli.main([*argv, "--yes"]) == 0
    assert (
        gradebook.scores(course, "hw1")["s01"][tests[2]] == 0 and gradebook.scores(course, "hw1")["s02"][tests[2]] > 0
    )

    assert cli.main(["--course", str(course.root), "regrade", "hw1", "--reason", "  "]) == 1  # a reason is required
    assert "--reason must say why" in capsys.readouterr().err


def test_a_submission_the_grader_failed_on_keeps_its_recorded_score(course, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "grade_one", grader({}))
    pipeline.autograde(course, "hw1", progress=False)
    before = gradebook.scores(course, "hw1")

    def broken(course, assignment, student, force=False):
        if student == "s02":
            raise RuntimeError("the grader's bug")
        return grader({})(course, assignment, student, force)

    monkeypatch.setattr(pipeline, "grade_one", broken)
    code = cli.main(["--course", str(course.root), "regrade", "hw1", "--reason", "new grader", "--yes"])
    captured = capsys.readouterr()
    assert code == 1 and "the grader failed on: s02" in captured.out and "hw1/s02" in captured.err
    assert gradebook.scores(course, "hw1")["s02"] == before["s02"]
    assert not any(r["reason"].startswith("regrade") for r in audit.read(course, "hw1"))


def test_feedback_says_whose_hidden_results_are_held_back(course, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "grade_one", grader({}))
    raw = yaml.safe_load(SETTINGS_FILE.read_text())
    raw["assignments"]["hw1"].update(due="2999-01-01T00:00", hidden_results="after_due")
    raw["extensions"] = {}
    (course.root / "assignments.yml").write_text(yaml.safe_dump(raw))
    assert cli.main(["--course", str(course.root), "feedback", "hw1"]) == 0
    out = capsys.readouterr().out
    assert "hidden results held back for 3 (hidden_results: after_due)" in out
    assert cli.main(["--course", str(course.root), "feedback", "hw1", "--final"]) == 0
    assert "held back" not in capsys.readouterr().out
