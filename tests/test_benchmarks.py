"""benchmarks/headlines/<notebook>.py: the numbers benchmarks/notebook_headlines.py records for a lesson, kept out
of the lesson. Each file runs in its notebook's kernel after the last cell, so every name it reads must be one
the notebook defines; a renamed variable would otherwise break the benchmark only when someone reruns it."""

from __future__ import annotations

import ast
import builtins
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADLINES = sorted((ROOT / "benchmarks" / "headlines").glob("*.py"))
MAGIC = re.compile(r"^(\s*)[%!].*$", re.M)  # IPython magics and shell lines


def defined_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def notebook_names(path: pathlib.Path) -> set[str]:
    nb = nbformat.read(str(path), as_version=4)
    source = "\n".join(MAGIC.sub(r"\1pass", c.source) for c in nb.cells if c.cell_type == "code")
    return defined_names(ast.parse(source))


def undefined(headlines: str, defined: set[str]) -> list[str]:
    tree = ast.parse(headlines)
    local = defined_names(tree)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return sorted(read - local - defined - set(dir(builtins)))


def test_there_are_headlines():
    assert len(HEADLINES) >= 10


@pytest.mark.parametrize("path", HEADLINES, ids=lambda p: p.name)
def test_headlines_read_only_what_their_notebook_defines(path):
    notebook = ROOT / "notebooks" / f"{path.stem}.ipynb"
    assert notebook.is_file(), f"{path.name} belongs to no notebook (expected {notebook.relative_to(ROOT)})"
    text = path.read_text()
    assert re.search(r"^HEADLINES = \{", text, re.M), f"{path.name} must define HEADLINES = {{...}}"
    assert undefined(text, notebook_names(notebook)) == []


def test_a_name_the_notebook_lacks_is_found():
    assert undefined("HEADLINES = {'acc': float(acc), 'n': len(x_test)}", {"acc"}) == ["x_test"]
    assert undefined("HEADLINES = {'k': [v for v in vals]}", {"vals"}) == []


# --------------------------------------------------------------------------------------------------------
# The grading benchmarks' own logic: what they read back from nbgrader and from the results file.


def _script(name: str):
    import importlib.util
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import benchmarks/peer.py as their neighbour
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_a_score_difference_is_explained_from_nbgraders_executed_cell():
    why = _script("grading_speed")._why_nbgrader_differs
    cell = nbformat.v4.new_code_cell("check()")
    cell.metadata["nbgrader"] = {"grade_id": "q1"}
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert why(nb, "q1") == "nbgrader's cell ran without error"
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="I0000 tensorflow says hello\n")]
    assert why(nb, "q1") == "nbgrader gives 0 to a test cell with output on stderr"
    cell.outputs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[]))
    assert why(nb, "q1") == "nbgrader's cell raised AssertionError"
    assert why(nb, "q2") == why(None, "q1") == "nbgrader kept no executed cell"


def test_the_projection_reads_the_newest_grading_speed_table(tmp_path):
    table = _script("dask_scaling")._speed_table
    results = tmp_path / "results.md"
    row = "| {} | 8 | 83 s | 10.4 s | 57 s | {} s | **1.47x** (not met) | 5.2 s | 9.0 s | 24 s |"
    results.write_text(
        "# Benchmark results\n\n## Grading speed per assignment, 2026-12-01\n\n"
        + row.format("hw3", "9.9")
        + "\n\n## Grading speed per assignment, 2026-12-04\n\n| assignment | submissions |\n|---|---|\n"
        + row.format("hw3", "7.1")
        + "\n"
        + row.format("midterm", "2.5")
        + "\n\n## Grading on Dask, 2026-12-04\n\n| 1 | 80.4 s | 17.9 | 1.00x | 92.3 s | 15.6 |\n"
    )
    assert table(results) == {"hw3": 7.1, "midterm": 2.5}
    assert table(tmp_path / "missing.md") == {}


def test_the_similarity_benchmark_finds_each_methods_best_threshold_and_counts_at_the_fixed_one():
    evaluate = _script("similarity_screening").evaluate
    copies = {("a", "b"), ("c", "d")}
    separated = evaluate({("a", "b"): 0.9, ("c", "d"): 0.7, ("a", "c"): 0.3, ("b", "d"): 0.6}, copies)
    assert separated["margin"] == pytest.approx(0.1) and separated["best_threshold"] == pytest.approx(0.65)
    assert separated["at_best"] == (2, 0) and separated["at_fixed"] == (2, 1)
    overlapping = evaluate({("a", "b"): 0.9, ("c", "d"): 0.4, ("a", "c"): 0.5, ("b", "d"): 0.1}, copies)
    assert overlapping["margin"] == pytest.approx(-0.1) and overlapping["at_best"] == (1, 0)
    assert overlapping["best_threshold"] == pytest.approx(0.7) and overlapping["at_fixed"] == (1, 1)
