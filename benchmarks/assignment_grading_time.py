"""Grading time per submission for every assignment: plain `nbgrader autograde` vs `adl-grade`, one run.

    .venv/bin/python benchmarks/assignment_grading_time.py [--assignments hw2 hw3] [--out benchmarks/results.md]

Builds a scratch course (this checkout's nbgrader_config.py and source/), releases each assignment, and grades
the same submissions with both tools: the solution, the blank release and the sample class of the assignment
(for hw2 on, its wrong-answer cases). adl-grade runs with every guarantee of autograder/README.md on and one
worker, so its per-submission time is directly comparable with nbgrader's sequential run. The issue's budget
is 2 minutes per submission in the smoke profile on 2 cores, saved-model evaluation included. Appends a table
to the results file: per assignment, the mean and the slowest submission for each tool, and the scores that
differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

# nbgrader_config.py turns nbgrader's own autograde off (autograder/README.md, "The formgrader"); the
# benchmark compares against it on a scratch copy, so it turns it back on there.
NBGRADER_AUTOGRADE_ON = "--Autograde.exporter_class=nbconvert.exporters.NotebookExporter"
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import ingest, pipeline, preflight, processes  # noqa: E402
from autograder.course import load_course  # noqa: E402

BUDGET = 120.0  # seconds per submission (issue 5)


def _download(course, assignment: str, tmp: pathlib.Path, hw1_class: int, ci_only: bool) -> pathlib.Path:
    download = tmp / f"download-{assignment}"
    download.mkdir()
    shutil.copy(course.source_notebook(assignment), download / f"solution_{assignment}.ipynb")
    shutil.copy(course.release_notebook(assignment), download / f"blank_{assignment}.ipynb")
    sample = sorted((ROOT / "autograder" / "samples" / assignment).glob(f"*_{assignment}.ipynb"))
    if assignment == "hw1":  # the ordinary students only: the attacks are the throughput benchmark's business
        sample = sample[:hw1_class]
    elif ci_only:  # the cases CI grades: the first of each test cell
        expected = json.loads((ROOT / "autograder" / "samples" / assignment / "expected.json").read_text())
        ci = {e["file"] for e in expected["students"].values() if e["ci"]}
        sample = [nb for nb in sample if nb.name in ci]
    for nb in sample:
        shutil.copy(nb, download / nb.name)
    return download


def _nbgrader(course, assignment: str) -> dict[str, tuple[float, float]]:
    """{student: (seconds, score)} from one sequential `nbgrader autograde` run, timed per notebook."""
    from nbgrader.api import Gradebook

    env = dict(
        os.environ, ADL_PROFILE="smoke", PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    times = {}
    for student in ingest.submitted_students(course, assignment):
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "nbgrader",
                "autograde",
                assignment,
                "--student",
                student,
                "--force",
                "--ExecutePreprocessor.timeout=120",
                "--log-level=ERROR",
                NBGRADER_AUTOGRADE_ON,
            ],
            cwd=course.root,
            env=env,
            capture_output=True,
            text=True,
        )
        times[student] = time.perf_counter() - start
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        scores = {s.student.id: float(s.score) for s in gb.assignment_submissions(assignment)}
    return {s: (t, scores.get(s, float("nan"))) for s, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignments", nargs="*", help="default: every assignment in source/")
    parser.add_argument("--hw1-class", type=int, default=6, help="how many hw1 sample students (default 6)")
    parser.add_argument(
        "--ci-cases",
        action="store_true",
        help="hw2 on: only the two students CI grades (several mistakes each), not every case",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        shutil.copy(ROOT / "nbgrader_config.py", tmp)
        shutil.copytree(ROOT / "source", tmp / "source")
        os.environ["ADL_GRADEBOOK_URL"] = f"sqlite:///{tmp / 'gradebook.db'}"
        course = load_course(tmp)
        assignments = args.assignments or course.assignments()
        for a in assignments:
            pipeline.release(course, a)
            pipeline.collect(course, a, _download(course, a, tmp, args.hw1_class, args.ci_cases))
            peer = _nbgrader(course, a)
            pipeline.autograde(course, a, ["blank"], workers=1, force=True, progress=False)  # start the worker
            ours = {}
            for student in ingest.submitted_students(course, a):
                start = time.perf_counter()
                (r,) = pipeline.autograde(course, a, [student], workers=1, force=True, progress=False)
                ours[student] = (time.perf_counter() - start, r.score)
            n = len(ours)
            mean_p, max_p = sum(t for t, _ in peer.values()) / n, max(t for t, _ in peer.values())
            mean_o, slow = sum(t for t, _ in ours.values()) / n, max(ours, key=lambda s: ours[s][0])
            rows.append(
                f"| {a} | {n} | {mean_p:.1f} s | {max_p:.1f} s | {mean_o:.1f} s | {ours[slow][0]:.1f} s "
                f"({slow}) | {'yes' if ours[slow][0] <= BUDGET else 'NO'} |"
            )
            differ = [
                f"{s} (nbgrader {peer[s][1]:g}, adl-grade {ours[s][1]:g})"
                for s in sorted(ours)
                if peer.get(s, (0, None))[1] != ours[s][1]
            ]
            if differ:
                notes.append(f"- {a}: scores differ for {', '.join(differ)}.")
            print(rows[-1], flush=True)
        processes.shutdown()
        isolated = all(preflight.sandbox_isolated(course, a) for a in assignments)
    lines = [
        f"## Grading time per submission, {datetime.date.today().isoformat()}",
        "",
        f"`python benchmarks/assignment_grading_time.py` on {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, smoke profile. Per assignment: the solution, the blank release and the "
        "sample class (hw1: its first ordinary students; hw2 on: "
        f"{'the two students CI grades, who make the first mistake of each test cell between them' if args.ci_cases else 'every wrong-answer case'}). "
        "Both graders run one "
        "submission at a time (nbgrader: one `nbgrader autograde --student` call each, so its own start-up of "
        "about 3 s is counted per submission; adl-grade: one `autograde` call each on a warm worker); adl-grade with every guarantee on (sandbox: "
        f"{'bubblewrap' if isolated else 'NOT ISOLATED'}, tests in the grader, saved models evaluated in a "
        "sandboxed process of their own). Budget: 2 minutes per submission.",
        "",
        "| assignment | submissions | nbgrader mean | nbgrader slowest | adl-grade mean | adl-grade slowest | "
        "within 2 min |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *(notes or ["Both graders give every submission the same score."]),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = pathlib.Path(args.out)
    before = out.read_text() if out.exists() else "# Benchmark results\n\n"
    out.write_text(before.rstrip("\n") + "\n\n" + text.strip("\n") + "\n")  # one blank line between sections
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
