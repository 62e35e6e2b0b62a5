"""Autograding throughput: plain `nbgrader autograde` vs `adl-grade autograde`, same submissions, one run.

    .venv/bin/python benchmarks/autograde_throughput.py [--n 24] [--workers 2] [--out benchmarks/results.md]

Builds a scratch course (this checkout's nbgrader_config.py and source/), releases hw1, makes N submissions
by cycling through the bundled sample class (the infinite-loop and truncated ones are left out so that both
graders do the same work), then grades them with each tool and appends a section to the results file:
wall time per submission, the throughput ratio, and where the two disagree on a score.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peer import nbgrader_autograde  # noqa: E402 (benchmarks/peer.py)
from results_file import append_section  # noqa: E402 (benchmarks/results_file.py)

from autograder import pipeline, preflight  # noqa: E402
from autograder.course import load_course  # noqa: E402

# Left out so that both graders do the same work and nothing harms this machine: the truncated file (nbgrader
# stops on it), the time-limit cases, the dying kernels, and the attacks that plain nbgrader, without limits or
# a sandbox, would let loose on the checkout (s18-s20 write to the course) or the machine (memory and fork bombs).
SKIP = {
    "s05_erin",
    "s06_frank",
    "s17_walter",
    "s18_xavier",
    "s19_yvonne",
    "s20_zack",
    "s21_uma",
    "s22_peggy",
    "s23_rupert",
    "s24_sybil",
    "s25_ted",
}


def make_course(tmp: pathlib.Path, n: int):
    shutil.copy(ROOT / "nbgrader_config.py", tmp)
    shutil.copytree(ROOT / "source", tmp / "source")
    os.environ["ADL_GRADEBOOK_URL"] = f"sqlite:///{tmp / 'gradebook.db'}"
    course = load_course(tmp)
    pipeline.release(course, "hw1")
    samples = sorted(
        p
        for p in (ROOT / "autograder" / "samples" / "hw1").glob("*_hw1.ipynb")
        if p.name.removesuffix("_hw1.ipynb") not in SKIP
    )
    download = tmp / "download"
    download.mkdir()
    for i in range(n):
        src = samples[i % len(samples)]
        shutil.copy(src, download / f"b{i:03d}_{src.name.removesuffix('_hw1.ipynb')}_hw1.ipynb")
    pipeline.collect(course, "hw1", download)
    return course


def run_nbgrader(course) -> float:
    return nbgrader_autograde(course, "hw1", cell_timeout=60)


def nbgrader_scores(course) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        return {s.student.id: float(s.score) for s in gb.assignment_submissions("hw1")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="number of submissions (default 50)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as tmp:
        course = make_course(pathlib.Path(tmp), args.n)
        t_nbg = run_nbgrader(course)
        plain = nbgrader_scores(course)
        start = time.perf_counter()
        results = pipeline.autograde(course, "hw1", workers=args.workers, force=True, progress=False)
        t_ours = time.perf_counter() - start
        ours = {r.student: r.score for r in results}
    disagree = sorted(s for s in ours if plain.get(s) != ours[s])
    lines = [
        f"## Autograding throughput, {datetime.date.today().isoformat()}",
        "",
        f"`{' '.join(['python', 'benchmarks/autograde_throughput.py', '--n', str(args.n), '--workers', str(args.workers)])}`"
        f" on {os.cpu_count()} cores, Python {platform.python_version()}, {args.n} hw1 submissions (the sample class"
        " cycled, without the truncated, time-limit, dying-kernel and destructive ones). adl-grade with every guarantee"
        f" of autograder/README.md on (sandbox: {'bubblewrap' if preflight.sandbox_isolated(course, 'hw1') else 'NOT ISOLATED'},"
        " limits, tests in the grader); its long-lived workers start inside the timed call.",
        "",
        "| grader | wall time | per submission | throughput vs nbgrader |",
        "|---|---|---|---|",
        f"| `nbgrader autograde` (sequential, one kernel per notebook) | {t_nbg:.1f} s | {t_nbg / args.n:.2f} s | 1.00x |",
        f"| `adl-grade autograde --workers {args.workers}` | {t_ours:.1f} s | {t_ours / args.n:.2f} s | {t_nbg / t_ours:.2f}x |",
        "",
        f"Target: at least 4x; {'met' if t_nbg / t_ours >= 4 else 'NOT met'}.",
        "",
        f"Scores differ for {len(disagree)} of {args.n} submissions"
        + (
            ": "
            + ", ".join(f"{s} (nbgrader {plain.get(s)}, adl-grade {ours[s]:g})" for s in disagree[:6])
            + (" ..." if len(disagree) > 6 else "")
            if disagree
            else ""
        )
        + ".",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    append_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
