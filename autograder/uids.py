"""Grading slots: the user ids a submission's kernel and model evaluator run as, unique on this machine.

When the grader is root, each submission runs as user ids of its own, so one student's processes never count
against another's process limit, and ``kill`` of every process of a uid (before and after a submission, for
what a cell left running) can only reach that submission. That holds only if no two graders on the machine
(two Dask worker processes, two ``adl-grade`` runs, of one course or of two) ever use the same uid at once.

**The scheme.** The machine has :data:`SLOTS` slots (4096). Slot ``i`` owns two uids: the kernel's,
``SLOT_UID_BASE + 2*i``, and the model evaluator's, ``SLOT_UID_BASE + 2*i + 1``; no uid belongs to two slots.
:func:`lease` takes a free slot and returns a :class:`Lease`; the slot is the holder's until it calls
:meth:`Lease.release` (or leaves the ``with`` block) or dies. A process probes the slots from an offset
derived from its pid, wrapping around, so graders started together rarely try the same slot first.

**Why flock.** A lease is an exclusive ``flock(LOCK_EX | LOCK_NB)`` on ``<lock dir>/slot-<i>.lock``, the
standard way for unrelated processes to own something on one machine. The kernel drops the lock when the
holder dies, however it dies (SIGKILL, the OOM killer; a reboot empties ``/run``, a tmpfs), so a killed
grader leaves no stale lease and nothing to clean up. Lock files are never removed (removing one while
another process has it open would let two processes "hold" the same slot). A flock belongs to
the open file description, not to the process: two leases in one process, from two threads, exclude each
other too (POSIX ``fcntl``/``lockf`` record locks would not: they are per process, and closing any
descriptor of the file drops them all). The lock dir must be local (``/run``, ``/tmp``), not NFS.

**Descriptors and fork.** The lock file is opened with ``O_CLOEXEC``, so no program a grader starts (the
kernel, bubblewrap, a worker) inherits it, whatever ``close_fds`` says. A ``fork`` without ``exec``
(multiprocessing's fork start method) would copy the descriptor, and the lock would then live as long as
the child, not the lease. So an ``os.register_at_fork`` handler closes every lease's descriptor in the
child (without unlocking: the lock is the parent's) and marks the child's copies released: a lease belongs
to the process that took it. Released by its owner, a lease is unlocked explicitly, then closed; released in
any other process (a child forked by C code, which runs no handler), it is only closed, so the owner keeps it.

**The lock dir** is machine-wide, independent of the course and of ``HOME``: ``/run/adl-grade/uids`` when
``/run`` is writable (root; a tmpfs, empty at boot), else ``<tempfile.gettempdir()>/adl-grade-uids-<euid>``.
``ADL_UID_LOCK_DIR`` overrides it (tests; graders in containers that share the host's uids must share it:
bind-mount one folder into each). It must be a folder, not a symlink, owned by the grader's user, with no
permission for group or others (the rule tmux applies to its socket folder): another local user must not be
able to pre-create it, or open a lock file to steal or deny slots. It is created 0700. A grader that is not
root runs kernels as its own user (``sandbox.Sandbox.uid``): its leases only keep the slot numbers apart.

**The uid range** is ``SLOT_UID_BASE`` (20000) to ``SLOT_UID_BASE + 2*SLOTS - 1`` (28191): above the
system accounts (below 1000) and the first regular users (``UID_MIN`` 1000 up, one by one), below
``UID_MAX`` (60000, login.defs' default), systemd-homed's 60001-60513, systemd's dynamic users 61184-65519
and ``nobody`` (65534); far below the subordinate ranges of user namespaces (``/etc/subuid``, from 100000).
A machine whose user database does name a uid or gid of a slot (a directory service, thousands of
accounts) loses that slot: :func:`lease` skips it with a warning, since killing "the slot's processes"
would kill that user's.

Before using a slot, a grader kills whatever runs as its uids: a grader killed mid-submission may have left a
kernel that has not noticed yet (``processes.kill_slot_users`` does that).

Example:
    >>> with lease() as slot:  # doctest: +SKIP
    ...     slot.kernel_uid, slot.evaluator_uid
    (21318, 21319)
"""

from __future__ import annotations

import errno
import fcntl
import grp
import logging
import os
import pathlib
import pwd
import stat
import tempfile
import threading
import weakref

log = logging.getLogger(__name__)

SLOT_UID_BASE = 20000  # slot i: kernel uid/gid SLOT_UID_BASE + 2*i, evaluator's + 1 (sandbox.py imports it)
SLOTS = 4096  # grading slots on one machine: uids SLOT_UID_BASE .. SLOT_UID_BASE + 2*SLOTS - 1
UID_CEILING = 60000  # login.defs' UID_MAX: systemd's own ranges and nobody (65534) lie above it
LOCK_DIR_ENV = "ADL_UID_LOCK_DIR"
RUN_LOCK_DIR = pathlib.Path("/run/adl-grade/uids")


class UidLeaseError(RuntimeError):
    """No grading slot can be leased: the lock dir is unsafe, or every slot is taken."""


def uid_range(slots: int | None = None) -> tuple[int, int]:
    """The first and last uid of a pool of ``slots`` (default :data:`SLOTS`); ValueError if it would pass
    :data:`UID_CEILING`.

    >>> uid_range(4096)
    (20000, 28191)
    """
    slots = SLOTS if slots is None else slots
    if slots < 1:
        raise ValueError(f"uid_range: slots must be at least 1, got {slots}")
    last = SLOT_UID_BASE + 2 * slots - 1
    if last >= UID_CEILING:
        raise ValueError(
            f"uid_range: {slots} slots need uids {SLOT_UID_BASE}-{last}, past {UID_CEILING - 1} "
            "(above it lie systemd's dynamic users and nobody): use fewer slots"
        )
    return SLOT_UID_BASE, last


def default_lock_dir() -> pathlib.Path:
    """``$ADL_UID_LOCK_DIR``, else ``/run/adl-grade/uids`` when ``/run`` is writable, else a folder of this user's
    under the temporary directory."""
    override = os.environ.get(LOCK_DIR_ENV)
    if override:
        return pathlib.Path(override)
    if os.access(RUN_LOCK_DIR.parent.parent, os.W_OK):
        return RUN_LOCK_DIR
    return pathlib.Path(tempfile.gettempdir()) / f"adl-grade-uids-{os.geteuid()}"


def kernel_uid(slot: int) -> int:
    """The uid of slot ``slot``'s kernel: ``SLOT_UID_BASE + 2*slot``."""
    return SLOT_UID_BASE + 2 * slot


def evaluator_uid(slot: int) -> int:
    """The uid of slot ``slot``'s model evaluator: the kernel's plus one, owned by no other slot."""
    return SLOT_UID_BASE + 2 * slot + 1


class Lease:
    """One grading slot, held until :meth:`release` (or the end of a ``with`` block, or the holder's death).

    Attributes:
        slot: the slot's number, ``0 <= slot < SLOTS``.
        kernel_uid: the uid (and gid) the submission's kernel runs as.
        evaluator_uid: the uid (and gid) its model evaluator runs as.
        path: the lock file.
    """

    def __init__(self, slot: int, fd: int, path: pathlib.Path):
        self.slot = slot
        self.kernel_uid = kernel_uid(slot)
        self.evaluator_uid = evaluator_uid(slot)
        self.path = path
        self._fd: int | None = fd
        self._owner = os.getpid()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the slot back. Idempotent; a no-op in a forked child (the lease is its parent's)."""
        with _LOCK:
            _LIVE.discard(self)
            self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.getpid() == self._owner:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _forget(self) -> None:
        """In a forked child: close the copied descriptor, keep the parent's lock."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a lease dropped unreleased: as a file object closes its descriptor
        try:
            self._close()
        except Exception:  # interpreter shutdown: the process's exit drops the lock anyway
            pass

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"Lease(slot={self.slot}, kernel_uid={self.kernel_uid}, evaluator_uid={self.evaluator_uid}, {state})"


_LOCK = threading.Lock()  # guards _LIVE, the leases this process holds (the fork handler closes them)
_LIVE: weakref.WeakSet[Lease] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for held in list(_LIVE):
        held._forget()
    _LIVE.clear()
    _LOCK.release()  # taken by the forking thread before the fork (below), the child's only thread


os.register_at_fork(before=_LOCK.acquire, after_in_parent=_LOCK.release, after_in_child=_after_fork_in_child)


def _open_lock_dir(path: pathlib.Path) -> int:
    """A descriptor of the lock dir, created 0700 if missing; refused unless it is this user's folder, not a
    symlink, closed to group and others."""
    for folder, mode in ([(path.parent, 0o755)] if path == RUN_LOCK_DIR else []) + [(path, 0o700)]:
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UidLeaseError(
                f"cannot create the uid lock dir {path} ({exc.strerror}); set {LOCK_DIR_ENV} to a folder of your own"
            ) from exc
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symlink" if os.path.islink(path) else "not a folder"
            raise UidLeaseError(
                f"the uid lock dir {path} is {kind}: another user may have planted it to steal "
                f"grading slots. Remove it (the grader creates it), or set {LOCK_DIR_ENV}"
            ) from exc
        raise UidLeaseError(f"cannot open the uid lock dir {path} ({exc.strerror})") from exc
    st = os.fstat(fd)
    problem = None
    if st.st_uid != os.geteuid():
        problem = f"is owned by uid {st.st_uid}, not by the grader's uid {os.geteuid()}"
    elif st.st_mode & 0o077:
        problem = f"has mode {stat.filemode(st.st_mode)}: group or others may use it"
    if problem:
        os.close(fd)
        raise UidLeaseError(
            f"the uid lock dir {path} {problem}; another user could steal or deny grading "
            f"slots. Remove it (the grader creates it, mode 0700) or chmod 700 it if it is yours, "
            f"or set {LOCK_DIR_ENV}"
        )
    return fd


def _try_slot(dir_fd: int, lock_dir: pathlib.Path, slot: int) -> int | None:
    """The locked descriptor of ``slot``'s lock file, or None if another holder has it."""
    name = f"slot-{slot}.lock"
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:  # ELOOP: a symlink; only the lock dir's owner can have put it there
        raise UidLeaseError(f"cannot open the lock file {lock_dir / name} ({exc.strerror}): remove it") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise UidLeaseError(f"{lock_dir / name} is not a regular file of uid {os.geteuid()}: remove it")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _account(uid: int) -> str | None:
    """Who in the user or group database has the number ``uid``, if anyone."""
    try:
        return f"user {pwd.getpwuid(uid).pw_name!r}"
    except KeyError:
        pass
    try:
        return f"group {grp.getgrgid(uid).gr_name!r}"
    except KeyError:
        return None


def _start(slots: int) -> int:
    """Where this process starts probing: a golden-ratio hash of its pid, so nearby pids start far apart."""
    return (os.getpid() * 0x9E3779B1) % slots


def _probe(dir_fd: int, lock_dir: pathlib.Path, slots: int) -> tuple[Lease | None, int, int]:
    """The first slot free for this process, and how many it found held and how many named by an account."""
    held = named = 0
    first = _start(slots)
    for i in range(slots):
        slot = (first + i) % slots
        fd = _try_slot(dir_fd, lock_dir, slot)
        if fd is None:
            held += 1
            continue
        taken = [f"uid {uid} is {who}" for uid in (kernel_uid(slot), evaluator_uid(slot)) if (who := _account(uid))]
        if taken:
            log.warning("grading slot %d skipped: %s", slot, "; ".join(taken))
            named += 1
            os.close(fd)
            continue
        return Lease(slot, fd, lock_dir / f"slot-{slot}.lock"), held, named
    return None, held, named


def lease(lock_dir: str | os.PathLike | None = None, *, slots: int | None = None) -> Lease:
    """Take a free grading slot of this machine (see the module docstring).

    Args:
        lock_dir: the folder of lock files; default :func:`default_lock_dir`. Every grader on the machine must
            use the same one.
        slots: the pool's size; default :data:`SLOTS`.

    Returns:
        A :class:`Lease`, also a context manager.

    Raises:
        UidLeaseError (a RuntimeError): the lock dir is unsafe, or every slot is taken.
    """
    slots = SLOTS if slots is None else slots
    first_uid, last_uid = uid_range(slots)
    path = pathlib.Path(lock_dir) if lock_dir is not None else default_lock_dir()
    dir_fd = _open_lock_dir(path)
    try:
        with _LOCK:  # a fork from another thread waits: its child must not copy a lock not yet in _LIVE
            got, held, named = _probe(dir_fd, path, slots)
            if got is not None:
                _LIVE.add(got)
                return got
    finally:
        os.close(dir_fd)
    skipped = (
        (
            f", {named} skipped because their uids belong to accounts of this machine (leave uids "
            f"{first_uid}-{last_uid} unassigned)"
        )
        if named
        else ""
    )
    raise UidLeaseError(
        f"no free grading slot: all {slots} are taken ({held} held by running graders{skipped}). Wait for a "
        f"grader to finish or grade with fewer workers; `fuser -v {path}/slot-*.lock` lists the holders"
    )
