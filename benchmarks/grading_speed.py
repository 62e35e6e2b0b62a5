"""Grading speed per assignment: plain `nbgrader autograde` against `adl-grade autograde --workers N`, the same
submissions, in one run.

    .venv/bin/python benchmarks/grading_speed.py [--assignments hw1 hw3] [--workers 2] [--copies 2]
        [--all-cases] [--out benchmarks/results.md]

Builds a scratch course (this checkout's nbgrader_config.py and source/) and, per assignment, a class of
submissions: the solution, the blank release and the sample class (hw1: its ordinary students; hw2 on: the two
students CI grades, or with --all-cases every wrong-answer case), each under ``--copies`` student ids so that
the workers have a queue to share. Both graders then grade the whole class:

- nbgrader: one `nbgrader autograde <assignment>` call, as an instructor runs it (sequential, one kernel per
  notebook, its own start-up counted once);
- adl-grade: ``pipeline.autograde(..., workers=N)`` with every guarantee of autograder/README.md on (the
  sandbox, the limits, the tests in the grader, saved models evaluated in sandboxed processes), on started
  workers: the pool is emptied before each assignment and its start-up (the first submissions graded once,
  from cold) is reported in a column of its own, since a class of any size pays it once.

Per assignment it records the throughput of both and their ratio, adl-grade's overhead per submission (the wall
time of the submission's grading less the seconds its notebook's own cells took in the kernel: what the grader
adds to the student's code), its slowest submission (against the budget of 2 minutes), and where the two give different points, cell by cell, with the reason read from
nbgrader's executed notebook. Appends the table to the results file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peer import nbgrader_autograde  # noqa: E402 (benchmarks/peer.py)
from results_file import append_section  # noqa: E402 (benchmarks/results_file.py)

from autograder import expected, ingest, pipeline, preflight, processes  # noqa: E402
from autograder.course import load_course  # noqa: E402

TARGET = 3.0  # throughput over plain nbgrader's
OVERHEAD = 2.0  # seconds the grader may add per submission
BUDGET = 120.0  # seconds one submission may take to grade, alongside another (course/instructor_guide.md)


def _class(course, assignment: str, tmp: pathlib.Path, copies: int, all_cases: bool) -> pathlib.Path:
    """The download folder: solution, blank and sample students, each ``copies`` times."""
    samples = ROOT / "autograder" / "samples" / assignment
    files = {"solution": course.source_notebook(assignment), "blank": course.release_notebook(assignment)}
    if assignment == "hw1":  # the ordinary students: the attacks are autograde_throughput.py's business
        for nb in sorted(samples.glob(f"s0[1-4]_*_{assignment}.ipynb")):
            files[nb.name.removesuffix(f"_{assignment}.ipynb")] = nb
    else:
        for exp in expected.read_expected(samples).values():
            if all_cases or exp["ci"]:
                files[exp["file"].removesuffix(f"_{assignment}.ipynb")] = samples / exp["file"]
    download = tmp / f"download-{assignment}"
    download.mkdir()
    for copy in range(copies):
        for student, path in files.items():
            shutil.copy(path, download / f"c{copy}{student}_{assignment}.ipynb")
    return download


def _nbgrader(course, assignment: str) -> tuple[float, dict[str, dict[str, float]], dict[str, nbformat.NotebookNode]]:
    """(wall seconds, {student: {grade_id: points}}, {student: executed notebook}) of one `nbgrader autograde`."""
    from nbgrader.api import Gradebook

    wall = nbgrader_autograde(course, assignment, cell_timeout=300)
    points: dict[str, dict[str, float]] = {}
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        for sub in gb.assignment_submissions(assignment):
            for nb in sub.notebooks:
                points[sub.student.id] = {g.name: float(g.score) for g in nb.grades}
    name = course.settings(assignment).notebook
    executed = {}
    for student in points:
        path = course.autograded / student / assignment / name
        if path.is_file():
            executed[student] = nbformat.read(path, as_version=4)
    return wall, points, executed


def _why_nbgrader_differs(nb: nbformat.NotebookNode | None, grade_id: str) -> str:
    """What nbgrader's executed cell shows: an error's name, or output on stderr (nbgrader's 0 for a test cell)."""
    for cell in nb.cells if nb is not None else []:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") != grade_id:
            continue
        outputs = cell.get("outputs", [])
        errors = [o.get("ename", "error") for o in outputs if o.get("output_type") == "error"]
        if errors:
            return f"nbgrader's cell raised {errors[0]}"
        if any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outputs):
            return "nbgrader gives 0 to a test cell with output on stderr"
        return "nbgrader's cell ran without error"
    return "nbgrader kept no executed cell"


def _adl_grade(course, assignment: str, workers: int):
    """(start-up seconds, wall seconds, results, {student: overhead seconds}) of one adl-grade run. Start-up: the
    workers started (each imports TensorFlow for the tests, and the evaluator's template) by grading the first
    ``workers`` submissions once, untimed in the throughput: a class of any size pays it once."""
    processes.shutdown()
    start = time.perf_counter()
    pipeline.autograde(
        course, assignment, ingest.submitted_students(course, assignment)[:workers], workers, True, progress=False
    )
    startup = time.perf_counter() - start
    walls: dict[str, float] = {}
    grade_one = pipeline.grade_one

    def timed(course_, assignment_, student, force=False):
        start = time.perf_counter()
        try:
            return grade_one(course_, assignment_, student, force)
        finally:
            walls[student] = time.perf_counter() - start

    pipeline.grade_one = timed
    try:
        start = time.perf_counter()
        results = pipeline.autograde(course, assignment, workers=workers, force=True, progress=False)
        wall = time.perf_counter() - start
    finally:
        pipeline.grade_one = grade_one
    overhead, tests, own_total = {}, {}, 0.0
    for r in results:
        run = json.loads((course.autograded / r.student / assignment / "run.json").read_text())
        own = sum(c.get("seconds", 0.0) for c in run["cells"] if not c.get("trusted"))
        tests[r.student] = sum(c.get("seconds", 0.0) for c in run["cells"] if c.get("trusted"))
        overhead[r.student] = walls[r.student] - own
        own_total += own
    return startup, wall, results, overhead, max(walls.values()), tests, own_total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignments", nargs="*", help="default: every assignment in source/")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2, help="ids each submission is graded under (default 2)")
    parser.add_argument("--all-cases", action="store_true", help="hw2 on: every wrong-answer case, not CI's two")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ADL_PROFILE", "smoke")
    mirror = ROOT.parent / "shared" / "datasets"
    if mirror.is_dir():
        os.environ.setdefault("ADL_DATA_MIRROR", str(mirror))
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        shutil.copy(ROOT / "nbgrader_config.py", tmp)
        shutil.copytree(ROOT / "source", tmp / "source")
        os.environ["ADL_GRADEBOOK_URL"] = f"sqlite:///{tmp / 'gradebook.db'}"
        os.environ.setdefault("ADL_DATA_DIR", str(tmp / "data"))
        course = load_course(tmp)
        assignments = args.assignments or course.assignments()
        for a in assignments:
            pipeline.release(course, a)
            pipeline.collect(course, a, _class(course, a, tmp, args.copies, args.all_cases))
            n = len(ingest.submitted_students(course, a))
            peer_wall, peer_points, peer_nbs = _nbgrader(course, a)
            startup, wall, results, overhead, slowest, tests, own_total = _adl_grade(course, a, args.workers)
            ratio = peer_wall / wall
            over = list(overhead.values())
            # The most the students' own cells allow: nbgrader's time against theirs alone, shared by the workers.
            ceiling = peer_wall / (own_total / args.workers)
            rows.append(
                f"| {a} | {n} | {peer_wall:.0f} s | {peer_wall / n:.1f} s | {wall:.0f} s | {wall / n:.1f} s | "
                f"**{ratio:.2f}x** {'(met)' if ratio >= TARGET else '(not met)'} | {statistics.mean(over):.1f} s | "
                f"{max(over):.1f} s | {slowest:.0f} s{'' if slowest <= BUDGET else ' (over 2 min)'} | {startup:.0f} s | "
                f"{statistics.mean(tests.values()):.1f} s | {ceiling:.2f}x |"
            )
            reasons: dict[str, list[str]] = {}
            for r in results:
                theirs = peer_points.get(r.student, {})
                for q in r.questions:
                    if q.manual or q.grade_id not in theirs or abs(theirs[q.grade_id] - q.points) < 1e-9:
                        continue
                    why = _why_nbgrader_differs(peer_nbs.get(r.student), q.grade_id)
                    if q.points < theirs[q.grade_id]:
                        why = f"adl-grade: {q.status}, {q.reason[:80]}"
                    reasons.setdefault(f"{q.grade_id} ({why})", []).append(r.student)
            for what, students in sorted(reasons.items()):
                notes.append(f"- {a}, {what}: {len(students)} of {n} submissions")
            print(rows[-1], flush=True)
        processes.shutdown()
        isolated = all(preflight.sandbox_isolated(course, a) for a in assignments)
    lines = [
        f"## Grading speed per assignment, {datetime.date.today().isoformat()}",
        "",
        f"`python benchmarks/grading_speed.py {' '.join(sys.argv[1:])}`".replace(" `", "`")
        + f" on {os.cpu_count()} cores, Python {platform.python_version()}, smoke profile. Per assignment: the "
        f"solution, the blank release and the sample class ({'every wrong-answer case' if args.all_cases else 'hw1: four ordinary students; hw2 on: the two students CI grades'}), "
        f"each under {args.copies} student ids. nbgrader: one `nbgrader autograde` call (sequential). adl-grade: "
        f"`autograde --workers {args.workers}` on started workers (start-up: the first {args.workers} submissions graded "
        "once before, from cold: paid once per run, whatever the class size), with every guarantee on (sandbox: "
        f"{'bubblewrap' if isolated else 'NOT ISOLATED'}). Overhead: a submission's grading time less its own "
        f"cells' time in the kernel; of which tests: the test cells' time (the hidden tests, run in the grader "
        "against the kernel; nbgrader runs them too). Ceiling: nbgrader's time against the students' own cells' "
        f"time alone shared by {args.workers} workers, the most any grader could reach on these submissions. Targets: "
        f"{TARGET:g}x nbgrader's throughput, {OVERHEAD:g} s of overhead, "
        f"every submission graded within {BUDGET / 60:g} minutes.",
        "",
        "| assignment | submissions | nbgrader | per submission | adl-grade | per submission | throughput vs "
        "nbgrader | overhead mean | overhead max | slowest submission | adl-grade start-up | of which tests (mean) "
        "| ceiling |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Where the two give a test cell different points (the reason from nbgrader's executed notebook, or "
        "adl-grade's own when it gives fewer):",
        "",
        *(notes or ["- nowhere: both graders give every cell the same points."]),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    append_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
