"""Wrong-answer cases: plausible mistakes that must lose exactly their question's points.

Each assignment from hw2 on keeps ``source/<assignment>/wrong_answers.yml`` beside its notebook::

    cases:
      - id: momentum-after-step        # a slug, unique in the file
        cell: q4_momentum_solution     # the solution cell (grade id) a student got wrong
        replace: "v = momentum * v - learning_rate * g"   # a substring of its solution code, exactly once
        with: "v = momentum * v + learning_rate * g"      # what the student wrote instead
        loses: [q4_momentum]           # the test cells that must fail; every other one keeps its points
        why: the update goes uphill

:func:`build_class` turns the file into sample submissions, built from the student release the way a student
fills it in: every ``# YOUR CODE HERE`` stub replaced by the solution's code, then the case's one edit.
``autograder/samples/make_sample_class.py`` writes them under
``autograder/samples/<assignment>/`` with ``expected.json``; the demo and the tests grade them with the real
autograder, and ``autograder/samples/check_cases.py`` does it for one assignment in a scratch course.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re

import nbformat
import yaml

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


def _cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id")}


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
    graded = {gid for gid, c in cells.items() if c.metadata["nbgrader"].get("grade")}
    cases, seen = [], set()
    for i, raw in enumerate(data["cases"]):
        where = f"{path.name}, case {i + 1}"
        if not isinstance(raw, dict):
            raise CaseError(f"{where}: expected a mapping")
        missing = {"id", "cell", "replace", "with", "loses", "why"} - set(raw)
        if missing:
            raise CaseError(f"{where}: missing {sorted(missing)}")
        case = Case(str(raw["id"]), str(raw["cell"]), str(raw["replace"]), str(raw["with"]),
                    tuple(str(g) for g in raw["loses"]), str(raw["why"]))
        where = f"{path.name}, case {case.id!r}"
        if not re.fullmatch(r"(?:[a-z0-9][a-z0-9-]*)?[a-z]", case.id) or case.id in seen:
            # a sample file w03_<id>_hw3.ipynb whose id ends in digits reads as an LMS file name with a
            # submission number (Canvas' <student>_<number>_hw3.ipynb): the student would lose them
            raise CaseError(f"{where}: ids are unique slugs (lowercase letters, digits, dashes) that end in a "
                            "letter (spell a final number out: 'stride-one', not 'stride-1')")
        seen.add(case.id)
        cell = cells.get(case.cell)
        if cell is None or not cell.metadata["nbgrader"].get("solution"):
            raise CaseError(f"{where}: {case.cell!r} is not a solution cell of the notebook")
        n = solution_code(cell.source).count(case.replace)
        if n != 1:
            raise CaseError(f"{where}: 'replace' must occur exactly once in {case.cell}, found {n} times")
        if not case.loses or set(case.loses) - graded:
            raise CaseError(f"{where}: 'loses' must name graded test cells, got {list(case.loses)}")
        cases.append(case)
    covered = {g for c in cases for g in c.loses}
    if cases and graded - covered:
        raise CaseError(f"{path.name}: no case loses {sorted(graded - covered)}: add one per graded test cell")
    return cases


def fill_release(release_nb, source_nb, case: Case | None = None):
    """The release notebook with every solution cell filled in with the solution's code (and one edit)."""
    nb = copy.deepcopy(release_nb)
    solutions = _cells(source_nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if not (gid and cell.metadata["nbgrader"].get("solution") and cell.cell_type == "code"):
            continue
        code = solution_code(solutions[gid].source)
        if case is not None and case.cell == gid:
            code = code.replace(case.replace, case.with_, 1)
        cell.source = code
        cell.outputs, cell.execution_count = [], None
    return nb


def build_class(assignment: str, source_nb, release_nb, source_dir: pathlib.Path) -> list[dict]:
    """The sample students of ``assignment``, one per case: [{"id", "notebook", "note", "loses", "ci"}]
    (``ci``: the first case that loses some test cell; CI grades those, the demo grades every case). (The
    correct student is the solution itself, which the demo and the tests grade anyway.)"""
    students, covered = [], set()
    for i, case in enumerate(load_cases(source_dir, source_nb), start=1):
        students.append({
            "id": f"w{i:02d}_{case.id.replace('-', '_')}",
            "notebook": fill_release(release_nb, source_nb, case),
            "loses": list(case.loses),
            "note": f"{case.why} (in {case.cell}): loses {', '.join(case.loses)} and nothing else.",
            # CI grades the first case of each test cell; the demo and check_cases.py grade them all
            "ci": not set(case.loses) <= covered,
        })
        covered |= set(case.loses)
    return students


def expected_points(source_nb, loses) -> dict[str, float]:
    """Points per graded test cell for a student who loses exactly ``loses``."""
    points = {}
    for gid, cell in _cells(source_nb).items():
        md = cell.metadata["nbgrader"]
        if md.get("grade") and cell.cell_type == "code":
            points[gid] = 0.0 if gid in loses else float(md.get("points", 0))
    return points
