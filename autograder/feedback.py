"""Feedback for each student: a page per submission, with its rounds and the hidden results held back or shown.

Everything on the page may carry text from a submission (a student id is a folder name the student chose, a note
quotes what the notebook did); Jinja's autoescape makes it inert. The page never shows a hidden test or what one
computed (:func:`autograder.scoring.reason` words every lost point), and while the hidden results are held back
(``hidden_results`` in assignments.yml) it shows neither the score nor which hidden tests failed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib

from autograder import late
from autograder.course import Course, CourseError
from autograder.files import write_json
from autograder.notebook import read_source
from autograder.scoring import QuestionResult, Result


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
    settings = course.settings(result.assignment)
    lt = late.lateness(course, result.assignment, result.student) if settings.due is not None else None
    hidden_shown = hidden_results_shown(settings.hidden_results, lt, now, final)
    penalty = lt.penalty(result.max_score) if lt is not None else 0.0
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(pathlib.Path(__file__).with_name("templates")),
        autoescape=True,
    )
    page = env.get_template("feedback.html.j2").render(
        result=result,
        hidden_shown=hidden_shown,
        public_view={q.grade_id: public_view(q) for q in result.questions},
        lateness=lt.describe() if lt is not None else "",
        penalty=penalty,
        final_score=max(0.0, round(result.score - penalty, 6)),
        released_after=(lt.due.strftime("%Y-%m-%d %H:%M UTC") if lt is not None and lt.due else None),
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


def hidden_results_shown(mode: str, lt: late.Lateness | None, now: datetime.datetime, final: bool = False) -> bool:
    """Whether a feedback page shows the score and why hidden tests failed (see ``hidden_results`` in
    assignments.yml): always; after the student's due date (an extension included); or only once the instructor
    releases them (``final``, ``adl-grade feedback --final``). Hidden test code is never shown in any mode.

    Example:
        >>> hidden_results_shown("after_due", None, datetime.datetime.now(datetime.UTC))  # no due date
        True
    """
    if final or mode == "always":
        return True
    return mode == "after_due" and (lt is None or lt.due is None or now > lt.due)  # no due date: nothing to wait for


def held_back(course: Course, assignment: str, results: list[Result], final: bool = False) -> list[str]:
    """The students whose feedback page, written now, holds back the score and the hidden tests' results."""
    settings = course.settings(assignment)
    if final or settings.hidden_results == "always":
        return []
    now = datetime.datetime.now(datetime.UTC)
    return [
        r.student
        for r in results
        if not hidden_results_shown(
            settings.hidden_results, late.lateness(course, assignment, r.student) if settings.due else None, now
        )
    ]


NO_PUBLIC_FAILURE = "no public check failed"  # the same words whether the hidden tests passed, failed or did not run


def public_view(q: QuestionResult) -> str:
    """What a question's feedback says while hidden results are held back: the public checks' outcome alone. A
    point lost to a public check (the student can run those), to a cell that could not run, or to a notebook
    that could not be graded is named; a point lost to a hidden test is not, and neither are the points."""
    if q.manual:
        return "graded by hand: the grade is shown with the score"
    if q.public_reason is not None:  # a test cell: its failures known to be public, "" for none
        return q.public_reason or NO_PUBLIC_FAILURE
    if q.status in ("passed", "partial") or q.reason.startswith("a hidden test failed"):  # a result cached before
        return NO_PUBLIC_FAILURE
    return q.reason
