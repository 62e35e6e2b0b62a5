"""What a student reads speaks to the student: no talk of slides, our sources, copies or errata, of the test
runs' bookkeeping (smoke runs, profiles, HEADLINES, CI), no bare ``assert`` in a lesson (a lesson checks its
claims with ``adl.check``, which prints "Check: ..."), and no code line over 100 characters (Colab would
scroll it sideways).

Student text is every week notebook, every released assignment and every project starter; the release is
nbgrader's copy of source/, so a word in a solution or a hidden test (which students never see) is not
checked here.
"""

from __future__ import annotations

import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "course" / "project").rglob("*.ipynb"))
RELEASED = sorted((ROOT / "release").glob("*/*.ipynb"))
STUDENT_NOTEBOOKS = [p for p in LESSONS + RELEASED if ".ipynb_checkpoints" not in p.parts]
MAX_CODE_LINE = 100

# Words about how the course was made or tested, wherever they appear (text, comments, strings).
ANYWHERE = re.compile(
    r"\bslides?\b|\bslide ?decks?\b|\bour (?:text )?cop(?:y|ies)\b|\berrat(?:a|um)\b|\bsmoke\b|(?-i:\bCI\b)"
    r"|\bHEADLINES\b|\bseed decks?\b|\bour sources?\b|\bsource material\b",
    re.IGNORECASE,
)
# ...and in prose only (markdown and comments; code may name its `profile` variable).
IN_PROSE = re.compile(r"\bprofiles?\b|\bstand-ins?\b", re.IGNORECASE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
COMMENT = re.compile(r"(?:^|\s)#(?!!)\s?(.*)$")
BARE_ASSERT = re.compile(r"^\s*assert\b")


def _rel(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


def text_problems(nb) -> list[str]:
    """Each place where ``nb`` talks about how the course was made or tested, as 'cell N: "..."'."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            prose, code = INLINE_CODE.sub("", cell.source), cell.source
        elif cell.cell_type == "code":
            code = cell.source
            prose = "\n".join(m.group(1) for line in code.splitlines() if (m := COMMENT.search(line)))
        else:
            continue
        found = [m.group(0) for m in ANYWHERE.finditer(code)] + [m.group(0) for m in IN_PROSE.finditer(prose)]
        problems += [f'cell {i}: "{word}"' for word in found]
    return problems


def code_problems(nb, *, lesson: bool) -> list[str]:
    """Code lines over MAX_CODE_LINE characters, and (in a lesson) bare assert statements."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for n, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > MAX_CODE_LINE:
                problems.append(f"cell {i} line {n}: {len(line)} characters")
            if lesson and BARE_ASSERT.match(line):
                problems.append(f"cell {i} line {n}: a bare assert (write adl.check(condition, 'the claim'))")
    return problems


def test_there_are_student_notebooks():
    assert len(LESSONS) >= 15 and len(RELEASED) >= 7


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=_rel)
def test_speaks_to_students(path):
    problems = text_problems(nbformat.read(str(path), as_version=4))
    assert problems == [], f"{_rel(path)} talks about how the course was made or tested: {problems}"


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=_rel)
def test_code_fits_and_checks_read_as_checks(path):
    problems = code_problems(nbformat.read(str(path), as_version=4), lesson=path in LESSONS)
    assert problems == [], f"{_rel(path)}: {problems}"


def _nb(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


@pytest.mark.parametrize(
    "source",
    [
        "As the slides show, ...",
        "the fourth slide deck",
        "incomplete in our copy",
        "our text copy of it",
        "Errata: ...",
        "the smoke run",
        "what CI runs",
        "see HEADLINES",
        "the run profile decides",
        "a stand-in for SVHN",
        "our sources say",
    ],
)
def test_words_about_the_making_are_found_in_markdown(source):
    assert text_problems(_nb(nbformat.v4.new_markdown_cell(source))) != []


@pytest.mark.parametrize(
    "source",
    [
        "The filter moves across the image.",
        "A sliding window of 3 days.",
        "`profile.epochs(5)` shrinks the run.",
        "Open-source code; the source image.",
        "Seed the generator with 42.",
        "Ci, the cell state.",
    ],
)
def test_ordinary_words_pass(source):
    assert text_problems(_nb(nbformat.v4.new_markdown_cell(source))) == []


def test_code_may_name_its_profile_but_comments_may_not_talk_about_it():
    ok = nbformat.v4.new_code_cell("profile = adl.setup(seed=42)\nepochs = profile.epochs(5)")
    assert text_problems(_nb(ok)) == []
    bad = nbformat.v4.new_code_cell("epochs = profile.epochs(5)  # the smaller profile in tests")
    assert text_problems(_nb(bad)) == ['cell 0: "profile"']
    assert text_problems(_nb(nbformat.v4.new_code_cell('print("slides 3-4")'))) == ['cell 0: "slides"']


def test_long_lines_and_bare_asserts_are_found():
    cell = nbformat.v4.new_code_cell("x = 1\n" + "y = " + "1" * 97 + "\nassert x == 1, 'x is one'")
    assert code_problems(_nb(cell), lesson=True) == [
        "cell 0 line 2: 101 characters",
        "cell 0 line 3: a bare assert (write adl.check(condition, 'the claim'))",
    ]
    assert code_problems(_nb(cell), lesson=False) == ["cell 0 line 2: 101 characters"]  # homework tests assert
    assert code_problems(_nb(nbformat.v4.new_code_cell("y = " + "1" * 96)), lesson=True) == []
