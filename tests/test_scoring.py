"""Scoring one worker run, directly: points and statuses per question, the flags and notes a run's cells earn,
questions graded by hand, the cached result, and the terminal table. No kernel: runs are written by hand."""

from __future__ import annotations

import json

import pytest

from autograder import reports, scoring
from autograder.notebook import GradeCell


def _cell(gid, *, test=True, points=2.0, solution=False, source="assert f(1) == 2\n"):
    return GradeCell(gid, "code" if test else "markdown", source, solution, True, not solution, points)


TRUSTED = [
    GradeCell("q1_answer", "code", "def f(x):\n    return 2 * x\n", True, False, False, 0.0),  # not graded
    _cell("q1"),
    _cell("q2", points=3.0, source="assert g() == 1\n### BEGIN HIDDEN TESTS\nassert g(5) == 7\n### END HIDDEN TESTS\n"),
    _cell("q3_words", test=False, solution=True, points=4.0, source="An answer in words."),
]


def _run(*cells, elapsed=12.5):
    return {"cells": [{"index": i, **c} for i, c in enumerate(cells)], "elapsed": elapsed}


def test_points_follow_each_test_cells_status():
    run = _run(
        {"grade_id": "q1", "status": "ok"},
        {"grade_id": "q2", "status": "error", "ename": "AssertionError", "line": 3, "origin": "test"},
    )
    result = scoring.score_run("ana", "hw1", TRUSTED, run, "key")
    by_id = {q.grade_id: q for q in result.questions}
    assert list(by_id) == ["q1", "q2", "q3_words"]  # graded cells only, in notebook order
    assert (by_id["q1"].points, by_id["q1"].status) == (2.0, "passed")
    assert (by_id["q2"].points, by_id["q2"].status) == (0.0, "failed")
    assert by_id["q2"].reason.startswith("a hidden test failed (AssertionError")  # line 3 is hidden
    assert (by_id["q3_words"].status, by_id["q3_words"].manual) == (scoring.PENDING, True)
    assert result.score == 2.0 and result.max_score == 9.0 and result.pending == ["q3_words"]
    assert result.flags == [] and result.elapsed == 12.5 and result.key == "key"


def test_a_public_check_that_fails_names_its_line():
    run = _run({"grade_id": "q2", "status": "error", "ename": "AssertionError", "line": 1, "origin": "test"})
    reason = {q.grade_id: q.reason for q in scoring.score_run("ana", "hw1", TRUSTED, run, "k").questions}["q2"]
    assert reason == "a public check failed (AssertionError) at: assert g() == 1"


def test_a_test_cell_that_did_not_run_fails_with_the_graders_words():
    result = scoring.score_run("ana", "hw1", TRUSTED, _run({"grade_id": "q1", "status": "ok"}), "k")
    q2 = result.questions[1]
    assert q2.status == "failed" and q2.reason == "the test could not run: the test cell did not run"


@pytest.mark.parametrize(
    ("status", "flag"),
    [
        ("timeout", "timeout"),
        ("dead", "kernel died"),
        ("skipped", "time limit"),
        ("unresponsive", "kernel unresponsive"),
        ("disk", "disk limit"),
    ],
)
def test_each_kind_of_trouble_is_flagged_once_with_a_note(status, flag):
    run = _run(
        {"grade_id": "q1", "status": status, "evalue": "what happened"},
        {"grade_id": None, "status": status, "evalue": "again"},
    )
    result = scoring.score_run("ana", "hw1", TRUSTED, run, "k")
    assert result.flags == [flag]
    assert result.notes == ["cell q1: what happened", "cell 1: again"]


def test_a_tampered_kernel_is_flagged():
    run = _run({"grade_id": "q1", "status": "error", "ename": "ProtocolError"})
    result = scoring.score_run("ana", "hw1", TRUSTED, run, "k")
    assert "kernel tampered" in result.flags and "could not read your answers" in result.notes[-1]


def test_an_unanswered_question_graded_by_hand_scores_zero_and_awaits_nothing():
    result = scoring.score_run("ana", "hw1", TRUSTED, _run(), "k", unanswered={"q3_words"})
    q3 = result.questions[-1]
    assert (q3.points, q3.status, q3.manual) == (0.0, "failed", True) and result.pending == []
    assert "handed in as released" in q3.reason


@pytest.mark.parametrize(
    "run",
    [
        None,
        [],
        {"cells": "x"},
        {"cells": [1, None, {"status": 5}]},
        {"cells": [], "elapsed": float("nan")},
        {"elapsed": "12"},
    ],
)
def test_a_malformed_run_still_gives_every_question_a_status(run):
    result = scoring.score_run("ana", "hw1", TRUSTED, run, "k")
    assert [q.grade_id for q in result.questions] == ["q1", "q2", "q3_words"]
    assert all(q.status in ("failed", scoring.PENDING) for q in result.questions)
    assert result.elapsed == 0.0


def test_text_utf8_cannot_write_is_replaced():
    run = _run({"grade_id": "q1", "status": "timeout", "evalue": "bad \ud800 text"})
    result = scoring.score_run("ana", "hw1", TRUSTED, run, "k")
    json.dumps(result.to_json()).encode("utf-8")
    assert "\ud800" not in result.notes[0] and "\ufffd" in result.notes[0]


def test_invalid_and_failed_results():
    bad = scoring.invalid("ana", "hw1", TRUSTED, "not JSON", "k")
    assert bad.flags == ["invalid notebook"] and bad.score == 0 and len(bad.questions) == 3
    assert bad.questions[-1].manual and all(q.reason == "not graded: not JSON" for q in bad.questions)
    broken = scoring.failed("ana", "hw1", TRUSTED, KeyError("x"))
    assert broken.flags == [scoring.GRADER_FAILED] and broken.key == ""  # never cached
    assert all(q.status == "not graded" and "KeyError" in q.reason for q in broken.questions)


def test_a_cached_result_reads_back_or_is_none(tmp_path):
    result = scoring.score_run("ana", "hw1", TRUSTED, _run({"grade_id": "q1", "status": "ok"}), "k")
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result.to_json()))
    assert scoring.Result.read(path) == result
    assert scoring.Result.read(tmp_path / "missing.json") is None
    for text in ("{", "[]", '{"student": "ana"}', json.dumps({**result.to_json(), "questions": [1]})):
        path.write_text(text)
        assert scoring.Result.read(path) is None, text


def test_the_table_marks_pending_totals_and_names_the_questions():
    done = scoring.score_run("ana", "hw1", TRUSTED, _run({"grade_id": "q1", "status": "ok"}), "k")
    blank = scoring.score_run("bo", "hw1", TRUSTED, _run(), "k", unanswered={"q3_words"})
    lines = reports.format_table([done, blank]).splitlines()
    assert lines[0].split() == ["student", "Q1", "Q2", "Q3", "total", "flags"]
    assert lines[1].split()[:5] == ["ana", "2", "0", "pend", "2+?/9"]
    assert lines[2].split()[:5] == ["bo", "0", "0", "0", "0/9"]
    assert lines[3] == "(Q1=q1, Q2=q2, Q3=q3_words)"
    assert "1 of 2 totals are provisional" in lines[4] and "adl-grade rubric hw1" in lines[4]
    assert reports.format_table([]) == "(no results)"
