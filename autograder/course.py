"""The course on disk: nbgrader's configuration, the assignments and their grading settings.

A course's grading settings are read once, when the course is loaded, from ``<course root>/assignments.yml``
if the course has one, else from the defaults this package ships (``autograder/assignments.yml``). A course
of its own (a scratch course in a test, another semester's folder) changes a timeout by writing its own file.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from autograder.late import LatePolicy

SETTINGS_FILE = pathlib.Path(__file__).with_name("assignments.yml")  # the defaults this package ships
COURSE_SETTINGS = "assignments.yml"  # a course's own, in its root: used instead of SETTINGS_FILE when present


class CourseError(RuntimeError):
    """The course directory or its configuration is not usable; the message says how to fix it."""


# When a student's feedback shows why hidden tests failed (the public checks are always shown; hidden test code never):
HIDDEN_RESULTS = {
    "always": "at once, in every feedback",
    "after_due": "after the student's due date (an extension included; at once without a due date), or when released",
    "on_release": "only when the instructor releases them: adl-grade feedback --final",
}
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")  # a module to import: tensorflow, keras.layers


@dataclasses.dataclass(frozen=True)
class AssignmentSettings:
    """How one assignment is graded (see autograder/assignments.yml)."""

    name: str
    notebook: str
    profile: str = "smoke"
    cell_timeout: float = 30.0
    notebook_timeout: float = 600.0
    data_files: tuple[str, ...] = ()
    memory_limit: str = "5G"  # the kernel's address space + its /tmp and /dev/shm + its folder (disk_limit)
    disk_limit: str = "512M"  # bytes in the submission's folder
    max_files: int = 10_000  # files and folders in the submission's folder
    tmp_size: str = "256M"  # each of /tmp and /dev/shm in the sandbox (memory: counted in memory_limit)
    output_limit: str = "1M"  # output one cell keeps in the executed notebook
    notebook_output_limit: str = "16M"  # output the whole executed notebook keeps
    grader_memory: str = "3G"  # address space the grader's worker may add while grading one submission
    max_processes: int = 256  # processes and threads of the grading kernel's user
    sandbox: bool = True  # bubblewrap isolation (resource limits apply either way)
    feedback_rounds: int | None = None  # feedback on at most this many different submissions; None: no cap
    preload: tuple[str, ...] = ()  # modules every grading kernel has imported before the student's code runs
    # Applied to a graded result, never part of grading it: out of the repr, so out of a result's cache key
    due: datetime.datetime | None = dataclasses.field(default=None, repr=False, compare=False)
    late_policy: LatePolicy | None = dataclasses.field(default=None, repr=False, compare=False)
    hidden_results: str = dataclasses.field(default="after_due", repr=False, compare=False)  # see HIDDEN_RESULTS


@dataclasses.dataclass(frozen=True)
class Course:
    """Paths of a course kit checkout, as nbgrader_config.py sets them."""

    root: pathlib.Path
    course_id: str
    source: pathlib.Path
    release: pathlib.Path
    submitted: pathlib.Path
    autograded: pathlib.Path
    feedback: pathlib.Path
    db_url: str
    settings_file: pathlib.Path = SETTINGS_FILE
    # settings_file, parsed (by default the package's, as settings_file)
    settings_doc: dict = dataclasses.field(
        default_factory=lambda: read_settings_file(SETTINGS_FILE), repr=False, compare=False
    )

    @property
    def build(self) -> pathlib.Path:
        return self.root / "build"

    def source_notebook(self, assignment: str) -> pathlib.Path:
        return self.source / assignment / self.settings(assignment).notebook

    def release_notebook(self, assignment: str) -> pathlib.Path:
        return self.release / assignment / self.settings(assignment).notebook

    def assignments(self) -> list[str]:
        """Assignments that have a folder in source/, sorted."""
        if not self.source.is_dir():
            return []
        return sorted(p.name for p in self.source.iterdir() if p.is_dir() and not p.name.startswith("."))

    def settings(self, assignment: str) -> AssignmentSettings:
        """How ``assignment`` is graded: its entry in the course's settings file over the defaults."""
        return merge_settings(assignment, self.settings_doc, self.settings_file)


def read_settings_file(path: pathlib.Path) -> dict:
    """The parsed settings file (``defaults:``, ``assignments:`` and any other section); CourseError if it cannot
    be read."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CourseError(f"cannot read grading settings {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CourseError(f"{path}: expected 'defaults:' and 'assignments:' sections, got {type(raw).__name__}")
    # sections other than these two are read by the modules they configure (e.g. ``email:``, autograder.mail)
    return {**raw, "defaults": raw.get("defaults") or {}, "assignments": raw.get("assignments") or {}}


def load_settings(assignment: str, path: pathlib.Path = SETTINGS_FILE) -> AssignmentSettings:
    """Grading settings of ``assignment`` in the settings file ``path``: its entry over the defaults."""
    return merge_settings(assignment, read_settings_file(path), path)


def merge_settings(assignment: str, raw: dict, path: pathlib.Path) -> AssignmentSettings:
    """``assignment``'s entry in the parsed settings ``raw`` over the file's and the built-in defaults, checked."""
    merged = {"notebook": f"{assignment}.ipynb", **raw.get("defaults", {})}
    merged.update(raw.get("assignments", {}).get(assignment) or {})
    known = {f.name for f in dataclasses.fields(AssignmentSettings)} - {"name"}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise CourseError(f"{path}: unknown setting(s) {unknown} for {assignment!r}; known: {sorted(known)}")
    merged["data_files"] = tuple(merged.get("data_files") or ())
    preload = merged.get("preload") or []
    if not isinstance(preload, list) or not all(isinstance(m, str) and MODULE_NAME.match(m) for m in preload):
        raise CourseError(
            f"{path}: preload for {assignment!r} must be a list of module names such as [tensorflow], got {preload!r}"
        )
    merged["preload"] = tuple(preload)
    for key in ("cell_timeout", "notebook_timeout"):
        value = merged.get(key)
        if not isinstance(value, (int, float)) or value <= 0:
            raise CourseError(f"{path}: {key} for {assignment!r} must be a positive number, got {value!r}")
    from autograder.sandbox import SandboxError, parse_size

    defaults = AssignmentSettings(name=assignment, notebook="")
    sizes = {}
    for key in ("memory_limit", "disk_limit", "tmp_size", "output_limit", "notebook_output_limit", "grader_memory"):
        try:
            sizes[key] = parse_size(merged.get(key, getattr(defaults, key)))
        except SandboxError as exc:
            raise CourseError(f"{path}: {key} for {assignment!r}: {exc}") from None
        if sizes[key] <= 0:
            raise CourseError(f"{path}: {key} for {assignment!r} must be more than 0 bytes")
    files = merged.get("max_files", defaults.max_files)
    if type(files) is not int or files < 100:
        raise CourseError(f"{path}: max_files for {assignment!r} must be a whole number of at least 100, got {files!r}")
    if sizes["notebook_output_limit"] < sizes["output_limit"]:
        raise CourseError(f"{path}: notebook_output_limit for {assignment!r} is smaller than output_limit")
    from autograder.sandbox import Limits

    try:
        Limits(memory=sizes["memory_limit"], disk=sizes["disk_limit"], files=files, tmp_size=sizes["tmp_size"]).check()
    except SandboxError as exc:
        raise CourseError(f"{path}: for {assignment!r}: {exc}") from None
    if not isinstance(merged.get("max_processes", 256), int) or merged.get("max_processes", 256) < 16:
        raise CourseError(f"{path}: max_processes for {assignment!r} must be an integer of at least 16")
    rounds = merged.get("feedback_rounds")
    if rounds is not None and (type(rounds) is not int or rounds < 1):
        raise CourseError(
            f"{path}: feedback_rounds for {assignment!r} must be a whole number of at least 1, or "
            f"null for no cap; got {rounds!r}"
        )
    from autograder.late import parse_policy, parse_time

    where = f"{path}: {assignment}"
    merged["due"] = None if merged.get("due") is None else parse_time(merged["due"], f"{where}: due")
    merged["late_policy"] = parse_policy(merged.get("late_policy"), where)
    if merged.get("hidden_results", "after_due") not in HIDDEN_RESULTS:
        raise CourseError(
            f"{where}: hidden_results must be one of {list(HIDDEN_RESULTS)}, got {merged.get('hidden_results')!r}"
        )
    return AssignmentSettings(name=assignment, **merged)


def load_course(root: str | pathlib.Path | None = None) -> Course:
    """Read ``nbgrader_config.py`` in ``root`` (default: the checkout this package lives in)."""
    from traitlets.config.loader import PyFileConfigLoader

    root = pathlib.Path(root) if root is not None else pathlib.Path(__file__).resolve().parent.parent
    config_file = root / "nbgrader_config.py"
    if not config_file.is_file():
        raise CourseError(f"no nbgrader_config.py in {root}: run adl-grade from the course kit's folder")
    config = PyFileConfigLoader(config_file.name, path=str(root)).load_config()
    cd = config.CourseDirectory
    base = pathlib.Path(cd.get("root", str(root)))

    def sub(name: str, default: str) -> pathlib.Path:
        return base / cd.get(name, default)

    settings_file = base / COURSE_SETTINGS if (base / COURSE_SETTINGS).is_file() else SETTINGS_FILE
    return Course(
        root=base,
        course_id=cd.get("course_id", "course"),
        source=sub("source_directory", "source"),
        release=sub("release_directory", "release"),
        submitted=sub("submitted_directory", "submitted"),
        autograded=sub("autograded_directory", "autograded"),
        feedback=sub("feedback_directory", "feedback"),
        db_url=cd.get("db_url", f"sqlite:///{base / 'gradebook.db'}"),
        settings_file=settings_file,
        settings_doc=read_settings_file(settings_file),
    )
