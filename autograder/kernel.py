"""The grading kernel seen from the worker: started in the sandbox, its output bounded, its strays reaped.

:class:`SandboxedKernelManager` starts ipykernel inside :class:`autograder.sandbox.Sandbox` with nothing of the
worker's but what it needs; :class:`BoundedClient` is nbclient's executor with output limits; :class:`Reaper`
kills what a cell leaves running in the sandbox besides the kernel; :func:`folder_usage` measures the kernel's
folder and :func:`folder_over_limit` holds it to its disk limit.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import subprocess
import threading
from collections.abc import Callable

import nbformat
import psutil
from jupyter_client.manager import AsyncKernelManager, KernelManager
from nbclient import NotebookClient

from autograder.kerneltemplate import KernelJob
from autograder.sandbox import Limits, Sandbox

# Messages whose content the executed notebook keeps: counted against the output limits.
OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error", "update_display_data", "comm_open", "comm_msg"}
FORK_TIMEOUT = 30  # seconds a kernel template may take to fork a kernel
KERNEL_LOG_LIMIT = 64 * 2**10  # bytes of the kernel's own stderr (start-up errors) kept in the job's log
REAP_ROUNDS = 50  # a fork bomb is frozen in a few rounds; the cap only guards against a pathological tree
QUIET_ROUNDS = 5  # passes of freeze-then-kill until one finds nothing left
log = logging.getLogger("autograder.worker")  # the kernel's stderr lines go to the job's log, as the worker's


def drain_kernel_log(fd: int) -> None:
    """Copy the kernel's stderr into the job's log, each line marked as the kernel's; drop what passes
    KERNEL_LOG_LIMIT (still reading, so the kernel never blocks on a full pipe)."""
    kept = 0
    with os.fdopen(fd, "rb") as pipe:
        for line in pipe:
            if kept < KERNEL_LOG_LIMIT:
                text = line[: KERNEL_LOG_LIMIT - kept].decode("utf-8", "replace").rstrip("\n")
                log.warning("kernel: %r", text)  # repr: the kernel's text cannot pass for the grader's own lines
                kept += len(line)
                if kept >= KERNEL_LOG_LIMIT:
                    log.warning("kernel: (its further output is not kept)")


def _weight(content, budget: int) -> int:
    """How much a message's content would add to the notebook: characters of its strings, 8 per other value;
    counting stops once past ``budget``."""
    total, stack = 0, [content]
    while stack and total <= budget:
        value = stack.pop()
        if isinstance(value, str | bytes):
            total += len(value)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        else:
            total += 8
    return total


def folder_usage(folder: pathlib.Path, stop_at: int) -> tuple[int, int]:
    """(bytes, files and folders) under ``folder``, without following links or leaving its file system.

    GNU ``du`` walks the tree relative to each folder's descriptor, so a chain nested deeper than a path can
    be long (4,096 bytes) is counted whole; where ``du`` is missing, a walk in Python stops counting past
    ``stop_at`` entries (and cannot see below the path limit)."""
    du = shutil.which("du")
    if du is not None:
        try:
            sized = subprocess.run(
                [du, "-s", "-x", "-B1", "--apparent-size", str(folder)], capture_output=True, text=True, timeout=60
            )
            counted = subprocess.run(
                [du, "-s", "-x", "--inodes", str(folder)], capture_output=True, text=True, timeout=60
            )
            return int(sized.stdout.split()[0]), int(counted.stdout.split()[0]) - 1  # less the folder itself
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            pass  # not GNU du: walk below
    size = count = 0
    pending: list[str | pathlib.Path] = [folder]
    while pending and count <= stop_at:
        try:
            with os.scandir(pending.pop()) as it:
                for entry in it:
                    count += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        else:
                            size += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return size, count


def folder_over_limit(folder: pathlib.Path, limits: Limits) -> str | None:
    """None while the kernel's folder is within its disk limit (bytes, files and folders), else what it reached.
    Under a root grader the folder is a tmpfs of that size and file count, so a write past it fails at once
    (ENOSPC) and the tmpfs is full once either its blocks or its inodes are; elsewhere this check is the bound."""
    size, count = folder_usage(folder, limits.files)
    exhausted = False
    if os.path.ismount(folder):
        fs = os.statvfs(folder)
        exhausted = fs.f_bavail == 0 or fs.f_favail == 0
    if size < limits.disk and count < limits.files and not exhausted:
        return None
    what = f"{count} files and folders" if count >= limits.files else f"{size / 2**20:.0f} MiB"
    return f"the notebook's folder reached its limit ({limits.disk / 2**20:g} MiB, {limits.files} files and folders): {what}"


class BoundedClient(NotebookClient):
    """nbclient's executor with bounded outputs: a cell keeps at most ``cell_output_limit`` characters of
    output and the notebook at most ``notebook_output_limit``; the rest is dropped as it arrives (a stream is
    cut at the limit), with one note in the cell saying so. Errors are always kept (their traceback cut).
    ``manager_factory`` makes each kernel's manager (the sandboxed one) in nbclient's place."""

    def __init__(
        self,
        nb,
        cell_output_limit: int,
        notebook_output_limit: int,
        manager_factory: Callable[[], KernelManager] | None = None,
        **kw,
    ):
        super().__init__(nb, **kw)
        self.manager_factory = manager_factory
        self.cell_output_limit = cell_output_limit
        self.notebook_output_limit = notebook_output_limit
        self.output_used: dict[int, int] = {}
        self.output_total = 0
        self.truncated: set[int] = set()

    def create_kernel_manager(self) -> KernelManager:
        if self.manager_factory is None:
            return super().create_kernel_manager()
        self.km = self.manager_factory()
        return self.km

    def process_message(self, msg, cell, cell_index):
        kind = msg.get("msg_type")
        if kind in OUTPUT_MESSAGES:
            used = self.output_used.get(cell_index, 0)
            room = max(0, min(self.cell_output_limit - used, self.notebook_output_limit - self.output_total))
            content = msg.get("content") or {}
            size = _weight(content, room) + sum(len(b) for b in msg.get("buffers") or [])
            if kind == "error":
                tb = [str(line)[:2000] for line in (content.get("traceback") or [])[-30:]]
                msg = {**msg, "content": {**content, "evalue": str(content.get("evalue", ""))[:2000], "traceback": tb}}
                size = min(size, room)
            elif size > room:
                if kind == "stream" and room > 0 and isinstance(content.get("text"), str):
                    msg, size = {**msg, "content": {**content, "text": content["text"][:room]}}, room
                else:
                    msg, size = None, 0
                if cell_index not in self.truncated:
                    self.truncated.add(cell_index)
                    cell.outputs.append(
                        nbformat.v4.new_output(
                            "stream",
                            name="stderr",
                            text=(
                                f"\n[output truncated by the grader: a cell keeps {self.cell_output_limit >> 10} KiB of "
                                f"output, the notebook {self.notebook_output_limit >> 20} MiB]\n"
                            ),
                        )
                    )
            self.output_used[cell_index] = used + size
            self.output_total += size
            if msg is None:
                return None
        return super().process_message(msg, cell, cell_index)


def _children(proc) -> list:
    """All descendants of ``proc``, or none if it is gone."""
    import psutil

    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started inside :class:`autograder.sandbox.Sandbox`, talking over Unix sockets in its
    working directory (it has no network), interrupted by message (signals do not cross the sandbox)."""

    sandbox: Sandbox | None = None
    forked: KernelJob | None = None  # the submission's kernel template, if its kernels are forked from one
    _fork_next = False  # the command formatted last is to be forked, not started

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        cmd += ["--HistoryManager.enabled=False"]
        self._fork_next = False
        if self.sandbox is None:
            return cmd
        self.sandbox.prepare()  # hand the working directory to the kernel's user
        os.chmod(self.connection_file, 0o644)  # just written (0600): the kernel's user must read it
        if self.forked is not None and self.forked.usable():
            self._fork_next = True  # in the template's sandbox (autograder.kerneltemplate.KernelJob)
            return cmd
        return self.sandbox.wrap(cmd)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        """Start the kernel with nothing of the worker's but what it needs: stdin and stdout are /dev/null, stderr
        a pipe this process drains into the job's log (marked as the kernel's, cut at KERNEL_LOG_LIMIT), and
        the seccomp filter's descriptor for bubblewrap. Never the worker's log or any other open file. A forked
        kernel's stderr goes to its job's log through :class:`autograder.kerneltemplate.KernelJob`'s pipe."""
        if self._fork_next and self.forked is not None and self.sandbox is not None:
            provisioner = self.provisioner
            assert provisioner is not None
            process = self.forked.launch(
                kernel_cmd[1:], kw.get("env") or {}, self.sandbox.limits_now(), timeout=FORK_TIMEOUT
            )
            provisioner.process, provisioner.pid, provisioner.pgid = process, process.pid, None
            provisioner.cwd = kw.get("cwd")
            self._reconcile_connection_info(provisioner.connection_info)
            return
        read_end, write_end = os.pipe()
        kw.update(
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=write_end,
            pass_fds=self.sandbox.pass_fds if self.sandbox is not None else (),
        )
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            if self.sandbox is not None:
                self.sandbox.release()
        threading.Thread(target=drain_kernel_log, args=(read_end,), daemon=True).start()

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"
        return spec


class Reaper:
    """Finds and kills what the cells of one sandboxed kernel leave running. ``uid``: under a root grader
    without bubblewrap, the kernel's user (every process of it is the kernel's); else None."""

    def __init__(self, uid: int | None = None):
        self.uid = uid
        self._keep_for: int | None = None  # the top process the kernel's own pids below were found for
        self._keep: set[int] = set()

    def reap(self, top, forked: bool = False) -> int:
        """Kill the processes a cell left behind below ``top`` (the kernel's provisioner process); how many (a fork bomb's survivors, a daemon): in the sandbox only the
        kernel and bubblewrap's own processes may outlive a cell. A forked copy of the kernel would otherwise
        hold the process limit and the kernel's sockets, and a fork bomb left running takes the CPU from the
        kernel: the next tests would time out.

        A fork bomb keeps forking, and its processes keep dying, while it is being killed: every process may
        vanish between two looks at it (psutil.NoSuchProcess), and the ones that exit stay as zombies until
        their parent waits. So each process is handled on its own, and each round stops (SIGSTOP) every
        stray it finds, which then cannot fork any more, until a round finds no new one; then all of them
        are killed."""
        keep = self._kernel_line(top, forked)
        if not keep:
            return 0
        stopped: dict[int, psutil.Process] = {}
        killed = 0
        for _ in range(QUIET_ROUNDS):  # until a whole pass, kill included, finds nothing left
            quiet = 0
            for _ in range(REAP_ROUNDS):
                fresh = []
                for proc in self._sandboxed(top):
                    if proc.pid in keep or proc.pid in stopped:
                        continue
                    try:
                        if proc.status() == psutil.STATUS_ZOMBIE:  # dead already; its parent (or init) reaps it
                            continue
                        proc.suspend()
                    except psutil.Error:
                        continue
                    fresh.append(proc)
                stopped.update((p.pid, p) for p in fresh)
                # A child born while a round scans /proc may be missed by that round: only two empty rounds
                # in a row say that nothing is left running.
                quiet = 0 if fresh else quiet + 1
                if quiet == 2:
                    break
            if not stopped:
                break
            for proc in stopped.values():
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(list(stopped.values()), timeout=2)
            killed += len(stopped)
            stopped = {}
        return killed

    def _sandboxed(self, top) -> list:
        """Every process that may be the cell's: the descendants of the kernel's top process and every process
        in the kernel's PID namespace. The namespace is what makes the sweep complete: psutil finds
        descendants by walking parent links, and a fork bomb's process that exits mid-walk hides its own
        children (re-parented to the namespace's init a moment later) from that walk; a sweep that missed
        them would leave the bomb running. Without bubblewrap there is no such namespace (orphans go to the
        machine's init), but under a root grader every process of the slot's user is the kernel's."""
        found = {p.pid: p for p in _children(top)}
        ns = self._namespace_of(top)
        uid = self.uid if ns is None else None
        if ns is not None or uid is not None:
            for pid in psutil.pids():
                if pid in found or pid == top.pid:
                    continue
                try:
                    if ns is not None and os.readlink(f"/proc/{pid}/ns/pid") == ns:
                        found[pid] = psutil.Process(pid)
                    elif uid is not None and (proc := psutil.Process(pid)).uids().real == uid:
                        found[pid] = proc
                except (OSError, psutil.Error):
                    continue
        return list(found.values())

    def _namespace_of(self, top) -> str | None:
        """The kernel's PID namespace (``pid:[inode]``), if it has its own (not the grader's)."""
        for pid in self._keep if self._keep_for == top.pid else ():
            try:
                ns = os.readlink(f"/proc/{pid}/ns/pid")
            except OSError:
                continue
            if ns != os.readlink("/proc/self/ns/pid"):
                return ns
        return None

    def _kernel_line(self, top, forked: bool = False) -> set[int]:
        """The pids that belong to the running kernel: the provisioner's process (bwrap), the kernel's
        python process (the oldest one: its forks are younger) and the processes between them. Found once
        per kernel start, before a fork bomb could hide it among its copies. A kernel forked by a template
        (``forked``) is ``top`` itself; the template and bubblewrap's init above it in its PID namespace stay."""
        if self._keep_for == top.pid:
            return self._keep
        if forked:
            try:
                ns = os.readlink(f"/proc/{top.pid}/ns/pid")
                keep = {top.pid}
                for parent in top.parents():
                    if os.readlink(f"/proc/{parent.pid}/ns/pid") != ns:
                        break
                    keep.add(parent.pid)
            except (OSError, psutil.Error):
                return set()
            self._keep_for, self._keep = top.pid, keep
            return keep
        kernels = []
        for proc in [top, *_children(top)]:
            try:  # the python process, not bwrap (whose arguments name it too)
                if proc.name() != "bwrap" and "ipykernel_launcher" in " ".join(proc.cmdline()):
                    kernels.append((proc.create_time(), proc.pid, proc))
            except psutil.Error:
                continue
        if not kernels:
            return set()
        kernel = min(kernels, key=lambda k: (k[0], k[1]))[2]
        try:
            keep = {top.pid, kernel.pid, *(p.pid for p in kernel.parents())}
        except psutil.Error:
            return set()
        self._keep_for, self._keep = top.pid, keep
        return keep
