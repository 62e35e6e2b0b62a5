"""autograder.sample_class: hw1's roster (source/hw1/sample_class.yml) is checked against the release, and every
expected.json is read through one checked reader."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import nbformat
import pytest

from autograder.course import CourseError
from autograder.expected import (
    ExpectedError,
    compare_with_expected,
    extra_cases,
    needs_sandbox,
    read_expected,
    read_manual_points,
)
from autograder.sample_class import Answer, RosterError, fill, load_roster

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "autograder" / "samples"
TAMPERS = dict.fromkeys(["metadata"])  # as the tool passes them: a mapping of name to edit


def _release():
    """A release with a one-stub solution (indented, in a def), a two-stub solution, their test cells and a
    question graded by hand."""
    nb = nbformat.v4.new_notebook()

    def cell(gid, source, solution=False, grade=False, kind="code"):
        md = {"grade_id": gid, "solution": solution, "grade": grade, "locked": not solution, "schema_version": 3}
        if grade:
            md["points"] = 2
        new = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(new(source, metadata={"nbgrader": md}))

    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    cell("q1_solution", "def f(x):\n    " + stub.replace("\n", "\n    "), solution=True)
    cell("q1", "assert f(1) == 2", grade=True)
    cell("q2_solution", f"{stub}\n\nprint('between')\n{stub}", solution=True)
    cell("q2", "assert y == 3", grade=True)
    cell("q3_words", "YOUR ANSWER HERE", solution=True, grade=True, kind="markdown")
    return nb


CORRECT = """
    correct:
      q1_solution: |-
        return x + 1
      q2_solution:
        - |-
          z = 3
        - |-
          y = z
"""


def _roster(tmp_path, students: str, correct: str = CORRECT):
    path = tmp_path / "sample_class.yml"
    path.write_text(textwrap.dedent(correct) + "students:\n" + textwrap.indent(textwrap.dedent(students), "  "))
    return path


def _load(tmp_path, students: str, correct: str = CORRECT):
    return load_roster(_roster(tmp_path, students, correct), _release(), TAMPERS, release="release/hwx/hwx.ipynb")


# ----------------------------------------------------------------------------------------------------------
# The roster
# ----------------------------------------------------------------------------------------------------------


def test_fill_replaces_each_stub_at_its_indent_and_puts_the_prefix_on_top():
    source = "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert fill(source, Answer(("y = x\nreturn y",))) == "def f(x):\n    y = x\n    return y"
    assert fill(source, Answer(("return x",), prefix="import os")) == "import os\n\ndef f(x):\n    return x"
    with pytest.raises(ValueError, match=r"1 '# YOUR CODE HERE' stub\(s\) but the roster gives 2"):
        fill(source, Answer(("a", "b")))


def test_a_student_starts_from_the_correct_answers_or_the_release(tmp_path):
    students = _load(
        tmp_path,
        """
        - id: s01_ann
          note: Correct but for q1.
          answers:
            q1_solution: |-
              return x
          failing: {q1: f(1) is 1}
        - id: s02_ben
          note: Only q1, with a prefix above the correct code.
          starts_from: release
          answers:
            q1_solution: {prefix: import os}
          failing: {q2: y is never defined}
          test_edits: {q2: null}
          flags: [test deleted]
          tamper: metadata
          needs_sandbox: true
          by_hand: false
        - id: s03_cyd
          note: A broken upload.
          truncate_at: 0.5
    """,
    )
    ann, ben, cyd = students
    assert ann.answers == {"q1_solution": Answer(("return x",)), "q2_solution": Answer(("z = 3", "y = z"))}
    assert ann.failing == {"q1": "f(1) is 1"} and ann.by_hand and ann.tamper is None
    assert ben.answers == {"q1_solution": Answer(("return x + 1",), prefix="import os")}
    assert (ben.test_edits, ben.flags, ben.tamper, ben.needs_sandbox, ben.by_hand) == (
        {"q2": None},
        ("test deleted",),
        "metadata",
        True,
        False,
    )
    assert cyd.truncate_at == 0.5 and cyd.failing == {}


@pytest.mark.parametrize(
    ("students", "message"),
    [
        ("- id: s01_ann\n", r"student 's01_ann': missing \['note'\]"),
        ("- {id: s01_ann, note: x, failling: {q1: typo}}\n", r"student 's01_ann': unknown keys \['failling'\]"),
        ("- {note: x}\n", r"student 1: missing \['id'\]"),
        ("- {id: Ann, note: x}\n", r"student 'Ann': 'id' must look like s07_grace"),
        (
            "- {id: s01_ann, note: x, answers: {q9_solution: 'y = 1'}}\n",
            r"student 's01_ann': 'answers' names \['q9_solution'\], not among the cells of release/hwx/hwx.ipynb",
        ),
        (
            "- {id: s01_ann, note: x, answers: {q3_words: 'words'}}\n",  # graded by hand: built from the source
            r"'answers' names \['q3_words'\]",
        ),
        (
            "- {id: s01_ann, note: x, failing: {q1_solution: why}}\n",
            r"student 's01_ann': 'failing' names \['q1_solution'\], .* \(\['q1', 'q2'\]\)",
        ),
        ("- {id: s01_ann, note: x, test_edits: {q7: pass}}\n", r"'test_edits' names \['q7'\]"),
        ("- {id: s01_ann, note: x, failing: [q1]}\n", r"'failing' must be a mapping of grade ids, got list"),
        ("- {id: s01_ann, note: x, failing: {q1: 3}}\n", r"each test cell under 'failing' needs a reason"),
        ("- {id: s01_ann, note: x, flags: timeout}\n", r"'flags' must be a list of strings"),
        ("- {id: s01_ann, note: x, truncate_at: half}\n", r"'truncate_at' .* got 'half'"),
        ("- {id: s01_ann, note: x, truncate_at: 1.5}\n", r"'truncate_at' .* got 1.5"),
        ("- {id: s01_ann, note: x, truncate_at: 0.5, failing: {q1: cut}}\n", r"a truncated file fails in every"),
        ("- {id: s01_ann, note: x, needs_sandbox: 'yes'}\n", r"'needs_sandbox' must be true or false, got 'yes'"),
        ("- {id: s01_ann, note: x, tamper: pickle}\n", r"unknown tamper 'pickle'; known: \['metadata'\]"),
        ("- {id: s01_ann, note: x, tamper: [metadata]}\n", r"unknown tamper \['metadata'\]"),
        ("- {id: s01_ann, note: x, failing: {1: why}}\n", r"'failing' names \['1'\]"),
        ("- {id: s01_ann, note: x, starts_from: blank}\n", r"'starts_from' is 'correct' .* got 'blank'"),
        (
            "- {id: s01_ann, note: x, answers: {q2_solution: 'y = 3'}}\n",
            r"student 's01_ann', answer q2_solution: the release has 2 .* stub\(s\) but the roster gives 1",
        ),
        ("- {id: s01_ann, note: x, answers: {q1_solution: 7}}\n", r"answer q1_solution: expected the code as a string"),
        ("- {id: s01_ann, note: x, answers: {q1_solution: {before: x}}}\n", r"has 'prefix' .* got \['before'\]"),
        ("- {id: s01_ann, note: x}\n- {id: s01_ann, note: y}\n", r"student ids must be unique: \['s01_ann'\]"),
        ("- just a string\n", r"student 1: expected a mapping, got str"),
    ],
)
def test_a_bad_student_is_named_with_what_to_fix(tmp_path, students, message):
    with pytest.raises(RosterError, match=message):
        _load(tmp_path, students)


@pytest.mark.parametrize(
    ("correct", "message"),
    [
        ("correct:\n  q1_solution: 'return x'\n", r"'correct' has no answer for \['q2_solution'\] of release/hwx"),
        (
            "correct:\n  q1_solution: 'return x'\n  q2_solution: 'y = 3'\n",
            r"correct q2_solution: the release has 2 .* stub\(s\) but the roster gives 1",
        ),
        ("correct: [q1_solution]\n", r"expected a mapping with 'correct'"),
    ],
)
def test_bad_correct_answers_are_refused(tmp_path, correct, message):
    with pytest.raises(RosterError, match=message):
        _load(tmp_path, "- {id: s01_ann, note: x}\n", correct=correct)


def test_a_missing_or_broken_roster_file_is_refused(tmp_path):
    with pytest.raises(RosterError, match=r"no such file"):
        load_roster(tmp_path / "sample_class.yml", _release())
    (tmp_path / "sample_class.yml").write_text("correct: {q1_solution: [unclosed\n")
    with pytest.raises(RosterError, match=r"sample_class.yml: not valid YAML"):
        load_roster(tmp_path / "sample_class.yml", _release())


def test_hw1_roster_fits_the_release_and_expected_json():
    students = load_roster(
        ROOT / "source" / "hw1" / "sample_class.yml",
        nbformat.read(ROOT / "release" / "hw1" / "hw1.ipynb", as_version=4),
        ("browser", "metadata", "outputs", "pickle"),
    )
    expected = read_expected(SAMPLES / "hw1")
    assert [s.id for s in students] == list(expected)
    assert {s.id: list(s.flags) for s in students} == {sid: e["flags"] for sid, e in expected.items()}
    assert needs_sandbox(SAMPLES / "hw1") == tuple(sorted(f"{s.id}_hw1.ipynb" for s in students if s.needs_sandbox))


def test_make_sample_class_stops_on_a_bad_roster_with_its_message(tmp_path):
    text = (ROOT / "source" / "hw1" / "sample_class.yml").read_text()
    bad = tmp_path / "sample_class.yml"
    bad.write_text(
        text.replace(
            "q7_banknote: p_bank comes from the wrong sigmoid", "q7_banknot: p_bank comes from the wrong sigmoid", 1
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "make_sample_class.py"),
            "--check",
            "--only",
            "hw1",
            "--roster",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "student 's14_oscar': 'failing' names ['q7_banknot']" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------------------------------
# expected.json
# ----------------------------------------------------------------------------------------------------------


def _student(**changes):
    entry = {"file": "s01_ann_hwx.ipynb", "points": {"q1": 2, "q2": 0}, "total": 2, "note": "n", "flags": []}
    return {**entry, **changes}


def _expected_dir(tmp_path, students, touch=("s01_ann_hwx.ipynb",)) -> pathlib.Path:
    for name in touch:
        (tmp_path / name).write_text("{}")
    (tmp_path / "expected.json").write_text(json.dumps({"rules": [], "students": students}))
    return tmp_path


@pytest.mark.parametrize("assignment", sorted(p.parent.name for p in SAMPLES.glob("*/expected.json")))
def test_every_committed_expected_json_reads(assignment):
    students = read_expected(SAMPLES / assignment)
    assert students
    for entry in students.values():
        assert (SAMPLES / assignment / entry["file"]).is_file()
        assert entry["total"] == sum(entry["points"].values())


def test_read_expected_keeps_the_entries_as_written(tmp_path):
    students = read_expected(_expected_dir(tmp_path, {"s01_ann": _student(ci=True, manual=["q3_words"])}))
    assert students == {"s01_ann": _student(ci=True, manual=["q3_words"])}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_student(file="s02_bob_hwx.ipynb"), r"student 's01_ann': its submission 's02_bob_hwx.ipynb' is not a file"),
        (_student(file="../s01_ann_hwx.ipynb"), r"its submission '../s01_ann_hwx.ipynb' is not a file in"),
        ({k: v for k, v in _student().items() if k != "flags"}, r"student 's01_ann': missing \['flags'\]"),
        (_student(flagz=[]), r"unknown keys \['flagz'\]"),
        (_student(points={"q1": "2"}), r"'points' must be a mapping of grade id to a number, got \{'q1': '2'\}"),
        (_student(points={"q1": True}, total=1), r"'points' must be a mapping of grade id to a number"),
        (_student(total="2"), r"'total' must be a number, got '2'"),
        (_student(flags="timeout"), r"'flags' must be a list of strings, got 'timeout'"),
        (_student(needs_sandbox="yes"), r"'needs_sandbox' must be true or false, got 'yes'"),
        (_student(ci=1), r"'ci' must be true or false, got 1"),
        (_student(manual="q3_words"), r"'manual' must be a list of grade ids"),
        (_student(failing=["q1"]), r"'failing' must be a mapping of grade id to a reason"),
        (_student(total=14), r"'total' is 14 but its points add up to 2"),
        (["not", "an", "object"], r"student 's01_ann': expected an object, got list"),
    ],
)
def test_a_malformed_student_is_named_with_what_is_wrong(tmp_path, entry, message):
    with pytest.raises(ExpectedError, match=message) as info:
        read_expected(_expected_dir(tmp_path, {"s01_ann": entry}))
    assert "tools/make_sample_class.py" in str(info.value)


def test_a_missing_or_malformed_file_is_refused(tmp_path):
    with pytest.raises(ExpectedError, match=r"expected.json: no such file"):
        read_expected(tmp_path)
    (tmp_path / "expected.json").write_text('{"students": {"s01_ann": ')
    with pytest.raises(ExpectedError, match=r"expected.json: not valid JSON \(Expecting value: line 1"):
        read_expected(tmp_path)
    (tmp_path / "expected.json").write_text('{"rules": []}')
    with pytest.raises(ExpectedError, match=r"expected a JSON object with a 'students' object"):
        read_expected(tmp_path)


def test_adl_grade_reports_a_malformed_expected_json_as_a_course_error(tmp_path):
    _expected_dir(tmp_path, {"s01_ann": _student(ci="no")})
    assert issubclass(ExpectedError, CourseError)  # cli.main prints it as "adl-grade: error: ..."
    for reader in (extra_cases, needs_sandbox):
        with pytest.raises(ExpectedError, match=r"'ci' must be true or false, got 'no'"):
            reader(tmp_path)
    assert extra_cases(tmp_path / "no-class") == ()  # a class without expected.json: nothing to compare


@pytest.mark.parametrize(
    ("weights", "uses_backbone", "explained"),
    [("stand-in", True, True), ("keras cache", True, False), ("stand-in", False, False)],
)
def test_the_demo_explains_grades_that_need_the_pretrained_weights(
    tmp_path, monkeypatch, capsys, weights, uses_backbone, explained
):
    """On a machine without MobileNetV2's ImageNet weights, an accuracy-based grade of an assignment built on
    the backbone can differ from expected.json: the demo says why instead of leaving a bare UNEXPECTED."""
    from adl_helpers import pretrained
    from autograder import scoring

    sample = _expected_dir(tmp_path, {"s01_ann": _student()})
    source = tmp_path / "hwx.ipynb"
    source.write_text("adl.pretrained.load_mobilenet_v2(...)" if uses_backbone else "np.mean(x)")
    monkeypatch.setattr(pretrained, "weights_source", lambda shape, profile: weights)
    got = scoring.Result(
        "s01_ann",
        "hwx",
        [scoring.QuestionResult("q1", 0.0, 2.0, "failed"), scoring.QuestionResult("q2", 0.0, 2.0, "failed")],
        [],
        1.0,
        "k",
    )
    compare_with_expected(sample, [got], source, "smoke")
    out = capsys.readouterr().out
    assert "0/1 as expected" in out and "UNEXPECTED s01_ann" in out
    assert ("stand-in backbone with random weights" in out) == explained


def test_read_manual_points_in_the_files_order(tmp_path):
    folder = _expected_dir(tmp_path, {"s01_ann": _student()})
    data = json.loads((folder / "expected.json").read_text())
    (folder / "expected.json").write_text(json.dumps({**data, "manual_points": {"q9_words": 3, "q2_why": 1.5}}))
    assert list(read_manual_points(folder).items()) == [("q9_words", 3.0), ("q2_why", 1.5)]
    (tmp_path / "none").mkdir()
    assert read_manual_points(_expected_dir(tmp_path / "none", {"s01_ann": _student()})) == {}
    assert read_manual_points(SAMPLES / "hw1") == {"q8_banknote_errors": 3.0}


@pytest.mark.parametrize("bad", [["q9_words"], {"q9_words": "3"}, {"q9_words": True}])
def test_malformed_manual_points_are_refused(tmp_path, bad):
    folder = _expected_dir(tmp_path, {"s01_ann": _student()})
    data = json.loads((folder / "expected.json").read_text())
    (folder / "expected.json").write_text(json.dumps({**data, "manual_points": bad}))
    with pytest.raises(ExpectedError, match="'manual_points' must map grade ids to numbers"):
        read_manual_points(folder)
