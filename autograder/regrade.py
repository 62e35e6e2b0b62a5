"""Regrading after a test or grader change: grade again, show who gains and who loses, record only when asked.

:func:`prepare` grades the submissions again (``force``: the cache is not used) without touching the gradebook,
keeping each student's cached result as it was; :func:`changes` and :func:`format_changes` compare the new
results with the last recorded ones, per student and per question; :func:`commit` records them, each changed
score going to the audit log with the instructor's reason (:mod:`autograder.audit`), and :func:`abandon` puts
the cached results back, so a regrade that was not recorded leaves no trace.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

from autograder import audit, gradebook, pipeline
from autograder.course import Course, CourseError
from autograder.ingest import printable
from autograder.scoring import GRADER_FAILED, Result


@dataclasses.dataclass
class Regrade:
    """A regrade in progress: the results last recorded (None: never graded), the new ones, and the cached
    result files' bytes as they were before (None: there was none), to put back if it is abandoned."""

    assignment: str
    before: dict[str, Result | None]
    after: dict[str, Result]
    saved: dict[pathlib.Path, bytes | None]


@dataclasses.dataclass(frozen=True)
class Change:
    student: str
    question: str
    before: float | None
    after: float


def prepare(course: Course, assignment: str, students: list[str] | None = None, workers: int = 2) -> Regrade:
    """Grade ``students`` (default: everyone collected) again, recording nothing."""
    from autograder.ingest import grading_tasks

    tasks = grading_tasks(course, {assignment: students})
    files = {s: course.autograded / s / assignment / "result.json" for _, s in tasks}
    saved = {path: path.read_bytes() if path.is_file() else None for path in files.values()}
    before = {s: Result.read(path) for s, path in files.items()}
    graded = pipeline.autograde_all(
        course, {assignment: [s for _, s in tasks]}, workers, force=True, progress=False, record=False
    )
    return Regrade(assignment, before, {r.student: r for r in graded[assignment]}, saved)


def changes(regrade: Regrade) -> list[Change]:
    """Each automatically graded question whose points differ between the last recorded result and the new one
    (a question graded by hand keeps its grade in the gradebook and is never compared)."""
    out = []
    for student, new in regrade.after.items():
        if GRADER_FAILED in new.flags:  # not graded: no change to show (see format_changes)
            continue
        old = regrade.before.get(student)
        old_points = {q.grade_id: q.points for q in old.questions if not q.manual} if old else {}
        for q in new.questions:
            if q.manual:
                continue
            previous = old_points.get(q.grade_id)
            if previous != q.points:
                out.append(Change(student, q.grade_id, previous, q.points))
    return out


def format_changes(regrade: Regrade) -> str:
    """The before/after table for the terminal: one row per student whose score changes (who gains, who loses,
    by question), then how many gain, lose or stay, and the net change per question."""
    found = changes(regrade)
    failed = [s for s, r in regrade.after.items() if GRADER_FAILED in r.flags]
    tail = (
        [f"the grader failed on: {', '.join(printable(s) for s in failed)} (they keep their recorded scores)"]
        if failed
        else []
    )
    if not found:
        return "\n".join(
            [f"regrade {regrade.assignment}: {len(regrade.after)} submissions graded again, no score changes.", *tail]
        )
    by_student: dict[str, list[Change]] = {}
    for c in found:
        by_student.setdefault(c.student, []).append(c)
    width = max(len("student"), *(len(printable(s, limit=40)) for s in by_student))
    lines = [f"{'student':<{width}}  {'before':>7} {'after':>7} {'change':>7}  questions"]
    gains = losses = 0
    for student, cs in by_student.items():
        delta = sum(c.after - (c.before or 0.0) for c in cs)
        gains, losses = gains + (delta > 0), losses + (delta < 0)
        old = regrade.before.get(student)
        before = f"{old.score:g}" if old else "-"
        after = regrade.after[student].score
        what = ", ".join(f"{c.question} {'-' if c.before is None else f'{c.before:g}'}->{c.after:g}" for c in cs)
        lines.append(f"{printable(student, limit=40):<{width}}  {before:>7} {after:>7g} {delta:>+7g}  {what}")
    net: dict[str, float] = {}
    for c in found:
        net[c.question] = net.get(c.question, 0.0) + c.after - (c.before or 0.0)
    unchanged = len(regrade.after) - len(by_student) - len(failed)
    same = len(by_student) - gains - losses
    moved = f", {same} with the same score from other questions" if same else ""
    lines.append(f"{gains} gain, {losses} lose{moved}, {unchanged} unchanged")
    lines.append("net change by question: " + ", ".join(f"{q} {v:+g}" for q, v in net.items()))
    return "\n".join(lines + tail)


def commit(course: Course, regrade: Regrade, reason: str) -> int:
    """Record every new result (changed scores go to the audit log as ``regrade: <reason>``); the number of
    students whose score changed. A result the grader failed on is not recorded: its student keeps the old one."""
    changed = {c.student for c in changes(regrade)}
    for result in regrade.after.values():
        if GRADER_FAILED in result.flags:
            continue
        gradebook.record(course, result, reason=f"regrade: {reason}")
    return len(changed)


def abandon(regrade: Regrade) -> None:
    """Put the cached results back as they were before :func:`prepare`."""
    for path, data in regrade.saved.items():
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)


def run(args, course: Course) -> int:
    """Grade again, show the before/after table, and record only when the instructor says so."""
    from autograder.cli import _finish, _grader_failures  # the command line's own reporting (cli imports us lazily)

    if not args.reason.strip():
        raise CourseError("regrade: --reason must say why (it goes to the audit log with every changed score)")
    prepared = prepare(course, args.assignment, args.student or None, args.workers)
    print(format_changes(prepared))
    if not changes(prepared):
        return _finish(_grader_failures(list(prepared.after.values())))
    if args.dry_run:
        answer = "n"
    elif args.yes:
        answer = "y"
    elif sys.stdin.isatty():
        answer = input("Record these scores in the gradebook (the earlier ones stay in the audit log)? [y/N] ")
    else:
        print("  not a terminal to ask in: run again with --yes to record these scores")
        answer = "n"
    if answer.strip().lower() not in ("y", "yes"):
        abandon(prepared)
        print("  nothing recorded: the gradebook and the cached results are as they were")
        return 0
    changed = commit(course, prepared, args.reason.strip())
    print(
        f"  recorded: {changed} student{'s' if changed != 1 else ''} changed; the earlier scores are in "
        f"{audit.log_path(course, args.assignment).relative_to(course.root)} (adl-grade export {args.assignment} --audit)"
    )
    return _finish(_grader_failures(list(prepared.after.values())))
