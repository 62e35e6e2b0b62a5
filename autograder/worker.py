"""The worker process: grades one submission's job after another, each in a fresh, sandboxed kernel.

Run as ``python -m autograder.worker JOB.json`` (one job) or ``--serve`` (the pipeline's long-lived workers:
job paths on stdin, ``done`` or ``failed ...`` on stdout). The job (:class:`autograder.job.Job`) names the
restored notebook (kept outside the kernel's reach), the kernel's working folder, the time limits, the sandbox
and the kernel's environment; the worker runs it with :class:`autograder.runner.Runner` and writes the
executed notebook and a JSON run. Nothing here touches the gradebook.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import resource
import shutil
import sys
import threading
import time

import nbformat
import psutil

from autograder import forkserver, kerneltemplate
from autograder.evaluate import ModelEvaluator
from autograder.files import write_json
from autograder.formgrader import sanitize_notebook
from autograder.job import Job, JobError
from autograder.kernel import drain_kernel_log
from autograder.processes import kill_tree
from autograder.runner import Runner
from autograder.sandbox import Limits, Sandbox

log = logging.getLogger("autograder.worker")
TEMPLATE_TIMEOUT = 120  # seconds a kernel template may take to start (it imports TensorFlow)


def run_job(job_path: str) -> None:
    """Grade the job described by ``job_path``; write the executed notebook and the JSON result. The job's
    settings for the trusted tests (:attr:`Job.grader_env`) hold while it runs; then this process's own
    environment is restored, so that nothing of one job's (another course's data folder, say) reaches the next."""
    own = dict(os.environ)
    try:
        _run_job(Job.read(job_path))
    finally:
        os.environ.clear()
        os.environ.update(own)


def _run_job(job: Job) -> None:
    os.environ.update(job.grader_env)  # the trusted tests' own data settings
    workdir = pathlib.Path(job.workdir)
    nb = nbformat.read(job.notebook, as_version=4)  # kept outside the kernel's reach
    control = pathlib.Path(job.control) if job.control else None
    box = job.sandbox
    sandbox = None
    if box is not None:
        sandbox = Sandbox(
            workdir,
            Limits(
                memory=box.memory,
                processes=box.processes,
                cpu_seconds=int(job.notebook_timeout) * 2 + 60,
                disk=box.disk,
                files=box.files,
                tmp_size=box.tmp_size,
            ),
            slot=box.slot,
            readonly=tuple(map(pathlib.Path, box.readonly)) + ((control,) if control else ()),
            enabled=box.enabled,
        )
    start = time.monotonic()
    env = job.env
    forked = _kernel_template(job, sandbox) if sandbox is not None else None
    try:  # whatever fails from here on, a kernel template taken is handed back
        if forked is not None:
            assert sandbox is not None  # a template is taken only for a sandboxed kernel
            _copy_into(workdir, forked.home)
            kept = tuple(path for path in sandbox.readonly if path != control)  # the data mirror
            env = {k: v.replace(str(workdir), str(forked.home)) for k, v in env.items()}  # HOME, its caches
            workdir, control = forked.home, forked.control
            sandbox = dataclasses.replace(sandbox, workdir=workdir, readonly=kept + (control,))
        # Saved models (adl.grading.evaluate_saved_model in a test cell) are loaded in a sandbox of their own.
        evaluator = ModelEvaluator(
            workdir,
            timeout=job.cell_timeout,
            slot=box.slot if box else 0,
            limits=Limits(
                memory=box.memory if box else Limits.memory, processes=64, cpu_seconds=int(job.cell_timeout) * 4
            ),
            sandbox=box.enabled if box else True,
            env=job.evaluator_env(),
            scratch=pathlib.Path(job.scratch) if job.scratch else None,
        )
        try:
            runner = Runner(
                nb,
                workdir,
                job.cell_timeout,
                job.notebook_timeout,
                env,
                sandbox,
                control,
                output_limits=(job.output_limit, job.notebook_output_limit),
                evaluator=evaluator,
                forked=forked,
            )
            _limit_memory(job.grader_memory)
            cells = runner.run()
        finally:
            evaluator.close()
    finally:
        if forked is not None:
            forked.finish()
    pathlib.Path(job.executed).write_text(nbformat.writes(sanitize_notebook(nb)))
    write_json(
        job.result,
        {
            "cells": cells,
            "events": runner.events,
            "restarts": runner.restarts,
            "elapsed": round(time.monotonic() - start, 3),
        },
    )


def _kernel_template(job: Job, sandbox: Sandbox) -> kerneltemplate.KernelJob | None:
    """This job's folder in the worker's kernel template, which has imported the assignment's ``preload``
    modules once (:mod:`autograder.kerneltemplate`): its kernels are forked from it instead of started afresh. None
    when the assignment preloads nothing, without bubblewrap, or if the template cannot start (then, as
    without one, each kernel starts in a sandbox of its own)."""
    if not job.preload or not sandbox.isolated:
        return None
    workdir = str(job.workdir)
    # The template's environment is the kernel's but for what names the submission's own folder (HOME, caches).
    env = {k: v for k, v in job.env.items() if workdir not in v}
    try:
        template = forkserver.acquire(
            kerneltemplate.kernel_code(job.preload),
            env,
            dataclasses.replace(sandbox.limits, cpu_seconds=0),
            TEMPLATE_TIMEOUT,
            readonly=tuple(map(pathlib.Path, job.sandbox.readonly)) if job.sandbox else (),
            kernel=True,
        )
    except forkserver.TemplateError as exc:
        log.warning("the kernel template did not start (%s): each kernel starts on its own", exc)
        return None
    try:
        return kerneltemplate.KernelJob(template, sandbox.uid, drain_kernel_log)
    except (forkserver.TemplateError, OSError) as exc:
        log.warning("the kernel template cannot take this submission (%s): its kernel starts on its own", exc)
        forkserver.release(template)
        return None


def _copy_into(source: pathlib.Path, target: pathlib.Path) -> None:
    """The files the pipeline put in the submission's folder (the assignment's data files), copied into ``target``."""
    for path in source.iterdir():
        if path.is_file() and not path.is_symlink():
            shutil.copy2(path, target / path.name)


def _limit_memory(headroom: int | None) -> None:
    """Hold this process (the trusted side: decoding answers, running the tests) to what it has mapped now plus
    ``headroom`` bytes of address space, so that a hostile answer ends in a MemoryError in its own test, not in
    the machine running out of memory. Only the soft limit: each job sets it afresh; None lifts it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if headroom is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    with open("/proc/self/statm") as fh:
        mapped = int(fh.read().split()[0]) * resource.getpagesize()
    want = mapped + int(headroom)
    resource.setrlimit(resource.RLIMIT_AS, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def _die_with(parent: int) -> None:
    """Watch the grader: once it is gone (killed, say), kill every process this worker started (the kernel, the
    model evaluator and whatever they left) and exit. A prctl parent-death signal would not do: it fires when the
    grader's *thread* that started the worker ends, and the grader starts workers from pool threads."""

    while os.getppid() == parent:
        time.sleep(0.2)
    for child in psutil.Process().children():
        kill_tree(child.pid)
    os._exit(3)


def _job_log(path: str | None, fallback: int) -> None:
    """Send this process's stderr (and stray stdout) to the job's own log, or back to ``fallback``."""
    fd = fallback
    if path:
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    sys.stderr.flush()
    os.dup2(fd, 2, inheritable=False)
    os.dup2(fd, 1, inheritable=False)
    if fd != fallback:
        os.close(fd)


def serve() -> int:
    """``--serve``: grade one job after another, their paths read from stdin, one per line; answer each with
    a line ``done`` or ``failed ...`` on stdout. The pipeline keeps a pool of such processes, so
    the trusted side's imports (NumPy, TensorFlow for the tests) are paid once, not per submission. Student
    code never runs in this process: every submission still gets a fresh kernel in its own sandbox."""
    import gc
    import traceback

    channel = os.fdopen(os.dup(1), "w")
    slot_log = os.dup(2)  # the slot's log: the worker's own messages between jobs
    os.set_inheritable(slot_log, False)
    _job_log(None, slot_log)  # stray prints go to the log, not the protocol
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    threading.Thread(target=_die_with, args=(os.getppid(),), daemon=True).start()
    import tensorflow  # noqa: F401 (the tests' TensorFlow, imported once per worker, before any job)

    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            try:
                _job_log(Job.read(path).log, slot_log)
            except JobError:
                pass  # run_job says what is wrong with the job file
            run_job(path)
            status = "done"
        except Exception as exc:  # the pipeline records the submission as not graded and goes on
            traceback.print_exc()
            status = f"failed {type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        finally:
            _limit_memory(None)
            _job_log(None, slot_log)
        if "tensorflow" in sys.modules:
            sys.modules["tensorflow"].keras.backend.clear_session()
        gc.collect()
        channel.write(status + "\n")
        channel.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve()
    if len(argv) != 1:
        print("usage: python -m autograder.worker JOB.json | --serve", file=sys.stderr)
        return 2
    run_job(argv[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
