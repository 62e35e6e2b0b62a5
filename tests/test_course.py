"""course/schedule.yml, the README's notebook table and the files on disk agree."""

import copy
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course"))
import render_readme  # noqa: E402


@pytest.fixture(scope="module")
def schedule():
    return render_readme.load_schedule()


def test_readme_table_is_current(schedule):
    text = (ROOT / "README.md").read_text()
    assert render_readme.render_readme(text, schedule) == text, "run: python course/render_readme.py"


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


def test_badges_point_at_the_notebook(schedule):
    table = render_readme.render_table(schedule)
    for week in schedule["weeks"]:
        for nb in week["notebooks"]:
            assert f"colab.research.google.com/github/{schedule['repository']}/blob/{schedule['branch']}/{nb})" in table


def test_stale_readme_is_detected(schedule):
    text = (ROOT / "README.md").read_text()
    changed = copy.deepcopy(schedule)
    changed["weeks"][0]["title"] = "Something else"
    assert render_readme.render_readme(text, changed) != text
    with pytest.raises(ValueError, match="markers"):
        render_readme.render_readme("no markers here", schedule)


def test_schedule_validation(tmp_path):
    bad = tmp_path / "s.yml"
    bad.write_text("repository: a/b\nbranch: main\nweeks:\n  - week: 1\n    title: x\n")
    with pytest.raises(ValueError, match=r"lacks \['notebooks'\]"):
        render_readme.load_schedule(bad)
