"""The instructor pipeline's steps: release, collect, and grading, one submission or many.

Each step is a function the CLI (``adl-grade``) calls and the tests call directly. One submission flows
through :func:`grade_one`: its notebook is validated and restored (:mod:`autograder.notebook`), a folder and a
grading slot are prepared (:mod:`autograder.folders`, :mod:`autograder.uids`), a :class:`~autograder.job.Job`
is handed to a worker process (:mod:`autograder.processes`, which runs :mod:`autograder.worker`), and the run it
writes is scored (:mod:`autograder.scoring`). :func:`autograde_all` schedules many, locally or on Dask, and
records each in the gradebook (:mod:`autograder.gradebook`); feedback, exports and reports are in
:mod:`autograder.reports`.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import pathlib
import subprocess
import sys

import nbformat

from autograder import gradebook, processes, uids
from autograder.course import Course, CourseError
from autograder.files import write_json
from autograder.folders import (
    new_submission_folder,
    prepare_submission_folder,
    remove_grading_folder,
)
from autograder.gradebook import tools_on_path
from autograder.ingest import Ingested, grading_tasks, ingest
from autograder.job import kernel_limits, submission_job
from autograder.notebook import GradeCell, InvalidNotebook, parse_submission, read_source, restore, unanswered
from autograder.preflight import sandbox_problem
from autograder.processes import kill_slot_users
from autograder.scoring import Result, failed, invalid, result_key, score_run

WORKER_GRACE = 120  # seconds on top of the notebook limit before a worker is killed outright
DASK_CONNECT_TIMEOUT = 30  # seconds to reach a Dask scheduler

log = logging.getLogger(__name__)


def release(course: Course, assignment: str) -> pathlib.Path:
    """Generate ``release/<assignment>`` from ``source/<assignment>`` with nbgrader (and register it in the
    gradebook). Returns the released notebook's path."""
    if not (course.source / assignment).is_dir():
        raise CourseError(f"release: no source folder {course.source / assignment}")
    tools_on_path()
    if course.db_url.startswith("sqlite:///"):
        pathlib.Path(course.db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=course.root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise CourseError(f"nbgrader generate_assignment {assignment} failed; its last lines:\n{tail}")
    return course.release_notebook(assignment)


def collect(
    course: Course,
    assignment: str,
    download: pathlib.Path,
    pattern: str | None = None,
    ignore: tuple[str, ...] = (),
    due: datetime.datetime | None = None,
) -> Ingested:
    """Copy an LMS download (a ``.zip`` or a folder of ``<student_id>_<assignment>.ipynb`` files) into
    nbgrader's ``submitted/<student_id>/<assignment>/`` layout; see :mod:`autograder.ingest`."""
    return ingest(course, assignment, pathlib.Path(download), pattern=pattern, due=due, ignore=ignore)


def grade_one(course: Course, assignment: str, student: str, force: bool = False) -> Result:
    """Grade one collected submission in its own worker process; cache the result by content hash."""
    settings = course.settings(assignment)
    source_path = course.source_notebook(assignment)
    _, trusted = read_source(source_path)
    sub_path = course.submitted / student / assignment / settings.notebook
    data = sub_path.read_bytes()
    key = result_key(data, source_path.read_bytes(), settings)
    outdir = course.autograded / student / assignment
    result_file = outdir / "result.json"
    cached = None if force else Result.read(result_file)
    if cached is not None and cached.key == key:
        return cached
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        submission = parse_submission(data)
    except InvalidNotebook as exc:
        result = invalid(student, assignment, trusted, str(exc), key)
        write_json(result_file, result.to_json())
        return result
    restored = restore(submission, trusted)
    blank = unanswered(restored.notebook, trusted)
    base = new_submission_folder(assignment)
    lease = uids.lease()
    try:
        kill_slot_users(lease.slot)  # a process of this slot's users left by a killed grader
        home, control, private = prepare_submission_folder(
            base, kernel_limits(settings), [course.source / assignment / name for name in settings.data_files]
        )
        nbformat.write(restored.notebook, str(private / settings.notebook))
        job = submission_job(course, assignment, student, base, lease.slot, outdir)
        job.write(private / "job.json")
        run = processes.run_job(
            private / "job.json", job, course.build / "logs", settings.notebook_timeout + WORKER_GRACE
        )
    finally:
        kill_slot_users(lease.slot)
        lease.release()
        remove_grading_folder(base)
    if run is None:
        cells = [{"grade_id": c.grade_id, "status": "skipped", "evalue": "grading did not finish"} for c in trusted]
        run = {"cells": cells, "elapsed": settings.notebook_timeout + WORKER_GRACE}
    result = score_run(student, assignment, trusted, run, key, blank)
    result.flags.extend(restored.flags)
    result.notes.extend(restored.notes)
    write_json(result_file, result.to_json())
    return result


def autograde(
    course: Course,
    assignment: str,
    students: list[str] | None = None,
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    dask: str | None = None,
) -> list[Result]:
    """Grade submissions in parallel and record each in the gradebook as it finishes.

    By default a local pool runs ``workers`` submissions at a time. With ``dask`` (a scheduler address such
    as ``tcp://10.0.0.5:8786``) the same :func:`grade_one` calls run as tasks on a Dask distributed
    cluster, whose workers must see the course folder at the same path (a shared file system). Either way
    the gradebook is written here, one submission at a time, so an interrupted batch keeps what finished.
    """
    return autograde_all(course, {assignment: students}, workers, force, progress, dask)[assignment]


def autograde_all(
    course: Course,
    batches: dict[str, list[str] | None],
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    dask: str | None = None,
    record: bool = True,
) -> dict[str, list[Result]]:
    """:func:`autograde` for several assignments at once, ``{assignment: students or None (all)}``, in one
    queue: a free worker takes the next submission whatever its assignment, so no worker waits for an
    assignment's slowest submission. Submissions start in the order given: put the slowest assignment first.

    One submission cannot stop the batch: if grading it raises (a bug in the grader, a file it cannot
    handle) or the gradebook refuses its result, the traceback is logged and the student gets a result
    flagged :data:`autograder.scoring.GRADER_FAILED` (every question "not graded", recorded as such where the gradebook
    allows), and the batch goes on. The caller decides what to make of such results (``adl-grade`` exits
    non-zero and names them).

    With ``record=False`` nothing is written to the gradebook (``adl-grade regrade`` shows the changes first).
    """
    from tqdm.auto import tqdm

    tasks = grading_tasks(course, batches)
    for assignment in batches if dask is None else ():  # a cluster's machines are not this one
        problem = sandbox_problem(course, assignment)
        if problem:
            raise CourseError(
                f"autograde: {assignment} cannot be graded on this machine, every question would score 0: {problem}"
            )
    results: dict[tuple[str, str], Result] = {}
    desc = f"grading {', '.join(batches)}"
    bar = tqdm(total=len(tasks), desc=desc, unit="nb", disable=not progress)
    try:
        for result in _grade_all(course, tasks, workers, force, dask):
            try:
                if record:
                    gradebook.record(course, result)
            except Exception as exc:  # noqa: BLE001 - one student's row must not stop the others'
                log.exception("%s/%s: the gradebook did not take the result", result.assignment, result.student)
                result = failed(result.student, result.assignment, _trusted(course, result.assignment), exc)
            results[result.assignment, result.student] = result
            bar.update()
    finally:
        bar.close()
    return {a: [results[a, s] for a2, s in tasks if a2 == a] for a in batches}


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
        futures = client.map(
            grade_one,
            [course] * len(tasks),
            [a for a, _ in tasks],
            [s for _, s in tasks],
            [force] * len(tasks),
            pure=False,
            key=[f"grade-{a}-{s}" for a, s in tasks],
        )
        by_key = {f.key: task for f, task in zip(futures, tasks, strict=True)}
        for future in as_completed(futures):
            yield _outcome(course, future, *by_key[future.key])


def _outcome(course: Course, future, assignment: str, student: str) -> Result:
    """A finished grading task's result; if it raised, a :func:`_failed` result and the traceback in the log."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - any bug of the grader's, for this submission only
        log.error("%s/%s: the grader failed; the student is recorded as not graded", assignment, student, exc_info=exc)
        return failed(student, assignment, _trusted(course, assignment), exc)


def _trusted(course: Course, assignment: str) -> list[GradeCell]:
    """The source notebook's nbgrader cells, or [] if even that cannot be read (a failed result then lists
    no questions)."""
    try:
        return read_source(course.source_notebook(assignment))[1]
    except Exception:  # noqa: BLE001
        log.exception("%s: cannot read the source notebook", assignment)
        return []
