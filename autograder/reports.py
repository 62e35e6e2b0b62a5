"""What grading produces for people: grade exports, the terminal table, the report (feedback: :mod:`autograder.feedback`).

Everything here may carry text from a submission (a student id is a folder name the student chose, a note
quotes what their notebook did), so every string is escaped for where it goes: HTML by Jinja's autoescape,
Markdown by :func:`_md`, the terminal by ``printable``. Feedback never shows a hidden test or what one
computed (:func:`autograder.scoring.reason` words every lost point).
"""

from __future__ import annotations

import html
import pathlib
import re

from autograder import gradebook, late
from autograder.course import Course, CourseError
from autograder.feedback import feedback_rounds, write_feedback  # noqa: F401 (adl-grade's names for them)
from autograder.ingest import printable
from autograder.notebook import read_source
from autograder.question_stats import QUESTION_STATISTICS_HELP, question_statistics, statistics_plot
from autograder.scoring import GRADED_BY_HAND, PENDING, Result


def export_csv(course: Course, assignment: str, path: pathlib.Path | None = None) -> pathlib.Path:
    """One row per student: each question's score from the gradebook, the total and the maximum. In an
    assignment with questions graded by hand, a question without any score yet (not graded in the formgrader)
    is left empty and named in the last column, ``awaiting_grade``: while it is not empty, the student's score
    is provisional."""
    import csv

    _, trusted = read_source(course.source_notebook(assignment))
    graded = [c for c in trusted if c.grade]
    scores = gradebook.scores(course, assignment)
    # only an assignment with questions graded by hand has questions left without any score (opening the
    # gradebook again costs nbgrader's alembic check, about a second)
    awaiting = gradebook.awaiting(course, assignment) if any(not c.autograded_test for c in graded) else {}
    lateness = late_penalties(course, assignment, sorted(scores))
    path = path or course.build / "grades" / f"{assignment}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    # errors=: a student id that UTF-8 cannot write (a folder made by hand) is written escaped, not a crash
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["student_id", "assignment", *[c.grade_id for c in graded], "raw_score", "late_penalty", "score"]
            + ["max_score", "late", "awaiting_grade"]
        )
        for student in sorted(scores):
            waiting = awaiting.get(student, [])
            row = [scores[student].get(c.grade_id, 0.0) for c in graded]
            shown = ["" if c.grade_id in waiting else value for c, value in zip(graded, row, strict=True)]
            penalty, lt = lateness.get(student, (0.0, None))
            writer.writerow(
                [student, assignment, *shown, sum(row), penalty, final_score(sum(row), penalty)]
                + [sum(c.points for c in graded), lt.describe() if lt else "", " ".join(waiting)]
            )
    return path


def final_score(raw: float, penalty: float) -> float:
    """The score that counts: the raw score less the late penalty, never below 0 (as nbgrader's export)."""
    return max(0.0, round(raw - penalty, 6))


def late_penalties(course: Course, assignment: str, students: list[str]) -> dict[str, tuple[float, late.Lateness]]:
    """{student: (penalty in points, :class:`~autograder.late.Lateness`)} worked out again from the time stamps and
    the settings (a resubmission, a new extension or a late day used elsewhere changes it), and written to the
    gradebook so that the formgrader agrees; {} for an assignment without a due date."""
    if course.settings(assignment).due is None:
        if any(gradebook.penalties(course, assignment).values()):  # a due date taken away: clear what it left
            gradebook.record_lateness(
                course, assignment, {s: late.Lateness(s, assignment, None, None) for s in students}
            )
        return {}
    lateness = late.all_lateness(course, assignment, students)
    gradebook.record_lateness(course, assignment, lateness)
    top = late.max_score(course, assignment)
    return {s: (lt.penalty(top), lt) for s, lt in lateness.items()}


CANVAS_ID_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def export_canvas(
    course: Course,
    assignment: str,
    path: pathlib.Path | None = None,
    roster: pathlib.Path | None = None,
    column: str | None = None,
) -> tuple[pathlib.Path, list[str]]:
    """The assignment's totals as a CSV that Canvas' gradebook imports (Grades > Import).

    Canvas matches rows by ``ID`` (its user id, which is what its submission downloads put in file names),
    ``SIS User ID`` or ``SIS Login ID``. With ``roster`` (a gradebook export from Canvas) each student's
    identity columns are copied from the row whose ID, SIS User ID or SIS Login ID equals the student id;
    ``column`` names the assignment's column there (Canvas writes ``hw1 (12345)``; default: the assignment).

    Returns the path and the student ids that the roster does not know (they are left out, never guessed).
    """
    import csv

    _, trusted = read_source(course.source_notebook(assignment))
    possible = sum(c.points for c in trusted if c.grade)
    scores = gradebook.scores(course, assignment)
    penalties = late_penalties(course, assignment, sorted(scores))
    people: dict[str, dict[str, str]] = {}
    if roster is not None:
        try:
            with pathlib.Path(roster).open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in ("Student", "ID") if c not in (reader.fieldnames or [])]
                if missing:
                    raise CourseError(
                        f"{roster}: not a Canvas gradebook export (no column {missing[0]!r}); "
                        "export it from Canvas: Grades > Export > Export Entire Gradebook"
                    )
                for row in reader:
                    if (row.get("Student") or "").strip() in ("", "Points Possible", "Test Student"):
                        continue
                    for key in ("ID", "SIS User ID", "SIS Login ID"):
                        if (row.get(key) or "").strip():
                            people.setdefault(row[key].strip(), row)
        except OSError as exc:
            raise CourseError(f"cannot read the Canvas roster {roster}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise CourseError(
                f"the Canvas roster {roster} is not UTF-8 text (byte {exc.start}): export it from "
                "Canvas again (Grades > Export > Export Entire Gradebook) and use that file"
            ) from None
        except csv.Error as exc:
            raise CourseError(
                f"the Canvas roster {roster} is not a readable CSV file ({exc}): export it from "
                "Canvas again (Grades > Export > Export Entire Gradebook) and use that file"
            ) from None
    unknown = []
    path = path or course.build / "grades" / f"{assignment}-canvas.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    column = column or assignment
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CANVAS_ID_COLUMNS, column])
        writer.writerow(["Points Possible", "", "", "", "", f"{possible:g}"])
        for student in sorted(scores):
            total = f"{final_score(sum(scores[student].values()), penalties.get(student, (0.0,))[0]):g}"
            if roster is None:
                writer.writerow([student, student, "", "", "", total])
            elif student in people:
                row = people[student]
                writer.writerow([*(row.get(c, "") for c in CANVAS_ID_COLUMNS), total])
            else:
                unknown.append(student)
    return path, unknown


def format_table(results: list[Result]) -> str:
    """A fixed-width grade table for the terminal. A question graded by hand without a grade yet shows as
    ``pend`` and makes the total provisional (``12+?/20``); one with a grade shows that grade."""
    if not results:
        return "(no results)"
    ids = list(dict.fromkeys(q.grade_id for r in results for q in r.questions))  # results may differ in questions
    names = {id(r): printable(r.student, limit=40) for r in results}  # folder names: the student's text
    width = max(len("student"), *map(len, names.values()))
    heads = [f"Q{i + 1}" for i in range(len(ids))]
    lines = [f"{'student':<{width}}  " + " ".join(f"{h:>5}" for h in heads) + "  total    flags"]
    for r in results:
        pts = {q.grade_id: q.points for q in r.questions}
        waiting = set(r.pending)
        cells = " ".join(f"{'pend':>5}" if g in waiting else f"{pts.get(g, 0):>5g}" for g in ids)
        flags = printable(", ".join(r.flags), limit=200)
        total = f"{r.score:g}+?" if waiting else f"{r.score:g}"
        lines.append(f"{names[id(r)]:<{width}}  {cells}  {total:>4}/{r.max_score:<4g} {flags}")
    legend = ", ".join(f"{h}={printable(g, limit=60)}" for h, g in zip(heads, ids, strict=True))
    pending = sum(1 for r in results if r.pending)
    assignment = printable(results[0].assignment, limit=60)
    note = (
        [
            f"(pend: graded by hand, no grade yet; {pending} of {len(results)} totals are provisional. Grade them "
            f"in the formgrader; adl-grade rubric {assignment} prints the rubric)"
        ]
        if pending
        else []
    )
    return "\n".join(lines + [f"({legend})"] + note)


def _late_section(course: Course, assignment: str, results: list[Result]) -> list[str]:
    """The report's late submissions: each late student's raw score, penalty and the score that counts."""
    penalties = late_penalties(course, assignment, [r.student for r in results])
    if not penalties:
        return []
    late_ones = [(r, *penalties[r.student]) for r in results if penalties[r.student][1].seconds_late > 0]
    lines = [
        "",
        "## Late submissions",
        "",
        f"Due {course.settings(assignment).due:%Y-%m-%d %H:%M %Z}; {len(late_ones)} of {len(results)} submissions "
        "late. The penalty is taken off the graded (raw) score, which the gradebook keeps.",
        "",
    ]
    if late_ones:
        lines += ["| student | raw score | penalty | score | lateness |", "|---|---|---|---|---|"]
        lines += [
            f"| {_md(r.student, 80)} | {r.score:g} | {penalty:g} | {final_score(r.score, penalty):g} | {lt.describe()} |"
            for r, penalty, lt in late_ones
        ]
    return lines


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]()!|~:"})


def _md(text: object, limit: int = 400) -> str:
    """Student-derived text as inert Markdown: controls escaped and the length bounded (``printable``),
    line breaks as spaces, Markdown's link, image, emphasis and table characters (and the ``:`` and
    ``www.`` of a bare link) backslash-escaped, and ``& < > " '`` as HTML entities, so a name or a note
    renders as the text it is and never as a tag, a link or an image.

    Example:
        >>> _md("[x](javascript:alert(1)) <img src=x>")
        '\\\\[x\\\\]\\\\(javascript\\\\:alert\\\\(1\\\\)\\\\) &lt;img src=x&gt;'
    """
    text = printable(" ".join(str(text).split()), limit)
    text = re.sub(r"(?i)(www)\.", r"\1\\.", text.translate(_MARKDOWN_SPECIAL))
    return html.escape(text, quote=True)


def write_report(course: Course, assignment: str, results: list[Result]) -> pathlib.Path:
    """report.md with per-question pass rates, question statistics (difficulty, discrimination, the commonest reasons
    for lost points, with a plot), the score distribution (PNG) and the flagged submissions.
    Every string that comes from a submission passes through ``_md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    outdir = course.build / "report" / assignment
    outdir.mkdir(parents=True, exist_ok=True)
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(
        scores, bins=min(100, max(1, int(max_score)) + 1), range=(-0.5, max_score + 0.5), color="#3b6ea5", rwidth=0.9
    )
    ax.set_xlabel(f"score (out of {max_score:g})")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{assignment}: score distribution (n={len(results)})")
    fig.tight_layout()
    fig.savefig(outdir / "score_distribution.png", dpi=120)
    plt.close(fig)

    lines = [
        f"# {assignment}: autograding report",
        "",
        f"{len(results)} submissions, mean {sum(scores) / max(1, len(scores)):.2f} / {max_score:g}.",
        "",
        "## Pass rate per question",
        "",
        "| question | points | passed | pass rate |",
        "|---|---|---|---|",
    ]
    questions = {q.grade_id: q for r in results for q in r.questions}  # by id: results may differ in questions
    statuses = [{q.grade_id: q.status for q in r.questions} for r in results]
    provisional = sum(1 for r in results if r.pending)
    if provisional:
        lines[4:4] = [
            f"Provisional: {provisional} of {len(results)} submissions have questions graded by hand "
            "without a grade yet (counted as 0 here and in the histogram); grade them in the formgrader "
            f"(`adl-grade rubric {assignment}` prints the rubric) and run the report again.",
            "",
        ]
    for gid, q in questions.items():  # grade ids come from the source notebook, never from a submission
        if q.manual:
            given = [p.points for r in results for p in r.questions if p.grade_id == gid and p.status == GRADED_BY_HAND]
            waiting = sum(1 for status in statuses if status.get(gid) == PENDING)
            mean = f" (mean {sum(given) / len(given):.2f})" if given else ""
            blank = sum(1 for status in statuses if status.get(gid) == "failed")
            lines.append(
                f"| {gid} | {q.max_points:g} | graded by hand: {len(given)} graded{mean}, {waiting} "
                f"awaiting a grade, {blank} not answered or not graded (0) | |"
            )
            continue
        passed = sum(1 for status in statuses if status.get(gid) == "passed")
        partial = sum(1 for status in statuses if status.get(gid) == "partial")  # per-check points: some earned
        some = f" (+{partial} partial)" if partial else ""
        lines.append(f"| {gid} | {q.max_points:g} | {passed}/{len(results)}{some} | {passed / len(results):.0%} |")
    stats = question_statistics(results)
    statistics_plot(stats, outdir / "question_statistics.png", assignment)
    lines += [
        "",
        "## Question statistics",
        "",
        QUESTION_STATISTICS_HELP,
        "",
        "| question | students | difficulty | discrimination | most common reasons for lost points |",
        "|---|---|---|---|---|",
    ]
    for st in stats:
        disc = "n/a" if st["discrimination"] is None else f"{st['discrimination']:.2f}"
        diff = "n/a" if st["difficulty"] is None else f"{st['difficulty']:.2f}"
        why = "; ".join(f"{_md(reason, 160)} ({count})" for reason, count in st["reasons"]) or "none lost"
        lines.append(f"| {st['grade_id']} | {st['n']} | {diff} | {disc} | {why} |")
    lines += _late_section(course, assignment, results)
    lines += [
        "",
        "![question statistics](question_statistics.png)",
        "",
        "## Score distribution",
        "",
        "![score distribution](score_distribution.png)",
        "",
        "## Flagged submissions",
        "",
    ]
    flagged = [r for r in results if r.flags]
    lines += [
        f"- **{_md(r.student, 80)}** ({r.score:g}/{r.max_score:g}): {_md(', '.join(r.flags))}. "
        + " ".join(_md(n.rstrip(".") + ".") for n in r.notes)
        for r in flagged
    ]
    if not flagged:
        lines.append("none")
    (outdir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return outdir / "report.md"
