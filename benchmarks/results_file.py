"""benchmarks/results.md, the one file every benchmark script appends its dated section to."""

from __future__ import annotations

import pathlib

HEADER = "# Benchmark results\n\nEach section is appended by the script named in it; rerun to compare.\n\n"


def append_section(out: str | pathlib.Path, text: str) -> None:
    """Append ``text`` to ``out`` (made with HEADER if missing), one blank line between sections."""
    out = pathlib.Path(out)
    before = out.read_text() if out.exists() else HEADER
    out.write_text(before.rstrip("\n") + "\n\n" + text.strip("\n") + "\n")
