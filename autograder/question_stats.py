"""Question statistics for the report (:func:`autograder.reports.write_report`): how hard each question was, how
well it tells strong work from weak, and why points were lost, in the terms of classical item analysis."""

from __future__ import annotations

import pathlib

from autograder.scoring import Result


def question_statistics(results: list[Result], top: int = 3) -> list[dict]:
    """Per question graded automatically, in the notebook's order: ``difficulty`` (the share of its points the
    class earned: 1.0 when everyone earned them all), ``discrimination`` (the correlation of its points with the
    rest of each student's score, their total less this question: the corrected item-total correlation, which for
    a question scored all or nothing is the point-biserial correlation; None when either side does not vary or
    fewer than 3 students answered), ``n`` and ``reasons``: the ``top`` most common reasons for lost points with
    their counts (the grader's words for what failed, never the student's text)."""
    import collections

    import numpy as np

    out = []
    seen: dict[str, None] = {}
    for r in results:
        for q in r.questions:
            if not q.manual:
                seen.setdefault(q.grade_id, None)
    for gid in seen:
        rows = [(q, r.score) for r in results for q in r.questions if q.grade_id == gid]
        points = np.array([q.points for q, _ in rows], dtype=float)
        rest = np.array([score - q.points for q, score in rows], dtype=float)
        most = max(q.max_points for q, _ in rows)
        discrimination = None
        if len(rows) >= 3 and points.std() > 0 and rest.std() > 0:
            discrimination = float(np.corrcoef(points, rest)[0, 1])
        lost = collections.Counter(q.reason or q.status for q, _ in rows if q.points < q.max_points)
        out.append(
            {
                "grade_id": gid,
                "n": len(rows),
                "max_points": most,
                "difficulty": float(points.mean() / most) if most else None,
                "discrimination": discrimination,
                "reasons": lost.most_common(top),
            }
        )
    return out


QUESTION_STATISTICS_HELP = (
    "Difficulty is the share of a question's points the class earned (1.00: everyone earned all of them). "
    "Discrimination is how well the question tells apart the students who did well on the rest of the assignment "
    "from those who did not: the correlation between its points and each student's score on the other questions "
    "(the corrected item-total correlation; for a question scored all or nothing, the point-biserial "
    "correlation). As a rule of thumb, above 0.3 is good and 0.1 to 0.3 fair; below 0.1 the question does not "
    "separate strong from weak work (it may be too easy, too hard, or testing something else), and a negative "
    "value means that students who did well elsewhere lost it more often: read the question and its tests again. "
    "'n/a' when everyone (or no one) earned the points. With fewer than about 20 students, treat both as hints."
)


def statistics_plot(stats: list[dict], path: pathlib.Path, assignment: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    shown = [s for s in stats if s["discrimination"] is not None and s["difficulty"] is not None]
    ax.axhspan(-1, 0.1, color="#f3d9d9", zorder=0)
    ax.axhspan(0.1, 0.3, color="#f7efd2", zorder=0)
    ax.axhspan(0.3, 1, color="#dcefdc", zorder=0)
    ax.scatter([s["difficulty"] for s in shown], [s["discrimination"] for s in shown], color="#3b6ea5", zorder=2)
    for s in shown:
        ax.annotate(
            s["grade_id"], (s["difficulty"], s["discrimination"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("difficulty (share of the points earned)")
    ax.set_ylabel("discrimination (item-rest correlation)")
    ax.set_title(f"{assignment}: questions ({len(shown)} of {len(stats)} with a discrimination)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
