"""Lecture slides from the week notebooks: reveal.js, through nbconvert's slides exporter, openable offline.

    python course/slides.py build [NOTEBOOK ...] [--out build/slides] [--execute]
    python course/slides.py tag             # give every lesson cell without one a slide type (writes notebooks)
    python course/slides.py tag --check     # write nothing; exit 1 naming each cell that has no slide type

``make slides`` runs ``build`` on every notebook in ``notebooks/``. What a cell becomes is its slideshow
metadata (``metadata.slideshow.slide_type``, which Jupyter's property inspector and Colab keep), as in
``jupyter nbconvert --to slides``: ``slide`` (a new slide), ``subslide`` (below the previous one),
``fragment`` (appears on the next key press), ``-`` (the same slide) or ``skip``. ``tag`` writes the course's
defaults into cells that have none (:func:`default_slide_type`), so an author changes a cell's type in the
notebook and ``tag`` never overrides it; tests/test_slides.py fails while a lesson cell has no type.

reveal.js, MathJax, RequireJS and jQuery are not fetched from a CDN when the slides open: ``build`` installs
the exact versions of ``course/slides/package-lock.json`` from the npm registry (``npm ci``, once; the
versions are checked against the lock's integrity hashes) and copies what the slides load into
``<out>/vendor/``. The output folder is self-contained: copy or zip it, and open ``index.html`` from disk.

``--execute`` runs each notebook first (nbclient, a fresh kernel, ``ADL_PROFILE`` as set: the full run unless
``ADL_PROFILE=smoke``), so that the slides show the plots and printed checks; without it the slides show the
code without outputs. A full run of every week takes about as long as running every notebook (over an hour
on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
NPM_DIR = ROOT / "course" / "slides"
TEMPLATES = NPM_DIR / "templates"
LESSONS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "build" / "slides"
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
# What the slides load, copied from node_modules into <out>/vendor (the rest of each package is left out).
VENDOR = {
    "reveal.js": ["dist", "plugin"],
    "mathjax": [
        "MathJax.js",
        "config",
        "extensions",
        "jax/input/TeX",
        "jax/output/CommonHTML",
        "jax/element",
        "fonts/HTML-CSS/TeX/woff",
        "localization/en",
    ],
    "requirejs": ["require.js"],
    "jquery": ["dist/jquery.min.js"],
}
log = logging.getLogger("slides")


class SlidesError(RuntimeError):
    """What stops a build, with what to do about it."""


# ------------------------------------------------------------------------------------------------ tagging


def default_slide_type(cell, previous) -> str:
    """The slide type the course gives a cell that has none.

    The title and each ``## `` section start a slide, a ``### `` heading a slide below it; the Colab badge
    and the setup (its heading and its cell) are skipped; a code cell goes below its explanation (its output
    can be long); the sentence after a code cell ("notice that ...") appears on the next key press; any
    other text stays on the slide it follows.
    """
    source = cell.source.lstrip()
    tags = cell.metadata.get("tags", [])
    if "colab-badge" in tags or "setup" in tags or source.startswith("## Setup"):
        return "skip"
    if cell.cell_type == "markdown":
        if previous is None or source.startswith(("# ", "## ")):
            return "slide"
        if source.startswith("### "):
            return "subslide"
        return "fragment" if previous.cell_type == "code" else "-"
    return "subslide"


def untagged(nb) -> list[int]:
    """Indices of the cells without a valid slide type."""
    return [
        i for i, cell in enumerate(nb.cells) if cell.metadata.get("slideshow", {}).get("slide_type") not in SLIDE_TYPES
    ]


def tag(nb) -> int:
    """Give each cell of ``nb`` without a slide type its default; returns how many cells were tagged."""
    missing = set(untagged(nb))
    previous = None
    for i, cell in enumerate(nb.cells):
        if i in missing:
            old = cell.metadata.get("slideshow")
            cell.metadata["slideshow"] = nbformat.from_dict(
                {**(old if isinstance(old, dict) else {}), "slide_type": default_slide_type(cell, previous)}
            )
        previous = cell
    return len(missing)


def lesson_notebooks() -> list[pathlib.Path]:
    return sorted(LESSONS.glob("week*.ipynb"))


def tag_command(paths: list[pathlib.Path], check: bool) -> int:
    stale = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        if check:
            stale += [f"{path.relative_to(ROOT)}: cell {i} has no slide type" for i in untagged(nb)]
        elif tag(nb):
            nbformat.write(nb, str(path))
            print(f"tagged {path.relative_to(ROOT)}")
    for line in stale:
        print(line, file=sys.stderr)
    if stale:
        print("run 'python course/slides.py tag' (or set the cell's slide type in Jupyter)", file=sys.stderr)
    return 1 if stale else 0


# ---------------------------------------------------------------------------------------------- vendoring


def _lock_digest() -> str:
    return hashlib.sha256((NPM_DIR / "package-lock.json").read_bytes()).hexdigest()


def install_vendor(out: pathlib.Path, cache: pathlib.Path | None = None) -> pathlib.Path:
    """``npm ci`` the pinned packages into ``cache`` (once per lock) and copy what the slides load into
    ``out/vendor``. Returns the vendor folder."""
    cache = cache or (ROOT / "build" / "slides-npm")
    stamp = cache / ".lock-sha256"
    if not (stamp.is_file() and stamp.read_text() == _lock_digest()):
        npm = shutil.which("npm")
        if npm is None:
            raise SlidesError(
                "npm is not installed: the slides vendor reveal.js and MathJax from the npm "
                "registry (apt-get install npm, or install Node.js from nodejs.org)"
            )
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(NPM_DIR / name, cache / name)
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        proc = subprocess.run(cmd, cwd=cache, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SlidesError(
                f"'npm ci' in {cache} failed (is the npm registry reachable?):\n{proc.stderr.strip()[-2000:]}"
            )
        stamp.write_text(_lock_digest())
    vendor = out / "vendor"
    if (vendor / ".lock-sha256").is_file() and (vendor / ".lock-sha256").read_text() != _lock_digest():
        shutil.rmtree(vendor)  # copied from another lock: copy afresh rather than mix versions
    for package, parts in VENDOR.items():
        for part in parts:
            src, dst = cache / "node_modules" / package / part, vendor / package / part
            if not src.exists():
                raise SlidesError(
                    f"{src} is missing from the npm package; is course/slides/package-lock.json "
                    "the version this script expects?"
                )
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    (vendor / ".lock-sha256").write_text(_lock_digest())
    return vendor


# ----------------------------------------------------------------------------------------------- building


def exporter():
    """nbconvert's slides exporter, pointed at the vendored copies instead of CDNs."""
    from nbconvert import SlidesExporter

    ex = SlidesExporter(template_name="adl_slides", extra_template_basedirs=[str(TEMPLATES)])
    ex.reveal_url_prefix = "vendor/reveal.js"
    ex.reveal_scroll = True
    ex.require_js_url = "vendor/requirejs/require.js"
    ex.jquery_url = "vendor/jquery/dist/jquery.min.js"
    ex.mathjax_url = "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    ex.exclude_input_prompt = ex.exclude_output_prompt = True
    return ex


def execute(nb, path: pathlib.Path) -> None:
    """Run ``nb`` in a fresh kernel whose figures are inline PNGs (whatever MPLBACKEND says: Agg, as the tests
    set it, would draw nothing into the slides)."""
    from nbclient import NotebookClient

    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        NotebookClient(
            nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old


def build(paths: list[pathlib.Path], out: pathlib.Path, run: bool = False) -> list[pathlib.Path]:
    """Slides for each notebook in ``paths``, written to ``out/<stem>.slides.html``, with an index."""
    out.mkdir(parents=True, exist_ok=True)
    install_vendor(out)
    ex, written = exporter(), []
    for path in paths:
        try:
            nb = nbformat.read(str(path), as_version=4)
        except (OSError, ValueError) as exc:
            raise SlidesError(f"{path}: not a readable notebook ({exc})") from None
        tag(nb)  # cells an author left without a type get the defaults, in memory only
        if run:
            log.info("executing %s", path.name)
            execute(nb, path)
        body, _ = ex.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        target = out / f"{path.stem}.slides.html"
        target.write_text(body)
        written.append(target)
        log.info("wrote %s", target)
    links = "\n".join(
        f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem.removesuffix(".slides"))}</a></li>'
        for p in sorted(out.glob("*.slides.html"))
    )
    (out / "index.html").write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Course slides</title></head>\n'
        f"<body><h1>Course slides</h1><ul>\n{links}\n</ul></body></html>\n"
    )
    return written


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write reveal.js slides")
    b.add_argument("notebooks", nargs="*", type=pathlib.Path, help="default: every notebooks/week*.ipynb")
    b.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    b.add_argument("--execute", action="store_true", help="run each notebook first, so the slides show outputs")
    t = sub.add_parser("tag", help="give lesson cells without a slide type the course's default")
    t.add_argument("notebooks", nargs="*", type=pathlib.Path, help="default: every notebooks/week*.ipynb")
    t.add_argument("--check", action="store_true", help="write nothing; exit 1 if a cell has no slide type")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or lesson_notebooks()
    if args.command == "tag":
        return tag_command(paths, args.check)
    try:
        written = build(paths, args.out.resolve(), run=args.execute)
    except SlidesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(written)} slide deck(s) in {args.out}; open {args.out / 'index.html'} in a browser (no network needed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
