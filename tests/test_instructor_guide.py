"""course/instructor_guide.md: the semester it describes is the one course/schedule.yml schedules, the commands it
gives exist, the files it names exist, and it never reaches students."""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex

import pytest
import yaml

from autograder.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUIDE = ROOT / "course" / "instructor_guide.md"


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text()


def week_rows(text: str) -> dict[int, list[str]]:
    """{week: [lecture, release, collect and grade, publish]} from the week-by-week table (section 2)."""
    rows = {}
    section = re.search(r"^## 2\..*?(?=^## 3\.)", text, re.M | re.S)
    for line in (section.group(0) if section else text).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            rows[int(cells[0])] = cells[1:]
    return rows


def test_every_week_of_the_schedule_has_its_row(guide):
    schedule = yaml.safe_load((ROOT / "course" / "schedule.yml").read_text())
    rows = week_rows(guide)
    assert sorted(rows) == [w["week"] for w in schedule["weeks"]]
    for w in schedule["weeks"]:
        lecture, release, collect, _ = rows[w["week"]]
        assert lecture == w["title"], f"week {w['week']}: the guide says {lecture!r}, the schedule {w['title']!r}"
        if "assignment" in w:
            assert re.search(rf"\b{w['assignment']}\b", release), f"week {w['week']} releases {w['assignment']}"


def test_homework_is_collected_after_it_is_released(guide):
    rows = week_rows(guide)
    for week, (_, release, _, _) in rows.items():
        for hw in re.findall(r"\bhw\d\b", release):
            later = [w for w, (_, _, collect, _) in rows.items() if w > week and re.search(rf"\b{hw}\b", collect)]
            assert later, f"{hw} is released in week {week} and never collected after it"


def test_the_adl_grade_commands_it_gives_parse(guide):
    parser = build_parser()
    commands = re.findall(r"^adl-grade ([^#\n]+)", guide, re.M) + re.findall(r"`adl-grade ([^`]+)`", guide)
    assert len(commands) >= 8
    for command in commands:
        argv = [a for a in shlex.split(command) if a != "..."]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"the guide's `adl-grade {command}` is not a valid command")


def test_the_files_it_names_exist(guide):
    named = set(re.findall(r"`((?:course|source|autograder|benchmarks|notebooks|tests|tools)/[\w./-]*)`", guide))
    named |= set(re.findall(r"^\.venv/bin/python ([\w./-]+\.py)", guide, re.M))  # the scripts it runs
    assert len(named) >= 8
    missing = [n for n in named if "<" not in n and not (ROOT / n).exists()]
    assert missing == []


def test_students_never_get_it():
    import importlib.util

    spec = importlib.util.spec_from_file_location("student_edition", ROOT / "course" / "student_edition.py")
    edition = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edition)
    assert "course/instructor_guide.md" not in edition.COPIED_FILES
    assert not any(GUIDE.is_relative_to(ROOT / folder) for folder in edition.COPIED)


def test_a_wrong_table_is_caught():
    rows = week_rows("| 1 | TensorFlow 2 and Keras | hw1 | | |\n| 2 | Other | | hw1 | |\n| x | y | z | w | v |")
    assert rows == {1: ["TensorFlow 2 and Keras", "hw1", "", ""], 2: ["Other", "", "hw1", ""]}
    assert isinstance(build_parser(), argparse.ArgumentParser)
