"""Late submissions: the due dates, the late policy of each assignment, extensions and the course's late days.

Everything is set in the course's settings file (``assignments.yml``), read once with the course:

- per assignment (or under ``defaults:``): ``due`` (an ISO 8601 time; without a time zone, UTC) and
  ``late_policy``, a mapping with ``grace`` (a duration such as ``15m``: a submission this little after the
  due date is on time), exactly one of ``per_day`` or ``per_hour`` (the penalty per day or hour late, begun
  days or hours counted whole, as a share of the assignment's maximum score: ``10%``), ``cap`` (the most the
  penalty may take, ``50%``; default ``100%``) and ``late_days`` (``true``: this assignment may use the
  student's late days);
- at the top level: ``late_days`` (whole days of lateness each student may use without penalty, across the
  course) and ``extensions``, one line each: ``hw1/s03_carol: 2d`` (the due date moved by a duration) or
  ``hw1/s03_carol: 2026-10-03T23:59`` (a new due date).

:func:`lateness` works out one submission's penalty from the time stamp ``collect`` wrote; late days are used
in the order of the assignments' due dates, so a student's penalty never depends on the order of grading.
The penalty is recorded where nbgrader keeps it (``late_submission_penalty`` of the submitted notebook, with
the due date on the assignment and the extension on the submission), so the formgrader and ``nbgrader export``
agree with ``adl-grade export``; the raw score stays as graded.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re

from autograder.course import Course, CourseError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*\Z")
PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*\Z")
POLICY_KEYS = {"grace", "per_day", "per_hour", "cap", "late_days"}
DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class LatePolicy:
    """How an assignment's late submissions lose points.

    Args:
        grace: seconds after the due date that still count as on time.
        per_unit: the share of the maximum score lost per begun ``unit`` late (0.1: 10%).
        unit: seconds in the unit the penalty is counted in (86400: a day, 3600: an hour).
        cap: the largest share of the maximum score the penalty may take.
        late_days: whether the student's late days may cover lateness in this assignment.

    Example:
        >>> LatePolicy(per_unit=0.1, cap=0.5).penalty_share(3 * DAY + 1)
        0.4
    """

    grace: float = 0.0
    per_unit: float = 0.0
    unit: float = DAY
    cap: float = 1.0
    late_days: bool = False

    def units(self, seconds_late: float) -> int:
        """Begun units of lateness that count: 0 within the grace period, else counted from the due date."""
        if seconds_late <= self.grace or seconds_late <= 0:
            return 0
        return math.ceil(seconds_late / self.unit)

    def penalty_share(self, seconds_late: float) -> float:
        return round(min(self.cap, self.per_unit * self.units(seconds_late)), 10)


@dataclasses.dataclass(frozen=True)
class Lateness:
    """One submission's lateness and what it costs.

    ``seconds_late`` counts from the student's due date (an extension included); ``late_days_used`` of the
    student's course late days covered part of it; ``penalty`` is in points, never more than the raw score.
    """

    student: str
    assignment: str
    due: datetime.datetime | None
    submitted: datetime.datetime | None
    seconds_late: float = 0.0
    late_days_used: int = 0
    penalty_share: float = 0.0
    extended: bool = False

    def penalty(self, max_score: float) -> float:
        """Points taken off the raw score (never below 0: the final score is ``max(0, raw - penalty)``, as in
        nbgrader's export)."""
        return round(self.penalty_share * max_score, 6)

    def describe(self) -> str:
        """One line for a student or an instructor: how late, late days used, the share lost."""
        if self.due is None or self.submitted is None:
            return ""
        if self.seconds_late <= 0:
            return "on time"
        parts = [f"{_span(self.seconds_late)} late"]
        if self.extended:
            parts[0] += " (after the extended due date)"
        if self.late_days_used:
            parts.append(f"{self.late_days_used} late day{'s' if self.late_days_used != 1 else ''} used")
        parts.append(f"penalty {self.penalty_share:.0%} of the maximum score" if self.penalty_share else "no penalty")
        return ", ".join(parts)


def _span(seconds: float) -> str:
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} min"
    if seconds < DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} days"


def parse_duration(value: object, where: str) -> float:
    """Seconds in ``15m``, ``36h``, ``2d``, ``1w`` or a number of seconds; CourseError naming ``where`` else."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise CourseError(f"{where}: expected a duration such as 15m, 36h or 2d, got {value!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_share(value: object, where: str) -> float:
    """0.1 for ``10%``; CourseError naming ``where`` for anything else (a bare number is ambiguous)."""
    m = PERCENT.match(value) if isinstance(value, str) else None
    if not m or float(m.group(1)) > 100:
        raise CourseError(f"{where}: expected a percentage from 0% to 100% such as 10%, got {value!r}")
    return float(m.group(1)) / 100


def parse_time(value: object, where: str) -> datetime.datetime:
    """An aware datetime from an ISO 8601 time (YAML may have parsed it already); UTC when no zone is given."""
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        try:
            parsed = datetime.datetime.fromisoformat(value.strip())  # type: ignore[attr-defined]
        except (ValueError, AttributeError):
            raise CourseError(f"{where}: expected an ISO 8601 time such as 2026-10-01T23:59, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def parse_policy(raw: object, where: str) -> LatePolicy | None:
    """The ``late_policy`` mapping of an assignment, checked; None when there is none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CourseError(f"{where}: late_policy must be a mapping such as {{per_day: 10%, cap: 50%}}, got {raw!r}")
    unknown = sorted(set(raw) - POLICY_KEYS)
    if unknown:
        raise CourseError(f"{where}: unknown late_policy key(s) {unknown}; known: {sorted(POLICY_KEYS)}")
    if ("per_day" in raw) == ("per_hour" in raw):
        raise CourseError(f"{where}: late_policy needs exactly one of per_day or per_hour (e.g. per_day: 10%)")
    unit = DAY if "per_day" in raw else 3600.0
    per = parse_share(
        raw.get("per_day", raw.get("per_hour")), f"{where}: late_policy.per_{'day' if unit == DAY else 'hour'}"
    )
    late_days = raw.get("late_days", False)
    if not isinstance(late_days, bool):
        raise CourseError(f"{where}: late_policy.late_days must be true or false, got {late_days!r}")
    return LatePolicy(
        grace=parse_duration(raw.get("grace", 0), f"{where}: late_policy.grace"),
        per_unit=per,
        unit=unit,
        cap=parse_share(raw.get("cap", "100%"), f"{where}: late_policy.cap"),
        late_days=late_days,
    )


def course_late_days(course: Course) -> int:
    """The late days each student has across the course (top-level ``late_days``; 0 when unset)."""
    value = course.settings_doc.get("late_days", 0) or 0
    if type(value) is not int or value < 0:
        raise CourseError(
            f"{course.settings_file}: late_days must be a whole number of days (0 or more), got {value!r}"
        )
    return value


def extensions(course: Course, roster: set[str] | None = None) -> dict[tuple[str, str], object]:
    """{(assignment, student): a duration in seconds or a new due date}, from the top-level ``extensions:``.

    Every entry is checked against the course: an unknown assignment, or a student who has neither a collected
    submission of the assignment nor a row in the gradebook, is a CourseError naming the line, so a typo never
    silently leaves a student without their extension. ``roster``: the gradebook's students, when the caller
    has the gradebook open already."""
    raw = course.settings_doc.get("extensions") or {}
    where = f"{course.settings_file}: extensions"
    if not isinstance(raw, dict):
        raise CourseError(f"{where} must be a mapping, one line each such as 'hw1/s03_carol: 2d'")
    out: dict[tuple[str, str], object] = {}
    for key, value in raw.items():
        assignment, _, student = str(key).partition("/")
        if not student:
            raise CourseError(f"{where}: {key!r} must be <assignment>/<student>, such as hw1/s03_carol")
        if assignment not in course.assignments():
            raise CourseError(f"{where}: {key!r} names an unknown assignment; the course has {course.assignments()}")
        if student not in known_students(course, assignment, roster):
            raise CourseError(
                f"{where}: {key!r} names a student with no submission of {assignment} and no row in the "
                "gradebook: check the id (it is the student id of the submission's file name)"
            )
        line = f"{where}: {key}"
        if isinstance(value, str) and DURATION.match(value) or isinstance(value, int | float):
            out[assignment, student] = parse_duration(value, line)
        else:
            out[assignment, student] = parse_time(value, line)
    return out


def known_students(course: Course, assignment: str, roster: set[str] | None = None) -> set[str]:
    """Students with a collected submission of ``assignment``, or in the gradebook's student table (``roster``,
    read from the gradebook when not given)."""
    from autograder.gradebook import students
    from autograder.ingest import submitted_students

    submitted = set(submitted_students(course, assignment))
    return submitted | (roster if roster is not None else set(students(course)))


def submitted_at(course: Course, assignment: str, student: str) -> datetime.datetime | None:
    """The time stamp ``collect`` wrote for the submission, as nbgrader reads it; None if it has none."""
    from nbgrader.utils import parse_utc

    path = course.submitted / student / assignment / "timestamp.txt"
    try:
        moment = parse_utc(path.read_text().strip())
    except (OSError, ValueError, OverflowError):
        return None
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment


def max_score(course: Course, assignment: str) -> float:
    """The assignment's maximum score: the points of its graded cells in the source notebook."""
    from autograder.notebook import read_source

    _, trusted = read_source(course.source_notebook(assignment))
    return float(sum(c.points for c in trusted if c.grade))


def all_lateness(course: Course, assignment: str, students: list[str], roster: set[str] | None = None) -> dict:
    """{student: :class:`Lateness`} for ``students``, the extensions read and checked once for all of them."""
    if course.settings(assignment).due is None:
        return {s: lateness(course, assignment, s) for s in students}
    ext = extensions(course, roster)
    return {s: lateness(course, assignment, s, ext=ext) for s in students}


def due_date(course: Course, assignment: str) -> datetime.datetime | None:
    return course.settings(assignment).due


def lateness(
    course: Course, assignment: str, student: str, roster: set[str] | None = None, ext: dict | None = None
) -> Lateness:
    """``student``'s lateness on ``assignment``, late days used on the assignments due before it counted first.
    ``roster``: see :func:`extensions`; ``ext``: the extensions, when the caller has read them already."""
    if course.settings(assignment).due is None:
        return Lateness(student, assignment, None, submitted_at(course, assignment, student))
    if ext is None:
        ext = extensions(course, roster)
    left = course_late_days(course)
    dated = sorted(
        (s.due, a, s.late_policy or LatePolicy()) for a in course.assignments() if (s := course.settings(a)).due
    )
    for due, a, policy in dated:
        extension = ext.get((a, student))
        if isinstance(extension, float):
            due = due + datetime.timedelta(seconds=extension)
        elif isinstance(extension, datetime.datetime):
            due = extension
        stamp = submitted_at(course, a, student)
        late = max(0.0, (stamp - due).total_seconds()) if stamp is not None else 0.0
        used = 0
        if late > policy.grace and policy.late_days and left:  # whole days, as few as cover it with the grace
            used = min(left, math.ceil((late - policy.grace) / DAY))
            left -= used
        share = policy.penalty_share(late - used * DAY)
        if a == assignment:
            return Lateness(student, a, due, stamp, late, used, share, extension is not None)
    raise AssertionError("unreachable: the assignment is in the dated list")
