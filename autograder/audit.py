"""The audit log: every automatic score the gradebook has held, with when it was recorded and why.

nbgrader's gradebook keeps one score per question; a regrade overwrites it. So each time
:func:`autograder.gradebook.record` changes an automatic score (the first grade included), a row goes to
``build/audit/<assignment>.csv``: when, the student, the question, the score before (empty the first time) and
after, the reason (``autograde``, or ``regrade: <the instructor's words>``) and the result's key (which grader
and which submission gave it). Rows are only ever appended. ``adl-grade export <assignment> --audit`` copies the
log beside the grades.
"""

from __future__ import annotations

import csv
import datetime
import pathlib
import shutil

from autograder.course import Course

COLUMNS = ("time", "student_id", "assignment", "question", "before", "after", "reason", "result_key")
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run a cell that starts so


def log_path(course: Course, assignment: str) -> pathlib.Path:
    return course.build / "audit" / f"{assignment}.csv"


def _cell(value: object) -> str:
    """A student's text made inert for a spreadsheet (OWASP's CSV injection advice: a leading quote)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA) else text


def append(course: Course, assignment: str, rows: list[tuple[str, str, float | None, float, str, str]]) -> None:
    """Append ``(student, question, before, after, reason, key)`` rows, stamped now (UTC)."""
    if not rows:
        return
    path = log_path(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with path.open("a", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(COLUMNS)
        for student, question, before, after, reason, key in rows:
            shown = "" if before is None else f"{before:g}"
            writer.writerow([now, _cell(student), assignment, question, shown, f"{after:g}", _cell(reason), key])


def read(course: Course, assignment: str) -> list[dict[str, str]]:
    """The log's rows, oldest first ([] when nothing was recorded yet)."""
    path = log_path(course, assignment)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def export(course: Course, assignment: str, path: pathlib.Path | None = None) -> pathlib.Path | None:
    """Copy the log to ``path`` (default ``build/grades/<assignment>-audit.csv``); None when there is no log."""
    source = log_path(course, assignment)
    if not source.is_file():
        return None
    path = path or course.build / "grades" / f"{assignment}-audit.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return path
