"""Manually graded questions: what the person grading them needs from ``source/``, and nothing for students.

nbgrader's manually graded answer is an answer cell (``solution: true``) that is also graded (``grade: true``,
``points: N``) and has no test cell. adl-grade never scores it (see ``scoring.score_run``): the gradebook marks it
``needs_manual_grade`` and the formgrader takes the score. In ``source/`` the cell holds the sample answer, then a
``#### Rubric`` line and the rubric, whose items start with their points::

    **Sample answer.** Equal opportunity: ...

    #### Rubric
    - 1 point: names a criterion and defends it.
    - 2 points: ties it to the lending decision.

nbgrader's release replaces the whole cell with ``YOUR ANSWER HERE`` (no ``### BEGIN SOLUTION`` markers in it,
:func:`check` refuses them), so students get neither part. ``adl-grade rubric <assignment>`` prints each
question's prompt (the Markdown cells just above the answer), points, rubric and sample answer for the grader.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import nbformat

from autograder.notebook import nbgrader_meta

RUBRIC_LINE = re.compile(r"^[ \t]*(?:#+[ \t]*)?(?:\*\*)?Rubric\b.*$", re.M | re.I)
RUBRIC_ITEM = re.compile(r"^[ \t]*[-*][ \t]+(?:\*\*)?(\d+(?:\.\d+)?)[ \t]+points?\b", re.M | re.I)
SOLUTION_MARKER = re.compile(r"(BEGIN|END) SOLUTION")


class RubricError(ValueError):
    """A manually graded cell of ``source/`` that the grader could not grade from (or that would leak)."""


@dataclasses.dataclass(frozen=True)
class ManualQuestion:
    """One manually graded question of a source notebook.

    Args:
        grade_id: the answer cell's nbgrader grade id (the formgrader's and the gradebook's name for it).
        points: the cell's nbgrader ``points``.
        prompt: the Markdown cells just above the answer cell (what the student read).
        sample_answer: the cell's text above the ``Rubric`` line.
        rubric: the ``Rubric`` line's section, without the line itself.
        cell_type: ``markdown`` (the course's kind) or ``code``.
    """

    grade_id: str
    points: float
    prompt: str
    sample_answer: str
    rubric: str
    cell_type: str

    def rubric_points(self) -> float:
        """The sum of the points that start the rubric's items."""
        return sum(float(m.group(1)) for m in RUBRIC_ITEM.finditer(self.rubric))


def is_manual(cell) -> bool:
    """True for an nbgrader cell that is graded by hand: an answer cell (solution) that is also graded."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution")) and bool(meta.get("grade"))


def split_answer(source: str) -> tuple[str, str]:
    """``(sample answer, rubric)`` of a manually graded cell's source; the rubric is ``""`` without a Rubric line.

    Example:
        >>> split_answer("Equal opportunity.\\n\\n#### Rubric\\n- 1 point: names it.")
        ('Equal opportunity.', '- 1 point: names it.')
    """
    m = RUBRIC_LINE.search(source)
    if m is None:
        return source.strip(), ""
    return source[: m.start()].strip(), source[m.end() :].strip()


def manual_questions(notebook) -> list[ManualQuestion]:
    """The manually graded questions of a source notebook (a path or an ``nbformat`` notebook), in order."""
    nb = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, str | pathlib.Path) else notebook
    out = []
    for index, cell in enumerate(nb.cells):
        if not is_manual(cell):
            continue
        meta = nbgrader_meta(cell)
        prompt: list[str] = []
        for above in reversed(nb.cells[:index]):
            if above.cell_type != "markdown" or is_manual(above) or nbgrader_meta(above).get("solution"):
                break
            prompt.insert(0, above.source.strip())
        sample, rubric = split_answer(cell.source)
        out.append(
            ManualQuestion(
                str(meta.get("grade_id")),
                float(meta.get("points") or 0),
                "\n\n".join(prompt),
                sample,
                rubric,
                cell.cell_type,
            )
        )
    return out


def check(notebook, where: str = "") -> list[ManualQuestion]:
    """:func:`manual_questions`, each checked: a ``Rubric`` line with items whose points add up to the cell's
    points, a sample answer above it, no ``BEGIN/END SOLUTION`` markers (nbgrader would release the text
    outside them), a positive ``points``.

    Raises:
        RubricError: naming the cell and what to change.
    """
    nb = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, str | pathlib.Path) else notebook
    where = where or (str(notebook) if isinstance(notebook, str | pathlib.Path) else "the notebook")
    questions = manual_questions(nb)
    sources = {nbgrader_meta(c).get("grade_id"): c.source for c in nb.cells if is_manual(c)}
    for q in questions:
        cell = f"{where}: the manually graded cell {q.grade_id!r}"
        if SOLUTION_MARKER.search(sources[q.grade_id]):
            raise RubricError(
                f"{cell} holds BEGIN/END SOLUTION markers: nbgrader would hand out the text outside "
                "them (the rubric too). Remove the markers: the release replaces the whole cell"
            )
        if q.points <= 0:
            raise RubricError(f"{cell} has no points: set metadata nbgrader points to the question's points")
        if not q.rubric:
            raise RubricError(
                f"{cell} has no rubric: add a line '#### Rubric' after the sample answer, then the "
                "rubric's items ('- 1 point: ...')"
            )
        if not q.sample_answer:
            raise RubricError(
                f"{cell} has no sample answer above its '#### Rubric' line: write the answer you would give full marks"
            )
        if abs(q.rubric_points() - q.points) > 1e-9:
            raise RubricError(
                f"{cell} is worth {q.points:g} points but its rubric's items ('- N points: ...') add "
                f"up to {q.rubric_points():g}: make them agree"
            )
        if not q.prompt:
            raise RubricError(f"{cell} has no prompt: put the question in a Markdown cell just above it")
    return questions


def render(assignment: str, questions: list[ManualQuestion]) -> str:
    """The grader's sheet for ``assignment`` as Markdown: per question its prompt, points, rubric and sample
    answer. For the person grading only: it holds what the release hides."""
    total = sum(q.points for q in questions)
    lines = [f"# {assignment}: questions graded by hand (for graders only: do not share)", ""]
    if not questions:
        return "\n".join(lines + [f"{assignment} has no manually graded question.", ""])
    lines += [
        f"{len(questions)} question{'s' if len(questions) != 1 else ''}, {total:g} points. Enter each score "
        "in the formgrader (Manual Grading > the submission > the cell's score box); `adl-grade export "
        f"{assignment}` counts it from then on.",
        "",
    ]
    for q in questions:
        prompt = "\n".join(f"> {line}" if line else ">" for line in q.prompt.splitlines())
        lines += [
            f"## {q.grade_id} ({q.points:g} points)",
            "",
            "### Prompt",
            "",
            prompt,
            "",
            "### Rubric",
            "",
            q.rubric,
            "",
            "### Sample answer",
            "",
            q.sample_answer,
            "",
        ]
    return "\n".join(lines)
