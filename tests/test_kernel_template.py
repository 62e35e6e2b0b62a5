"""Kernels forked from a kernel template (autograder.kerneltemplate): what is particular to them.

test_sandbox.py checks every claim of autograder/README.md's "what is enforced" list on both kinds of kernel (a
fresh one per submission and a forked one), and the fork bomb on both; here: a template serves one submission
after another and nothing of one reaches the next, a kernel restarted mid-notebook is forked again in the same
folder, the grader's files stay read-only, and a template that is killed leaves the submission to fresh kernels.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest

from autograder import forkserver, kerneltemplate
from autograder.course import CourseError, load_settings
from autograder.host import bwrap_problem
from autograder.job import Job, SandboxSpec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_problem() is not None, reason="a kernel template needs bubblewrap"),
]

ROOT = pathlib.Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
TEST = {"nbgrader": {"grade_id": "facts", "grade": True, "points": 1}}

# What a kernel sees of itself and of what an earlier submission may have left.
PROBE = """
import json, os, pathlib, random
MOUNTS = [line.split()[4] for line in open("/proc/self/mountinfo")]
def left_in(top):  # what is in top but the mount points there and the way to them (its folder, a venv under /tmp)
    return sorted(n for n in os.listdir(top) if not any(m == f"{top}/{n}" or m.startswith(f"{top}/{n}/") for m in MOUNTS))
me = pathlib.Path(os.getcwd())
box = me.parents[2]  # <template folder>/jobs/<n>/home
facts = {
    "cwd": str(me),
    "home": os.environ.get("HOME"),
    "box": str(box),
    "parent": os.getppid(),
    "random": random.random(),
    "tmp": left_in("/tmp"),
    "shm": left_in("/dev/shm"),
    "others": sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid(), os.getppid())),
    "next_job": (box / "jobs" / str(int(me.parent.name) + 1)).exists(),
    "planted_in_template": (box / "planted").exists(),
}
"""
# What a hostile submission leaves for the next one.
LEAVE = """
import subprocess
for where in ("/tmp/planted", "/dev/shm/planted"):
    pathlib.Path(where).write_text("x")
left = {}
for name, path in (("next_job", box / "jobs" / str(int(me.parent.name) + 1)), ("template", box / "planted")):
    try:
        path.mkdir() if name == "next_job" else path.write_text("x")
        left[name] = "made"
    except OSError as exc:
        left[name] = type(exc).__name__
subprocess.Popen(["sleep", "600"], start_new_session=True)
facts["left"] = left
"""


def _job(folder: pathlib.Path, cells: list[str], preload=("numpy",), cell_timeout: float = 20) -> pathlib.Path:
    """A job of ``cells`` (the last one a test cell that prints ``facts``), its kernels forked from a template."""
    home, control, private = folder / "home", folder / "control", folder / "private"
    for d in (home, control, private):
        d.mkdir(parents=True)
    folder.chmod(0o711)
    private.chmod(0o700)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells.append(nbformat.v4.new_code_cell("import json\nprint(json.dumps(facts))", metadata=TEST))
    nbformat.write(nb, str(private / "nb.ipynb"))
    Job(
        workdir=str(home),
        control=str(control),
        notebook=str(private / "nb.ipynb"),
        cell_timeout=cell_timeout,
        notebook_timeout=200,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        sandbox=SandboxSpec(slot=9, memory=4 * 2**30, processes=128),
        executed=str(folder / "out.ipynb"),
        result=str(folder / "result.json"),
        preload=tuple(preload),
    ).write(private / "job.json")
    return private / "job.json"


def _grade(*jobs: pathlib.Path) -> list[tuple[dict, dict]]:
    """Run the jobs one after another in one worker process (so they share its kernel template); each one's
    run and the facts its test cell printed."""
    code = "import sys\nfrom autograder.worker import run_job\nfor path in sys.argv[1:]:\n    run_job(path)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, jobs)], capture_output=True, text=True, timeout=280, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = []
    for job in jobs:
        folder = job.parent.parent
        run = json.loads((folder / "result.json").read_text())
        nb = nbformat.read(str(folder / "out.ipynb"), as_version=4)
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        out.append((run, json.loads(text) if text else {}))
    return out


def test_one_template_serves_submission_after_submission_and_nothing_of_one_reaches_the_next(tmp_path):
    (a_run, a), (b_run, b) = _grade(
        _job(tmp_path / "a", [PROBE, LEAVE]),
        _job(tmp_path / "b", [PROBE]),
    )
    assert [c["status"] for c in a_run["cells"]] == ["ok"] * 3, a_run["cells"]
    assert "/kt-" in a["cwd"] and a["home"] == a["cwd"]  # forked, and its HOME is its own folder
    assert a["left"]["template"] == ("PermissionError" if IS_ROOT else "made")
    assert a["left"]["next_job"] == ("PermissionError" if IS_ROOT else "made")
    assert any("killed 1 process(es)" in e for e in a_run["events"]), a_run["events"]  # the sleep
    assert [c["status"] for c in b_run["cells"]] == ["ok"] * 2, b_run["cells"]
    assert b["tmp"] == [] and b["shm"] == [] and b["others"] == []
    assert b["next_job"] is False and b["planted_in_template"] is False
    assert b["random"] != a["random"]  # each kernel its own random state
    if IS_ROOT:  # the same template (its folder unchanged), the next job folder
        assert b["box"] == a["box"] and b["cwd"] != a["cwd"]
    else:  # the first kernel wrote into the template's folder: that template was ended, a new one started
        assert b["box"] != a["box"]


# As tests/test_worker.py's notebook: a kernel that ignores the interrupt and one that dies are forked again, in the
# same folder (what the earlier cells wrote there is kept) with a fresh /tmp, and the earlier cells run again.
RESTARTS = [
    "import os, pathlib\nx = 1\npathlib.Path('kept.txt').write_text('x')\npathlib.Path('/tmp/gone.txt').write_text('x')\n"
    "mounts = [line.split()[4] for line in open('/proc/self/mountinfo')]\n"
    "tmp = lambda: sorted(n for n in os.listdir('/tmp') if not any(m.startswith(f'/tmp/{n}/') for m in mounts))",
    "while True: pass",
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
    "y = x + 1",
    "import os; os._exit(3)",
    "facts = {'y': y, 'kept': pathlib.Path('kept.txt').exists(), 'tmp': tmp(), 'cwd': os.getcwd()}",
]


def test_a_restarted_kernel_is_forked_again_in_the_same_folder(tmp_path):
    [(run, facts)] = _grade(_job(tmp_path / "a", RESTARTS, cell_timeout=4))
    assert [c["status"] for c in run["cells"]] == ["ok", "timeout", "timeout", "ok", "dead", "ok", "ok"], run["cells"]
    assert run["restarts"] == 2
    # the replayed first cell wrote /tmp/gone.txt again: the only file in a /tmp that was emptied after each kernel
    assert facts == {"y": 2, "kept": True, "tmp": ["gone.txt"], "cwd": facts["cwd"]} and "/kt-" in facts["cwd"]


def test_the_graders_files_are_read_only_to_a_forked_kernel(tmp_path):
    probe = (
        "import glob, os\nfacts = {}\nfor path in glob.glob(os.path.join(os.path.dirname(CONNECTION), '*')):\n"
        "    try:\n        open(path, 'a').close()\n        facts[os.path.basename(path)] = 'written'\n"
        "    except OSError as exc:\n        facts[os.path.basename(path)] = type(exc).__name__\n"
        "facts['mount'] = 'ro' if os.statvfs(os.path.dirname(CONNECTION)).f_flag & os.ST_RDONLY else 'rw'\n"
    )
    setup = "from ipykernel import get_connection_file\nCONNECTION = get_connection_file()"
    [(run, facts)] = _grade(_job(tmp_path / "a", [setup, probe]))
    assert run["cells"][-1]["status"] == "ok", run["cells"]
    # a read-only file system, whoever the kernel is (a root grader's kernel is refused before that: not its file)
    assert facts == {"connection.json": "PermissionError" if IS_ROOT else "OSError", "mount": "ro"}, facts


def test_a_killed_template_leaves_the_submission_to_fresh_kernels(tmp_path):
    """A kernel of the grader's own user can kill its template (a root grader's kernel cannot): the kernel goes
    with it, and the rest of the notebook runs in a fresh sandboxed kernel in the same folder."""
    kill = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(30)"
    cells = [
        "import os, pathlib\npathlib.Path('kept.txt').write_text('x')",
        kill,
        PROBE + "facts['kept'] = pathlib.Path('kept.txt').exists()",
    ]
    [(run, facts)] = _grade(_job(tmp_path / "a", cells, cell_timeout=10))
    statuses = [c["status"] for c in run["cells"]]
    if IS_ROOT:
        assert statuses == ["ok", "error", "ok", "ok"] and run["cells"][1]["ename"] == "PermissionError"
        assert "/kt-" in facts["cwd"]
    else:
        assert statuses == ["ok", "dead", "ok", "ok"], run["cells"]
        assert facts["kept"] is True and facts["parent"] == 1  # bubblewrap's init: a kernel of its own sandbox


def test_a_submission_that_fails_before_its_first_kernel_hands_the_template_back(tmp_path):
    """A full disk while the submission's files are copied into the template's folder: the job fails, and the
    template goes back to the worker's idle ones instead of being lost with the job."""
    code = (
        "import sys\nfrom autograder import forkserver, worker\n"
        "def full(source, target):\n    raise OSError(28, 'No space left on device')\n"
        "worker._copy_into = full\n"
        "try:\n    worker.run_job(sys.argv[1])\nexcept OSError as exc:\n    print('raised', exc.errno)\n"
        "print('idle', [t.kernel for t in forkserver._IDLE.values()])\n"
    )
    job = _job(tmp_path / "a", [PROBE])
    proc = subprocess.run([sys.executable, "-c", code, str(job)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout.split("\n")[:2] == ["raised 28", "idle [True]"], proc.stdout + proc.stderr[-2000:]


def test_preload_names_modules(tmp_path):
    settings = tmp_path / "assignments.yml"
    settings.write_text(
        "defaults:\n  cell_timeout: 30\n  notebook_timeout: 600\nassignments:\n  hw9:\n    preload: tensorflow\n"
    )
    with pytest.raises(CourseError, match="preload for 'hw9' must be a list of module names"):
        load_settings("hw9", settings)
    settings.write_text(
        "defaults:\n  cell_timeout: 30\n  notebook_timeout: 600\nassignments:\n  hw9:\n    preload: ['os; import evil']\n"
    )
    with pytest.raises(CourseError, match="module names"):
        load_settings("hw9", settings)
    settings.write_text(
        "defaults:\n  cell_timeout: 30\n  notebook_timeout: 600\nassignments:\n  hw9:\n    preload: [tensorflow, keras.layers]\n"
    )
    assert load_settings("hw9", settings).preload == ("tensorflow", "keras.layers")
    with pytest.raises(forkserver.TemplateError, match="not a module name"):
        kerneltemplate.kernel_code(("numpy", "x)\nimport os"))
