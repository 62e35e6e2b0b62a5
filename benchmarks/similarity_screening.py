"""Similarity screening on the sample class: `adl-grade similarity` against copydetect as its documentation uses
it and a naive difflib baseline, the same 28 pairs, in one run.

    .venv/bin/python benchmarks/similarity_screening.py [--repeat 3] [--out benchmarks/results.md]

The class is autograder/samples/similarity/hw2: 8 correct submissions of hw2, 5 written independently and 3
copies (who copied whom, and how, is read from autograder/samples/similarity/answers.yml: a verbatim, a renamed
and a reordered copy). Of its 28 pairs, 3 are copies and 25 independent. Each method scores every pair:

- adl-grade similarity (ours): ``similarity.screen(course, "hw2", download=SAMPLE)``, the answer cells compared
  cell by cell with copydetect's fingerprints after every fingerprint of the release (starter code, given code,
  visible tests) is taken out;
- copydetect (the peer): each student's whole notebook exported as one .py file of all its code cells
  (nbconvert's PythonExporter), then ``CopyDetector(test_dirs=..., ref_dirs=..., extensions=["py"])`` and
  ``run()`` as its documentation shows, its defaults otherwise (no boilerplate: nothing of the release taken
  out). A pair's score is the larger of its two shares (each file's share of its code found in the other), the
  rule by which copydetect's report lists a pair above ``display_t``;
- copydetect with the release as boilerplate: the same, with the release notebook exported the same way in
  ``boilerplate_dirs``, copydetect's documented option for code every student was handed. Not the way most
  instructors first run it, but one option away, so it is measured too;
- difflib (the naive baseline): ``difflib.SequenceMatcher(None, a, b).ratio()`` on each student's answer cells
  (the same grade ids as ours) joined in the source's order, as written.

Per method: every pair's score; the lowest copy score, the highest independent score and the margin between them
(positive: some threshold separates copies from independent work); the copies flagged (of 3) and the false
positives (of 25) at the method's own best threshold (fewest errors, then the widest gap, reported as the middle
of the gap) and at 0.5 (adl-grade's default); and the wall time (best of ``--repeat`` runs, everything from
reading the notebooks to the scores). Appends the tables to the results file.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import importlib.metadata
import os
import pathlib
import platform
import sys
import tempfile
import time

import nbformat
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import append_section  # noqa: E402 (benchmarks/results_file.py)

from autograder import similarity  # noqa: E402
from autograder.course import load_course  # noqa: E402

ASSIGNMENT = "hw2"
SAMPLE = ROOT / "autograder" / "samples" / "similarity" / ASSIGNMENT
ANSWERS = SAMPLE.parent / "answers.yml"
FIXED = similarity.THRESHOLD  # 0.5
METHODS = (
    "adl-grade similarity",
    "copydetect (whole notebook)",
    "copydetect (whole notebook, release as boilerplate)",
    "difflib ratio (answers)",
)


def copies_of(answers_yml: pathlib.Path) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(student, student) sorted -> (who copied, whom, how), for every copy the sample class's answers.yml names."""
    spec = yaml.safe_load(answers_yml.read_text())
    return {
        tuple(sorted((s["id"], s["copy_of"]))): (s["id"], s["copy_of"], s.get("how", "copy"))
        for s in spec["students"]
        if s.get("copy_of")
    }


def students_of(sample: pathlib.Path) -> dict[str, pathlib.Path]:
    return {p.name.removesuffix(f"_{ASSIGNMENT}.ipynb"): p for p in sorted(sample.glob(f"*_{ASSIGNMENT}.ipynb"))}


def evaluate(scores: dict[tuple[str, str], float], copies: set[tuple[str, str]], fixed: float = FIXED) -> dict:
    """What one method's scores say: the lowest copy, the highest independent pair, the margin, and the copies
    flagged and false positives (flagged: score >= threshold) at its best threshold and at ``fixed``."""
    copy_scores = [s for p, s in scores.items() if p in copies]
    independent = [s for p, s in scores.items() if p not in copies]

    def flagged(t: float) -> tuple[int, int]:
        return sum(s >= t for s in copy_scores), sum(s >= t for s in independent)

    values = sorted(set(scores.values()))
    best = None
    for i, t in enumerate(values):
        caught, fp = flagged(t)
        below = values[i - 1] if i else 0.0
        key = (len(copies) - caught + fp, -(t - below))  # fewest errors, then the widest gap below t
        if best is None or key < best[0]:
            best = (key, (t + below) / 2)
    threshold = best[1]
    return {
        "lowest_copy": min(copy_scores),
        "highest_independent": max(independent),
        "margin": min(copy_scores) - max(independent),
        "best_threshold": threshold,
        "at_best": flagged(threshold),
        "at_fixed": flagged(fixed),
    }


def ours(course) -> dict[tuple[str, str], float]:
    report = similarity.screen(course, ASSIGNMENT, download=SAMPLE)
    return {tuple(sorted((p.first, p.second))): p.similarity for p in report.pairs}


def copydetect_peer(
    students: dict[str, pathlib.Path], release: pathlib.Path | None = None
) -> dict[tuple[str, str], float]:
    """copydetect's scores of the students' notebooks exported as .py (with ``release``: that notebook, exported
    the same way, given as boilerplate)."""
    from copydetect import CopyDetector
    from nbconvert import PythonExporter

    exporter = PythonExporter()
    with tempfile.TemporaryDirectory(prefix="adl-copydetect-") as tmp:
        code_dir, boilerplate = pathlib.Path(tmp) / "students", pathlib.Path(tmp) / "boilerplate"
        code_dir.mkdir()
        boilerplate.mkdir()
        for student, path in students.items():
            code, _ = exporter.from_notebook_node(nbformat.read(str(path), as_version=4))
            (code_dir / f"{student}.py").write_text(code)
        if release is not None:
            code, _ = exporter.from_notebook_node(nbformat.read(str(release), as_version=4))
            (boilerplate / "release.py").write_text(code)
        detector = CopyDetector(
            test_dirs=[str(code_dir)],
            ref_dirs=[str(code_dir)],
            boilerplate_dirs=[str(boilerplate)] if release is not None else [],
            extensions=["py"],
            silent=True,
            autoopen=False,
        )
        detector.run()
        index = {pathlib.Path(f).stem: i for i, f in enumerate(detector.test_files)}
        ref = {pathlib.Path(f).stem: j for j, f in enumerate(detector.ref_files)}
        sim = detector.similarity_matrix
        names = sorted(index)
        return {
            (a, b): round(float(max(sim[index[a], ref[b], 0], sim[index[a], ref[b], 1])), 4)
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        }


def difflib_baseline(course, students: dict[str, pathlib.Path]) -> dict[tuple[str, str], float]:
    cells = similarity.answer_cells(course.source_notebook(ASSIGNMENT))
    texts = {}
    for student, path in students.items():
        by_id: dict[str, list[str]] = {}
        for cell in nbformat.read(str(path), as_version=4).cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid in cells:
                by_id.setdefault(gid, []).append(cell.source)
        texts[student] = "\n\n".join("\n\n".join(by_id.get(gid, [])) for gid in cells)
    names = sorted(texts)
    return {
        (a, b): round(difflib.SequenceMatcher(None, texts[a], texts[b]).ratio(), 4)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


def timed(fn, repeat: int):
    """(result of the last call, best wall seconds of ``repeat`` calls)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method; the best time is kept")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    import copydetect  # noqa: F401 (imported before any timing: each method then pays only its own work)
    import nbconvert  # noqa: F401
    from copydetect.defaults import DISPLAY_THRESHOLD

    course = load_course()
    students = students_of(SAMPLE)
    truth = copies_of(ANSWERS)
    runs = {
        METHODS[0]: timed(lambda: ours(course), args.repeat),
        METHODS[1]: timed(lambda: copydetect_peer(students), args.repeat),
        METHODS[2]: timed(lambda: copydetect_peer(students, course.release_notebook(ASSIGNMENT)), args.repeat),
        METHODS[3]: timed(lambda: difflib_baseline(course, students), args.repeat),
    }
    pairs = sorted(runs[METHODS[0]][0], key=lambda p: (p not in truth, -runs[METHODS[0]][0][p], p))
    for name, (scores, _) in runs.items():
        if set(scores) != set(pairs):
            raise SystemExit(f"{name} scored other pairs than adl-grade: {sorted(set(scores) ^ set(pairs))}")
    n_copies, n_independent = len(truth), len(pairs) - len(truth)
    summary = [
        "| method | lowest copy | highest independent | margin | best threshold | at best: copies flagged | "
        f"at best: false positives | at {FIXED:g}: copies flagged | at {FIXED:g}: false positives | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    results = {}
    for name, (scores, wall) in runs.items():
        r = results[name] = evaluate(scores, set(truth))
        summary.append(
            f"| {name} | {r['lowest_copy']:.3f} | {r['highest_independent']:.3f} | **{r['margin']:+.3f}** | "
            f"{r['best_threshold']:.3f} | {r['at_best'][0]} of {n_copies} | {r['at_best'][1]} of {n_independent} | "
            f"{r['at_fixed'][0]} of {n_copies} | {r['at_fixed'][1]} of {n_independent} | {wall:.2f} s |"
        )
    every = ["| pair | truth | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    for p in pairs:
        how = f"copy ({truth[p][2]})" if p in truth else "independent"
        every.append(f"| {p[0]} / {p[1]} | {how} | " + " | ".join(f"{runs[m][0][p]:.3f}" for m in METHODS) + " |")
    ranked = sorted(METHODS, key=lambda m: -results[m]["margin"])
    perfect = (n_copies, 0)
    verdict = (
        "Margin, widest first: "
        + ", ".join(f"{m} {results[m]['margin']:+.3f}" for m in ranked)
        + ". Every copy flagged and no independent pair, at the method's own best threshold: "
        + (", ".join(m for m in METHODS if results[m]["at_best"] == perfect) or "none")
        + f"; at {FIXED:g}: "
        + (", ".join(m for m in METHODS if results[m]["at_fixed"] == perfect) or "none")
        + f". At copydetect's default display threshold ({DISPLAY_THRESHOLD:g}) its report would list "
        + ", ".join(
            f"{sum(s > DISPLAY_THRESHOLD for p, s in runs[m][0].items() if p not in truth)} of {n_independent} "
            f"independent pairs ({m})"
            for m in METHODS[1:3]
        )
        + "."
    )
    command = " ".join(["python benchmarks/similarity_screening.py", *sys.argv[1:]])
    lines = [
        f"## Similarity screening, {datetime.date.today().isoformat()}",
        "",
        f"`{command}` on {os.cpu_count()} cores, Python {platform.python_version()}. The sample class "
        f"autograder/samples/similarity/{ASSIGNMENT} ({len(students)} correct submissions: "
        f"{len(students) - n_copies} independent, {n_copies} copies: "
        + ", ".join(f"{who} of {whom} ({how})" for who, whom, how in sorted(truth.values()))
        + f"), all {len(pairs)} pairs. adl-grade similarity: its answer cells, cell by cell, the release's code "
        f"taken out. Peer: copydetect {importlib.metadata.version('copydetect')}'s `CopyDetector` with its "
        "defaults on each whole notebook exported as .py by nbconvert (no boilerplate given); a pair's score is "
        "the larger of its two shares, the rule of copydetect's report; the same with the release notebook, "
        "exported the same way, given as `boilerplate_dirs` (its documented option for handed-out code). "
        "Baseline: `difflib.SequenceMatcher.ratio` on the answer cells joined. Margin: lowest copy minus highest "
        "independent pair. Best threshold: each method's own, the middle of the gap "
        f"that makes the fewest errors (flagged: score >= threshold). Wall time: best of {args.repeat}, "
        "from reading the notebooks to the scores.",
        "",
        *summary,
        "",
        verdict,
        "",
        "Every pair's score:",
        "",
        *every,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    append_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
