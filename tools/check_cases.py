"""Grade one assignment's solution, blank release and wrong-answer cases with the real autograder.

For an author writing ``source/<assignment>/``: it copies the course into a scratch folder, releases the
assignment with nbgrader, builds the sample class from ``wrong_answers.yml`` (see ``autograder/cases.py``)
and grades everything with the sandboxed autograder. It prints, per submission, the points of each test cell
and whether they are what the case promises. Exit status 0 when all are as expected::

    .venv/bin/python tools/check_cases.py hw3 [--case same-padding-extra-row-on-top] [--ci] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import tempfile
import time

import nbformat

from autograder import cases, pipeline, processes
from autograder.course import load_course

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--case", action="append", help="grade only this case (repeatable); solution and blank too")
    parser.add_argument("--ci", action="store_true", help="grade only the students CI grades (several mistakes each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch course and print its path")
    args = parser.parse_args(argv)
    a = args.assignment
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"check-{a}-"))
    try:
        shutil.copy(ROOT / "nbgrader_config.py", tmp)
        (tmp / "source").mkdir()
        shutil.copytree(ROOT / "source" / a, tmp / "source" / a)
        os.environ["ADL_GRADEBOOK_URL"] = f"sqlite:///{tmp / 'gradebook.db'}"
        course = load_course(tmp)
        t0 = time.perf_counter()
        pipeline.release(course, a)
        source_nb = nbformat.read(course.source_notebook(a), as_version=4)
        release_nb = nbformat.read(course.release_notebook(a), as_version=4)
        students = cases.build_class(a, source_nb, release_nb, course.source / a)
        if args.case:
            wanted = {c.replace("-", "_") for c in args.case}
            students = [s for s in students if s["id"].split("_", 1)[1] in wanted]
        if args.ci:
            students = [s for s in students if s["ci"]]
        download = tmp / "download"
        download.mkdir()
        shutil.copy(course.source_notebook(a), download / f"solution_{a}.ipynb")
        shutil.copy(course.release_notebook(a), download / f"blank_{a}.ipynb")
        for s in students:
            nbformat.write(s["notebook"], str(download / f"{s['id']}_{a}.ipynb"))
        pipeline.collect(course, a, download)
        results = {r.student: r for r in pipeline.autograde(course, a, workers=args.workers, progress=True)}
        processes.shutdown()
        graded_ids = list(cases.expected_points(source_nb, ()))
        expect = {
            "solution": cases.expected_points(source_nb, ()),
            "blank": cases.expected_points(source_nb, graded_ids),
        }
        expect.update({s["id"]: cases.expected_points(source_nb, s["loses"], s["lost_points"]) for s in students})
        # questions graded by hand: answered (so awaiting a grade) by all but the blank release
        manual = {student: cases.manual_ids(source_nb) if student != "blank" else [] for student in expect}
        bad = 0
        for student, exp in expect.items():
            r = results[student]
            got = {q.grade_id: q.points for q in r.questions if not q.manual}
            ok = got == exp and not r.flags and r.pending == manual[student]
            bad += not ok
            print(
                f"{'ok  ' if ok else 'FAIL'} {student:40s} {r.score:g}/{r.max_score:g} in {r.elapsed:.1f} s"
                + ("" if not r.flags else f"  flags {r.flags}")
            )
            if r.pending != manual[student]:
                print(f"       awaiting a grade by hand: {r.pending}, expected {manual[student]}")
            for q in r.questions:
                if not q.manual and q.points != exp[q.grade_id]:
                    print(
                        f"       {q.grade_id}: got {q.points:g}, expected {exp[q.grade_id]:g} "
                        f"({q.status}: {(q.reason or '')[:300]})"
                    )
        print(f"{len(expect) - bad}/{len(expect)} as expected in {time.perf_counter() - t0:.0f} s")
        if args.keep:
            print(f"scratch course: {tmp}")
        return 1 if bad else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
