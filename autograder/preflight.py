"""Whether an assignment can be graded on this machine, asked before grading starts.

:func:`sandbox_problem` starts a grading kernel and a model evaluator once, as a grading slot starts them (its
users, its sandbox, its limits): a kernel that cannot start would otherwise cost every question of every
submission. :func:`sandbox_summary` says what the kernels are held to (``adl-grade`` prints it), in the words of
:func:`enforced`.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile

from autograder import host, uids
from autograder.confinement import seccomp_problem
from autograder.course import Course
from autograder.job import kernel_limits, mirror
from autograder.processes import kill_slot_users
from autograder.sandbox import Limits, Sandbox, parse_size


def sandbox_summary(course: Course, assignment: str) -> list[str]:
    """What the grading kernels of ``assignment`` are held to, one line each (adl-grade prints it)."""
    settings = course.settings(assignment)
    limits = kernel_limits(settings)
    data = mirror()
    box = Sandbox(
        pathlib.Path(tempfile.gettempdir()), limits, readonly=(data,) if data else (), enabled=settings.sandbox
    )
    return enforced(box)


def enforced(box: Sandbox) -> list[str]:
    """What is and is not enforced for the kernel ``box`` starts, one line each (printed by adl-grade, listed in the
    README)."""
    lim = box.limits
    lines = [
        f"limits: memory {lim.memory / 2**30:g} GiB ({lim.address_space / 2**30:g} GiB address space, "
        f"{lim.tmp_size / 2**20:g} MiB each for /tmp and /dev/shm, {lim.disk / 2**20:g} MiB and "
        f"{lim.files} files in its folder), {lim.processes} processes/threads, files up to "
        f"{lim.file_size / 2**20:g} MiB, {lim.open_files} open files, {lim.cpu_seconds} s CPU, no core dumps",
    ]
    if box.uid is not None:
        lines.append(f"user: uid {box.uid}, no capabilities, no_new_privs")
    else:
        lines.append(
            f"user: the grader's own (uid {os.getuid()}{', in a user namespace' if box.isolated else ''}); "
            "the process limit also counts that user's other processes"
        )
    if box.isolated:
        lines.append(
            "file system: only the Python installation, the helper package and the data mirror "
            "(read-only) and the submission's own folder; no course folder, no other submissions"
        )
        lines.append("network: none (own network namespace); processes: its own PID namespace")
        problem = seccomp_problem()
        lines.append(
            "system calls: no new user namespace (--disable-userns); "
            + (
                f"NO SECCOMP FILTER: {problem}"
                if problem
                else "a seccomp filter refuses namespaces, mount, ptrace, keyrings, BPF, io_uring and other calls a "
                "notebook never needs"
            )
        )
        return lines
    why = "sandbox: false in assignments.yml" if not box.enabled else host.bwrap_problem()
    if box.uid is None:
        lines.append(
            f"NOT ISOLATED ({why}): the kernel can read, change and delete whatever the grader's user "
            "can (the course folder, the gradebook, other submissions), use the network and signal "
            "the grader's processes"
        )
    else:
        lines.append(
            f"NOT ISOLATED ({why}): the kernel can read every file uid {box.uid} may read (the "
            "course folder too, unless its permissions keep other users out), use the network and "
            "see the machine's processes; it cannot change or signal what it does not own"
        )
        tops = box.unreachable
        problem = host.unshare_problem() if tops else None
        if problem:
            lines.append(f"CANNOT GRADE: {box.cannot_reach(tops, problem)}")
        elif tops:
            lines.append(
                f"uid {box.uid} cannot enter {', '.join(map(str, tops))}: in a mount namespace of "
                f"the kernel's own (unshare) it sees there only {box.inside(tops)}"
            )
    if box.enabled:
        lines.append(
            "Install bubblewrap (apt-get install bubblewrap) where namespaces work: each kernel is "
            "then isolated (no course folder, no network)"
        )
    return lines


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
    key = (
        settings.sandbox,
        kernel_limits(settings),
        data,
        host.bwrap_problem(),
        os.environ.get("PATH"),
        sys.executable,
    )
    if key in _PROBED:
        return _PROBED[key]
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"adl-probe-{assignment}-"))
    lease = uids.lease()
    slot = lease.slot
    try:
        kill_slot_users(slot)  # what a killed grader left running as the slot's users
        base.chmod(0o755)
        kernel = Sandbox(
            base, kernel_limits(settings), slot=slot, readonly=(data,) if data else (), enabled=settings.sandbox
        )
        problem = kernel.probe([sys.executable, "-c", "import ipykernel"])
        if problem is None:
            evaluator = ModelEvaluator(
                base, timeout=60, slot=slot, limits=Limits(memory=memory, processes=64), sandbox=settings.sandbox
            )
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
