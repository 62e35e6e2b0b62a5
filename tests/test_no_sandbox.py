"""Grading without bubblewrap (a laptop, a fresh Debian machine): the hw1 sample class still gets its expected
grades, adl-grade says what is not enforced, and a kernel that cannot start stops grading before it begins.

bubblewrap is hidden from the grader and from the workers it starts by a PATH without it (CI installs it).
Only the submissions whose grade depends on how the kernel runs are graded: the correct one and the attacks
on the kernel's process. The attacks on the course's files are graded only inside bubblewrap (the demo and
tests/test_autograder.py skip them too): without it each would succeed.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile

import pytest
from helpers import scratch_course

from autograder import cli, host, pipeline, preflight, processes
from autograder.course import CourseError, load_course
from autograder.expected import needs_sandbox, read_expected

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "autograder" / "samples" / "hw1"
TEST_CELL_TIMEOUT = 20  # as in tests/test_autograder.py: s21's endless loop holds a worker this long
GRADED = [
    "s01_alice",  # correct: 14
    "s16_victor",  # a patched kernel stops answering: 4, kernel tampered
    "s21_uma",  # a loop that ignores SIGINT: the kernel is restarted (through the same wrapper): 12
    "s22_peggy",  # os._exit: 11, kernel died
    "s23_rupert",  # a segmentation fault: 10, kernel died
    "s24_sybil",  # a memory bomb: the address-space limit holds: 10
    "s25_ted",  # a fork bomb: the process limit of the kernel's user holds: 11
    "s29_sam",  # detects the grader (no network, or the smoke profile): the tests do not run in his kernel: 6
]
# What only the sandbox stops, and what each would do to this checkout without it: not graded without it.
ONLY_THE_SANDBOX_STOPS = {
    "s18_xavier": "reads the instructor's source notebooks and runs their solutions",
    "s19_yvonne": "sets every score in the gradebook files it finds to 100",
    "s20_zack": "overwrites the instructor's test cells and the grader's code with `pass`",
}


def _path_without_bwrap(folder: pathlib.Path) -> str:
    """A folder of links to every program on this PATH but bwrap."""
    for entry in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(entry):
            continue
        for program in os.scandir(entry):
            if program.name != "bwrap" and not os.path.lexists(folder / program.name):
                (folder / program.name).symlink_to(program.path)
    return str(folder)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """(course, {student: Result}) for GRADED, graded with bubblewrap out of sight."""
    tmp = tmp_path_factory.mktemp("course")
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", _path_without_bwrap(tmp_path_factory.mktemp("bin")))
    scratch_course(tmp, ["hw1"], mp, cell_timeout=TEST_CELL_TIMEOUT)
    processes.shutdown()  # a worker looks for bubblewrap on its own PATH: start them with this one
    host.bwrap_problem.cache_clear()
    try:
        course = load_course(tmp)
        assert not preflight.sandbox_isolated(course, "hw1")
        pipeline.release(course, "hw1")
        download = tmp / "download"
        download.mkdir()
        for student in GRADED:
            shutil.copy(SAMPLES / f"{student}_hw1.ipynb", download)
        assert pipeline.collect(course, "hw1", download).rejected == []
        results = pipeline.autograde(course, "hw1", workers=2, progress=False)
        yield course, {r.student: r for r in results}
    finally:
        processes.shutdown()
        mp.undo()
        host.bwrap_problem.cache_clear()


def test_sample_class_gets_expected_grades_without_bubblewrap(graded):
    _, results = graded
    expected = read_expected(SAMPLES)
    assert sorted(results) == GRADED
    for student, result in results.items():
        exp = expected[student]
        got = {q.grade_id: q.points for q in result.questions if not q.manual}  # hand-graded: in "manual"
        assert got == {k: float(v) for k, v in exp["points"].items()}, (student, result.questions, result.flags)
        assert [q.grade_id for q in result.questions if q.status == "pending"] == exp["manual"], student
        assert result.flags == exp["flags"], (student, result.flags, result.notes)


def test_only_the_attacks_on_the_course_need_the_sandbox():
    expected = read_expected(SAMPLES)
    assert {s for s, e in expected.items() if e["needs_sandbox"]} == set(ONLY_THE_SANDBOX_STOPS)
    assert needs_sandbox(SAMPLES) == tuple(f"{s}_hw1.ipynb" for s in sorted(ONLY_THE_SANDBOX_STOPS))


def test_adl_grade_says_what_is_not_enforced(graded, capsys):
    course, _ = graded
    assert cli.main(["--course", str(course.root), "autograde", "hw1", "--student", "s01_alice"]) == 0  # cached
    out = capsys.readouterr().out
    assert "sandbox: NOT ISOLATED (bubblewrap (bwrap) is not installed): the kernel can read" in out
    assert "use the network" in out and "apt-get install bubblewrap" in out
    assert "s01_alice" in out and "14+?/17" in out  # question 8 awaits a hand grade


def test_a_kernel_that_cannot_start_stops_grading_before_it_begins(graded, monkeypatch, capsys):
    """The grader probes the kernel (and the model evaluator) once before grading: a Python the kernel's user
    cannot execute is an error that says so, not a 0 for every question of every submission."""
    course, _ = graded
    before = {p: p.stat().st_mtime_ns for p in course.autograded.glob("*/hw1/result.json")}
    locked = pathlib.Path(tempfile.mkdtemp())
    try:
        (locked / "python").symlink_to(sys.executable)
        locked.chmod(0)  # no one but root's privileges may enter: not the kernel's user, not the grader's own
        monkeypatch.setattr(sys, "executable", str(locked / "python"))
        with pytest.raises(CourseError, match="cannot be graded on this machine") as refused:
            pipeline.autograde(course, "hw1", ["s01_alice"], force=True, progress=False)
        assert cli.main(["--course", str(course.root), "autograde", "hw1", "--force"]) == 1
    finally:
        locked.chmod(0o700)
        shutil.rmtree(locked)
    message = str(refused.value)
    assert f"the kernel: {locked / 'python'} -c 'import ipykernel' fails as" in message
    assert "Permission denied" in message
    if os.geteuid() == 0:
        assert "apt-get install bubblewrap" in message
    assert "cannot be graded on this machine" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in course.autograded.glob("*/hw1/result.json")} == before
