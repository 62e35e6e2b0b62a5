"""The report's question statistics: difficulty, discrimination and the commonest reasons for lost points."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from scipy import stats as scipy_stats

from autograder import question_stats, reports
from autograder.course import Course
from autograder.scoring import QuestionResult, Result


def _result(student: str, earned: dict[str, float], reasons: dict[str, str] | None = None) -> Result:
    most = {"easy": 2.0, "sorts": 4.0, "backwards": 2.0, "partial": 4.0}
    questions = [
        QuestionResult(
            gid,
            earned[gid],
            most[gid],
            "passed" if earned[gid] == most[gid] else "failed",
            (reasons or {}).get(gid, "") if earned[gid] < most[gid] else "",
        )
        for gid in most
    ]
    questions.append(QuestionResult("essay", 0.0, 5.0, "pending", manual=True))  # graded by hand: not counted
    return Result(student, "hw9", questions, [], 1.0, "k")


# Ten students: "sorts" is earned by the five strongest, "backwards" by the weakest, "easy" by everyone.
CLASS = [
    _result(
        f"s{i}",
        {
            "easy": 2.0,
            "sorts": 4.0 if i >= 5 else 0.0,
            "backwards": 2.0 if i < 3 else 0.0,
            "partial": float(min(4, i // 2)),
        },
        {"sorts": "the shapes differ" if i % 2 else "wrong order", "backwards": "off by one", "partial": "too slow"},
    )
    for i in range(10)
]


def test_difficulty_is_the_share_of_points_earned_and_discrimination_the_item_rest_correlation():
    got = {s["grade_id"]: s for s in question_stats.question_statistics(CLASS)}
    assert list(got) == ["easy", "sorts", "backwards", "partial"]  # the notebook's order, no hand-graded question
    assert got["easy"]["difficulty"] == 1.0 and got["easy"]["discrimination"] is None  # no one lost it: n/a
    assert got["sorts"]["difficulty"] == 0.5 and got["backwards"]["difficulty"] == pytest.approx(0.3)
    for gid in ("sorts", "backwards"):  # all or nothing: the point-biserial correlation with the rest of the score
        earned = np.array([next(q.points for q in r.questions if q.grade_id == gid) for r in CLASS])
        rest = np.array([r.score for r in CLASS]) - earned
        expected = scipy_stats.pointbiserialr(earned > 0, rest).statistic
        assert got[gid]["discrimination"] == pytest.approx(expected)
    assert got["sorts"]["discrimination"] > 0.3 and got["backwards"]["discrimination"] < 0
    assert got["sorts"]["reasons"] == [("wrong order", 3), ("the shapes differ", 2)]
    assert got["partial"]["n"] == 10 and got["partial"]["reasons"] == [("too slow", 8)]


def test_too_few_students_give_no_discrimination():
    few = question_stats.question_statistics(CLASS[4:6])
    assert all(s["discrimination"] is None for s in few)
    assert question_stats.question_statistics([]) == []


def test_the_report_explains_and_plots_the_statistics_and_escapes_reasons(tmp_path: pathlib.Path):
    course = Course(tmp_path, "c", tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, "sqlite://")
    hostile = [_result(r.student, {q.grade_id: q.points for q in r.questions[:4]}) for r in CLASS]
    hostile[0].questions[1].reason = "see [here](http://x) <b>"
    text = reports.write_report(course, "hw9", hostile).read_text()
    assert "## Question statistics" in text and "corrected item-total correlation" in text
    section = text.split("## Question statistics")[1]
    row = next(line for line in section.splitlines() if line.startswith("| sorts |"))
    assert row.startswith("| sorts | 10 | 0.50 | 0.") and "none lost" not in row
    assert "| easy | 10 | 1.00 | n/a | none lost |" in text
    assert "[here](http" not in text and "<b>" not in text and "&lt;b&gt;" in text
    assert (tmp_path / "build" / "report" / "hw9" / "question_statistics.png").stat().st_size > 1000
