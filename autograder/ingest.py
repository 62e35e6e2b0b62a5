"""Safe ingestion of an LMS download: a zip (or a folder) of submissions whose file names carry the
student id, as nbgrader's ZipCollect names them (a regular expression with a ``(?P<student_id>...)`` group
and, optionally, ``(?P<timestamp>...)``).

The archive is never extracted as a whole. Each member is judged on its own: its name must decode as UTF-8,
must be a relative path without ``..``, must not be a link or a nested archive, must be a notebook, and must
not inflate past the size limits (a zip bomb is refused from its header and again while it is read, in case
the header lies). Accepted bytes are written only to ``submitted/<student_id>/<assignment>/<notebook>``,
with a student id checked against a strict pattern, so nothing is ever written outside the course folder.
Every refused file is listed with its reason; when a student appears twice the newest copy wins.

File names are the student's own text. Whatever of them reaches the terminal or a report passes through
:func:`printable` first, so a name cannot clear the screen, retitle or recolour the terminal, or reorder
what is printed after it.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
import stat
import zipfile

from autograder.course import Course, CourseError
from autograder.folders import check_socket_room

MAX_FILE_BYTES = 20 * 2**20  # a notebook larger than 20 MiB is refused (outputs should be cleared)
MAX_TOTAL_BYTES = 2 * 2**30  # the whole download may inflate to 2 GiB at most
MAX_RATIO = 200  # compressed-to-inflated ratio above which a large member is treated as a bomb
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
MAX_SHOWN = 160  # characters of a student-supplied string shown on the terminal or in a report
ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")


def printable(text: object, limit: int = MAX_SHOWN) -> str:
    """Student-supplied text made safe to print: every character Python does not call printable (C0 and
    C1 controls such as ESC and BEL, bidi overrides such as U+202E, zero-width and format characters, lone
    surrogates, line and paragraph separators, spaces other than ' ') is shown as its escape (``\\x1b``,
    ``\\u202e``), and the result is cut to ``limit`` characters.

    Example:
        >>> printable("\\x1b[2Jred_hw1.ipynb")
        '\\\\x1b[2Jred_hw1.ipynb'
        >>> printable("a" * 10, limit=6)
        'a[...]'
    """
    text = str(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    if len(text) > limit:
        text = text[: max(0, limit - 5)] + "[...]"
    return text


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclasses.dataclass
class Member:
    name: str
    student: str
    timestamp: datetime.datetime
    data: bytes


@dataclasses.dataclass
class Ingested:
    accepted: dict[str, pathlib.Path]
    rejected: list[tuple[str, str]]
    late: list[str] = dataclasses.field(default_factory=list)


def default_pattern(assignment: str) -> str:
    """``<student_id>_<assignment>.ipynb``, optionally with Canvas' ``_LATE`` marker and numeric ids:
    ``alice_hw1.ipynb``, ``alice_LATE_1234_5678_hw1.ipynb``."""
    a = re.escape(assignment)
    return rf"^(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@-]*(?:_[A-Za-z0-9.@-]+)*?)(?:_LATE)?(?:_\d+)*_{a}(?:-\d+)?\.ipynb$"


def _parse_time(text: str) -> datetime.datetime | None:
    from dateutil import parser

    try:
        when = parser.parse(text.replace("_", " "))
    except (ValueError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def _members_of_zip(path: pathlib.Path, rejected: list[tuple[str, str]]):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CourseError(f"{path} is not a readable zip file ({exc}); download it from the LMS again") from None
    total = 0
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not info.flag_bits & 0x800:  # no UTF-8 flag: zipfile decoded the bytes as cp437
                try:
                    name = info.filename.encode("cp437").decode("utf-8")
                except UnicodeError:
                    rejected.append((repr(info.filename), "the file name is not valid UTF-8"))
                    continue
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                rejected.append((name, "a symbolic link, not a file"))
                continue
            parts = pathlib.PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                rejected.append((name, "an absolute path or a path that climbs out with '..'"))
                continue
            base = parts[-1] if parts else name
            if base.startswith(".") or "__MACOSX" in parts:
                rejected.append((name, "a hidden or system file"))
                continue
            if base.lower().endswith(ARCHIVES):
                rejected.append((name, "an archive inside the archive; submit the notebook itself"))
                continue
            if not base.lower().endswith(".ipynb"):
                rejected.append((name, "not a notebook (.ipynb)"))
                continue
            if info.file_size > MAX_FILE_BYTES:
                rejected.append((name, f"inflates to {info.file_size:,} bytes, over the {MAX_FILE_BYTES:,} limit"))
                continue
            if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 2**20:
                rejected.append(
                    (name, f"compression ratio {info.file_size / info.compress_size:.0f}:1 looks like a zip bomb")
                )
                continue
            if total + info.file_size > MAX_TOTAL_BYTES:
                rejected.append((name, "the download inflates past its total size limit; the rest was not read"))
                break
            try:
                with archive.open(info) as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)  # bounded, whatever the header claims
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                rejected.append((name, f"cannot be read from the archive ({exc})"))
                continue
            if len(data) > MAX_FILE_BYTES:
                rejected.append((name, "inflates past the size limit (its header understates it)"))
                continue
            total += len(data)
            stamp = datetime.datetime(*info.date_time, tzinfo=datetime.UTC)
            yield base, stamp, data


def _members_of_folder(path: pathlib.Path, rejected: list[tuple[str, str]]):
    for item in sorted(path.iterdir()):
        if item.is_symlink() or not item.is_file():
            rejected.append((item.name, "not a regular file"))
            continue
        if item.stat().st_size > MAX_FILE_BYTES:
            rejected.append((item.name, f"{item.stat().st_size:,} bytes, over the {MAX_FILE_BYTES:,} limit"))
            continue
        stamp = datetime.datetime.fromtimestamp(item.stat().st_mtime, tz=datetime.UTC)
        yield item.name, stamp, item.read_bytes()


def ingest(
    course: Course,
    assignment: str,
    download: pathlib.Path,
    pattern: str | None = None,
    due: datetime.datetime | None = None,
    ignore: tuple[str, ...] = (),
) -> Ingested:
    """Copy the notebooks of an LMS download (a ``.zip`` or a folder) into nbgrader's submitted/ layout.

    Args:
        pattern: regular expression for the file names, with ``(?P<student_id>...)`` and optionally
            ``(?P<timestamp>...)``; default :func:`default_pattern`.
        due: submissions stamped after this moment are accepted and listed as late.
        ignore: file names passed over without a word (e.g. a README beside the class).
    """
    download = pathlib.Path(download)
    regex = re.compile(pattern or default_pattern(assignment))
    if "student_id" not in regex.groupindex:
        raise CourseError(f"the file name pattern {regex.pattern!r} has no (?P<student_id>...) group")
    rejected: list[tuple[str, str]] = []
    if download.is_file() and download.suffix.lower() == ".zip":
        members = _members_of_zip(download, rejected)
    elif download.is_dir():
        members = _members_of_folder(download, rejected)
    else:
        raise CourseError(f"{download} is neither a .zip file nor a folder of submissions")

    best: dict[str, Member] = {}
    for name, stamp, data in members:
        if name in ignore:
            continue
        m = regex.match(name)
        if not m:
            rejected.append((name, f"the name does not match {regex.pattern}"))
            continue
        student = m.group("student_id")
        if not STUDENT_ID.match(student or ""):
            rejected.append((name, f"student id {student!r} has characters a folder name cannot safely hold"))
            continue
        if m.groupdict().get("timestamp"):
            parsed = _parse_time(m.group("timestamp"))
            if parsed is None:
                rejected.append((name, f"cannot read the time stamp {m.group('timestamp')!r}"))
                continue
            stamp = parsed
        member = Member(name, student, stamp, data)
        previous = best.get(student)
        if previous is None or (member.timestamp, member.name) > (previous.timestamp, previous.name):
            if previous is not None:
                rejected.append((previous.name, f"an older submission of {student}; {member.name} is newer"))
            best[student] = member
        else:
            rejected.append((name, f"an older submission of {student}; {previous.name} is newer"))

    notebook = course.settings(assignment).notebook
    root = course.root.resolve()
    accepted, late = {}, []
    for student, member in sorted(best.items()):
        dest = (course.submitted / student / assignment).resolve()
        if root not in dest.parents:
            raise CourseError(f"refusing to write outside the course folder: {dest}")
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / f".{notebook}.part"
        tmp.write_bytes(member.data)
        tmp.replace(dest / notebook)
        # in UTC: nbgrader's parse_utc reads a numeric offset's empty %Z as UTC, hours off
        (dest / "timestamp.txt").write_text(
            member.timestamp.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
        )
        accepted[student] = dest / notebook
        if due is not None and member.timestamp > due:
            late.append(student)
    return Ingested(accepted, rejected, late)


def submitted_students(course: Course, assignment: str) -> list[str]:
    """The students with a collected submission of ``assignment`` in ``submitted/``, sorted."""
    notebook = course.settings(assignment).notebook
    if not course.submitted.is_dir():
        return []
    return sorted(p.name for p in course.submitted.iterdir() if (p / assignment / notebook).is_file())


def grading_tasks(course: Course, batches: dict[str, list[str] | None]) -> list[tuple[str, str]]:
    """The ``(assignment, student)`` pairs :func:`autograder.pipeline.autograde_all` grades, in order; a CourseError, before
    anything is graded, for an assignment without a source notebook or without submissions."""
    tasks = []
    for assignment, students in batches.items():
        if not course.source_notebook(assignment).is_file():
            raise CourseError(
                f"autograde: no source notebook {course.source_notebook(assignment)}: is {assignment!r} spelled right?"
            )
        submitted = submitted_students(course, assignment)
        if not submitted:
            raise CourseError(f"autograde: no submissions of {assignment} in {course.submitted}; run collect first")
        missing = [s for s in students or () if s not in submitted]
        if missing:
            raise CourseError(
                f"autograde: no submission of {assignment} by {', '.join(missing)} in "
                f"{course.submitted}; run collect first, or check the name"
            )
        check_socket_room(assignment)
        tasks += [(assignment, s) for s in (submitted if students is None else students)]
    return tasks
