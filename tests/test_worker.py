"""The grading worker on a notebook of hostile cells: timeouts, a loop that ignores SIGINT, a dying
kernel, sys.exit, stderr. Each failure costs only its own cell; the state before it survives."""

import json
import os
import subprocess
import sys

import nbformat
import pytest

from autograder.job import Job

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

CELLS = [
    ("x = 1", "ok"),
    ("while True: pass", "timeout"),  # interrupted: the kernel and x survive
    ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", "timeout"),  # restart
    ("y = x + 1", "ok"),  # x came back: cells before the restart were run again
    ("import os; os._exit(3)", "dead"),
    ("import sys; print('W tensorflow/core: noise', file=sys.stderr); assert y == 2", "ok"),  # stderr is fine
    ("assert False, 'boom'", "error"),
    ("import sys; sys.exit(0)", "error"),
    ("z = y * 10", "ok"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("worker")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(src, metadata={"nbgrader": {"grade_id": f"c{i}"}}) for i, (src, _) in enumerate(CELLS)
    ]
    nbformat.write(nb, str(tmp / "nb.ipynb"))
    Job(
        workdir=str(tmp),
        notebook=str(tmp / "nb.ipynb"),
        cell_timeout=4,
        notebook_timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp)},
        executed=str(tmp / "out.ipynb"),
        result=str(tmp / "result.json"),
    ).write(tmp / "job.json")
    proc = subprocess.run(
        [sys.executable, "-m", "autograder.worker", str(tmp / "job.json")], capture_output=True, text=True, timeout=280
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "result.json").read_text()), nbformat.read(str(tmp / "out.ipynb"), as_version=4)


def test_each_cell_gets_its_own_outcome(run):
    result, _ = run
    assert [c["status"] for c in result["cells"]] == [status for _, status in CELLS]
    assert [c["grade_id"] for c in result["cells"]] == [f"c{i}" for i in range(len(CELLS))]


def test_restarts_and_reasons_are_recorded(run):
    result, _ = run
    assert result["restarts"] == 2
    events = "\n".join(result["events"])
    assert "cell 1 (c1) timed out after 4 s" in events
    assert "the kernel answered the interrupt; its state was kept" in events
    assert "cell 4 (c4) killed the kernel" in events
    cells = result["cells"]
    assert cells[6]["ename"] == "AssertionError" and cells[6]["evalue"] == "boom" and cells[6]["line"] == 1
    assert cells[7]["ename"] == "SystemExit"


def test_executed_notebook_keeps_outputs_in_place(run):
    _, nb = run
    assert nb.cells[0].source == "x = 1"  # replays and probes never overwrite notebook cells
    assert any(o.get("name") == "stderr" for o in nb.cells[5].outputs)
    assert nb.cells[6].outputs[0]["ename"] == "AssertionError"


def test_worker_usage_error():
    proc = subprocess.run([sys.executable, "-m", "autograder.worker"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
