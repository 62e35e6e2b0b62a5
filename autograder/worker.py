"""Execute one restored submission in a fresh, sandboxed kernel: the process the pipeline starts per submission.

Run as ``python -m autograder.worker JOB.json``. The job names the restored notebook (kept outside the
kernel's reach), the kernel's working directory, the time limits, the sandbox and the kernel's environment;
the worker writes the executed notebook and a JSON result. Nothing here touches the gradebook.

The kernel runs every cell except the test cells. A test cell (an nbgrader ``grade`` cell that is not an
answer) runs here, in the worker's own process, against the live kernel, under the grading contract of
:mod:`autograder.contract`: the kernel only ever answers with data.

Time limits: a cell that runs past ``cell_timeout`` is interrupted (SIGINT). If the kernel does not answer
within a few seconds after that (a loop that ignores SIGINT) or has died (``os._exit``, a segfault, the
memory limit), the kernel is restarted and the cells before the failed one are run again, outputs
discarded, so that a timeout or a crash costs only the questions that depend on the failed cell.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import queue
import re
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import time

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from adl_helpers import grading as adl_grading
from autograder.contract import (
    KERNEL_SIDE,
    MAX_RESPONSE,
    KernelUnavailable,
    Link,
    ProtocolError,
    TrustedTests,
    read_answer,
)
from autograder.evaluate import ModelEvaluator
from autograder.files import write_json
from autograder.formgrader import sanitize_notebook
from autograder.job import Job, JobError
from autograder.sandbox import Limits, Sandbox

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")
PROBE_TIMEOUT = 5
KERNEL_LOG_LIMIT = 64 * 2**10  # bytes of the kernel's own stderr (start-up errors) kept in the job's log
# Messages whose content the executed notebook keeps: counted against the output limits.
OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error", "update_display_data", "comm_open",
                   "comm_msg"}
log = logging.getLogger("autograder.worker")
REAP_ROUNDS = 50  # a fork bomb is frozen in a few rounds; the cap only guards against a pathological tree
QUIET_ROUNDS = 5  # passes of freeze-then-kill until one finds nothing left


def _error_of(cell) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            line = None
            for frame in out.get("traceback", []):
                m = CELL_LINE.search(ANSI.sub("", frame))
                if m:
                    line = int(m.group(1))
                    break
            return {"ename": out.get("ename", ""), "evalue": str(out.get("evalue", ""))[:2000], "line": line}
    return None


def is_test_cell(cell) -> bool:
    """An autograded test cell: run by the trusted grader, never by the kernel."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _drain(fd: int) -> None:
    """Copy the kernel's stderr into the job's log, each line marked as the kernel's; drop what passes
    KERNEL_LOG_LIMIT (still reading, so the kernel never blocks on a full pipe)."""
    kept = 0
    with os.fdopen(fd, "rb") as pipe:
        for line in pipe:
            if kept < KERNEL_LOG_LIMIT:
                text = line[:KERNEL_LOG_LIMIT - kept].decode("utf-8", "replace").rstrip("\n")
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


def _folder_usage(folder: pathlib.Path, stop_at: int) -> tuple[int, int]:
    """(bytes, files and folders) under ``folder``, without following links or leaving its file system.

    GNU ``du`` walks the tree relative to each folder's descriptor, so a chain nested deeper than a path can
    be long (4,096 bytes) is counted whole; where ``du`` is missing, a walk in Python stops counting past
    ``stop_at`` entries (and cannot see below the path limit)."""
    du = shutil.which("du")
    if du is not None:
        try:
            size = subprocess.run([du, "-s", "-x", "-B1", "--apparent-size", str(folder)], capture_output=True,
                                  text=True, timeout=60)
            count = subprocess.run([du, "-s", "-x", "--inodes", str(folder)], capture_output=True, text=True,
                                   timeout=60)
            return int(size.stdout.split()[0]), int(count.stdout.split()[0]) - 1  # less the folder itself
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            pass  # not GNU du: walk below
    size = count = 0
    pending = [folder]
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


class BoundedClient(NotebookClient):
    """nbclient's executor with bounded outputs: a cell keeps at most ``cell_output_limit`` characters of
    output and the notebook at most ``notebook_output_limit``; the rest is dropped as it arrives (a stream is
    cut at the limit), with one note in the cell saying so. Errors are always kept (their traceback cut)."""

    def __init__(self, nb, cell_output_limit: int, notebook_output_limit: int, **kw):
        super().__init__(nb, **kw)
        self.cell_output_limit = cell_output_limit
        self.notebook_output_limit = notebook_output_limit
        self.output_used: dict[int, int] = {}
        self.output_total = 0
        self.truncated: set[int] = set()

    def process_message(self, msg, cell, cell_index):
        kind = msg.get("msg_type")
        if kind in OUTPUT_MESSAGES:
            used = self.output_used.get(cell_index, 0)
            room = max(0, min(self.cell_output_limit - used, self.notebook_output_limit - self.output_total))
            content = msg.get("content") or {}
            size = _weight(content, room) + sum(len(b) for b in msg.get("buffers") or [])
            if kind == "error":
                tb = [str(line)[:2000] for line in (content.get("traceback") or [])[-30:]]
                msg = {**msg, "content": {**content, "evalue": str(content.get("evalue", ""))[:2000],
                                          "traceback": tb}}
                size = min(size, room)
            elif size > room:
                if kind == "stream" and room > 0 and isinstance(content.get("text"), str):
                    msg, size = {**msg, "content": {**content, "text": content["text"][:room]}}, room
                else:
                    msg, size = None, 0
                if cell_index not in self.truncated:
                    self.truncated.add(cell_index)
                    cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=(
                        f"\n[output truncated by the grader: a cell keeps {self.cell_output_limit >> 10} KiB of "
                        f"output, the notebook {self.notebook_output_limit >> 20} MiB]\n")))
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

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        cmd += ["--HistoryManager.enabled=False"]
        if self.sandbox is None:
            return cmd
        self.sandbox.prepare()  # hand the working directory to the kernel's user
        os.chmod(self.connection_file, 0o644)  # just written (0600): the kernel's user must read it
        return self.sandbox.wrap(cmd)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        """Start the kernel with nothing of the worker's but what it needs: stdin and stdout are /dev/null, stderr
        a pipe this process drains into the job's log (marked as the kernel's, cut at KERNEL_LOG_LIMIT), and
        the seccomp filter's descriptor for bubblewrap. Never the worker's log or any other open file."""
        read_end, write_end = os.pipe()
        kw.update(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end,
                  pass_fds=self.sandbox.pass_fds if self.sandbox is not None else ())
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            if self.sandbox is not None:
                self.sandbox.release()
        threading.Thread(target=_drain, args=(read_end,), daemon=True).start()

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"
        return spec


class Runner:
    def __init__(self, nb, workdir: pathlib.Path, cell_timeout: float, notebook_timeout: float, env: dict,
                 sandbox: Sandbox | None = None, control: pathlib.Path | None = None,
                 output_limits: tuple[int, int] = (2**20, 16 * 2**20)):
        self.nb = nb
        self.workdir = workdir
        self.sandbox = sandbox
        # Files the grader writes (connection file, requests) go to `control`, which the kernel can read but
        # not change: nothing the student's code plants (a symlink, say) redirects the grader's writes.
        self.control = control or workdir
        self.answers = workdir / ".grader"  # the kernel writes its answers here
        self.answers.mkdir(exist_ok=True)
        self.cell_timeout = cell_timeout
        self.deadline = time.monotonic() + notebook_timeout
        self.notebook_timeout = notebook_timeout
        self.env = env
        self.events: list[str] = []
        self.restarts = 0
        self._keep_for, self._keep = None, set()  # the kernel's own pids (see _kernel_line)
        self.full: str | None = None  # set when the notebook's folder passed its disk limit
        self.client = BoundedClient(
            nb,
            *output_limits,
            timeout=int(cell_timeout),
            allow_errors=True,
            interrupt_on_timeout=False,
            kernel_name="python3",
            startup_timeout=120,
            iopub_timeout=4,
            record_timing=False,
            resources={"metadata": {"path": str(workdir)}},
            on_cell_executed=self._on_executed,
        )
        self.client.create_kernel_manager = self._kernel_manager
        self.last_status: str | None = None
        self.last_reply: dict = {}
        self.tests = TrustedTests(Link(self._ask))
        self.test_budget = 0.0  # seconds the current test cell may still spend waiting for the kernel
        self.broken: str | None = None  # set when the kernel stopped answering for good

    def _kernel_manager(self):
        km = SandboxedKernelManager(kernel_name="python3")
        km.sandbox = self.sandbox
        kdir = self.workdir / ".kernel"
        kdir.mkdir(exist_ok=True)
        km.transport = "ipc"
        km.ip = str(kdir / "ipc")
        km.connection_file = str(self.control / "connection.json")
        self.client.km = km
        return km

    def _on_executed(self, cell, cell_index, execute_reply) -> None:
        self.last_reply = execute_reply.get("content", {})
        self.last_status = self.last_reply.get("status")

    def run(self) -> list[dict]:
        results = []
        with self.client.setup_kernel(cwd=str(self.workdir), env=self.env):
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                entry = {"index": index, "grade_id": gid, "status": "ok"}
                if self.broken:
                    entry.update(status="unresponsive", evalue=self.broken)
                    cell.outputs = []
                    results.append(entry)
                    continue
                if self.full:
                    entry.update(status="disk", evalue=self.full)
                    cell.outputs = []
                    results.append(entry)
                    continue
                remaining = self.deadline - time.monotonic()
                if remaining <= 1:
                    entry.update(status="skipped", evalue=f"the notebook's time limit ({self.notebook_timeout:g} s) ran out")
                    cell.outputs = []
                    results.append(entry)
                    continue
                self.client.timeout = int(max(1, min(self.cell_timeout, remaining)))
                started = time.monotonic()
                if is_test_cell(cell):
                    entry["trusted"] = True
                    self._run_test(index, cell, gid, entry, results)
                    self._check_folder(index, gid, entry)
                    entry["seconds"] = round(time.monotonic() - started, 2)  # wall clock, the grader's part included
                    results.append(entry)
                    continue
                try:
                    self.last_status = None
                    try:
                        self.client.execute_cell(cell, index)
                    finally:
                        self._reap_strays(index)
                    err = _error_of(cell)
                    if self.last_status == "error" and not err:  # the error output came late or not at all
                        err = _error_of({"outputs": [{"output_type": "error", **self.last_reply}]})
                    if err:
                        entry.update(status="error", **err)
                    elif self.last_status != "ok":
                        # an 'aborted' reply: the kernel dropped the request without running it
                        entry.update(status="error", ename="NotRun",
                                     evalue=f"the kernel did not run this cell (reply: {self.last_status})")
                except CellTimeoutError:
                    entry.update(status="timeout", evalue=f"the cell ran longer than {self.client.timeout} s")
                    self.events.append(f"cell {index} ({gid or 'no id'}) timed out after {self.client.timeout} s")
                    self._recover(index, results, interrupt=True)
                except DeadKernelError:
                    entry.update(status="dead", evalue="the kernel died while running this cell")
                    self.events.append(f"cell {index} ({gid or 'no id'}) killed the kernel")
                    self._recover(index, results, interrupt=False)
                self._check_folder(index, gid, entry)
                entry["seconds"] = round(time.monotonic() - started, 2)
                results.append(entry)
        return results

    def _check_folder(self, index: int, gid: str | None, entry: dict) -> None:
        """After a cell: the notebook's folder within its disk limit (bytes, files and folders), else this cell
        fails and no later cell runs. Under a root grader the folder is a tmpfs of that size and file count,
        so a write past it fails at once (ENOSPC); elsewhere this check is the bound."""
        if self.sandbox is None:
            return
        lim = self.sandbox.limits
        size, count = _folder_usage(self.workdir, lim.files)
        exhausted = False
        if os.path.ismount(self.workdir):  # the root grader's tmpfs: full once either its blocks or inodes are
            fs = os.statvfs(self.workdir)
            exhausted = fs.f_bavail == 0 or fs.f_favail == 0
        if size < lim.disk and count < lim.files and not exhausted:
            return
        what = f"{count} files and folders" if count >= lim.files else f"{size / 2**20:.0f} MiB"
        self.full = (f"the notebook's folder reached its limit ({lim.disk / 2**20:g} MiB, {lim.files} files "
                     f"and folders): {what} after cell {index}; later cells were not run")
        entry.update(status="disk", ename="DiskLimitExceeded", evalue=self.full, line=None)
        self.events.append(f"cell {index} ({gid or 'no id'}): {self.full}")

    def _reap_strays(self, index: int) -> None:
        """Kill the processes a cell left behind (a fork bomb's survivors, a daemon): in the sandbox only the
        kernel and bubblewrap's own processes may outlive a cell. A forked copy of the kernel would otherwise
        hold the process limit and the kernel's sockets, and a fork bomb left running takes the CPU from the
        kernel: the next tests would time out.

        A fork bomb keeps forking, and its processes keep dying, while it is being killed: every process may
        vanish between two looks at it (psutil.NoSuchProcess), and the ones that exit stay as zombies until
        their parent waits. So each process is handled on its own, and each round stops (SIGSTOP) every
        stray it finds, which then cannot fork any more, until a round finds no new one; then all of them
        are killed."""
        import psutil

        try:
            top = psutil.Process(self.client.km.provisioner.process.pid)
        except (psutil.Error, AttributeError):
            return
        keep = self._kernel_line(top)
        if not keep:
            return
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
        if killed:
            self.events.append(f"cell {index}: killed {killed} process(es) it left running")

    def _sandboxed(self, top) -> list:
        """Every process that may be the cell's: the descendants of the kernel's top process and every process
        in the kernel's PID namespace. The namespace is what makes the sweep complete: psutil finds
        descendants by walking parent links, and a fork bomb's process that exits mid-walk hides its own
        children (re-parented to the namespace's init a moment later) from that walk; a sweep that missed
        them would leave the bomb running. Without bubblewrap there is no such namespace (orphans go to the
        machine's init), but under a root grader every process of the slot's user is the kernel's."""
        import psutil

        found = {p.pid: p for p in _children(top)}
        ns = self._namespace_of(top)
        uid = self.sandbox.uid if ns is None and self.sandbox is not None else None
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

    def _kernel_line(self, top) -> set[int]:
        """The pids that belong to the running kernel: the provisioner's process (bwrap), the kernel's
        python process (the oldest one: its forks are younger) and the processes between them. Found once
        per kernel start, before a fork bomb could hide it among its copies."""
        import psutil

        if self._keep_for == top.pid:
            return self._keep
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

    def _run_test(self, index: int, cell, gid: str | None, entry: dict, done: list[dict]) -> None:
        """Run one test cell in this process against the kernel (the grading contract)."""
        # The cell time limit counts the student's code (the kernel's answers), not the grader's own work in
        # the test (importing TensorFlow, evaluating a saved model).
        self.test_budget = float(self.client.timeout)
        try:
            outcome = self.tests.run(cell.source, gid or f"cell {index}")
        except KernelUnavailable as exc:
            entry.update(status=exc.status, evalue=str(exc))
            what = "timed out" if exc.status == "timeout" else "killed the kernel"
            self.events.append(f"cell {index} ({gid or 'no id'}) {what} while the grader waited for it")
            cell.outputs = []
            self._recover(index, done, interrupt=exc.status == "timeout")
            return
        stdout = outcome.pop("stdout", "")
        entry.update(outcome)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stdout)] if stdout else []
        if outcome["status"] == "error":
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename=outcome["ename"], evalue=outcome["evalue"],
                traceback=[f"{outcome['ename']}: {outcome['evalue']} (line {outcome.get('line')})"]))

    def _ask(self, request: dict) -> dict:
        """One question to the kernel: write the request, run the answering code, read the answer."""
        nonce = secrets.token_hex(8)
        req, ans = self.control / f"{nonce}.request.json", self.answers / f"{nonce}.answer.json"
        req.write_text(json.dumps(request))
        req.chmod(0o644)
        code = f"{KERNEL_SIDE}\n_adl_answer(globals(), {str(req)!r}, {str(ans)!r})\ndel _adl_answer\n"
        started = time.monotonic()
        remaining = min(self.test_budget, self.deadline - started)
        try:
            if remaining < 0.5:
                raise CellTimeoutError("no time left")
            self.last_status = None
            try:
                self._scratch(code, remaining)
            finally:
                self.test_budget -= time.monotonic() - started
                self._reap_strays(-1)
        except CellTimeoutError:
            raise KernelUnavailable("timeout", f"the test ran longer than {self.client.timeout} s") from None
        except DeadKernelError:
            raise KernelUnavailable("dead", "the kernel died while the test ran the student's code") from None
        finally:
            req.unlink(missing_ok=True)
        try:
            fd = os.open(ans, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            why = self.last_status
            if self.last_status == "error":
                why = f"{self.last_reply.get('ename')}: {str(self.last_reply.get('evalue'))[:200]}"
            raise ProtocolError(
                f"the kernel gave no answer: the notebook's code interfered with how cells run ({why})") from None
        try:
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise ProtocolError("the kernel's answer is not a regular file")
                data = fh.read(MAX_RESPONSE + 1)
            if len(data) > MAX_RESPONSE:
                raise ProtocolError(f"the kernel's answer is larger than {MAX_RESPONSE >> 20} MiB")
            return read_answer(data.decode("utf-8", errors="replace"))
        finally:
            try:
                ans.unlink(missing_ok=True)
            except OSError:
                pass

    def _scratch(self, source: str, timeout: float) -> None:
        """Run ``source`` in the kernel outside the notebook and wait for its reply (not its output).

        Used for the grader's questions, replays and probes. It talks to the kernel client directly, with one
        deadline for the whole exchange: whatever the kernel sends or fails to send, this returns or raises
        CellTimeoutError / DeadKernelError by then. Sets ``last_status`` and ``last_reply``."""
        run_sync(self._async_scratch)(source, max(0.5, timeout))

    async def _async_scratch(self, source: str, timeout: float) -> None:
        kc = self.client.kc
        msg_id = kc.execute(source, silent=False, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError(f"no reply within {timeout:.0f} s")
            try:
                msg = await kc.get_shell_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                if not await ensure_async(self.client.km.is_alive()):
                    raise DeadKernelError("the kernel died") from None
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                self.last_reply = msg.get("content", {})
                self.last_status = self.last_reply.get("status")
                return

    def _probe(self) -> bool:
        """True once the kernel runs a trivial cell again. After an interrupt ipykernel answers queued
        requests with 'aborted' for a moment, so ask until it really runs one or time is up."""
        deadline = time.monotonic() + PROBE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.last_status = None
                self._scratch("pass", max(1, deadline - time.monotonic()))
            except (CellTimeoutError, DeadKernelError):
                return False
            if self.last_status == "ok":
                return True
            time.sleep(0.2)
        return False

    def _recover(self, failed: int, done: list[dict], interrupt: bool) -> None:
        if interrupt:
            try:
                run_sync(self.client.km.interrupt_kernel)()
            except Exception as exc:  # a dead kernel cannot be interrupted
                self.events.append(f"interrupt failed: {exc}")
            if self._probe():
                self.events.append("the kernel answered the interrupt; its state was kept")
                return
        self.restarts += 1
        self.events.append("kernel restarted; earlier cells run again")
        self._new_kernel()
        for entry in done:
            if entry["status"] not in ("ok", "error") or entry.get("trusted"):
                continue
            try:
                self._scratch(
                    self.nb.cells[entry["index"]].source,
                    min(self.cell_timeout, self.deadline - time.monotonic()),
                )
            except (CellTimeoutError, DeadKernelError):
                self.events.append(f"replaying cell {entry['index']} failed; later cells may miss its results")
                break
        if not self._probe():
            # The replayed cells leave a kernel that runs nothing (a patched shell, say): waiting for every
            # later cell to time out would cost minutes and change no grade.
            self.broken = f"after a restart the kernel stopped answering once cell {failed}'s predecessors ran again"
            self.events.append(self.broken)

    def _new_kernel(self) -> None:
        """Kill the kernel (whatever state it is in) and start a fresh one with the same settings."""
        try:
            self.client._cleanup_kernel()
        except Exception as exc:
            self.events.append(f"kernel cleanup: {exc}")
        self.client.km = self.client.create_kernel_manager()
        self.client.start_new_kernel(cwd=str(self.workdir), env=self.env)
        self.client.start_new_kernel_client()


def run_job(job_path: str) -> None:
    """Grade the job described by ``job_path``; write the executed notebook and the JSON result."""
    job = Job.read(job_path)
    workdir = pathlib.Path(job.workdir)
    nb = nbformat.read(job.notebook, as_version=4)  # kept outside the kernel's reach
    control = pathlib.Path(job.control) if job.control else None
    os.environ.update(job.grader_env)  # the trusted tests' own data settings
    box = job.sandbox
    sandbox = None
    if box is not None:
        sandbox = Sandbox(
            workdir,
            Limits(memory=box.memory, processes=box.processes, cpu_seconds=int(job.notebook_timeout) * 2 + 60,
                   disk=box.disk, files=box.files, tmp_size=box.tmp_size),
            slot=box.slot,
            readonly=tuple(pathlib.Path(p) for p in [*box.readonly, *([control] if control else [])]),
            enabled=box.enabled,
        )
    start = time.monotonic()
    runner = Runner(nb, workdir, job.cell_timeout, job.notebook_timeout, job.env, sandbox, control,
                    output_limits=(job.output_limit, job.notebook_output_limit))
    # Saved models (adl.grading.evaluate_saved_model in a test cell) are loaded in a sandbox of their own.
    evaluator = adl_grading._evaluator = ModelEvaluator(
        workdir, timeout=job.cell_timeout, slot=box.slot if box else 0,
        limits=Limits(memory=box.memory if box else Limits.memory, processes=64,
                      cpu_seconds=int(job.cell_timeout) * 4),
        sandbox=box.enabled if box else True,
        env=job.evaluator_env(),
        scratch=pathlib.Path(job.scratch) if job.scratch else None,
    )
    _limit_memory(job.grader_memory)
    try:
        cells = runner.run()
    finally:
        adl_grading._evaluator = None
        evaluator.close()
    pathlib.Path(job.executed).write_text(nbformat.writes(sanitize_notebook(nb)))
    write_json(job.result, {
        "cells": cells,
        "events": runner.events,
        "restarts": runner.restarts,
        "elapsed": round(time.monotonic() - start, 3),
    })


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
    import psutil

    while os.getppid() == parent:
        time.sleep(0.2)
    me = psutil.Process()
    for proc in me.children(recursive=True):
        try:
            proc.kill()
        except psutil.Error:
            pass
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
