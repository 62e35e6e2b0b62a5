"""Similarity screening: the pairs of students whose answers share more code than independent work does.

It screens, it does not judge. A high score says that two submissions share long runs of the same code; it
does not say who wrote it, whether they worked together as allowed, or whether both took it from a common
source. A person reads the flagged pairs side by side and decides.

What is compared: each student's answer cells only, the cells the source notebook marks as solution cells,
matched by grade id (a cell the student marked as a solution, or moved, counts by the source's marking). The
instructor's cells (setup, given code, tests) are never compared, and every fingerprint of the release's code
(the starter code of each answer cell, the given code and the visible tests) is taken out of every answer
first: code that every student was handed is no evidence.

How: copydetect's fingerprints (the winnowing of Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms
for document fingerprinting", SIGMOD 2003). Code is tokenized with Pygments and normalized: every variable,
attribute and function name becomes one letter, every string one letter, comments and whitespace go. So a
renamed or re-commented copy normalizes to the same text. The fingerprints are the hashes of all runs of
``NOISE`` normalized characters, compared answer cell by answer cell: reordering the cells, or the functions
and statements inside one, breaks only the runs across the cuts. A Markdown answer is compared as text
(whitespace normalized). The score of a pair is the share of both students' answer code (characters of the
normalized code) that lies in shared runs; a pair at or above the threshold is flagged.

Student text (ids, code) reaches the report escaped: the HTML by Jinja's autoescape under a Content Security
Policy that allows no script and no external resource, the terminal through :func:`ingest.printable`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import pathlib
import tempfile
from typing import Any

import nbformat

from autograder import ingest
from autograder.course import Course, CourseError
from autograder.notebook import InvalidNotebook, nbgrader_meta, parse_submission, read_source

log = logging.getLogger(__name__)
NOISE = 25  # copydetect's noise threshold k (its default): shared runs shorter than this are ignored
GUARANTEE = 25  # copydetect's guarantee threshold (its default): every shared run this long is found
# Characters of one answer fingerprinted: far past any real answer (a few thousand), short of what would let one
# submission hold the screening for minutes and gigabytes (copydetect takes about 5 s and 170 MB per MB of code).
MAX_ANSWER = 100_000
THRESHOLD = 0.5  # flag a pair sharing at least half of its answer code (chosen on the sample class)
IGNORED = ("README.md", "expected.json")  # in a download folder: passed over without a word, as in the demo
SHOWN = 100  # pairs listed in the HTML report (the CSV has all); every flagged pair is shown as well
SHOWN_CODE = 20_000  # characters of one answer shown side by side
SHOWN_SIDE_BY_SIDE = 50  # flagged pairs shown side by side (the most similar first)


@dataclasses.dataclass
class Answer:
    """One answer cell of one student, fingerprinted: its text and copydetect's ``CodeFingerprint``."""

    grade_id: str
    text: str
    fingerprint: Any  # copydetect.CodeFingerprint (copydetect has no type hints)


@dataclasses.dataclass(frozen=True)
class CellScore:
    """How much of one answer cell two students share: characters of normalized code in shared runs, and
    of all the cell's code, for each student."""

    grade_id: str
    shared: tuple[int, int]
    total: tuple[int, int]

    @property
    def similarity(self) -> float:
        """Shared characters of both / all characters of both, in this cell."""
        return sum(self.shared) / sum(self.total) if sum(self.total) else 0.0


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two students and what their answers share, from 0 (nothing) to 1 (everything)."""

    first: str
    second: str
    similarity: float  # shared characters of both / all characters of both
    shares: tuple[float, float]  # for each student: the share of their own answer code found in the other's
    cells: tuple[CellScore, ...]
    flagged: bool

    @property
    def shared(self) -> int:
        """Characters of normalized answer code in shared runs (the first student's side)."""
        return sum(c.shared[0] for c in self.cells)


@dataclasses.dataclass
class SimilarityReport:
    """The screening of one assignment: every pair, most similar first."""

    assignment: str
    students: list[str]
    pairs: list[Pair]
    skipped: list[tuple[str, str]]  # (file or student, why it was not compared, or compared in part)
    threshold: float
    answers: dict[str, dict[str, Answer]] = dataclasses.field(repr=False, default_factory=dict)

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.flagged]


def answer_cells(source_path: pathlib.Path) -> dict[str, str]:
    """Grade id -> cell type of every answer (solution) cell of the instructor's source notebook, in order."""
    _, cells = read_source(source_path)
    return {c.grade_id: c.cell_type for c in cells if c.solution}


def _fingerprint(name: str, text: str, code: bool, starter: frozenset[int] = frozenset()):
    """copydetect's fingerprint of one cell, with the hashes in ``starter`` taken out.

    copydetect's own ``boilerplate`` argument is not used: it removes one occurrence of a boilerplate run
    that the cell holds twice, and a run that occurs twice in the cell even when it is no boilerplate
    (``numpy.intersect1d`` with ``assume_unique`` on hashes that are not unique)."""
    from copydetect import CodeFingerprint
    from copydetect.utils import get_token_coverage

    fp = CodeFingerprint(name, NOISE, GUARANTEE - NOISE + 1, filter=code, language="python", fp=io.StringIO(text))
    if starter:
        fp.hashes = fp.hashes - starter
        fp.hash_idx = {h: i for h, i in fp.hash_idx.items() if h in fp.hashes}
        fp.token_coverage = get_token_coverage(fp.hash_idx, NOISE, len(fp.filtered_code))
    return fp


def starter_hashes(release_path: pathlib.Path) -> frozenset[int]:
    """The fingerprints of everything the release hands students: every code cell (starter code, given code,
    visible tests) and the placeholder text of the Markdown answers."""
    nb = nbformat.read(str(release_path), as_version=4)
    hashes: set[int] = set()
    for cell in nb.cells:
        markdown_answer = cell.cell_type == "markdown" and nbgrader_meta(cell).get("solution")
        if cell.cell_type == "code" or markdown_answer:
            hashes |= _fingerprint("release", _text(cell.source, cell.cell_type), cell.cell_type == "code").hashes
    return frozenset(hashes)


def answers_of(nb, cells: dict[str, str], starter: frozenset[int]) -> dict[str, Answer]:
    """Grade id -> fingerprinted answer of a parsed submission, for each answer cell of the source (``cells``,
    see :func:`answer_cells`) that it holds; a grade id given to several cells counts all of them."""
    texts: dict[str, list[str]] = {}
    for cell in nb.get("cells", []):
        gid = nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str) and gid in cells and isinstance(cell.get("source"), str):
            texts.setdefault(gid, []).append(cell["source"])
    return {
        gid: Answer(gid, text[:MAX_ANSWER], _fingerprint(gid, text[:MAX_ANSWER], cells[gid] == "code", starter))
        for gid in cells
        if gid in texts and (text := _text("\n\n".join(texts[gid]), cells[gid])).strip()
    }


def cut_answers(nb, cells: dict[str, str]) -> list[str]:
    """The answer cells of ``nb`` longer than MAX_ANSWER characters (compared on their beginning only)."""
    sizes: dict[str, int] = {}
    for cell in nb.get("cells", []):
        gid = nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str) and gid in cells and isinstance(cell.get("source"), str):
            sizes[gid] = sizes.get(gid, 0) + len(cell["source"])
    return [gid for gid, size in sizes.items() if size > MAX_ANSWER]


def _text(source: str, cell_type: str) -> str:
    """What is fingerprinted and shown: code as written, prose with its whitespace normalized."""
    return source if cell_type == "code" else " ".join(source.split())


def compare(assignment: str, answers: dict[str, dict[str, Answer]], threshold: float = THRESHOLD) -> SimilarityReport:
    """Every pair of students scored, most similar first (ties by name)."""
    from copydetect import compare_files

    pairs = []
    names = sorted(answers)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            cells = []
            for gid, a in answers[first].items():
                b = answers[second].get(gid)
                if b is None:
                    continue
                fa, fb = a.fingerprint, b.fingerprint
                total = (int(fa.token_coverage), int(fb.token_coverage))
                if not fa.hashes & fb.hashes:
                    cells.append(CellScore(gid, (0, 0), total))
                    continue
                _, (share_a, share_b), _ = compare_files(fa, fb)
                cells.append(CellScore(gid, (round(share_a * total[0]), round(share_b * total[1])), total))
            pairs.append(_pair(first, second, cells, threshold))
    pairs.sort(key=lambda p: (-p.similarity, p.first, p.second))
    return SimilarityReport(assignment, names, pairs, [], threshold, answers)


def _pair(first: str, second: str, cells: list[CellScore], threshold: float) -> Pair:
    shared = [sum(c.shared[k] for c in cells) for k in (0, 1)]
    total = [sum(c.total[k] for c in cells) for k in (0, 1)]
    similarity = sum(shared) / sum(total) if sum(total) else 0.0
    shares = (shared[0] / total[0] if total[0] else 0.0, shared[1] / total[1] if total[1] else 0.0)
    return Pair(first, second, round(similarity, 4), shares, tuple(cells), similarity >= threshold)


def _read(path: pathlib.Path) -> nbformat.NotebookNode:
    """A submission parsed as the grader parses it; InvalidNotebook with the reason if it cannot be."""
    if path.stat().st_size > ingest.MAX_FILE_BYTES:
        raise InvalidNotebook(f"{path.stat().st_size:,} bytes, over the {ingest.MAX_FILE_BYTES:,} limit")
    return parse_submission(path.read_bytes())


def _collected(course: Course, assignment: str) -> dict[str, pathlib.Path]:
    notebook = course.settings(assignment).notebook
    return {s: course.submitted / s / assignment / notebook for s in ingest.submitted_students(course, assignment)}


def screen(
    course: Course,
    assignment: str,
    download: pathlib.Path | None = None,
    threshold: float = THRESHOLD,
) -> SimilarityReport:
    """Screen the submissions of ``assignment``: collected ones (``submitted/<student>/<assignment>/``), or
    those of an LMS download (a .zip or a folder of ``<student>_<assignment>.ipynb``) read by the rules of
    ``adl-grade collect`` into a scratch folder, without collecting them.

    A file that cannot be read as a notebook is named in ``skipped`` with the reason, and the others are
    compared. CourseError for an unknown assignment, a missing release, or fewer than two readable
    submissions.
    """
    if assignment not in course.assignments():
        raise CourseError(f"unknown assignment {assignment!r}; the course has {course.assignments()}")
    if not 0 < threshold <= 1:
        raise CourseError(f"the threshold must be above 0 and at most 1, got {threshold}")
    release = course.release_notebook(assignment)
    if not release.is_file():
        raise CourseError(f"no release notebook {release}: run `adl-grade release {assignment}` first")
    cells = answer_cells(course.source_notebook(assignment))
    starter = starter_hashes(release)
    with tempfile.TemporaryDirectory(prefix="adl-similarity-") as tmp:
        skipped: list[tuple[str, str]] = []
        if download is None:
            where = f"{course.submitted}; run `adl-grade collect` first, or pass --download"
            paths = _collected(course, assignment)
        else:
            where = f"{download} (files named <student>_{assignment}.ipynb)"
            scratch = dataclasses.replace(course, root=pathlib.Path(tmp), submitted=pathlib.Path(tmp) / "submitted")
            got = ingest.ingest(scratch, assignment, pathlib.Path(download), ignore=IGNORED)
            paths, skipped = got.accepted, list(got.rejected)
        answers = {}
        for student, path in sorted(paths.items()):
            try:
                nb = _read(path)
                answers[student] = answers_of(nb, cells, starter)
                skipped += [
                    (student, f"compared in part: only the first {MAX_ANSWER:,} characters of {gid}")
                    for gid in cut_answers(nb, cells)
                ]
            except (InvalidNotebook, OSError) as exc:
                log.warning("similarity: skipped %s: %s", ingest.printable(student), ingest.printable(exc, 300))
                skipped.append((f"{student} ({path.name})", f"not compared: {exc}"))
    if not paths:
        raise CourseError(f"similarity: no submissions of {assignment} in {where}")
    if len(answers) < 2:
        raise CourseError(f"similarity: {len(answers)} readable submission(s) of {assignment} in {where}; need two")
    report = compare(assignment, answers, threshold)
    report.skipped = skipped
    log.info("similarity: %d students, %d pairs, %d flagged", len(answers), len(report.pairs), len(report.flagged))
    return report


def _segments(text: str, slices) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, shared) at copydetect's slices of shared code (starts, ends)."""
    out, at = [], 0
    for start, end in sorted(zip(*(list(map(int, s)) for s in slices), strict=True)) if len(slices) else []:
        start, end = max(start, at), min(end, len(text))
        if start < end:
            out += [(text[at:start], False), (text[start:end], True)]
            at = end
    out.append((text[at:], False))
    return [(_visible(piece), shared) for piece, shared in out if piece]


def _visible(code: str) -> str:
    """Code as it is, but every control, bidi or invisible character shown as its escape (``printable``),
    so the browser shows the characters that were compared (no Trojan Source reordering)."""
    lines = code.expandtabs(4).split("\n")
    return "\n".join(ingest.printable(line, limit=10 * len(line) + 10) for line in lines)


def side_by_side(report: SimilarityReport, pair: Pair) -> list[dict]:
    """For each answer cell of ``pair``: both students' texts, cut into shared and other pieces."""
    from copydetect import compare_files

    shown = []
    for cell in pair.cells:
        a, b = report.answers[pair.first][cell.grade_id], report.answers[pair.second][cell.grade_id]
        slices: tuple = ([], [])
        if a.fingerprint.hashes & b.fingerprint.hashes:
            _, _, slices = compare_files(a.fingerprint, b.fingerprint)
        sides = [_segments(x.text[:SHOWN_CODE], s) for x, s in zip((a, b), slices, strict=True)]
        shares = [cell.shared[k] / cell.total[k] if cell.total[k] else 0.0 for k in (0, 1)]
        shown.append({"grade_id": cell.grade_id, "sides": sides, "shares": shares})
    return shown


def _cell(text: object) -> str:
    """A CSV field that a spreadsheet shows as text, never runs as a formula."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_report(course: Course, report: SimilarityReport) -> tuple[pathlib.Path, pathlib.Path]:
    """``build/similarity/<assignment>/report.html`` (ranked pairs, the flagged ones side by side) and
        ``pairs.csv`` (every pair, with the similarity of each answer cell: one copied answer among independent
    ones shows there); their paths."""
    import datetime

    import jinja2

    out = course.build / "similarity" / report.assignment
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "pairs.csv"
    with csv_path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["rank", "student_1", "student_2", "similarity", "share_1", "share_2", "shared", "flagged", "cells"]
        )
        for rank, p in enumerate(report.pairs, start=1):
            shares = [f"{s:.4f}" for s in p.shares]
            cells = " ".join(f"{c.grade_id}={c.similarity:.2f}" for c in p.cells)
            row = [rank, _cell(p.first), _cell(p.second), f"{p.similarity:.4f}", *shares, p.shared, p.flagged, cells]
            writer.writerow(row)
    detailed = (report.flagged or report.pairs[:3])[:SHOWN_SIDE_BY_SIDE]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(pathlib.Path(__file__).with_name("templates")), autoescape=True
    )
    page = env.get_template("similarity.html.j2").render(
        report=report,
        listed=[p for i, p in enumerate(report.pairs) if i < SHOWN or p.flagged],
        detailed=[(p, side_by_side(report, p)) for p in detailed],
        noise=NOISE,
        printable=ingest.printable,
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8", errors="backslashreplace")
    return html_path, csv_path


def summary(report: SimilarityReport, paths: tuple[pathlib.Path, pathlib.Path], top: int = 10) -> list[str]:
    """What ``adl-grade similarity`` prints: the sentence that it screens, the most similar pairs (ids through
    ``printable``), what was not compared, and where the report is."""
    lines = [
        f"screened {len(report.students)} submissions of {report.assignment}: {len(report.pairs)} pairs, "
        f"{len(report.flagged)} flagged at similarity >= {report.threshold}",
        "  This screens, it does not judge: read each flagged pair side by side in the report before "
        "concluding anything.",
    ]
    for p in report.pairs[:top]:
        mark = "FLAGGED" if p.flagged else "       "
        lines.append(f"  {mark} {p.similarity:.2f}  {ingest.printable(p.first)}  {ingest.printable(p.second)}")
    lines += [f"  {ingest.printable(name)}: {ingest.printable(why, 400)}" for name, why in report.skipped]
    lines += [f"  report: {paths[0]}", f"  all pairs: {paths[1]}"]
    return lines
