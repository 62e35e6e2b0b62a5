"""Committed notebooks carry no outputs, parse as nbformat 4, and use the python3 kernel."""

import pathlib

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p
    for folder in ("notebooks", "source", "release")
    for p in (ROOT / folder).rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
)


def output_problems(nb) -> list[str]:
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell.execution_count}")
    return problems


def test_there_are_notebooks():
    assert any("notebooks" in p.parts for p in NOTEBOOKS)
    assert any("source" in p.parts for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert output_problems(nb) == [], f"{path}: clear outputs before committing (Kernel > Restart & Clear)"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_outputs_are_detected():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    assert output_problems(nb) == []
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    assert output_problems(nb) == ["cell 0 has 1 output(s)", "cell 0 has execution_count 1"]
