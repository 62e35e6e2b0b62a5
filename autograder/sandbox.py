"""The sandbox a grading kernel runs in: bubblewrap namespaces, an unprivileged user and resource limits.

The student's kernel is started through :meth:`Sandbox.wrap`, which prefixes its command with

- ``bwrap`` (bubblewrap, the sandbox Flatpak uses): new mount, network, PID, IPC and UTS namespaces. The
  file system is an allow-list: the system directories and the Python installation read-only, the data
  mirror read-only, the submission's working directory read-write, an empty ``/tmp``. The course folder
  (``source/``, hidden tests, the gradebook, other submissions) is simply not there. There is no network
  at all (not even loopback to the host), and the kernel sees only its own processes. The kernel talks to
  the grader over Unix sockets in its working directory (ZeroMQ's ``ipc`` transport).
- ``setpriv`` (when the grader runs as root, as in the grading container and CI): the kernel runs as an
  unprivileged user id of its own (one per grading slot), with no capabilities and ``no_new_privs``.
- ``prlimit``: address space (memory), processes and threads, file size, open files, core dumps, CPU time.

Without bubblewrap (a laptop where it is not installed) the kernel still gets the resource limits, and
:meth:`Sandbox.describe` says plainly what is not enforced; ``adl-grade`` prints it. ``make test`` in CI
installs bubblewrap and the tests check every claim.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

UNIT = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
SLOT_UID_BASE = 20000  # grading slot N runs as uid/gid SLOT_UID_BASE + N when the grader is root


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
    """Resource limits of one grading kernel (and everything it starts)."""

    memory: int = 4 * 2**30  # address space, bytes (TensorFlow alone maps about 2.5 GB)
    processes: int = 256  # processes and threads of the kernel's user
    file_size: int = 256 * 2**20  # largest file the kernel may write, bytes
    open_files: int = 1024
    cpu_seconds: int = 1800  # CPU time of the kernel process: a backstop behind the wall-clock limits

    def prlimit_args(self) -> list[str]:
        return [
            f"--as={self.memory}",
            f"--nproc={self.processes}",
            f"--fsize={self.file_size}",
            f"--nofile={self.open_files}",
            f"--cpu={self.cpu_seconds}",
            "--core=0",
        ]


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None if bubblewrap can build the sandbox here; else why not (checked once, with the same namespaces)."""
    path = bwrap_path()
    if path is None:
        return "bubblewrap (bwrap) is not installed"
    cmd = [path, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
           "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    if os.geteuid() != 0:
        cmd.insert(1, "--unshare-user")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not run here ({exc})"
    if proc.returncode != 0:
        return (f"bubblewrap cannot create namespaces here ({proc.stderr.strip()[:200]}); inside Docker, grade "
                "on the host or give the container the privilege to create namespaces")
    return None


def _readonly_roots() -> list[pathlib.Path]:
    """What the kernel needs to read: the Python installation, the environment, the helper package."""
    roots = {pathlib.Path(sys.base_prefix).resolve(), pathlib.Path(sys.prefix).resolve()}
    spec = importlib.util.find_spec("adl_helpers")
    if spec and spec.origin:
        roots.add(pathlib.Path(spec.origin).resolve().parent)
    return sorted(roots)


@dataclasses.dataclass
class Sandbox:
    """How to start one grading kernel. ``workdir`` is the only place it may write."""

    workdir: pathlib.Path
    limits: Limits = dataclasses.field(default_factory=Limits)
    slot: int = 0
    readonly: tuple[pathlib.Path, ...] = ()  # extra read-only paths (the data mirror)
    enabled: bool = True  # False: resource limits only (the instructor chose --no-sandbox)

    @property
    def isolated(self) -> bool:
        """True when bubblewrap namespaces are used."""
        return self.enabled and bwrap_problem() is None

    @property
    def uid(self) -> int | None:
        """The unprivileged user the kernel runs as, or None to keep the grader's user (not root)."""
        return SLOT_UID_BASE + self.slot if os.geteuid() == 0 else None

    def prepare(self) -> None:
        """Hand the working directory to the kernel's user."""
        if self.uid is not None:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def _limits(self) -> Limits:
        if os.geteuid() == 0:
            return self.limits
        # RLIMIT_NPROC counts every process of the user: as a normal user, leave room for the ones running.
        import psutil

        mine = sum(p.info["num_threads"] or 1 for p in psutil.process_iter(["uids", "num_threads"])
                   if p.info["uids"] and p.info["uids"].real == os.getuid())
        return dataclasses.replace(self.limits, processes=mine + self.limits.processes)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` (the kernel command) run inside the sandbox."""
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise SandboxError("prlimit (util-linux) is not installed: it sets the kernel's resource limits")
        cmd = [prlimit, *self._limits().prlimit_args(), "--"] + argv
        if self.uid is not None:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise SandboxError("setpriv (util-linux) is not installed: it drops root for the kernel")
            cmd = [setpriv, f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"] + cmd
        if not self.isolated:
            return cmd
        return self._bwrap_args() + cmd

    def _bwrap_args(self) -> list[str]:
        args = [bwrap_path(), "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--hostname", "grading",
                # the grader's pid does not exist in the kernel's PID namespace: --die-with-parent does that job
                "--unsetenv", "JPY_PARENT_PID"]
        if os.geteuid() != 0:
            args.append("--unshare-user")
        for top in ("usr", "etc"):
            args += ["--ro-bind", f"/{top}", f"/{top}"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = pathlib.Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
                 "--perms", "1777", "--tmpfs", "/dev/shm"]
        made: set[str] = {"/", "/usr", "/etc", "/tmp", "/dev", "/proc"}
        mounts = [(p, "--ro-bind") for p in [*_readonly_roots(), *self.readonly]] + [(self.workdir, "--bind")]
        for path, _ in mounts:  # parents with normal permissions (bwrap would make them 0700)
            for parent in reversed(pathlib.Path(path).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
        for path, how in mounts:
            args += [how, str(path), str(path)]
        return args + ["--chdir", str(self.workdir)]

    def describe(self) -> list[str]:
        """What is enforced for this kernel, one line each (printed by adl-grade, listed in the README)."""
        lim = self.limits
        lines = [
            f"limits: memory {lim.memory / 2**30:g} GiB, {lim.processes} processes/threads, files up to "
            f"{lim.file_size / 2**20:g} MiB, {lim.open_files} open files, {lim.cpu_seconds} s CPU, no core dumps",
        ]
        if self.uid is not None:
            lines.append(f"user: uid {self.uid}, no capabilities, no_new_privs")
        if self.isolated:
            lines.append("file system: only the Python installation, the helper package and the data mirror "
                         "(read-only) and the submission's own folder; no course folder, no other submissions")
            lines.append("network: none (own network namespace); processes: its own PID namespace")
        elif not self.enabled:
            lines.append("NOT ISOLATED (--no-sandbox): the kernel can read what the grader's user can read, "
                         "and use the network")
        else:
            lines.append(f"NOT ISOLATED: {bwrap_problem()}, so the kernel can read what the grader's user can "
                         "read and use the network. Install it (apt install bubblewrap) where namespaces work.")
        return lines
