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

**Kernel templates.** The same template serves the grading kernels of an assignment whose settings name modules to
``preload`` (``autograder/assignments.yml``: TensorFlow for hw3-hw7): its code (:func:`kernel_code`) imports
ipykernel, NumPy and those modules once, and each child becomes one submission's IPython kernel, as ``python -m
ipykernel_launcher`` started in the submission's folder would be: the job's environment replaces the template's,
its stderr goes to the submission's log (a named pipe the grader reads), Python's and NumPy's random state is
drawn afresh, and it runs as the slot's *kernel* user with the kernel's limits. A :class:`KernelJob` is one
submission's part of the template: ``jobs/<n>/home`` (the kernel's working folder, the only place it writes;
under a root grader ``jobs/`` is a tmpfs of the kernel's disk limit) and ``control/<n>`` (the grader's files for
the kernel, in ``control/``, bound read-only inside). The kernel's first start and each restart (a cell that
killed it or would not be interrupted) are forks in the same folder, each after the template has cleared up
the one before; jupyter_client sees a forked kernel as a process (:class:`ForkedKernel`). If the template dies
mid-submission (a kernel of the grader's own user can kill it), the submission's later kernels start in a
sandbox of their own, in the same folder. ``tests/test_kernel_template.py`` shows what is particular to kernels;
``tests/test_sandbox.py`` checks every claim of the sandbox on forked kernels as on fresh ones.

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
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from autograder.processes import LineProcess
from autograder.sandbox import Limits, Sandbox

# Runs in the template after the evaluator's code (which defines ``serve(inp, out)`` and imports what it needs).
TEMPLATE_CODE = r"""
import ctypes, json, os, resource, shutil, signal, sys, time, warnings

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
    start(req)


if "start" not in globals():  # the evaluator's: one request line in, one answer line out, over named pipes

    def start(req):
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
sys.stdout.write("ready %d\n" % os.getpid())
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
    if req.get("report"):
        sys.stdout.write("forked %d\n" % pid)
        sys.stdout.flush()
    while True:  # reap what the child leaves behind as it dies (this process is their subreaper), until it ends
        done, status = os.waitpid(-1, 0)
        if done == pid:
            break
    problem = sweep()
    sys.stdout.write(("unclean %s" % problem)[:1000] if problem else "ended %d" % os.waitstatus_to_exitcode(status))
    sys.stdout.write("\n")
    sys.stdout.flush()
    if problem:
        break
"""

LINE_LIMIT = 4096  # bytes of one answer line
SWEEP_TIMEOUT = 60  # seconds a template may take to clear up after a kernel (a fork bomb's remains)
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


# A kernel template's code (``PRELOAD``: the modules to import once): each child becomes the submission's IPython
# kernel, as ``python -m ipykernel_launcher`` started in its folder with the job's environment would be.
KERNEL_CODE = r"""
import importlib, os, random, sys

import ipykernel.kernelapp
import ipykernel_launcher
import numpy

for _name in PRELOAD:
    importlib.import_module(_name)


def start(req):
    os.environ.clear()
    os.environ.update(req["env"])
    try:  # the kernel's own stderr goes to the submission's log, through the named pipe the grader reads
        fd = os.open(req["log"], os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        fd = None
    if fd is not None:
        os.set_blocking(fd, True)
        os.dup2(fd, 2)
        os.close(fd)
    sys.path[0] = os.getcwd()
    sys.argv = [ipykernel_launcher.__file__, *req["argv"]]
    random.seed()  # each kernel its own random state, as a fresh process has (the template's was seeded once)
    numpy.random.seed()
    config = sys.modules.get("keras.src.backend.config")
    if config is not None and hasattr(config, "_KERAS_DIR"):  # Keras fixed its folder at import: the template's
        base = os.path.expanduser("~")
        config._KERAS_DIR = os.environ.get("KERAS_HOME") or os.path.join(
            base if os.access(base, os.W_OK) else "/tmp", ".keras"
        )
    ipykernel.kernelapp.IPKernelApp.launch_instance(argv=list(req["argv"]))
"""
KERNEL_COMMAND = ["-m", "ipykernel_launcher"]  # what a kernel spec's command must run for a forked kernel to stand in


def kernel_code(preload: tuple[str, ...]) -> str:
    """The code of a kernel template that imports ``preload`` (module names) once."""
    from autograder.course import MODULE_NAME

    bad = [name for name in preload if not MODULE_NAME.match(name)]
    if bad:
        raise TemplateError(f"not a module name: {bad[0]!r}")
    return f"PRELOAD = {tuple(preload)!r}\n" + KERNEL_CODE


class ForkedKernel:
    """A kernel forked by a kernel template, as jupyter_client's provisioner sees a kernel's process (the part of
    ``subprocess.Popen`` it uses). Its end is what the template says: ``ended N`` or ``unclean ...``."""

    stdin = stdout = stderr = None

    def __init__(self, template: Template, process: psutil.Process):
        self.template, self.process, self.pid = template, process, process.pid
        self.returncode: int | None = None
        self.clean = True  # False once the template could not clear up after it (the template is gone then)

    def poll(self) -> int | None:
        # The template's line may already sit in this process's buffer of its pipe, where select() cannot see it:
        # once the kernel's process is gone, the line is read (waiting while the template clears up after it).
        if self.returncode is None and (self.template.said() or not self._running()):
            line = self.template.read_line(SWEEP_TIMEOUT) or "gone"
            self.clean = line.startswith("ended ")
            self.returncode = int(line.split()[1]) if self.clean else -9
        return self.returncode

    def _running(self) -> bool:
        try:
            return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                self.process.send_signal(sig)  # psutil: only this process, never one that reused its id
            except psutil.Error:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelJob:
    """One submission's kernels, forked by a kernel template: the folder ``jobs/<n>`` (``home/``, the kernel's
    working folder and the only place it writes, and ``log``, the named pipe its stderr goes to) and
    ``control/<n>`` (the grader's files for it, read-only inside). The first kernel and each restart is a fork;
    the template clears up after each. ``drain(fd)`` reads the kernels' log until its end."""

    def __init__(self, template: Template, uid: int | None, drain):
        assert template.box is not None
        template.forks += 1
        self.template, self.uid = template, uid
        self.folder = template.box / "jobs" / str(template.forks)
        self.home = self.folder / "home"
        self.control = template.box / "control" / str(template.forks)
        self.kernel: ForkedKernel | None = None
        from autograder.folders import UNIX_SOCKET_PATH

        if len(os.fsencode(self.home / ".kernel" / "ipc-12345")) > UNIX_SOCKET_PATH:
            raise TemplateError(f"the kernel's sockets under {self.home} would pass a socket path's limit")
        self.folder.mkdir(mode=0o711)
        self.home.mkdir(mode=0o700)
        self.control.mkdir(mode=0o755)
        log = self.folder / "log"
        os.mkfifo(log, 0o600)
        if uid is not None:
            for path in (self.home, log):
                os.chown(path, uid, uid)
        # The reader first (a kernel's open for writing then never waits), and a writer of this process's own, so
        # that the reader sees no end between one kernel and the next: it ends once finish() closes the writer
        # and the last kernel (and all it started) is gone.
        reader = os.open(log, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._writer: int | None = os.open(log, os.O_WRONLY | os.O_CLOEXEC)
        os.set_blocking(reader, True)
        threading.Thread(target=drain, args=(reader,), daemon=True).start()

    def usable(self) -> bool:
        """Whether the next kernel can be forked (the template is alive; the last kernel ended and was cleared up)."""
        last = self.kernel
        return self.template.alive() and (last is None or (last.poll() is not None and last.clean))

    def launch(self, argv: list[str], env: dict[str, str], limits: Limits, timeout: float) -> ForkedKernel:
        """Fork a kernel that runs ``python argv...`` (``-m ipykernel_launcher -f <connection file> ...``) with
        ``env`` and ``limits`` in the job's home; TemplateError if the template cannot."""
        if argv[: len(KERNEL_COMMAND)] != KERNEL_COMMAND:
            raise TemplateError(f"a kernel template runs ipykernel's kernels only, not {argv[:3]}")
        if not self.usable():
            raise TemplateError("the kernel template cannot fork another kernel")
        env = {k: v for k, v in env.items() if k != "JPY_PARENT_PID"}  # its parent is not the grader
        request = {
            "folder": str(self.home),
            "uid": self.uid,
            "limits": limits.rlimits(),
            "report": True,
            "env": env,
            "argv": argv[len(KERNEL_COMMAND) :],
            "log": str(self.folder / "log"),
        }
        self.template._send(request)
        line = self.template.read_line(timeout)
        pid = None
        if line and line.startswith("forked ") and self.template.pid is not None:
            pid = Template._host_pid(self.template.pid, line.split()[1])
        if pid is None:
            self.template.close()
            raise TemplateError(f"the kernel template did not fork ({line or 'no answer'})")
        self.kernel = ForkedKernel(self.template, psutil.Process(pid))
        return self.kernel

    def finish(self, timeout: float = 30) -> None:
        """After the submission: end its kernel, close the log, and give the template back (or end it)."""
        kernel = self.kernel
        if kernel is not None and kernel.poll() is None:
            kernel.kill()
            try:
                kernel.wait(timeout)
            except subprocess.TimeoutExpired:
                self.template.close()
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None
        if kernel is not None and not kernel.clean:
            self.template.close()
        release(self.template)


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
