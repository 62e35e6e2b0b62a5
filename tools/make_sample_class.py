"""Regenerate the sample classes of autograder/samples/: the submissions as an LMS download delivers them, and their
grades.

Every class is built from the student release (``release/<assignment>/<assignment>.ipynb``), so it follows the
assignment when it changes:

* hw1's from its roster, ``source/hw1/sample_class.yml`` (read and checked by ``autograder/sample_class.py``):
  each student's code is written into the release's ``# YOUR CODE HERE`` stubs, and a few students also edit or
  delete test cells or hand in a broken file. It writes ``autograder/samples/hw1/<student_id>_hw1.ipynb`` and
  ``expected.json`` (for every student the expected points per test cell, the total and a note, under ``RULES``);
* every other assignment's from ``source/<assignment>/wrong_answers.yml`` (``autograder/cases.py``).

Running it twice gives byte-identical files. Usage, from the repository root::

    make release                                         # after changing source/
    .venv/bin/python tools/make_sample_class.py          # rewrite the classes
    .venv/bin/python tools/make_sample_class.py --check  # exit 1 if a class is out of date
    .venv/bin/python tools/make_sample_class.py --only hw3

If hw1 changes shape (a stub more or less in a solution cell, a renamed grade id), the script stops and names
the student and the cell: update the roster.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import nbformat

from autograder import cases, rubric
from autograder.notebook import nbgrader_meta
from autograder.sample_class import ROSTER_FILE, RosterError, Student, fill, load_roster

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "autograder" / "samples"
ASSIGNMENT = "hw1"
RELEASE = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
SOURCE = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"  # the sample answers of the questions graded by hand
ROSTER = ROOT / "source" / ASSIGNMENT / ROSTER_FILE
# The script's path before it moved to tools/, as the committed expected.json files say: kept so that the move
# rewrote no sample file.
GENERATED_BY = "tools/make_sample_class.py"

RULES = [
    "The test cells are restored from source/hw1/hw1.ipynb, hidden tests included: an edited test cell is "
    "replaced by the source's, a deleted one is put back after its solution cell.",
    "The whole notebook runs top to bottom in one fresh kernel (profile smoke), with a per-cell time limit; a "
    "cell that runs past it is interrupted and whatever it would have defined is missing afterwards.",
    "A test cell earns its points if and only if it raises no error. Output on stderr (warnings, TensorFlow "
    "log lines) costs nothing.",
    "A file that is not valid notebook JSON scores 0 in every test cell.",
    'A question graded by hand (question 8) is no test cell: it is not in "points" or "total". An answer '
    'handed in as released scores 0; any other awaits a grade in the formgrader (listed under "manual").',
]


# --------------------------------------------------------------------------------------------------------
# Tampering: edits of a built notebook beyond its code, named by a student's 'tamper' in the roster.
# --------------------------------------------------------------------------------------------------------


def _tamper_browser(nb) -> None:
    """s31: her own cells hold HTML for the instructor's browser: a raw cell marked text/html and a
    Markdown cell with a script, an <img onerror> and a javascript: link."""
    raw = nbformat.v4.new_raw_cell("<script>document.title='owned by s31 (raw)'</script>")
    raw.metadata["format"] = "text/html"
    raw.metadata["raw_mimetype"] = "text/html"
    md = nbformat.v4.new_markdown_cell(
        "My notes. <script>document.title='owned by s31 (markdown)'</script>\n\n"
        '<img src="x" onerror="document.title=\'owned by s31 (img)\'">\n\n'
        "[see my answer](javascript:document.title='owned%20by%20s31') and $\\href{javascript:alert(1)}{x}$"
    )
    raw.id, md.id = "s31-raw-html", "s31-notes"  # fixed ids: the class is rebuilt byte for byte
    nb.cells[1:1] = [raw, md]


def _tamper_metadata(nb) -> None:
    """More points, a test turned into markdown, a test that is no longer graded, another kernel."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "q1_sigmoid":
            meta["points"] = 100
        if meta.get("grade_id") == "q2_neuron":
            cell.cell_type = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        if meta.get("grade_id") == "q3_dense":
            meta["grade"] = False
    nb.metadata["kernelspec"] = {"name": "evil", "display_name": "Always full marks", "language": "python"}


def _tamper_outputs(nb) -> None:
    """10,000 stored output lines in one cell."""
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_sigmoid_solution")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(f"line {i}\n" for i in range(10_000)))]


# A pickle whose loading would create /tmp/adl-pickle-was-loaded in the process that loads it.
PICKLE_B64 = "gASVQQAAAAAAAACMAm9zlIwGc3lzdGVtlJOUjCV0b3VjaCAvdG1wL2FkbC1waWNrbGUtd2FzLWxvYWRlZJSFlFKULg=="


def _tamper_pickle(nb) -> None:
    """The same crafted pickle as an output, an attachment and in metadata."""
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_neuron_solution")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"application/x-python-pickle": PICKLE_B64, "text/plain": "a model"}
        )
    ]
    cell.metadata["model"] = {"pickle": PICKLE_B64}
    md = next(c for c in nb.cells if c.cell_type == "markdown")
    md.attachments = {"model.pkl": {"application/octet-stream": PICKLE_B64}}


TAMPERS = {
    "browser": _tamper_browser,
    "metadata": _tamper_metadata,
    "outputs": _tamper_outputs,
    "pickle": _tamper_pickle,
}


# --------------------------------------------------------------------------------------------------------
# hw1: the roster's students
# --------------------------------------------------------------------------------------------------------


def sample_answers(source) -> dict[str, str]:
    """Grade id -> sample answer (the text above ``#### Rubric``) of each question graded by hand of the
    source notebook, in order."""
    return {q.grade_id: q.sample_answer for q in rubric.check(source, where=f"source/{ASSIGNMENT}")}


def build(release, student: Student, by_hand: dict[str, str]):
    """The submission of ``student``: a modified deep copy of the release notebook. ``by_hand``: grade id ->
    sample answer of each question graded by hand, written into its cell if ``student.by_hand``. The roster was
    checked against this release (``load_roster``), so every grade id it names is there."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    cells = {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("grade_id")}
    if student.by_hand:
        for gid, text in by_hand.items():
            cells[gid].source = text
    for gid, ans in student.answers.items():
        cells[gid].source = fill(cells[gid].source, ans)
    for gid, new in student.test_edits.items():
        if new is None:
            nb.cells.remove(cells[gid])
        else:
            cells[gid].source = new
    if student.tamper is not None:
        TAMPERS[student.tamper](nb)
    return nb


def points_of(release) -> dict[str, int]:
    """Test grade id -> points, in notebook order."""
    out = {}
    for cell in release.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not rubric.is_manual(cell) and cell.cell_type == "code":
            out[meta["grade_id"]] = int(meta.get("points", 0))
    return out


def expected(release, students: list[Student], manual: dict[str, int]) -> dict:
    """expected.json: ``points`` and ``total`` are the test cells' (autograded); ``manual`` names the questions
    graded by hand that await a grade (answered in a valid notebook)."""
    points = points_of(release)
    out = {}
    for s in students:
        if s.truncate_at is not None:
            scores = {gid: 0 for gid in points}
            failing = {gid: "the file is not valid notebook JSON" for gid in points}
        else:
            scores = {gid: 0 if gid in s.failing else pts for gid, pts in points.items()}
            failing = {gid: s.failing[gid] for gid in points if gid in s.failing}
        out[s.id] = {
            "file": f"{s.id}_{ASSIGNMENT}.ipynb",
            "points": scores,
            "total": sum(scores.values()),
            "note": s.note,
            "failing": failing,
            "flags": list(s.flags),
            "needs_sandbox": s.needs_sandbox,
        }
        if manual:  # graded by hand: answered with the sample answer, awaiting a grade (autograder/rubric.py)
            out[s.id]["manual"] = list(manual) if s.by_hand and s.truncate_at is None else []
    return {
        "assignment": ASSIGNMENT,
        "generated_by": GENERATED_BY,
        "rules": RULES,
        "max_points": points,
        "max_total": sum(points.values()),
        **({"manual_points": manual} if manual else {}),
        "students": out,
    }


def render(release_path: pathlib.Path = RELEASE, roster: pathlib.Path = ROSTER) -> dict[str, bytes]:
    """File name -> bytes of everything the script writes into hw1's class folder."""
    if not release_path.is_file():
        raise FileNotFoundError(f"{release_path} not found: run `make release` first")
    release = nbformat.read(release_path, as_version=4)
    shown = release_path.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    students = load_roster(roster, release, TAMPERS, release=str(shown))
    by_hand = sample_answers(nbformat.read(SOURCE, as_version=4))
    manual = {
        nbgrader_meta(c)["grade_id"]: int(nbgrader_meta(c).get("points", 0))
        for c in release.cells
        if rubric.is_manual(c)
    }
    if list(by_hand) != list(manual):
        raise RosterError(
            f"the source's questions graded by hand {list(by_hand)} are not the release's "
            f"{list(manual)}: run `make release`"
        )
    files: dict[str, bytes] = {}
    for s in students:
        data = (nbformat.writes(build(release, s, by_hand)) + "\n").encode("utf-8")
        if s.truncate_at is not None:
            data = data[: int(len(data) * s.truncate_at)]
        files[f"{s.id}_{ASSIGNMENT}.ipynb"] = data
    files["expected.json"] = (
        json.dumps(expected(release, students, manual), indent=2, ensure_ascii=False) + "\n"
    ).encode("utf-8")
    return files


# --------------------------------------------------------------------------------------------------------
# hw2 on: the wrong-answer cases
# --------------------------------------------------------------------------------------------------------


def render_cases(assignment: str) -> dict[str, bytes]:
    """The sample class of an assignment with ``source/<assignment>/wrong_answers.yml``: a correct student
    and one student per wrong-answer case (see autograder/cases.py), with expected.json."""
    source_dir = ROOT / "source" / assignment
    source_nb = nbformat.read(source_dir / f"{assignment}.ipynb", as_version=4)
    release_nb = nbformat.read(ROOT / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    files, students = {}, {}
    built = cases.build_class(assignment, source_nb, release_nb, source_dir)
    for st in built:
        name = f"{st['id']}_{assignment}.ipynb"
        files[name] = nbformat.writes(st["notebook"]).encode() + b"\n"
        points = cases.expected_points(source_nb, st["loses"], st["lost_points"])
        students[st["id"]] = {
            "file": name,
            "points": points,
            "total": sum(points.values()),
            "flags": [],
            "note": st["note"],
            "ci": st["ci"],
        }
        if st["manual"]:  # graded by hand: answered with the sample answer, awaiting a grade (autograder/rubric.py)
            students[st["id"]]["manual"] = st["manual"]
    rules = [
        f"Built from source/{assignment}/wrong_answers.yml by {GENERATED_BY}: "
        "each student is the release filled in with the solution's code, with one plausible mistake (w01, "
        "w02, ...) or, for CI and the demo, the first mistake of each test cell dealt between two students "
        "(wx_several_mistakes_a and _b); a student must lose exactly the points of the test cells their "
        "mistakes name.",
        RULES[0].replace("hw1/hw1", f"{assignment}/{assignment}"),
        *RULES[1:3],
    ]
    if any(st["lost_points"] for st in built):  # a test cell with per-check points (adl_helpers.partial_credit)
        rules.append(
            "A test cell that ends with its checks (adl_helpers.partial_credit) earns the points of the checks "
            "that raise no error; a check that fails costs its own points only. 'lost_points' in "
            "wrong_answers.yml says how many of such a cell's points a mistake costs."
        )
    files["expected.json"] = (json.dumps({"rules": rules, "students": students}, indent=1) + "\n").encode()
    return files


def case_assignments() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "source").glob("*/wrong_answers.yml"))


def _sync(files: dict[str, bytes], out: pathlib.Path, assignment: str, check: bool) -> bool:
    """Write (or, with check, compare) one class folder. True if it was up to date."""
    stale = sorted(p.name for p in out.glob(f"*_{assignment}.ipynb") if p.name not in files) if out.is_dir() else []
    differing = [
        name for name, data in files.items() if not (out / name).is_file() or (out / name).read_bytes() != data
    ]
    if check:
        for name in differing:
            print(f"out of date: {out / name}", file=sys.stderr)
        for name in stale:
            print(f"not in the roster: {out / name}", file=sys.stderr)
        return not (differing or stale)
    out.mkdir(parents=True, exist_ok=True)
    for name in differing:
        (out / name).write_bytes(files[name])
    for name in stale:
        (out / name).unlink()
    print(
        f"{out}: {len(files) - 1} submissions and expected.json "
        f"({len(differing)} written, {len(stale)} removed, {len(files) - len(differing)} unchanged)"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=pathlib.Path, default=RELEASE, help="hw1's release notebook")
    parser.add_argument("--roster", type=pathlib.Path, default=ROSTER, help="hw1's roster")
    parser.add_argument("--out", type=pathlib.Path, default=SAMPLES / ASSIGNMENT, help="hw1's class folder")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--only", help="one assignment (default: hw1 and every assignment with wrong_answers.yml)")
    args = parser.parse_args(argv)

    ok = True
    try:
        if args.only in (None, ASSIGNMENT):
            ok &= _sync(render(args.release, args.roster), args.out, ASSIGNMENT, args.check)
        for assignment in case_assignments():
            if args.only in (None, assignment):
                ok &= _sync(render_cases(assignment), SAMPLES / assignment, assignment, args.check)
    except (RosterError, cases.CaseError, FileNotFoundError) as exc:
        print(f"make_sample_class: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
