"""Regenerate the sample class of ``adl-grade similarity``: ``autograder/samples/similarity/hw2/``.

The class is written by hand in ``autograder/samples/similarity/answers.yml``: five students who solve hw2
independently, each in their own way, and three who copy one of them (verbatim, with every name changed,
with the code reordered). Each submission is the student release ``release/hw2/hw2.ipynb`` with the student's
answers written into its ``# YOUR CODE HERE`` stubs (``autograder.sample_class.fill``, as hw1's class is
built), saved as an LMS download names it: ``<student>_hw2.ipynb``. The folder's README.md names who copied
whom and lists the score of every pair, measured with ``autograder.similarity`` when the class is written.

Running it twice gives byte-identical files. Usage, from the repository root::

    make release                                              # after changing source/hw2
    .venv/bin/python tools/make_similarity_class.py           # rewrite the class
    .venv/bin/python tools/make_similarity_class.py --check   # exit 1 if it is out of date
    .venv/bin/python tools/make_similarity_class.py --run-tests   # also grade every answer: hidden tests too

``--run-tests`` runs each notebook, its test cells restored from ``source/hw2/hw2.ipynb`` with the hidden
tests, in a fresh kernel (profile smoke) and fails if any test cell raises: every student of the class must
be correct, so that only copying can tell them apart. It takes about a minute.
"""

from __future__ import annotations

import argparse
import collections
import copy
import io
import pathlib
import re
import sys
import tokenize

import nbformat
import yaml

from autograder.notebook import nbgrader_meta
from autograder.sample_class import Answer, fill

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASS = ROOT / "autograder" / "samples" / "similarity"
ASSIGNMENT = "hw2"
OUT = CLASS / ASSIGNMENT
ROSTER = CLASS / "answers.yml"
RELEASE = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
SOURCE = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
BLANK_BEFORE = re.compile(r"\s*(if|for|return) ")  # where the renaming copier spreads the code out


class ClassError(ValueError):
    """answers.yml is malformed or does not fit the release."""


def solution_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """Grade id -> solution cell of a notebook, in order."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("solution")}


def _bodies(value, where: str) -> Answer:
    if isinstance(value, dict):
        code = value.get("code")
        return Answer(tuple(code) if isinstance(code, list) else (code,), value.get("prefix", ""))
    if isinstance(value, list):
        return Answer(tuple(value))
    if isinstance(value, str):
        return Answer((value,))
    raise ClassError(f"{where}: expected code, a list of code or a mapping with prefix and code")


def independent(release, entry: dict) -> nbformat.NotebookNode:
    """The release with the student's answers written in."""
    nb = copy.deepcopy(release)
    cells = solution_cells(nb)
    for gid, value in entry["answers"].items():
        if gid not in cells:
            raise ClassError(f"{entry['id']}: the release has no solution cell {gid!r}")
        if cells[gid].cell_type == "markdown":
            cells[gid].source = value
        else:
            try:
                cells[gid].source = fill(cells[gid].source, _bodies(value, f"{entry['id']}, {gid}"))
            except ValueError as exc:
                raise ClassError(f"{entry['id']}, {gid}: {exc}") from None
    return nb


F_STRING = re.compile(r"(?i)[rb]?f[rb]?['\"]")
FIELD = re.compile(r"\{[^{}]*\}")  # a replacement field of an f-string (no nesting in the sample answers)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def rename(code: str, names: dict[str, str]) -> str:
    """``code`` with every name token in ``names`` replaced, its comments deleted and a blank line put before
    each ``if``, ``for`` and ``return``: what a student does to hide a copy. Strings are left as they are."""
    lines = code.split("\n")
    edits = []  # (row, start column, end column, new text), applied from the end
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.NAME and tok.string in names:
            edits.append((tok.start[0], tok.start[1], tok.end[1], names[tok.string]))
        elif tok.type == tokenize.COMMENT:
            edits.append((tok.start[0], tok.start[1], tok.end[1], ""))
        elif tok.type == tokenize.STRING and F_STRING.match(tok.string) and tok.start[0] == tok.end[0]:
            # Python 3.11 gives an f-string as one token (3.12 on: its names are NAME tokens, handled above);
            # a student renaming a variable renames it in the f-strings too, so both give the same copy
            renamed = FIELD.sub(lambda m: NAME.sub(lambda n: names.get(n.group(), n.group()), m.group()), tok.string)
            edits.append((tok.start[0], tok.start[1], tok.end[1], renamed))
    for row, start, end, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    out: list[str] = []
    for line in (line.rstrip() for line in lines):
        if not line and out and not out[-1]:
            continue
        if BLANK_BEFORE.match(line) and out and out[-1] and not out[-1].endswith(":"):
            out.append("")
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


def _lines(text: str, markdown: bool) -> collections.Counter:
    """The stripped non-blank lines of code, or the words of prose: what a reordering may not change."""
    if markdown:
        return collections.Counter(text.split())
    return collections.Counter(line.strip() for line in text.split("\n") if line.strip())


def copied(entry: dict, original: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``original`` made the way ``entry['how']`` says."""
    nb = copy.deepcopy(original)
    cells = solution_cells(nb)
    how = entry.get("how")
    if how == "verbatim":
        return nb
    if how == "renamed":
        for cell in cells.values():
            if cell.cell_type == "code":
                cell.source = rename(cell.source, entry["rename"])
        for gid, text in (entry.get("answers") or {}).items():
            cells[gid].source = text
        return nb
    if how == "reordered":
        for gid, text in entry["cells"].items():
            markdown = cells[gid].cell_type == "markdown"
            if _lines(text, markdown) != _lines(cells[gid].source, markdown):
                extra = _lines(text, markdown) - _lines(cells[gid].source, markdown)
                raise ClassError(f"{entry['id']}, {gid}: not a reordering of {entry['copy_of']}'s cell: {extra}")
            cells[gid].source = text
        return nb
    raise ClassError(f"{entry['id']}: 'how' must be verbatim, renamed or reordered, got {how!r}")


def build(release_path: pathlib.Path = RELEASE, roster: pathlib.Path = ROSTER) -> dict[str, nbformat.NotebookNode]:
    """Student id -> submission, in the roster's order."""
    if not release_path.is_file():
        raise FileNotFoundError(f"{release_path} not found: run `make release` first")
    release = nbformat.read(release_path, as_version=4)
    entries = yaml.safe_load(roster.read_text())["students"]
    built: dict[str, nbformat.NotebookNode] = {}
    for entry in entries:
        if "copy_of" in entry:
            if entry["copy_of"] not in built:
                raise ClassError(f"{entry['id']} copies {entry['copy_of']!r}, who is not listed before")
            built[entry["id"]] = copied(entry, built[entry["copy_of"]])
        else:
            built[entry["id"]] = independent(release, entry)
    return built


def copy_pairs(roster: pathlib.Path = ROSTER) -> dict[tuple[str, str], str]:
    """(original, copy) -> how, from the roster: the pairs that screening must flag."""
    entries = yaml.safe_load(roster.read_text())["students"]
    return {(e["copy_of"], e["id"]): e["how"] for e in entries if "copy_of" in e}


def readme(notes: dict[str, str], pairs: dict[tuple[str, str], str], screened) -> str:
    """README.md of the class: who is who, who copied whom, and every pair's measured score."""
    from autograder import similarity

    copies = {frozenset(p): how for p, how in pairs.items()}
    rows = []
    for pair in screened.pairs:
        how = copies.get(frozenset((pair.first, pair.second)))
        rows.append(
            f"| {pair.first} | {pair.second} | {pair.similarity:.3f} | {pair.shared} | "
            f"{'copy (' + how + ')' if how else 'independent'} | {'yes' if pair.flagged else 'no'} |"
        )
    independent_pairs = [p for p in screened.pairs if frozenset((p.first, p.second)) not in copies]
    false_pos = [p for p in independent_pairs if p.flagged]
    top = max((p.similarity for p in independent_pairs), default=0.0)
    low = min((p.similarity for p in screened.pairs if frozenset((p.first, p.second)) in copies), default=0.0)
    authors = {pair[1]: pair[0] for pair in pairs}
    distinct = len({frozenset(authors.get(s, s) for s in (p.first, p.second)) for p in independent_pairs})
    students = "\n".join(f"| `{sid}_{ASSIGNMENT}.ipynb` | {note} |" for sid, note in notes.items())
    return f"""# A sample class for `adl-grade similarity` ({ASSIGNMENT})

Written by `tools/make_similarity_class.py` from `../answers.yml`: do not edit by hand. Eight submissions of
{ASSIGNMENT} as an LMS download names them. Every one is correct: its answers pass every test of
`source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb`, hidden tests included (`make_similarity_class.py --run-tests`).

| File | Who wrote what |
|---|---|
{students}

Who copied whom: {"; ".join(f"{c} copied {o} ({how})" for (o, c), how in pairs.items())}. Everything
else is independent work.

Screen it without collecting it:

    adl-grade similarity {ASSIGNMENT} --download autograder/samples/similarity/{ASSIGNMENT}

## Every pair, as `autograder.similarity` scores it

Similarity: the share of the two students' answer code (normalized, after the release's code is taken out)
that lies in runs of at least {similarity.NOISE} characters found in both. At the threshold {screened.threshold},
{len(screened.flagged)} pairs are flagged. Of the {len(independent_pairs)} pairs of students who worked independently
({distinct} pairs of different authors, since each copy repeats its original's code), {len(false_pos)} are
flagged: a false-positive rate of {len(false_pos) / max(1, len(independent_pairs)):.0%}. The most similar
independent pair scores {top:.3f}, the least similar copy {low:.3f}.

| Student | Student | Similarity | Shared characters | Truth | Flagged |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def render(release_path: pathlib.Path = RELEASE, roster: pathlib.Path = ROSTER) -> dict[str, bytes]:
    """File name -> bytes of everything the script writes into the class folder."""
    from autograder import similarity

    built = build(release_path, roster)
    files = {f"{sid}_{ASSIGNMENT}.ipynb": (nbformat.writes(nb) + "\n").encode() for sid, nb in built.items()}
    source = similarity.answer_cells(SOURCE)
    starter = similarity.starter_hashes(release_path)
    answers = {sid: similarity.answers_of(nb, source, starter) for sid, nb in built.items()}
    screened = similarity.compare(ASSIGNMENT, answers, similarity.THRESHOLD)
    notes = {e["id"]: " ".join(e["note"].split()) for e in yaml.safe_load(roster.read_text())["students"]}
    files["README.md"] = readme(notes, copy_pairs(roster), screened).encode()
    return files


def run_tests(built: dict[str, nbformat.NotebookNode]) -> list[str]:
    """Run every submission with the source's test cells (hidden tests included) in a fresh kernel; the
    students whose notebook raised, with the error."""
    import os
    import tempfile

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from autograder.notebook import read_source, restore

    _, cells = read_source(SOURCE)
    failures = []
    for sid, nb in built.items():
        graded = restore(copy.deepcopy(nb), cells).notebook
        with tempfile.TemporaryDirectory() as tmp:
            env_before = os.environ.get("ADL_PROFILE")
            os.environ["ADL_PROFILE"] = "smoke"
            try:
                NotebookClient(
                    graded, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp}}
                ).execute()
                print(f"  {sid}: every test cell passes")
            except CellExecutionError as exc:
                failures.append(f"{sid}: {str(exc).strip().splitlines()[-1]}")
            finally:
                if env_before is None:
                    os.environ.pop("ADL_PROFILE", None)
                else:
                    os.environ["ADL_PROFILE"] = env_before
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--run-tests", action="store_true", help="also run every answer against the tests")
    args = parser.parse_args(argv)
    try:
        files = render()
        if args.run_tests:
            failures = run_tests(build())
            for line in failures:
                print(f"make_similarity_class: {line}", file=sys.stderr)
            if failures:
                return 1
    except (ClassError, FileNotFoundError) as exc:
        print(f"make_similarity_class: {exc}", file=sys.stderr)
        return 2
    stale = sorted(p.name for p in OUT.glob(f"*_{ASSIGNMENT}.ipynb") if p.name not in files) if OUT.is_dir() else []
    differing = [n for n, data in files.items() if not (OUT / n).is_file() or (OUT / n).read_bytes() != data]
    if args.check:
        for name in differing + stale:
            print(f"out of date: {OUT / name}", file=sys.stderr)
        return 1 if differing or stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in differing:
        (OUT / name).write_bytes(files[name])
    for name in stale:
        (OUT / name).unlink()
    print(f"{OUT}: {len(files) - 1} submissions and README.md ({len(differing)} written, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
