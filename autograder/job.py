"""The job: everything the pipeline tells a worker process about one submission, and its JSON form.

The pipeline (:func:`autograder.pipeline.grade_one`) builds a :class:`Job`, writes it into the submission's
private folder (``Job.write``), and hands the path to a worker; the worker reads it back with
:meth:`Job.read`, which refuses a file with a missing, unknown or mistyped field, naming it. The worker is
the grader's own process, so the file is trusted; the checks catch a grader and worker out of step (an old
worker process, a job written by hand in a test).

The environment of what runs near student code is decided here and only here: the kernel gets
:data:`KERNEL_ENV_KEEP` of the grader's environment plus its own settings (:func:`kernel_env`), the model
evaluator a subset of that (:data:`EVALUATOR_ENV_KEEP`), the trusted tests in the worker the course's data
settings (:func:`grader_env`). Nothing else of the grader's (the gradebook's URL, tokens, the instructor's
HOME) reaches them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import types
import typing

from autograder.course import AssignmentSettings, Course
from autograder.files import write_json
from autograder.sandbox import Limits, parse_size

# Environment variables the grading kernel inherits from the grader; everything else stays behind.
KERNEL_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "ADL_DATA_MIRROR", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")
# Those of the kernel's variables the model evaluator gets (it reads no data and imports only from the grader's
# installation).
EVALUATOR_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "TF_CPP_MIN_LOG_LEVEL")


class JobError(ValueError):
    """A job file the worker cannot use: not JSON, or a field missing, unknown or of the wrong type."""


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    """How the submission's kernel is confined (see :class:`autograder.sandbox.Sandbox`)."""

    slot: int  # the grading slot leased for this submission (autograder.uids): its users run the kernel, evaluator
    memory: int = Limits.memory  # bytes of address space, /tmp, /dev/shm and its folder together
    processes: int = Limits.processes  # processes and threads of the kernel's user
    disk: int = Limits.disk  # bytes the kernel may write into its folder
    files: int = Limits.files  # files and folders it may make there
    tmp_size: int = Limits.tmp_size  # bytes of each of its private /tmp and /dev/shm
    readonly: tuple[str, ...] = ()  # extra read-only paths (the data mirror)
    enabled: bool = True  # False: no bubblewrap (the assignment's ``sandbox: false``)


@dataclasses.dataclass(frozen=True)
class Job:
    """One submission to grade. Paths are absolute; times in seconds; sizes in bytes."""

    workdir: str  # the kernel's working folder (its HOME): the only place it writes
    notebook: str  # the restored notebook with the instructor's tests, outside the kernel's reach
    executed: str  # where the worker writes the executed notebook
    result: str  # where the worker writes its run (JSON: cells, events, restarts, elapsed)
    cell_timeout: float
    notebook_timeout: float
    env: dict[str, str]  # the kernel's environment (kernel_env)
    sandbox: SandboxSpec | None = None  # None: no sandbox at all (tests of the worker alone)
    control: str | None = None  # files the grader writes for the kernel (read-only to it)
    grader_env: dict[str, str] = dataclasses.field(default_factory=dict)  # the trusted tests' data settings
    output_limit: int = 2**20  # bytes of output one cell may keep
    notebook_output_limit: int = 16 * 2**20  # bytes of output the notebook may keep
    grader_memory: int | None = None  # headroom of the worker's own address space (None: no limit)
    scratch: str | None = None  # the submission's grading folder (the evaluator's folder goes there)
    log: str | None = None  # the submission's log (the kernel's stderr, the worker's notes)
    preload: tuple[str, ...] = ()  # modules the kernel imports before the student's code: forked from a template

    def evaluator_env(self) -> dict[str, str]:
        """The model evaluator's environment: :data:`EVALUATOR_ENV_KEEP` of the kernel's."""
        return {k: v for k, v in self.env.items() if k in EVALUATOR_ENV_KEEP}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Job:
        """The job in ``data`` (as :meth:`to_json` gives it); JobError naming the first field that is wrong."""
        fields = _typed(cls, data, "job")
        if fields.get("sandbox") is not None:
            fields["sandbox"] = SandboxSpec(**_typed(SandboxSpec, fields["sandbox"], "job.sandbox"))
        return cls(**fields)

    def write(self, path: pathlib.Path) -> None:
        write_json(path, self.to_json(), indent=None)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Job:
        try:
            data = json.loads(pathlib.Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise JobError(f"cannot read the job {path}: {exc}") from None
        return cls.from_json(data)


def _typed(cls, data: object, where: str) -> dict:
    """``data``'s fields for dataclass ``cls``, each checked against its annotation."""
    if not isinstance(data, dict):
        raise JobError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise JobError(f"{where}: unknown field {unknown[0]!r} (a worker older or newer than the grader?)")
    out = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise JobError(f"{where}: the field {name!r} is missing")
            continue
        value = data[name]
        if not _fits(value, hints[name]):
            raise JobError(f"{where}.{name}: {value!r:.80} is not of type {hints[name]}")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _fits(value: object, hint) -> bool:
    """Whether JSON-decoded ``value`` fits the annotation ``hint`` (the few forms a job uses)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return type(value) in (int, float)
    if hint in (int, str, bool):
        return type(value) is hint
    if origin is dict:
        return isinstance(value, dict) and all(type(k) is str and type(v) is str for k, v in value.items())
    if origin is tuple:
        return isinstance(value, list | tuple) and all(_fits(v, args[0]) for v in value)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    raise TypeError(f"no check for the annotation {hint}")


def mirror() -> pathlib.Path | None:
    """The read-only data mirror (``$ADL_DATA_MIRROR``), if it names a folder."""
    path = os.environ.get("ADL_DATA_MIRROR")
    return pathlib.Path(path).resolve() if path and pathlib.Path(path).is_dir() else None


def kernel_env(profile: str, workdir: pathlib.Path) -> dict[str, str]:
    """The grading kernel's environment: :data:`KERNEL_ENV_KEEP` of the grader's, its own HOME and caches."""
    env = {k: os.environ[k] for k in KERNEL_ENV_KEEP if k in os.environ}
    data = mirror()
    if data:
        env["ADL_DATA_MIRROR"] = str(data)
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


def grader_env(course: Course, profile: str) -> dict[str, str]:
    """The data settings of the trusted tests in the worker: the same profile as the kernel, the course's
    own cache (never a file the student's code could have written)."""
    env = {"ADL_PROFILE": profile, "ADL_DATA_DIR": str(course.build / "data-cache"), "MPLBACKEND": "Agg"}
    data = mirror()
    if data:
        env["ADL_DATA_MIRROR"] = str(data)
    return env


def kernel_limits(settings: AssignmentSettings) -> Limits:
    """The resource limits of an assignment's grading kernels, from its settings (assignments.yml)."""
    return Limits(
        memory=parse_size(settings.memory_limit),
        processes=settings.max_processes,
        disk=parse_size(settings.disk_limit),
        files=settings.max_files,
        tmp_size=parse_size(settings.tmp_size),
    )


def submission_job(
    course: Course, assignment: str, student: str, base: pathlib.Path, slot: int, outdir: pathlib.Path
) -> Job:
    """The job of one submission prepared in ``base`` (see :func:`autograder.folders.prepare_submission_folder`),
    graded in grading slot ``slot``, its executed notebook and run written to ``outdir``."""
    settings = course.settings(assignment)
    limits = kernel_limits(settings)
    home, data = base / "home", mirror()
    return Job(
        workdir=str(home),
        notebook=str(base / "private" / settings.notebook),
        executed=str(outdir / settings.notebook),
        result=str(outdir / "run.json"),
        cell_timeout=settings.cell_timeout,
        notebook_timeout=settings.notebook_timeout,
        env=kernel_env(settings.profile, home),
        sandbox=SandboxSpec(
            slot=slot,
            memory=limits.memory,
            processes=limits.processes,
            disk=limits.disk,
            files=limits.files,
            tmp_size=limits.tmp_size,
            readonly=(str(data),) if data else (),
            enabled=settings.sandbox,
        ),
        control=str(base / "control"),
        grader_env=grader_env(course, settings.profile),
        output_limit=parse_size(settings.output_limit),
        notebook_output_limit=parse_size(settings.notebook_output_limit),
        grader_memory=parse_size(settings.grader_memory),
        scratch=str(base),
        log=str(course.build / "logs" / assignment / f"{student}.log"),
        preload=settings.preload,
    )
