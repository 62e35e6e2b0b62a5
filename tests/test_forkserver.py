"""The evaluator's template (autograder.forkserver): each child it forks is as confined as a fresh evaluator, and
nothing one child does reaches the next. The children here run a "compromised" evaluator: it executes whatever
code the test sends, as a crafted model file would if it ever got past Keras's safe mode."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import psutil
import pytest

from autograder import evaluate, forkserver
from autograder.host import bwrap_problem
from autograder.sandbox import Limits
from autograder.uids import evaluator_uid

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_problem() is not None, reason="the template needs bubblewrap"),
]

# The evaluator's code replaced by one that runs what it is sent and answers with the JSON of ``result``.
COMPROMISED = r"""
import json, sys


def serve(inp, out):
    out.write("ready\n")
    out.flush()
    for line in inp:
        scope = {}
        try:
            exec(json.loads(line), scope)
            result = scope.get("result")
        except BaseException as exc:
            result = "error: %s: %s" % (type(exc).__name__, exc)
        out.write(json.dumps(result) + "\n")
        out.flush()
"""
LIMITS = Limits(memory=3 * 2**30, processes=64, cpu_seconds=120)
SLOT = 7
ROOT = os.geteuid() == 0


@pytest.fixture
def template():
    forkserver.close_all()
    found = forkserver.acquire(COMPROMISED, {"PATH": os.environ["PATH"]}, LIMITS, 60)
    yield found
    found.close()
    forkserver.close_all()


def _child(template):
    child = template.fork(evaluator_uid(SLOT) if ROOT else None, LIMITS)
    assert child.ask(None, 30) == "ready"
    return child


def run(child, code: str):
    line = child.ask(json.dumps(code), 30)
    return None if line is None else json.loads(line)


def test_a_child_runs_confined_as_a_fresh_evaluator_does(template):
    child = _child(template)
    status = run(child, "result = open('/proc/self/status').read()")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if ROOT:  # the slot's evaluator user, with no capability left to regain
        assert fields["Uid"].split() == [str(evaluator_uid(SLOT))] * 4
        assert fields["Gid"].split() == [str(evaluator_uid(SLOT))] * 4 and fields["Groups"].strip() == ""
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[caps], 16) == 0, (caps, fields[caps])
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"
    got = run(
        child,
        "import resource\nresult = {n: resource.getrlimit(getattr(resource, n)) for n in "
        + repr([name for name, _ in LIMITS.rlimits()])
        + "}",
    )
    assert {name: tuple(got[name]) for name, _ in LIMITS.rlimits()} == {n: (v, v) for n, v in LIMITS.rlimits()}
    fds = run(
        child,
        "import os\nresult = {}\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
        "        result[fd] = os.readlink('/proc/self/fd/' + fd)\n    except OSError:\n        pass\n",
    )
    assert {fds["0"], fds["1"], fds["2"]} == {"/dev/null"}, fds
    others = {target for fd, target in fds.items() if fd not in "012"}
    assert others <= {str(child.folder / "in"), str(child.folder / "out")}, fds  # and nothing of the template's
    assert run(child, "import os\nresult = os.getcwd()") == str(child.folder)
    # no network, no new namespaces, no mounts, no tracing
    assert run(child, "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)").startswith(
        "error: OSError"
    )
    assert run(
        child,
        "import os\nos.unshare(os.CLONE_NEWUSER) if hasattr(os, 'unshare') else "
        "(_ for _ in ()).throw(PermissionError('no unshare'))",
    ).startswith("error: PermissionError")
    child.end(10)


def test_a_child_cannot_reach_the_template(template):
    child = _child(template)
    parent = run(child, "import os\nresult = os.getppid()")
    for what in ("mem", "fd", "environ", "maps"):
        got = run(
            child,
            f"import os\nresult = os.listdir('/proc/{parent}/{what}') if '{what}' == 'fd' else "
            f"open('/proc/{parent}/{what}', 'rb').read(16).hex()",
        )
        assert str(got).startswith("error: PermissionError"), (what, got)
    if ROOT:  # another user's process: not even a signal reaches it
        assert run(child, f"import os\nos.kill({parent}, 0)").startswith("error: PermissionError")
    # the template's channel to the grader is gone from the child: nothing it writes reaches the grader
    assert run(child, "import os\nos.write(1, b'ended 0\\n')\nresult = 'written'") == "written"
    assert template.alive() and child.end(10) and child.ended == "ended 0"


def test_nothing_a_child_leaves_reaches_the_next(template):
    first = _child(template)
    run(
        first,
        """
import os, subprocess
for top in ("/tmp", "/dev/shm"):
    open(top + "/planted", "w").write("from the first child")
subprocess.Popen(["sleep", "600"], start_new_session=True)  # a daemon left behind
if os.fork() == 0:
    os.setsid()
    while True:
        pass
result = "left"
""",
    )
    assert first.end(30) and first.ended == "ended 0"
    assert template.clean()
    second = _child(template)
    seen = run(
        second,
        """
import os
me = os.getpid()
mounts = [line.split()[4] for line in open('/proc/self/mountinfo')]  # the grading folder, a venv under /tmp
result = {
    "processes": sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getppid(), me)),
    "tmp": [n for n in os.listdir('/tmp') if not any(m.startswith('/tmp/' + n) for m in mounts)],
    "shm": os.listdir('/dev/shm'),
    "home": sorted(os.listdir('.')),
}
""",
    )
    assert seen == {"processes": [], "tmp": [], "shm": [], "home": ["in", "out"]}, seen
    second.end(10)


def test_a_child_that_dies_is_reported_and_the_next_one_starts(template):
    child = _child(template)
    assert run(child, "import os\nos._exit(3)") is None
    assert child.ended == "ended 3" and not child.alive()
    assert child.end(5)  # already ended: nothing to wait for
    assert template.clean()
    assert run(_child(template), "result = 1 + 1") == 2


def test_an_answer_past_the_line_limit_ends_that_child_only(template):
    child = _child(template)
    assert child.ask(json.dumps("with open('out', 'w') as fh:\n    fh.write('x' * 100000)"), 30) is None
    assert not child.alive() and child.ask(json.dumps("result = 1"), 5) is None  # nothing more is read from it
    assert child.end(30) and child.ended.startswith("ended ")  # the template's line for it, not a later one's
    assert template.clean()
    assert run(_child(template), "result = 1 + 1") == 2


def test_a_child_that_changes_the_templates_folder_ends_the_template(template):
    child = _child(template)
    got = run(child, f"open({str(template.box / 'planted')!r}, 'w').write('x')\nresult = 'wrote'")
    child.end(10)
    if ROOT:  # the folder is root's: the slot's user cannot write there
        assert got.startswith("error: PermissionError") and template.clean()
    else:  # the grader's own user can: the template is not used again
        assert got == "wrote" and not template.clean()
        forkserver.release(template)
        assert template.proc is None and forkserver._IDLE == {}


def test_the_template_has_no_writable_shared_memory(template):
    """Fork shares a MAP_SHARED mapping between the template and its children: there must be none a child could
    write to reach the next one."""
    if not ROOT:
        pytest.skip("the template is not dumpable: only root reads its mappings")
    kids = psutil.Process(template.proc.proc.pid).children(recursive=True)
    (python,) = [p for p in kids if p.name().startswith("python")]
    maps = pathlib.Path(f"/proc/{python.pid}/maps").read_text().splitlines()
    shared = [line for line in maps if line.split()[1][1] == "w" and line.split()[1][3] == "s"]
    assert maps and shared == []
    assert shared == []


def test_the_evaluator_reuses_the_template_across_submissions(tmp_path):
    """Two submissions one after the other: one template, two children; each child is a fresh evaluator that
    loads its own model (the second student's file is not the first's) and has its job's own limits."""
    keras = pytest.importorskip("keras")
    forkserver.close_all()
    x = np.ones((2, 3), "float32")
    outputs = []
    for scale in (1.0, 2.0):
        work = tmp_path / f"s{scale:g}"
        work.mkdir()
        model = keras.Sequential([keras.Input((3,)), keras.layers.Rescaling(scale)])
        model.save(work / "net.keras")
        # the second job's own CPU-time and process limits (another assignment's) need no new template
        limits = Limits(cpu_seconds=int(100 * scale), processes=int(32 * scale))
        ev = evaluate.ModelEvaluator(work, timeout=120, slot=SLOT, limits=limits, env={"PATH": os.environ["PATH"]})
        outputs.append(ev("net.keras", x)["outputs"])
        assert ev.starts == 1
        ev.close()
    np.testing.assert_allclose(outputs[0] * 2, outputs[1])
    (kept,) = forkserver._IDLE.values()
    assert kept.forks == 2
    forkserver.close_all()


def test_a_stuck_evaluator_times_out_and_takes_the_template_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(
        evaluate, "SERVE_CODE", COMPROMISED.replace("exec(json.loads(line), scope)", "while True: pass")
    )
    forkserver.close_all()
    (tmp_path / "net.keras").write_bytes(b"PK")
    ev = evaluate.ModelEvaluator(tmp_path, timeout=5, slot=SLOT, env={"PATH": os.environ["PATH"]})
    template = forkserver.acquire(
        evaluate.SERVE_CODE, {"PATH": os.environ["PATH"], "TF_CPP_MIN_LOG_LEVEL": "2"}, ev.limits, 60
    )
    forkserver.release(template)
    with pytest.raises(TimeoutError, match="more than 5 s"):
        ev("net.keras", np.zeros((1, 3)))
    assert template.proc is None and forkserver._IDLE == {}  # killed, child and all, not kept


def test_a_mount_under_tmp_survives_the_sweep(tmp_path, monkeypatch):
    """A path the sandbox binds under /tmp (a Python installation or the data there) is a mount point in the
    template's /tmp: the sweep after each child leaves it, and the way to it, and the template serves on."""
    from autograder import host

    bound = tmp_path / "venv"  # pytest's folders are under /tmp
    bound.mkdir()
    roots = host.readonly_roots()
    monkeypatch.setattr(host, "readonly_roots", lambda: [*roots, bound])
    forkserver.close_all()
    template = forkserver.acquire(COMPROMISED, {"PATH": os.environ["PATH"]}, LIMITS, 60)
    try:
        for _ in range(2):
            child = _child(template)
            assert run(child, f"import os\nresult = os.path.isdir({str(bound)!r})") is True
            assert child.end(10) and child.ended == "ended 0"
            assert template.alive() and template.clean()
    finally:
        template.close()
