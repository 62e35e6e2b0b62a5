"""Questions graded by hand (nbgrader's manually graded answers), end to end: adl-grade never scores them, the
gradebook marks them ``needs_manual_grade`` until the formgrader's score arrives, export / report / the printed
grades count that score and say which totals are provisional until then, the feedback says "graded by hand"
without the rubric or the sample answer, and ``adl-grade rubric`` gives both to the grader and no student
(release, feedback, student edition).

The midterm (``source/midterm``, questions 5 and 6) is the real example; the rubric checks use small notebooks.
"""

from __future__ import annotations

import csv
import datetime
import html
import shutil
import sys

import nbformat
import pytest
from helpers import ROOT, jupyter_server, scratch_course

from autograder import cases, cli, gradebook, pipeline, reports, rubric, scoring
from autograder.course import load_course
from autograder.expected import read_expected
from autograder.notebook import read_source, released_source, restore, unanswered

sys.path.insert(0, str(ROOT / "course"))
import student_edition  # noqa: E402

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

MIDTERM = ROOT / "source" / "midterm" / "midterm.ipynb"
MANUAL = ["q5_criterion", "q6_report"]


def _meta(gid, **kw):
    return {"nbgrader": {"grade_id": gid, "schema_version": 3, "task": False, **kw}}


def _notebook(answer: str, points=3, cell_type="markdown", prompt="## Question 8: explain (3 points)"):
    cells = []
    if prompt is not None:
        cells.append(
            nbformat.v4.new_markdown_cell(prompt, metadata=_meta("q8-md", grade=False, solution=False, locked=True))
        )
    new = nbformat.v4.new_markdown_cell if cell_type == "markdown" else nbformat.v4.new_code_cell
    cells.append(new(answer, metadata=_meta("q8_explain", grade=True, solution=True, locked=False, points=points)))
    return nbformat.v4.new_notebook(cells=cells)


GOOD = "**Sample answer.** Because.\n\n#### Rubric\n- 1 point: names it.\n- 2 points: explains it.\n- No credit for ..."


# ---------------------------------------------------------------------------------------- authoring checks


def test_rubric_splits_the_cell_and_checks_its_points():
    (q,) = rubric.check(_notebook(GOOD))
    assert (q.grade_id, q.points, q.prompt, q.sample_answer) == (
        "q8_explain",
        3.0,
        "## Question 8: explain (3 points)",
        "**Sample answer.** Because.",
    )
    assert q.rubric.startswith("- 1 point: names it.") and q.rubric_points() == 3.0
    text = rubric.render("hwx", [q])
    assert "## q8_explain (3 points)" in text and "- 2 points: explains it." in text and "> ## Question 8" in text


@pytest.mark.parametrize(
    ("answer", "points", "prompt", "message"),
    [
        ("Because.", 3, "p", "has no rubric: add a line '#### Rubric'"),
        ("#### Rubric\n- 3 points: all of it.", 3, "p", "has no sample answer"),
        (GOOD.replace("2 points", "1 point"), 3, "p", "worth 3 points but its rubric's items"),
        ("### BEGIN SOLUTION\n" + GOOD + "\n### END SOLUTION", 3, "p", "BEGIN/END SOLUTION markers"),
        (GOOD, 0, "p", "has no points"),
        (GOOD, 3, None, "has no prompt"),
    ],
)
def test_rubric_refuses_a_cell_the_grader_cannot_use(answer, points, prompt, message):
    with pytest.raises(rubric.RubricError, match=message):
        rubric.check(_notebook(answer, points=points, prompt=prompt), where="hwx")


def test_wrong_answer_cases_never_target_a_question_graded_by_hand(tmp_path):
    nb = nbformat.read(str(MIDTERM), as_version=4)
    base = (ROOT / "source" / "midterm" / "wrong_answers.yml").read_text()
    assert cases.expected_points(nb, ()) == {
        "q1_parity": 2.0,
        "q2_opportunity": 3.0,
        "q3_audit": 4.0,
        "q4_threshold": 3.0,
    }  # no test cell for questions 5 and 6
    assert cases.manual_ids(nb) == MANUAL
    for extra, message in [
        (
            "  - {id: blank-essay, cell: q5_criterion, replace: Equal, with: x, loses: [q1_parity], why: w}\n",
            "graded by hand, not by a test",
        ),
        (
            "  - {id: wrong-q-five, cell: q1_parity_solution, replace: 'return abs(rate_1 - rate_0)', with: 'return 0.0',"
            " loses: [q5_criterion], why: w}\n",
            "must name graded test cells",
        ),
    ]:
        (tmp_path / "wrong_answers.yml").write_text(base + extra)
        with pytest.raises(cases.CaseError, match=message):
            cases.load_cases(tmp_path, nb)
    broken = nbformat.read(str(MIDTERM), as_version=4)
    cell = next(c for c in broken.cells if c.metadata["nbgrader"]["grade_id"] == "q5_criterion")
    cell.source = cell.source.replace("- 1 point: chooses", "- 2 points: chooses")
    (tmp_path / "wrong_answers.yml").write_text(base)
    with pytest.raises(cases.CaseError, match="q5_criterion' is worth 4 points but its rubric's items"):
        cases.load_cases(tmp_path, broken)


def test_sample_students_answer_with_the_sample_answer_and_never_the_rubric():
    source = nbformat.read(str(MIDTERM), as_version=4)
    release = nbformat.read(str(ROOT / "release" / "midterm" / "midterm.ipynb"), as_version=4)
    filled = {c.metadata["nbgrader"]["grade_id"]: c.source for c in cases.fill_release(release, source).cells}
    for q in rubric.manual_questions(source):
        assert filled[q.grade_id] == q.sample_answer and "Rubric" not in filled[q.grade_id]
    expected = read_expected(ROOT / "autograder" / "samples" / "midterm")
    assert {tuple(e["manual"]) for e in expected.values()} == {tuple(MANUAL)}
    assert all(set(e["points"]) == set(cases.expected_points(source, ())) for e in expected.values())


# ------------------------------------------------------------------------------------ never to a student


def _private_text(q: rubric.ManualQuestion) -> list[str]:
    return [line.strip() for line in (q.sample_answer + "\n" + q.rubric).splitlines() if len(line.strip()) >= 20]


def test_release_holds_neither_rubric_nor_sample_answer():
    questions = rubric.check(MIDTERM)
    assert [q.grade_id for q in questions] == MANUAL and [q.points for q in questions] == [4.0, 4.0]
    released = nbformat.read(str(ROOT / "release" / "midterm" / "midterm.ipynb"), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in released.cells}
    assert [answers[g] for g in MANUAL] == ["YOUR ANSWER HERE"] * 2
    text = "\n".join(c.source for c in released.cells)
    leaked = [line for q in questions for line in _private_text(q) if line in text]
    assert leaked == [] and "Rubric" not in text


def test_student_edition_counts_rubric_and_sample_answer_as_private(tmp_path):
    private = student_edition.private_lines()
    lines = [student_edition._norm(line) for q in rubric.check(MIDTERM) for line in _private_text(q)]
    assert lines and all(line in private for line in lines)
    # ... so an edition that got them (a rubric pasted into a released notebook) is refused by the scan
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "notes.md").write_text(f"Hints\n{lines[0]}\n")
    assert student_edition.scan([tmp_path], private) == [f"{tmp_path}/release/notes.md: {lines[0][:120]}"]


def test_student_edition_counts_every_wrong_answer_case_as_private():
    """wrong_answers.yml is a mapping ({"cases": [...]}): each case's text is private, its 'why' too (which no
    sample notebook holds)."""
    private = student_edition.private_lines()
    why = "counts with np.ceil(rate * len(scores)), which rounds 0.28 * 25 (7.000000000000001) up to 8"
    assert why in (ROOT / "source" / "midterm" / "wrong_answers.yml").read_text()
    assert student_edition._norm(why) in private


# ----------------------------------------------------------------------------------- scoring (no kernel)


def test_an_answer_left_as_released_scores_zero_and_needs_no_hand_grade():
    source_nb, trusted = read_source(MIDTERM)
    released = nbformat.read(str(ROOT / "release" / "midterm" / "midterm.ipynb"), as_version=4)
    assert released_source(next(c for c in trusted if c.grade_id == "q5_criterion")) == "YOUR ANSWER HERE"
    assert unanswered(restore(released, trusted).notebook, trusted) == set(MANUAL)
    answered = nbformat.read(str(MIDTERM), as_version=4)
    assert unanswered(restore(answered, trusted).notebook, trusted) == set()
    run = {"cells": [{"grade_id": c.grade_id, "status": "ok"} for c in trusted if c.autograded_test], "elapsed": 1}
    full = scoring.score_run("s", "midterm", trusted, run, "k")
    assert [(q.grade_id, q.status, q.points) for q in full.questions if q.manual] == [
        ("q5_criterion", "pending", 0.0),
        ("q6_report", "pending", 0.0),
    ]
    assert full.pending == MANUAL and full.score == 12 and full.max_score == 20
    blank = scoring.score_run("s", "midterm", trusted, run, "k", unanswered={"q5_criterion"})
    assert blank.pending == ["q6_report"]
    assert next(q for q in blank.questions if q.grade_id == "q5_criterion").status == "failed"


# ------------------------------------------------------------------------------ end to end, real grading


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The midterm's solution (answered: both questions pending) and blank release (unanswered: 0), graded by the
    real autograder in a scratch course of their own."""
    tmp = tmp_path_factory.mktemp("course")
    mp = pytest.MonkeyPatch()
    scratch_course(tmp, ["midterm"], mp)
    course = load_course(tmp)
    pipeline.release(course, "midterm")
    download = tmp_path_factory.mktemp("download")
    shutil.copy(course.source_notebook("midterm"), download / "solution_midterm.ipynb")
    shutil.copy(course.release_notebook("midterm"), download / "blank_midterm.ipynb")
    assert pipeline.collect(course, "midterm", download).rejected == []
    results = {r.student: r for r in pipeline.autograde(course, "midterm", workers=2, progress=False)}
    yield course, results
    mp.undo()


@pytest.fixture(scope="module")
def formgrader(graded, tmp_path_factory):
    """nbgrader's formgrader in a real Jupyter server on the graded course: its HTTP API, as its pages use it."""
    course, _ = graded
    with jupyter_server(course.root, tmp_path_factory.mktemp("jupyter-runtime")) as server:
        yield server


def _grades(course, student):
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        sub = gb.find_submission("midterm", student)
        grades = {
            g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for nb in sub.notebooks for g in nb.grades
        }
        return sub.needs_manual_grade, grades


def _grade_by_hand(course, student, grade_id, score):
    """What the formgrader's PUT /formgrader/api/grade/<id> does (nbgrader's GradeHandler), through its API."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        grade = gb.find_grade(grade_id, "midterm", "midterm", student)
        grade.manual_score = score
        grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        gb.db.commit()


def _csv(course):
    path = reports.export_csv(course, "midterm")
    return {row["student_id"]: row for row in csv.DictReader(path.open(encoding="utf-8"))}


def test_autograder_leaves_hand_grading_to_the_formgrader(graded):
    course, results = graded
    solution, blank = results["solution"], results["blank"]
    assert solution.pending == MANUAL and solution.score == 12 and solution.flags == []
    assert blank.pending == [] and blank.score == 0
    needs, grades = _grades(course, "solution")
    assert needs is True
    assert {g: grades[g] for g in MANUAL} == {g: (None, None, True) for g in MANUAL}
    assert grades["q3_audit"] == (4.0, None, False)
    needs, grades = _grades(course, "blank")  # unanswered: 0, as nbgrader gives it, nothing to grade by hand
    assert needs is False and grades["q5_criterion"] == (0.0, None, False)

    table = reports.format_table([solution, blank])
    assert "pend" in table and "12+?/20" in table and "1 of 2 totals are provisional" in table
    rows = _csv(course)
    assert (rows["solution"]["q5_criterion"], rows["solution"]["score"]) == ("", "12.0")
    assert rows["solution"]["awaiting_grade"] == "q5_criterion q6_report" and rows["blank"]["awaiting_grade"] == ""
    report = reports.write_report(course, "midterm", [solution, blank]).read_text()
    assert "Provisional: 1 of 2 submissions" in report
    assert "| q5_criterion | 4 | graded by hand: 0 graded, 1 awaiting a grade, 1 not answered" in report


def test_feedback_says_graded_by_hand_without_rubric_or_sample_answer(graded):
    course, results = graded
    page = html.unescape(reports.write_feedback(course, results["solution"], final=True).read_text())
    assert "q5_criterion: ? / 4 (graded by hand)" in page and "Provisional: q5_criterion, q6_report are" in page
    private = [line for q in rubric.check(MIDTERM) for line in _private_text(q)]
    assert [line for line in private if line in page] == [] and "Rubric" not in page and "Sample answer" not in page
    blank = html.unescape(reports.write_feedback(course, results["blank"], final=True).read_text())
    assert "q5_criterion: 0 / 4 (failed, graded by hand)" in blank and "Provisional" not in blank


def test_the_formgrader_lists_the_answers_to_grade_by_hand(graded, formgrader):
    course, _ = graded
    shown = {s["student"]: s for s in formgrader.api("/formgrader/api/submissions/midterm")}
    assert (shown["solution"]["needs_manual_grade"], shown["blank"]["needs_manual_grade"]) == (True, False)
    assert (shown["solution"]["score"], shown["solution"]["max_score"]) == (12.0, 20.0)
    notebooks = {n["student"]: n for n in formgrader.api("/formgrader/api/submitted_notebooks/midterm/midterm")}
    assert notebooks["solution"]["needs_manual_grade"] is True
    grades = {
        g["name"]: g for g in formgrader.api(f"/formgrader/api/grades?submission_id={notebooks['solution']['id']}")
    }
    assert (grades["q5_criterion"]["auto_score"], grades["q5_criterion"]["needs_manual_grade"]) == (None, True)
    assert grades["q5_criterion"]["max_score"] == 4.0
    import urllib.request

    with urllib.request.urlopen(
        formgrader.page(f"/formgrader/submissions/{notebooks['solution']['id']}/"), timeout=120
    ) as resp:
        page = html.unescape(resp.read().decode())
    assert "Equal opportunity: among applicants who qualify" in page  # the student's answer, to grade


def test_a_hand_grade_counts_everywhere_and_clears_the_flag(graded, formgrader, capsys):
    course, _ = graded
    notebooks = {n["student"]: n for n in formgrader.api("/formgrader/api/submitted_notebooks/midterm/midterm")}
    grades = {
        g["name"]: g for g in formgrader.api(f"/formgrader/api/grades?submission_id={notebooks['solution']['id']}")
    }
    formgrader.api(f"/formgrader/api/grade/{grades['q5_criterion']['id']}", "PUT", {"manual_score": 3.5})
    again = {r.student: r for r in pipeline.autograde(course, "midterm", workers=2, progress=False)}  # cached
    solution = again["solution"]
    q5 = next(q for q in solution.questions if q.grade_id == "q5_criterion")
    assert (q5.status, q5.points, solution.pending, solution.score) == ("graded by hand", 3.5, ["q6_report"], 15.5)
    needs, grades = _grades(course, "solution")
    assert needs is True and grades["q5_criterion"] == (None, 3.5, False) and grades["q6_report"][2] is True
    assert gradebook.scores(course, "midterm")["solution"]["q5_criterion"] == 3.5
    row = _csv(course)["solution"]
    assert (row["q5_criterion"], row["q6_report"], row["score"], row["awaiting_grade"]) == (
        "3.5",
        "",
        "15.5",
        "q6_report",
    )
    assert cli.main(["--course", str(course.root), "export", "midterm", "--canvas"]) == 0
    assert (
        "provisional: 1 student with questions awaiting a grade by hand, counted as 0: solution (q6_report)"
        in capsys.readouterr().out
    )
    assert "15.5" in (course.build / "grades" / "midterm-canvas.csv").read_text()
    assert "3.5 / 4 (graded by hand)" in html.unescape(reports.write_feedback(course, solution, final=True).read_text())

    _grade_by_hand(course, "solution", "q6_report", 4.0)
    solution = {r.student: r for r in pipeline.autograde(course, "midterm", workers=2, progress=False)}["solution"]
    assert solution.pending == [] and solution.score == 19.5
    assert _grades(course, "solution")[0] is False  # nothing left for the formgrader: off its "needs grading" list
    assert _csv(course)["solution"]["awaiting_grade"] == "" and "+?" not in reports.format_table([solution])
    report = reports.write_report(course, "midterm", [solution]).read_text()
    assert "Provisional" not in report and "graded by hand: 1 graded (mean 3.50), 0 awaiting" in report
    assert cli.main(["--course", str(course.root), "export", "midterm"]) == 0
    assert "provisional" not in capsys.readouterr().out

    # A new submission after the hand grades: kept (the formgrader's), but flagged for review again.
    stamp = course.submitted / "solution" / "midterm" / "timestamp.txt"
    stamp.write_text(
        (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
    )
    pipeline.autograde(course, "midterm", ["solution"], workers=1, progress=False)
    needs, grades = _grades(course, "solution")
    assert needs is True and grades["q5_criterion"] == (None, 3.5, True) and grades["q6_report"] == (None, 4.0, True)


def test_rubric_command_prints_the_graders_sheet(tmp_path, capsys):
    assert cli.main(["rubric", "midterm"]) == 0
    out = capsys.readouterr().out
    questions = rubric.check(MIDTERM)
    assert "## q5_criterion (4 points)" in out and "## q6_report (4 points)" in out
    assert all(line in out for q in questions for line in _private_text(q))
    assert cli.main(["rubric", "midterm", "--output", str(tmp_path / "sheet.md")]) == 0
    assert (tmp_path / "sheet.md").read_text() + "\n" == out  # print() adds the last newline
    assert "for graders only" in capsys.readouterr().out
    assert cli.main(["rubric", "hw99"]) == 1
    assert "unknown assignment 'hw99'" in capsys.readouterr().err


def test_rubric_command_names_a_broken_rubric(tmp_path, capsys):
    mp = pytest.MonkeyPatch()
    try:
        scratch_course(tmp_path, ["midterm"], mp)
        nb = nbformat.read(str(tmp_path / "source" / "midterm" / "midterm.ipynb"), as_version=4)
        cell = next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == "q6_report")
        cell.source = cell.source.split("#### Rubric")[0]
        nbformat.write(nb, str(tmp_path / "source" / "midterm" / "midterm.ipynb"))
        assert cli.main(["--course", str(tmp_path), "rubric", "midterm"]) == 1
        assert "the manually graded cell 'q6_report' has no rubric" in capsys.readouterr().err
    finally:
        mp.undo()
