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
grading) says what to install. :func:`autograder.preflight.enforced` says plainly what is and is not enforced
in each case; ``adl-grade`` prints it. What this machine offers (bubblewrap, ``unshare``, the tools) is probed in
:mod:`autograder.host`. ``make test`` in CI installs bubblewrap and the tests check every claim.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
import subprocess

from autograder import host
from autograder.confinement import (  # noqa: F401 (Limits, parse_size and SandboxError are the sandbox's too)
    UNIT,
    Limits,
    SandboxError,
    _seccomp,
    parse_size,
    seccomp_problem,
)
from autograder.uids import evaluator_uid, kernel_uid

# What a root template (autograder.forkserver) keeps: to hand a child to the slot's user (SETUID, SETGID, SETPCAP to
# empty its bounding set), and to kill and remove what the child left in the sandbox (KILL, DAC_OVERRIDE, FOWNER).
TEMPLATE_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER")


def _bwrap() -> str:
    """bubblewrap's path: there whenever :attr:`Sandbox.isolated` is (:func:`autograder.host.bwrap_problem`)."""
    path = host.bwrap_path()
    if path is None:
        raise SandboxError("bubblewrap (bwrap) is not installed")
    return path


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
        return self.enabled and host.bwrap_problem() is None

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
                if not host.can_enter(parent, self.uid):
                    if parent not in tops:
                        tops.append(parent)
                    break
        return tops

    def prepare(self) -> None:
        """Hand the working directory to the kernel's user."""
        if self.uid is not None:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def limits_now(self) -> Limits:
        """The limits to set now: as a normal user, the process limit counts the processes it already runs."""
        if os.geteuid() == 0:
            return self.limits
        # RLIMIT_NPROC counts every process of the user: as a normal user, leave room for the ones running.
        import psutil

        mine = sum(
            p.info["num_threads"] or 1
            for p in psutil.process_iter(["uids", "num_threads"])
            if p.info["uids"] and p.info["uids"].real == os.getuid()
        )
        return dataclasses.replace(self.limits, processes=mine + self.limits.processes)

    def _mounts(self) -> list[tuple[pathlib.Path, bool]]:
        """What the kernel needs, ``(path, writable)``: the Python installation, the helper package and the extra
        read-only paths, and its working directory."""
        return [(pathlib.Path(p), False) for p in [*host.readonly_roots(), *self.readonly]] + [(self.workdir, True)]

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` (the kernel command) run inside the sandbox."""
        prlimit = host.tool("prlimit")
        if prlimit is None:
            raise SandboxError("prlimit (util-linux) is not installed: it sets the kernel's resource limits")
        cmd = [prlimit, *self.limits_now().prlimit_args(), "--"] + argv
        if self.isolated:
            # The innermost bubblewrap makes a user namespace of the kernel's own in which no further one can be
            # made (--disable-userns), and loads the seccomp filter.
            fd = self._seccomp_fd()
            seccomp = ["--seccomp", str(fd)] if fd is not None else []
            if self.uid is None:
                return self._bwrap_args() + ["--unshare-user", "--disable-userns", *seccomp, "--"] + cmd
            if (
                host.nested_problem() is not None
            ):  # the slot's user may make no user namespace at all: nor may the kernel
                return self._bwrap_args() + [*seccomp, "--"] + self._drop_root() + cmd
            # As root: the outer bubblewrap builds the file system as root (it can reach a Python under /root);
            # inside it setpriv drops to the slot's user, and bubblewrap again, as that user, maps it to itself
            # (a user namespace made by root would map the kernel to root outside).
            return (
                self._bwrap_args()
                + ["--"]
                + self._drop_root()
                + [
                    _bwrap(),
                    "--die-with-parent",
                    "--dev-bind",
                    "/",
                    "/",
                    "--chdir",
                    str(self.workdir),
                    "--unshare-user",
                    "--disable-userns",
                    *seccomp,
                    "--",
                ]
                + cmd
            )
        if self.uid is not None:
            cmd = self._drop_root() + cmd
        tops = self.unreachable
        if not tops:
            return cmd
        problem = host.unshare_problem()
        if problem is not None:
            raise SandboxError(self.cannot_reach(tops, problem))
        return self._reach_args(tops) + cmd

    def wrap_template(self, argv: list[str]) -> list[str]:
        """``argv`` run as the template of :mod:`autograder.forkserver`: in bubblewrap's namespaces and file system,
        with the seccomp filter (inherited by every process it forks), its address space, file size and open files
        limited (each child sets every limit of its own). As root it keeps the capabilities it needs to hand each
        child to the slot's user and to clear up after it; else it is the grader's user, in a user namespace
        in which no further one can be made. Only with bubblewrap (:attr:`isolated`)."""
        if not self.isolated:
            raise SandboxError("a template process needs bubblewrap")
        prlimit = host.tool("prlimit")
        if prlimit is None:
            raise SandboxError("prlimit (util-linux) is not installed: it sets the evaluator's resource limits")
        fd = self._seccomp_fd()
        seccomp = ["--seccomp", str(fd)] if fd is not None else []
        if self.uid is None:
            confine = ["--unshare-user", "--disable-userns"]
        else:
            confine = [arg for cap in TEMPLATE_CAPS for arg in ("--cap-add", cap)]
        limits = self.limits.prlimit_args(skip=("RLIMIT_NPROC", "RLIMIT_CPU"))
        return self._bwrap_args() + confine + seccomp + ["--", prlimit, *limits, "--"] + argv

    def _drop_root(self) -> list[str]:
        setpriv = host.tool("setpriv")
        if setpriv is None:
            raise SandboxError("setpriv (util-linux) is not installed: it drops root for the kernel")
        return [
            setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]

    def inside(self, tops: list[pathlib.Path]) -> str:
        """The paths the kernel needs inside the folders ``tops``, for the instructor."""
        return ", ".join(str(p) for p, _ in self._mounts() if any(t in p.parents for t in tops))

    def cannot_reach(self, tops: list[pathlib.Path], problem: str) -> str:
        return (
            f"the kernel's user (uid {self.uid}) cannot enter {', '.join(map(str, tops))}, which holds "
            f"{self.inside(tops)}, and {problem}; the kernel cannot start. Install bubblewrap (apt-get "
            "install bubblewrap), or grade with a Python installation other users may read (not under /root)"
        )

    def _reach_args(self, tops: list[pathlib.Path]) -> list[str]:
        """``unshare`` and a shell script that, in a mount namespace of the kernel's own, cover each folder of
        ``tops`` with an empty one and bind back into it what the kernel needs; then run the command. The
        script enters each folder first: its working directory keeps the real folder at hand once covered."""
        tools = {name: host.tool(name) for name in ("unshare", "mount", "mkdir")}
        missing = [name for name, path in tools.items() if path is None]
        if missing:
            raise SandboxError(
                f"{missing[0]} (util-linux or coreutils) is not installed: without bubblewrap it "
                "shows the kernel the Python installation"
            )
        found = {name: path for name, path in tools.items() if path is not None}
        mount, q = found["mount"], shlex.quote
        lines = ["set -e"]
        for top in tops:
            lines += [f"cd {q(str(top))}", f"{mount} -t tmpfs -o mode=0755,size=1m adl-sandbox {q(str(top))}"]
            for path, writable in sorted(self._mounts()):
                if top in path.parents:
                    lines += [
                        f"(umask 022 && {found['mkdir']} -p {q(str(path))})",
                        f"{mount} --no-canonicalize --bind {q('./' + str(path.relative_to(top)))} {q(str(path))}",
                    ]
                    if not writable:
                        lines.append(f"{mount} --no-canonicalize -o remount,bind,ro {q(str(path))}")
        lines += [f"cd {q(str(self.workdir))}", 'exec "$@"']
        return [
            found["unshare"],
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            "\n".join(lines),
            "adl-sandbox",
        ]

    def _bwrap_args(self) -> list[str]:
        args = [
            _bwrap(),
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--hostname",
            "grading",
            # the grader's pid does not exist in the kernel's PID namespace: --die-with-parent does that job
            "--unsetenv",
            "JPY_PARENT_PID",
        ]
        for top in ("usr", "etc"):
            args += ["--ro-bind", f"/{top}", f"/{top}"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = pathlib.Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        size = str(self.limits.tmp_size)  # RAM: counted in the memory limit (Limits.address_space)
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            size,
            "--tmpfs",
            "/tmp",
            "--perms",
            "1777",
            "--size",
            size,
            "--tmpfs",
            "/dev/shm",
        ]
        made: set[str] = {"/", "/usr", "/etc", "/tmp", "/dev", "/proc"}
        # outer folders first: a read-only folder inside the writable one (a kernel template's control/) stays so
        mounts = sorted(
            ((path, "--bind" if writable else "--ro-bind") for path, writable in self._mounts()),
            key=lambda mount: len(pathlib.Path(mount[0]).parts),
        )
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
            proc = subprocess.run(
                cmd,
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={"PATH": os.environ.get("PATH", os.defpath)},
                pass_fds=self.pass_fds,
            )
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
            hint = (
                ". Install bubblewrap (apt-get install bubblewrap), which shows the kernel the Python "
                "installation, or grade with a Python installation other users may read"
            )
        return f"{shlex.join(argv)} fails as {who} in the sandbox ({last}){hint}"
