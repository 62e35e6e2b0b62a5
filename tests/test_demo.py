"""The demo's own steps (autograder/demo.py) that no other test runs: the late-policy example, the similarity
screening of its sample class and the email dry run, on a scratch course (no kernel: grading is tested elsewhere)."""

from __future__ import annotations

import datetime
import shutil

from helpers import ROOT, scratch_course

from autograder import demo
from autograder.course import load_course
from autograder.notebook import read_source
from autograder.scoring import score_run


def _course(tmp_path, monkeypatch):
    root = tmp_path / "course"
    root.mkdir()
    scratch_course(root, ["hw1", "hw2"], monkeypatch)
    shutil.copytree(ROOT / "release" / "hw2", root / "release" / "hw2")
    return load_course(root)


def test_the_late_example_changes_nothing_and_shows_the_penalty(tmp_path, monkeypatch, capsys):
    course = _course(tmp_path, monkeypatch)
    _, trusted = read_source(course.source_notebook("hw1"))
    cells = [{"grade_id": c.grade_id, "status": "ok"} for c in trusted if c.autograded_test]
    results = []
    stamp = datetime.datetime(2026, 10, 1, 12, tzinfo=datetime.UTC)
    for student in ("s01", "s02"):
        folder = course.submitted / student / "hw1"
        folder.mkdir(parents=True)
        (folder / "hw1.ipynb").write_text("{}")
        (folder / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
        results.append(score_run(student, "hw1", trusted, {"cells": cells}, student))
    demo._late_example(course, results)
    out = capsys.readouterr().out
    assert "s01          graded   14  penalty    0  score   14  (on time)" in out  # its 2-day extension
    assert "s02          graded   14  penalty  1.7  score 12.3  (1.5 days late, 1 late day used, penalty 10%" in out
    assert course.settings("hw1").due is None and not (course.root / "assignments.yml").exists()


def test_the_demo_screens_its_similarity_class_and_writes_emails_without_sending(tmp_path, monkeypatch, capsys):
    course = _course(tmp_path, monkeypatch)
    page = course.feedback / "s01" / "hw1" / "feedback.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>Generated 2026-12-04 12:00 UTC by adl-grade. Hidden tests are not shown.</p>")
    demo._screen_and_mail(course)
    out = capsys.readouterr().out
    assert "28 pairs, 3 flagged" in out
    assert "FLAGGED 1.00  s01_ana  s06_farid" in out
    assert "would send feedback on hw1 to 1 student(s)" in out
    assert "s01 -> s01@students.example.edu" in out
    assert [p.name for p in (course.build / "mail" / "hw1" / "outbox").iterdir()] == ["s01.eml"]
    assert not (course.build / "mail" / "hw1" / "sent.json").exists()  # a dry run records nothing
