"""Checks a lesson makes of its own claims, written so that a student can read them.

A notebook that says "the two gradients agree to 1e-6" computes both gradients and then calls
``adl.check(err < 1e-6, "the two gradients agree to 1e-6")``. When the claim holds, one line is printed::

    ✓ Check: the two gradients agree to 1e-6

When it does not, :class:`CheckFailed` (an ``AssertionError``) stops the notebook with the claim in its
message, so that running every cell from the top is also a test of every claim the notebook makes.
"""

from __future__ import annotations

__all__ = ["CheckFailed", "check"]


class CheckFailed(AssertionError):
    """A claim made by a notebook did not hold; the message states the claim."""


def _truth(condition, claim: str) -> bool:
    """``condition`` as one ``bool``, or a ``TypeError`` that says how to make it one."""
    if isinstance(condition, (str, bytes)) or condition is None:
        raise TypeError(f"check({claim!r}): the condition must be True or False, got {condition!r}")
    size = getattr(condition, "size", None)
    if size is None:  # a TensorFlow tensor has no .size; its shape says the same
        shape = getattr(condition, "shape", None)
        if shape is not None and getattr(shape, "rank", len(tuple(shape))) not in (0, None):
            size = 1
            for dim in tuple(shape):
                size *= int(dim or 0)
    if size is not None and size != 1:
        raise TypeError(
            f"check({claim!r}): the condition is an array of {size} values, not one truth value; "
            "combine them with np.all(...) or np.any(...) (tf.reduce_all for tensors)"
        )
    return bool(condition)


def check(condition, claim: str, *, quiet: bool = False) -> None:
    """Check a claim the lesson makes; print it when it holds, stop with it when it does not.

    Args:
        condition: whether the claim holds: a ``bool``, a NumPy boolean or a one-element array or tensor.
        claim: the claim in words, as a student would say it, e.g. ``"the loss fell below 0.1"``.
            Put the computed numbers in it with an f-string when they help: ``f"accuracy {acc:.3f} > 0.97"``.
        quiet: print nothing when the claim holds (for checks inside a loop).

    Raises:
        CheckFailed: the claim does not hold. It is an ``AssertionError``, so tests treat it as one.
        TypeError: ``claim`` is not a non-empty string, or ``condition`` is not one truth value (an array of
            several values: combine them with ``np.all`` or ``np.any`` first).

    Example:

    >>> check(2 + 2 == 4, "two and two make four")
    ✓ Check: two and two make four
    >>> check(0.1 + 0.2 == 0.3, "0.1 + 0.2 is exactly 0.3 in floating point")
    Traceback (most recent call last):
    ...
    adl_helpers.checks.CheckFailed: Check failed: 0.1 + 0.2 is exactly 0.3 in floating point
    """
    if not isinstance(claim, str) or not claim.strip():
        raise TypeError(f"check: the claim must be a sentence saying what is checked, got {claim!r}")
    if not _truth(condition, claim):
        raise CheckFailed(f"Check failed: {claim}")
    if not quiet:
        print(f"✓ Check: {claim}")
