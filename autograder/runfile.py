"""A worker's run read defensively: the worker ran next to hostile code, so whatever its JSON holds, each cell
comes out as a dict of plain values with a text ``status``, a finite ``score`` or none (a score that is not a
finite number fails the cell, never passes it), well-formed ``checks``, and text that UTF-8 can write."""

from __future__ import annotations

import math

from autograder.notebook import SURROGATE


def run_cells(run) -> list[dict]:
    """The worker's per-cell entries, each a dict with a text ``status`` and a text or None ``grade_id``;
    text values made writable as UTF-8, an int or None ``line``; a ``score`` only if it is a finite number,
    ``checks`` only as a list of checks (see :func:`_checks`); other nested values and other types dropped."""
    cells = run.get("cells") if isinstance(run, dict) else None
    out = []
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        clean = {
            k: valid_text(v) if isinstance(v, str) else v
            for k, v in cell.items()
            if isinstance(k, str) and (v is None or type(v) in (str, int, float, bool))
        }
        clean["status"] = clean["status"] if isinstance(clean.get("status"), str) else "error"
        clean["grade_id"] = clean.get("grade_id") if isinstance(clean.get("grade_id"), str) else None
        clean["line"] = clean.get("line") if type(clean.get("line")) is int else None
        if "score" in cell and not _is_finite(cell.get("score")):  # fail closed: a cell's score that is not a
            clean.pop("score", None)  # finite number is no pass at full points, but a failed test
            clean.update(status="error", ename="ValueError", origin="test", line=None)
        clean.pop("checks", None)  # a text: not checks
        checks = _checks(cell.get("checks"))
        if checks is not None:
            clean["checks"] = checks
        out.append(clean)
    return out


def _is_finite(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _checks(raw) -> list[dict] | None:
    """A cell's ``checks`` (:func:`autograder.contract.check_result`) read defensively: each a dict with finite
    ``points`` >= 0 and a bool ``passed``, text made writable, an int or None ``line``; None if it is not a list of
    such dicts (then the cell has no checks, and its score, if any, stands alone)."""
    if not isinstance(raw, list):
        return None
    out = []
    for check in raw:
        if not (isinstance(check, dict) and _is_finite(check.get("points")) and type(check.get("passed")) is bool):
            return None
        clean = {
            k: valid_text(v) if isinstance(v, str) else v
            for k, v in check.items()
            if isinstance(k, str) and (v is None or type(v) in (str, int, float, bool))
        }
        if check["points"] < 0:
            return None
        clean["line"] = clean.get("line") if type(clean.get("line")) is int else None
        out.append(clean)
    return out


def valid_text(text: str) -> str:
    """``text`` with any lone UTF-16 surrogate (which UTF-8 cannot write) replaced by U+FFFD."""
    return SURROGATE.sub("\ufffd", text)
