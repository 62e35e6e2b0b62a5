"""The grading process's pool of worker processes, and the clean-up of a grading slot's users.

A worker is a long-lived ``python -m autograder.worker --serve`` process (see :func:`autograder.worker.serve`):
it reads the path of a job file on stdin, grades that one submission in a fresh sandboxed kernel, and
answers ``done`` (or ``failed ...``) on stdout. Keeping it between submissions saves its start-up (the
grader's own imports: nbclient, NumPy, TensorFlow for the trusted tests); each submission still gets a new
kernel. :func:`run_job` takes an idle worker (or starts one), gives it the job and returns it to the pool; a
worker that died or outlived the job's hard limit is killed with its whole process tree and not reused.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import pathlib
import selectors
import subprocess
import sys
import threading

import psutil

from autograder.job import Job
from autograder.uids import evaluator_uid, kernel_uid

log = logging.getLogger(__name__)


def kill_tree(pid: int) -> None:
    """Kill process ``pid`` and every process below it (children first), ignoring those already gone."""
    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def kill_slot_users(slot: int) -> None:
    """Under a root grader: kill every process of slot ``slot``'s users (its kernel's and its model evaluator's),
    before a submission (what a killed grader left) and after it (a daemon the student's code started)."""
    if os.geteuid() != 0:
        return
    users = {kernel_uid(slot), evaluator_uid(slot)}
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real in users:
                proc.kill()
        except psutil.Error:
            pass


class Worker:
    """One ``autograder.worker --serve`` process; its stderr (the kernels' too, between jobs) goes to ``log``."""

    def __init__(self, log_file: pathlib.Path):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_file
        with log_file.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autograder.worker", "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fh, text=True, start_new_session=True,
            )

    def run(self, job_file: pathlib.Path, hard_limit: float) -> str | None:
        """The worker's answer for one job, or None if it died or outlived ``hard_limit`` (then it is killed)."""
        try:
            self.proc.stdin.write(f"{job_file}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=hard_limit):
                self.kill()
                return None
        line = self.proc.stdout.readline()
        return line.strip() or None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        kill_tree(self.proc.pid)
        self.proc.wait()

    def stop(self) -> None:
        """End the worker between jobs: close its stdin and wait; kill it if it does not end."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class Pool:
    """Idle workers of this process, by log file (a course's workers log into its build folder)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._started = 0

    def take(self, logs: pathlib.Path) -> Worker:
        with self._lock:
            for worker in list(self._idle):
                if not worker.alive():
                    self._idle.remove(worker)
                elif worker.log.parent == logs:
                    self._idle.remove(worker)
                    return worker
            self._started += 1
            number = self._started
        return Worker(logs / f"worker-{os.getpid()}-{number}.log")

    def give_back(self, worker: Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def shutdown(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


POOL = Pool()
atexit.register(POOL.shutdown)


def shutdown() -> None:
    """Stop the idle workers. They outlive an autograde call, so that grading several assignments in one process
    (the demo, the tests) starts them once; they end with the process, or when this is called."""
    POOL.shutdown()


def run_job(job_file: pathlib.Path, job: Job, logs: pathlib.Path, hard_limit: float) -> dict | None:
    """Grade the job written at ``job_file`` on an idle worker; its run (the JSON the worker wrote at
    ``job.result``), or None if the worker failed, died or outlived ``hard_limit`` seconds."""
    result_path = pathlib.Path(job.result)
    result_path.unlink(missing_ok=True)
    worker = POOL.take(logs)
    answer = worker.run(job_file, hard_limit)
    if answer is not None and worker.alive():
        POOL.give_back(worker)
    if answer != "done" or not result_path.is_file():
        log.error("the worker for %s failed (%s); see %s", job_file.parent.parent.name, answer, job.log or worker.log)
        return None
    try:
        return json.loads(result_path.read_text())
    except ValueError:
        log.error("the worker for %s wrote an unreadable result; see %s", job_file.parent.parent.name, job.log)
        return None
