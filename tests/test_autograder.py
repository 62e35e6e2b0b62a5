"""The instructor pipeline on a scratch copy of the course: release, collect, grade, record, feedback,
export, report. One module-scoped batch grades, per assignment, the solution, the blank release and the
bundled sample class; the tests then assert on it."""

from __future__ import annotations

import csv
import html as html_mod
import json
import pathlib
import shutil

import nbformat
import pytest
from helpers import hidden_test_lines, scratch_course, stale_release

from autograder import cli, gradebook, pipeline, preflight, reports
from autograder.course import CourseError, load_course, load_settings
from autograder.notebook import InvalidNotebook, parse_submission, read_source, restore

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "autograder" / "samples"
# The pipeline is tested on hw1 and its sample class of attacks; tests/test_assignments.py grades the other
# assignments (solution, blank release, wrong-answer cases).
ASSIGNMENTS = ["hw1"]
TEST_CELL_TIMEOUT = 20


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("course")
    mp = pytest.MonkeyPatch()
    # hw1's cells take about a second; the sample class's three endless loops each hold a worker (and burn a
    # core) until the cell timeout, 30 s in assignments.yml. The tests check what a timeout costs, not its
    # length, so they grade this course with 20 s (the slowest ordinary cell of the class, s15's, takes about
    # 9 s). Other courses (the killed batch's, graded by a CLI process too) keep assignments.yml's settings.
    scratch_course(tmp, ASSIGNMENTS, mp, cell_timeout=TEST_CELL_TIMEOUT)
    c = load_course(tmp)
    for a in ASSIGNMENTS:
        pipeline.release(c, a)
    yield c
    mp.undo()


def _unsafe(assignment: str) -> set[str]:
    """Sample files that attack the course's files: graded only inside the sandbox (else they would succeed)."""
    from autograder.expected import read_expected

    return {e["file"] for e in read_expected(SAMPLES / assignment).values() if e.get("needs_sandbox")}


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    """{assignment: {student: Result}} for solution, blank and the sample class."""
    out = {}
    for a in ASSIGNMENTS:
        download = tmp_path_factory.mktemp(f"download-{a}")
        shutil.copy(course.source_notebook(a), download / f"solution_{a}.ipynb")
        shutil.copy(course.release_notebook(a), download / f"blank_{a}.ipynb")
        if (SAMPLES / a).is_dir():
            unsafe = _unsafe(a) if not preflight.sandbox_isolated(course, a) else set()
            for nb in (SAMPLES / a).glob(f"*_{a}.ipynb"):
                if nb.name not in unsafe:
                    shutil.copy(nb, download / nb.name)
        got = pipeline.collect(course, a, download)
        assert got.rejected == []
        results = pipeline.autograde(course, a, workers=2, progress=False)
        out[a] = {r.student: r for r in results}
    return out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(course, assignment):
    problems = stale_release(course, assignment, ROOT)
    assert problems == [], f"release/{assignment} is stale: run 'make release' and commit it ({problems})"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_blank_zero(course, graded, assignment):
    solution, blank = graded[assignment]["solution"], graded[assignment]["blank"]
    auto = [q for q in solution.questions if not q.manual]  # questions graded by hand wait for the formgrader
    assert solution.max_score > 0
    assert all(q.points == q.max_points for q in auto), [q for q in auto if q.status != "passed"]
    assert solution.pending == [q.grade_id for q in solution.questions if q.manual]
    assert blank.pending == []  # an answer handed in as released scores 0, as in nbgrader
    assert solution.flags == []
    run = json.loads((course.autograded / "solution" / assignment / "run.json").read_text())
    failing = [
        (c["index"], c.get("grade_id"), c["status"], c.get("evalue")) for c in run["cells"] if c["status"] != "ok"
    ]
    assert failing == [], f"the solution notebook has failing cells (nbval does not run source/): {failing}"
    assert all(q.points == 0 and q.status == "failed" for q in blank.questions), blank.questions
    assert blank.score == 0


@pytest.mark.parametrize("assignment", [a for a in ASSIGNMENTS if (SAMPLES / a / "expected.json").is_file()])
def test_sample_class_gets_expected_grades(graded, assignment):
    from autograder.expected import read_expected, read_manual_points

    students = read_expected(SAMPLES / assignment)
    by_hand = list(read_manual_points(SAMPLES / assignment))
    assert len(students) >= 12
    for student, exp in students.items():
        if student not in graded[assignment]:
            assert exp["needs_sandbox"] and not preflight.sandbox_isolated(load_course(ROOT), assignment)
            continue
        result = graded[assignment][student]
        got = {q.grade_id: q.points for q in result.questions if not q.manual}
        assert got == {k: float(v) for k, v in exp["points"].items()}, (student, result.questions, result.flags)
        assert result.score == exp["total"], student  # a question graded by hand counts 0 until it has a grade
        assert result.flags == exp["flags"], (student, result.flags, result.notes)
        # answered questions graded by hand await the formgrader; unanswered ones (and a broken file) score 0
        assert result.pending == exp.get("manual", []), (student, [q for q in result.questions if q.manual])
        manual = [q for q in result.questions if q.manual]
        assert [q.grade_id for q in manual] == by_hand, student
        assert all(q.points == 0 for q in manual), student  # no hand grade yet: pending or unanswered, 0 either way


def test_gradebook_holds_the_grades_and_rerun_is_idempotent(course, graded):
    for a, results in graded.items():
        before = gradebook.scores(course, a)
        assert set(before) == set(results)
        for student, r in results.items():
            assert sum(before[student].values()) == r.score
        again = pipeline.autograde(course, a, workers=2, progress=False)  # cached: same key, no kernel
        assert all(x.elapsed == results[x.student].elapsed for x in again)
        for r in again:
            gradebook.record(course, r)
        assert gradebook.scores(course, a) == before


def test_feedback_never_shows_hidden_tests(course, graded):
    for a, results in graded.items():
        hidden = hidden_test_lines(course.source_notebook(a))
        assert hidden, f"{a} has no hidden tests"
        for r in results.values():
            html = reports.write_feedback(course, r).read_text()
            assert f"{r.score:g} / {r.max_score:g}" in html
            shown = {line.strip() for line in html_mod.unescape(html).splitlines()}
            leaked = [h for h in hidden if h in shown]
            assert leaked == [], (r.student, leaked)


def test_feedback_holds_nothing_the_students_code_wrote(course, graded):
    """s30 records every argument the tests send her functions and sends the record back in an exception's
    text, an exception's class name and a returned string. The grader's private record (run.json) shows
    that the attack carried hidden inputs out of the kernel; no student's feedback shows any of it, nor any
    comparison's printout (NumPy's ACTUAL/DESIRED lines hold a hidden test's expected values)."""
    run = json.loads((course.autograded / "s30_olga" / "hw1" / "run.json").read_text())
    carried = " ".join(str(c.get("evalue", "")) for c in run["cells"])
    assert "0.34558419" in carried  # an input of question 2's hidden test (default_rng(1).normal(...))
    for a, results in graded.items():
        written = "\n".join(c.source for c in read_source(course.source_notebook(a))[1])  # the instructor's words
        public = nbformat.read(str(course.release_notebook(a)), as_version=4)  # what every student has
        public = "\n".join(c.source for c in public.cells)
        for r in results.values():
            page = html_mod.unescape(reports.write_feedback(course, r).read_text())
            if not (course.autograded / r.student / a / "run.json").is_file():
                assert "invalid notebook" in r.flags, r.student  # refused before it ran
                continue
            run = json.loads((course.autograded / r.student / a / "run.json").read_text())
            for cell in run["cells"]:
                text = str(cell.get("evalue") or "").strip()
                if cell.get("ename") == "NameError":  # names a name of the public checks: tests/test_feedback.py
                    continue
                if not (cell.get("trusted") and cell["status"] == "error" and len(text) >= 12 and text not in written):
                    continue
                values = [text[:40]]
                if cell.get("message"):  # the instructor's words may be shown: what filled their {fields} may not
                    for part in str(cell["message"]).split("\u2026"):
                        text = text.replace(part.strip(), "\0") if part.strip() else text
                    values = [v.strip() for v in text.split("\0") if len(v.strip()) >= 6]
                for value in values:
                    if value in public:  # a literal of a public check (its code is on the page anyway)
                        continue
                    assert value not in page, (r.student, cell["grade_id"], value[:80])
            for word in ("0.34558419", "Seen_", "ACTUAL", "DESIRED", "Mismatched elements", "could not convert"):
                assert word not in page, (r.student, word)


def test_export_and_report(course, graded):
    for a, results in graded.items():
        path = reports.export_csv(course, a, course.build / "export.csv")
        rows = list(csv.DictReader(path.open()))
        assert {row["student_id"] for row in rows} == set(results)
        for row in rows:
            assert float(row["score"]) == results[row["student_id"]].score
        report = reports.write_report(course, a, list(results.values()))
        text = report.read_text()
        assert "Pass rate per question" in text and (report.parent / "score_distribution.png").stat().st_size > 1000
        assert "| " + results["solution"].questions[0].grade_id in text


# ------------------------------------------------------------------------------------- unit-level checks


def test_parse_submission_reasons():
    with pytest.raises(InvalidNotebook, match="not valid JSON"):
        parse_submission(b'{"cells": [')
    with pytest.raises(InvalidNotebook, match="not UTF-8"):
        parse_submission(b"\xff\xfe\x00")
    with pytest.raises(InvalidNotebook, match="no 'cells' list"):
        parse_submission(b"[1, 2]")
    with pytest.raises(InvalidNotebook, match="format is version 3"):
        parse_submission(json.dumps({"cells": [], "nbformat": 3}).encode())
    with pytest.raises(InvalidNotebook, match="does not follow the Jupyter format"):
        parse_submission(
            json.dumps({"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
        )
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["nbgrader"] = {"grade_id": "q1", "solution": True}
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 2", metadata={"nbgrader": {"grade_id": "q1"}})]
    with pytest.raises(InvalidNotebook, match=r"\['q1'\] appear more than once"):
        parse_submission(nbformat.writes(nb).encode())


def test_restore_uses_trusted_tests_and_keeps_answers():
    source, cells = read_source(ROOT / "source" / "hw1" / "hw1.ipynb")
    release = nbformat.read(str(ROOT / "release" / "hw1" / "hw1.ipynb"), as_version=4)
    tests = [c for c in cells if c.autograded_test]
    answers = [c for c in cells if c.solution]
    # the student answers one question, edits one test, deletes another and adds a scratch cell
    for cell in release.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == answers[0].grade_id:
            cell.source = "MY_ANSWER = 42"
        elif gid == tests[0].grade_id:
            cell.source = "pass  # nothing to see"
    release.cells = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") != tests[1].grade_id]
    release.cells.insert(3, nbformat.v4.new_code_cell("scratch = 1"))
    restored = restore(release, cells)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in restored.notebook.cells if "nbgrader" in c.metadata}
    assert by_id[answers[0].grade_id].source == "MY_ANSWER = 42"
    assert by_id[tests[0].grade_id].source == tests[0].source  # hidden tests back in
    assert by_id[tests[1].grade_id].source == tests[1].source
    assert "### BEGIN HIDDEN TESTS" in tests[0].source
    assert any(c.source == "scratch = 1" for c in restored.notebook.cells)
    assert f"test cell {tests[0].grade_id} was edited; the original test was used" in restored.notes
    assert f"test cell {tests[1].grade_id} was deleted; the original test was used" in restored.notes
    assert restored.flags == ["test deleted", "test edited"]
    assert restored.notebook.metadata["kernelspec"]["name"] == "python3"
    assert len(source.cells) + 1 == len(restored.notebook.cells)


def test_collect_rejects_unmatched_and_duplicate_names(course, tmp_path):
    download = tmp_path / "dl"
    download.mkdir()
    (download / "alice_hw1.ipynb").write_text("{}")
    (download / "notes.txt").write_text("x")
    (download / "bob_hw2.ipynb").write_text("{}")
    (download / "sub").mkdir()
    got = pipeline.collect(course, "hw1", download)
    assert sorted(got.accepted) == ["alice"]
    reasons = dict(got.rejected)
    assert "does not match" in reasons["notes.txt"] and "does not match" in reasons["bob_hw2.ipynb"]
    assert reasons["sub"] == "not a regular file"
    with pytest.raises(CourseError, match="neither a .zip file nor a folder"):
        pipeline.collect(course, "hw1", tmp_path / "missing")
    shutil.rmtree(course.submitted / "alice")


def test_settings_validation(tmp_path):
    bad = tmp_path / "a.yml"
    bad.write_text("defaults: {cell_timeout: 0}\n")
    with pytest.raises(CourseError, match="cell_timeout .* positive number, got 0"):
        load_settings("hw1", bad)
    bad.write_text("assignments: {hw1: {celltimeout: 3}}\n")
    with pytest.raises(CourseError, match=r"unknown setting\(s\) \['celltimeout'\]"):
        load_settings("hw1", bad)
    assert load_settings("hw1").notebook == "hw1.ipynb"


def test_cli_reports_errors(capsys, tmp_path):
    assert cli.main(["--course", str(tmp_path), "release"]) == 1
    assert "no nbgrader_config.py" in capsys.readouterr().err
    assert cli.main(["--course", str(ROOT), "release", "hw99"]) == 1
    assert "unknown assignment 'hw99'" in capsys.readouterr().err


def test_sample_class_matches_the_release():
    import subprocess
    import sys

    script = ROOT / "tools" / "make_sample_class.py"
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dask_cluster_grades_like_the_local_pool(course, graded):
    """The same grade_one tasks on a real dask.distributed LocalCluster (loopback only)."""
    from distributed import LocalCluster

    students = ["solution", "blank"]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        results = pipeline.autograde(
            course, "hw1", students, force=True, progress=False, dask=cluster.scheduler_address
        )
    for r in results:
        local = graded["hw1"][r.student]
        assert [(q.grade_id, q.points) for q in r.questions] == [(q.grade_id, q.points) for q in local.questions]
    assert gradebook.scores(course, "hw1")["solution"] == {
        q.grade_id: q.points for q in graded["hw1"]["solution"].questions
    }


def test_autograde_all_refuses_what_it_cannot_grade_before_grading_anything(course, graded, capsys):
    def results():
        return {p: p.stat().st_mtime_ns for p in course.autograded.glob("*/*/result.json")}

    before = results()
    (course.source / "hw9").mkdir()
    try:
        shutil.copy(course.source_notebook("hw1"), course.source_notebook("hw9"))
        with pytest.raises(CourseError, match=r"no submissions of hw9 in .*run collect first"):
            pipeline.autograde_all(course, {"hw1": ["solution"], "hw9": None}, progress=False, force=True)
        with pytest.raises(CourseError, match=r"no source notebook .*hw8.ipynb: is 'hw8' spelled right"):
            pipeline.autograde_all(course, {"hw1": ["solution"], "hw8": None}, progress=False, force=True)
        with pytest.raises(CourseError, match=r"no submission of hw1 by nobody in .*check the name"):
            pipeline.autograde_all(course, {"hw1": ["solution", "nobody"]}, progress=False, force=True)
        assert cli.main(["--course", str(course.root), "autograde", "hw1", "hw9"]) == 1
        assert "no submissions of hw9" in capsys.readouterr().err
    finally:
        shutil.rmtree(course.source / "hw9")
    assert results() == before  # nothing graded, not even hw1's solution


def test_unreachable_dask_scheduler_is_a_clear_error(course, monkeypatch):
    monkeypatch.setattr(pipeline, "DASK_CONNECT_TIMEOUT", 2)
    with pytest.raises(CourseError, match="cannot reach the Dask scheduler"):
        pipeline.autograde(course, "hw1", ["solution"], progress=False, dask="tcp://127.0.0.1:9")


def test_canvas_export(course, graded, tmp_path):
    path, unknown = reports.export_canvas(course, "hw1")
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "hw1"]
    assert rows[1] == ["Points Possible", "", "", "", "", "17"]  # question 8 (3 points) is graded by hand
    by_id = {r[1]: r for r in rows[2:]}
    # Canvas' total counts a question that awaits a hand grade as 0 (export_canvas names it provisional)
    assert by_id["solution"][5] == "14" and by_id["blank"][5] == "0" and unknown == []
    # With Canvas' own export as the roster: identity columns copied, matched by ID or SIS Login ID.
    roster = tmp_path / "canvas_export.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,hw1 (4711)\n"
        "Points Possible,,,,,17\n"
        '"Doe, Jane",solution,,jdoe,Section A,\n'
        '"Roe, Rick",99,,s01_alice,Section B,\n'
        "Test Student,blank,,,,\n"
    )
    path, unknown = reports.export_canvas(course, "hw1", tmp_path / "out.csv", roster, "hw1 (4711)")
    rows = list(csv.reader(path.open()))
    assert rows[0][-1] == "hw1 (4711)"
    assert rows[2:] == [
        ["Roe, Rick", "99", "", "s01_alice", "Section B", rows[2][5]],
        ["Doe, Jane", "solution", "", "jdoe", "Section A", "14"],
    ]
    assert "blank" in unknown and "s01_alice" not in unknown  # the Test Student row is never used
    roster.write_text("name,grade\nx,1\n")
    with pytest.raises(CourseError, match="not a Canvas gradebook export"):
        reports.export_canvas(course, "hw1", tmp_path / "out.csv", roster)


def test_attacks_left_the_course_untouched(course, graded):
    """s18-s20 went for the instructor's files, the gradebook and the grader's code; s28 planted a pickle."""
    if not preflight.sandbox_isolated(course, "hw1"):
        pytest.skip("the attacks on the course's files are graded only inside bubblewrap")
    for where in (ROOT, course.root):
        assert (where / "source" / "hw1" / "hw1.ipynb").read_bytes() == (ROOT / "source/hw1/hw1.ipynb").read_bytes()
    assert all(p.read_text() != "pass\n" for p in (ROOT / "autograder").glob("*.py"))
    assert read_source(course.source_notebook("hw1"))[1] == read_source(ROOT / "source/hw1/hw1.ipynb")[1]
    scores = gradebook.scores(course, "hw1")
    assert all(v <= 3 for per in scores.values() for v in per.values())  # nobody's 100
    assert sum(scores["s19_yvonne"].values()) == graded["hw1"]["s19_yvonne"].score == 2
    assert not pathlib.Path("/tmp/adl-pickle-was-loaded").exists()


def test_killed_batch_resumes_without_loss_or_double_counting(tmp_path):
    """Kill adl-grade mid-batch (SIGKILL to its whole process group), run it again: every submission is
    graded exactly once more at most, the finished ones are reused, and the gradebook holds one row each."""
    import os
    import signal
    import subprocess
    import sys
    import time

    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "source", tmp_path / "source")
    env = dict(os.environ, ADL_GRADEBOOK_URL=f"sqlite:///{tmp_path / 'gradebook.db'}")
    mp = pytest.MonkeyPatch()
    mp.setenv("ADL_GRADEBOOK_URL", env["ADL_GRADEBOOK_URL"])
    try:
        course = load_course(tmp_path)
        pipeline.release(course, "hw1")
        download = tmp_path / "download"
        download.mkdir()
        for name in ("s01_alice", "s02_bob", "s03_carol", "s04_dave"):
            shutil.copy(SAMPLES / "hw1" / f"{name}_hw1.ipynb", download)
        pipeline.collect(course, "hw1", download)
        proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.cli", "--course", str(tmp_path), "autograde", "hw1", "--workers", "1"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(course.autograded.glob("*/hw1/result.json")):
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first = {p.parent.parent.name: p.stat().st_mtime_ns for p in course.autograded.glob("*/hw1/result.json")}
        assert 1 <= len(first) < 4, first
        results = pipeline.autograde(course, "hw1", workers=2, progress=False)
        assert {r.student: r.score for r in results} == {"s01_alice": 14, "s02_bob": 10, "s03_carol": 7, "s04_dave": 0}
        for student, mtime in first.items():  # finished before the kill: reused, not graded again
            assert (course.autograded / student / "hw1" / "result.json").stat().st_mtime_ns == mtime
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url, course_id=course.course_id) as gb:
            subs = gb.assignment_submissions("hw1")
            assert sorted(s.student.id for s in subs) == ["s01_alice", "s02_bob", "s03_carol", "s04_dave"]
            assert all(len(nb.grades) == 8 for s in subs for nb in s.notebooks)  # 7 test cells, 1 by hand
    finally:
        mp.undo()
