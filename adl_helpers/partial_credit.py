"""Partial credit inside one test cell: each check earns its own points.

A test cell is all or nothing: it earns its points if it runs without an error. When a question has several
parts, the instructor can give points per check instead. Each check is a ``with`` block; an error inside it
(a failed ``assert``, a failed ``check_close``, an exception from the student's function) costs that check's
points, says why, and the checks after it still run. The cell's last line is the object itself: its value is
the cell's score, the points of the checks that passed (as nbgrader scores a test cell whose output is a
number)::

    from adl_helpers.partial_credit import PartialCredit as _PartialCredit

    _points = _PartialCredit()
    with _points.check(1, "p_bank has one probability per applicant"):
        adl.grading.check_shape(p_bank, (len(y),), name="p_bank", kinds="f")
    with _points.check(2, "rates_bank holds the two groups' rates"):
        adl.grading.check_shape(rates_bank, (2, 4), name="rates_bank", kinds="f")
    _points

When grading, the grader runs the test cell itself (with its hidden checks) and reads the score from this
object; the feedback names each check that failed by the text given to :meth:`PartialCredit.check`.

Example:
    >>> points = PartialCredit()
    >>> with points.check(1, "two and two make four"):
    ...     assert 2 + 2 == 4
    ✓ Check (1 point): two and two make four
    >>> with points.check(2, "0.1 + 0.2 is exactly 0.3"):
    ...     assert 0.1 + 0.2 == 0.3, "not in floating point"
    ✗ Check failed (2 points): 0.1 + 0.2 is exactly 0.3: AssertionError: not in floating point
    >>> points
    1 of 3 points from the checks that ran (failed: 0.1 + 0.2 is exactly 0.3)
    >>> points.score
    1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers

__all__ = ["CheckRecord", "PartialCredit"]


@dataclasses.dataclass(frozen=True)
class CheckRecord:
    """One check that ran: its points, its text, and the exception that failed it (None if it passed)."""

    points: float
    what: str
    error: Exception | None = None

    @property
    def passed(self) -> bool:
        return self.error is None


def _points_word(points: float) -> str:
    return f"{points:g} point" + ("" if points == 1 else "s")


class PartialCredit:
    """The checks of one test cell, each worth its own points. See the module's docstring."""

    def __init__(self) -> None:
        self.checks: list[CheckRecord] = []
        self._open = False

    @contextlib.contextmanager
    def check(self, points, what: str):
        """A check worth ``points``: the ``with`` block under it earns them if it raises no error.

        Args:
            points: what the check is worth, a number >= 0.
            what: what the check checks, in words a student understands (``"rates_bank has shape (2, 4)"``).

        Raises:
            TypeError: ``points`` is not a number or ``what`` is not a non-empty string.
            ValueError: ``points`` is negative or not finite.
            RuntimeError: a check inside another check (its points would count twice).
        """
        if isinstance(points, bool) or not isinstance(points, numbers.Real):
            raise TypeError(f"check: points must be a number, got {points!r}")
        if not math.isfinite(points) or points < 0:
            raise ValueError(f"check: points must be a finite number >= 0, got {points!r}")
        if not isinstance(what, str) or not what.strip():
            raise TypeError(f"check: say what is checked in words, got {what!r}")
        if self._open:
            raise RuntimeError(f"check({what!r}) inside another check: end the first `with` block before it")
        self._open = True
        try:
            yield
        except Exception as exc:  # the check fails; the cell goes on with the next one
            self.checks.append(CheckRecord(float(points), what, exc))
            print(f"\u2717 Check failed ({_points_word(points)}): {what}: {type(exc).__name__}: {exc}")
        else:
            self.checks.append(CheckRecord(float(points), what))
            print(f"\u2713 Check ({_points_word(points)}): {what}")
        finally:
            self._open = False

    @property
    def score(self) -> float:
        """The points of the checks that passed."""
        return float(sum(c.points for c in self.checks if c.passed))

    @property
    def total(self) -> float:
        """The points of all the checks that ran."""
        return float(sum(c.points for c in self.checks))

    def __repr__(self) -> str:
        failed = [c.what for c in self.checks if not c.passed]
        shown = f"{self.score:g} of {_points_word(self.total)} from the checks that ran"
        return shown + (f" (failed: {'; '.join(failed)})" if failed else "")
