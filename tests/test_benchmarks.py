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
