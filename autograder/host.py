"""What this machine offers the sandbox: bubblewrap, nested bubblewrap, ``unshare``, the tools it runs.

The probes (:func:`bwrap_problem`, :func:`nested_problem`, :func:`unshare_problem`) run once per process and
answer None when the thing works, else why not, in a sentence for the instructor. :class:`autograder.sandbox.Sandbox`
chooses how to start a kernel from these answers; the tests patch them here (``autograder.host.bwrap_path``,
then ``bwrap_problem.cache_clear()``) to play another machine.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import shutil
import stat
import subprocess
import sys

from autograder.uids import SLOT_UID_BASE


def bwrap_path() -> str | None:
    """bubblewrap on the PATH, or None."""
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None if bubblewrap can build the sandbox here; else why not (checked once, with the same namespaces)."""
    path = bwrap_path()
    if path is None:
        return "bubblewrap (bwrap) is not installed"
    cmd = [
        path,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "true",
    ]
    if os.geteuid() != 0:
        cmd.insert(1, "--unshare-user")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not run here ({exc})"
    if proc.returncode != 0:
        return (
            f"bubblewrap cannot create namespaces here ({proc.stderr.strip()[:200]}); inside Docker, grade "
            "on the host or give the container the privilege to create namespaces"
        )
    return None


@functools.lru_cache(maxsize=1)
def nested_problem() -> str | None:
    """Under a root grader: None if, inside the sandbox, bubblewrap can run again as a slot's user and give the
    kernel a user namespace in which no further one can be made (``--disable-userns``); else why not (the
    machine lets no unprivileged user make a user namespace: then the kernel cannot make one either)."""
    path, setpriv = bwrap_path(), tool("setpriv")
    if path is None or setpriv is None:
        return "bubblewrap or setpriv is not installed"
    cmd = [
        path,
        "--unshare-pid",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        setpriv,
        f"--reuid={SLOT_UID_BASE}",
        f"--regid={SLOT_UID_BASE}",
        "--clear-groups",
        "--no-new-privs",
        "--",
        path,
        "--unshare-user",
        "--disable-userns",
        "--dev-bind",
        "/",
        "/",
        "--",
        "true",
    ]
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
        proc = subprocess.run(
            [path, "--mount", "--propagation", "private", "true"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare does not run here ({exc})"
    if proc.returncode != 0:
        return f"no mount namespace can be made here ({proc.stderr.strip()[:200]})"
    return None


def tool(name: str) -> str | None:
    """The program's real path: the kernel's user runs some of them, and may not enter a folder of links."""
    path = shutil.which(name)
    return os.path.realpath(path) if path else None


def can_enter(folder: pathlib.Path, uid: int) -> bool:
    """Whether ``uid`` (its own group, no other groups: how setpriv starts the kernel) may enter ``folder``."""
    st = folder.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == uid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def readonly_roots() -> list[pathlib.Path]:
    """What the kernel needs to read: the Python installation, the environment, the helper package."""
    roots = {pathlib.Path(sys.base_prefix).resolve(), pathlib.Path(sys.prefix).resolve()}
    spec = importlib.util.find_spec("adl_helpers")
    if spec and spec.origin:
        roots.add(pathlib.Path(spec.origin).resolve().parent)
    return sorted(roots)
