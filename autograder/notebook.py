"""Reading, validating and restoring submitted notebooks. Pure data work: nothing here executes code.

A submission is trusted for its answers only. Everything else (test cells, locked cells, points, cell
types, the kernelspec) is taken from the instructor's source notebook, the way nbgrader's OverwriteCells
does, so an edited or deleted test cell is graded with the original test.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re

import nbformat

HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how a lone surrogate can appear in JSON text
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class InvalidNotebook(ValueError):
    """A submission that cannot be graded. ``str(exc)`` is written for the student."""


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
    def public_source(self) -> str:
        """The test cell as the student sees it: the hidden tests removed."""
        return HIDDEN_TESTS.sub("", self.source)


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


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
                solution=bool(meta.get("solution")),
                grade=bool(meta.get("grade")),
                locked=bool(meta.get("locked")),
                points=float(meta.get("points") or 0),
            )
        )
    return nb, cells


def parse_submission(data: bytes) -> nbformat.NotebookNode:
    """Parse and validate a submitted notebook's bytes.

    Raises:
        InvalidNotebook: with a reason a student can act on.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidNotebook(
            f"the file is not UTF-8 text (byte {exc.start}): it is not a saved notebook. "
            "Download your .ipynb from Jupyter (File > Download) and submit that file."
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(
            f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); it was probably "
            "truncated or edited by hand. Open it in Jupyter; if it does not open, re-download your notebook "
            "and submit it again."
        ) from None
    except RecursionError:
        raise InvalidNotebook(
            "the file nests lists or objects too deeply to be a saved notebook. Download your .ipynb from "
            "Jupyter (File > Download) and submit that file."
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise InvalidNotebook("the file is JSON but not a Jupyter notebook (it has no 'cells' list).")
    where = _lone_surrogate(raw) if SURROGATE_ESCAPE.search(text) else None
    if where is not None:
        raise InvalidNotebook(
            f"the notebook holds a broken character (half of a UTF-16 pair, written \\ud800 to \\udfff) at "
            f"{where}, so it cannot be saved as UTF-8. Delete that character (or clear the outputs: Kernel > "
            "Restart Kernel and Clear All Outputs), save the notebook and submit it again."
        )
    major = raw.get("nbformat")
    if major != 4:
        raise InvalidNotebook(f"the notebook format is version {major!r}; save it with Jupyter (format 4).")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise InvalidNotebook(
            f"the notebook does not follow the Jupyter format at {where}: {exc.message}. "
            "Re-save it from Jupyter and submit it again."
        ) from None
    except Exception as exc:  # nbformat raises several kinds for broken structure
        raise InvalidNotebook(f"the notebook cannot be read: {exc}") from None
    for index, cell in enumerate(nb.cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if gid is not None and not isinstance(gid, str):
            raise InvalidNotebook(
                f"cell {index + 1} has a grade id that is {_kind(gid)}, not text "
                f"(metadata nbgrader grade_id = {_short(gid)}). Undo the change to that cell's metadata, or "
                "copy your answers into a fresh copy of the assignment."
            )
    counts = collections.Counter(g for c in nb.cells if (g := nbgrader_meta(c).get("grade_id")))
    dupes = sorted(g for g, n in counts.items() if n > 1)
    if dupes:
        shown = f"[{', '.join(_short(g) for g in dupes[:5])}]"
        shown += f" (and {len(dupes) - 5} more)" if len(dupes) > 5 else ""
        raise InvalidNotebook(
            f"the cells {shown} appear more than once (a copied answer cell keeps its hidden id). Delete the "
            "copies, keeping one cell of each, or start from a fresh copy of the assignment."
        )
    return nb


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else "not text"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "[...]"


def _lone_surrogate(raw) -> str | None:
    """Where in the parsed JSON a string (a value or a key) holds a lone surrogate, as a path such as
    ``cells/3/source``; None if nowhere. Iterative, so deep nesting cannot exhaust the stack."""
    stack: list[tuple[tuple, object]] = [((), raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and SURROGATE.search(value):
            return "/".join(map(str, path))[:120] or "the top level"
        if isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if SURROGATE.search(key):
                    return ("/".join(map(str, path)) + f" (a key: {key!r})")[:120]
                stack.append(((*path, key), item))
    return None


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
    """
    known = {c.grade_id: c for c in source_cells}
    answers: dict[str, nbformat.NotebookNode] = {}
    after: dict[str | None, list] = {None: []}
    anchor = None
    notes: list[str] = []
    flags: list[str] = []
    for cell in submission.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in known:
            anchor = gid
            after.setdefault(gid, [])
            trusted = known[gid]
            meta = nbgrader_meta(cell)
            changed = [k for k, want in (("points", trusted.points), ("grade", trusted.grade),
                                         ("solution", trusted.solution), ("locked", trusted.locked))
                       if k in meta and _differs(meta[k], want)]
            if cell.get("cell_type") != trusted.cell_type and not trusted.solution:
                changed.append("cell type")
            if changed:
                notes.append(f"cell {gid}: {', '.join(changed)} changed in the notebook; the original was used")
                flags.append("metadata changed")
            if trusted.solution:
                answers[gid] = cell
            elif trusted.autograded_test and _norm(cell.get("source", "")) not in (
                _norm(trusted.public_source),
                _norm(trusted.source),
            ):
                notes.append(f"test cell {gid} was edited; the original test was used")
                flags.append("test edited")
        else:
            after.setdefault(anchor, []).append(_clean(cell))
    spec = submission.get("metadata", {}).get("kernelspec", {})
    if isinstance(spec, dict) and spec.get("name") not in (None, KERNELSPEC["name"]):
        notes.append(f"the notebook asked for the kernel {str(spec.get('name'))[:60]!r}; it was graded with Python 3")
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
    return Restored(out, notes, sorted(set(flags)))


def _differs(got, want) -> bool:
    if isinstance(want, bool):
        return bool(got) != want
    try:
        return float(got) != float(want)
    except (TypeError, ValueError):
        return True


def _new_cell(cell_type: str, source: str):
    if cell_type == "code":
        return nbformat.v4.new_code_cell(source)
    if cell_type == "raw":
        return nbformat.v4.new_raw_cell(source)
    return nbformat.v4.new_markdown_cell(source)


def _clean(cell):
    """A copy of a student's cell with outputs and execution counts dropped."""
    return _new_cell(cell.cell_type, cell.get("source", ""))


def _norm(source: str) -> str:
    return "\n".join(line.strip() for line in source.splitlines() if line.strip())
