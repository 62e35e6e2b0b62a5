"""What grading one submission gives: a score and a reason for every graded question.

:func:`score_run` turns a worker's run (the JSON the worker process wrote, read defensively: the worker ran next
to hostile code) into a :class:`Result`; :func:`invalid` and :func:`failed` give the results of a notebook
refused at validation and of a submission the grader itself failed on. :func:`reason` words why a test cell
lost its points for the student, and never with anything a hidden test computed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import logging
import pathlib
import re

from autograder.ingest import printable
from autograder.notebook import GradeCell
from autograder.runfile import run_cells, valid_text

log = logging.getLogger(__name__)

GRADER_FAILED = (
    "grader failed"  # the flag of a submission the grader itself failed on: not graded, not the student's doing
)
PENDING = "pending"  # a question graded by hand without a manual score yet (nbgrader: needs_manual_grade)
GRADED_BY_HAND = "graded by hand"  # a question graded by hand, with the formgrader's score
AWAITS = "graded by hand: awaits a grade"  # the reason of a PENDING question (feedback, report)


@dataclasses.dataclass
class QuestionResult:
    grade_id: str
    points: float
    max_points: float
    status: str  # passed | partial | failed | not graded | pending | graded by hand
    reason: str = ""
    manual: bool = False  # graded by hand (nbgrader's manually graded answer): "pending" until the formgrader scores it
    # a test cell's failure known to be public (a public check, or a partial-credit cell's failed public checks;
    # "" if none): all its feedback may say while hidden results are held back; None for other questions
    public_reason: str | None = None


@dataclasses.dataclass
class Result:
    student: str
    assignment: str
    questions: list[QuestionResult]
    flags: list[str]  # short labels: the grade table and the report
    elapsed: float
    key: str
    notes: list[str] = dataclasses.field(default_factory=list)  # sentences: the feedback

    @property
    def score(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def max_score(self) -> float:
        return sum(q.max_points for q in self.questions)

    @property
    def pending(self) -> list[str]:
        """The questions graded by hand that have no grade yet: while there are any, ``score`` is provisional."""
        return [q.grade_id for q in self.questions if q.status == PENDING]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Result:
        data = dict(data)
        data["questions"] = [QuestionResult(**q) for q in data["questions"]]
        return cls(**data)

    @classmethod
    def read(cls, path: pathlib.Path) -> Result | None:
        """The result cached at ``path``, or None if there is none or it cannot be read (then: grade again)."""
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None


def reason(cell: dict, trusted: GradeCell) -> str:
    """Why a test cell lost its points, for the student. It holds nothing a hidden test knows and nothing
    the student's code wrote: the question's part (a public check or a hidden test), the exception's type,
    and the instructor's own message as written in the test (f-string fields cut out, see
    :func:`autograder.contract.instructor_message`); for a public check, the line that failed (the student
    has that code). Never the exception's text: a student's function could put the hidden tests' inputs
    there (or in a value a later check prints), and NumPy's comparison messages print the expected values."""
    status = cell.get("status")
    if status in ("timeout", "dead", "skipped", "unresponsive", "disk"):
        return f"the test could not run: {cell.get('evalue')}"  # the grader's own words
    hidden, what, at = _failure_words(cell, trusted)
    if hidden:
        return f"a hidden test failed ({what})"
    return f"a public check failed ({what})" + (f" at: {at}" if at else "")


def partial_reason(cell: dict, trusted: GradeCell, points: float) -> str:
    """Why a test cell with partial credit earned ``points`` of its points, for the student: each failed check
    (``cell["checks"]``, see :func:`autograder.contract.cell_score`) with the points it cost, in the words of
    :func:`lost_checks`."""
    lost = [f"lost {_points(p)}: {words}" for _, p, words in lost_checks(cell, trusted)]
    head = f"earned {points:g} of {_points(trusted.points)}"
    if lost:
        return f"{head}; " + "; ".join(lost)
    if "checks" in cell:
        return f"{head}: the checks that ran are worth {_points(sum(c['points'] for c in cell['checks']))}"
    return f"{head} (the score the test gave)"


def lost_checks(cell: dict, trusted: GradeCell) -> list[tuple[bool, float, str]]:
    """The failed checks of a test cell with partial credit: (hidden, points, words) each, the words saying its
    part (public or hidden), the check's text as the instructor typed it (:func:`check_label`) and what failed,
    as :func:`reason` says it (never a value the test or the student's code computed)."""
    lost = []
    for check in cell.get("checks", []):
        if check["passed"]:
            continue
        hidden, what, at = _failure_words(check, trusted)
        label = check_label(trusted.source, check.get("line"))
        words = f"a {'hidden' if hidden else 'public'} check failed ({label + ': ' if label else ''}{what})"
        lost.append((hidden, check["points"], words + (f" at: {at}" if at and not hidden else "")))
    return lost


def _points(points: float) -> str:
    return f"{points:g} point" + ("" if points == 1 else "s")


def check_label(source: str, line: object) -> str | None:
    """The text of the innermost ``with ....check(points, "text"):`` around ``line`` of the test's ``source``, as
    the instructor typed it (f-string fields cut out, see :func:`autograder.contract.instructor_message`), or None."""
    from autograder.contract import HOLE, MAX_MESSAGE, literal_text

    if not isinstance(line, int):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and node.lineno <= line <= (node.end_lineno or node.lineno):
            call = node.items[0].context_expr
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "check":
                what = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "what")]
                if what and (best is None or node.lineno > best[0]):
                    best = (node.lineno, literal_text(what[0]))
    text = " ".join(best[1].split()) if best and best[1] else None
    return text if text is None or len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + HOLE


def in_hidden_test(cell: dict, trusted: GradeCell) -> bool:
    """Whether a failure belongs to the cell's hidden tests: its line is hidden, or the grader could not place it
    (a value the kernel could not hand over, a time limit before any line) in a cell that has hidden tests. What
    is not known to be public is treated as hidden, so feedback that holds hidden results back reveals nothing."""
    line = cell.get("line")
    return line in trusted.hidden_lines or (line is None and bool(trusted.hidden_lines))


def _failure_words(cell: dict, trusted: GradeCell) -> tuple[bool, str, str | None]:
    """For :func:`reason`: whether the failing line is hidden, what failed, and the public line that failed."""
    ename = str(cell.get("ename") or "Error")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,59}", ename):
        ename = "Error"
    line = cell.get("line")
    hidden = in_hidden_test(cell, trusted)
    origin, message = cell.get("origin"), cell.get("message")
    function = cell.get("function") if isinstance(cell.get("function"), str) else None
    called = f"{function}()" if function and function.isidentifier() else "your code"
    if ename == "NotImplementedError":
        what = "NotImplementedError: an answer this test needs was not written yet"
    elif ename == "ProtocolError":
        what = (
            "the grader could not read your code's answer: the notebook's code changed how the kernel runs "
            "cells, or answered with something that is not data"
        )
    elif origin == "student":
        what = (
            f"{called} raised an exception of a type of its own"
            if ename == "StudentError"
            else f"{called} raised {ename}"
        )
    elif origin == "unreadable":
        what = (
            "TypeError: your code returned a value the grader cannot read (it reads numbers, strings, NumPy "
            "arrays, tensors, and lists, tuples or dicts of them)"
        )
    elif ename == "NameError" and origin == "test":
        m = re.search(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined", str(cell.get("evalue", "")))
        public_names = _public_names(trusted)
        name = f"name {m.group(1)!r}" if m and m.group(1) in public_names else "a name the test uses"
        what = f"NameError: {name} is not defined (an answer cell above did not run or did not define it)"
    else:
        what = f"{ename}: {message}" if isinstance(message, str) and message else ename
    return hidden, what, None if hidden else _public_line(trusted, line)


def _public_names(trusted: GradeCell) -> set[str]:
    from autograder.contract import code_names

    try:
        return code_names(compile(trusted.public_source, "<public>", "exec"))
    except SyntaxError:
        return set()


def _public_line(trusted: GradeCell, line: object) -> str | None:
    """The first line of the test's statement at ``line`` (a public line: the student has it), shortened."""
    lines = trusted.source.splitlines()
    if not isinstance(line, int) or not 1 <= line <= len(lines):
        return None
    text = lines[line - 1].strip()
    if not text or text.startswith("#"):
        return None
    return text if len(text) <= 120 else text[:119] + "\u2026"


def score_run(
    student: str,
    assignment: str,
    trusted: list[GradeCell],
    run: dict,
    key: str,
    unanswered: set[str] | frozenset[str] = frozenset(),
) -> Result:
    """The result of one worker run. ``run`` is read defensively (see :func:`run_cells`): whatever the worker
    wrote, every graded question gets a status and a reason, and no text that UTF-8 cannot write gets in.

    A graded cell that is not a test (nbgrader's manually graded answer, ``GradeCell.manually_graded``) is never
    scored here: it is PENDING until the formgrader gives it a score (:func:`autograder.gradebook.record` reads it back), except an
    answer in ``unanswered`` (left as released), which gets 0 as nbgrader gives it."""
    cells = run_cells(run)
    by_id = {c["grade_id"]: c for c in cells if c["grade_id"]}
    questions = []
    for tc in trusted:
        if not tc.grade:
            continue
        if not tc.autograded_test and tc.grade_id in unanswered:
            questions.append(
                QuestionResult(
                    tc.grade_id, 0.0, tc.points, "failed", "no answer: the cell was handed in as released", manual=True
                )
            )
            continue
        if not tc.autograded_test:  # graded by hand, in the formgrader
            questions.append(QuestionResult(tc.grade_id, 0.0, tc.points, PENDING, AWAITS, manual=True))
            continue
        cell = by_id.get(tc.grade_id, {"status": "skipped", "evalue": "the test cell did not run"})
        if cell["status"] == "ok" and "score" in cell:
            questions.append(_partial(cell, tc))
        elif cell["status"] == "ok":
            questions.append(QuestionResult(tc.grade_id, tc.points, tc.points, "passed", public_reason=""))
        else:
            why = valid_text(reason(cell, tc))
            public = "" if in_hidden_test(cell, tc) else why  # what feedback may say while hidden results are held
            questions.append(QuestionResult(tc.grade_id, 0.0, tc.points, "failed", why, public_reason=public))
    labels = {
        "timeout": "timeout",
        "dead": "kernel died",
        "skipped": "time limit",
        "unresponsive": "kernel unresponsive",
        "disk": "disk limit",
    }
    flags = [labels[s] for s in labels if any(c["status"] == s for c in cells)]
    notes = [f"cell {c.get('grade_id') or c.get('index')}: {c.get('evalue')}" for c in cells if c["status"] in labels]
    if any(c.get("ename") == "ProtocolError" for c in cells + [k for c in cells for k in c.get("checks", [])]):
        flags.append("kernel tampered")
        notes.append(
            "the notebook's code changed how the kernel runs cells, so the grader could not read "
            "your answers for some questions"
        )
    raw = run.get("elapsed") if isinstance(run, dict) else None
    elapsed = 0.0
    if isinstance(raw, int | float) and not isinstance(raw, bool) and abs(raw) < 1e9:  # not NaN either
        elapsed = float(raw)
    return Result(student, assignment, questions, flags, elapsed, key, notes)


def _partial(cell: dict, tc: GradeCell) -> QuestionResult:
    """The result of a test cell that ran to its end with a score (partial credit): the score kept within
    [0, the cell's points]; "passed" at full points, "failed" at 0, else "partial"."""
    score = cell["score"]
    total = sum(c["points"] for c in cell.get("checks", []))
    if "checks" in cell and total != tc.points:  # the instructor's to fix; the score is clamped meanwhile
        log.warning("the checks of test cell %s are worth %g points, the cell %g", tc.grade_id, total, tc.points)
    points = min(max(float(score), 0.0), float(tc.points))
    public = ""  # a score the test computed (hidden parts included) says nothing public
    if "checks" in cell:
        public = valid_text("; ".join(words for hidden, _, words in lost_checks(cell, tc) if not hidden))
    if points >= tc.points:
        return QuestionResult(tc.grade_id, points, tc.points, "passed", public_reason=public)
    status = "failed" if points <= 0 else "partial"
    reason = valid_text(partial_reason(cell, tc, points))
    return QuestionResult(tc.grade_id, points, tc.points, status, reason, public_reason=public)


@functools.cache
def grader_fingerprint() -> str:
    """A hash of the grader's own code (this package and the helpers the tests import): part of every
    :func:`result_key`, so a grader that changed how it grades or words its feedback grades again."""
    import adl_helpers

    digest = hashlib.sha256()
    for folder in (pathlib.Path(__file__).parent, pathlib.Path(adl_helpers.__file__).parent):
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def result_key(submission: bytes, source: bytes, settings: object) -> str:
    """The key a cached :class:`Result` is kept under: a hash of the submission's bytes, the source notebook's,
    the grading settings and :func:`grader_fingerprint`; the same key, the same result."""
    parts = [submission, source, repr(settings).encode(), grader_fingerprint().encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def invalid(student: str, assignment: str, trusted: list[GradeCell], reason: str, key: str) -> Result:
    """The result of a notebook refused at validation: 0 on every graded question, ``reason`` for the student."""
    reason = valid_text(str(reason))
    qs = [
        QuestionResult(tc.grade_id, 0.0, tc.points, "failed", f"not graded: {reason}", manual=not tc.autograded_test)
        for tc in trusted
        if tc.grade
    ]
    return Result(student, assignment, qs, ["invalid notebook"], 0.0, key, [f"not graded: {reason}"])


def failed(student: str, assignment: str, trusted: list[GradeCell], exc: BaseException) -> Result:
    """The result of a submission the grader itself failed on (an exception out of :func:`autograder.pipeline.grade_one`, or the
    gradebook refusing the result): every graded question "not graded", with a reason for the instructor. It
    is never cached, so the next ``autograde`` grades the submission again (or records the result that
    ``grade_one`` cached, if only the gradebook refused it); it gets no feedback (see ``adl-grade feedback``)."""
    what = printable(f"{type(exc).__name__}: {exc}", limit=300)
    reason = (
        f"not graded: the grader failed on this submission ({what}); the traceback is in the grader's "
        "log. Fix the cause and run adl-grade autograde again"
    )
    qs = [QuestionResult(tc.grade_id, 0.0, tc.points, "not graded", reason) for tc in trusted if tc.grade]
    return Result(student, assignment, qs, [GRADER_FAILED], 0.0, "", [reason])
