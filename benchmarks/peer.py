"""The peer every grading benchmark compares with: plain `nbgrader autograde`, run as an instructor runs it."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

# nbgrader_config.py turns nbgrader's own autograde off (autograder/README.md, "The formgrader"); the
# benchmarks compare against it on a scratch copy, so they turn it back on there.
NBGRADER_AUTOGRADE_ON = "--Autograde.exporter_class=nbconvert.exporters.NotebookExporter"


def nbgrader_autograde(course, assignment: str, cell_timeout: int) -> float:
    """Seconds of one `nbgrader autograde <assignment> --force` over every submission of the scratch course
    ``course`` (sequential, one kernel per notebook), in the smoke profile; its errors go to stderr."""
    env = dict(
        os.environ, ADL_PROFILE="smoke", PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            "autograde",
            assignment,
            "--force",
            f"--ExecutePreprocessor.timeout={cell_timeout}",
            "--log-level=ERROR",
            NBGRADER_AUTOGRADE_ON,
        ],
        cwd=course.root,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        print(
            f"nbgrader autograde {assignment} exited {done.returncode}:",
            done.stdout[-3000:],
            done.stderr[-3000:],
            file=sys.stderr,
        )
    return elapsed
