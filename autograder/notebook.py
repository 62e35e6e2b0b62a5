"""Reading, validating and restoring submitted notebooks. Pure data work: nothing here executes code.

A submission is trusted for its answers only. Everything else (test cells, locked cells, points, cell
types, the kernelspec) is taken from the instructor's source notebook, the way nbgrader's OverwriteCells
does, so an edited or deleted test cell is graded with the original test.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import nbformat
from nbformat.corpus.words import generate_corpus_id
from nbgrader import utils as nbgrader_utils

from autograder.validate import (  # noqa: F401 (validation's names are the notebook module's too)
    CELL_ID,
    MAX_DEPTH,
    SURROGATE,
    SURROGATE_ESCAPE,
    InvalidNotebook,
    _repair_cell_ids,
    _short,
    nbgrader_meta,
    parse_submission,
)

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"  # nbgrader's markers around the hidden part of a test cell
HIDDEN_END = "### END HIDDEN TESTS"
HIDDEN_TESTS = re.compile(rf"^[ \t]*{HIDDEN_BEGIN}.*?^[ \t]*{HIDDEN_END}[^\n]*\n?", re.M | re.S)
log = logging.getLogger(__name__)
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the colours of an IPython traceback
CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")


@dataclasses.dataclass(frozen=True)
class GradeCell:
    """One nbgrader cell of the instructor's source notebook."""

    grade_id: str
    cell_type: str
    source: str
    solution: bool
    grade: bool
    locked: bool
    points: float

    @property
    def autograded_test(self) -> bool:
        """A code test cell: graded automatically by running it."""
        return self.grade and not self.solution and self.cell_type == "code"

    @property
    def manually_graded(self) -> bool:
        """An answer cell that is also graded (nbgrader's manually graded answer): the formgrader scores it."""
        return self.grade and self.solution

    @property
    def public_source(self) -> str:
        """The test cell as the student sees it: the hidden tests removed."""
        return HIDDEN_TESTS.sub("", self.source)

    @property
    def hidden_lines(self) -> frozenset[int]:
        """The numbers (from 1) of the source's lines from each hidden-tests marker to its end marker."""
        hidden, inside = set(), False
        for number, line in enumerate(self.source.splitlines(), start=1):
            inside = inside or HIDDEN_BEGIN in line
            if inside:
                hidden.add(number)
            inside = inside and HIDDEN_END not in line
        return frozenset(hidden)


def read_source(path) -> tuple[nbformat.NotebookNode, list[GradeCell]]:
    """The instructor's notebook and its nbgrader cells, in order."""
    nb = nbformat.read(str(path), as_version=4)
    cells = []
    seen = set()
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta.get("grade_id"):
            continue
        gid = meta["grade_id"]
        if gid in seen:
            raise ValueError(f"{path}: grade_id {gid!r} is used twice; nbgrader needs unique ids")
        seen.add(gid)
        cells.append(
            GradeCell(
                grade_id=gid,
                cell_type=cell.cell_type,
                source=cell.source,
                solution=bool(nbgrader_utils.is_solution(cell)),
                grade=bool(nbgrader_utils.is_grade(cell)),
                locked=bool(meta.get("locked")),  # as written: nbgrader's is_locked also counts grade cells
                points=float(meta.get("points") or 0),
            )
        )
    return nb, cells


@dataclasses.dataclass
class Restored:
    """A submission rebuilt around the trusted cells."""

    notebook: nbformat.NotebookNode
    notes: list[str]  # sentences for the feedback
    flags: list[str]  # short labels for the grade table


def restore(submission: nbformat.NotebookNode, source_cells: list[GradeCell]) -> Restored:
    """Rebuild the notebook to grade: trusted cells from source, answers and extra cells from the student.

    The source's nbgrader cells give the order. A student's own extra cells stay after the nbgrader cell
    they followed. Locked and test cells are replaced by the source's (hidden tests included); a missing
    answer cell becomes the release stub, so its tests fail instead of the whole notebook.

    Meant for what :func:`parse_submission` returns, it still takes any structure in its place: a cell, a
    grade id or a source of the wrong type counts as a student's extra cell or as empty, never as an error.
    Linear in the number of cells; the result is validated once, as a whole.
    """
    known = {c.grade_id: c for c in source_cells}
    answers: dict[str, dict] = {}
    after: dict[str | None, list] = {None: []}
    anchor = None
    notes: list[str] = []
    flags: list[str] = []
    cells = submission.get("cells") if isinstance(submission, dict) else None
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str) and gid in known:
            anchor = gid
            after.setdefault(gid, [])
            trusted = known[gid]
            meta = nbgrader_meta(cell)
            changed = [
                k
                for k, want in (
                    ("points", trusted.points),
                    ("grade", trusted.grade),
                    ("solution", trusted.solution),
                    ("locked", trusted.locked),
                )
                if k in meta and _differs(meta[k], want)
            ]
            if cell.get("cell_type") != trusted.cell_type and not trusted.solution:
                changed.append("cell type")
            if changed:
                notes.append(f"cell {gid}: {', '.join(changed)} changed in the notebook; the original was used")
                flags.append("metadata changed")
            if trusted.solution:
                answers[gid] = cell
            elif trusted.autograded_test and _norm(_source(cell)) not in (
                _norm(trusted.public_source),
                _norm(trusted.source),
            ):
                notes.append(f"test cell {gid} was edited; the original test was used")
                flags.append("test edited")
        else:
            after.setdefault(anchor, []).append(_clean(cell))
    nb_meta = submission.get("metadata") if isinstance(submission, dict) else None
    spec = nb_meta.get("kernelspec") if isinstance(nb_meta, dict) else None
    if isinstance(spec, dict) and spec.get("name") not in (None, KERNELSPEC["name"]):
        notes.append(f"the notebook asked for the kernel {_short(spec.get('name'))}; it was graded with Python 3")
        flags.append("metadata changed")
    for c in source_cells:
        if not c.solution and c.autograded_test and c.grade_id not in after:
            notes.append(f"test cell {c.grade_id} was deleted; the original test was used")
            flags.append("test deleted")

    out = nbformat.v4.new_notebook()
    out.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    out.cells.extend(after[None])
    for c in source_cells:
        if c.solution:
            cell = answers.get(c.grade_id)
            if cell is None:
                notes.append(f"answer cell {c.grade_id} was deleted; it was graded as blank")
                flags.append("answer deleted")
                cell = _new_cell(c.cell_type, "raise NotImplementedError()" if c.cell_type == "code" else "")
            else:
                cell = _clean(cell)
                if cell.cell_type != c.cell_type:
                    notes.append(f"answer cell {c.grade_id} was changed from {c.cell_type} to {cell.cell_type}")
                    cell = _new_cell(c.cell_type, cell.source)
        else:
            cell = _new_cell(c.cell_type, c.source)
        cell.metadata["nbgrader"] = {
            "grade_id": c.grade_id,
            "solution": c.solution,
            "grade": c.grade,
            "locked": c.locked,
            "points": c.points,
        }
        out.cells.append(cell)
        out.cells.extend(after.get(c.grade_id, []))
    _repair_cell_ids(out.cells)  # random ids: 40,000 cells would share one now and then
    nbformat.validate(out)  # one pass over the whole notebook instead of one per cell
    return Restored(out, notes, sorted(set(flags)))


def released_source(cell: GradeCell) -> str:
    """An answer cell's text as the release hands it out: nbgrader's own ClearSolutions (with nbgrader's default
    stubs, which ``nbgrader_config.py`` keeps) applied to the source cell."""
    from nbgrader.preprocessors import ClearSolutions

    node = _new_cell(cell.cell_type, cell.source)
    node.metadata["nbgrader"] = {"grade_id": cell.grade_id, "solution": cell.solution, "grade": cell.grade}
    ClearSolutions().preprocess_cell(node, {"language": "python"}, 0)
    return node.source


def unanswered(notebook: nbformat.NotebookNode, source_cells: list[GradeCell]) -> set[str]:
    """The grade ids of the manually graded answers of a restored notebook that the student left as released
    (or empty). nbgrader scores such an answer 0 without a hand grade (its ``determine_grade``: a solution cell
    whose checksum did not change); the others wait for the formgrader."""
    manual = {c.grade_id: c for c in source_cells if c.manually_graded}
    out = set()
    for cell in notebook.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in manual and _norm(_source(cell)) in ("", _norm(released_source(manual[gid]))):
            out.add(gid)
    return out


def _differs(got, want) -> bool:
    if isinstance(want, bool):
        return bool(got) != want
    try:
        return float(got) != float(want)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float's range
        return True


def _new_cell(cell_type: str, source: str) -> nbformat.NotebookNode:
    """A new cell of ``cell_type`` (code, raw, else markdown), as ``nbformat.v4.new_*_cell`` makes it but
    without validating each cell on its own with jsonschema (about 0.1 ms a cell): :func:`restore` validates
    the notebook once."""
    cell = {
        "id": generate_corpus_id(),
        "cell_type": cell_type if cell_type in ("code", "raw") else "markdown",
        "metadata": {},
        "source": source,
    }
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return nbformat.from_dict(cell)


def _clean(cell) -> nbformat.NotebookNode:
    """A copy of a student's cell with outputs, metadata, attachments and execution counts dropped."""
    return _new_cell(cell.get("cell_type"), _source(cell))


def _source(cell) -> str:
    """A cell's source as text: nbformat's list of lines joined; anything else that is not text is empty."""
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(line for line in source if isinstance(line, str))
    return source if isinstance(source, str) else ""


def _norm(source: str) -> str:
    return "\n".join(line.strip() for line in source.splitlines() if line.strip())


def error_of(cell) -> dict | None:
    """The first error output of an executed cell: its exception's type, text (cut) and line in the cell."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            line = None
            for frame in out.get("traceback", []):
                m = CELL_LINE.search(ANSI.sub("", frame))
                if m:
                    line = int(m.group(1))
                    break
            return {"ename": out.get("ename", ""), "evalue": str(out.get("evalue", ""))[:2000], "line": line}
    return None


def is_test_cell(cell) -> bool:
    """An autograded test cell: run by the trusted grader, never by the kernel."""
    return cell.cell_type == "code" and bool(nbgrader_utils.is_grade(cell)) and not nbgrader_utils.is_solution(cell)
