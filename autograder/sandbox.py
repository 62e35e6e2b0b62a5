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
- in the innermost ``bwrap`` (as root: run again inside the sandbox as the slot's user): a user namespace in
  which no further one can be made (``--disable-userns``) and a seccomp filter (:data:`DENIED_SYSCALLS`,
  namespace flags of ``unshare``/``clone``) handed over on a descriptor (:attr:`Sandbox.pass_fds`).

Without bubblewrap (a laptop where it is not installed) the kernel still gets the resource limits and, under
a root grader, its own user. That user may be unable to reach the Python installation (a pyenv or a venv
under ``/root``, which is 0700): then ``unshare`` gives the kernel a mount namespace of its own in which each
folder it cannot enter is covered by an empty one, with the paths it needs (the Python installation, the
helper package, its own folder) bound back in. Root cannot fall back to running the kernel as root: the
process limit does not apply to root, so a fork bomb would take the machine. Where no mount namespace can be
made either, :meth:`Sandbox.wrap` refuses, and :meth:`Sandbox.probe` (which the grader runs once before
grading) says what to install. :meth:`Sandbox.describe` says plainly what is and is not enforced in each
case; ``adl-grade`` prints it. ``make test`` in CI installs bubblewrap and the tests check every claim.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys

from autograder.confinement import (  # noqa: F401 (Limits, parse_size and SandboxError are the sandbox's too)
    UNIT,
    Limits,
    SandboxError,
    _seccomp,
    parse_size,
    seccomp_problem,
)
from autograder.uids import SLOT_UID_BASE, evaluator_uid, kernel_uid


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


@functools.lru_cache(maxsize=1)
def nested_problem() -> str | None:
    """Under a root grader: None if, inside the sandbox, bubblewrap can run again as a slot's user and give the
    kernel a user namespace in which no further one can be made (``--disable-userns``); else why not (the
    machine lets no unprivileged user make a user namespace: then the kernel cannot make one either)."""
    path, setpriv = bwrap_path(), _tool("setpriv")
    if path is None or setpriv is None:
        return "bubblewrap or setpriv is not installed"
    cmd = [path, "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
           "--", setpriv, f"--reuid={SLOT_UID_BASE}", f"--regid={SLOT_UID_BASE}", "--clear-groups",
           "--no-new-privs", "--", path, "--unshare-user", "--disable-userns", "--dev-bind", "/", "/", "--", "true"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not run inside the sandbox ({exc})"
    if proc.returncode != 0:
        return f"no user namespace for an unprivileged user here ({proc.stderr.strip()[:200]})"
    return None


@functools.lru_cache(maxsize=1)
def unshare_problem() -> str | None:
    """None if ``unshare`` can give a process a mount namespace of its own here (as root); else why not."""
    path = shutil.which("unshare")
    if path is None:
        return "unshare (util-linux) is not installed"
    try:
        proc = subprocess.run([path, "--mount", "--propagation", "private", "true"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare does not run here ({exc})"
    if proc.returncode != 0:
        return f"no mount namespace can be made here ({proc.stderr.strip()[:200]})"
    return None


def _tool(name: str) -> str | None:
    """The program's real path: the kernel's user runs some of them, and may not enter a folder of links."""
    path = shutil.which(name)
    return os.path.realpath(path) if path else None


def _can_enter(folder: pathlib.Path, uid: int) -> bool:
    """Whether ``uid`` (its own group, no other groups: how setpriv starts the kernel) may enter ``folder``."""
    st = folder.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == uid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


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
    slot: int = 0  # the grading slot (autograder.uids): under a root grader its users run the kernel, evaluator
    evaluator: bool = False  # the slot's model evaluator, not its kernel: the slot's other user
    readonly: tuple[pathlib.Path, ...] = ()  # extra read-only paths (the data mirror)
    enabled: bool = True  # False: no bubblewrap (the assignment's ``sandbox: false``)
    _fd: int | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors the command of the last :meth:`wrap` needs (bubblewrap reads the seccomp filter from
        one): give them to ``subprocess.Popen(..., pass_fds=...)``; nothing else of the caller's is inherited."""
        return () if self._fd is None else (self._fd,)

    def release(self) -> None:
        """Close the descriptors of the last :meth:`wrap` (once the command has started)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _seccomp_fd(self) -> int | None:
        """A fresh descriptor holding the seccomp filter, read from its start by bubblewrap (one per command)."""
        self.release()
        program, _ = _seccomp()
        if program is None:
            return None
        self._fd = os.memfd_create("adl-seccomp", os.MFD_CLOEXEC)
        os.write(self._fd, program)
        os.lseek(self._fd, 0, os.SEEK_SET)
        return self._fd

    @property
    def isolated(self) -> bool:
        """True when bubblewrap namespaces are used."""
        return self.enabled and bwrap_problem() is None

    @property
    def uid(self) -> int | None:
        """The unprivileged user the kernel runs as, or None to keep the grader's user (not root)."""
        if os.geteuid() != 0:
            return None
        return evaluator_uid(self.slot) if self.evaluator else kernel_uid(self.slot)

    @property
    def unreachable(self) -> list[pathlib.Path]:
        """Without bubblewrap, under a root grader: the folders the kernel's user cannot enter on the way to what
        it needs (``/root``, 0700, when the Python installation is a pyenv or a venv there). :meth:`wrap` covers
        each in a mount namespace of the kernel's own; with bubblewrap, or as the grader's user, none."""
        if self.uid is None or self.isolated:
            return []
        tops: list[pathlib.Path] = []
        for path, _ in self._mounts():
            for parent in reversed(path.parents):  # "/" first: the outermost folder it cannot enter
                if not _can_enter(parent, self.uid):
                    if parent not in tops:
                        tops.append(parent)
                    break
        return tops

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

    def _mounts(self) -> list[tuple[pathlib.Path, bool]]:
        """What the kernel needs, ``(path, writable)``: the Python installation, the helper package and the extra
        read-only paths, and its working directory."""
        return [(pathlib.Path(p), False) for p in [*_readonly_roots(), *self.readonly]] + [(self.workdir, True)]

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` (the kernel command) run inside the sandbox."""
        prlimit = _tool("prlimit")
        if prlimit is None:
            raise SandboxError("prlimit (util-linux) is not installed: it sets the kernel's resource limits")
        cmd = [prlimit, *self._limits().prlimit_args(), "--"] + argv
        if self.isolated:
            # The innermost bubblewrap makes a user namespace of the kernel's own in which no further one can be
            # made (--disable-userns), and loads the seccomp filter.
            fd = self._seccomp_fd()
            seccomp = ["--seccomp", str(fd)] if fd is not None else []
            if self.uid is None:
                return self._bwrap_args() + ["--unshare-user", "--disable-userns", *seccomp, "--"] + cmd
            if nested_problem() is not None:  # the slot's user may make no user namespace at all: nor may the kernel
                return self._bwrap_args() + [*seccomp, "--"] + self._drop_root() + cmd
            # As root: the outer bubblewrap builds the file system as root (it can reach a Python under /root);
            # inside it setpriv drops to the slot's user, and bubblewrap again, as that user, maps it to itself
            # (a user namespace made by root would map the kernel to root outside).
            return self._bwrap_args() + ["--"] + self._drop_root() + [
                bwrap_path(), "--die-with-parent", "--dev-bind", "/", "/", "--chdir", str(self.workdir),
                "--unshare-user", "--disable-userns", *seccomp, "--"] + cmd
        if self.uid is not None:
            cmd = self._drop_root() + cmd
        tops = self.unreachable
        if not tops:
            return cmd
        problem = unshare_problem()
        if problem is not None:
            raise SandboxError(self._cannot_reach(tops, problem))
        return self._reach_args(tops) + cmd

    def _drop_root(self) -> list[str]:
        setpriv = _tool("setpriv")
        if setpriv is None:
            raise SandboxError("setpriv (util-linux) is not installed: it drops root for the kernel")
        return [setpriv, f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--"]

    def _inside(self, tops: list[pathlib.Path]) -> str:
        """The paths the kernel needs inside the folders ``tops``, for the instructor."""
        return ", ".join(str(p) for p, _ in self._mounts() if any(t in p.parents for t in tops))

    def _cannot_reach(self, tops: list[pathlib.Path], problem: str) -> str:
        return (f"the kernel's user (uid {self.uid}) cannot enter {', '.join(map(str, tops))}, which holds "
                f"{self._inside(tops)}, and {problem}; the kernel cannot start. Install bubblewrap (apt-get "
                "install bubblewrap), or grade with a Python installation other users may read (not under /root)")

    def _reach_args(self, tops: list[pathlib.Path]) -> list[str]:
        """``unshare`` and a shell script that, in a mount namespace of the kernel's own, cover each folder of
        ``tops`` with an empty one and bind back into it what the kernel needs; then run the command. The
        script enters each folder first: its working directory keeps the real folder at hand once covered."""
        tools = {name: _tool(name) for name in ("unshare", "mount", "mkdir")}
        missing = [name for name, path in tools.items() if path is None]
        if missing:
            raise SandboxError(f"{missing[0]} (util-linux or coreutils) is not installed: without bubblewrap it "
                               "shows the kernel the Python installation")
        mount, q = tools["mount"], shlex.quote
        lines = ["set -e"]
        for top in tops:
            lines += [f"cd {q(str(top))}", f"{mount} -t tmpfs -o mode=0755,size=1m adl-sandbox {q(str(top))}"]
            for path, writable in sorted(self._mounts()):
                if top in path.parents:
                    lines += [f"(umask 022 && {tools['mkdir']} -p {q(str(path))})",
                              f"{mount} --no-canonicalize --bind {q('./' + str(path.relative_to(top)))} {q(str(path))}"]
                    if not writable:
                        lines.append(f"{mount} --no-canonicalize -o remount,bind,ro {q(str(path))}")
        lines += [f"cd {q(str(self.workdir))}", 'exec "$@"']
        return [tools["unshare"], "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines),
                "adl-sandbox"]

    def _bwrap_args(self) -> list[str]:
        args = [bwrap_path(), "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--hostname", "grading",
                # the grader's pid does not exist in the kernel's PID namespace: --die-with-parent does that job
                "--unsetenv", "JPY_PARENT_PID"]
        for top in ("usr", "etc"):
            args += ["--ro-bind", f"/{top}", f"/{top}"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = pathlib.Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        size = str(self.limits.tmp_size)  # RAM: counted in the memory limit (Limits.address_space)
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                 "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
        made: set[str] = {"/", "/usr", "/etc", "/tmp", "/dev", "/proc"}
        mounts = [(path, "--bind" if writable else "--ro-bind") for path, writable in self._mounts()]
        for path, _ in mounts:  # parents with normal permissions (bwrap would make them 0700)
            for parent in reversed(pathlib.Path(path).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
        for path, how in mounts:
            args += [how, str(path), str(path)]
        return args + ["--chdir", str(self.workdir)]

    def probe(self, argv: list[str], timeout: float = 120) -> str | None:
        """Run ``argv`` (a Python command that imports what the kernel needs) the way :meth:`wrap` starts a
        kernel, in ``workdir``: None if it succeeds, else what went wrong, in a sentence for the instructor.
        The grader probes once before grading anything: a kernel that cannot start would cost every question."""
        try:
            self.prepare()
            cmd = self.wrap(argv)
            proc = subprocess.run(cmd, cwd=self.workdir, capture_output=True, text=True, timeout=timeout,
                                  env={"PATH": os.environ.get("PATH", os.defpath)}, pass_fds=self.pass_fds)
        except SandboxError as exc:
            return str(exc)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{argv[0]} did not run in the sandbox ({exc})"
        finally:
            self.release()
        if proc.returncode == 0:
            return None
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:300]
        who = f"uid {self.uid}" if self.uid is not None else "the grader's user"
        hint = ""
        if not self.isolated and self.uid is not None:
            hint = (". Install bubblewrap (apt-get install bubblewrap), which shows the kernel the Python "
                    "installation, or grade with a Python installation other users may read")
        return f"{shlex.join(argv)} fails as {who} in the sandbox ({last}){hint}"

    def describe(self) -> list[str]:
        """What is and is not enforced for this kernel, one line each (printed by adl-grade, listed in the README)."""
        lim = self.limits
        lines = [
            f"limits: memory {lim.memory / 2**30:g} GiB ({lim.address_space / 2**30:g} GiB address space, "
            f"{lim.tmp_size / 2**20:g} MiB each for /tmp and /dev/shm, {lim.disk / 2**20:g} MiB and "
            f"{lim.files} files in its folder), {lim.processes} processes/threads, files up to "
            f"{lim.file_size / 2**20:g} MiB, {lim.open_files} open files, {lim.cpu_seconds} s CPU, no core dumps",
        ]
        if self.uid is not None:
            lines.append(f"user: uid {self.uid}, no capabilities, no_new_privs")
        else:
            lines.append(f"user: the grader's own (uid {os.getuid()}{', in a user namespace' if self.isolated else ''}); "
                         "the process limit also counts that user's other processes")
        if self.isolated:
            lines.append("file system: only the Python installation, the helper package and the data mirror "
                         "(read-only) and the submission's own folder; no course folder, no other submissions")
            lines.append("network: none (own network namespace); processes: its own PID namespace")
            problem = seccomp_problem()
            lines.append("system calls: no new user namespace (--disable-userns); " + (
                f"NO SECCOMP FILTER: {problem}" if problem else
                "a seccomp filter refuses namespaces, mount, ptrace, keyrings, BPF, io_uring and other calls a "
                "notebook never needs"))
            return lines
        why = "sandbox: false in assignments.yml" if not self.enabled else bwrap_problem()
        if self.uid is None:
            lines.append(f"NOT ISOLATED ({why}): the kernel can read, change and delete whatever the grader's user "
                         "can (the course folder, the gradebook, other submissions), use the network and signal "
                         "the grader's processes")
        else:
            lines.append(f"NOT ISOLATED ({why}): the kernel can read every file uid {self.uid} may read (the "
                         "course folder too, unless its permissions keep other users out), use the network and "
                         "see the machine's processes; it cannot change or signal what it does not own")
            tops = self.unreachable
            problem = unshare_problem() if tops else None
            if problem:
                lines.append(f"CANNOT GRADE: {self._cannot_reach(tops, problem)}")
            elif tops:
                lines.append(f"uid {self.uid} cannot enter {', '.join(map(str, tops))}: in a mount namespace of "
                             f"the kernel's own (unshare) it sees there only {self._inside(tops)}")
        if self.enabled:
            lines.append("Install bubblewrap (apt-get install bubblewrap) where namespaces work: each kernel is "
                         "then isolated (no course folder, no network)")
        return lines
