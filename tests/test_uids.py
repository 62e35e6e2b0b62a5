"""Grading slots (autograder/uids.py): one lease per slot across the processes of a machine, freed when its
holder dies, never inherited by a child, kept in a lock dir no other user can plant; uids that never collide."""

import ctypes
import doctest
import json
import os
import pathlib
import selectors
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from autograder import host, uids
from autograder.uids import UidLeaseError, lease

ROOT = pathlib.Path(__file__).resolve().parents[1]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder owned by another user")

# A grader process: takes a lease, reports it, holds it until its stdin closes (run with -S: no site-packages
# to import, it needs only the standard library and the checkout).
HOLDER = """
import json, sys
from autograder import uids
if sys.argv[1] == "same-start":
    uids._start = lambda slots: 0  # every process probes slot 0 first: only the lock keeps them apart
got = uids.lease(slots=int(sys.argv[2]))
print(json.dumps([got.slot, got.kernel_uid, got.evaluator_uid]), flush=True)
sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def deadline():
    """A lease that blocks instead of failing fast (a lock taken without LOCK_NB) fails its test, not the run."""

    def expired(signum, frame):
        raise TimeoutError("the test took more than 20 s: something blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    path = tmp_path / "locks"
    monkeypatch.setenv(uids.LOCK_DIR_ENV, str(path))
    return path


def _holder(lock_dir: pathlib.Path, start: str = "own-start", slots: int = uids.SLOTS) -> subprocess.Popen:
    env = {**os.environ, uids.LOCK_DIR_ENV: str(lock_dir)}
    return subprocess.Popen(
        [sys.executable, "-S", "-c", HOLDER, start, str(slots)],
        cwd=ROOT,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _report(proc: subprocess.Popen, deadline: float) -> list[int] | None:
    """The holder's ``[slot, kernel_uid, evaluator_uid]``, or None if it printed nothing by ``deadline``."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(max(0.0, deadline - time.monotonic())):
            return None
    return json.loads(proc.stdout.readline() or "null")


def _open_files(pid: int | str) -> set[str]:
    """What the process's descriptors point to (the one listdir itself used is gone by then)."""
    fds, files = pathlib.Path(f"/proc/{pid}/fd"), set()
    for name in os.listdir(fds):
        try:
            files.add(os.readlink(fds / name))
        except FileNotFoundError:
            pass
    return files


def test_two_leases_in_one_process_differ(lock_dir):
    first, second = lease(), lease()
    assert first.slot != second.slot
    assert {first.kernel_uid, first.evaluator_uid}.isdisjoint({second.kernel_uid, second.evaluator_uid})
    assert (first.kernel_uid, first.evaluator_uid) == (20000 + 2 * first.slot, 20001 + 2 * first.slot)
    assert first.path == lock_dir / f"slot-{first.slot}.lock"
    assert oct(lock_dir.stat().st_mode & 0o777) == "0o700"
    assert oct(first.path.stat().st_mode & 0o777) == "0o600"


def test_released_slot_is_reused_and_release_is_idempotent(lock_dir):
    first = lease(slots=1)
    number = first._fd
    with pytest.raises(UidLeaseError):
        lease(slots=1)
    first.release()
    assert not first.held
    again = lease(slots=1)
    assert again.slot == first.slot == 0
    recycled = None
    if again._fd != number:  # make sure the number first's descriptor had is in use again
        recycled = os.open(os.devnull, os.O_RDONLY)
        os.dup2(recycled, number)
    try:
        first.release()  # a second release must neither close what now has that number nor unlock it
        os.fstat(number)
        with pytest.raises(UidLeaseError):
            lease(slots=1)
    finally:
        if recycled is not None:
            os.close(recycled)
            os.close(number)
    again.release()


def test_context_manager_releases(lock_dir):
    with lease(slots=1) as held:
        assert held.held and repr(held).endswith("held)")
        with pytest.raises(UidLeaseError):
            lease(slots=1)
    assert not held.held
    with lease(slots=1) as again:
        assert again.slot == 0


def test_a_lease_dropped_unreleased_frees_its_slot(lock_dir):
    held = lease(slots=1)
    del held
    lease(slots=1).release()


@pytest.mark.parametrize("start", ["same-start", "own-start"])
def test_concurrent_processes_get_distinct_slots_and_uids(lock_dir, start):
    procs = [_holder(lock_dir, start) for _ in range(8)]
    try:
        deadline = time.monotonic() + 10
        reports = [_report(p, deadline) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.kill()  # one stuck before its report would not read its stdin
            p.wait(timeout=10)
    assert None not in reports, [p.stderr.read() for p in procs]
    slots = [slot for slot, _, _ in reports]
    all_uids = [uid for _, kernel, evaluator in reports for uid in (kernel, evaluator)]
    assert len(set(slots)) == 8, reports
    assert len(set(all_uids)) == 16, reports


def test_killed_holder_frees_its_slot(lock_dir):
    proc = _holder(lock_dir, slots=1)
    try:
        report = _report(proc, time.monotonic() + 10)
        with pytest.raises(UidLeaseError, match="all 1 are taken"):
            lease(slots=1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert report == [0, 20000, 20001], proc.stderr.read()  # read once it is dead: a live one holds stderr
    with lease(slots=1) as freed:
        assert freed.slot == 0


def test_lease_is_not_inherited_by_a_program_started(lock_dir):
    with lease() as held:
        assert str(held.path) in _open_files("self")  # the check below can see a lock file
        child = subprocess.Popen(["sleep", "30"], close_fds=False)  # even without close_fds: O_CLOEXEC
        try:
            assert str(held.path) not in _open_files(child.pid)
        finally:
            child.kill()
            child.wait()


def test_lease_is_not_inherited_by_a_forked_child(lock_dir):
    held = lease(slots=1)
    number = held._fd
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then wait for the parent's word
        try:
            report = {"files": sorted(_open_files("self")), "held": held.held}
            recycled = os.open(os.devnull, os.O_RDONLY)
            if recycled != number:
                os.dup2(recycled, number)
                os.close(recycled)
            held.release()  # the child's copy: must neither unlock the parent's lock nor close `number`
            try:
                os.fstat(number)
                report["recycled_open"] = True
            except OSError:
                report["recycled_open"] = False
            os.write(report_w, json.dumps(report).encode())
            os.close(report_w)
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(report_w)
    try:
        with os.fdopen(report_r) as fh:
            report = json.loads(fh.read())
        assert str(held.path) not in report["files"]
        assert report == {**report, "held": False, "recycled_open": True}
        with pytest.raises(UidLeaseError):  # the child's release left the parent's lock alone
            lease(slots=1)
        held.release()
        with lease(slots=1) as again:  # the child, still alive, holds no copy of the lock
            assert again.slot == 0
    finally:
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        os.close(go_w)
        os.close(go_r)


def test_release_in_a_child_forked_behind_pythons_back_keeps_the_parents_lock(lock_dir):
    held = lease(slots=1)
    pid = ctypes.CDLL(None, use_errno=True).fork()  # as a C library would: no at-fork handler runs
    if pid == 0:
        try:
            held.release()  # the child's copy of the descriptor: closed, never unlocked
        finally:
            os._exit(0)
    assert pid > 0
    os.waitpid(pid, 0)
    with pytest.raises(UidLeaseError, match="all 1 are taken"):
        lease(slots=1)
    held.release()
    lease(slots=1).release()


def test_lock_dir_that_is_a_symlink_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(UidLeaseError, match=r"link is a symlink: .*Remove it"):
        lease(tmp_path / "link")
    monkeypatch.setenv(uids.LOCK_DIR_ENV, str(tmp_path / "link"))
    with pytest.raises(UidLeaseError, match="is a symlink"):
        lease()
    assert list(real.iterdir()) == []


def test_lock_dir_that_cannot_be_made_or_is_a_file_is_refused(tmp_path):
    with pytest.raises(
        UidLeaseError,
        match=r"cannot create the uid lock dir .*missing/locks \(No such file or "
        r"directory\); set ADL_UID_LOCK_DIR",
    ):
        lease(tmp_path / "missing" / "locks")
    (tmp_path / "file").write_text("")
    with pytest.raises(UidLeaseError, match="file is not a folder"):
        lease(tmp_path / "file")


def test_lock_dir_open_to_others_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    with pytest.raises(UidLeaseError, match=r"has mode drwxr-x---: group or others may use it.*chmod 700"):
        lease(shared)
    shared.chmod(0o700)
    lease(shared).release()


@as_root
def test_lock_dir_owned_by_another_user_is_refused(tmp_path):
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    os.chown(planted, 12345, 12345)
    with pytest.raises(UidLeaseError, match=r"is owned by uid 12345, not by the grader's uid 0.*Remove it"):
        lease(planted)


@as_root
def test_default_lock_dir_planted_in_tmp_by_another_user_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(uids.LOCK_DIR_ENV, raising=False)
    monkeypatch.setattr(uids, "RUN_LOCK_DIR", tmp_path / "no-run" / "adl-grade" / "uids")  # /run not writable
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / "adl-grade-uids-0"
    assert uids.default_lock_dir() == planted
    planted.mkdir(mode=0o700)
    os.chown(planted, 12345, 12345)
    with pytest.raises(UidLeaseError, match="owned by uid 12345"):
        lease()


def test_default_lock_dir_is_under_run_when_writable_and_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv(uids.LOCK_DIR_ENV, raising=False)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(uids, "RUN_LOCK_DIR", run / "adl-grade" / "uids")
    assert uids.default_lock_dir() == run / "adl-grade" / "uids"
    with lease() as held:
        assert held.path.parent == run / "adl-grade" / "uids"
    assert oct((run / "adl-grade" / "uids").stat().st_mode & 0o777) == "0o700"
    (tmp_path / "run2" / "adl-grade").mkdir(parents=True)  # another grader made the parent just before
    monkeypatch.setattr(uids, "RUN_LOCK_DIR", tmp_path / "run2" / "adl-grade" / "uids")
    lease().release()
    run.chmod(0o500)  # /run read-only: the user's own folder in the temporary directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        if os.geteuid() != 0:  # root may write anyway
            assert uids.default_lock_dir() == tmp_path / f"adl-grade-uids-{os.geteuid()}"
    finally:
        run.chmod(0o700)


def test_lock_file_that_is_a_symlink_is_refused(lock_dir):
    lock_dir.mkdir(mode=0o700)
    (lock_dir / "slot-0.lock").symlink_to(lock_dir.parent / "elsewhere")
    with pytest.raises(UidLeaseError, match=r"slot-0.lock \(Too many levels of symbolic links\): remove it"):
        lease(slots=1)
    assert not (lock_dir.parent / "elsewhere").exists()


def test_all_slots_taken_is_a_clear_error(lock_dir, monkeypatch):
    held = [lease(slots=3) for _ in range(3)]
    with pytest.raises(
        RuntimeError,
        match=r"no free grading slot: all 3 are taken \(3 held by running graders\)"
        r"\. Wait .* fewer workers; `fuser -v .*slot-\*\.lock`",
    ):
        lease(slots=3)
    monkeypatch.setattr(uids, "SLOTS", 3)
    with pytest.raises(UidLeaseError, match="all 3 are taken"):
        lease()
    held[1].release()
    assert lease().slot == held[1].slot


def test_probing_starts_at_an_offset_of_the_pid_and_wraps_around(lock_dir, monkeypatch):
    starts = []
    for pid in (4000, 4001, 4002):
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        starts.append(uids._start(uids.SLOTS))
    assert len(set(starts)) == 3 and min(abs(a - b) for a in starts for b in starts if a != b) > 16, starts
    monkeypatch.undo()
    monkeypatch.setenv(uids.LOCK_DIR_ENV, str(lock_dir))
    monkeypatch.setattr(uids, "_start", lambda slots: 2)
    held = [lease(slots=3) for _ in range(3)]
    assert [got.slot for got in held] == [2, 0, 1]
    with pytest.raises(UidLeaseError, match="all 3 are taken"):
        lease(slots=3)


def test_slot_whose_uid_has_an_account_is_skipped(lock_dir, monkeypatch):
    assert uids._account(0) == "user 'root'"
    taken = {uids.evaluator_uid(0): "user 'alice'", uids.kernel_uid(2): "group 'staff'"}
    monkeypatch.setattr(uids, "_account", taken.get)
    monkeypatch.setattr(uids, "_start", lambda slots: 0)
    with lease(slots=3) as got:
        assert got.slot == 1
        with pytest.raises(
            UidLeaseError,
            match=r"\(1 held by running graders, 2 skipped because their uids "
            r"belong to accounts of this machine \(leave uids 20000-20005",
        ):
            lease(slots=3)


def test_uid_range_is_documented_disjoint_and_below_the_system_ranges():
    assert uids.SLOT_UID_BASE == host.SLOT_UID_BASE  # the probe of nested bubblewrap runs as the first slot
    first, last = uids.uid_range()
    assert (first, last) == (20000, 28191)
    assert "20000" in uids.__doc__ and "28191" in uids.__doc__
    kernels = {uids.kernel_uid(slot) for slot in range(uids.SLOTS)}
    evaluators = {uids.evaluator_uid(slot) for slot in range(uids.SLOTS)}
    assert kernels.isdisjoint(evaluators)
    assert len(kernels) == len(evaluators) == uids.SLOTS
    assert min(kernels | evaluators) == first and max(kernels | evaluators) == last
    assert last < uids.UID_CEILING <= 60000 < 65534
    with pytest.raises(ValueError, match="20000-79999, past 59999"):
        uids.uid_range(30000)
    with pytest.raises(ValueError, match="use fewer slots"):
        lease(slots=30000)
    assert doctest.testmod(uids).failed == 0
