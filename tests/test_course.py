"""course/schedule.yml, the README's notebook table, the notebooks' badges and setup cells, and the files on
disk agree (course/render.py writes the first three from the schedule)."""

import copy
import json
import pathlib
import re
import shutil
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course"))
import render  # noqa: E402

SCHEDULE = render.load_schedule()
RENDERED = render.rendered_notebooks(SCHEDULE)
RELEASED = render.released_notebooks()
ALL = [*RENDERED, *RELEASED]


def _id(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture(scope="module")
def schedule():
    return copy.deepcopy(SCHEDULE)


def test_readme_table_is_current(schedule):
    text = (ROOT / "README.md").read_text()
    assert render.render_readme(text, schedule) == text, "run: python course/render.py"


def test_every_notebook_is_scheduled_and_exists(schedule):
    listed = [nb for week in schedule["weeks"] for nb in week["notebooks"]]
    on_disk = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(listed) == on_disk
    for week in schedule["weeks"]:
        if week.get("assignment"):
            assert (ROOT / "source" / week["assignment"]).is_dir(), week["assignment"]
            assert (ROOT / "release" / week["assignment"]).is_dir(), week["assignment"]
    weeks = [w["week"] for w in schedule["weeks"]]
    assert weeks == sorted(weeks) and len(set(weeks)) == len(weeks)


def test_readme_badges_point_at_the_notebook(schedule):
    table = render.render_table(schedule)
    for week in schedule["weeks"]:
        for nb in week["notebooks"]:
            assert f"colab.research.google.com/github/{schedule['repository']}/blob/{schedule['ref']}/{nb})" in table
    bare = render.render_table(schedule, marked=False)  # the student edition's README
    assert bare.splitlines() == table.splitlines()[1:-1] and "<!--" not in bare


def test_stale_readme_is_detected(schedule):
    text = (ROOT / "README.md").read_text()
    changed = copy.deepcopy(schedule)
    changed["weeks"][0]["title"] = "Something else"
    assert render.render_readme(text, changed) != text
    with pytest.raises(ValueError, match="markers"):
        render.render_readme("no markers here", schedule)


@pytest.mark.parametrize(
    "text, match",
    [
        ("repository: a/b\nref: main\nweeks:\n  - week: 1\n    title: x\n", r"lacks \['notebooks'\]"),
        ("repository: a/b\nbranch: main\nweeks: []\n", "missing 'ref'"),
        ("repository: not a repo\nref: main\nweeks: []\n", "owner/name"),
        ("repository: a/b\nref: 'main; rm -rf /'\nweeks: []\n", "branch or tag"),
    ],
)
def test_schedule_validation(tmp_path, text, match):
    bad = tmp_path / "s.yml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=match):
        render.load_schedule(bad)


# ----------------------------------------------------------------------------------- badges and setup cells


def test_every_week_and_homework_is_rendered():
    assert len(RENDERED) == len(list((ROOT / "notebooks").glob("*.ipynb"))) + len(list(ROOT.glob("source/*/*.ipynb")))
    assert [p.parent.name for p in RELEASED] == [p.parent.name for p in RENDERED if p.parts[-3] == "source"]


@pytest.mark.parametrize("path", RENDERED, ids=_id)
def test_notebook_is_rendered_from_the_schedule(path, schedule):
    text, new = render.render_file(path, schedule)
    assert new == text, (
        f"{_id(path)}: its badge or setup cell differs from course/schedule.yml: run python course/render.py"
    )


@pytest.mark.parametrize("path", RELEASED, ids=_id)
def test_release_carries_the_rendered_cells(path, schedule):
    text, new = render.render_file(path, schedule)
    assert new == text, f"{_id(path)}: run python course/render.py, then adl-grade release"


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_one_badge_to_itself_and_one_install_from_the_schedule(path, schedule):
    """Read as plain JSON, not through the renderer: what a student's notebook holds."""
    cells = [
        (c["cell_type"], "".join(c["source"]), c["metadata"].get("tags", []))
        for c in json.loads(path.read_text())["cells"]
    ]
    repo, ref = schedule["repository"], schedule["ref"]
    edition = f"release/{path.parent.name}/{path.name}" if path.parts[-3] in ("source", "release") else _id(path)
    links = [u for _, s, _ in cells for u in re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", s)]
    assert links == [f"https://colab.research.google.com/github/{repo}/blob/{ref}/{edition}"]
    installs = [line for kind, s, _ in cells if kind == "code" for line in s.splitlines() if "pip install" in line]
    assert installs == [f'    %pip install -q "adl-helpers @ git+https://github.com/{repo}@{ref}"']
    setup = [i for i, (_, _, tags) in enumerate(cells) if "setup" in tags]
    assert len(setup) == 1 and not any(kind == "code" for kind, _, _ in cells[: setup[0]]), (
        "setup is the first code cell"
    )
    lines = cells[setup[0]][1].splitlines()
    assert lines[2].startswith('if "google.colab" in sys.modules:')
    first_tf = min(
        (i for i, line in enumerate(lines) if re.match(r"(import|from) (tensorflow|keras)\b", line)), default=len(lines)
    )
    assert [i for i, line in enumerate(lines) if line.startswith("import adl_helpers")] == [5] and 5 < first_tf
    assert sum(line == "import sys" for line in lines) == 1


OLD_SETUP = """import sys
if "google.colab" in sys.modules:  # Colab only: install the course helpers and the extra packages
    %pip install -q --no-deps "adl-course-kit @ git+https://github.com/adl-course/adl-course-kit"
    %pip install -q fairlearn==0.15.0

import numpy as np
import tensorflow as tf

import adl_helpers as adl

profile = adl.setup(seed=42)


def f(x):
    return x"""


def test_setup_head_replaces_the_old_one_and_keeps_the_rest(schedule):
    new = render.render_setup(OLD_SETUP, schedule)
    assert (
        new == render.setup_head(schedule) + "\nimport numpy as np\nimport tensorflow as tf\n\n"
        "profile = adl.setup(seed=42)\n\n\ndef f(x):\n    return x"
    )
    assert render.render_setup(new, schedule) == new  # a second run changes nothing
    other = dict(schedule, ref="2026-fall")
    assert "adl-course-kit@2026-fall" in render.render_setup(new, other).splitlines()[3]
    bare = render.render_setup("import numpy as np\n\nimport adl_helpers as adl\n\nx = 1", schedule)
    assert bare == render.setup_head(schedule) + "\nimport numpy as np\n\nx = 1"


def _notebook(*cells, nbgrader=False):
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        meta = {"tags": tags} if tags else {}
        if nbgrader:
            meta["nbgrader"] = {
                "grade": False,
                "grade_id": f"c{len(nb.cells)}",
                "locked": True,
                "schema_version": 3,
                "solution": False,
                "task": False,
            }
        new = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(new(source, metadata=meta))
    return nb


def test_missing_badge_is_inserted_after_the_title(schedule):
    nb = _notebook(("markdown", "# Title", None), ("code", "import numpy as np", ["setup"]))
    out = render.render_notebook(nb, schedule, "notebooks/week99_x.ipynb")
    assert [c.cell_type for c in out.cells] == ["markdown", "markdown", "code"]
    assert out.cells[1].metadata == {"tags": ["colab-badge"]} and out.cells[1].id == "colab-badge"
    assert out.cells[1].source.endswith(f"/blob/{schedule['ref']}/notebooks/week99_x.ipynb)")
    assert len(nb.cells) == 2, "the input notebook is left alone"
    graded = render.render_notebook(
        _notebook(("markdown", "# Homework", None), ("code", "x = 1", ["setup"]), nbgrader=True),
        schedule,
        "release/hw9/hw9.ipynb",
    )
    assert graded.cells[1].metadata["nbgrader"]["grade_id"] == "colab-badge"
    assert graded.cells[1].metadata["nbgrader"]["locked"] is True
    assert graded.cells[2].metadata["nbgrader"]["grade_id"] == "c1", "the setup cell keeps its nbgrader metadata"
    nbformat.validate(graded)


@pytest.mark.parametrize(
    "cells, match",
    [
        ([("markdown", "# T", None), ("code", "x = 1", None)], "one code cell tagged 'setup', found 0"),
        ([("code", "x = 1", ["setup"]), ("code", "y = 1", ["setup"])], "found 2"),
        (
            [
                ("markdown", "# T", None),
                ("markdown", "b", ["colab-badge"]),
                ("markdown", "c", ["colab-badge"]),
                ("code", "x = 1", ["setup"]),
            ],
            "2 cells are tagged 'colab-badge'",
        ),
        (
            [
                (
                    "markdown",
                    "# T\n[![Open In Colab](x)](https://colab.research.google.com/github/a/b/blob/main/n.ipynb)",
                    None,
                ),
                ("code", "x = 1", ["setup"]),
            ],
            "cell 0 links to Colab by hand",
        ),
    ],
)
def test_notebooks_the_renderer_cannot_place_its_cells_in(schedule, cells, match):
    with pytest.raises(render.RenderError, match=match):
        render.render_notebook(_notebook(*cells), schedule, "notebooks/n.ipynb")


@pytest.fixture
def course_copy(tmp_path):
    for name in ("notebooks", "source", "release"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (tmp_path / "course").mkdir()
    shutil.copy(ROOT / "course" / "schedule.yml", tmp_path / "course")
    shutil.copy(ROOT / "README.md", tmp_path)
    return tmp_path


def test_check_passes_on_the_checkout(capsys):
    assert render.main(["--check"]) == 0, capsys.readouterr().err


def test_check_catches_a_notebook_edited_by_hand(course_copy, capsys):
    week = course_copy / SCHEDULE["weeks"][0]["notebooks"][0]
    ref = f'@{SCHEDULE["ref"]}\\"'
    assert week.read_text().count(ref) == 1
    week.write_text(week.read_text().replace(ref, '@dev\\"'))
    assert render.main(["--check"], root=course_copy) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"out of date: {week.relative_to(course_copy)}: the badge cell or the head of the setup cell",
        "run: python course/render.py",
    ]
    assert render.main([], root=course_copy) == 0
    assert render.main(["--check"], root=course_copy) == 0, capsys.readouterr().err


def test_check_catches_a_schedule_the_notebooks_do_not_follow(course_copy, capsys):
    schedule = course_copy / "course" / "schedule.yml"
    schedule.write_text(schedule.read_text().replace(f"\nref: {SCHEDULE['ref']}\n", "\nref: 2026-fall\n", 1))
    assert render.main(["--check"], root=course_copy) == 1
    lines = capsys.readouterr().err.splitlines()
    assert sum(x.startswith("out of date:") for x in lines) == len(RENDERED) + 1, lines  # and the README table
    assert sum(x.startswith("release out of date:") for x in lines) == len(RELEASED)
    assert lines[-1] == "run: adl-grade release (after python course/render.py)"
    assert render.main([], root=course_copy) == 0
    capsys.readouterr()
    assert render.main(["--check"], root=course_copy) == 1, "release/ still opens and installs the old ref"
    lines = capsys.readouterr().err.splitlines()
    assert not any(x.startswith("out of date:") for x in lines), lines
    assert sum(x.startswith("release out of date:") for x in lines) == len(RELEASED)
    week = course_copy / SCHEDULE["weeks"][0]["notebooks"][0]
    assert "adl-course-kit@2026-fall" in week.read_text() and "/blob/2026-fall/notebooks/" in week.read_text()
