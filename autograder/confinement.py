"""What confines a grading kernel besides bubblewrap's namespaces: its resource limits and its seccomp filter.

:class:`Limits` holds the kernel's memory, processes, file sizes, disk, files and CPU time (``prlimit`` and, under
a root grader, the size of its folder's tmpfs apply them); :func:`parse_size` reads the sizes of
``assignments.yml``. The seccomp filter (:data:`DENIED_SYSCALLS`, and ``unshare``/``clone`` with namespace
flags) is built with libseccomp and handed to the innermost bubblewrap (see :mod:`autograder.sandbox`).
"""

from __future__ import annotations

import dataclasses
import functools
import re

UNIT = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as configured."""


def parse_size(text: str | int) -> int:
    """'4G' -> 4294967296; plain integers are bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", str(text), re.I)
    if not m:
        raise SandboxError(f"cannot read the size {text!r}: write bytes or a number with K, M or G (e.g. 4G)")
    return int(m.group(1)) * UNIT[m.group(2).upper()]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits of one grading kernel (and everything it starts).

    ``memory`` is everything the kernel can fill with memory: its address space and its RAM-backed file
    systems (``/tmp`` and ``/dev/shm`` inside the sandbox, each a tmpfs of ``tmp_size``, and its folder when
    that is a tmpfs of ``disk`` bytes). The address-space limit is what is left:

    >>> Limits(memory=5 * 2**30, disk=512 * 2**20, tmp_size=256 * 2**20).address_space / 2**30
    4.0
    """

    memory: int = 5 * 2**30  # bytes: address space + /tmp + /dev/shm + the folder (TensorFlow maps about 2.5 GB)
    processes: int = 256  # processes and threads of the kernel's user
    file_size: int = 256 * 2**20  # largest file the kernel may write, bytes
    open_files: int = 1024
    cpu_seconds: int = 1800  # CPU time of the kernel process: a backstop behind the wall-clock limits
    disk: int = 512 * 2**20  # bytes in the submission's folder
    files: int = 10_000  # files and folders in the submission's folder
    tmp_size: int = 256 * 2**20  # size of each of /tmp and /dev/shm in the sandbox (RAM-backed tmpfs)

    @property
    def address_space(self) -> int:
        """The kernel's address-space limit: ``memory`` less what its tmpfs mounts and its folder may hold."""
        return self.memory - 2 * self.tmp_size - self.disk

    def check(self) -> None:
        """Raise SandboxError unless the parts fit in ``memory`` with at least 1 GiB of address space left."""
        if self.address_space < 2**30:
            raise SandboxError(
                f"memory limit {self.memory / 2**30:g} GiB is too small: /tmp and /dev/shm "
                f"({self.tmp_size / 2**20:g} MiB each) and the folder ({self.disk / 2**20:g} MiB) count against "
                f"it and leave {self.address_space / 2**30:.2f} GiB of address space; the kernel needs at least "
                "1 GiB (TensorFlow about 2.5). Raise memory_limit or lower disk_limit in assignments.yml"
            )

    def rlimits(self) -> list[tuple[str, int]]:
        """The limits as ``(name in the resource module, value)`` pairs, soft and hard alike."""
        self.check()
        return [
            ("RLIMIT_AS", self.address_space),
            ("RLIMIT_NPROC", self.processes),
            ("RLIMIT_FSIZE", self.file_size),
            ("RLIMIT_NOFILE", self.open_files),
            ("RLIMIT_CPU", self.cpu_seconds),
            ("RLIMIT_CORE", 0),
        ]

    def prlimit_args(self, skip: tuple[str, ...] = ()) -> list[str]:
        """The limits as ``prlimit`` options, but those named in ``skip`` (left as they are)."""
        return [f"--{PRLIMIT_OPTION[name]}={value}" for name, value in self.rlimits() if name not in skip]


PRLIMIT_OPTION = {"RLIMIT_AS": "as", "RLIMIT_NPROC": "nproc", "RLIMIT_FSIZE": "fsize", "RLIMIT_NOFILE": "nofile"}
PRLIMIT_OPTION.update(RLIMIT_CPU="cpu", RLIMIT_CORE="core")


# What the sandbox's seccomp filter refuses (EPERM): syscalls a notebook never needs that reach kernel code
# rarely exercised, or rearrange the process's view of the machine. Namespaces are refused by flag: threads
# and fork use clone without them. clone3 answers ENOSYS: its flags sit in memory a filter cannot read, and
# the C library then falls back to clone, whose flags it can.
DENIED_SYSCALLS = (
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "uselib",
    "vhangup",
    "lookup_dcookie",
)
NAMESPACE_FLAGS = {  # linux/sched.h
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
CLONE_NEWTIME = 0x00000080  # unshare only (in clone's flags these bits are the exit signal)


@functools.lru_cache(maxsize=1)
def _seccomp() -> tuple[bytes | None, str | None]:
    """The sandbox's seccomp filter as a BPF program (libseccomp, through ``pyseccomp``), or why there is none."""
    import errno
    import tempfile

    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: libseccomp is not installed
        return None, f"no seccomp filter ({exc}; install libseccomp2 and the pyseccomp package)"
    deny = sc.ERRNO(errno.EPERM)
    filt = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            filt.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            if name in ("iopl", "ioperm", "uselib", "lookup_dcookie"):  # not on every architecture
                continue
            raise
    for flag in NAMESPACE_FLAGS.values():
        filt.add_rule(deny, "unshare", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        filt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    filt.add_rule(deny, "unshare", sc.Arg(0, sc.MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME))
    filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as fh:
        filt.export_bpf(fh)
        fh.seek(0)
        return fh.read(), None


def seccomp_problem() -> str | None:
    """None if the seccomp filter can be built here; else why not."""
    return _seccomp()[1]
