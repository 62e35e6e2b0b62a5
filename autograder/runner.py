"""The cell loop of one submission: every cell in the sandboxed kernel except the test cells, which run here,
in the grader, against the kernel (:mod:`autograder.contract`).

Time limits: a cell that runs past ``cell_timeout`` is interrupted (SIGINT). If the kernel does not answer
within a few seconds after that (a loop that ignores SIGINT) or has died (``os._exit``, a segfault, the
memory limit), the kernel is restarted and the cells before the failed one are run again, outputs
discarded, so that a timeout or a crash costs only the questions that depend on the failed cell. After every
cell the kernel's folder is checked against its disk limit and what the cell left running is reaped.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import queue
import secrets
import stat
import time

import nbformat
import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder.contract import (
    KERNEL_SIDE,
    MAX_RESPONSE,
    KernelUnavailable,
    Link,
    ProtocolError,
    TrustedTests,
    grader_view,
    read_answer,
)
from autograder.evaluate import ModelEvaluator
from autograder.kernel import BoundedClient, Reaper, SandboxedKernelManager, folder_over_limit
from autograder.kerneltemplate import ForkedKernel, KernelJob
from autograder.notebook import error_of, is_test_cell
from autograder.sandbox import Sandbox

PROBE_TIMEOUT = 5
log = logging.getLogger("autograder.worker")


class Runner:
    def __init__(
        self,
        nb,
        workdir: pathlib.Path,
        cell_timeout: float,
        notebook_timeout: float,
        env: dict,
        sandbox: Sandbox | None = None,
        control: pathlib.Path | None = None,
        output_limits: tuple[int, int] = (2**20, 16 * 2**20),
        evaluator: ModelEvaluator | None = None,
        forked: KernelJob | None = None,
    ):
        """``evaluator``: what ``adl.grading.evaluate_saved_model`` is in the test cells (a sandboxed process of
        its own); None: the helper package's own, which loads the file in this process. ``forked``: the kernel
        template that forks this submission's kernels (``workdir`` and ``control`` are its job's); None: each
        kernel is started in a sandbox of its own."""
        self.nb = nb
        self.forked = forked
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
        self.reaper = Reaper(sandbox.uid if sandbox is not None else None)
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
            # Kill the kernel once the notebook is done: its state is thrown away, and a shutdown request waits
            # for it to exit, which took 2.6 s in half of the runs (a race in the kernel's own shutdown).
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(workdir)}},
            on_cell_executed=self._on_executed,
            manager_factory=self._kernel_manager,
        )
        self.last_status: str | None = None
        self.last_reply: dict = {}
        provided = {}
        if evaluator is not None:
            import adl_helpers

            grading = grader_view(adl_helpers.grading, evaluate_saved_model=evaluator)
            provided["adl"] = grader_view(adl_helpers, grading=grading)
        self.tests = TrustedTests(Link(self._ask), provided=provided)
        self.test_budget = 0.0  # seconds the current test cell may still spend waiting for the kernel
        self.broken: str | None = None  # set when the kernel stopped answering for good

    def _kernel_manager(self) -> SandboxedKernelManager:
        km = SandboxedKernelManager(kernel_name="python3")
        km.sandbox = self.sandbox
        km.forked = self.forked
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
                    entry.update(
                        status="skipped", evalue=f"the notebook's time limit ({self.notebook_timeout:g} s) ran out"
                    )
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
                    err = error_of(cell)
                    if self.last_status == "error" and not err:  # the error output came late or not at all
                        err = error_of({"outputs": [{"output_type": "error", **self.last_reply}]})
                    if err:
                        entry.update(status="error", **err)
                    elif self.last_status != "ok":
                        # an 'aborted' reply: the kernel dropped the request without running it
                        entry.update(
                            status="error",
                            ename="NotRun",
                            evalue=f"the kernel did not run this cell (reply: {self.last_status})",
                        )
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
        """After a cell: the notebook's folder within its disk limit (:func:`folder_over_limit`), else this cell
        fails and no later cell runs."""
        reached = None if self.sandbox is None else folder_over_limit(self.workdir, self.sandbox.limits)
        if reached is None:
            return
        self.full = f"{reached} after cell {index}; later cells were not run"
        entry.update(status="disk", ename="DiskLimitExceeded", evalue=self.full, line=None)
        self.events.append(f"cell {index} ({gid or 'no id'}): {self.full}")

    def _reap_strays(self, index: int) -> None:
        """After a cell: kill what it left running in the sandbox besides the kernel (see :class:`Reaper`)."""
        process = getattr(getattr(self.client.km, "provisioner", None), "process", None)
        if process is None:  # no kernel, or not a local process
            return
        try:
            top = psutil.Process(process.pid)
        except psutil.Error:
            return
        killed = self.reaper.reap(top, forked=isinstance(process, ForkedKernel))
        if killed:
            self.events.append(f"cell {index}: killed {killed} process(es) it left running")

    def _run_test(self, index: int, cell, gid: str | None, entry: dict, done: list[dict]) -> None:
        """Run one test cell in this process against the kernel (the grading contract)."""
        # The cell time limit counts the student's code (the kernel's answers), not the grader's own work in
        # the test (importing TensorFlow, evaluating a saved model).
        self.test_budget = float(self.client.timeout or 0)  # set before every cell
        try:
            outcome = self.tests.run(cell.source, gid or f"cell {index}")
        except KernelUnavailable as exc:
            entry.update(status=exc.status, evalue=str(exc), line=getattr(exc, "line", None))
            what = "timed out" if exc.status == "timeout" else "killed the kernel"
            self.events.append(f"cell {index} ({gid or 'no id'}) {what} while the grader waited for it")
            cell.outputs = []
            self._recover(index, done, interrupt=exc.status == "timeout")
            return
        stdout = outcome.pop("stdout", "")
        entry.update(outcome)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stdout)] if stdout else []
        if outcome["status"] == "error":
            cell.outputs.append(
                nbformat.v4.new_output(
                    "error",
                    ename=outcome["ename"],
                    evalue=outcome["evalue"],
                    traceback=[f"{outcome['ename']}: {outcome['evalue']} (line {outcome.get('line')})"],
                )
            )

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
                f"the kernel gave no answer: the notebook's code interfered with how cells run ({why})"
            ) from None
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

    def _kernel(self) -> tuple[AsyncKernelManager, AsyncKernelClient]:
        """The kernel's manager and client (nbclient's, optional there): DeadKernelError if there is none."""
        km, kc = self.client.km, self.client.kc
        if not isinstance(km, AsyncKernelManager) or not isinstance(kc, AsyncKernelClient):
            raise DeadKernelError("no kernel is running")
        return km, kc

    async def _async_scratch(self, source: str, timeout: float) -> None:
        km, kc = self._kernel()
        msg_id = kc.execute(source, silent=False, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError(f"no reply within {timeout:.0f} s")
            try:
                msg = await kc.get_shell_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                if not await ensure_async(km.is_alive()):
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
                run_sync(self._kernel()[0].interrupt_kernel)()
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
