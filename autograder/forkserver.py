"""A template process that has imported TensorFlow once and forks a fresh, sandboxed evaluator per submission.

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

Only with bubblewrap: without it (``sandbox: false``, or not installed) the evaluator is started per submission
as before (:class:`autograder.evaluate.ModelEvaluator`).
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

from autograder.processes import LineProcess
from autograder.sandbox import Limits, Sandbox

# Runs in the template after the evaluator's code (which defines ``serve(inp, out)`` and imports what it needs).
TEMPLATE_CODE = r"""
import ctypes, os, resource, shutil, signal, time, warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork() beside TensorFlow's idle threads
_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option, value):
    args = [ctypes.c_int(option)] + [ctypes.c_ulong(v) for v in (value, 0, 0, 0)]
    if _libc.prctl(*args) != 0:
        raise OSError(ctypes.get_errno(), "prctl(%d, %d) failed" % (option, value))


def child(req):
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    uid = req["uid"]
    if uid is not None:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
        for cap in range(last + 1):
            prctl(24, cap)  # PR_CAPBSET_DROP
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # the permitted and effective capabilities go with root
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        if _libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:  # and the inheritable ones
            raise OSError(ctypes.get_errno(), "capset failed")
    for name, value in req["limits"]:
        resource.setrlimit(getattr(resource, name), (value, value))
    os.chdir(req["folder"])
    os.environ["HOME"] = req["folder"]
    with open("in") as inp, open("out", "w") as out:
        serve(inp, out)


def reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def sweep():
    for _ in range(5000):
        try:
            os.kill(-1, signal.SIGKILL)  # every process of the sandbox but this one and bubblewrap's init
        except ProcessLookupError:
            break
        except PermissionError as exc:
            return "kill: %s" % exc
        reap()
        time.sleep(0.001)
    else:
        return "processes keep running"
    for top in ("/tmp", "/dev/shm"):
        problem = empty(top)
        if problem:
            return problem
    return None


def on_the_way(path):  # a folder holding a mount point
    return any(k.startswith(path + "/") for k in KEEP)


def empty(top):  # remove everything in top but the mount points in it (its own folder, a bound venv) and their way
    for name in os.listdir(top):
        path = os.path.join(top, name)
        if path in KEEP:
            continue
        if on_the_way(path):
            problem = empty(path)
            if problem:
                return problem
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            pass
    left = [n for n in os.listdir(top) if os.path.join(top, n) not in KEEP and not on_the_way(os.path.join(top, n))]
    return "%s is not empty: %s" % (top, left[:3]) if left else None


with open("/proc/self/mountinfo") as fh:  # field 5: the mount point, a space written as \040
    KEEP = {line.split()[4].encode().decode("unicode_escape") for line in fh} | {os.getcwd()}
prctl(4, 0)  # PR_SET_DUMPABLE: no child reads or writes this process's memory or descriptors
prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: what a child leaves running is this process's to kill and wait for
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    line = sys.stdin.readline()
    if not line:
        break
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            child(req)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    problem = sweep()
    sys.stdout.write(("unclean %s" % problem)[:1000] if problem else "ended %d" % os.waitstatus_to_exitcode(status))
    sys.stdout.write("\n")
    sys.stdout.flush()
    if problem:
        break
"""

LINE_LIMIT = 4096  # bytes of one answer line


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
                if len(self._buf) > LINE_LIMIT and b"\n" not in self._buf:
                    return None
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace").strip() or None

    def alive(self) -> bool:
        return self.ended is None and self._in is not None

    def end(self, timeout: float) -> bool:
        """Close the child's input (it exits) and wait for the template's ``ended``: True when the template is
        ready for the next submission."""
        for fd in (self._in, self._out):
            if fd is not None:
                os.close(fd)
        self._in = self._out = None
        if self.ended is None:
            self.ended = self.template.read_line(timeout)
        return self.ended is not None and self.ended.startswith("ended ")


class Template:
    """The template process and its folder (see the module docstring). ``code``: the evaluator's code, which
    defines ``serve(inp, out)``; ``env``: the process's environment; ``limits``: its sandbox's."""

    def __init__(self, code: str, env: dict[str, str], limits: Limits):
        self.code, self.env, self.limits = code, dict(env), limits
        self.proc: LineProcess | None = None
        self.box: pathlib.Path | None = None
        self.forks = 0
        self._listing: list | None = None

    @property
    def key(self) -> tuple:
        """What the template depends on: its code, environment and sandbox (address space, file size and open
        files, ``/tmp``), not the processes and CPU time each child sets for itself."""
        own = dataclasses.replace(self.limits, processes=0, cpu_seconds=0)
        return (self.code, tuple(sorted(self.env.items())), dataclasses.astuple(own))

    def start(self, timeout: float) -> None:
        """Start the process (it imports TensorFlow) and wait for it to be ready; TemplateError if it is not."""
        from autograder.folders import grading_folder

        self.box = pathlib.Path(tempfile.mkdtemp(prefix="evaluator-", dir=grading_folder()))
        self.box.chmod(0o711)
        (self.box / "jobs").mkdir(mode=0o711)
        sandbox = Sandbox(self.box, self.limits, evaluator=True)
        try:
            argv = sandbox.wrap_template([sys.executable, "-I", "-c", self.code + TEMPLATE_CODE])
            self.proc = LineProcess(
                argv, cwd=self.box, env={**self.env, "HOME": str(self.box)}, pass_fds=sandbox.pass_fds
            )
        finally:
            sandbox.release()
        line = self.read_line(timeout)
        if line != "ready":
            self.close()
            raise TemplateError(f"the evaluator did not start ({line or 'no answer'})")
        self._listing = _listing(self.box)

    def read_line(self, timeout: float) -> str | None:
        """The template's next line, None if it said nothing in ``timeout`` s (then it is killed) or died."""
        if self.proc is None:
            return None
        try:
            return self.proc.ask(None, timeout)
        except TimeoutError:
            self.close()
            return None

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
        request = {"folder": str(folder), "uid": uid, "limits": limits.rlimits()}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            child.end(0)
            raise TemplateError(f"the evaluator is gone ({exc})") from None
        return child

    def clean(self) -> bool:
        """True when the folder holds what it held at the start (the submissions' folders removed)."""
        if self.box is None:
            return False
        for folder in (self.box / "jobs").iterdir():
            shutil.rmtree(folder, ignore_errors=True)
        return not any((self.box / "jobs").iterdir()) and _listing(self.box) == self._listing

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
        if self.box is not None:
            shutil.rmtree(self.box, ignore_errors=True)
        self.proc, self.box = None, None


def _listing(box: pathlib.Path) -> list:
    """Every path under ``box`` with its size, mode and time of change (the template's own files: Keras's)."""
    out = []
    for path in sorted(box.rglob("*")):
        if path == box / "jobs" or box / "jobs" in path.parents:
            continue
        st = path.lstat()
        out.append((str(path.relative_to(box)), st.st_size, st.st_mode, st.st_mtime_ns))
    return out


_IDLE: dict[tuple, Template] = {}  # this process's idle template, by key: one at a time


def acquire(code: str, env: dict[str, str], limits: Limits, timeout: float) -> Template:
    """This process's idle template for ``code``, ``env`` and ``limits``, or a new one started (TemplateError)."""
    wanted = Template(code, env, limits)
    found = _IDLE.pop(wanted.key, None)
    if found is not None and found.alive():
        return found
    close_all()  # another key's template, or a dead one
    wanted.start(timeout)
    return wanted


def release(template: Template) -> None:
    """Keep ``template`` for the next submission if it is alive and its folder unchanged; else end it."""
    if template.alive() and template.clean():
        close_all()
        _IDLE[template.key] = template
    else:
        template.close()


def close_all() -> None:
    while _IDLE:
        _IDLE.popitem()[1].close()


atexit.register(close_all)
