"""Whether an assignment can be graded on this machine, asked before grading starts.

:func:`sandbox_problem` starts a grading kernel and a model evaluator once, as a grading slot starts them (its
users, its sandbox, its limits): a kernel that cannot start would otherwise cost every question of every
submission. :func:`sandbox_summary` says what the kernels are held to (``adl-grade`` prints it).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile

from autograder import uids
from autograder.course import Course
from autograder.job import kernel_limits, mirror
from autograder.processes import kill_slot_users
from autograder.sandbox import Limits, Sandbox, bwrap_problem, parse_size


def sandbox_summary(course: Course, assignment: str) -> list[str]:
    """What the grading kernels of ``assignment`` are held to, one line each (adl-grade prints it)."""
    settings = course.settings(assignment)
    limits = kernel_limits(settings)
    data = mirror()
    return Sandbox(pathlib.Path(tempfile.gettempdir()), limits, readonly=(data,) if data else (),
                   enabled=settings.sandbox).describe()


def sandbox_isolated(course: Course, assignment: str) -> bool:
    """True when the assignment's kernels run inside bubblewrap (no course folder, no network)."""
    return Sandbox(pathlib.Path(tempfile.gettempdir()), enabled=course.settings(assignment).sandbox).isolated


_PROBED: dict[tuple, str | None] = {}


def sandbox_problem(course: Course, assignment: str) -> str | None:
    """Why the grading kernel or the model evaluator of ``assignment`` cannot start on this machine, or None.

    Each is started once, as a grading slot starts it (its user, its sandbox, its limits), and imports what it
    needs; the answer is kept for this process. :func:`autograder.pipeline.autograde_all` asks before grading anything: a kernel
    that cannot start (the slot's user cannot reach the Python installation, say) would cost every question
    of every submission, with nothing but "grading did not finish" to show for it."""
    from autograder.evaluate import ModelEvaluator

    settings = course.settings(assignment)
    memory, data = parse_size(settings.memory_limit), mirror()
    key = (settings.sandbox, kernel_limits(settings), data, bwrap_problem(), os.environ.get("PATH"),
           sys.executable)
    if key in _PROBED:
        return _PROBED[key]
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"adl-probe-{assignment}-"))
    lease = uids.lease()
    slot = lease.slot
    try:
        kill_slot_users(slot)  # what a killed grader left running as the slot's users
        base.chmod(0o755)
        kernel = Sandbox(base, kernel_limits(settings), slot=slot,
                         readonly=(data,) if data else (), enabled=settings.sandbox)
        problem = kernel.probe([sys.executable, "-c", "import ipykernel"])
        if problem is None:
            evaluator = ModelEvaluator(base, timeout=60, slot=slot, limits=Limits(memory=memory, processes=64),
                                       sandbox=settings.sandbox)
            problem = evaluator.probe()
            problem = problem and f"the model evaluator: {problem}"
        else:
            problem = f"the kernel: {problem}"
    finally:
        kill_slot_users(slot)
        lease.release()
        shutil.rmtree(base, ignore_errors=True)
    _PROBED[key] = problem
    return problem
