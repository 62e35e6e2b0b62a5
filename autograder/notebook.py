"""Reading, validating and restoring submitted notebooks. Pure data work: nothing here executes code.

A submission is trusted for its answers only. Everything else (test cells, locked cells, points, cell
types, the kernelspec) is taken from the instructor's source notebook, the way nbgrader's OverwriteCells
does, so an edited or deleted test cell is graded with the original test.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re

import nbformat
from nbformat.corpus.words import generate_corpus_id

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"  # nbgrader's markers around the hidden part of a test cell
HIDDEN_END = "### END HIDDEN TESTS"
HIDDEN_TESTS = re.compile(rf"^[ \t]*{HIDDEN_BEGIN}.*?^[ \t]*{HIDDEN_END}[^\n]*\n?", re.M | re.S)
SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how a lone surrogate can appear in JSON text
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # nbformat 4.5's cell id
MAX_DEPTH = 64  # lists and objects inside each other; Jupyter's own notebooks need about 10
log = logging.getLogger(__name__)
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


def nbgrader_meta(cell) -> dict:
    """A cell's ``metadata.nbgrader``, or ``{}`` if the cell, its metadata or that entry is not an object."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
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

    Each stage refuses what would trip the next one, so that whatever the file holds (any JSON value in any
    field, any string the JSON parser accepts, any nesting) ends here as a notebook or as a reason; nbformat
    and the rest of the grader see only schema-valid notebooks with text grade ids. Linear in the file's
    size: one JSON parse, one walk over it, one schema validation.

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
        raise InvalidNotebook(TOO_DEEP.format(where="")) from None
    except ValueError:  # a number of more than 4,300 digits (Python's limit for reading an integer)
        raise InvalidNotebook(
            "the file holds a number thousands of digits long, which no saved notebook does. Undo the change "
            "to the notebook's metadata or outputs (or clear the outputs: Kernel > Restart Kernel and Clear "
            "All Outputs), save it and submit it again."
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise InvalidNotebook("the file is JSON but not a Jupyter notebook (it has no 'cells' list). "
                              "Download your .ipynb from Jupyter (File > Download) and submit that file.")
    _check_values(raw, surrogates=SURROGATE_ESCAPE.search(text) is not None)
    major, minor = raw.get("nbformat"), raw.get("nbformat_minor")
    if type(major) is not int or major != 4:
        raise InvalidNotebook(f"the notebook format is version {_short(major)}; save it with Jupyter "
                              "(format 4) and submit it again.")
    if type(minor) is not int or minor < 0:
        raise InvalidNotebook(f"the notebook's format minor version is {_short(minor)}, not a version number; "
                              "save it with Jupyter (format 4.5) and submit it again.")
    for index, cell in enumerate(raw["cells"]):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            what = _kind(cell) if not isinstance(cell, dict) else f"a cell whose type is {_kind(cell.get('cell_type'))}"
            raise InvalidNotebook(f"cell {index + 1} is {what}, not a code, markdown or raw cell. Undo the change "
                                  "to the notebook's file, or copy your answers into a fresh copy of the assignment.")
    if minor >= 5:
        _repair_cell_ids(raw["cells"])
    try:
        nbformat.validate(raw)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)[:120] or "the top level"
        message = " ".join(str(exc.message).split())
        message = message if len(message) <= 200 else message[:195] + "[...]"
        raise InvalidNotebook(
            f"the notebook does not follow the Jupyter format at {where}: {message}. "
            "Re-save it from Jupyter and submit it again."
        ) from None
    except Exception:  # noqa: BLE001 - nbformat's own code stumbling on a shape the checks above let through
        log.warning("nbformat could not validate a submission", exc_info=True)
        raise InvalidNotebook("the notebook does not follow the Jupyter format (its structure was changed by "
                              "hand). Re-save it from Jupyter, or copy your answers into a fresh copy of the "
                              "assignment, and submit it again.") from None
    nb = nbformat.v4.to_notebook(raw)
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


TOO_DEEP = (
    "the file nests lists or objects too deeply to be a saved notebook{where}. Undo the change to the "
    "notebook's metadata or outputs (or clear the outputs: Kernel > Restart Kernel and Clear All Outputs), or "
    "download your .ipynb from Jupyter (File > Download) and submit that file."
)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else "not text"


def _short(value, limit: int = 60) -> str:
    """``repr`` of a value the student wrote, cut to ``limit`` characters (a list or an object is summarised
    first, so that a huge one costs nothing)."""
    if isinstance(value, list | dict) and len(value) > 8:
        value = list(value)[:8] if isinstance(value, list) else dict(list(value.items())[:8])
    try:
        text = repr(value)
    except RecursionError:  # nested deeper than repr goes: parse_submission refuses such nesting first
        text = f"<{_kind(value)}>"
    return text if len(text) <= limit else text[: limit - 5] + "[...]"


def _check_values(raw: dict, surrogates: bool) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` (nbformat and ``json.dumps`` recurse) and, when the text has a
    ``\\ud800``-style escape (``surrogates``), a string or key holding a lone UTF-16 surrogate, which UTF-8
    cannot write. One iterative pass; a value's path is built only to report it, from parent links."""
    stack: list[tuple[list | dict, tuple | None, int]] = [(raw, None, 1)]
    while stack:
        value, link, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidNotebook(TOO_DEEP.format(where=f" (more than {MAX_DEPTH} levels, at {_path(link)})"))
        is_dict = isinstance(value, dict)
        for key, item in value.items() if is_dict else enumerate(value):
            if surrogates and is_dict and SURROGATE.search(key):
                _surrogate_at(f"{_path(link)} (a key: {key!r})")
            if isinstance(item, str):
                if surrogates and SURROGATE.search(item):
                    _surrogate_at(_path((link, key)))
            elif isinstance(item, list | dict):
                stack.append((item, (link, key), depth + 1))


def _path(link: tuple | None) -> str:
    """``cells/3/source`` from a chain of ``(parent link, key)`` pairs, cut to 120 characters."""
    keys = []
    while link is not None:
        link, key = link
        keys.append(str(key)[:40])
    return "/".join(reversed(keys))[:120] or "the top level"


def _surrogate_at(where: str) -> None:
    raise InvalidNotebook(
        f"the notebook holds a broken character (half of a UTF-16 pair, written \\ud800 to \\udfff) at "
        f"{where[:120]}, so it cannot be saved as UTF-8. Delete that character (or clear the outputs: Kernel > "
        "Restart Kernel and Clear All Outputs), save the notebook and submit it again."
    )


def _repair_cell_ids(cells: list[dict]) -> None:
    """Give a fresh id to each cell whose nbformat ``id`` is missing, not a valid id or a copy of an earlier
    cell's, as Jupyter does when it opens such a notebook. Ids mean nothing to grading (the grader matches
    cells by nbgrader grade id); this keeps nbformat from repairing them itself with a warning per cell, or
    stumbling on an id that is not text."""
    seen: set[str] = set()
    for cell in cells:
        cid = cell.get("id")
        if not isinstance(cid, str) or not CELL_ID.fullmatch(cid) or cid in seen:
            cid = cell["id"] = generate_corpus_id()
        seen.add(cid)


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
    answers: dict[str, nbformat.NotebookNode] = {}
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
            elif trusted.autograded_test and _norm(_source(cell)) not in (
                _norm(trusted.public_source),
                _norm(trusted.source),
            ):
                notes.append(f"test cell {gid} was edited; the original test was used")
                flags.append("test edited")
        else:
            after.setdefault(anchor, []).append(_clean(cell))
    meta = submission.get("metadata") if isinstance(submission, dict) else None
    spec = meta.get("kernelspec") if isinstance(meta, dict) else None
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
    cell = {"id": generate_corpus_id(), "cell_type": cell_type if cell_type in ("code", "raw") else "markdown",
            "metadata": {}, "source": source}
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
