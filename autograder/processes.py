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
import hashlib
import json
import logging
import os
import pathlib
import selectors
import signal
import subprocess
import sys
import threading

import psutil

from autograder.job import Job
from autograder.uids import evaluator_uid, kernel_uid

log = logging.getLogger(__name__)


def kill_tree(pid: int) -> None:
    """Kill process ``pid`` and every process below it (children first), and its process group if it leads one
    (a process started with ``start_new_session``: what it started in the group dies too, found or not)."""
    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class LineProcess:
    """A child process spoken to one line at a time over its stdin and stdout: a request line in, an answer
    line out, each answer awaited for a limited time. The worker processes of :class:`Pool` and the model
    evaluator (:mod:`autograder.evaluate`) are both such processes. The child leads a session of its own, so
    :meth:`kill` takes whatever it started with it."""

    def __init__(self, argv: list[str], *, stderr=subprocess.DEVNULL, **popen):
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
            **popen,
        )
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None  # both are pipes (PIPE above)
        self.stdin, self.stdout = stdin, stdout

    def ask(self, request: str | None, timeout: float) -> str | None:
        """Send ``request`` (a line; None: send nothing) and return the answer line, stripped; None if the
        process closed its end or died. TimeoutError, the process killed, if no answer came in ``timeout`` s."""
        try:
            if request is not None:
                self.stdin.write(request.rstrip("\n") + "\n")
                self.stdin.flush()
            with selectors.DefaultSelector() as sel:
                sel.register(self.stdout, selectors.EVENT_READ)
                if not sel.select(timeout=timeout):
                    self.kill()
                    raise TimeoutError(f"no answer within {timeout:g} s")
            return self.stdout.readline(4096).strip() or None
        except (BrokenPipeError, OSError, ValueError):  # ValueError: a pipe already closed by kill()
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        kill_tree(self.proc.pid)
        self.proc.wait()

    def stop(self, timeout: float = 10) -> None:
        """End the process by closing its stdin; kill it if it has not ended within ``timeout`` seconds."""
        try:
            self.stdin.close()
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


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


class Worker(LineProcess):
    """One ``autograder.worker --serve`` process; its stderr (the kernels' too, between jobs) goes to ``log``."""

    def __init__(self, log_file: pathlib.Path):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_file
        self.inherited = inherited()
        with log_file.open("ab") as fh:
            super().__init__([sys.executable, "-m", "autograder.worker", "--serve"], stderr=fh)

    def run(self, job_file: pathlib.Path, hard_limit: float) -> str | None:
        """The worker's answer for one job, or None if it died or outlived ``hard_limit`` (then it is killed)."""
        try:
            return self.ask(str(job_file), hard_limit)
        except TimeoutError:
            return None


def inherited() -> str:
    """A digest of what a worker started now would inherit and keep for its life: the interpreter, the working
    folder and the whole environment (PATH decides whether it finds bubblewrap, say)."""
    state = [sys.executable, os.getcwd(), sorted(os.environ.items())]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()


class Pool:
    """Idle workers of this process. A worker serves any later job started with the same environment
    (:func:`inherited`), also another course's: what it knows of a job comes in the job file, and it restores its
    own environment after each one. One started for this course's log folder is preferred; a worker's messages
    between jobs stay in the log of the course it was started for."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._started = 0

    def take(self, logs: pathlib.Path) -> Worker:
        key = inherited()
        with self._lock:
            for worker in list(self._idle):
                if not worker.alive():
                    self._idle.remove(worker)
            same = [w for w in self._idle if w.inherited == key]
            if same:
                worker = next((w for w in same if w.log.parent == logs), same[0])
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
