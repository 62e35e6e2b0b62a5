"""A template process that has imported TensorFlow once and forks a fresh, sandboxed evaluator (or kernel) per submission.

Starting a model evaluator (:mod:`autograder.evaluate`) costs a TensorFlow import, about 4-5 s of CPU, and it was
paid once per submission that saves a model. A :class:`Template` pays it once per grading worker: a Python
process in bubblewrap's namespaces (:meth:`autograder.sandbox.Sandbox.wrap_template`) imports NumPy, Keras and
the helper package and waits. For each submission it forks a child (copy-on-write: the import is shared, the
child starts in a fraction of a second), which, before it reads anything of the student's:

1. gives up every descriptor but ``/dev/null`` (the template's own pipes to the grader among them), so that it
   can never speak on the template's channel;
2. under a root grader, empties its capability bounding set and becomes the slot's evaluator user (the same
   unprivileged user a fresh evaluator runs as); else it is the grader's user in the sandbox's user namespace,
   as a fresh evaluator is;
3. sets its own resource limits (memory, processes, file size, open files, CPU time), and keeps the seccomp
   filter and ``no_new_privs`` that bubblewrap set on the template;
4. enters the submission's folder (``jobs/<n>`` in the template's folder, the only one of its own) and answers
   the grader over two named pipes made there for this submission alone.

When the child has ended, the template kills every other process left in its PID namespace (``kill(-1)``; it
is the sandbox's subreaper, so it waits for each) and empties ``/tmp`` and ``/dev/shm`` (but for the mount points in them: its own folder, a Python installation
under ``/tmp``), then reports ``ended``;
if it cannot, it reports ``unclean`` and exits, and the grader starts a new one. The template never loads a
student's file, is not dumpable (a child of the same user can neither read nor write its memory or reach its
descriptors through ``/proc``), has no writable shared mapping a child could write through, and its folder
is checked unchanged after every submission; so nothing one submission does reaches the next, except by
killing the template, which costs only a new start. ``tests/test_forkserver.py`` shows each claim.

The grading kernels of an assignment that preloads modules are forked from a template of their own
(:mod:`autograder.kerneltemplate`); the code a template runs inside its sandbox is :mod:`autograder.template_code`.

Only with bubblewrap: without it (``sandbox: false``, or not installed) the evaluator, and every kernel, is
started per submission as before (:class:`autograder.evaluate.ModelEvaluator`,
:class:`autograder.kernel.SandboxedKernelManager`).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import pathlib
import select
import shutil
import sys
import tempfile
import time

import psutil

from autograder.processes import LineProcess
from autograder.sandbox import Limits, Sandbox
from autograder.template_code import TEMPLATE_CODE

LINE_LIMIT = 4096  # bytes of one answer line
JOB_FILES = 8  # files and folders of the grader's own in a kernel's job folder (the folder, its log, its home)


class TemplateError(RuntimeError):
    """The template did not start, or cannot serve another submission."""


class Child:
    """One submission's evaluator, forked by ``template``: spoken to one line at a time over the named pipes in
    its folder, like :class:`autograder.processes.LineProcess`."""

    def __init__(self, template: Template, folder: pathlib.Path):
        self.template = template
        self.folder = folder
        self._out: int | None = os.open(folder / "out", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # read and write: the open returns at once, and the child's own open of "in" does not wait for a writer
        self._in: int | None = os.open(folder / "in", os.O_RDWR | os.O_CLOEXEC)
        self._buf = b""
        self.ended: str | None = None  # the template's line once the child is gone

    def ask(self, request: str | None, timeout: float) -> str | None:
        """Send ``request`` (None: nothing) and return the answer line; None once the child has ended.
        TimeoutError if no answer came in ``timeout`` s (the caller kills the template)."""
        if self.ended is not None or self._in is None:
            return None
        if request is not None:
            try:
                os.write(self._in, (request.rstrip("\n") + "\n").encode())
            except OSError:
                return None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer within {timeout:g} s")
            if self.template.proc is None:  # killed
                self.ended = "gone"
                return None
            channel = self.template.proc.stdout
            watch = [channel] + ([self._out] if self._out is not None else [])
            ready, _, _ = select.select(watch, [], [], remaining)
            if channel in ready:  # the child is gone: the template says how it ended
                self.ended = self.template.read_line(1) or "gone"
                return None
            if self._out is not None and self._out in ready:
                chunk = os.read(self._out, LINE_LIMIT)
                if not chunk:  # the child closed its end: its "ended" line follows
                    os.close(self._out)
                    self._out = None
                    continue
                self._buf += chunk
                if len(self._buf) > LINE_LIMIT and b"\n" not in self._buf:  # not an answer: done with this child
                    self._close()  # it ends on its next write or read; end() awaits the template's line
                    return None
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace").strip() or None

    def alive(self) -> bool:
        return self.ended is None and self._in is not None

    def _close(self) -> None:
        for fd in (self._in, self._out):
            if fd is not None:
                os.close(fd)
        self._in = self._out = None

    def end(self, timeout: float) -> bool:
        """Close the child's input (it exits) and wait for the template's ``ended``: True when the template is
        ready for the next submission."""
        self._close()
        if self.ended is None:
            self.ended = self.template.read_line(timeout)
        return self.ended is not None and self.ended.startswith("ended ")


class Template:
    """The template process and its folder (see the module docstring). ``code``: the code it runs first (the
    evaluator's, which defines ``serve(inp, out)``, or :func:`kernel_code`'s, which defines ``start(req)``);
    ``env``: the process's environment; ``limits``: its sandbox's; ``readonly``: extra read-only paths (the
    data mirror). A kernel template (``kernel``) also has ``control/``, read-only inside, for the files the
    grader writes for each kernel, and under a root grader its ``jobs/`` is a tmpfs of the kernel's disk limit."""

    def __init__(
        self,
        code: str,
        env: dict[str, str],
        limits: Limits,
        readonly: tuple[pathlib.Path, ...] = (),
        kernel: bool = False,
    ):
        self.code, self.env, self.limits = code, dict(env), limits
        self.readonly, self.kernel = tuple(readonly), kernel
        self.proc: LineProcess | None = None
        self.box: pathlib.Path | None = None
        self.forks = 0
        self.pid: int | None = None  # the template's process id (in this process's PID namespace)
        self.mounted = False  # jobs/ is a tmpfs
        self._listing: list | None = None

    @property
    def what(self) -> str:
        return "kernel template" if self.kernel else "evaluator"

    @property
    def key(self) -> tuple:
        """What the template depends on: its code, environment and sandbox (address space, file size and open
        files, ``/tmp``), not the processes and CPU time each child sets for itself."""
        own = dataclasses.replace(self.limits, processes=0, cpu_seconds=0)
        return (self.code, tuple(sorted(self.env.items())), dataclasses.astuple(own), self.readonly, self.kernel)

    def start(self, timeout: float) -> None:
        """Start the process (it imports TensorFlow) and wait for it to be ready; TemplateError if it is not."""
        from autograder.folders import grading_folder, mount_home

        self.box = pathlib.Path(tempfile.mkdtemp(prefix="kt-" if self.kernel else "evaluator-", dir=grading_folder()))
        self.box.chmod(0o711)
        (self.box / "jobs").mkdir(mode=0o711)
        readonly = self.readonly
        if self.kernel:
            (self.box / "control").mkdir(mode=0o755)
            readonly += (self.box / "control",)
            slack = dataclasses.replace(self.limits, files=self.limits.files + 2 * JOB_FILES)
            self.mounted = mount_home(self.box / "jobs", slack, mode="0711")
        sandbox = Sandbox(self.box, self.limits, evaluator=not self.kernel, readonly=readonly)
        try:
            argv = sandbox.wrap_template(
                [sys.executable, *([] if self.kernel else ["-I"]), "-c", self.code + TEMPLATE_CODE]
            )
            self.proc = LineProcess(
                argv, cwd=self.box, env={**self.env, "HOME": str(self.box)}, pass_fds=sandbox.pass_fds
            )
        finally:
            sandbox.release()
        line = self.read_line(timeout)
        if not line or line.split()[0] != "ready":
            self.close()
            raise TemplateError(f"the {self.what} did not start ({line or 'no answer'})")
        self.pid = self._host_pid(self.proc.proc.pid, line.split()[-1])
        self._listing = _listing(self.box)

    @staticmethod
    def _host_pid(top: int, inner: str) -> int | None:
        """The process below ``top`` whose id in its own PID namespace is ``inner``."""
        try:
            below = psutil.Process(top).children(recursive=True)
        except psutil.Error:
            return None
        for proc in below:
            try:
                with open(f"/proc/{proc.pid}/status") as fh:
                    ids = next((line.split()[1:] for line in fh if line.startswith("NSpid:")), [])
            except OSError:
                continue
            if ids and ids[-1] == inner and proc.pid != top:
                return proc.pid
        return None

    def read_line(self, timeout: float) -> str | None:
        """The template's next line, None if it said nothing in ``timeout`` s (then it is killed) or died."""
        if self.proc is None:
            return None
        try:
            return self.proc.ask(None, timeout)
        except TimeoutError:
            self.close()
            return None

    def said(self) -> bool:
        """Whether the template has a line waiting (without reading it)."""
        if self.proc is None:
            return True
        ready, _, _ = select.select([self.proc.stdout], [], [], 0)
        return bool(ready)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def fork(self, uid: int | None, limits: Limits) -> Child:
        """A child for one submission, in a new folder ``jobs/<n>`` owned by ``uid`` (None: the grader's user)
        with its limits; the caller fills the folder and awaits the child's ``ready``."""
        assert self.proc is not None and self.box is not None
        self.forks += 1
        folder = self.box / "jobs" / str(self.forks)
        folder.mkdir(mode=0o700)
        for name in ("in", "out"):
            os.mkfifo(folder / name, 0o600)
        if uid is not None:
            for path in (folder, folder / "in", folder / "out"):
                os.chown(path, uid, uid)
        child = Child(self, folder)
        try:
            self._send({"folder": str(folder), "uid": uid, "limits": limits.rlimits()})
        except TemplateError:
            child.end(0)
            raise
        return child

    def _send(self, request: dict) -> None:
        assert self.proc is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise TemplateError(f"the {self.what} is gone ({exc})") from None

    def clean(self) -> bool:
        """True when the folder holds what it held at the start (the submissions' folders removed)."""
        if self.box is None:
            return False
        for top in ("jobs", "control"):
            for folder in (self.box / top).iterdir() if (self.box / top).is_dir() else ():
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    folder.unlink(missing_ok=True)
        return not any((self.box / "jobs").iterdir()) and _listing(self.box) == self._listing

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
        if self.box is not None:
            from autograder.folders import remove_grading_folder

            remove_grading_folder(self.box)
        self.proc, self.box, self.pid, self.mounted = None, None, None, False


def _listing(box: pathlib.Path) -> list:
    """Every path under ``box`` with its size, mode and time of change (the template's own files: Keras's)."""
    out = []
    for path in sorted(box.rglob("*")):
        if any(path == box / top or box / top in path.parents for top in ("jobs", "control")):
            continue
        st = path.lstat()
        out.append((str(path.relative_to(box)), st.st_size, st.st_mode, st.st_mtime_ns))
    return out


_IDLE: dict[bool, Template] = {}  # this process's idle templates: one evaluator's and one kernel template at most


def acquire(
    code: str,
    env: dict[str, str],
    limits: Limits,
    timeout: float,
    readonly: tuple[pathlib.Path, ...] = (),
    kernel: bool = False,
) -> Template:
    """This process's idle template of its kind for ``code``, ``env``, ``limits`` and ``readonly``, or a new one
    started (TemplateError); an idle one of the same kind with other settings is ended."""
    wanted = Template(code, env, limits, readonly, kernel)
    found = _IDLE.pop(kernel, None)
    if found is not None and found.key == wanted.key and found.alive():
        return found
    if found is not None:
        found.close()  # another assignment's, or a dead one
    wanted.start(timeout)
    return wanted


def release(template: Template) -> None:
    """Keep ``template`` for the next submission if it is alive and its folder unchanged; else end it."""
    if template.alive() and template.clean():
        old = _IDLE.pop(template.kernel, None)
        if old is not None and old is not template:
            old.close()
        _IDLE[template.kernel] = template
    else:
        template.close()


def close_all() -> None:
    while _IDLE:
        _IDLE.popitem()[1].close()


atexit.register(close_all)
