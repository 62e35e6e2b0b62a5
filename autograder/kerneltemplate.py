"""Kernels forked from a kernel template (:mod:`autograder.forkserver`), for the assignments that preload modules.

The same kind of template serves the grading kernels of an assignment whose settings name modules to
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
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import psutil

from autograder.forkserver import Template, TemplateError, release
from autograder.sandbox import Limits
from autograder.template_code import KERNEL_CODE

SWEEP_TIMEOUT = 60  # seconds a template may take to clear up after a kernel (a fork bomb's remains)
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
