"""A sample class's ``expected.json``: the grade each sample submission must get, read and checked.

``tools/make_sample_class.py`` writes it (hw1 from ``source/hw1/sample_class.yml``, later assignments from
``wrong_answers.yml``); :func:`read_expected` (and :func:`read_manual_points`) is its one reader, for ``adl-grade demo`` and the tests, which
compare the grades with it. A malformed file is refused with what is wrong and how to rewrite it. The demo
asks :func:`extra_cases` and :func:`needs_sandbox` which students to grade and prints
:func:`compare_with_expected`.
"""

from __future__ import annotations

import json
import pathlib
from typing import NotRequired, TypedDict, cast

from autograder import scoring
from autograder.course import CourseError
from autograder.ingest import printable

EXPECTED_FILE = "expected.json"
REGENERATE = "run `.venv/bin/python tools/make_sample_class.py` to rewrite it"


class ExpectedError(CourseError):
    """An expected.json that is malformed, or names a submission that is not beside it (``adl-grade`` reports it
    as it reports a course it cannot use)."""


class ExpectedStudent(TypedDict):
    """One student of expected.json: the grade the sample submission must get."""

    file: str  # the submission, beside expected.json
    points: dict[str, float]  # autograded test cell (grade id) -> points (a question graded by hand is not one)
    total: float  # the sum of ``points``
    note: str  # what the submission exercises
    flags: list[str]  # the labels the grader must put on it ("timeout", ...)
    failing: NotRequired[dict[str, str]]  # hw1: test cell -> why it fails
    needs_sandbox: NotRequired[bool]  # hw1: graded only inside bubblewrap (it attacks the course's files)
    ci: NotRequired[bool]  # wrong-answer classes: graded by CI and the plain demo
    manual: NotRequired[list[str]]  # questions graded by hand that the student answered (awaiting a grade)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_EXPECTED_TYPES = {  # key: (required, check, what it must be)
    "file": (True, lambda v: isinstance(v, str), "a file name"),
    "points": (
        True,
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_number(p) for k, p in v.items()),
        "a mapping of grade id to a number",
    ),
    "total": (True, _is_number, "a number"),
    "note": (True, lambda v: isinstance(v, str), "a string"),
    "flags": (True, lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v), "a list of strings"),
    "failing": (
        False,
        lambda v: isinstance(v, dict) and all(isinstance(r, str) for r in v.values()),
        "a mapping of grade id to a reason",
    ),
    "needs_sandbox": (False, lambda v: isinstance(v, bool), "true or false"),
    "ci": (False, lambda v: isinstance(v, bool), "true or false"),
    "manual": (False, lambda v: isinstance(v, list) and all(isinstance(g, str) for g in v), "a list of grade ids"),
}


def read_expected(sample_dir: pathlib.Path) -> dict[str, ExpectedStudent]:
    """The students of ``sample_dir/expected.json``, checked: student id -> what the submission must get.

    Args:
        sample_dir: a sample class folder (``autograder/samples/<assignment>``).

    Returns:
        Student id -> :class:`ExpectedStudent`, in the file's order.

    Raises:
        ExpectedError: the file is missing, not JSON, has no ``students``, a student lacks a key or has one of
            the wrong type, its total is not the sum of its points, or its submission is not in ``sample_dir``.
    """
    path = pathlib.Path(sample_dir) / EXPECTED_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExpectedError(f"{path}: no such file: {REGENERATE}") from None
    except json.JSONDecodeError as exc:
        raise ExpectedError(f"{path}: not valid JSON ({exc}): {REGENERATE}") from None
    if not isinstance(data, dict) or not isinstance(data.get("students"), dict):
        raise ExpectedError(f"{path}: expected a JSON object with a 'students' object: {REGENERATE}")
    out: dict[str, ExpectedStudent] = {}
    for sid, entry in data["students"].items():
        where = f"{path}, student {sid!r}"
        if not isinstance(entry, dict):
            raise ExpectedError(f"{where}: expected an object, got {type(entry).__name__}: {REGENERATE}")
        missing = sorted(k for k, (required, _, _) in _EXPECTED_TYPES.items() if required and k not in entry)
        unknown = sorted(set(entry) - set(_EXPECTED_TYPES))
        if missing or unknown:
            raise ExpectedError(
                f"{where}: "
                + "; ".join([f"missing {missing}"] * bool(missing) + [f"unknown keys {unknown}"] * bool(unknown))
                + f": {REGENERATE} (or add a new key to ExpectedStudent)"
            )
        for key, value in entry.items():
            _, check, what = _EXPECTED_TYPES[key]
            if not check(value):
                raise ExpectedError(f"{where}: '{key}' must be {what}, got {value!r}: {REGENERATE}")
        if abs(entry["total"] - sum(entry["points"].values())) > 1e-9:
            raise ExpectedError(
                f"{where}: 'total' is {entry['total']} but its points add up to "
                f"{sum(entry['points'].values())}: {REGENERATE}"
            )
        name = entry["file"]
        if pathlib.PurePath(name).name != name or name in ("", ".", "..") or not (path.parent / name).is_file():
            raise ExpectedError(f"{where}: its submission {name!r} is not a file in {path.parent}: {REGENERATE}")
        out[sid] = cast(ExpectedStudent, dict(entry))  # every key checked above
    return out


def read_manual_points(sample_dir: pathlib.Path) -> dict[str, float]:
    """The questions of ``sample_dir/expected.json`` graded by hand (``manual_points``: grade id -> points), in
    the notebook's order; {} if it has none. ExpectedError if the file is malformed (as :func:`read_expected`)."""
    path = pathlib.Path(sample_dir) / EXPECTED_FILE
    read_expected(sample_dir)  # the same checks, the same messages
    manual = json.loads(path.read_text()).get("manual_points", {})
    if not isinstance(manual, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in manual.items()):
        raise ExpectedError(f"{path}: 'manual_points' must map grade ids to numbers, got {manual!r}: {REGENERATE}")
    return {k: float(v) for k, v in manual.items()}


def compare_with_expected(
    sample: pathlib.Path, results, source: pathlib.Path | None = None, profile: str = "smoke"
) -> None:
    """Print whether the sample class got the grades and flags its expected.json promises (and, where an
    assignment builds on the pretrained backbone and this machine has only its random-weight stand-in, why a
    grade that depends on accuracy can differ)."""
    if not (sample / EXPECTED_FILE).is_file():
        return
    students = read_expected(sample)
    wrong = []
    for r in results:
        exp = students.get(r.student)
        if exp is None:
            continue
        points = {q.grade_id: q.points for q in r.questions if not q.manual}  # graded by hand: not autograded
        if (
            points != {k: float(v) for k, v in exp["points"].items()}
            or r.flags != exp["flags"]
            or _by_hand(r) != exp.get("manual", [])
        ):
            wrong.append(
                f"{printable(r.student)}: got {r.score:g} {r.flags} by hand {_by_hand(r)}, expected "
                f"{exp['total']} {exp['flags']} by hand {exp.get('manual', [])}"
            )
    checked = sum(1 for r in results if r.student in students)
    print(f"  expected grades ({EXPECTED_FILE}): {checked - len(wrong)}/{checked} as expected")
    for line in wrong:
        print(f"  UNEXPECTED {line}")
    if wrong and source is not None and "adl.pretrained" in source.read_text(encoding="utf-8"):
        from adl_helpers import pretrained

        if pretrained.weights_source((96, 96, 3), profile=profile) == "stand-in":  # the kernels' profile
            print(
                "  (expected.json assumes MobileNetV2's ImageNet weights. This machine has neither the data "
                "mirror nor a download of them, so the smoke profile's stand-in backbone with random weights "
                "was used, and questions judged by accuracy can grade differently. See the README, "
                "'Profiles and data'.)"
            )


def _by_hand(result) -> list[str]:
    """The questions of ``result`` answered and left to hand grading (awaiting a grade, or graded)."""
    return [q.grade_id for q in result.questions if q.manual and q.status in (scoring.PENDING, scoring.GRADED_BY_HAND)]


def extra_cases(sample: pathlib.Path) -> tuple[str, ...]:
    """The one-mistake students (``"ci": false`` in expected.json): the plain demo grades only the two students
    who make the first mistake of each test cell between them (see autograder/cases.py)."""
    if not (sample / EXPECTED_FILE).is_file():
        return ()
    return tuple(sorted(e["file"] for e in read_expected(sample).values() if e.get("ci") is False))


def needs_sandbox(sample: pathlib.Path) -> tuple[str, ...]:
    """Files of the sample class that may be graded only inside the sandbox (see expected.json)."""
    if not (sample / EXPECTED_FILE).is_file():
        return ()
    return tuple(sorted(e["file"] for e in read_expected(sample).values() if e.get("needs_sandbox")))
