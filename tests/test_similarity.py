"""Similarity screening (autograder/similarity.py) on its sample class, autograder/samples/similarity/hw2: the
copies (verbatim, renamed, reordered) are flagged, the independent correct solutions are not; starter code and
the instructor's cells are never evidence; bad input is named and skipped; the report is inert HTML."""

from __future__ import annotations

import copy
import csv
import pathlib
import re
import shutil
import sys

import nbformat
import pytest
from helpers import scratch_course

from autograder import similarity
from autograder.course import CourseError, load_course

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLASS = ROOT / "autograder" / "samples" / "similarity" / "hw2"
SOURCE = ROOT / "source" / "hw2" / "hw2.ipynb"
RELEASE = ROOT / "release" / "hw2" / "hw2.ipynb"
sys.path.insert(0, str(ROOT / "tools"))
import make_similarity_class as maker  # noqa: E402

COPIES = {frozenset(pair) for pair in maker.copy_pairs()}


@pytest.fixture(scope="module")
def sample_report() -> similarity.SimilarityReport:
    cells, starter = similarity.answer_cells(SOURCE), similarity.starter_hashes(RELEASE)
    answers = {
        p.name.removesuffix("_hw2.ipynb"): similarity.answers_of(nbformat.read(p, as_version=4), cells, starter)
        for p in sorted(CLASS.glob("*_hw2.ipynb"))
    }
    return similarity.compare("hw2", answers)


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course with hw2's source and its committed release."""
    root = tmp_path / "course"
    root.mkdir()
    scratch_course(root, ["hw2"], monkeypatch)
    shutil.copytree(RELEASE.parent, root / "release" / "hw2")
    return load_course(root)


def _submission(student: str) -> nbformat.NotebookNode:
    return nbformat.read(CLASS / f"{student}_hw2.ipynb", as_version=4)


def _collect(course, notebooks: dict[str, nbformat.NotebookNode | bytes]) -> None:
    for student, nb in notebooks.items():
        folder = course.submitted / student / "hw2"
        folder.mkdir(parents=True)
        data = nb if isinstance(nb, bytes) else nbformat.writes(nb).encode()
        (folder / "hw2.ipynb").write_bytes(data)


def test_the_sample_class_is_up_to_date():
    files = maker.render()
    stale = [name for name, data in files.items() if (CLASS / name).read_bytes() != data]
    assert stale == [], "run .venv/bin/python tools/make_similarity_class.py"
    assert sorted(p.name for p in CLASS.iterdir()) == sorted(files)


def test_every_copy_is_flagged_and_no_independent_pair_is(sample_report):
    assert len(sample_report.students) == 8 and len(sample_report.pairs) == 28
    assert len(COPIES) == 3  # verbatim, renamed, reordered
    flagged = {frozenset((p.first, p.second)) for p in sample_report.flagged}
    assert flagged == COPIES
    independent = [p for p in sample_report.pairs if frozenset((p.first, p.second)) not in COPIES]
    # the margin the README reports: independent pairs stay far below the threshold, copies far above
    assert max(p.similarity for p in independent) < similarity.THRESHOLD / 2
    assert min(p.similarity for p in sample_report.flagged) > 0.85
    assert {frozenset((p.first, p.second)) for p in sample_report.pairs[:3]} == COPIES  # ranked first


def test_a_verbatim_copy_scores_one_and_the_renamed_copy_normalizes_to_the_same_code(sample_report):
    verbatim = next(p for p in sample_report.pairs if {p.first, p.second} == {"s01_ana", "s06_farid"})
    assert verbatim.similarity == 1.0 and verbatim.shares == (1.0, 1.0)
    ben, gwen = sample_report.answers["s02_ben"], sample_report.answers["s07_gwen"]
    assert ben["q2_reverse_solution"].text != gwen["q2_reverse_solution"].text
    assert "Node" in gwen["q2_reverse_solution"].text and "Var" not in gwen["q2_reverse_solution"].text
    for gid in ("q1_dual_solution", "q2_reverse_solution", "q5_adam_solution"):
        strip = "".join  # blank lines are whitespace: gone after normalization
        assert strip(ben[gid].fingerprint.filtered_code.split()) == strip(gwen[gid].fingerprint.filtered_code.split())


def test_the_reordered_copy_holds_the_same_lines_in_another_order():
    chloe, hugo = maker.solution_cells(_submission("s03_chloe")), maker.solution_cells(_submission("s08_hugo"))
    for gid, cell in chloe.items():
        markdown = cell.cell_type == "markdown"
        assert maker._lines(cell.source, markdown) == maker._lines(hugo[gid].source, markdown)
        assert cell.source != hugo[gid].source, f"{gid} is not reordered"


def test_a_reordering_that_changes_a_line_is_refused():
    entry = {"id": "x", "copy_of": "s03_chloe", "how": "reordered", "cells": {"q4_momentum_solution": "w = 0"}}
    with pytest.raises(maker.ClassError, match="not a reordering of s03_chloe's cell"):
        maker.copied(entry, _submission("s03_chloe"))


def test_starter_code_and_instructor_cells_are_no_evidence(course):
    release = nbformat.read(RELEASE, as_version=4)
    ana = _submission("s01_ana")
    pasted = copy.deepcopy(_submission("s04_dev"))
    given = next(c for c in release.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "expressions")
    for cell in pasted.cells:  # dev pastes the given evaluate() into his answer: given code is no evidence
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q1_dual_solution":
            cell.source = given.source + "\n\n" + cell.source
    for nb in (ana, pasted):  # both add the same long cell of their own, and both edit a test cell alike
        nb.cells.append(nbformat.v4.new_code_cell(given.source))
        nb.cells[-1].metadata["nbgrader"] = {"grade_id": "extra", "solution": True}  # a solution only in name
    _collect(course, {"asis1": release, "asis2": copy.deepcopy(release), "ana": ana, "dev": pasted})
    report = similarity.screen(course, "hw2")
    by_pair = {frozenset((p.first, p.second)): p for p in report.pairs}
    assert by_pair[frozenset(("asis1", "asis2"))].similarity == 0.0  # the release handed in twice
    assert by_pair[frozenset(("ana", "dev"))].similarity < 0.15
    assert report.flagged == []
    assert set(report.answers["ana"]) == set(similarity.answer_cells(SOURCE))  # the source says what an answer is


def test_a_download_is_screened_without_collecting_it_and_a_broken_file_is_named(course, tmp_path):
    download = tmp_path / "download"
    shutil.copytree(CLASS, download)
    data = (CLASS / "s05_emil_hw2.ipynb").read_bytes()
    (download / "zed_hw2.ipynb").write_bytes(data[: len(data) // 2])  # a broken upload
    (download / "notes.txt").write_text("not a submission")
    report = similarity.screen(course, "hw2", download=download)
    assert len(report.students) == 8 and {frozenset((p.first, p.second)) for p in report.flagged} == COPIES
    reasons = dict(report.skipped)
    assert "not valid JSON" in reasons["zed (hw2.ipynb)"]
    assert "does not match" in reasons["notes.txt"]
    assert "README.md" not in reasons
    assert not course.submitted.exists()  # nothing collected


def test_failure_paths_say_what_to_do(course, tmp_path):
    with pytest.raises(CourseError, match=r"unknown assignment 'hw9'; the course has \['hw2'\]"):
        similarity.screen(course, "hw9")
    with pytest.raises(
        CourseError, match="no submissions of hw2 in .*run `adl-grade collect` first, or pass --download"
    ):
        similarity.screen(course, "hw2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseError, match="no submissions of hw2 in .*empty"):
        similarity.screen(course, "hw2", download=tmp_path / "empty")
    _collect(course, {"ana": _submission("s01_ana"), "bad": b"{not json"})
    with pytest.raises(CourseError, match="1 readable submission"):
        similarity.screen(course, "hw2")
    with pytest.raises(CourseError, match="threshold must be above 0 and at most 1"):
        similarity.screen(course, "hw2", threshold=1.5)
    shutil.rmtree(course.release)
    with pytest.raises(CourseError, match=r"run `adl-grade release hw2` first"):
        similarity.screen(course, "hw2")


SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "strong", "em", "code"}
SAFE_TAGS |= {"table", "tr", "th", "td", "a", "section", "div", "span", "pre", "mark", "ul", "li"}
HOSTILE_ID = "=HYPERLINK(x)<img src=x onerror=alert(1)>\x1b[31m"


def test_the_report_is_inert_html_and_a_safe_csv(course):
    evil = _submission("s01_ana")
    for cell in evil.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q2_reverse_solution":
            cell.source += '\n# </pre><script>alert(1)</script><a href="https://example.org">x</a> \u202e\x1b[2J'
    _collect(course, {HOSTILE_ID: evil, "ana": _submission("s01_ana"), "ben": _submission("s02_ben")})
    report = similarity.screen(course, "hw2")
    html_path, csv_path = similarity.write_report(course, report)
    assert html_path == course.build / "similarity" / "hw2" / "report.html"
    page = html_path.read_text()
    assert "<script" not in page and "<img" not in page and "\u202e" not in page
    assert set(re.findall(r"<(\w+)", page)) <= SAFE_TAGS and set(re.findall(r'href="(.)', page)) == {"#"}
    assert "://" not in page.replace("&#34;https://example.org&#34;", "")  # no link out, no resource to load
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "\\u202e" in page
    assert "default-src 'none'" in page and "it does not judge" in page
    assert page.count("<mark>") > 10  # the copied code is highlighted
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 3 and rows[0]["flagged"] == "True"
    assert {rows[0]["student_1"], rows[0]["student_2"]} == {"'" + HOSTILE_ID, "ana"}
    lines = similarity.summary(report, (html_path, csv_path))
    assert "it does not judge" in lines[1] and any("FLAGGED" in line and "ana" in line for line in lines)
    assert "\x1b" not in "\n".join(lines) and "\\x1b[31m" in "\n".join(lines)  # no raw escape reaches the terminal
    assert "\x1b" not in page and "\\x1b[31m" in page


def test_segments_cut_text_at_the_shared_slices():
    assert similarity._segments("abcdefgh", [[1, 5], [3, 7]]) == [
        ("a", False),
        ("bc", True),
        ("de", False),
        ("fg", True),
        ("h", False),
    ]
    assert similarity._segments("abc", ([], [])) == [("abc", False)]
    assert similarity._segments("a\x1bb", [[0], [3]]) == [("a\\x1bb", True)]


def test_an_enormous_answer_is_compared_on_its_beginning_only(monkeypatch):
    """One submission cannot hold the screening for minutes: an answer past MAX_ANSWER is cut, and named."""
    monkeypatch.setattr(similarity, "MAX_ANSWER", 2_000)
    cell = nbformat.v4.new_code_cell("x = 1\n" * 5_000, metadata={"nbgrader": {"grade_id": "q1", "solution": True}})
    nb = nbformat.v4.new_notebook(cells=[cell])
    answers = similarity.answers_of(nb, {"q1": "code"}, frozenset())
    assert len(answers["q1"].text) == 2_000
    assert similarity.cut_answers(nb, {"q1": "code"}) == ["q1"]
