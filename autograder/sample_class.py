"""The sample classes of ``autograder/samples/``: hw1's roster, read and checked against the release.

hw1's class is written by hand in ``source/hw1/sample_class.yml`` (not released: ``nbgrader_config.py`` ignores
it): the correct answers, written the way a student would, then one entry per student::

    correct:
      q1_sigmoid_solution: |-          # one piece of code per '# YOUR CODE HERE' stub of the solution cell
        return np.exp(-np.logaddexp(0.0, -z))
    students:
      - id: s02_bob                    # the file is s02_bob_hw1.ipynb
        note: A sigmoid that overflows for large negative z.   # copied into expected.json
        answers:                       # solution cells that differ from the correct answers
          q1_sigmoid_solution: return 1 / (1 + np.exp(-z))
        failing:                       # test cell -> why it fails; every other test cell earns its points
          q1_sigmoid: np.exp(1000) overflows

:func:`load_roster` reads the file and checks it against the student release (every grade id, every stub), so
that ``tools/make_sample_class.py`` can build the submissions and their ``expected.json`` without surprises.
From hw2 on the classes come from ``wrong_answers.yml`` instead (``autograder/cases.py``).

Every class's ``expected.json`` (what ``adl-grade demo`` and the tests compare the grades with) is read by
:func:`autograder.expected.read_expected`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Collection, Mapping

import yaml

from autograder import rubric
from autograder.notebook import nbgrader_meta

ROSTER_FILE = "sample_class.yml"
STUB_LINE = "# YOUR CODE HERE"
RAISE_LINE = "raise NotImplementedError()"
STUDENT_ID = re.compile(r"s\d+_[a-z]+")


class RosterError(ValueError):
    """sample_class.yml is malformed, or does not fit the release notebook."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a student wrote into one solution cell.

    Args:
        bodies: one piece of code per ``# YOUR CODE HERE`` stub of the cell, in order. Each replaces the stub
            and its ``raise NotImplementedError()`` line, indented like the stub.
        prefix: code the student added at the top of the cell, above the release's code.
    """

    bodies: tuple[str, ...]
    prefix: str = ""


@dataclasses.dataclass(frozen=True)
class Student:
    """One submission of the roster (the keys of its entry in sample_class.yml).

    Args:
        id: the student id; the file is ``<id>_hw1.ipynb``.
        note: what the submission exercises, one or two sentences (copied into expected.json).
        answers: solution grade id -> Answer. A solution cell without an answer keeps the release's stub.
        failing: test grade id -> why that test cell fails after restoration. Every other test cell is
            expected to earn its full points.
        test_edits: test grade id -> the source the student left in that (locked) cell, or None if the
            student deleted the cell.
        truncate_at: if set, only this fraction of the notebook's bytes is written: a broken upload.
        flags: the short labels the grader is expected to put on the submission ("timeout", ...).
        tamper: the name of an edit of the built notebook beyond its answers (metadata, stored outputs, ...),
            one the building tool knows.
        needs_sandbox: the submission attacks the course's files. Without bubblewrap it would succeed (and
            damage the checkout), so the demo and the tests grade it only inside the sandbox.
        by_hand: the student answers the questions graded by hand with the source's sample answer (each then
            awaits a grade); False leaves them as released (0, nothing to grade).
    """

    id: str
    note: str
    answers: Mapping[str, Answer] = dataclasses.field(default_factory=dict)
    failing: Mapping[str, str] = dataclasses.field(default_factory=dict)
    test_edits: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    truncate_at: float | None = None
    flags: tuple[str, ...] = ()
    tamper: str | None = None
    needs_sandbox: bool = False
    by_hand: bool = True


STUDENT_KEYS = {
    "id",
    "note",
    "starts_from",
    "answers",
    "failing",
    "test_edits",
    "truncate_at",
    "flags",
    "tamper",
    "needs_sandbox",
    "by_hand",
}


def fill(source: str, answer: Answer) -> str:
    """``source`` (a released solution cell) with each stub replaced by the next body of ``answer``, and
    ``answer.prefix`` on top. Raises ValueError if the cell has more or fewer stubs than ``answer`` has bodies."""
    lines = source.split("\n")
    out: list[str] = []
    bodies = list(answer.bodies)
    stubs = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = line[: len(line) - len(line.lstrip())]
        if line.strip() == STUB_LINE and i + 1 < len(lines) and lines[i + 1] == indent + RAISE_LINE:
            stubs += 1
            if bodies:
                out.extend((indent + b) if b else "" for b in bodies.pop(0).split("\n"))
            i += 2
            continue
        out.append(line)
        i += 1
    if stubs != len(answer.bodies):
        raise ValueError(
            f"the release has {stubs} '{STUB_LINE}' stub(s) but the roster gives {len(answer.bodies)} piece(s) of code"
        )
    text = "\n".join(out)
    return f"{answer.prefix}\n\n{text}" if answer.prefix else text


def _release_cells(release_nb) -> tuple[dict, set[str]]:
    """(solution grade id -> cell, test grade ids) of the release's autograded code cells."""
    solutions, tests = {}, set()
    for cell in release_nb.cells:
        meta = nbgrader_meta(cell)
        if cell.get("cell_type") != "code" or rubric.is_manual(cell) or not meta.get("grade_id"):
            continue
        if meta.get("solution"):
            solutions[meta["grade_id"]] = cell
        elif meta.get("grade"):
            tests.add(meta["grade_id"])
    return solutions, tests


def _code(value, where: str) -> tuple[str, ...]:
    """The bodies of an answer written as one string (one stub) or a list of strings (one per stub)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RosterError(
        f"{where}: expected the code as a string (one stub) or a list of strings (one per "
        f"stub), got {type(value).__name__}"
    )


def _answer(value, correct: Answer, where: str) -> Answer:
    """An answer as written in the file: code (see :func:`_code`), or a mapping with ``prefix`` and optionally
    ``code`` (default: the correct answer's code)."""
    if not isinstance(value, dict):
        return Answer(_code(value, where))
    unknown = sorted(set(value) - {"code", "prefix"})
    if unknown or not isinstance(value.get("prefix", ""), str):
        raise RosterError(
            f"{where}: an answer written as a mapping has 'prefix' (a string: code above the "
            f"release's) and optionally 'code'; got {sorted(value)}"
        )
    if "code" in value:
        return Answer(_code(value["code"], f"{where}, code"), value.get("prefix", ""))
    return Answer(correct.bodies, value.get("prefix", ""))


def _grade_ids(value, known: Collection[str], key: str, where: str, release: str) -> dict:
    """A mapping whose keys must be grade ids of ``known``."""
    if not isinstance(value, dict):
        raise RosterError(f"{where}: '{key}' must be a mapping of grade ids, got {type(value).__name__}")
    unknown = sorted(str(k) for k in set(value) - set(known))
    if unknown:
        raise RosterError(
            f"{where}: '{key}' names {unknown}, not among the cells of {release} that it may name "
            f"({sorted(known)}): fix the grade id, or update the roster if hw1 changed"
        )
    return dict(value)


def _student(
    raw,
    i: int,
    correct: dict[str, Answer],
    solutions: dict,
    tests: set[str],
    tampers: Collection[str],
    where_file: str,
    release: str,
) -> Student:
    if not isinstance(raw, dict):
        raise RosterError(f"{where_file}, student {i}: expected a mapping, got {type(raw).__name__}")
    sid = raw.get("id")
    where = f"{where_file}, student {sid!r}" if isinstance(sid, str) else f"{where_file}, student {i}"
    missing = sorted({"id", "note"} - set(raw))
    unknown = sorted(set(raw) - STUDENT_KEYS)
    if missing or unknown:
        raise RosterError(
            f"{where}: "
            + "; ".join([f"missing {missing}"] * bool(missing) + [f"unknown keys {unknown}"] * bool(unknown))
            + f" (a student has {sorted(STUDENT_KEYS)})"
        )
    if not isinstance(sid, str) or not STUDENT_ID.fullmatch(sid):
        raise RosterError(f"{where}: 'id' must look like s07_grace (s, a number, _, lowercase letters)")
    if not isinstance(raw["note"], str) or not raw["note"].strip():
        raise RosterError(f"{where}: 'note' must be a sentence saying what the submission exercises")
    starts_from = raw.get("starts_from", "correct")
    if starts_from not in ("correct", "release"):
        raise RosterError(
            f"{where}: 'starts_from' is 'correct' (the correct answers, then 'answers') or "
            f"'release' (only the cells in 'answers' filled in), got {starts_from!r}"
        )
    answers = dict(correct) if starts_from == "correct" else {}
    for gid, value in _grade_ids(raw.get("answers", {}), solutions, "answers", where, release).items():
        answers[gid] = _answer(value, correct[gid], f"{where}, answer {gid}")
    for gid, ans in answers.items():
        _check_fits(solutions[gid].source, ans, f"{where}, answer {gid}")
    failing = _grade_ids(raw.get("failing", {}), tests, "failing", where, release)
    if not all(isinstance(v, str) and v for v in failing.values()):
        raise RosterError(f"{where}: each test cell under 'failing' needs a reason (a string)")
    edits = _grade_ids(raw.get("test_edits", {}), tests, "test_edits", where, release)
    if not all(v is None or isinstance(v, str) for v in edits.values()):
        raise RosterError(f"{where}: 'test_edits' maps a test cell to its new source, or to null (deleted)")
    truncate_at = raw.get("truncate_at")
    if truncate_at is not None and (
        isinstance(truncate_at, bool) or not isinstance(truncate_at, float) or not 0 < truncate_at < 1
    ):
        raise RosterError(
            f"{where}: 'truncate_at' is the fraction of the file's bytes kept, a number between "
            f"0 and 1 (like 0.45), got {truncate_at!r}"
        )
    if truncate_at is not None and failing:
        raise RosterError(f"{where}: a truncated file fails in every test cell: leave out 'failing'")
    flags = raw.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise RosterError(f"{where}: 'flags' must be a list of strings, like [timeout]")
    tamper = raw.get("tamper")
    if tamper is not None and (not isinstance(tamper, str) or tamper not in tampers):
        raise RosterError(f"{where}: unknown tamper {tamper!r}; known: {sorted(tampers)}")
    for key in ("needs_sandbox", "by_hand"):
        if not isinstance(raw.get(key, False), bool):
            raise RosterError(f"{where}: '{key}' must be true or false, got {raw[key]!r}")
    return Student(
        sid,
        raw["note"],
        answers,
        failing,
        edits,
        truncate_at,
        tuple(flags),
        tamper,
        raw.get("needs_sandbox", False),
        raw.get("by_hand", True),
    )


def _check_fits(source: str, answer: Answer, where: str) -> None:
    try:
        fill(source, answer)
    except ValueError as exc:
        raise RosterError(f"{where}: {exc}: give one piece of code per stub") from None


def load_roster(
    path: pathlib.Path, release_nb, tampers: Collection[str] = (), release: str = "release/hw1/hw1.ipynb"
) -> list[Student]:
    """The students of ``path`` (a sample_class.yml), checked against the student release.

    Args:
        path: the roster file.
        release_nb: the release notebook the submissions are built from (``nbformat`` node).
        tampers: the names a student's ``tamper`` may take (the building tool's notebook edits).
        release: how error messages name the release notebook.

    Returns:
        The students in file order, each with its answers resolved (the correct answers under its own).

    Raises:
        RosterError: naming the file, the student and what to change.
    """
    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RosterError(f"{path}: no such file: the roster of the sample class is written by hand") from None
    except yaml.YAMLError as exc:
        raise RosterError(f"{path}: not valid YAML ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("correct"), dict)
        or not isinstance(data.get("students"), list)
        or set(data) != {"correct", "students"}
    ):
        raise RosterError(
            f"{path}: expected a mapping with 'correct' (solution grade id -> code) and 'students' (a list)"
        )
    solutions, tests = _release_cells(release_nb)
    _grade_ids(data["correct"], solutions, "correct", path.name, release)
    if set(solutions) - set(data["correct"]):
        raise RosterError(
            f"{path.name}: 'correct' has no answer for {sorted(set(solutions) - set(data['correct']))}"
            f" of {release}: add one"
        )
    correct = {gid: Answer(_code(v, f"{path.name}, correct {gid}")) for gid, v in data["correct"].items()}
    for gid, ans in correct.items():
        _check_fits(solutions[gid].source, ans, f"{path.name}, correct {gid}")
    students = [
        _student(raw, i, correct, solutions, tests, tampers, path.name, release)
        for i, raw in enumerate(data["students"], start=1)
    ]
    ids = [s.id for s in students]
    if len(set(ids)) != len(ids):
        raise RosterError(f"{path.name}: student ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
    return students
