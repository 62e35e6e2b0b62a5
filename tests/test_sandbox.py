"""Each claim of autograder/README.md's "what is enforced" list, checked from inside a real grading kernel.

A notebook of probes runs in the sandbox (kernel cells gather facts); trusted test cells, run by the worker
under the grading contract, read the facts back as data. Where the platform cannot enforce a claim (no
bubblewrap, not root) the test is skipped with the reason, except in CI, where .ci/run installs bubblewrap
and every claim must hold.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import nbformat
import pytest

from autograder import host
from autograder.host import bwrap_path
from autograder.job import Job, SandboxSpec
from autograder.preflight import enforced
from autograder.sandbox import Limits, Sandbox, SandboxError, parse_size
from autograder.uids import SLOT_UID_BASE, kernel_uid

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("ADL_REQUIRE_SANDBOX") == "1"  # set by .ci/run, which installs bubblewrap
needs_bwrap = pytest.mark.skipif(
    bwrap_path() is None and not IN_CI,
    reason="bubblewrap is not installed (apt install bubblewrap); .ci/run installs it",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI, reason="the per-slot user needs a root grader")


def _listener():
    """A TCP server on the host's loopback; the sandboxed kernel must not reach it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    hits = []

    def accept():
        try:
            conn, _ = srv.accept()
            hits.append(1)
            conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    return srv, hits


FORK_AND_LEAVE = """
import os, time
fds_at_start = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds_at_start[fd] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
left = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    left.append(pid)
"""

PROBES = """
import os, pathlib, socket, threading
facts = {}
def _state(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split(") ")[1].split()[0]
    except OSError:
        return "gone"
facts["left_running"] = [pid for pid in left if _state(pid) not in ("Z", "gone")]
facts["uid"] = os.getuid()
facts["cwd"] = os.getcwd()
facts["sees_course"] = pathlib.Path(COURSE, "source").exists() or pathlib.Path(COURSE, "tests").exists()
facts["sees_private"] = pathlib.Path(PRIVATE).exists()
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    facts["host_port"] = "reached"
except OSError as exc:
    facts["host_port"] = type(exc).__name__
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2).close()
    facts["internet"] = "reached"
except OSError as exc:
    facts["internet"] = type(exc).__name__
facts["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
facts["grader_pid_visible"] = pathlib.Path("/proc", str(GRADER_PID)).exists()
try:
    bytearray(6 * 2**30)
    facts["big_alloc"] = "allocated"
except MemoryError:
    facts["big_alloc"] = "MemoryError"
try:
    with open("big.bin", "wb") as fh:
        fh.write(b"0" * (300 * 2**20))
    facts["big_file"] = "written"
except OSError as exc:
    facts["big_file"] = type(exc).__name__
try:
    pathlib.Path(MIRROR, "planted.txt").write_text("x")
    facts["mirror_write"] = "written"
except OSError as exc:
    facts["mirror_write"] = type(exc).__name__
import time
children, err = [], None
try:
    for _ in range(int(os.environ.get("NFORKS", "400"))):
        pid = os.fork()
        if pid == 0:
            time.sleep(2)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    err = type(exc).__name__
for pid in children:
    os.waitpid(pid, 0)
facts["forked"] = len(children)
facts["fork_error"] = err
facts["fds"] = fds_at_start
import ctypes, errno, shutil, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def _call(name, nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    facts["syscalls"][name] = "allowed" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
facts["syscalls"] = {}
for name, nr in SYSCALLS.items():
    if name == "unshare":
        _call(name, nr, ctypes.c_ulong(0x10000000))  # CLONE_NEWUSER
    elif name == "clone":  # CLONE_NEWNET | SIGCHLD: refused before it forks
        _call(name, nr, ctypes.c_ulong(0x40000000 | 17), None, None, None, None)
    else:
        _call(name, nr, 0, 0, 0, 0, 0)
proc = subprocess.run(["unshare", "-Ur", "true"], capture_output=True, text=True)
facts["unshare_cmd"] = proc.returncode
facts["mount_tmpfs"] = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0
facts["tmp_sizes"] = [shutil.disk_usage("/tmp").total, shutil.disk_usage("/dev/shm").total]
try:
    with open("/dev/shm/fill", "wb") as fh:
        for _ in range(80):
            fh.write(b"0" * 2**20)
    facts["shm_fill"] = "written"
except OSError as exc:
    facts["shm_fill"] = errno.errorcode.get(exc.errno, "?")
import numpy as np, threading
a = np.ones((300, 300))
results = []
workers = [threading.Thread(target=lambda: results.append(float((a @ a).sum()))) for _ in range(4)]
for t in workers:
    t.start()
for t in workers:
    t.join()
facts["numpy_threads"] = results
import tensorflow as tf

facts["tensorflow"] = float(tf.reduce_sum(tf.ones((64, 64)) @ tf.ones((64, 64))))
"""

# Syscalls the filter must refuse, by number on this machine (x86_64 and aarch64 differ), for the probes.
try:
    import pyseccomp

    SYSCALLS = {
        name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
        for name in (
            "unshare",
            "clone",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "ptrace",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "init_module",
            "finit_module",
            "open_by_handle_at",
            "io_uring_setup",
            "clone3",
        )
    }
except (ImportError, RuntimeError):
    SYSCALLS = {}


# Each kernel is started in a sandbox of its own (an assignment that preloads nothing), or forked from a kernel
# template that imported TensorFlow once (autograder.forkserver.KernelJob): every claim must hold for both.
KERNELS = {"fresh": (), "forked": ("tensorflow",)}


@pytest.fixture(scope="module", params=sorted(KERNELS))
def facts(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("sbx")
    base.chmod(0o711)
    home, control, private, mirror = base / "home", base / "control", base / "private", base / "mirror"
    for d in (home, control, private, mirror):
        d.mkdir()
    private.chmod(0o700)
    srv, hits = _listener()
    consts = (
        f"COURSE = {str(ROOT)!r}\nPRIVATE = {str(private)!r}\nPORT = {srv.getsockname()[1]}\n"
        f"GRADER_PID = {os.getpid()}\nMIRROR = {str(mirror)!r}\nSYSCALLS = {SYSCALLS!r}\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(FORK_AND_LEAVE),
        nbformat.v4.new_code_cell(consts + PROBES),
        nbformat.v4.new_code_cell(
            "import json\nprint(json.dumps(facts))",
            metadata={"nbgrader": {"grade_id": "t", "grade": True, "points": 1}},
        ),
    ]
    nbformat.write(nb, str(private / "nb.ipynb"))
    Job(
        workdir=str(home),
        control=str(control),
        notebook=str(private / "nb.ipynb"),
        cell_timeout=60,
        notebook_timeout=200,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "NFORKS": "400"},
        sandbox=SandboxSpec(
            slot=7,
            memory=4 * 2**30 + 2 * 64 * 2**20 + 512 * 2**20,
            processes=256,
            readonly=(str(mirror),),
            tmp_size=64 * 2**20,
            disk=512 * 2**20,
        ),
        log=str(base / "logs" / "student.log"),
        executed=str(base / "out.ipynb"),
        result=str(base / "result.json"),
        preload=KERNELS[request.param],
    ).write(private / "job.json")
    with (base / "worker.log").open("w") as worker_log:  # as the pipeline runs it: stderr to a log file
        proc = subprocess.run(
            [sys.executable, "-m", "autograder.worker", str(private / "job.json")],
            stdout=subprocess.PIPE,
            stderr=worker_log,
            text=True,
            timeout=280,
            cwd=ROOT,
        )
    srv.close()
    assert proc.returncode == 0, (base / "worker.log").read_text()[-3000:]
    result = json.loads((base / "result.json").read_text())
    out = nbformat.read(str(base / "out.ipynb"), as_version=4)
    assert result["cells"][2]["status"] == "ok", result["cells"]
    assert "cell 0: killed 5 process(es) it left running" in result["events"]
    text = "".join(o.get("text", "") for o in out.cells[2].outputs)
    got = json.loads(text)
    if Sandbox(base).isolated:  # a forked kernel works in its template's folder (kt-...), a fresh one in its own
        assert ("/kt-" in got["cwd"]) == (request.param == "forked"), got["cwd"]
    return got, hits, mirror


@needs_bwrap
def test_no_course_folder_and_no_private_files(facts):
    got, _, _ = facts
    assert got["sees_course"] is False
    assert got["sees_private"] is False


@needs_bwrap
def test_no_network(facts):
    got, hits, _ = facts
    assert got["host_port"] != "reached" and hits == []
    assert got["internet"] != "reached"


@needs_bwrap
def test_own_process_namespace(facts):
    got, _, _ = facts
    assert got["grader_pid_visible"] is False
    assert max(got["pids"]) < 100  # only the sandbox's own few processes


def test_processes_a_cell_leaves_behind_are_killed(facts):
    got, _, _ = facts
    assert got["left_running"] == []


@needs_bwrap
def test_data_mirror_is_read_only(facts):
    got, _, mirror = facts
    assert got["mirror_write"] in ("OSError", "PermissionError")
    assert not (mirror / "planted.txt").exists()


@needs_root
def test_unprivileged_user_per_slot(facts):
    got, _, _ = facts
    assert got["uid"] == kernel_uid(7)


def test_memory_file_size_and_thread_limits(facts):
    got, _, _ = facts
    assert got["big_alloc"] == "MemoryError"  # 6 GiB against a 4 GiB address-space limit
    assert got["big_file"] == "OSError"  # EFBIG: files up to 256 MiB
    assert got["fork_error"] == "BlockingIOError" and 200 < got["forked"] < 256  # 256 processes and threads


def test_parse_size_and_errors():
    assert parse_size("4G") == 4 * 2**30
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size(1024) == 1024
    with pytest.raises(SandboxError, match="cannot read the size"):
        parse_size("lots")


@pytest.fixture
def no_bwrap(monkeypatch):
    """bubblewrap hidden from this process (CI installs it)."""
    monkeypatch.setattr("autograder.host.bwrap_path", lambda: None)
    host.bwrap_problem.cache_clear()
    yield
    host.bwrap_problem.cache_clear()


@pytest.fixture
def folders():
    """A 0700 folder of root's (``locked``) and a working directory, both directly under /tmp (pytest's own
    folders are 0700 too, which would hide the difference)."""
    locked, work = pathlib.Path(tempfile.mkdtemp()), pathlib.Path(tempfile.mkdtemp())
    work.chmod(0o755)
    yield locked, work
    locked.chmod(0o700)
    shutil.rmtree(locked)
    shutil.rmtree(work)


def test_describe_says_what_is_not_enforced(tmp_path, no_bwrap):
    text = "\n".join(enforced(Sandbox(tmp_path, Limits(), enabled=False)))
    assert "NOT ISOLATED (sandbox: false in assignments.yml)" in text
    assert "memory 5 GiB (4 GiB address space, 256 MiB each for /tmp and /dev/shm, 512 MiB and 10000 files" in text
    text = "\n".join(enforced(Sandbox(tmp_path, Limits())))
    assert "NOT ISOLATED (bubblewrap (bwrap) is not installed)" in text and "use the network" in text
    assert "Install bubblewrap (apt-get install bubblewrap)" in text
    if os.geteuid() == 0:
        assert f"user: uid {SLOT_UID_BASE}, no capabilities, no_new_privs" in text
        assert f"read every file uid {SLOT_UID_BASE} may read" in text
    else:
        assert f"user: the grader's own (uid {os.getuid()})" in text
        assert "read, change and delete whatever the grader's user can" in text
        assert Sandbox(tmp_path, Limits()).wrap(["/bin/true"])[0].endswith("prlimit")


@needs_root
def test_without_bwrap_a_folder_the_kernel_cannot_enter_is_covered(no_bwrap, folders):
    """As root without bubblewrap the kernel runs as the slot's user, which may not enter a 0700 folder that
    holds what it needs (a Python installation under /root, say). In a mount namespace of its own that folder
    is empty but for the paths it needs (read-only, except its working directory); the machine's mounts and
    the folder itself are untouched."""
    locked, work = folders
    (locked / "solutions.txt").write_text("secret")
    (locked / "data").mkdir(mode=0o777)
    (locked / "data").chmod(0o777)  # only the read-only mount keeps the kernel from writing here
    (locked / "data" / "x.txt").write_text("data")
    box = Sandbox(work, Limits(), slot=12, readonly=(locked / "data",))
    assert locked in box.unreachable and str(locked / "data") in "\n".join(enforced(box))
    code = (
        "import json, os, pathlib\n"
        f"d = pathlib.Path({str(locked)!r})\n"
        "facts = {'uid': os.getuid(), 'cwd': os.getcwd(), 'listing': sorted(os.listdir(d)),\n"
        "         'data': (d / 'data' / 'x.txt').read_text()}\n"
        "try:\n    (d / 'data' / 'y.txt').write_text('x')\n    facts['write'] = 'written'\n"
        "except OSError as exc:\n    facts['write'] = exc.strerror\n"
        "pathlib.Path('mine.txt').write_text('ok')\nprint(json.dumps(facts))"
    )
    box.prepare()
    proc = subprocess.run(box.wrap([sys.executable, "-c", code]), cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "uid": kernel_uid(12),
        "cwd": str(work),
        "listing": ["data"],
        "data": "data",
        "write": "Read-only file system",
    }
    assert (work / "mine.txt").read_text() == "ok"
    assert sorted(p.name for p in locked.iterdir()) == ["data", "solutions.txt"]
    assert "adl-sandbox" not in pathlib.Path("/proc/self/mounts").read_text()
    assert box.probe([sys.executable, "-c", "import ipykernel"]) is None


def test_probe_says_why_the_kernel_cannot_start(no_bwrap, folders):
    """A Python the kernel's user cannot execute (in a folder it may not enter, which the sandbox does not
    show it either) is reported, with what to do, before anything is graded: not as a silent 0 per question."""
    locked, work = folders
    (locked / "python").symlink_to(sys.executable)
    locked.chmod(0)  # no one but root's privileges may enter: not the kernel's user, not the grader's own
    problem = Sandbox(work, Limits(), slot=13).probe([str(locked / "python"), "-c", "import ipykernel"])
    assert problem is not None and "Permission denied" in problem and str(locked / "python") in problem, problem
    if os.geteuid() == 0:
        assert f"fails as uid {kernel_uid(13)}" in problem and "apt-get install bubblewrap" in problem
    assert Sandbox(work, Limits(), slot=13).probe([sys.executable, "-c", "import ipykernel"]) is None


@needs_root
def test_root_without_bwrap_or_mount_namespaces_refuses(no_bwrap, folders, monkeypatch):
    """Where no mount namespace can be made either (a container without the privilege), a kernel whose user
    cannot reach Python cannot start. Root does not fall back to running it as root, where the process limit
    does not apply (a fork bomb would take the machine): it refuses, and says what to install."""
    locked, work = folders
    (locked / "data").mkdir()
    monkeypatch.setattr(host, "unshare_problem", lambda: "no mount namespace can be made here (test)")
    box = Sandbox(work, Limits(), slot=14, readonly=(locked / "data",))
    with pytest.raises(
        SandboxError,
        match=r"cannot enter .*, which holds .*/data, and no mount namespace .* "
        r"Install bubblewrap \(apt-get install bubblewrap\)",
    ):
        box.wrap(["/bin/true"])
    assert f"CANNOT GRADE: the kernel's user (uid {kernel_uid(14)})" in "\n".join(enforced(box))
    assert "no mount namespace can be made here (test)" in box.probe([sys.executable, "-c", "pass"])


def test_bwrap_that_cannot_make_namespaces_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr("autograder.host.bwrap_path", lambda: str(fake))
    host.bwrap_problem.cache_clear()
    try:
        box = Sandbox(tmp_path, Limits())
        assert not box.isolated
        assert "cannot create namespaces here" in "\n".join(enforced(box))
        assert "--unshare-net" not in box.wrap(["/bin/true"])  # limits only, and said so
    finally:
        host.bwrap_problem.cache_clear()


@needs_bwrap
def test_wrapped_command_keeps_the_course_out(tmp_path):
    cmd = Sandbox(tmp_path, Limits(), slot=3).wrap(["/bin/true"])
    assert cmd[0].endswith("bwrap") and "--unshare-net" in cmd and "--die-with-parent" in cmd
    binds = [cmd[i + 1] for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind")]
    assert str(tmp_path) in binds
    assert not any(b == str(ROOT) or b.startswith(str(ROOT / "source")) for b in binds)


@needs_bwrap
def test_sweep_finds_sandbox_processes_a_parent_walk_misses(tmp_path, monkeypatch):
    """A fork bomb's process that exits while psutil walks the process tree hides its children from that walk
    (the CI failure of session 4: the bomb ran on after the sweep). The sweep also takes every process in the
    kernel's PID namespace, so it finds them even when the walk finds nothing."""
    import time

    import psutil

    from autograder import kernel as kernel_module

    tmp_path.chmod(0o711)
    script = (
        "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        time.sleep(120)\n"
        "        os._exit(0)\ntime.sleep(120)\n"
    )
    box = Sandbox(tmp_path, Limits(), slot=9)
    proc = subprocess.Popen(box.wrap([sys.executable, "-c", script]), pass_fds=box.pass_fds)
    box.release()
    try:
        top = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60

        def python(p):  # not the bubblewraps, whose arguments name the script too
            try:
                return p.name() != "bwrap" and "-c" in p.cmdline()
            except psutil.Error:
                return False

        while len(pythons := [p for p in top.children(recursive=True) if python(p)]) < 4:
            assert time.monotonic() < deadline and proc.poll() is None, "the sandboxed python did not start"
            time.sleep(0.2)
        kernel = min(pythons, key=lambda p: p.create_time())
        reaper = kernel_module.Reaper(box.uid)
        keep = {top.pid, kernel.pid, *(p.pid for p in kernel.parents())}
        reaper._keep_for, reaper._keep = top.pid, keep  # the kernel's own line (an ipykernel's is found by name)
        forks = {p.pid for p in pythons} - {kernel.pid}
        assert {p.pid for p in reaper._sandboxed(top)} - keep == forks
        monkeypatch.setattr(kernel_module, "_children", lambda proc: [])  # the walk lost them all
        assert {p.pid for p in reaper._sandboxed(top)} - keep == forks
        assert reaper.reap(top) == len(forks)

        def dead(p):  # killed: gone, or a zombie until its parent waits for it
            try:
                return p.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        assert all(dead(p) for p in reaper._sandboxed(top) if p.pid not in keep)
    finally:
        proc.kill()
        proc.wait()


# The fork bomb's forked kernel preloads NumPy only: each fork of a process that imported TensorFlow copies its
# page tables (about 0.2 s), which made the bomb's cell 28 s instead of 6 s and tests nothing more.
@pytest.mark.parametrize("kernel", ["fresh", "forked"])
def test_fork_bomb_in_a_cell_costs_that_cell_only(tmp_path, kernel):
    """`while True: os.fork()` at the top level of a cell: the process limit stops it, the survivors (forked
    copies of the kernel) are killed after the cell, and the kernel grades the rest of the notebook.

    Then a fork bomb that never dies out by itself, called from a test cell (the grader's contract): each copy
    exits when its fork fails, which frees the slot for another copy's fork, so the bomb churns on at the
    process limit, its processes vanishing and turning into zombies while the grader looks at them. After
    the test, none of it may be left running (else it takes the CPU from every later test)."""
    home, control, private = tmp_path / "home", tmp_path / "control", tmp_path / "private"
    for d in (home, control, private):
        d.mkdir()
    tmp_path.chmod(0o711)
    private.chmod(0o700)
    # One copy never exits (so the sweep always has something to kill, however the churn goes); the others
    # exit when their fork fails, freeing the slot for another copy's fork.
    churn = (
        "import os, time\n\ndef churn():\n    me = os.getpid()\n    if os.fork() == 0:\n        while True:\n"
        "            time.sleep(1)\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            if os.getpid() == me:\n                raise\n            os._exit(0)\n\n"
        "def copies():  # forks of this kernel that still run: same command line (a forked kernel's parent's too)\n"
        "    me, n = open('/proc/self/cmdline', 'rb').read(), 0\n"
        "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "        try:\n"
        "            same = int(pid) not in (os.getpid(), os.getppid()) and open(f'/proc/{pid}/cmdline', 'rb').read() == me\n"
        "            n += same and open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z'\n"
        "        except OSError:\n            pass\n    return n"
    )
    test = {"nbgrader": {"grade_id": "t", "grade": True, "points": 1}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in ("p = 0.5", "import os\nwhile True:\n    os.fork()", "q = 1")]
    nb.cells.append(nbformat.v4.new_code_cell("assert p == 0.5 and q == 1", metadata=test))
    nb.cells.append(nbformat.v4.new_code_cell(churn))
    nb.cells.append(
        nbformat.v4.new_code_cell("churn()", metadata={"nbgrader": {**test["nbgrader"], "grade_id": "bomb"}})
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "assert copies() == 0, copies()", metadata={"nbgrader": {**test["nbgrader"], "grade_id": "after"}}
        )
    )
    nbformat.write(nb, str(private / "nb.ipynb"))
    Job(
        workdir=str(home),
        control=str(control),
        notebook=str(private / "nb.ipynb"),
        cell_timeout=60,
        notebook_timeout=200,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        sandbox=SandboxSpec(slot=8, memory=4 * 2**30, processes=128),
        executed=str(tmp_path / "out.ipynb"),
        result=str(tmp_path / "result.json"),
        preload={"fresh": (), "forked": ("numpy",)}[kernel],
    ).write(private / "job.json")
    proc = subprocess.run(
        [sys.executable, "-m", "autograder.worker", str(private / "job.json")],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert [c["status"] for c in result["cells"]] == ["ok", "error", "ok", "ok", "ok", "error", "ok"], result["cells"]
    assert result["cells"][1]["ename"] == "BlockingIOError"
    assert result["cells"][5]["ename"] == "BlockingIOError"
    assert any(e.startswith("cell 1: killed ") for e in result["events"]), result["events"]
    if Sandbox(tmp_path).isolated:  # its own PID namespace: the final sweep finds the copy that never exits
        assert any(e.startswith("cell -1: killed ") for e in result["events"]), result["events"]


@needs_bwrap
def test_kernel_inherits_no_open_file_of_the_grader(facts):
    """The kernel starts with stdin and stdout on /dev/null and stderr a pipe the worker drains: never the
    worker's log (which a student once read, truncated and forged through /proc/self/fd) or any other file."""
    got, _, _ = facts
    fds = got["fds"]  # at the first cell: ipykernel has put pipes of its own on 1 and 2, and keeps the originals
    assert fds["0"] == "/dev/null"
    # a forked kernel's stderr is the named pipe its job's log is read from, in its own job folder
    own_log = str(pathlib.Path(got["cwd"]).parent / "log")
    assert {target for target in fds.values() if target.startswith("/")} - {own_log} == {"/dev/null"}, fds


@needs_bwrap
def test_no_user_namespaces_and_needless_syscalls_refused(facts):
    got, _, _ = facts
    if not SYSCALLS and not IN_CI:
        pytest.skip("pyseccomp is not installed")
    refused = {"clone3": "ENOSYS"}
    assert got["syscalls"] == {name: refused.get(name, "EPERM") for name in SYSCALLS}, got["syscalls"]
    assert got["unshare_cmd"] != 0 and got["mount_tmpfs"] is False


@needs_bwrap
def test_numpy_and_tensorflow_threads_work_under_the_filter(facts):
    got, _, _ = facts
    assert got["numpy_threads"] == [300.0 * 300 * 300] * 4
    assert got["tensorflow"] == 64.0 * 64 * 64


@needs_bwrap
def test_tmp_and_shm_are_sized_and_counted_in_memory(facts):
    got, _, _ = facts
    assert got["tmp_sizes"] == [64 * 2**20] * 2
    assert got["shm_fill"] == "ENOSPC"  # 80 MiB into a 64 MiB /dev/shm
    assert got["big_alloc"] == "MemoryError"  # the address space is what memory leaves: 4 GiB here


def test_seccomp_filter_and_nested_bwrap_in_the_command(tmp_path):
    """What wrap() hands bubblewrap: the filter on a descriptor of its own (passed, then released), tmpfs sizes,
    --disable-userns in the innermost bubblewrap, which as root runs as the slot's user."""
    box = Sandbox(tmp_path, Limits(tmp_size=32 * 2**20), slot=4)
    if not box.isolated:
        pytest.skip("bubblewrap cannot make namespaces here")
    cmd = box.wrap(["/bin/true"])
    fd = int(cmd[cmd.index("--seccomp") + 1])
    assert box.pass_fds == (fd,) and os.read(fd, 8)  # a BPF program
    assert cmd.count("--disable-userns") == 1 and cmd[cmd.index("--tmpfs") - 1] == str(32 * 2**20)
    if os.geteuid() == 0 and host.nested_problem() is None:
        assert cmd.index("--reuid=" + str(kernel_uid(4))) < cmd.index("--disable-userns")
    box.release()
    assert box.pass_fds == ()
    with pytest.raises(OSError):
        os.fstat(fd)
