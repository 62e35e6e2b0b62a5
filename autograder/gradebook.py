"""nbgrader's gradebook: the only module that opens it (``nbgrader.api``).

:func:`record` writes a result as nbgrader's own autograde would, so the formgrader lists the submission as
graded with the same scores; :func:`scores` and :func:`awaiting` read back what the gradebook (and so the
formgrader, with its manual scores and extra credit) counts.
"""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
import sys
import warnings

from nbgrader.api import Gradebook, MissingEntry

from autograder import audit, late
from autograder.course import Course
from autograder.scoring import AWAITS, GRADED_BY_HAND, PENDING, Result

log = logging.getLogger(__name__)


def tools_on_path() -> None:
    """nbgrader runs the ``alembic`` command by name; make this interpreter's scripts findable."""
    bindir = str(pathlib.Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def record(course: Course, result: Result, reason: str = "autograde") -> None:
    """Write one result into nbgrader's gradebook (idempotent: the same result twice gives the same rows).

    What the formgrader needs to show it as graded: the submission's time stamp, the one ``collect`` wrote to
    ``submitted/<student>/<assignment>/timestamp.txt``, read as nbgrader reads it (it lists a submission as
    "needs autograding" while the two differ). The formgrader's own edits stay: a manual score, extra credit
    and comments are never written here. As in nbgrader's autograde, a manually scored question is flagged
    for review (``needs_manual_grade``) when its automatic score changes; a question graded by hand needs a
    grade until it has a manual score, and again (for review) when the student hands in a new submission after
    it was graded. Each automatic score that changes (the first one included) is appended to the audit log with
    ``reason`` (:mod:`autograder.audit`).

    A question graded by hand comes back from here as the gradebook has it: GRADED_BY_HAND with the manual score
    (plus extra credit) once the formgrader has one, else PENDING; so the printed grades, the feedback and the
    report count a hand grade as soon as it exists.
    """
    import sqlalchemy.exc
    from nbgrader.utils import parse_utc

    tools_on_path()
    notebook = course.settings(result.assignment).notebook.removesuffix(".ipynb")
    stamp_file = course.submitted / result.student / result.assignment / "timestamp.txt"
    stamp = None
    if stamp_file.is_file():
        try:
            stamp = parse_utc(stamp_file.read_text().strip())
        except (ValueError, OverflowError) as exc:  # the formgrader cannot read it either
            log.warning("%s: unreadable time stamp (%s); recorded without one", stamp_file, exc)
    with warnings.catch_warnings(), Gradebook(course.db_url, course_id=course.course_id) as gb:
        # nbgrader's own session use makes SQLAlchemy warn about autoflush; the rows are written correctly.
        warnings.simplefilter("ignore", category=sqlalchemy.exc.SAWarning)
        gb.update_or_create_student(result.student)
        try:
            before = gb.find_submission(result.assignment, result.student).timestamp
        except MissingEntry:
            before = None
        resubmitted = None not in (before, stamp) and before != stamp
        gb.update_or_create_submission(result.assignment, result.student, timestamp=stamp)
        history: list[tuple] = []
        for q in result.questions:
            grade = gb.find_grade(q.grade_id, notebook, result.assignment, result.student)
            if q.manual and q.status in (PENDING, GRADED_BY_HAND):
                grade.auto_score = None
                grade.needs_manual_grade = grade.manual_score is None or grade.needs_manual_grade or resubmitted
                if grade.manual_score is None:
                    q.points, q.status, q.reason = 0.0, PENDING, AWAITS
                else:
                    q.points = float(grade.manual_score) + float(grade.extra_credit or 0.0)
                    q.status, q.reason = GRADED_BY_HAND, ""
            elif q.status == "not graded":
                grade.auto_score = None
                grade.needs_manual_grade = grade.manual_score is None
            else:
                changed = grade.auto_score != q.points
                if changed:
                    history.append((result.student, q.grade_id, grade.auto_score, q.points, reason, result.key))
                grade.auto_score = q.points
                grade.needs_manual_grade = grade.manual_score is not None and (grade.needs_manual_grade or changed)
        if course.settings(result.assignment).due is not None:
            roster = {s.id for s in gb.students}
            _write_late(
                gb, course, result.assignment, late.all_lateness(course, result.assignment, [result.student], roster)
            )
        gb.db.commit()
    audit.append(course, result.assignment, history)  # after the commit: the log never claims what was not kept


def record_lateness(course: Course, assignment: str, lateness: dict[str, late.Lateness]) -> None:
    """Write the due date, each student's extension and late penalty where nbgrader keeps them (see
    :mod:`autograder.late`); submissions not in the gradebook are left alone."""
    tools_on_path()
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        _write_late(gb, course, assignment, lateness)
        gb.db.commit()


def _write_late(gb: Gradebook, course: Course, assignment: str, lateness: dict[str, late.Lateness]) -> None:
    """The assignment's due date (naive UTC, as nbgrader stores times), and per submission the extension (the
    student's due date less the assignment's) and the penalty in points (``late_submission_penalty``, taken
    off the raw score by nbgrader's export and ours alike)."""
    due = course.settings(assignment).due
    gb.find_assignment(assignment).duedate = _naive(due)
    max_score = late.max_score(course, assignment)
    for student, lt in lateness.items():
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            continue
        sub.extension = lt.due - due if lt.extended and lt.due is not None and due is not None else None
        for nb in sub.notebooks:
            nb.late_submission_penalty = lt.penalty(max_score) if lt.penalty_share else None


def _naive(moment):
    return None if moment is None else moment.astimezone(datetime.UTC).replace(tzinfo=None)


def penalties(course: Course, assignment: str) -> dict[str, float]:
    """{student: late penalty in points} as the gradebook holds them (0.0 for none)."""
    tools_on_path()
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        try:
            return {
                s.student.id: float(s.late_submission_penalty or 0.0) for s in gb.assignment_submissions(assignment)
            }
        except MissingEntry:
            return {}


def students(course: Course) -> list[str]:
    """The ids in the gradebook's student table (nbgrader's roster: ``nbgrader db student add`` or a graded
    submission put them there); [] when there is no gradebook yet."""
    if course.db_url.startswith("sqlite:///") and not pathlib.Path(course.db_url.removeprefix("sqlite:///")).is_file():
        return []
    tools_on_path()
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        return [s.id for s in gb.students]


def scores(course: Course, assignment: str) -> dict[str, dict[str, float]]:
    """{student: {grade_id: score}} as the gradebook (and the formgrader) counts them: a manual score over the
    automatic one, plus extra credit."""
    out: dict[str, dict[str, float]] = {}
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        for sub in gb.assignment_submissions(assignment):
            scores = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    scores[grade.name] = float(grade.score)
            out[sub.student.id] = scores
    return out


def awaiting(course: Course, assignment: str) -> dict[str, list[str]]:
    """{student: [grade_id, ...]}: the questions of each submission that have no score at all in the gradebook
    (neither automatic nor manual: a question graded by hand that the formgrader has not scored yet), so the
    student's total is provisional. Students with none are left out; ``{}`` for an assignment not recorded."""
    tools_on_path()  # a new gradebook runs nbgrader's alembic by name
    out: dict[str, list[str]] = {}
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        try:
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            return {}
        for sub in submissions:
            waiting = [
                grade.name
                for nb in sub.notebooks
                for grade in nb.grades
                if grade.auto_score is None and grade.manual_score is None
            ]
            if waiting:
                out[sub.student.id] = waiting
    return out
