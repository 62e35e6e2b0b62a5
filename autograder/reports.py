"""What grading produces for people: feedback for each student, grade exports, the terminal table, the report.

Everything here may carry text from a submission (a student id is a folder name the student chose, a note
quotes what their notebook did), so every string is escaped for where it goes: HTML by Jinja's autoescape,
Markdown by :func:`_md`, the terminal by ``printable``. Feedback never shows a hidden test or what one
computed (:func:`autograder.scoring.reason` words every lost point).
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
import pathlib
import re

from autograder import gradebook
from autograder.course import Course, CourseError
from autograder.files import write_json
from autograder.ingest import printable
from autograder.notebook import read_source
from autograder.question_stats import QUESTION_STATISTICS_HELP, question_statistics, statistics_plot
from autograder.scoring import GRADED_BY_HAND, PENDING, Result


def feedback_rounds(course: Course, assignment: str, student: str) -> list[dict]:
    """The rounds of feedback ``student`` has had on ``assignment``, oldest first: one per different
    submission (``key``, the hash of the submitted notebook), with when it was written, its score and
    whether the feedback was withheld (over the assignment's ``feedback_rounds`` cap)."""
    path = _rounds_file(course, assignment, student)
    try:
        rounds = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise CourseError(
            f"the feedback record {path} is not valid JSON ({exc}); restore it from a backup or "
            "delete it to count this student's rounds from zero"
        ) from None
    return rounds if isinstance(rounds, list) else []


def _submission_key(course: Course, result: Result) -> str:
    """What makes a round: the submitted notebook's bytes (grading the same notebook again, with a newer
    grader say, is the same round), or the result's key where the submission is not on disk."""
    path = course.submitted / result.student / result.assignment / course.settings(result.assignment).notebook
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return result.key


def _rounds_file(course: Course, assignment: str, student: str) -> pathlib.Path:
    return course.build / "feedback_rounds" / assignment / f"{student}.json"


def write_feedback(course: Course, result: Result, final: bool = False) -> pathlib.Path:
    """Per-student HTML: each question's points, the public checks, the reason for each lost point.
    Hidden tests are never included: the public part of each test cell is cut from the source, and the
    reasons hold nothing a hidden test computed (see :func:`autograder.scoring.reason`). A question graded by hand shows as such,
    with its grade or as awaiting one; its source cell (the rubric and the sample answer) is never shown.

    Each different submission a student gets feedback on is a *round*, recorded in
    ``build/feedback_rounds/<assignment>/<student>.json`` (writing the same submission's feedback again is
    the same round). Past the assignment's ``feedback_rounds`` cap the feedback says so and shows neither
    the score nor the questions, so resubmitting cannot be used to probe the hidden tests; ``final=True``
    (after the deadline: ``adl-grade feedback --final``) writes the whole feedback and counts no round."""
    import jinja2

    _, trusted = read_source(course.source_notebook(result.assignment))
    by_id = {c.grade_id: c for c in trusted}
    cap = course.settings(result.assignment).feedback_rounds
    now = datetime.datetime.now(datetime.UTC)
    number, withheld = None, False
    if not final:
        rounds = feedback_rounds(course, result.assignment, result.student)
        keys = [r.get("key") for r in rounds if isinstance(r, dict)]
        key = _submission_key(course, result)
        if key in keys:
            number = keys.index(key) + 1
        else:
            number = len(rounds) + 1
            rounds.append(
                {
                    "key": key,
                    "time": now.isoformat(timespec="seconds"),
                    "score": result.score,
                    "withheld": cap is not None and number > cap,
                }
            )
            path = _rounds_file(course, result.assignment, result.student)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, rounds)
        withheld = cap is not None and number > cap
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(pathlib.Path(__file__).with_name("templates")),
        autoescape=True,
    )
    page = env.get_template("feedback.html.j2").render(
        result=result,
        public={
            q.grade_id: by_id[q.grade_id].public_source.strip() if by_id[q.grade_id].autograded_test else ""
            for q in result.questions
        },
        generated=now.strftime("%Y-%m-%d %H:%M UTC"),
        round=number,
        cap=cap,
        withheld=withheld,
        final=final,
    )
    path = course.feedback / result.student / result.assignment / "feedback.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


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
    path = path or course.build / "grades" / f"{assignment}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    # errors=: a student id that UTF-8 cannot write (a folder made by hand) is written escaped, not a crash
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["student_id", "assignment", *[c.grade_id for c in graded], "score", "max_score", "awaiting_grade"]
        )
        for student in sorted(scores):
            waiting = awaiting.get(student, [])
            row = [scores[student].get(c.grade_id, 0.0) for c in graded]
            shown = ["" if c.grade_id in waiting else value for c, value in zip(graded, row, strict=True)]
            writer.writerow([student, assignment, *shown, sum(row), sum(c.points for c in graded), " ".join(waiting)])
    return path


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
            total = f"{sum(scores[student].values()):g}"
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
        lines.append(f"| {gid} | {q.max_points:g} | {passed}/{len(results)} | {passed / len(results):.0%} |")
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
