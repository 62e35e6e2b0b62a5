"""The course project (course/project/): the handout's links lead to files that exist, every starter it names
is on disk and every starter on disk is named, the rubric grades the four milestones with the handout's points
(25 % of the grade, as the syllabus says), the due dates fall in the schedule's weeks, the report template has
its sections, and the starter notebooks are rendered from the schedule, committed clean, built as a project
(a baseline before an error analysis), run by `make test` and `make test-colab`, and shipped in the student
edition. The starters' execution itself is nbval's job (`make test` runs course/project/starters)."""

from __future__ import annotations

import json
import pathlib
import re
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course"))
import colab  # noqa: E402
import render  # noqa: E402
import student_edition  # noqa: E402

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

PROJECT = ROOT / "course" / "project"
HANDOUT, RUBRIC, TEMPLATE = PROJECT / "README.md", PROJECT / "rubric.md", PROJECT / "report_template.md"
STARTERS = sorted((PROJECT / "starters").glob("*.ipynb"))
MILESTONES = ("Proposal", "Checkpoint", "Final report", "Presentation")
REPORT_SECTIONS = (
    "Question",
    "Data",
    "Baseline",
    "Model",
    "Evaluation",
    "Error analysis",
    "Limitations and responsible-AI notes",
    "What we would do next",
)

LINK = re.compile(r"\]\(([^)\s]+)\)")
ROW = re.compile(r"^\|(.+)\|\s*$")


# ------------------------------------------------------------------------------------------------ parsing


def broken_links(path: pathlib.Path) -> list[str]:
    """Relative Markdown links in ``path`` whose target does not exist, as ``"target"``."""
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same page
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    return broken


def _rows(lines: list[str]) -> list[list[str]]:
    """The body rows of the Markdown tables in ``lines``, as lists of stripped cells."""
    rows = [[c.strip() for c in m.group(1).split("|")] for line in lines if (m := ROW.match(line))]
    return [r for r in rows if not all(set(c) <= set("-: ") for c in r)]


def handout_milestones(text: str) -> dict[str, dict]:
    """The handout's milestone table: ``{name: {"due": ..., "points": int, "share": float}}``."""
    table = {}
    for row in _rows(text.splitlines()):
        if row[0] in MILESTONES and len(row) == 4:
            table[row[0]] = {"due": row[1], "points": int(row[2]), "share": float(row[3].rstrip(" %"))}
    return table


def rubric_milestones(text: str) -> dict[str, tuple[int, list[int]]]:
    """``{milestone: (points in its heading, [points of each criterion])}`` from the rubric's sections."""
    out, name = {}, None
    for line in text.splitlines():
        heading = re.match(r"^## (.+?) \((\d+) points\)\s*$", line)
        if heading:
            name = heading.group(1)
            out[name] = (int(heading.group(2)), [])
        elif name and (row := _rows([line])) and row[0][0] != "criterion":
            out[name][1].append(int(row[0][1]))
    return out


def project_weight(syllabus: str) -> float:
    """The project's weight in the syllabus's grading table, in percent."""
    for row in _rows(syllabus.splitlines()):
        if row[0].lower().startswith("course project"):
            return float(row[1].rstrip("%"))
    raise AssertionError("course/syllabus.md: no 'Course project' row in the grading table")


def _headings(nb) -> list[str]:
    return [
        line[3:]
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]


# -------------------------------------------------------------------------------------- the handout files


def test_handout_files_and_starters_exist():
    for path in (HANDOUT, RUBRIC, TEMPLATE):
        assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    assert len(STARTERS) >= 3, f"expected at least 3 starter notebooks in {PROJECT / 'starters'}"


@pytest.mark.parametrize(
    "path", [HANDOUT, RUBRIC, TEMPLATE, ROOT / "course" / "syllabus.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_links_lead_to_files_that_exist(path):
    assert broken_links(path) == [], f"{path.relative_to(ROOT)} links to files that do not exist"


def test_every_starter_is_named_in_the_handout_and_exists():
    named = {
        pathlib.Path(t).name
        for t in LINK.findall(HANDOUT.read_text())
        if t.startswith("starters/") and t.endswith(".ipynb")
    }
    assert named == {p.name for p in STARTERS}, "the handout's starter table and course/project/starters differ"
    syllabus = (ROOT / "course" / "syllabus.md").read_text()
    assert "project/README.md" in syllabus and "course/project/README.md" in (ROOT / "README.md").read_text()


def test_rubric_grades_the_four_milestones_with_the_handouts_points():
    handout = handout_milestones(HANDOUT.read_text())
    rubric = rubric_milestones(RUBRIC.read_text())
    assert list(handout) == list(MILESTONES), "the handout's milestone table must list the four milestones"
    assert list(rubric) == list(MILESTONES), "the rubric needs one '## <milestone> (N points)' section each"
    for name, (points, criteria) in rubric.items():
        assert len(criteria) >= 3 and sum(criteria) == points, f"{name}: criteria {criteria} != {points} points"
        assert handout[name]["points"] == points, f"{name}: the handout says {handout[name]['points']} points"
    assert sum(m["points"] for m in handout.values()) == 100
    weight = project_weight((ROOT / "course" / "syllabus.md").read_text())
    assert weight == 25
    for name, m in handout.items():
        assert m["share"] == pytest.approx(m["points"] * weight / 100), f"{name}: share of the grade"


def test_rubric_rows_say_what_earns_full_partial_and_no_credit():
    lines = RUBRIC.read_text().splitlines()
    cells = [[c.strip() for c in m.group(1).split("|")] for ln in lines if (m := ROW.match(ln))]
    headers = [r for r in cells if r[0] == "criterion"]
    assert len(headers) == 4
    assert all(h == ["criterion", "points", "full credit", "partial credit", "no credit"] for h in headers)
    assert all(len(row) == 5 and all(row) for row in _rows(lines)), "a rubric row has an empty cell"


def test_due_dates_follow_the_schedule():
    weeks = [w["week"] for w in render.load_schedule()["weeks"]]
    due = {
        name: [int(n) for n in re.findall(r"week (\d+)", m["due"])]
        for name, m in handout_milestones(HANDOUT.read_text()).items()
    }
    assert all(len(d) == 1 and d[0] in weeks for d in due.values()), due
    order = [due[name][0] for name in MILESTONES]
    assert order[0] < order[1] < order[2] and order[3] == weeks[-1] == order[2], (
        "proposal, then checkpoint, then the last week (presentation and final report)"
    )
    for name in MILESTONES:  # each milestone has its section saying what to hand in
        assert re.search(rf"^### {name} \(", HANDOUT.read_text(), re.M), f"no '### {name} (...)' section"


def test_report_template_has_the_sections_in_order():
    numbered = re.findall(r"^## \d+\. (.+)$", TEMPLATE.read_text(), re.M)
    assert tuple(numbered) == REPORT_SECTIONS


# ---------------------------------------------------------------------------------------- failure paths


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](there.md) [web](https://example.org/x) [anchor](#rules) [gone](starters/gone.ipynb)"
        " [ok too](there.md#part)"
    )
    assert broken_links(page) == ["starters/gone.ipynb"]


def test_a_rubric_without_a_milestone_or_with_wrong_points_is_found():
    text = RUBRIC.read_text()
    without = text.split("## Presentation")[0]
    assert list(rubric_milestones(without)) == list(MILESTONES[:3])
    changed = rubric_milestones(text.replace("| Question | 3 |", "| Question | 4 |"))
    assert sum(changed["Proposal"][1]) != changed["Proposal"][0]
    assert handout_milestones("| Proposal | end of week 6 | 10 | 2.5 % |")["Proposal"]["points"] == 10
    with pytest.raises(AssertionError, match="Course project"):
        project_weight("| part | weight |\n|---|---|\n| Homework | 60% |")


# ------------------------------------------------------------------------------------- the starters


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.name)
def test_starter_is_rendered_from_the_schedule(path):
    text, new = render.render_file(path, render.load_schedule())
    assert new == text, f"{path.relative_to(ROOT)}: run python course/render.py"


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.name)
def test_starter_opens_itself_in_colab_and_installs_from_the_schedule(path):
    schedule = render.load_schedule()
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    links = [u for s in sources for u in re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", s)]
    assert links == [render.colab_url(schedule, str(path.relative_to(ROOT)))]
    setup = [i for i, c in enumerate(cells) if "setup" in c["metadata"].get("tags", [])]
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    assert setup == [first_code] and sources[first_code].startswith(render.setup_head(schedule))


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.name)
def test_starter_is_committed_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.name)
def test_starter_is_a_project_with_a_baseline_first_and_an_error_analysis(path):
    nb = nbformat.read(str(path), as_version=4)
    headings = _headings(nb)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    baseline = next((i for i, h in enumerate(headings) if "baseline" in h.lower()), None)
    errors = next((i for i, h in enumerate(headings) if "error analysis" in h.lower()), None)
    assert baseline is not None and errors is not None and baseline < errors, headings
    assert {"Setup", "Exercises", "Summary"} <= set(headings), headings
    assert nb.cells[0].source.startswith("# Project starter: ")
    assert code.count("adl.check(") >= 5 and "profile.epochs(" in code


def test_starters_run_in_make_test_and_make_test_colab_and_ship_to_students():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest: ", 1)[1].split("\n\n", 1)[0]
    assert "--nbval-lax" in recipe and re.search(r"\bcourse/project/starters\b", recipe), (
        "make test must execute course/project/starters with nbval"
    )
    assert colab.project_starters() == STARTERS
    assert render.project_notebooks() == STARTERS
    assert "course/project" in student_edition.COPIED
