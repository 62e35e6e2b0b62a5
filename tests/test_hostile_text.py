"""Student-supplied text that reaches the instructor: file names on the terminal, names and notes in
report.md, and notebook values that would otherwise stop the batch (issue 13)."""

from __future__ import annotations

import copy
import html
import inspect
import json
import os
import pathlib
import re
import zipfile

import markdown_it
import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder import cli, ingest, reports, scoring
from autograder.course import load_course
from autograder.notebook import InvalidNotebook, parse_submission, read_source, restore

ROOT = pathlib.Path(__file__).resolve().parent.parent
RELEASE = json.loads((ROOT / "release" / "hw1" / "hw1.ipynb").read_text())
# What a terminal obeys: C0 controls but the line break, DEL and C1 (CSI, OSC, ...), and bidi overrides.
TERMINAL_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def course_root(empty_course):
    return empty_course.root


# ------------------------------------------------------------------------------------ the terminal

HOSTILE_NAMES = {
    "\x1b]0;pwned\x07evil_hw1.ipynb": "evil_hw1.ipynb",  # OSC: sets the terminal's title
    "\x1b[2J\x1b[31mred_hw1.ipynb": "red_hw1.ipynb",  # CSI: clears the screen, then red
    "abc\u202egpj.ipynb": "gpj.ipynb",  # right-to-left override: shows as abcbnyp.jpg
    "\x9b2Jc1_hw1.ipynb": "c1_hw1.ipynb",  # C1 CSI
    "x\n  collected 99 submissions_hw1.ipynb": "collected 99",  # a forged line of output
}


def test_collect_prints_hostile_file_names_escaped(course_root, tmp_path, capsys):
    download = tmp_path / "dl.zip"
    with zipfile.ZipFile(download, "w") as zf:
        for name in HOSTILE_NAMES:
            zf.writestr(name, b"{}")
    assert cli.main(["--course", str(course_root), "collect", "hw1", str(download)]) == 0
    out = capsys.readouterr().out
    assert not TERMINAL_CONTROL.findall(out), out
    lines = out.splitlines()
    assert len(lines) == 1 + len(HOSTILE_NAMES), out  # the header, then one line per refused file
    for shown in HOSTILE_NAMES.values():
        assert sum(shown in line for line in lines[1:]) == 1, (shown, out)
    assert "\\x1b]0;pwned\\x07evil_hw1.ipynb" in out and "abc\\u202egpj.ipynb" in out


def test_collect_prints_undecodable_folder_names(course_root, tmp_path, capsys):
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / os.fsdecode(b"\xff\x1b[2Jbad_hw1.ipynb")).write_bytes(b"{}")  # not UTF-8: a lone surrogate
    assert cli.main(["--course", str(course_root), "collect", "hw1", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "rejected \\udcff\\x1b[2Jbad_hw1.ipynb: the name does not match" in out
    assert not TERMINAL_CONTROL.findall(out)


def test_printable_escapes_and_bounds():
    assert ingest.printable("alice_hw1.ipynb") == "alice_hw1.ipynb"
    assert ingest.printable("caf\u00e9 \u4e2d\u6587 \U0001f600") == "caf\u00e9 \u4e2d\u6587 \U0001f600"
    assert ingest.printable("\x1b\x07\x9b\u202e\u2028\u200b\ud800\t") == (
        "\\x1b\\x07\\x9b\\u202e\\u2028\\u200b\\ud800\\x09"
    )
    shown = ingest.printable("\x1b" * 10_000)
    assert len(shown) == ingest.MAX_SHOWN and shown.endswith("[...]")


def result(student: str, flags=(), notes=(), points=1.0) -> scoring.Result:
    qs = [scoring.QuestionResult("q1_forward", points, 1.0, "passed" if points else "failed")]
    return scoring.Result(student, "hw1", qs, list(flags), 0.0, "k", list(notes))


def test_grade_table_escapes_student_names():
    table = reports.format_table([result("\x1b[2J\x1b]0;x\x07mallory", ["\x1b[31mred"]), result("alice")])
    assert not TERMINAL_CONTROL.findall(table)
    assert "\\x1b[2J\\x1b]0;x\\x07mallory" in table and "alice" in table


# --------------------------------------------------------------------------------------- report.md

HOSTILE = "<script>alert(1)</script>eve_smith"
NOTES = [
    "the notebook asked for the kernel '<img src=x onerror=alert(1)>'; it was graded with Python 3",
    "not graded: the cells ['[x](javascript:alert(1))', '<script>'] appear more than once",
    "![pixel](http://evil.example/track.png) and <a href='javascript:alert(1)'>click</a>",
    "a *bold* | table | break\n\n# heading\n<iframe src=x>",
]


def test_report_escapes_student_strings(course_root):
    course = load_course(course_root)
    results = [result(HOSTILE, ["metadata changed", "<img src=x onerror=alert(1)>"], NOTES, 0.0), result("alice_smith")]
    text = reports.write_report(course, "hw1", results).read_text()
    assert "<script" not in text and "<img" not in text and "<iframe" not in text and "<a " not in text
    assert not re.search(r"(?<!\\)\]\((?:javascript|http)", text), text
    assert len(re.findall(r"^#+ ", text, re.M)) == 5  # only the report's own title and sections are headings
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    images = re.findall(r"<img [^>]*>", rendered)
    assert images == [  # the report's own
        '<img src="question_statistics.png" alt="question statistics" />',
        '<img src="score_distribution.png" alt="score distribution" />',
    ]
    assert not re.search(r"<(script|a|iframe)\b", rendered), rendered
    assert f"<strong>{html.escape(HOSTILE, quote=False)}</strong>" in rendered  # still readable
    assert "[x](javascript:alert(1))" in html.unescape(rendered)


def test_feedback_template_autoescapes():
    """write_feedback renders student strings through Jinja with autoescape on (checked, not changed)."""
    assert "autoescape=True" in inspect.getsource(reports.write_feedback)


# ----------------------------------------------------------------------------- notebook validation


def graded_index(nb: dict) -> int:
    def graded(cell):
        meta = cell["metadata"].get("nbgrader")
        return isinstance(meta, dict) and meta.get("grade_id")

    return next(i for i, c in enumerate(nb["cells"]) if graded(c))


def with_grade_id(value) -> dict:
    nb = copy.deepcopy(RELEASE)
    nb["cells"][graded_index(nb)]["metadata"]["nbgrader"]["grade_id"] = value
    return nb


@pytest.mark.parametrize(
    "value, kind",
    [
        (["q1"], "a list"),
        ({"id": "q1"}, "an object"),
        (7, "a number"),
        (True, "true or false"),
    ],
)
def test_grade_id_that_is_not_text_is_refused(value, kind):
    with pytest.raises(InvalidNotebook, match=f"grade id that is {kind}, not text"):
        parse_submission(json.dumps(with_grade_id(value)).encode())


STREAM = {"output_type": "stream", "name": "stdout", "text": "\ud83d"}  # half of an emoji


@pytest.mark.parametrize(
    "where, edit",
    [
        ("cells/2/source", lambda nb: nb["cells"][2].__setitem__("source", "x = '\ud800'")),
        ("metadata/kernelspec/display_name", lambda nb: nb["metadata"]["kernelspec"].update(display_name="\udfff")),
        (
            "cells/1/outputs/0/text",
            lambda nb: nb["cells"][1].update(cell_type="code", execution_count=1, outputs=[STREAM]),
        ),
        ("metadata (a key", lambda nb: nb["metadata"].__setitem__("x\udc00", 1)),
    ],
)
def test_lone_surrogate_is_refused(where, edit):
    nb = copy.deepcopy(RELEASE)
    edit(nb)
    data = json.dumps(nb).encode()  # ensure_ascii: the surrogate travels as the escape \ud800
    with pytest.raises(InvalidNotebook, match=f"broken character .* at {re.escape(where)}"):
        parse_submission(data)


def test_escaped_surrogate_pairs_are_fine():
    nb = copy.deepcopy(RELEASE)
    nb["cells"][2]["source"] = "print('\U0001f600')"
    assert parse_submission(json.dumps(nb).encode()).cells[2].source == "print('\U0001f600')"


def test_deep_nesting_is_refused():
    data = b'{"cells": [], "metadata": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(InvalidNotebook, match="nests lists or objects too deeply"):
        parse_submission(data)


def test_duplicate_ids_are_counted_once_each_and_listed_briefly():
    nb = copy.deepcopy(RELEASE)
    extra = [copy.deepcopy(nb["cells"][graded_index(nb)]) for _ in range(15)]
    for i, cell in enumerate(extra):
        cell["metadata"]["nbgrader"]["grade_id"] = f"copy{i % 7}"  # copy0 three times, copy1-6 twice
        cell["id"] = f"dup{i}"
    nb["cells"] += extra
    shown = r"\['copy0', 'copy1', 'copy2', 'copy3', 'copy4'\] \(and 2 more\) appear more than once"
    with pytest.raises(InvalidNotebook, match=shown):
        parse_submission(json.dumps(nb).encode())
    source = inspect.getsource(parse_submission)
    assert ".count(" not in source and "Counter(" in source  # linear in the number of cells


# ------------------------------------------------------------------------------ fuzz: never a crash

WEIRD_STRINGS = [
    "",
    "q1_forward",
    "\ud800",
    "\udfff\ud800",
    "\x00",
    "\x1b[2J",
    "\u202e",
    "a" * 300,
    "<script>",
    "[x](javascript:x)",
    "\U0001f600",
    "\\",
    '"',
    "0",
]


# Any JSON value, with the strings a hostile student would try among Hypothesis' own.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(WEIRD_STRINGS)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(WEIRD_STRINGS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _graded_meta(nb):
    return nb["cells"][graded_index(nb)]["metadata"]


# Where a value can be planted in a submission: (what, how) with how(notebook, value, index).
SPOTS = [
    ("grade_id", lambda nb, v, i: _graded_meta(nb)["nbgrader"].__setitem__("grade_id", v)),
    (
        "a grading flag",
        lambda nb, v, i: _graded_meta(nb)["nbgrader"].__setitem__(["points", "solution", "grade", "locked"][i % 4], v),
    ),
    ("the nbgrader metadata", lambda nb, v, i: _graded_meta(nb).__setitem__("nbgrader", v)),
    ("a cell's source", lambda nb, v, i: nb["cells"][i % len(nb["cells"])].__setitem__("source", v)),
    ("a cell's tags", lambda nb, v, i: nb["cells"][i % len(nb["cells"])]["metadata"].__setitem__("tags", v)),
    ("the kernel name", lambda nb, v, i: nb["metadata"]["kernelspec"].__setitem__("name", v)),
    ("notebook metadata", lambda nb, v, i: nb["metadata"].__setitem__(WEIRD_STRINGS[i % len(WEIRD_STRINGS)], v)),
    (
        "an output",
        lambda nb, v, i: nb["cells"].append(
            {
                "cell_type": "code",
                "metadata": {},
                "source": "x",
                "id": f"fz{len(nb['cells'])}",
                "execution_count": None,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": v}],
            }
        ),
    ),
]
TRUSTED = read_source(ROOT / "source" / "hw1" / "hw1.ipynb")[1]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(SPOTS), JSON_VALUES, st.integers(0, 10**6)), min_size=1, max_size=3))
def test_generated_values_never_crash_validation_or_restore(plants):
    """Any JSON value in a valid notebook's grade ids, grading flags, metadata, sources and outputs:
    parse_submission returns or raises InvalidNotebook (nothing else); what it returns restores and saves."""
    nb = copy.deepcopy(RELEASE)
    for (_, plant), value, index in plants:
        plant(nb, value, index)
    try:
        parsed = parse_submission(json.dumps(nb).encode())
    except InvalidNotebook as exc:
        assert str(exc)
        return
    restored = restore(parsed, TRUSTED)
    nbformat.writes(restored.notebook).encode("utf-8")
