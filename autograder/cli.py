"""``adl-grade``: the instructor's command line. ``adl-grade --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import datetime
import logging
import pathlib
import sys

from autograder import audit, gradebook, ingest, pipeline, preflight, reports, scoring, similarity
from autograder.course import CourseError, load_course
from autograder.ingest import printable

log = logging.getLogger(__name__)


def _assignments(course, names):
    known = course.assignments()
    for name in names or known:
        if name not in known:
            raise CourseError(f"unknown assignment {name!r}; the course has {known}")
    return names or known


def cmd_release(args, course):
    for a in _assignments(course, args.assignments):
        path = pipeline.release(course, a)
        print(f"released {a}: {path.relative_to(course.root)}")


def cmd_collect(args, course):
    due = None
    if args.due:
        due = datetime.datetime.fromisoformat(args.due)
        due = due if due.tzinfo else due.replace(tzinfo=datetime.UTC)
    got = pipeline.collect(course, args.assignment, pathlib.Path(args.download), args.pattern, due=due)
    print(f"collected {len(got.accepted)} submissions of {args.assignment} into {course.submitted}")
    _print_rejected(got.rejected)
    late = got.late
    if due is None and course.settings(args.assignment).due is not None:  # the settings' due date, extensions too
        from autograder import late as lateness

        worked_out = lateness.all_lateness(course, args.assignment, sorted(got.accepted))
        late = [s for s, lt in worked_out.items() if lt.seconds_late > 0]
        for s in late:
            print(f"  late: {printable(s)}: {worked_out[s].describe()}")
    elif late:
        print(f"  late: {', '.join(printable(s) for s in late)}")


def _print_rejected(rejected) -> None:
    """The refused files with their reasons; both hold the student's file names (see ``printable``)."""
    for name, reason in rejected:
        print(f"  rejected {printable(name)}: {printable(reason, limit=400)}")


def _print_sandbox(course, assignment):
    for line in preflight.sandbox_summary(course, assignment):
        print(f"  sandbox: {line}")


def cmd_autograde(args, course):
    batches = {a: args.student or None for a in args.assignment}
    ingest.grading_tasks(course, batches)  # refuse before printing anything
    for a in batches:
        if len(batches) > 1:
            print(f"  {a}:")
        _print_sandbox(course, a)
    graded = pipeline.autograde_all(course, batches, args.workers, args.force, dask=args.dask)
    for a, results in graded.items():
        if len(graded) > 1:
            print(f"== {a}")
        print(reports.format_table(results))
    return _finish(_grader_failures([r for results in graded.values() for r in results]))


def _grader_failures(results) -> list[str]:
    """``assignment/student: reason`` for each submission the grader itself failed on (see scoring.failed)."""
    return [
        f"{r.assignment}/{printable(r.student)}: {printable(r.notes[0] if r.notes else '', limit=400)}"
        for r in results
        if scoring.GRADER_FAILED in r.flags
    ]


def _for_each(results, what: str, action) -> list[str]:
    """``action(result)`` for each result, whatever one of them raises: the traceback is logged, the student
    listed (``assignment/student: what failed``), and the others go on."""
    failed = []
    for r in results:
        try:
            action(r)
        except Exception as exc:  # noqa: BLE001 - one student's file must not cost the others theirs
            log.exception("%s/%s: could not write the %s", r.assignment, printable(r.student), what)
            failed.append(
                f"{r.assignment}/{printable(r.student)}: could not write the {what} "
                f"({printable(f'{type(exc).__name__}: {exc}', limit=300)})"
            )
    return failed


def _finish(failed: list[str]) -> int:
    """Exit status 0, or 1 after naming the submissions the grader failed on (everything else is done)."""
    if not failed:
        return 0
    print(
        f"adl-grade: error: the grader failed on {len(failed)} submission{'s' if len(failed) > 1 else ''} "
        "(not the students' doing; everyone else is done):",
        file=sys.stderr,
    )
    for line in failed:
        print(f"  {line}", file=sys.stderr)
    print(
        "  The tracebacks are in the log above. Fix the cause and run the command again: finished submissions "
        "are not graded again.",
        file=sys.stderr,
    )
    return 1


def cmd_feedback(args, course):
    results = pipeline.autograde(course, args.assignment, workers=args.workers, progress=False)
    graded = [r for r in results if scoring.GRADER_FAILED not in r.flags]  # no feedback on a grader's failure
    unwritten = _for_each(graded, "feedback", lambda r: reports.write_feedback(course, r, final=args.final))
    print(f"wrote feedback for {len(graded) - len(unwritten)} students under {course.feedback}")
    cap = course.settings(args.assignment).feedback_rounds
    if cap is not None and not args.final:
        held = [
            r.student
            for r in results
            if (rounds := reports.feedback_rounds(course, args.assignment, r.student)) and rounds[-1].get("withheld")
        ]
        print(
            f"  feedback rounds: at most {cap} per student (assignments.yml); withheld past the cap for "
            f"{len(held)}: {', '.join(printable(s) for s in held) or 'nobody'}. After the deadline: "
            f"adl-grade feedback {args.assignment} --final"
        )
    _print_held_back(course, args.assignment, graded, args.final)
    return _finish(_grader_failures(results) + unwritten)


def _print_held_back(course, assignment: str, graded, final: bool) -> None:
    """Name how many pages hold back the score and the hidden tests' results (``hidden_results``)."""
    from autograder.feedback import held_back

    held, mode = held_back(course, assignment, graded, final), course.settings(assignment).hidden_results
    if held:
        when = "after each student's due date" if mode == "after_due" else "when you release them"
        print(
            f"  hidden results held back for {len(held)} (hidden_results: {mode}): their pages show the public "
            f"checks alone, the score and the hidden tests' results {when}; write the pages again then "
            f"(adl-grade feedback {assignment}), or release them now: adl-grade feedback {assignment} --final"
        )


def cmd_export(args, course):
    output = pathlib.Path(args.output) if args.output else None
    if args.canvas:
        path, unknown = reports.export_canvas(
            course, args.assignment, output, pathlib.Path(args.roster) if args.roster else None, args.column
        )
        print(f"wrote {path} (Canvas: Grades > Import)")
        if unknown:
            print(f"  not in the roster, left out: {', '.join(printable(s) for s in unknown)}")
    else:
        path = reports.export_csv(course, args.assignment, output)
        print(f"wrote {path}")
    if args.audit:
        log = audit.export(course, args.assignment)
        print(f"wrote {log}" if log else f"  no audit log for {args.assignment} yet: nothing was recorded")
    _print_awaiting(course, args.assignment)


def _print_awaiting(course, assignment: str) -> None:
    """Name the students whose total is provisional: questions graded by hand without a grade yet."""
    from autograder import rubric

    if not rubric.manual_questions(course.source_notebook(assignment)):
        return
    awaiting = gradebook.awaiting(course, assignment)
    if not awaiting:
        return
    shown = "; ".join(f"{printable(s)} ({', '.join(q)})" for s, q in sorted(awaiting.items())[:20])
    more = f" and {len(awaiting) - 20} more" if len(awaiting) > 20 else ""
    print(
        f"  provisional: {len(awaiting)} student{'s' if len(awaiting) != 1 else ''} with questions awaiting a grade "
        f"by hand, counted as 0: {shown}{more}. Grade them in the formgrader (adl-grade rubric {assignment}) "
        "and export again."
    )


def cmd_rubric(args, course):
    from autograder import rubric

    if args.assignment not in course.assignments():
        raise CourseError(f"unknown assignment {args.assignment!r}; the course has {course.assignments()}")
    try:
        questions = rubric.check(course.source_notebook(args.assignment))
    except rubric.RubricError as exc:
        raise CourseError(str(exc)) from None
    text = rubric.render(args.assignment, questions)
    if args.output:
        pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {len(questions)} questions graded by hand (for graders only: do not share)")
    else:
        print(text)


def cmd_regrade(args, course):
    from autograder.regrade import run  # the regrade's command line, with its question to the instructor

    return run(args, course)


def cmd_send_feedback(args, course):
    """Email each student their feedback page (autograder/mail.py); 1 if the server refused any message."""
    from autograder import mail

    report = mail.send_feedback(course, args.assignment, args.student, dry_run=args.dry_run, resend=args.resend)
    for line in mail.format_report(report):
        print(line)
    if report.failed:
        print(
            f"adl-grade: error: {len(report.failed)} message(s) not sent (FAILED above) and not recorded; the "
            f"others are. Fix the cause and run adl-grade send-feedback {args.assignment} again: it sends only those",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_similarity(args, course):
    report = similarity.screen(
        course, args.assignment, pathlib.Path(args.download) if args.download else None, args.threshold
    )
    paths = similarity.write_report(course, report)
    print("\n".join(similarity.summary(report, paths, top=args.top)))


def cmd_report(args, course):
    results = pipeline.autograde(course, args.assignment, workers=args.workers, progress=False)
    print(f"wrote {reports.write_report(course, args.assignment, results)}")
    return _finish(_grader_failures(results))


def cmd_demo(args, course):
    from autograder.demo import demo  # the demo's imports are the whole pipeline's: loaded when run

    return demo(args, course)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adl-grade", description=__doc__)
    parser.add_argument("--course", default=None, help="course kit folder (default: this checkout)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate release/ from source/ with nbgrader")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("collect", help="copy an LMS download (.zip or folder) into submitted/")
    p.add_argument("assignment")
    p.add_argument("download", help="the LMS zip, or a folder of <student_id>_<assignment>.ipynb files")
    p.add_argument("--pattern", help="regex with a (?P<student_id>...) group (and optionally (?P<timestamp>...))")
    p.add_argument(
        "--due",
        help="due date, ISO 8601 (e.g. 2026-10-01T23:59; default: the assignment's due in assignments.yml); "
        "later submissions are listed as late",
    )
    p.set_defaults(func=cmd_collect)

    for name, func, text in [
        ("autograde", cmd_autograde, "grade collected submissions into the gradebook"),
        ("feedback", cmd_feedback, "write per-student HTML feedback"),
        ("report", cmd_report, "write the report (pass rates, score distribution, flags)"),
    ]:
        p = sub.add_parser(name, help=text)
        if name == "autograde":
            p.add_argument("assignment", nargs="+", help="one or more: their submissions share one queue")
        else:
            p.add_argument("assignment")
        p.add_argument("--workers", type=int, default=2)
        if name == "feedback":
            p.add_argument(
                "--final",
                action="store_true",
                help="after the deadline: full feedback for everyone, hidden results released, past any "
                "feedback_rounds cap (counts no round)",
            )
        if name == "autograde":
            p.add_argument("--student", action="append", help="grade only this student (repeatable)")
            p.add_argument("--force", action="store_true", help="grade again even if nothing changed")
            p.add_argument(
                "--dask",
                metavar="SCHEDULER_ADDRESS",
                help="grade on a Dask distributed cluster (workers must share the course folder)",
            )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "send-feedback", help="email each student their feedback page (the email: section of assignments.yml)"
    )
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="connect to nothing: write the messages to build/mail/<assignment>/outbox/ and list them",
    )
    p.add_argument("--resend", action="store_true", help="send again the pages that were sent already")
    p.set_defaults(func=cmd_send_feedback)

    p = sub.add_parser(
        "similarity",
        help="screen the answers for pairs of students who share code (it screens, it does not judge)",
    )
    p.add_argument("assignment")
    p.add_argument(
        "--download", help="screen an LMS download (.zip or folder) instead of submitted/, without collecting it"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=similarity.THRESHOLD,
        help=f"flag pairs at or above this similarity, 0 to 1 (default {similarity.THRESHOLD})",
    )
    p.add_argument("--top", type=int, default=10, help="pairs to print (the report lists 100, pairs.csv all)")
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser(
        "regrade",
        help="after a test or grader change: grade again, show who gains and who loses, record when confirmed",
    )
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="regrade only this student (repeatable)")
    p.add_argument("--reason", required=True, help="why (kept in the audit log with every changed score)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--yes", action="store_true", help="record without asking")
    p.add_argument("--dry-run", action="store_true", help="show the changes and record nothing")
    p.set_defaults(func=cmd_regrade)

    p = sub.add_parser("export", help="write grades from the gradebook as CSV")
    p.add_argument("assignment")
    p.add_argument("--output", help="CSV path (default build/grades/<assignment>.csv or <assignment>-canvas.csv)")
    p.add_argument("--canvas", action="store_true", help="write the CSV that Canvas' gradebook imports")
    p.add_argument("--roster", help="a Canvas gradebook export: identity columns are copied from it")
    p.add_argument("--column", help="the assignment's column name in Canvas, e.g. 'hw1 (12345)'")
    p.add_argument(
        "--audit", action="store_true", help="also copy the audit log (every earlier score) to <assignment>-audit.csv"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "rubric",
        help="print the prompt, points, rubric and sample answer of each question graded "
        "by hand (from source/: for graders only)",
    )
    p.add_argument("assignment")
    p.add_argument("--output", help="write it to this Markdown file instead (keep it out of anything students get)")
    p.set_defaults(func=cmd_rubric)

    p = sub.add_parser("demo", help="release, then grade the bundled sample class end to end")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--force", action="store_true", help="grade again even if nothing changed")
    p.add_argument(
        "--all-cases",
        action="store_true",
        help="hw2 on: grade every one-mistake student too (default: the two students with several mistakes)",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Tracebacks of a submission the grader failed on go to stderr (a no-op where logging is set up already)
    logging.basicConfig(level=logging.WARNING, format="adl-grade: %(levelname)s: %(message)s")
    try:
        course = load_course(args.course)
        return args.func(args, course) or 0  # commands that grade return 1 if the grader failed on anyone
    except CourseError as exc:
        print(f"adl-grade: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
