"""course/slides.py: reveal.js slides from the week notebooks, with reveal.js and MathJax vendored from the npm
registry at build time, so that the slides open from disk with no network. One deck is built and opened in
headless Chromium with every host unresolvable and a dead proxy: reveal.js must start and MathJax typeset."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest
from helpers import chromium

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("course_slides", ROOT / "course" / "slides.py")
slides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slides)
IN_CI = os.environ.get("ADL_REQUIRE_BROWSER") == "1"  # .ci/run installs chromium and npm
md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def _lesson():
    badge = md("[![Open In Colab](badge.svg)](https://colab.research.google.com/x)")
    badge.metadata["tags"] = ["colab-badge"]
    setup = code("import numpy as np")
    setup.metadata["tags"] = ["setup"]
    return nbformat.v4.new_notebook(
        cells=[
            md("# Week 0: a title\n\nBy the end you can ..."),
            badge,
            md("## Setup\n\nOne cell ..."),
            setup,
            md("## 1. A section\n\nThe loss is $\\ell = -\\log p$."),
            md("More text."),
            code("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.title('a line'); plt.show()"),
            md("Notice the line."),
            md("### A subsection"),
            md("## Summary\n\n- one"),
        ]
    )


def test_default_slide_types():
    nb = _lesson()
    assert slides.tag(nb) == len(nb.cells)
    assert [c.metadata.slideshow.slide_type for c in nb.cells] == [
        "slide",
        "skip",
        "skip",
        "skip",
        "slide",
        "-",
        "subslide",
        "fragment",
        "subslide",
        "slide",
    ]
    assert slides.untagged(nb) == [] and slides.tag(nb) == 0


def test_an_authors_slide_type_is_kept():
    nb = _lesson()
    nb.cells[6].metadata["slideshow"] = {"slide_type": "fragment"}
    nb.cells[5].metadata["slideshow"] = {"slide_type": "not-a-type"}  # invalid: replaced by the default
    assert 5 in slides.untagged(nb) and 6 not in slides.untagged(nb)
    slides.tag(nb)
    assert nb.cells[6].metadata.slideshow.slide_type == "fragment"
    assert nb.cells[5].metadata.slideshow.slide_type == "-"


def test_tag_check_names_untagged_cells(tmp_path, capsys):
    path = tmp_path / "week99_x.ipynb"
    nbformat.write(_lesson(), str(path))
    slides.ROOT = tmp_path  # report paths relative to the copy
    try:
        assert slides.tag_command([path], check=True) == 1
        assert "week99_x.ipynb: cell 0 has no slide type" in capsys.readouterr().err
        assert slides.tag_command([path], check=False) == 0
        assert slides.tag_command([path], check=True) == 0
    finally:
        slides.ROOT = ROOT


def test_every_lesson_cell_has_a_slide_type():
    problems = [
        f"{p.name}: cell {i}"
        for p in slides.lesson_notebooks()
        for i in slides.untagged(nbformat.read(str(p), as_version=4))
    ]
    assert problems == [], f"run 'python course/slides.py tag': {problems[:10]}"


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(slides.shutil, "which", lambda name: None)
    with pytest.raises(slides.SlidesError, match="npm is not installed"):
        slides.install_vendor(tmp_path / "out", cache=tmp_path / "npm-cache")


def test_the_lock_pins_what_the_slides_load():
    lock = (ROOT / "course" / "slides" / "package-lock.json").read_text()
    for package in slides.VENDOR:
        assert f'"node_modules/{package}"' in lock and '"integrity": "sha512-' in lock


# ------------------------------------------------------------------------------ a deck, opened offline


def _chromium() -> str:
    return chromium("the slides are not opened in a browser")


@pytest.fixture(scope="module")
def deck(tmp_path_factory):
    """Week 1 as written and a small lesson executed (a plot, math), built into one self-contained folder."""
    out = tmp_path_factory.mktemp("slides")
    lesson = tmp_path_factory.mktemp("lesson") / "week00_plot.ipynb"
    nbformat.write(_lesson(), str(lesson))
    try:
        slides.install_vendor(out)
    except slides.SlidesError as exc:
        if IN_CI:
            raise
        pytest.skip(f"cannot vendor the slides' scripts here: {exc}")
    slides.build([ROOT / "notebooks" / "week01_tensorflow_keras.ipynb"], out)
    slides.build([lesson], out, run=True)
    return out


def _open(url: str, tmp_path: pathlib.Path, *action: str) -> str:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--window-size=1280,800",
        # no network: every host name fails to resolve, and any request that tries a proxy hits a dead port
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        *action,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_deck_loads_nothing_from_the_network(deck):
    for page in deck.glob("*.slides.html"):
        text = page.read_text()
        external = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//[^"]*"', text)
        assert external == [], f"{page.name} loads {external}"
        assert 'src="vendor/requirejs/require.js"' in text and "vendor/reveal.js/dist/reveal.js" in text


def test_slides_open_from_disk_offline(deck, tmp_path):
    dom = _open((deck / "week01_tensorflow_keras.slides.html").as_uri(), tmp_path, "--dump-dom")
    assert re.search(r'class="reveal [^"]*\bready\b', dom), "reveal.js did not start"
    assert "MathJax_CHTML" in dom, "MathJax did not typeset"
    assert "Colab" not in dom.split('class="slides"', 1)[1], "the skipped badge cell is on a slide"
    index = _open((deck / "index.html").as_uri(), tmp_path, "--dump-dom")
    assert "week01_tensorflow_keras.slides.html" in index and "week00_plot.slides.html" in index


def test_an_executed_lesson_shows_its_plot(deck, tmp_path):
    dom = _open((deck / "week00_plot.slides.html").as_uri(), tmp_path, "--dump-dom")
    assert re.search(r'class="reveal [^"]*\bready\b', dom)
    assert re.search(r'<img [^>]*src="data:image/png;base64,', dom), "the plot is not in the slides"
    shot = tmp_path / "slide.png"
    _open((deck / "week00_plot.slides.html").as_uri() + "#/1/1", tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 5_000


def test_make_slides_builds_every_week(tmp_path):
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^slides: .*\n\t.*course/slides.py build", make, re.M)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "course" / "slides.py"), "build", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--execute" in proc.stdout
