"""Files the grader writes and deletes: JSON written atomically, and what a grading kernel leaves behind.

:func:`write_json` writes a file whole or not at all (a reader never sees half of it, a killed grader leaves
the old file), through a temporary file in the same folder and ``os.replace``.

A sandboxed kernel may write anything into its working folder: a chain of folders 100,000 deep, folders it
made unreadable (``chmod 000``), files of its own user id, symbolic links to anywhere (``/``, the course),
names that are not UTF-8, fifos and sockets. :func:`remove_tree` deletes all of it with GNU coreutils'
``rm -rf --one-file-system``: its directory walk (gnulib's fts) has no depth limit, holds a bounded number of
file descriptors, never follows a symbolic link (it deletes the link) and does not cross into another file
system. Python's ``shutil.rmtree`` is not enough on the versions this project supports: on 3.11 and 3.12 it
recurses (RecursionError past about 1,000 levels, which ``ignore_errors`` does not catch), and 3.13's
iterative version keeps one open file descriptor and one path string per level (it fails past
``RLIMIT_NOFILE`` levels and its memory grows with the square of the depth). It is used only where there is
no ``rm`` at all.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile

log = logging.getLogger(__name__)

MAX_REPORTED = 10  # lines of "what could not be deleted" kept and logged


def write_json(path: str | os.PathLike, data: object, indent: int | None = 1) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a temporary file beside it, then ``os.replace``."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def remove_tree(path: str | os.PathLike) -> list[str]:
    """Delete ``path`` and everything under it, whatever is there, without following symbolic links.

    Folders without permissions are given them back first when we are not root (root needs no permission).
    If something still cannot be deleted (a mount point, an immutable file, a file of another user when we
    are not root), ``path`` is made mode 000, so that no user but root can read what is left, and a warning
    names what is left.

    Args:
        path: the folder (or file, or link) to delete. A path that does not exist is not an error.

    Returns:
        What could not be deleted, one line each (at most ``MAX_REPORTED``); ``[]`` when the tree is gone.

    Example:
        >>> import pathlib, tempfile
        >>> top = pathlib.Path(tempfile.mkdtemp())
        >>> (top / "a" / "b").mkdir(parents=True)
        >>> (top / "a").chmod(0)
        >>> remove_tree(top), top.exists()
        ([], False)
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        return []
    left = _rm(path)
    if left and os.geteuid() != 0:  # rm cannot enter a folder without permissions unless we are root
        _grant(path)
        left = _rm(path)
    if not left:
        return []
    locked = _lock(path)
    log.warning(
        "could not delete everything in %s (%s); what is left is %s. Delete it as root: rm -rf --one-file-system %s",
        path,
        "; ".join(left),
        locked,
        path,
    )
    return left


def _rm(path: str) -> list[str]:
    """Run ``rm -rf --one-file-system``; what it could not delete ([] if ``path`` is gone)."""
    rm = shutil.which("rm")
    if rm is None:
        return _rm_python(path)
    env = dict(os.environ, LC_ALL="C")  # plain English diagnostics, file names quoted as $'\377'
    proc = subprocess.run(
        [rm, "-rf", "--one-file-system", "--", path], capture_output=True, env=env, stdin=subprocess.DEVNULL
    )
    if not os.path.lexists(path):
        return []
    lines = proc.stderr.decode("ascii", "backslashreplace").splitlines()
    return lines[:MAX_REPORTED] or [f"rm exited with status {proc.returncode} and {path} is still there"]


def _rm_python(path: str) -> list[str]:
    """The fallback without an ``rm`` command: shutil.rmtree, which fails on very deep trees (see above)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except (OSError, RecursionError) as exc:
        return [f"{path}: {type(exc).__name__}: {exc}"[:300]]
    return [f"{path}: shutil.rmtree could not delete it (no rm command)"] if os.path.lexists(path) else []


def _grant(path: str) -> None:
    """Give the owner read, write and search permission on every folder under ``path`` (links not followed:
    ``chmod -R`` ignores the symbolic links it meets), so that ``rm`` can enter them."""
    chmod = shutil.which("chmod")
    # (a link given on the command line would be followed: ``path`` must be a real folder)
    if chmod is not None and os.path.isdir(path) and not os.path.islink(path):
        subprocess.run([chmod, "-R", "u+rwX", "--", path], capture_output=True, stdin=subprocess.DEVNULL)


def _lock(path: str) -> str:
    """Make what is left unreadable to everyone but root; says how that went, for the warning."""
    try:
        if not os.path.islink(path):
            os.chmod(path, 0)
        return "unreadable (mode 000)"
    except OSError as exc:
        return f"NOT made unreadable ({exc.strerror})"
