"""``adl-grade demo``: release every assignment, then collect, grade and report the bundled sample classes.

What ``make demo`` runs, on the embedded defaults: each step as an instructor would run it (see
:mod:`autograder.cli`), its output and its time printed, and every grade compared with the sample class's
``expected.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import pathlib
import time

from autograder import pipeline, preflight, reports, scoring
from autograder.cli import _finish, _for_each, _grader_failures, _print_rejected, _print_sandbox
from autograder.expected import compare_with_expected, extra_cases, needs_sandbox
from autograder.ingest import printable

SAMPLES = pathlib.Path(__file__).with_name("samples")


@contextlib.contextmanager
def timed(label: str):
    """Print how long the block took."""
    start = time.perf_counter()
    try:
        yield
    finally:
        print(f"  {label}: {time.perf_counter() - start:.1f} s")


def demo(args, course) -> int:
    """Release every assignment, then collect, grade and report the bundled sample class of each."""
    start = time.perf_counter()
    failed: list[str] = []
    for a in course.assignments():
        print(f"== release {a}")
        with timed("nbgrader generate_assignment"):
            pipeline.release(course, a)
    for a in course.assignments():
        sample = SAMPLES / a
        if not sample.is_dir():
            continue
        print(f"== collect the sample class of {a} ({sample.relative_to(course.root)})")
        unsafe = needs_sandbox(sample) if not preflight.sandbox_isolated(course, a) else ()
        if unsafe:
            print(
                f"  not grading {len(unsafe)} submissions that attack the course's files: without bubblewrap "
                f"they would succeed ({', '.join(unsafe)}). Install bubblewrap to grade them."
            )
        extra = () if args.all_cases else extra_cases(sample)
        if extra:
            print(
                f"  grading two students who make one mistake per question between them; {len(extra)} single "
                "mistakes more with 'adl-grade demo --all-cases'"
            )
        got = pipeline.collect(course, a, sample, ignore=("expected.json", "README.md", *unsafe, *extra))
        print(f"  {len(got.accepted)} submissions; rejected: {len(got.rejected)}")
        _print_rejected(got.rejected)
        print(f"== autograde {a} ({args.workers} workers; gradebook {course.db_url})")
        _print_sandbox(course, a)
        with timed("autograde"):
            results = pipeline.autograde(course, a, sorted(got.accepted), args.workers, args.force)
        print(reports.format_table(results))
        compare_with_expected(sample, results, course.source_notebook(a), course.settings(a).profile)
        failed += _grader_failures(results)
        graded = [r for r in results if scoring.GRADER_FAILED not in r.flags]
        failed += _for_each(graded, "feedback", lambda r: reports.write_feedback(course, r))
        csv_path = reports.export_csv(course, a)
        canvas_path, _ = reports.export_canvas(course, a)
        report = reports.write_report(course, a, results)
        print(f"  feedback: {course.feedback.relative_to(course.root)}/<student>/{a}/feedback.html")
        print(
            f"  grades:   {csv_path.relative_to(course.root)} (Canvas import: {canvas_path.relative_to(course.root)})"
        )
        print(f"  report:   {report.relative_to(course.root)} (+ score_distribution.png)")
        if a == "hw1":
            _late_example(course, results)
    _screen_and_mail(course)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return _finish(failed)


# An example email: section (no server is contacted: the demo's run is a dry run)
DEMO_EMAIL = {
    "host": "smtp.example.edu",
    "sender": "ADL course <adl@example.edu>",
    "address_template": "{student}@students.example.edu",
}


def _screen_and_mail(course) -> None:
    """Similarity screening of its sample class, and feedback by email as a dry run (nothing is sent)."""
    from autograder import mail, similarity

    sample = SAMPLES / "similarity" / "hw2"
    if "hw2" in course.assignments() and sample.is_dir():
        print(
            f"== similarity screening of autograder/{sample.relative_to(SAMPLES.parent)} (who copied whom: its README.md)"
        )
        report = similarity.screen(course, "hw2", download=sample)
        print("\n".join(similarity.summary(report, similarity.write_report(course, report), top=5)))
    if "hw1" in course.assignments() and (course.feedback).is_dir():
        print("== feedback by email, a dry run (an example email: section; nothing is sent)")
        example = dataclasses.replace(course, settings_doc={**course.settings_doc, "email": DEMO_EMAIL})
        sent = mail.send_feedback(example, "hw1", dry_run=True)
        for line in mail.format_report(sent)[:4]:
            print(line)
        print(f"  ... the messages are in {(course.build / 'mail' / 'hw1' / 'outbox').relative_to(course.root)}/")


def _late_example(course, results) -> None:
    """What a late policy does to the class just graded, worked out and printed, recorded nowhere: the sample's
    files carry no submission time (they are stamped when collected), so the example's due date is set from it."""
    from autograder import late

    stamps = [s for r in results if (s := late.submitted_at(course, r.assignment, r.student))]
    if not stamps:
        return
    due = min(stamps) - datetime.timedelta(hours=36)
    policy = {"grace": "15m", "per_day": "10%", "cap": "50%", "late_days": True}
    shown = [r for r in results if scoring.GRADER_FAILED not in r.flags][:4]
    doc = dict(course.settings_doc)
    doc["assignments"] = {
        **doc["assignments"],
        "hw1": {**doc["assignments"].get("hw1", {}), "due": due, "late_policy": policy},
    }
    doc.update(late_days=1, extensions={f"hw1/{shown[0].student}": "2d"} if shown else {})
    example = dataclasses.replace(course, settings_doc=doc)
    print(
        "== late policy, an example recorded nowhere (hw1 due 36 hours before these files were collected; grace 15m, "
        "10% a day, cap 50%, 1 late day per student; an extension of 2 days for the first student)"
    )
    top = late.max_score(course, "hw1")
    for r in shown:
        lt = late.lateness(example, "hw1", r.student, roster=set())
        penalty = lt.penalty(top)
        print(
            f"  {printable(r.student, limit=40):<12} graded {r.score:>4g}  penalty {penalty:>4g}  score "
            f"{reports.final_score(r.score, penalty):>4g}  ({lt.describe()})"
        )
    print("  Set due: and late_policy: in assignments.yml (autograder/README.md, 'Late submissions').")
