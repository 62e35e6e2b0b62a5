"""Grading on Dask: how throughput grows with the number of Dask workers on this machine, and what 1,000
submissions would take on N cores.

    .venv/bin/python benchmarks/dask_scaling.py [--n 24] [--max-workers 4] [--assignment hw1] [--out benchmarks/results.md]

Builds a scratch course with N submissions of one assignment (its ordinary sample students, cycled) and grades
them all with ``adl-grade autograde --dask`` on loopback, two ways, for 1 to ``--max-workers`` Dask workers:

- a ``distributed.LocalCluster`` of that many single-threaded worker processes;
- a ``dask scheduler`` and that many ``dask worker`` processes started by hand, each in a process group of its
  own, as they would be on several machines.

Each Dask worker runs ``pipeline.grade_one`` as the local pool does: the submission's kernel in its sandbox, as
the slot's own users (slots are leased machine-wide with ``flock``, so two Dask workers never share one), with
the limits; the run checks that every result graded in the sandbox. The workers are started, and have graded
one submission each, before the timed call. Then, from the newest "Grading speed per assignment" table in the
results file (seconds per submission with 2 workers on 2 cores), it projects the hours 1,000 submissions of
each assignment take on N cores, assuming throughput grows with cores as measured here up to this machine's
count (grading is CPU-bound: a core per concurrent submission). Appends both tables to the results file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import append_section  # noqa: E402 (benchmarks/results_file.py)

from autograder import pipeline, preflight  # noqa: E402
from autograder.course import load_course  # noqa: E402
from autograder.scoring import GRADER_FAILED  # noqa: E402

CORES = (2, 8, 32, 128)  # the projection's columns


def _course(tmp: pathlib.Path, assignment: str, n: int):
    shutil.copy(ROOT / "nbgrader_config.py", tmp)
    shutil.copytree(ROOT / "source" / assignment, tmp / "source" / assignment)
    os.environ["ADL_GRADEBOOK_URL"] = f"sqlite:///{tmp / 'gradebook.db'}"
    course = load_course(tmp)
    pipeline.release(course, assignment)
    samples = sorted((ROOT / "autograder" / "samples" / assignment).glob(f"s0[1-4]_*_{assignment}.ipynb"))
    samples = samples or [course.source_notebook(assignment)]
    download = tmp / "download"
    download.mkdir()
    for i in range(n):
        shutil.copy(samples[i % len(samples)], download / f"d{i:03d}_{assignment}.ipynb")
    pipeline.collect(course, assignment, download)
    return course


def _timed(course, assignment: str, address: str, students: list[str], workers: int) -> float:
    """Seconds for the whole class on the cluster at ``address``, after one submission per worker untimed."""
    pipeline.autograde(course, assignment, students[:workers], force=True, progress=False, dask=address)
    start = time.perf_counter()
    results = pipeline.autograde(course, assignment, students, force=True, progress=False, dask=address)
    wall = time.perf_counter() - start
    failed = [r.student for r in results if GRADER_FAILED in r.flags]
    if failed:
        raise SystemExit(f"the grader failed on {failed}: see build/logs in the scratch course")
    return wall


def _local(course, assignment, students, workers: int) -> float:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        return _timed(course, assignment, cluster.scheduler_address, students, workers)


def _by_hand(course, assignment, students, workers: int, tmp: pathlib.Path) -> float:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes, each leading a process group of its own."""
    dask = str(pathlib.Path(sys.executable).parent / "dask")
    info = tmp / f"scheduler-{workers}.json"
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--nthreads", "1", "--no-dashboard"],
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    cwd=course.root,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        return _timed(course, assignment, address, students, workers)
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, 15)
            proc.wait()


def _speed_table(results: pathlib.Path) -> dict[str, float]:
    """{assignment: seconds per submission with 2 workers} from the newest grading-speed section."""
    text = results.read_text() if results.exists() else ""
    sections = text.split("## Grading speed per assignment")
    if len(sections) < 2:
        return {}
    out = {}
    for line in sections[-1].split("\n## ")[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"(hw\d+|midterm)", cells[0]):
            out[cells[0]] = float(cells[5].removesuffix(" s"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24, help="submissions (default 24)")
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--assignment", default="hw1")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ADL_PROFILE", "smoke")
    a = args.assignment
    rows = []
    with tempfile.TemporaryDirectory(prefix="adl-dask-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        course = _course(tmp, a, args.n)
        students = sorted(p.name for p in (course.submitted).iterdir())
        isolated = preflight.sandbox_isolated(course, a)
        base = None
        for workers in range(1, args.max_workers + 1):
            local = _local(course, a, students, workers)
            hand = _by_hand(course, a, students, workers, tmp)
            base = base or local
            rows.append(
                f"| {workers} | {local:.1f} s | {60 * args.n / local:.1f} | {base / local:.2f}x | {hand:.1f} s | "
                f"{60 * args.n / hand:.1f} |"
            )
            print(rows[-1], flush=True)
    speed = _speed_table(pathlib.Path(args.out))
    cores = os.cpu_count() or 1
    projection = [
        f"| {name} | {per:.1f} s | "
        + " | ".join(f"{1000 * per * 2 / n / 3600:.2f} h" for n in CORES)  # 2 cores measured: CPU-s = 2 x wall
        + " |"
        for name, per in speed.items()
    ]
    lines = [
        f"## Grading on Dask, {datetime.date.today().isoformat()}",
        "",
        f"`python benchmarks/dask_scaling.py {' '.join(sys.argv[1:])}`".replace(" `", "`")
        + f" on {cores} cores, Python {platform.python_version()}: {args.n} {a} submissions on loopback, "
        f"single-threaded Dask workers, every guarantee on (sandbox: {'bubblewrap' if isolated else 'NOT ISOLATED'}; "
        "each worker leases its own grading slot). Each cluster's workers had graded one submission before the "
        "timed call.",
        "",
        "| Dask workers | LocalCluster | submissions per minute | speed-up | `dask worker` processes | "
        "submissions per minute |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    if projection:
        lines += [
            f"Projected hours for 1,000 submissions on N cores, from the newest grading-speed table (seconds per "
            f"submission with 2 workers on 2 cores, so 2x that in CPU-seconds), if throughput keeps growing with "
            f"cores as it does above up to {cores}:",
            "",
            "| assignment | per submission (2 cores) | " + " | ".join(f"{n} cores" for n in CORES) + " |",
            "|---|---|" + "---|" * len(CORES),
            *projection,
            "",
        ]
    text = "\n".join(lines)
    print(text)
    append_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
