"""Execute one restored submission in a fresh kernel: the process the pipeline starts per submission.

Run as ``python -m autograder.worker JOB.json``. The job names the notebook, its working directory, the
time limits and the kernel's environment; the worker writes the executed notebook and a JSON result
beside it. Nothing here touches the gradebook or the instructor's files.

Time limits: a cell that runs past ``cell_timeout`` is interrupted (SIGINT). If the kernel does not answer
within a few seconds after that (a loop that ignores SIGINT) or has died (``os._exit``, a segfault, the
memory limit), the kernel is restarted and the cells before the failed one are run again, outputs
discarded, so that a timeout or a crash costs only the questions that depend on the failed cell.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
import time

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")
PROBE_TIMEOUT = 5


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


class Runner:
    def __init__(self, nb, workdir: pathlib.Path, cell_timeout: float, notebook_timeout: float, env: dict):
        self.nb = nb
        self.workdir = workdir
        self.cell_timeout = cell_timeout
        self.deadline = time.monotonic() + notebook_timeout
        self.notebook_timeout = notebook_timeout
        self.env = env
        self.events: list[str] = []
        self.restarts = 0
        self.client = NotebookClient(
            nb,
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
        self.last_status: str | None = None
        self.last_reply: dict = {}

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
                remaining = self.deadline - time.monotonic()
                if remaining <= 1:
                    entry.update(status="skipped", evalue=f"the notebook's time limit ({self.notebook_timeout:g} s) ran out")
                    cell.outputs = []
                    results.append(entry)
                    continue
                self.client.timeout = int(max(1, min(self.cell_timeout, remaining)))
                try:
                    self.last_status = None
                    self.client.execute_cell(cell, index)
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
                results.append(entry)
        return results

    def _scratch(self, source: str, timeout: float) -> None:
        """Run ``source`` in the kernel without touching the notebook (nbclient writes a cell back by index)."""
        scratch = nbformat.v4.new_notebook()
        scratch.cells = [nbformat.v4.new_code_cell(source)]
        saved_nb, saved_timeout = self.client.nb, self.client.timeout
        self.client.nb, self.client.timeout = scratch, int(max(1, timeout))
        try:
            self.client.execute_cell(scratch.cells[0], 0)
        finally:
            self.client.nb, self.client.timeout = saved_nb, saved_timeout

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
            if entry["status"] not in ("ok", "error"):
                continue
            try:
                self._scratch(
                    self.nb.cells[entry["index"]].source,
                    min(self.cell_timeout, self.deadline - time.monotonic()),
                )
            except (CellTimeoutError, DeadKernelError):
                self.events.append(f"replaying cell {entry['index']} failed; later cells may miss its results")
                return

    def _new_kernel(self) -> None:
        """Kill the kernel (whatever state it is in) and start a fresh one with the same settings."""
        try:
            self.client._cleanup_kernel()
        except Exception as exc:
            self.events.append(f"kernel cleanup: {exc}")
        self.client.km = self.client.create_kernel_manager()
        self.client.start_new_kernel(cwd=str(self.workdir), env=self.env)
        self.client.start_new_kernel_client()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m autograder.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(pathlib.Path(argv[0]).read_text())
    workdir = pathlib.Path(job["workdir"])
    nb = nbformat.read(str(workdir / job["notebook"]), as_version=4)
    start = time.monotonic()
    runner = Runner(nb, workdir, job["cell_timeout"], job["notebook_timeout"], job["env"])
    cells = runner.run()
    pathlib.Path(job["executed"]).write_text(nbformat.writes(nb))
    result = {
        "cells": cells,
        "events": runner.events,
        "restarts": runner.restarts,
        "elapsed": round(time.monotonic() - start, 3),
    }
    tmp = pathlib.Path(job["result"] + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(job["result"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
