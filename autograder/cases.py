"""Wrong-answer cases: plausible mistakes that must lose exactly their question's points.

Each assignment from hw2 on keeps ``source/<assignment>/wrong_answers.yml`` beside its notebook::

    cases:
      - id: momentum-after-step        # a slug, unique in the file
        cell: q4_momentum_solution     # the solution cell (grade id) a student got wrong
        replace: "v = momentum * v - learning_rate * g"   # a substring of its solution code, exactly once
        with: "v = momentum * v + learning_rate * g"      # what the student wrote instead
        loses: [q4_momentum]           # the test cells that must fail; every other one keeps its points
        why: the update goes uphill

A test cell with partial credit (``adl_helpers.partial_credit``) may lose only some of its points: the optional
``lost_points: {q3_audit: 1}`` says how many (more than 0, fewer than the cell's points) for a cell in ``loses``;
the cells it does not name lose all theirs.

:func:`build_class` turns the file into sample submissions, built from the student release the way a student
fills it in: every ``# YOUR CODE HERE`` stub replaced by the solution's code, then the case's one edit.
``tools/make_sample_class.py`` writes them under ``autograder/samples/<assignment>/`` with ``expected.json``
(read back by ``autograder/expected.py``'s ``read_expected``); the demo and the tests grade them with the real
autograder, and ``tools/check_cases.py`` does it for one assignment in a scratch course. (hw1's class is written
by hand instead: ``source/hw1/sample_class.yml``, see ``autograder/sample_class.py``.)

A question graded by hand (an answer cell that is also graded, see ``autograder/rubric.py``) is no test cell: no
case edits or loses it, and every sample student answers it with the sample answer, so it awaits a hand grade
(``"manual"`` in expected.json). :func:`load_cases` checks its rubric.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re

import nbformat
import yaml
from nbgrader import utils as nbgrader_utils

from autograder import rubric

CASES_FILE = "wrong_answers.yml"
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


class CaseError(ValueError):
    """wrong_answers.yml does not fit the assignment's notebook."""


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    cell: str
    replace: str
    with_: str
    loses: tuple[str, ...]
    why: str
    lost_points: dict[str, float] = dataclasses.field(default_factory=dict)  # partial losses, see the docstring


def _cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {
        c.metadata.get("nbgrader", {}).get("grade_id"): c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id")
    }


def solution_code(source: str) -> str:
    """A solution cell's code as a student would have it: the solution markers removed."""
    return SOLUTION_MARKERS.sub("", source)


def load_cases(source_dir: pathlib.Path, source_nb) -> list[Case]:
    """The cases of ``source_dir/wrong_answers.yml``, checked against the source notebook."""
    path = pathlib.Path(source_dir) / CASES_FILE
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CaseError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise CaseError(f"{path}: expected a mapping with a list under 'cases'")
    cells = _cells(source_nb)
    try:
        rubric.check(source_nb, where=f"source/{path.parent.name}")
    except rubric.RubricError as exc:
        raise CaseError(str(exc)) from None
    graded = set(expected_points(source_nb, ()))  # the autograded test cells: a question graded by hand has no test
    cases, seen = [], set()
    for i, raw in enumerate(data["cases"]):
        where = f"{path.name}, case {i + 1}"
        if not isinstance(raw, dict):
            raise CaseError(f"{where}: expected a mapping")
        missing = {"id", "cell", "replace", "with", "loses", "why"} - set(raw)
        if missing:
            raise CaseError(f"{where}: missing {sorted(missing)}")
        case = Case(
            str(raw["id"]),
            str(raw["cell"]),
            str(raw["replace"]),
            str(raw["with"]),
            tuple(str(g) for g in raw["loses"]),
            str(raw["why"]),
        )
        where = f"{path.name}, case {case.id!r}"
        if not re.fullmatch(r"(?:[a-z0-9][a-z0-9-]*)?[a-z]", case.id) or case.id in seen:
            # a sample file w03_<id>_hw3.ipynb whose id ends in digits reads as an LMS file name with a
            # submission number (Canvas' <student>_<number>_hw3.ipynb): the student would lose them
            raise CaseError(
                f"{where}: ids are unique slugs (lowercase letters, digits, dashes) that end in a "
                "letter (spell a final number out: 'stride-one', not 'stride-1')"
            )
        seen.add(case.id)
        cell = cells.get(case.cell)
        if cell is None or not nbgrader_utils.is_solution(cell):
            raise CaseError(f"{where}: {case.cell!r} is not a solution cell of the notebook")
        if rubric.is_manual(cell) or cell.cell_type != "code":
            raise CaseError(
                f"{where}: {case.cell!r} is graded by hand, not by a test: a case edits the code of an "
                "answer whose test cells it then names in 'loses'"
            )
        n = solution_code(cell.source).count(case.replace)
        if n != 1:
            raise CaseError(f"{where}: 'replace' must occur exactly once in {case.cell}, found {n} times")
        if not case.loses or set(case.loses) - graded:
            raise CaseError(
                f"{where}: 'loses' must name graded test cells (not a question graded by hand), got {list(case.loses)}"
            )
        case = dataclasses.replace(case, lost_points=_lost_points(raw.get("lost_points", {}), case, source_nb, where))
        cases.append(case)
    covered = {g for c in cases for g in c.loses}
    if cases and graded - covered:
        raise CaseError(f"{path.name}: no case loses {sorted(graded - covered)}: add one per graded test cell")
    return cases


def _lost_points(raw, case: Case, source_nb, where: str) -> dict[str, float]:
    """A case's ``lost_points`` checked: each names a test cell of ``loses`` and fewer points than it has."""
    if not isinstance(raw, dict):
        raise CaseError(f"{where}: 'lost_points' maps test cells to the points they lose, got {raw!r}")
    full = expected_points(source_nb, ())
    out = {}
    for gid, lost in raw.items():
        if gid not in case.loses:
            raise CaseError(f"{where}: 'lost_points' names {gid}, which 'loses' does not: add it there")
        if isinstance(lost, bool) or not isinstance(lost, int | float) or not 0 < lost < full[gid]:
            raise CaseError(
                f"{where}: 'lost_points' of {gid} must be between 0 and {full[gid]:g} (its points; to lose them "
                f"all, leave it out of 'lost_points'), got {lost!r}"
            )
        out[str(gid)] = float(lost)
    return out


def _loss(gid: str, lost_points: dict[str, float], source_nb) -> str:
    """How a note names what a test cell loses: its grade id, or the points of it that are lost."""
    if gid not in lost_points:
        return gid
    return f"{lost_points[gid]:g} of {gid}'s {expected_points(source_nb, ())[gid]:g} points"


def fill_release(release_nb, source_nb, *cases: Case):
    """The release notebook with every solution cell filled in with the solution's code, then each case's
    edit (several cases may edit one cell: each ``replace`` must still occur exactly once when its turn comes).
    A Markdown answer graded by hand gets the source's sample answer (its rubric stays out)."""
    nb = copy.deepcopy(release_nb)
    solutions = _cells(source_nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid and rubric.is_manual(cell) and cell.cell_type == "markdown":
            cell.source = rubric.split_answer(solutions[gid].source)[0]
            continue
        if not (gid and nbgrader_utils.is_solution(cell) and cell.cell_type == "code"):
            continue
        code = solution_code(solutions[gid].source)
        for case in (c for c in cases if c.cell == gid):
            if code.count(case.replace) != 1:
                raise CaseError(
                    f"case {case.id!r}: after the other edits in {gid}, 'replace' occurs "
                    f"{code.count(case.replace)} times instead of once; these cases cannot be combined"
                )
            code = code.replace(case.replace, case.with_, 1)
        cell.source = code
        cell.outputs, cell.execution_count = [], None
    return nb


def build_class(assignment: str, source_nb, release_nb, source_dir: pathlib.Path) -> list[dict]:
    """The sample students of ``assignment``: [{"id", "notebook", "note", "loses", "lost_points", "manual", "ci"}]
    (``lost_points``: of the cells in ``loses``, those that lose only some of their points; ``manual``:
    the questions graded by hand, which each student answers with the sample answer). (The correct student
    is the solution itself, which the demo and the tests grade anyway.)

    One student per case (``ci`` false: ``adl-grade demo --all-cases`` and ``tools/check_cases.py`` grade
    them), and two that CI and the plain demo grade (``ci`` true): the first case of each test cell, dealt
    alternately into two notebooks with several mistakes each. Each test cell is then lost by a plausible mistake, and each
    student's other test cells must keep their points, so a mistake that leaks into a question of the other
    student is caught; a leak between two mistakes of one student is caught only by the one-case students."""
    found = load_cases(source_dir, source_nb)
    manual = manual_ids(source_nb)
    students: list[dict] = []
    covered: set[str] = set()
    first: list[Case] = []
    for i, case in enumerate(found, start=1):
        if not set(case.loses) <= covered:
            first.append(case)
        covered |= set(case.loses)
        students.append(
            {
                "id": f"w{i:02d}_{case.id.replace('-', '_')}",
                "notebook": fill_release(release_nb, source_nb, case),
                "loses": list(case.loses),
                "lost_points": dict(case.lost_points),
                "manual": manual,
                "note": f"{case.why} (in {case.cell}): loses "
                f"{', '.join(_loss(g, case.lost_points, source_nb) for g in case.loses)} and nothing else.",
                "ci": False,
            }
        )
    order = [gid for gid in _cells(source_nb) if gid in covered]
    for name, group in (("a", first[0::2]), ("b", first[1::2])):
        if not group:
            continue
        loses = [gid for gid in order if any(gid in c.loses for c in group)]
        lost = _combined(group, loses, source_nb)
        students.append(
            {
                "id": f"wx_several_mistakes_{name}",
                "notebook": fill_release(release_nb, source_nb, *group),
                "loses": loses,
                "lost_points": lost,
                "manual": manual,
                "note": f"{len(group)} mistakes at once ({', '.join(c.id for c in group)}): loses "
                f"{', '.join(_loss(g, lost, source_nb) for g in loses)} and nothing else.",
                "ci": True,
            }
        )
    return students


def _combined(group: list[Case], loses: list[str], source_nb) -> dict[str, float]:
    """The partial losses of several mistakes in one notebook: a cell that one of them loses entirely is lost
    entirely; else the mistakes' partial losses add up (they are taken to fail different checks), and a sum that
    reaches the cell's points loses it entirely."""
    full = expected_points(source_nb, ())
    out = {}
    for gid in loses:
        touching = [c for c in group if gid in c.loses]
        if all(gid in c.lost_points for c in touching):
            total = sum(c.lost_points[gid] for c in touching)
            if total < full[gid]:
                out[gid] = total
    return out


def expected_points(source_nb, loses, lost_points: dict[str, float] | None = None) -> dict[str, float]:
    """Points per graded test cell for a student who loses exactly ``loses``: all of each cell's points, or of a
    cell in ``lost_points`` that many (questions graded by hand are not test cells: see :func:`manual_ids`)."""
    lost_points = lost_points or {}
    points = {}
    for gid, cell in _cells(source_nb).items():
        md = cell.metadata["nbgrader"]
        if md.get("grade") and not md.get("solution") and cell.cell_type == "code":
            full = float(md.get("points", 0))
            points[gid] = full - lost_points.get(gid, full) if gid in loses else full
    return points


def manual_ids(source_nb) -> list[str]:
    """The grade ids of the questions graded by hand, in order: every sample student answers them (with the
    sample answer), so each awaits a hand grade after autograding."""
    return [q.grade_id for q in rubric.manual_questions(source_nb)]
