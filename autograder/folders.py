"""Where submissions are graded: one folder per submission, under one folder per grading process.

``<grading_root>/<pid>-<start time>/<assignment>-<random>/`` holds ``home/`` (the kernel's working folder,
under a root grader a tmpfs of the assignment's disk limit), ``control/`` (files the grader writes for the
kernel, read-only to it) and ``private/`` (the notebook with its tests, and the job: never visible to the
kernel). A killed grader leaves its folder where no one else can list it; the next grading process removes it.
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil
import stat as stat_mod
import subprocess
import tempfile

import psutil

from autograder.course import CourseError
from autograder.files import remove_tree
from autograder.sandbox import Limits

log = logging.getLogger(__name__)

UNIX_SOCKET_PATH = 107  # bytes in a Unix socket's path (sun_path less its NUL): the kernel's sockets live in its folder
SOCKET_TAIL = len("/home/.kernel/ipc-12345")  # what a submission's folder adds below its grading folder


def grading_root() -> pathlib.Path:
    """Where grading folders live: ``$ADL_GRADING_DIR`` or ``<tmp>/adl-grading-<uid>``, mode 0711, owned by
    the grader. A short path on purpose: the kernel talks to the worker over Unix sockets in the submission's
    folder, and a socket's path has at most 107 bytes (a course under a long path would otherwise start no
    kernel at all). Refused if another user owns it or it is a link (someone may have made it first)."""
    root = pathlib.Path(
        os.environ.get("ADL_GRADING_DIR") or pathlib.Path(tempfile.gettempdir()) / f"adl-grading-{os.geteuid()}"
    )
    try:
        root.mkdir(mode=0o711, parents=True, exist_ok=True)
        info = os.lstat(root)
    except OSError as exc:
        raise CourseError(
            f"cannot make the grading folder {root}: {exc}; set ADL_GRADING_DIR to a folder of your own"
        ) from None
    if not stat_mod.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise CourseError(
            f"the grading folder {root} is not a folder of this user (a link, or made by another "
            "user); remove it or set ADL_GRADING_DIR to a folder of your own"
        )
    root.chmod(0o711)
    return root


def check_socket_room(assignment: str) -> None:
    """Refuse (CourseError) before grading when the kernel's sockets in a submission's folder of
    ``assignment`` would pass the 107-byte limit of a Unix socket's path: no kernel would start."""
    folder = grading_root() / f"{os.getpid()}-{int(psutil.Process().create_time())}" / f"{assignment[:40]}-xxxxxxxx"
    if len(os.fsencode(folder)) + SOCKET_TAIL > UNIX_SOCKET_PATH:
        raise CourseError(
            f"the grading folder {grading_root()} is too deep: the kernel's sockets in it would "
            f"pass the {UNIX_SOCKET_PATH}-byte limit of a Unix socket's path; set ADL_GRADING_DIR "
            "to a short path such as /tmp/adl"
        )


def grading_folder() -> pathlib.Path:
    """This process's folder for the submissions it grades: ``<grading_root>/<pid>-<start>/``.

    The root is 0711 (the slots' users may pass through it to their own folder, no one but the grader may list
    it) and each submission's folder in it has a random name: nothing there is readable to others even if the
    grader is killed. The first call in a process removes what dead runs left behind (unmounting a kernel's
    folder first), so a killed batch leaves no hidden test or student file for long. The root is on this
    machine's own disk, so every run folder in it belongs to a process of this machine."""
    root = grading_root()
    key = (str(root), os.getpid())
    if key in _GRADING_FOLDERS:
        return _GRADING_FOLDERS[key]
    for stale in root.iterdir():
        parts = stale.name.split("-")
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            continue
        try:
            alive = str(int(psutil.Process(int(parts[0])).create_time())) == parts[1]
        except psutil.Error:
            alive = False
        if not alive:
            remove_grading_folder(stale)
    mine = root / f"{os.getpid()}-{int(psutil.Process().create_time())}"
    mine.mkdir(mode=0o711, exist_ok=True)
    _GRADING_FOLDERS[key] = mine
    return mine


_GRADING_FOLDERS: dict[tuple[str, int], pathlib.Path] = {}


def new_submission_folder(assignment: str) -> pathlib.Path:
    """A new folder, with a random name, for grading one submission of ``assignment`` in this process's folder."""
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"{assignment[:40]}-", dir=grading_folder()))
    base.chmod(0o711)
    return base


def prepare_submission_folder(
    base: pathlib.Path, limits: Limits, data_files: list[pathlib.Path]
) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """Make ``base``'s ``home`` (the kernel's working folder, the only place it writes: a tmpfs of the limits
    when the grader may mount one; holding a copy of each of ``data_files``), ``control`` (files the grader
    writes for the kernel: read-only to it) and ``private`` (the notebook with its tests and the job: never
    visible to the kernel). Returns the three."""
    home, control, private = base / "home", base / "control", base / "private"
    home.mkdir()
    mount_home(home, limits)
    control.mkdir(mode=0o755)
    private.mkdir(mode=0o700)
    for path in data_files:
        shutil.copy2(path, home / path.name)
    return home, control, private


def mount_home(home: pathlib.Path, limits: Limits, mode: str = "0700") -> bool:
    """Under a root grader: make the kernel's folder a tmpfs of ``limits.disk`` bytes and ``limits.files``
    files and folders, so a write past either fails at once (ENOSPC). Elsewhere (not root, or no right to
    mount, as in a container) the worker checks the folder after each cell instead. True if mounted."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        return False
    options = f"size={limits.disk},nr_inodes={limits.files + 1},mode={mode},nosuid,nodev"
    proc = subprocess.run([mount, "-t", "tmpfs", "-o", options, "adl-home", str(home)], capture_output=True)
    return proc.returncode == 0


def _mounts_under(folder: pathlib.Path) -> list[str]:
    """Mount points at or under ``folder``, deepest first (from /proc/self/mountinfo)."""
    try:
        lines = pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    prefix = str(folder).rstrip("/") + "/"
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == str(folder) or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_grading_folder(folder: pathlib.Path) -> None:
    """Unmount and delete one submission's grading folder (or a dead run's), however deep the tree a kernel
    left in it."""
    umount = shutil.which("umount")
    for point in _mounts_under(folder):
        if umount:
            subprocess.run([umount, "--lazy", point], capture_output=True)
    left = remove_tree(folder)
    if left:
        log.warning("could not remove all of %s (left unreadable): %s", folder, left[:5])
