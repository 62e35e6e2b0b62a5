"""Validating a submitted notebook's bytes: whatever the file holds ends as a notebook or as a reason.

:func:`parse_submission` reads the bytes in stages (UTF-8, JSON with its depth and values checked, nbformat 4,
the schema, the nbgrader cell ids), each refusing what would trip the next, so the rest of the grader only
ever sees schema-valid notebooks; a refused file raises :class:`InvalidNotebook` with a reason for the
student. Linear in the file's size.
"""

from __future__ import annotations

import collections
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import nbformat
from nbformat.corpus.words import generate_corpus_id

log = logging.getLogger(__name__)

SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how a lone surrogate can appear in JSON text
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # nbformat 4.5's cell id
MAX_DEPTH = 64  # lists and objects inside each other; Jupyter's own notebooks need about 10


class InvalidNotebook(ValueError):
    """A submission that cannot be graded. ``str(exc)`` is written for the student."""


def nbgrader_meta(cell) -> dict:
    """A cell's ``metadata.nbgrader``, or ``{}`` if the cell, its metadata or that entry is not an object."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


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
        raise InvalidNotebook(
            "the file is JSON but not a Jupyter notebook (it has no 'cells' list). "
            "Download your .ipynb from Jupyter (File > Download) and submit that file."
        )
    _check_values(raw, surrogates=SURROGATE_ESCAPE.search(text) is not None)
    major, minor = raw.get("nbformat"), raw.get("nbformat_minor")
    if type(major) is not int or major != 4:
        raise InvalidNotebook(
            f"the notebook format is version {_short(major)}; save it with Jupyter (format 4) and submit it again."
        )
    if type(minor) is not int or minor < 0:
        raise InvalidNotebook(
            f"the notebook's format minor version is {_short(minor)}, not a version number; "
            "save it with Jupyter (format 4.5) and submit it again."
        )
    for index, cell in enumerate(raw["cells"]):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            what = _kind(cell) if not isinstance(cell, dict) else f"a cell whose type is {_kind(cell.get('cell_type'))}"
            raise InvalidNotebook(
                f"cell {index + 1} is {what}, not a code, markdown or raw cell. Undo the change "
                "to the notebook's file, or copy your answers into a fresh copy of the assignment."
            )
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
        raise InvalidNotebook(
            "the notebook does not follow the Jupyter format (its structure was changed by "
            "hand). Re-save it from Jupyter, or copy your answers into a fresh copy of the "
            "assignment, and submit it again."
        ) from None
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
        pairs: Iterable[tuple[Any, Any]] = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
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
