"""The instructor pipeline: release, collect, autograde, record, feedback, export, report.

Each step is a function the CLI (``adl-grade``) calls and the tests call directly. The grading of one
submission happens in its own worker process (``autograder.worker``) with a fresh kernel; this module only
prepares its input, reads its JSON result and owns the gradebook.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import datetime
import functools
import hashlib
import html
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import nbformat

from autograder import __version__
from autograder.course import Course, CourseError
from autograder.ingest import Ingested, ingest, printable
from autograder.notebook import (
    SURROGATE,
    GradeCell,
    InvalidNotebook,
    parse_submission,
    read_source,
    restore,
    unanswered,
)
from autograder.sandbox import SLOT_UID_BASE, Limits, parse_size

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
# Environment variables the grading kernel inherits; everything else (the gradebook URL, tokens, the
# instructor's HOME) stays behind.
KERNEL_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "ADL_DATA_MIRROR", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")
WORKER_GRACE = 120  # seconds on top of the notebook limit before a worker is killed outright
DASK_CONNECT_TIMEOUT = 30  # seconds to reach a Dask scheduler
GRADER_FAILED = "grader failed"  # the flag of a submission the grader itself failed on: not graded, not the student's doing
PENDING = "pending"  # a question graded by hand without a manual score yet (nbgrader: needs_manual_grade)
GRADED_BY_HAND = "graded by hand"  # a question graded by hand, with the formgrader's score
AWAITS = "graded by hand: awaits a grade"  # the reason of a PENDING question (feedback, report)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- release


def _tools_on_path() -> None:
    """nbgrader runs the ``alembic`` command by name; make this interpreter's scripts findable."""
    bindir = str(pathlib.Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def release(course: Course, assignment: str) -> pathlib.Path:
    """Generate ``release/<assignment>`` from ``source/<assignment>`` with nbgrader (and register it in the
    gradebook). Returns the released notebook's path."""
    if not (course.source / assignment).is_dir():
        raise CourseError(f"release: no source folder {course.source / assignment}")
    _tools_on_path()
    if course.db_url.startswith("sqlite:///"):
        pathlib.Path(course.db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=course.root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise CourseError(f"nbgrader generate_assignment {assignment} failed; its last lines:\n{tail}")
    return course.release_notebook(assignment)


# --------------------------------------------------------------------------------------------- collect


def collect(course: Course, assignment: str, download: pathlib.Path, pattern: str | None = None,
            ignore: tuple[str, ...] = (), due: datetime.datetime | None = None) -> Ingested:
    """Copy an LMS download (a ``.zip`` or a folder of ``<student_id>_<assignment>.ipynb`` files) into
    nbgrader's ``submitted/<student_id>/<assignment>/`` layout; see :mod:`autograder.ingest`."""
    return ingest(course, assignment, pathlib.Path(download), pattern=pattern, due=due, ignore=ignore)


def submitted_students(course: Course, assignment: str) -> list[str]:
    notebook = course.settings(assignment).notebook
    if not course.submitted.is_dir():
        return []
    return sorted(p.name for p in course.submitted.iterdir() if (p / assignment / notebook).is_file())


# ------------------------------------------------------------------------------------------- autograde


@dataclasses.dataclass
class QuestionResult:
    grade_id: str
    points: float
    max_points: float
    status: str  # passed | failed | not graded | pending | graded by hand
    reason: str = ""
    manual: bool = False  # graded by hand (nbgrader's manually graded answer): "pending" until the formgrader scores it


@dataclasses.dataclass
class Result:
    student: str
    assignment: str
    questions: list[QuestionResult]
    flags: list[str]  # short labels: the grade table and the report
    elapsed: float
    key: str
    notes: list[str] = dataclasses.field(default_factory=list)  # sentences: the feedback

    @property
    def score(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def max_score(self) -> float:
        return sum(q.max_points for q in self.questions)

    @property
    def pending(self) -> list[str]:
        """The questions graded by hand that have no grade yet: while there are any, ``score`` is provisional."""
        return [q.grade_id for q in self.questions if q.status == PENDING]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Result:
        data = dict(data)
        data["questions"] = [QuestionResult(**q) for q in data["questions"]]
        return cls(**data)


def _hidden_lines(source: str) -> set[int]:
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if HIDDEN_BEGIN in line:
            inside = True
        if inside:
            hidden.add(number)
        if HIDDEN_END in line:
            inside = False
    return hidden


def _reason(cell: dict, trusted: GradeCell) -> str:
    """Why a test cell lost its points, for the student. It holds nothing a hidden test knows and nothing
    the student's code wrote: the question's part (a public check or a hidden test), the exception's type,
    and the instructor's own message as written in the test (f-string fields cut out, see
    :func:`autograder.contract.instructor_message`); for a public check, the line that failed (the student
    has that code). Never the exception's text: a student's function could put the hidden tests' inputs
    there (or in a value a later check prints), and NumPy's comparison messages print the expected values."""
    status = cell.get("status")
    if status in ("timeout", "dead", "skipped", "unresponsive", "disk"):
        return f"the test could not run: {cell.get('evalue')}"  # the grader's own words
    ename = str(cell.get("ename") or "Error")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,59}", ename):
        ename = "Error"
    line = cell.get("line")
    hidden = line in _hidden_lines(trusted.source)
    origin, message = cell.get("origin"), cell.get("message")
    function = cell.get("function") if isinstance(cell.get("function"), str) else None
    called = f"{function}()" if function and function.isidentifier() else "your code"
    if ename == "NotImplementedError":
        what = "NotImplementedError: an answer this test needs was not written yet"
    elif ename == "ProtocolError":
        what = ("the grader could not read your code's answer: the notebook's code changed how the kernel runs "
                "cells, or answered with something that is not data")
    elif origin == "student":
        what = (f"{called} raised an exception of a type of its own" if ename == "StudentError"
                else f"{called} raised {ename}")
    elif origin == "unreadable":
        what = ("TypeError: your code returned a value the grader cannot read (it reads numbers, strings, NumPy "
                "arrays, tensors, and lists, tuples or dicts of them)")
    elif ename == "NameError" and origin == "test":
        m = re.search(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined", str(cell.get("evalue", "")))
        public_names = _public_names(trusted)
        name = f"name {m.group(1)!r}" if m and m.group(1) in public_names else "a name the test uses"
        what = f"NameError: {name} is not defined (an answer cell above did not run or did not define it)"
    else:
        what = f"{ename}: {message}" if isinstance(message, str) and message else ename
    if hidden:
        return f"a hidden test failed ({what})"
    at = _public_line(trusted, line)
    return f"a public check failed ({what})" + (f" at: {at}" if at else "")


def _public_names(trusted: GradeCell) -> set[str]:
    from autograder.contract import code_names

    try:
        return code_names(compile(trusted.public_source, "<public>", "exec"))
    except SyntaxError:
        return set()


def _public_line(trusted: GradeCell, line: object) -> str | None:
    """The first line of the test's statement at ``line`` (a public line: the student has it), shortened."""
    lines = trusted.source.splitlines()
    if not isinstance(line, int) or not 1 <= line <= len(lines):
        return None
    text = lines[line - 1].strip()
    if not text or text.startswith("#"):
        return None
    return text if len(text) <= 120 else text[:119] + "\u2026"


def _score(student: str, assignment: str, trusted: list[GradeCell], run: dict, key: str,
           unanswered: set[str] | frozenset[str] = frozenset()) -> Result:
    """The result of one worker run. ``run`` is read defensively (see :func:`_run_cells`): whatever the worker
    wrote, every graded question gets a status and a reason, and no text that UTF-8 cannot write gets in.

    A graded cell that is not a test (nbgrader's manually graded answer, ``GradeCell.manually_graded``) is never
    scored here: it is PENDING until the formgrader gives it a score (:func:`record` reads it back), except an
    answer in ``unanswered`` (left as released), which gets 0 as nbgrader gives it."""
    cells = _run_cells(run)
    by_id = {c["grade_id"]: c for c in cells if c["grade_id"]}
    questions = []
    for tc in trusted:
        if not tc.grade:
            continue
        if not tc.autograded_test and tc.grade_id in unanswered:
            questions.append(QuestionResult(tc.grade_id, 0.0, tc.points, "failed",
                                            "no answer: the cell was handed in as released", manual=True))
            continue
        if not tc.autograded_test:  # graded by hand, in the formgrader
            questions.append(QuestionResult(tc.grade_id, 0.0, tc.points, PENDING, AWAITS, manual=True))
            continue
        cell = by_id.get(tc.grade_id, {"status": "skipped", "evalue": "the test cell did not run"})
        if cell["status"] == "ok":
            questions.append(QuestionResult(tc.grade_id, tc.points, tc.points, "passed"))
        else:
            questions.append(QuestionResult(tc.grade_id, 0.0, tc.points, "failed", _valid_text(_reason(cell, tc))))
    labels = {"timeout": "timeout", "dead": "kernel died", "skipped": "time limit", "unresponsive": "kernel unresponsive",
              "disk": "disk limit"}
    flags = [labels[s] for s in labels if any(c["status"] == s for c in cells)]
    notes = [
        f"cell {c.get('grade_id') or c.get('index')}: {c.get('evalue')}"
        for c in cells
        if c["status"] in labels
    ]
    if any(c.get("ename") == "ProtocolError" for c in cells):
        flags.append("kernel tampered")
        notes.append("the notebook's code changed how the kernel runs cells, so the grader could not read "
                     "your answers for some questions")
    elapsed = run.get("elapsed") if isinstance(run, dict) else None
    elapsed = float(elapsed) if type(elapsed) in (int, float) and abs(elapsed) < 1e9 else 0.0  # not NaN either
    return Result(student, assignment, questions, flags, elapsed, key, notes)


def _run_cells(run) -> list[dict]:
    """The worker's per-cell entries, each a dict with a text ``status`` and a text or None ``grade_id``;
    text values made writable as UTF-8, an int or None ``line``; nested values and other types dropped."""
    cells = run.get("cells") if isinstance(run, dict) else None
    out = []
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        clean = {k: _valid_text(v) if isinstance(v, str) else v for k, v in cell.items()
                 if isinstance(k, str) and (v is None or type(v) in (str, int, float, bool))}
        clean["status"] = clean["status"] if isinstance(clean.get("status"), str) else "error"
        clean["grade_id"] = clean.get("grade_id") if isinstance(clean.get("grade_id"), str) else None
        clean["line"] = clean.get("line") if type(clean.get("line")) is int else None
        out.append(clean)
    return out


def _valid_text(text: str) -> str:
    """``text`` with any lone UTF-16 surrogate (which UTF-8 cannot write) replaced by U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8") if SURROGATE.search(text) else text


def _invalid(student: str, assignment: str, trusted: list[GradeCell], reason: str, key: str) -> Result:
    """The result of a notebook refused at validation: 0 on every graded question, ``reason`` for the student."""
    reason = _valid_text(str(reason))
    qs = [
        QuestionResult(tc.grade_id, 0.0, tc.points, "failed", f"not graded: {reason}",
                       manual=not tc.autograded_test)
        for tc in trusted
        if tc.grade
    ]
    return Result(student, assignment, qs, ["invalid notebook"], 0.0, key, [f"not graded: {reason}"])


def _failed(student: str, assignment: str, trusted: list[GradeCell], exc: BaseException) -> Result:
    """The result of a submission the grader itself failed on (an exception out of :func:`grade_one`, or the
    gradebook refusing the result): every graded question "not graded", with a reason for the instructor. It
    is never cached, so the next ``autograde`` grades the submission again (or records the result that
    ``grade_one`` cached, if only the gradebook refused it); it gets no feedback (see ``adl-grade feedback``)."""
    what = printable(f"{type(exc).__name__}: {exc}", limit=300)
    reason = (f"not graded: the grader failed on this submission ({what}); the traceback is in the grader's "
              "log. Fix the cause and run adl-grade autograde again")
    qs = [QuestionResult(tc.grade_id, 0.0, tc.points, "not graded", reason) for tc in trusted if tc.grade]
    return Result(student, assignment, qs, [GRADER_FAILED], 0.0, "", [reason])


def _mirror() -> pathlib.Path | None:
    mirror = os.environ.get("ADL_DATA_MIRROR")
    return pathlib.Path(mirror).resolve() if mirror and pathlib.Path(mirror).is_dir() else None


def _kernel_env(course: Course, profile: str, workdir: pathlib.Path) -> dict:
    env = {k: os.environ[k] for k in KERNEL_ENV_KEEP if k in os.environ}
    mirror = _mirror()
    if mirror:
        env["ADL_DATA_MIRROR"] = str(mirror)
    else:
        env.pop("ADL_DATA_MIRROR", None)
    env.update(
        HOME=str(workdir),
        ADL_PROFILE=profile,
        ADL_DATA_DIR=str(workdir / ".data-cache"),  # its own cache: the kernel cannot see the course's
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(workdir / ".matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _grader_env(course: Course, profile: str) -> dict:
    """The data settings of the trusted tests in the worker: the same profile as the kernel, the course's
    own cache (never a file the student's code could have written)."""
    env = {"ADL_PROFILE": profile, "ADL_DATA_DIR": str(course.build / "data-cache"), "MPLBACKEND": "Agg"}
    mirror = _mirror()
    if mirror:
        env["ADL_DATA_MIRROR"] = str(mirror)
    return env


def kernel_limits(settings) -> Limits:
    """The resource limits of an assignment's grading kernels, from its settings (assignments.yml)."""
    return Limits(memory=parse_size(settings.memory_limit), processes=settings.max_processes,
                  disk=parse_size(settings.disk_limit), files=settings.max_files,
                  tmp_size=parse_size(settings.tmp_size))


def sandbox_summary(course: Course, assignment: str) -> list[str]:
    """What the grading kernels of ``assignment`` are held to, one line each (adl-grade prints it)."""
    from autograder.sandbox import Sandbox

    settings = course.settings(assignment)
    limits = kernel_limits(settings)
    mirror = _mirror()
    return Sandbox(pathlib.Path(tempfile.gettempdir()), limits, readonly=(mirror,) if mirror else (),
                   enabled=settings.sandbox).describe()


def sandbox_isolated(course: Course, assignment: str) -> bool:
    """True when the assignment's kernels run inside bubblewrap (no course folder, no network)."""
    from autograder.sandbox import Sandbox

    return Sandbox(pathlib.Path(tempfile.gettempdir()), enabled=course.settings(assignment).sandbox).isolated


_PROBED: dict[tuple, str | None] = {}


def sandbox_problem(course: Course, assignment: str) -> str | None:
    """Why the grading kernel or the model evaluator of ``assignment`` cannot start on this machine, or None.

    Each is started once, as a grading slot starts it (its user, its sandbox, its limits), and imports what it
    needs; the answer is kept for this process. :func:`autograde_all` asks before grading anything: a kernel
    that cannot start (the slot's user cannot reach the Python installation, say) would cost every question
    of every submission, with nothing but "grading did not finish" to show for it."""
    from autograder.evaluate import ModelEvaluator
    from autograder.sandbox import Limits, Sandbox, bwrap_problem

    settings = course.settings(assignment)
    memory, mirror = parse_size(settings.memory_limit), _mirror()
    key = (settings.sandbox, kernel_limits(settings), mirror, bwrap_problem(), os.environ.get("PATH"),
           sys.executable)
    if key in _PROBED:
        return _PROBED[key]
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"adl-probe-{assignment}-"))
    slot = SLOTS.acquire()
    try:
        base.chmod(0o755)
        kernel = Sandbox(base, kernel_limits(settings), slot=slot,
                         readonly=(mirror,) if mirror else (), enabled=settings.sandbox)
        problem = kernel.probe([sys.executable, "-c", "import ipykernel"])
        if problem is None:
            evaluator = ModelEvaluator(base, timeout=60, slot=slot, limits=Limits(memory=memory, processes=64),
                                       sandbox=settings.sandbox)
            problem = evaluator.probe()
            problem = problem and f"the model evaluator: {problem}"
        else:
            problem = f"the kernel: {problem}"
    finally:
        _kill_user(slot)
        SLOTS.release(slot)
        shutil.rmtree(base, ignore_errors=True)
    _PROBED[key] = problem
    return problem


class _Slots:
    """Small integers naming the grading slots busy in this process; each slot's kernel runs as its own
    user id, so one submission's processes never count against another's limit."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._busy: set[int] = set()

    def acquire(self) -> int:
        with self._lock:
            local = next(i for i in range(10_000) if i not in self._busy)
            self._busy.add(local)
        return (os.getpid() % 2000) * 16 + local % 16 if local < 16 else 32000 + local

    def release(self, slot: int) -> None:
        local = slot - 32000 if slot >= 32000 else slot % 16
        with self._lock:
            self._busy.discard(local)


SLOTS = _Slots()


@functools.cache
def grader_fingerprint() -> str:
    """A hash of the grader's own code (this package and the helpers the tests import): part of every cached
    result's key, so a grader that changed how it grades or words its feedback grades again."""
    import adl_helpers

    digest = hashlib.sha256()
    for folder in (pathlib.Path(__file__).parent, pathlib.Path(adl_helpers.__file__).parent):
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def grade_one(course: Course, assignment: str, student: str, force: bool = False) -> Result:
    """Grade one collected submission in its own worker process; cache the result by content hash."""
    settings = course.settings(assignment)
    source_path = course.source_notebook(assignment)
    _, trusted = read_source(source_path)
    sub_path = course.submitted / student / assignment / settings.notebook
    data = sub_path.read_bytes()
    key = hashlib.sha256(
        b"\0".join([data, source_path.read_bytes(), __version__.encode(), repr(settings).encode(),
                    grader_fingerprint().encode()])
    ).hexdigest()
    outdir = course.autograded / student / assignment
    result_file = outdir / "result.json"
    if not force and result_file.is_file():
        try:
            cached = Result.from_json(json.loads(result_file.read_text()))
            if cached.key == key:
                return cached
        except (ValueError, TypeError, KeyError):
            pass  # unreadable cache: grade again
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        submission = parse_submission(data)
    except InvalidNotebook as exc:
        result = _invalid(student, assignment, trusted, str(exc), key)
        _write_json(result_file, result.to_json())
        return result
    restored = restore(submission, trusted)
    blank = unanswered(restored.notebook, trusted)
    # base/home: the kernel's working directory (the only place it writes); base/control: files the grader
    # writes for the kernel (read-only to it); base/private: the restored notebook with its tests and the
    # job, never visible to the kernel. base lives in this process's folder under build/grading/ (see
    # _grading_folder): a killed grader leaves it where no one else can list it, and the next run removes it.
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"{assignment[:40]}-", dir=_grading_folder(course)))
    slot = SLOTS.acquire()
    limits = kernel_limits(settings)
    try:
        _kill_user(slot)  # a process of this slot's user left by a killed grader
        base.chmod(0o711)
        home, control, private = base / "home", base / "control", base / "private"
        home.mkdir()
        _mount_home(home, limits)
        control.mkdir(mode=0o755)
        private.mkdir(mode=0o700)
        for name in settings.data_files:
            shutil.copy2(course.source / assignment / name, home / name)
        nbformat.write(restored.notebook, str(private / settings.notebook))
        mirror = _mirror()
        job = {
            "workdir": str(home),
            "control": str(control),
            "notebook": str(private / settings.notebook),
            "cell_timeout": settings.cell_timeout,
            "notebook_timeout": settings.notebook_timeout,
            "env": _kernel_env(course, settings.profile, home),
            "grader_env": _grader_env(course, settings.profile),
            "sandbox": {"enabled": settings.sandbox, "slot": slot, "memory": limits.memory,
                        "processes": settings.max_processes, "readonly": [str(mirror)] if mirror else [],
                        "disk": limits.disk, "files": limits.files, "tmp_size": limits.tmp_size},
            "output_limit": parse_size(settings.output_limit),
            "notebook_output_limit": parse_size(settings.notebook_output_limit),
            "grader_memory": parse_size(settings.grader_memory),
            "scratch": str(base),
            "log": str(course.build / "logs" / assignment / f"{student}.log"),
            "executed": str(outdir / settings.notebook),
            "result": str(outdir / "run.json"),
        }
        job_file = private / "job.json"
        job_file.write_text(json.dumps(job))
        run = _run_worker(course, slot, job_file, settings.notebook_timeout + WORKER_GRACE)
    finally:
        _kill_user(slot)
        SLOTS.release(slot)
        _remove_grading_folder(base)
    if run is None:
        cells = [{"grade_id": c.grade_id, "status": "skipped", "evalue": "grading did not finish"} for c in trusted]
        run = {"cells": cells, "elapsed": settings.notebook_timeout + WORKER_GRACE}
    result = _score(student, assignment, trusted, run, key, blank)
    result.flags.extend(restored.flags)
    result.notes.extend(restored.notes)
    _write_json(result_file, result.to_json())
    return result


UNIX_SOCKET_PATH = 107  # bytes in a Unix socket's path (sun_path less its NUL): the kernel's sockets live in its folder
SOCKET_TAIL = len("/home/.kernel/ipc-12345")  # what a submission's folder adds below its grading folder


def grading_root() -> pathlib.Path:
    """Where grading folders live: ``$ADL_GRADING_DIR`` or ``<tmp>/adl-grading-<uid>``, mode 0711, owned by
    the grader. A short path on purpose: the kernel talks to the worker over Unix sockets in the submission's
    folder, and a socket's path has at most 107 bytes (a course under a long path would otherwise start no
    kernel at all). Refused if another user owns it or it is a link (someone may have made it first)."""
    root = pathlib.Path(os.environ.get("ADL_GRADING_DIR") or
                        pathlib.Path(tempfile.gettempdir()) / f"adl-grading-{os.geteuid()}")
    try:
        root.mkdir(mode=0o711, parents=True, exist_ok=True)
        info = os.lstat(root)
    except OSError as exc:
        raise CourseError(f"cannot make the grading folder {root}: {exc}; set ADL_GRADING_DIR to a folder of "
                          "your own") from None
    import stat as stat_mod

    if not stat_mod.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise CourseError(f"the grading folder {root} is not a folder of this user (a link, or made by another "
                          "user); remove it or set ADL_GRADING_DIR to a folder of your own")
    root.chmod(0o711)
    return root


def check_socket_room(assignment: str) -> None:
    """Refuse (CourseError) before grading when the kernel's sockets in a submission's folder of
    ``assignment`` would pass the 107-byte limit of a Unix socket's path: no kernel would start."""
    import psutil

    folder = grading_root() / f"{os.getpid()}-{int(psutil.Process().create_time())}" / f"{assignment[:40]}-xxxxxxxx"
    if len(os.fsencode(folder)) + SOCKET_TAIL > UNIX_SOCKET_PATH:
        raise CourseError(f"the grading folder {grading_root()} is too deep: the kernel's sockets in it would "
                          f"pass the {UNIX_SOCKET_PATH}-byte limit of a Unix socket's path; set ADL_GRADING_DIR "
                          "to a short path such as /tmp/adl")


def _grading_folder(course: Course) -> pathlib.Path:
    """This process's folder for the submissions it grades: ``<grading_root>/<pid>-<start>/``.

    The root is 0711 (the slots' users may pass through it to their own folder, no one but the grader may list
    it) and each submission's folder in it has a random name: nothing there is readable to others even if the
    grader is killed. The first call in a process removes what dead runs left behind (unmounting a kernel's
    folder first), so a killed batch leaves no hidden test or student file for long. The root is on this
    machine's own disk, so every run folder in it belongs to a process of this machine."""
    import psutil

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
            _remove_grading_folder(stale)
    mine = root / f"{os.getpid()}-{int(psutil.Process().create_time())}"
    mine.mkdir(mode=0o711, exist_ok=True)
    _GRADING_FOLDERS[key] = mine
    return mine


_GRADING_FOLDERS: dict[tuple[str, int], pathlib.Path] = {}


def _mount_home(home: pathlib.Path, limits: Limits) -> bool:
    """Under a root grader: make the kernel's folder a tmpfs of ``limits.disk`` bytes and ``limits.files``
    files and folders, so a write past either fails at once (ENOSPC). Elsewhere (not root, or no right to
    mount, as in a container) the worker checks the folder after each cell instead. True if mounted."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        return False
    options = f"size={limits.disk},nr_inodes={limits.files + 1},mode=0700,nosuid,nodev"
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


def _remove_grading_folder(folder: pathlib.Path) -> None:
    """Unmount and delete one submission's grading folder (or a dead run's), however deep the tree a kernel
    left in it."""
    umount = shutil.which("umount")
    for point in _mounts_under(folder):
        if umount:
            subprocess.run([umount, "--lazy", point], capture_output=True)
    from autograder.files import remove_tree

    left = remove_tree(folder)
    if left:
        log.warning("could not remove all of %s (left unreadable): %s", folder, left[:5])


def _kill_user(slot: int) -> None:
    """After grading as root: no process of the slot's user survives (a daemon left by the student)."""
    if os.geteuid() != 0:
        return
    import psutil

    uid = SLOT_UID_BASE + slot
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == uid:
                proc.kill()
        except psutil.Error:
            pass


class _Worker:
    """One long-lived ``autograder.worker --serve`` process: it grades the jobs of one slot, one at a time.
    Its stderr (the kernels' too) goes to ``log``."""

    def __init__(self, log: pathlib.Path):
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autograder.worker", "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fh, text=True, start_new_session=True,
            )

    def run(self, job_file: pathlib.Path, hard_limit: float) -> str | None:
        """The worker's answer for one job, or None if it died or outlived ``hard_limit`` (then it is killed)."""
        import selectors

        try:
            self.proc.stdin.write(f"{job_file}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=hard_limit):
                self.kill()
                return None
        line = self.proc.stdout.readline()
        return line.strip() or None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            procs = parent.children(recursive=True) + [parent]
        except psutil.NoSuchProcess:
            procs = []
        for child in procs:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait()


_WORKERS: dict[int, _Worker] = {}


def _run_worker(course: Course, slot: int, job_file: pathlib.Path, hard_limit: float) -> dict | None:
    """Run one job on the slot's worker (started on first use, restarted if it died). None if it failed."""
    log = course.build / "logs" / f"worker-{slot}.log"
    worker = _WORKERS.get(slot)
    if worker is not None and worker.alive() and worker.log != log:  # another course's: its log is elsewhere
        _stop_worker(_WORKERS.pop(slot))
        worker = None
    if worker is None or not worker.alive():
        worker = _WORKERS[slot] = _Worker(log)
    result_path = pathlib.Path(json.loads(job_file.read_text())["result"])
    result_path.unlink(missing_ok=True)
    answer = worker.run(job_file, hard_limit)
    if answer != "done" or not result_path.is_file():
        if answer is None:
            _WORKERS.pop(slot, None)
        job_log = json.loads(job_file.read_text()).get("log") or worker.log
        sys.stderr.write(f"worker for {job_file.parent.parent.name} failed ({answer}); see {job_log}\n")
        return None
    return json.loads(result_path.read_text())


def _stop_worker(worker: _Worker) -> None:
    try:
        worker.proc.stdin.close()
        worker.proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        worker.kill()


def shutdown_workers() -> None:
    """Stop the long-lived workers. They outlive an autograde call, so that grading several assignments in one
    process (the demo, the tests) starts them once; they end with the process, or when this is called."""
    while _WORKERS:
        _stop_worker(_WORKERS.popitem()[1])


atexit.register(shutdown_workers)


def autograde(course: Course, assignment: str, students: list[str] | None = None, workers: int = 2,
              force: bool = False, progress: bool = True, dask: str | None = None) -> list[Result]:
    """Grade submissions in parallel and record each in the gradebook as it finishes.

    By default a local pool runs ``workers`` submissions at a time. With ``dask`` (a scheduler address such
    as ``tcp://10.0.0.5:8786``) the same :func:`grade_one` calls run as tasks on a Dask distributed
    cluster, whose workers must see the course folder at the same path (a shared file system). Either way
    the gradebook is written here, one submission at a time, so an interrupted batch keeps what finished.
    """
    return autograde_all(course, {assignment: students}, workers, force, progress, dask)[assignment]


def autograde_all(course: Course, batches: dict[str, list[str] | None], workers: int = 2, force: bool = False,
                  progress: bool = True, dask: str | None = None) -> dict[str, list[Result]]:
    """:func:`autograde` for several assignments at once, ``{assignment: students or None (all)}``, in one
    queue: a free worker takes the next submission whatever its assignment, so no worker waits for an
    assignment's slowest submission. Submissions start in the order given: put the slowest assignment first.

    One submission cannot stop the batch: if grading it raises (a bug in the grader, a file it cannot
    handle) or the gradebook refuses its result, the traceback is logged and the student gets a result
    flagged :data:`GRADER_FAILED` (every question "not graded", recorded as such where the gradebook
    allows), and the batch goes on. The caller decides what to make of such results (``adl-grade`` exits
    non-zero and names them).
    """
    from tqdm.auto import tqdm

    tasks = grading_tasks(course, batches)
    for assignment in batches if dask is None else ():  # a cluster's machines are not this one
        problem = sandbox_problem(course, assignment)
        if problem:
            raise CourseError(f"autograde: {assignment} cannot be graded on this machine, every question would "
                              f"score 0: {problem}")
    results: dict[tuple[str, str], Result] = {}
    desc = f"grading {', '.join(batches)}"
    bar = tqdm(total=len(tasks), desc=desc, unit="nb", disable=not progress)
    try:
        for result in _grade_all(course, tasks, workers, force, dask):
            try:
                record(course, result)
            except Exception as exc:  # noqa: BLE001 - one student's row must not stop the others'
                log.exception("%s/%s: the gradebook did not take the result", result.assignment, result.student)
                result = _failed(result.student, result.assignment, _trusted(course, result.assignment), exc)
            results[result.assignment, result.student] = result
            bar.update()
    finally:
        bar.close()
    return {a: [results[a, s] for a2, s in tasks if a2 == a] for a in batches}


def grading_tasks(course: Course, batches: dict[str, list[str] | None]) -> list[tuple[str, str]]:
    """The ``(assignment, student)`` pairs :func:`autograde_all` grades, in order; a CourseError, before
    anything is graded, for an assignment without a source notebook or without submissions."""
    tasks = []
    for assignment, students in batches.items():
        if not course.source_notebook(assignment).is_file():
            raise CourseError(f"autograde: no source notebook {course.source_notebook(assignment)}: is "
                              f"{assignment!r} spelled right?")
        submitted = submitted_students(course, assignment)
        if not submitted:
            raise CourseError(f"autograde: no submissions of {assignment} in {course.submitted}; run collect first")
        missing = [s for s in students or () if s not in submitted]
        if missing:
            raise CourseError(f"autograde: no submission of {assignment} by {', '.join(missing)} in "
                              f"{course.submitted}; run collect first, or check the name")
        check_socket_room(assignment)
        tasks += [(assignment, s) for s in (submitted if students is None else students)]
    return tasks


def _grade_all(course, tasks, workers, force, dask):
    """Each task's :class:`Result` as it finishes, locally or on Dask; a task whose ``grade_one`` raised
    yields a :func:`_failed` result (the traceback logged), so one submission cannot end the generator."""
    if dask is None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(grade_one, course, a, s, force): (a, s) for a, s in tasks}
            for future in concurrent.futures.as_completed(futures):
                yield _outcome(course, future, *futures[future])
        return
    from distributed import Client, as_completed

    try:
        client = Client(dask, timeout=DASK_CONNECT_TIMEOUT)
    except OSError as exc:
        raise CourseError(f"cannot reach the Dask scheduler at {dask!r}: {exc}") from None
    with client:
        futures = client.map(grade_one, [course] * len(tasks), [a for a, _ in tasks], [s for _, s in tasks],
                             [force] * len(tasks), pure=False, key=[f"grade-{a}-{s}" for a, s in tasks])
        by_key = {f.key: task for f, task in zip(futures, tasks, strict=True)}
        for future in as_completed(futures):
            yield _outcome(course, future, *by_key[future.key])


def _outcome(course: Course, future, assignment: str, student: str) -> Result:
    """A finished grading task's result; if it raised, a :func:`_failed` result and the traceback in the log."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - any bug of the grader's, for this submission only
        log.error("%s/%s: the grader failed; the student is recorded as not graded", assignment, student,
                  exc_info=exc)
        return _failed(student, assignment, _trusted(course, assignment), exc)


def _trusted(course: Course, assignment: str) -> list[GradeCell]:
    """The source notebook's nbgrader cells, or [] if even that cannot be read (a failed result then lists
    no questions)."""
    try:
        return read_source(course.source_notebook(assignment))[1]
    except Exception:  # noqa: BLE001
        log.exception("%s: cannot read the source notebook", assignment)
        return []


def _write_json(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


# --------------------------------------------------------------------------------------------- gradebook


def record(course: Course, result: Result) -> None:
    """Write one result into nbgrader's gradebook (idempotent: the same result twice gives the same rows).

    What the formgrader needs to show it as graded: the submission's time stamp, the one ``collect`` wrote to
    ``submitted/<student>/<assignment>/timestamp.txt``, read as nbgrader reads it (it lists a submission as
    "needs autograding" while the two differ). The formgrader's own edits stay: a manual score, extra credit
    and comments are never written here. As in nbgrader's autograde, a manually scored question is flagged
    for review (``needs_manual_grade``) when its automatic score changes; a question graded by hand needs a
    grade until it has a manual score, and again (for review) when the student hands in a new submission after
    it was graded.

    A question graded by hand comes back from here as the gradebook has it: GRADED_BY_HAND with the manual score
    (plus extra credit) once the formgrader has one, else PENDING; so the printed grades, the feedback and the
    report count a hand grade as soon as it exists.
    """
    import logging

    import sqlalchemy.exc
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    _tools_on_path()
    notebook = course.settings(result.assignment).notebook.removesuffix(".ipynb")
    stamp_file = course.submitted / result.student / result.assignment / "timestamp.txt"
    stamp = None
    if stamp_file.is_file():
        try:
            stamp = parse_utc(stamp_file.read_text().strip())
        except (ValueError, OverflowError) as exc:  # the formgrader cannot read it either
            logging.getLogger(__name__).warning("%s: unreadable time stamp (%s); recorded without one",
                                                stamp_file, exc)
    with warnings.catch_warnings(), Gradebook(course.db_url, course_id=course.course_id) as gb:
        # nbgrader's own session use makes SQLAlchemy warn about autoflush; the rows are written correctly.
        warnings.simplefilter("ignore", category=sqlalchemy.exc.SAWarning)
        gb.update_or_create_student(result.student)
        try:
            before = gb.find_submission(result.assignment, result.student).timestamp
        except MissingEntry:
            before = None
        resubmitted = None not in (before, stamp) and before != stamp
        gb.update_or_create_submission(result.assignment, result.student, timestamp=stamp)
        for q in result.questions:
            grade = gb.find_grade(q.grade_id, notebook, result.assignment, result.student)
            if q.manual and q.status in (PENDING, GRADED_BY_HAND):
                grade.auto_score = None
                grade.needs_manual_grade = grade.manual_score is None or grade.needs_manual_grade or resubmitted
                if grade.manual_score is None:
                    q.points, q.status, q.reason = 0.0, PENDING, AWAITS
                else:
                    q.points = float(grade.manual_score) + float(grade.extra_credit or 0.0)
                    q.status, q.reason = GRADED_BY_HAND, ""
            elif q.status == "not graded":
                grade.auto_score = None
                grade.needs_manual_grade = grade.manual_score is None
            else:
                changed = grade.auto_score != q.points
                grade.auto_score = q.points
                grade.needs_manual_grade = grade.manual_score is not None and (grade.needs_manual_grade or changed)
        gb.db.commit()


def gradebook_scores(course: Course, assignment: str) -> dict[str, dict[str, float]]:
    """{student: {grade_id: score}} as the gradebook (and the formgrader) counts them: a manual score over the
    automatic one, plus extra credit."""
    from nbgrader.api import Gradebook

    out: dict[str, dict[str, float]] = {}
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        for sub in gb.assignment_submissions(assignment):
            scores = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    scores[grade.name] = float(grade.score)
            out[sub.student.id] = scores
    return out


def gradebook_awaiting(course: Course, assignment: str) -> dict[str, list[str]]:
    """{student: [grade_id, ...]}: the questions of each submission that have no score at all in the gradebook
    (neither automatic nor manual: a question graded by hand that the formgrader has not scored yet), so the
    student's total is provisional. Students with none are left out; ``{}`` for an assignment not recorded."""
    from nbgrader.api import Gradebook, MissingEntry

    _tools_on_path()  # a new gradebook runs nbgrader's alembic by name
    out: dict[str, list[str]] = {}
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        try:
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            return {}
        for sub in submissions:
            waiting = [grade.name for nb in sub.notebooks for grade in nb.grades
                       if grade.auto_score is None and grade.manual_score is None]
            if waiting:
                out[sub.student.id] = waiting
    return out


# ----------------------------------------------------------------------------------- feedback / export


def feedback_rounds(course: Course, assignment: str, student: str) -> list[dict]:
    """The rounds of feedback ``student`` has had on ``assignment``, oldest first: one per different
    submission (``key``, the hash of the submitted notebook), with when it was written, its score and
    whether the feedback was withheld (over the assignment's ``feedback_rounds`` cap)."""
    path = _rounds_file(course, assignment, student)
    try:
        rounds = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise CourseError(f"the feedback record {path} is not valid JSON ({exc}); restore it from a backup or "
                          "delete it to count this student's rounds from zero") from None
    return rounds if isinstance(rounds, list) else []


def _submission_key(course: Course, result: Result) -> str:
    """What makes a round: the submitted notebook's bytes (grading the same notebook again, with a newer
    grader say, is the same round), or the result's key where the submission is not on disk."""
    path = course.submitted / result.student / result.assignment / course.settings(result.assignment).notebook
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return result.key


def _rounds_file(course: Course, assignment: str, student: str) -> pathlib.Path:
    return course.build / "feedback_rounds" / assignment / f"{student}.json"


def write_feedback(course: Course, result: Result, final: bool = False) -> pathlib.Path:
    """Per-student HTML: each question's points, the public checks, the reason for each lost point.
    Hidden tests are never included: the public part of each test cell is cut from the source, and the
    reasons hold nothing a hidden test computed (see :func:`_reason`). A question graded by hand shows as such,
    with its grade or as awaiting one; its source cell (the rubric and the sample answer) is never shown.

    Each different submission a student gets feedback on is a *round*, recorded in
    ``build/feedback_rounds/<assignment>/<student>.json`` (writing the same submission's feedback again is
    the same round). Past the assignment's ``feedback_rounds`` cap the feedback says so and shows neither
    the score nor the questions, so resubmitting cannot be used to probe the hidden tests; ``final=True``
    (after the deadline: ``adl-grade feedback --final``) writes the whole feedback and counts no round."""
    import jinja2

    _, trusted = read_source(course.source_notebook(result.assignment))
    by_id = {c.grade_id: c for c in trusted}
    cap = course.settings(result.assignment).feedback_rounds
    now = datetime.datetime.now(datetime.UTC)
    number, withheld = None, False
    if not final:
        rounds = feedback_rounds(course, result.assignment, result.student)
        keys = [r.get("key") for r in rounds if isinstance(r, dict)]
        key = _submission_key(course, result)
        if key in keys:
            number = keys.index(key) + 1
        else:
            number = len(rounds) + 1
            rounds.append({"key": key, "time": now.isoformat(timespec="seconds"), "score": result.score,
                           "withheld": cap is not None and number > cap})
            path = _rounds_file(course, result.assignment, result.student)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_json(path, rounds)
        withheld = cap is not None and number > cap
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(pathlib.Path(__file__).with_name("templates")),
        autoescape=True,
    )
    html = env.get_template("feedback.html.j2").render(
        result=result,
        public={q.grade_id: by_id[q.grade_id].public_source.strip() if by_id[q.grade_id].autograded_test else ""
                for q in result.questions},
        generated=now.strftime("%Y-%m-%d %H:%M UTC"),
        round=number,
        cap=cap,
        withheld=withheld,
        final=final,
    )
    path = course.feedback / result.student / result.assignment / "feedback.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path


def export_csv(course: Course, assignment: str, path: pathlib.Path | None = None) -> pathlib.Path:
    """One row per student: each question's score from the gradebook, the total and the maximum. In an
    assignment with questions graded by hand, a question without any score yet (not graded in the formgrader)
    is left empty and named in the last column, ``awaiting_grade``: while it is not empty, the student's score
    is provisional."""
    import csv

    _, trusted = read_source(course.source_notebook(assignment))
    graded = [c for c in trusted if c.grade]
    scores = gradebook_scores(course, assignment)
    # only an assignment with questions graded by hand has questions left without any score (opening the
    # gradebook again costs nbgrader's alembic check, about a second)
    awaiting = gradebook_awaiting(course, assignment) if any(not c.autograded_test for c in graded) else {}
    path = path or course.build / "grades" / f"{assignment}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    # errors=: a student id that UTF-8 cannot write (a folder made by hand) is written escaped, not a crash
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "assignment", *[c.grade_id for c in graded], "score", "max_score",
                         "awaiting_grade"])
        for student in sorted(scores):
            waiting = awaiting.get(student, [])
            row = [scores[student].get(c.grade_id, 0.0) for c in graded]
            shown = ["" if c.grade_id in waiting else value for c, value in zip(graded, row, strict=True)]
            writer.writerow([student, assignment, *shown, sum(row), sum(c.points for c in graded), " ".join(waiting)])
    return path


CANVAS_ID_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def export_canvas(course: Course, assignment: str, path: pathlib.Path | None = None,
                  roster: pathlib.Path | None = None, column: str | None = None) -> tuple[pathlib.Path, list[str]]:
    """The assignment's totals as a CSV that Canvas' gradebook imports (Grades > Import).

    Canvas matches rows by ``ID`` (its user id, which is what its submission downloads put in file names),
    ``SIS User ID`` or ``SIS Login ID``. With ``roster`` (a gradebook export from Canvas) each student's
    identity columns are copied from the row whose ID, SIS User ID or SIS Login ID equals the student id;
    ``column`` names the assignment's column there (Canvas writes ``hw1 (12345)``; default: the assignment).

    Returns the path and the student ids that the roster does not know (they are left out, never guessed).
    """
    import csv

    _, trusted = read_source(course.source_notebook(assignment))
    possible = sum(c.points for c in trusted if c.grade)
    scores = gradebook_scores(course, assignment)
    people: dict[str, dict[str, str]] = {}
    if roster is not None:
        try:
            with pathlib.Path(roster).open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in ("Student", "ID") if c not in (reader.fieldnames or [])]
                if missing:
                    raise CourseError(f"{roster}: not a Canvas gradebook export (no column {missing[0]!r}); "
                                      "export it from Canvas: Grades > Export > Export Entire Gradebook")
                for row in reader:
                    if (row.get("Student") or "").strip() in ("", "Points Possible", "Test Student"):
                        continue
                    for key in ("ID", "SIS User ID", "SIS Login ID"):
                        if (row.get(key) or "").strip():
                            people.setdefault(row[key].strip(), row)
        except OSError as exc:
            raise CourseError(f"cannot read the Canvas roster {roster}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise CourseError(f"the Canvas roster {roster} is not UTF-8 text (byte {exc.start}): export it from "
                              "Canvas again (Grades > Export > Export Entire Gradebook) and use that file") from None
        except csv.Error as exc:
            raise CourseError(f"the Canvas roster {roster} is not a readable CSV file ({exc}): export it from "
                              "Canvas again (Grades > Export > Export Entire Gradebook) and use that file") from None
    unknown = []
    path = path or course.build / "grades" / f"{assignment}-canvas.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    column = column or assignment
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CANVAS_ID_COLUMNS, column])
        writer.writerow(["Points Possible", "", "", "", "", f"{possible:g}"])
        for student in sorted(scores):
            total = f"{sum(scores[student].values()):g}"
            if roster is None:
                writer.writerow([student, student, "", "", "", total])
            elif student in people:
                row = people[student]
                writer.writerow([*(row.get(c, "") for c in CANVAS_ID_COLUMNS), total])
            else:
                unknown.append(student)
    return path, unknown


def format_table(results: list[Result]) -> str:
    """A fixed-width grade table for the terminal. A question graded by hand without a grade yet shows as
    ``pend`` and makes the total provisional (``12+?/20``); one with a grade shows that grade."""
    if not results:
        return "(no results)"
    ids = list(dict.fromkeys(q.grade_id for r in results for q in r.questions))  # results may differ in questions
    names = {id(r): printable(r.student, limit=40) for r in results}  # folder names: the student's text
    width = max(len("student"), *map(len, names.values()))
    heads = [f"Q{i + 1}" for i in range(len(ids))]
    lines = [f"{'student':<{width}}  " + " ".join(f"{h:>5}" for h in heads) + "  total    flags"]
    for r in results:
        pts = {q.grade_id: q.points for q in r.questions}
        waiting = set(r.pending)
        cells = " ".join(f"{'pend':>5}" if g in waiting else f"{pts.get(g, 0):>5g}" for g in ids)
        flags = printable(", ".join(r.flags), limit=200)
        total = f"{r.score:g}+?" if waiting else f"{r.score:g}"
        lines.append(f"{names[id(r)]:<{width}}  {cells}  {total:>4}/{r.max_score:<4g} {flags}")
    legend = ", ".join(f"{h}={printable(g, limit=60)}" for h, g in zip(heads, ids, strict=True))
    pending = sum(1 for r in results if r.pending)
    assignment = printable(results[0].assignment, limit=60)
    note = [f"(pend: graded by hand, no grade yet; {pending} of {len(results)} totals are provisional. Grade them "
            f"in the formgrader; adl-grade rubric {assignment} prints the rubric)"] if pending else []
    return "\n".join(lines + [f"({legend})"] + note)


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]()!|~:"})


def _md(text: object, limit: int = 400) -> str:
    """Student-derived text as inert Markdown: controls escaped and the length bounded (``printable``),
    line breaks as spaces, Markdown's link, image, emphasis and table characters (and the ``:`` and
    ``www.`` of a bare link) backslash-escaped, and ``& < > " '`` as HTML entities, so a name or a note
    renders as the text it is and never as a tag, a link or an image.

    Example:
        >>> _md("[x](javascript:alert(1)) <img src=x>")
        '\\\\[x\\\\]\\\\(javascript\\\\:alert\\\\(1\\\\)\\\\) &lt;img src=x&gt;'
    """
    text = printable(" ".join(str(text).split()), limit)
    text = re.sub(r"(?i)(www)\.", r"\1\\.", text.translate(_MARKDOWN_SPECIAL))
    return html.escape(text, quote=True)


def write_report(course: Course, assignment: str, results: list[Result]) -> pathlib.Path:
    """report.md with per-question pass rates, the score distribution (PNG) and the flagged submissions.
    Every string that comes from a submission passes through ``_md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    outdir = course.build / "report" / assignment
    outdir.mkdir(parents=True, exist_ok=True)
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(scores, bins=min(100, max(1, int(max_score)) + 1), range=(-0.5, max_score + 0.5), color="#3b6ea5",
            rwidth=0.9)
    ax.set_xlabel(f"score (out of {max_score:g})")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{assignment}: score distribution (n={len(results)})")
    fig.tight_layout()
    fig.savefig(outdir / "score_distribution.png", dpi=120)
    plt.close(fig)

    lines = [f"# {assignment}: autograding report", "", f"{len(results)} submissions, "
             f"mean {sum(scores) / max(1, len(scores)):.2f} / {max_score:g}.", "",
             "## Pass rate per question", "", "| question | points | passed | pass rate |", "|---|---|---|---|"]
    questions = {q.grade_id: q for r in results for q in r.questions}  # by id: results may differ in questions
    statuses = [{q.grade_id: q.status for q in r.questions} for r in results]
    provisional = sum(1 for r in results if r.pending)
    if provisional:
        lines[4:4] = [f"Provisional: {provisional} of {len(results)} submissions have questions graded by hand "
                      "without a grade yet (counted as 0 here and in the histogram); grade them in the formgrader "
                      f"(`adl-grade rubric {assignment}` prints the rubric) and run the report again.", ""]
    for gid, q in questions.items():  # grade ids come from the source notebook, never from a submission
        if q.manual:
            given = [p.points for r in results for p in r.questions if p.grade_id == gid and p.status == GRADED_BY_HAND]
            waiting = sum(1 for status in statuses if status.get(gid) == PENDING)
            mean = f" (mean {sum(given) / len(given):.2f})" if given else ""
            blank = sum(1 for status in statuses if status.get(gid) == "failed")
            lines.append(f"| {gid} | {q.max_points:g} | graded by hand: {len(given)} graded{mean}, {waiting} "
                         f"awaiting a grade, {blank} not answered or not graded (0) | |")
            continue
        passed = sum(1 for status in statuses if status.get(gid) == "passed")
        lines.append(f"| {gid} | {q.max_points:g} | {passed}/{len(results)} | {passed / len(results):.0%} |")
    lines += ["", "## Score distribution", "", "![score distribution](score_distribution.png)", "",
              "## Flagged submissions", ""]
    flagged = [r for r in results if r.flags]
    lines += [f"- **{_md(r.student, 80)}** ({r.score:g}/{r.max_score:g}): {_md(', '.join(r.flags))}. "
              + " ".join(_md(n.rstrip(".") + ".") for n in r.notes)
              for r in flagged]
    if not flagged:
        lines.append("none")
    (outdir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return outdir / "report.md"


def timed(label: str):
    """Context manager printing how long a step took."""
    class _T:
        def __enter__(self):
            self.t = time.perf_counter()
            return self

        def __exit__(self, *exc):
            print(f"  {label}: {time.perf_counter() - self.t:.1f} s")

    return _T()
