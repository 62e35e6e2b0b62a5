"""What the instructor's browser is shown of a submission, and what nbgrader's formgrader may not do.

The formgrader (nbgrader's web UI, inside the instructor's Jupyter server) renders the executed notebook
``autograded/<student>/<assignment>/<notebook>.ipynb`` with nbconvert, on the server's own origin: a script of
the student's that ran there could use the Jupyter API with the instructor's rights. So nothing a student
wrote reaches that page as markup:

- **Outputs** (of every code cell: a test cell's output can carry text the student's code produced): only
  ``text/plain`` and PNG or JPEG images (checked to be base64 of such an image) are kept. HTML, Markdown, SVG,
  LaTeX, JavaScript, widgets and every other type are dropped, with a line of text saying so; output metadata
  (file names, sizes, ``isolated``) is dropped; a stream is ``stdout`` or ``stderr``.
- **The student's Markdown cells** (answer cells and cells the student added; the instructor's locked cells,
  which ``notebook.restore`` copies from ``source/``, are left alone): kept as written when nbconvert renders
  them to plain formatting only (the tags of :data:`SAFE_TAGS`, links to ``http(s)``, ``mailto`` or an anchor,
  no images, no TeX macro that makes a link or a style, no control characters, at most :data:`MAX_MARKDOWN`
  characters); otherwise shown as text, under a note. The student's raw cells are escaped (bleach, as nbconvert's
  ``SanitizeHTML`` does) and lose their metadata, so none is rendered as HTML.

Two layers: the worker stores the notebook sanitised (:func:`sanitize_notebook`), and ``nbgrader_config.py``
makes the formgrader's ``HTMLExporter`` run :class:`SanitizeStudentContent` again when it renders a page (and
turns on its ``sanitize_html``), so a notebook written by anything else is made safe as well.

:class:`AutogradeDisabled` and :class:`FeedbackDisabled` turn nbgrader's own autograde and generate_feedback off
for the course (the formgrader's Autograde and Generate Feedback buttons, their commands): the first would grade
again unsandboxed, in the instructor's server, and replace adl-grade's results; the second would hand the
students the hidden tests. Each refuses before nbgrader touches a file, and says what to run instead.
"""

from __future__ import annotations

import html.parser
import re

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.filters import markdown2html
from nbconvert.preprocessors.sanitize import SanitizeHTML
from traitlets import Set

KEPT_OUTPUT_TYPES = frozenset({"text/plain", "image/png", "image/jpeg"})
IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
# What nbconvert's Markdown renderer makes of plain Markdown (paragraphs, headings, emphasis, lists, quotes,
# code, tables, rules): a cell that renders to these tags alone is shown as the student wrote it.
SAFE_TAGS = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "em",
        "strong",
        "del",
        "s",
        "code",
        "pre",
        "span",
        "div",
        "ul",
        "ol",
        "li",
        "blockquote",
        "br",
        "hr",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "sup",
        "sub",
    }
)
SAFE_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "div": {"class"},
    "span": {"class"},
    "pre": {"class"},
    "code": {"class"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
    **{f"h{i}": {"id"} for i in range(1, 7)},
}
SAFE_HREF = re.compile(r"\A(?:https?://|mailto:|#)[^\s\x00-\x1f\x7f\\]*\Z", re.IGNORECASE)
SAFE_STYLE = re.compile(r"\A\s*text-align\s*:\s*(?:left|right|center)\s*;?\s*\Z", re.IGNORECASE)
# TeX macros with which MathJax makes links, styles, classes, HTML or loads extensions (MathJax reads the page's
# text outside <pre> and <code>).
UNSAFE_TEX = re.compile(r"\\(?:href|url|style|class|cssId|unicode|require|html|data|bbox|toggle|mmlToken)\b")
MAX_MARKDOWN = 100_000  # characters of a student's Markdown cell rendered as Markdown
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # no place in HTML; browsers and parsers differ on them
AS_TEXT_NOTE = (
    "*Shown as text by the grader: this cell holds HTML, an image or a link that could run in "
    "the instructor's browser.*"
)
NBGRADER_STEP_OFF = {
    "autograde": (
        "nbgrader's autograde is turned off for this course: adl-grade grades the submissions (sandboxed, tests "
        "outside the student's kernel), and nbgrader's autograde would grade them again unsandboxed and replace "
        "those results. Run `adl-grade autograde {assignment}` (add `--force` to grade again) in the course "
        "folder; the formgrader then shows its scores. See autograder/README.md, 'The formgrader'."
    ),
    "generate_feedback": (
        "nbgrader's generate_feedback is turned off for this course: its feedback would show the students the "
        "hidden tests (the autograded notebook holds them) and replace adl-grade's feedback in the same folder. "
        "Run `adl-grade feedback {assignment}` in the course folder; Release Feedback then hands out its "
        "feedback.html. See autograder/README.md, 'The formgrader'."
    ),
}


class _Tags(html.parser.HTMLParser):
    """Every tag of an HTML fragment and its attributes, as a list of problems (empty: only safe markup)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.code = 0  # inside how many <pre> or <code>

    def handle_starttag(self, tag, attrs):
        self.code += tag in ("pre", "code")
        if tag not in SAFE_TAGS:
            self.problems.append(f"<{tag}>")
            return
        for name, value in attrs:
            value = value or ""
            if name not in SAFE_ATTRIBUTES.get(tag, ()):
                self.problems.append(f"<{tag} {name}>")
            elif name == "href" and not SAFE_HREF.match(value):
                self.problems.append(f"a link to {value[:40]!r}")
            elif name == "style" and not SAFE_STYLE.match(value):
                self.problems.append(f"a style {value[:40]!r}")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.code -= tag in ("pre", "code")

    def handle_endtag(self, tag):
        self.code -= tag in ("pre", "code") and self.code > 0

    def handle_data(self, data):
        if not self.code and UNSAFE_TEX.search(data):
            self.problems.append("a TeX macro that makes a link or a style")

    def handle_comment(self, data):
        self.problems.append("an HTML comment")

    def handle_decl(self, decl):
        self.problems.append("an HTML declaration")

    def handle_pi(self, data):
        self.problems.append("an HTML processing instruction")

    def unknown_decl(self, data):
        self.problems.append("an HTML declaration")


def markdown_problems(source: str) -> list[str]:
    """Why a Markdown cell cannot be shown as written in the instructor's browser ([] if it can): what
    nbconvert renders it to is checked against :data:`SAFE_TAGS`, and its text (math) against :data:`UNSAFE_TEX`.

    Example:
        >>> markdown_problems("Some *emphasis* and `code < 1`, $x < 0$.")
        []
        >>> markdown_problems("<img src=x onerror=alert(1)> [a](javascript:alert(1))")
        ['<img>', "a link to 'javascript:alert(1)'"]
    """
    if len(source) > MAX_MARKDOWN:  # rendering costs about a second per megabyte; shown as text instead
        return [f"more than {MAX_MARKDOWN:,} characters"]
    rendered = str(markdown2html(source))
    parser = _Tags()
    parser.feed(rendered)
    parser.close()
    if CONTROL.search(rendered):  # a browser reads "<p\0 onclick=...>" as a tag; Python's parser does not
        parser.problems.append("a control character")
    return list(dict.fromkeys(parser.problems))


def as_text(source: str) -> str:
    """A Markdown cell that shows ``source`` as text: a note, then every line as an indented code block (a
    code block ends only where the indentation does, so nothing in ``source`` can close it). Lines are split
    at every line boundary Python knows (``\u2028`` too), so no parser finds a line that is not indented."""
    lines = CONTROL.sub("\ufffd", source).splitlines() or [""]
    block = "\n".join("    " + line for line in lines)
    shown = f"{AS_TEXT_NOTE}\n\n{block}\n"
    if len(shown) > MAX_MARKDOWN:  # an indented block renders as escaped text whatever it holds
        return shown
    return shown if not markdown_problems(shown) else AS_TEXT_NOTE  # never expected; then the text is left out


def _trusted(cell) -> bool:
    """A cell the instructor wrote: ``notebook.restore`` copies each locked cell from ``source/`` with this
    metadata; a student's cells are answer cells (``solution``) or carry no nbgrader metadata."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return isinstance(meta, dict) and meta.get("locked") is True and not meta.get("solution") and "grade_id" in meta


def _is_image(mimetype: str, data) -> bool:
    """Base64 of an image of that type (the template puts it in an ``<img src="data:...">``)."""
    import base64
    import binascii

    if not isinstance(data, str) or not re.fullmatch(r"[A-Za-z0-9+/=\s]*", data):
        return False
    head = re.sub(r"\s", "", data[:64])[:16]
    try:
        return base64.b64decode(head + "=" * (-len(head) % 4)).startswith(IMAGE_MAGIC[mimetype])
    except (binascii.Error, ValueError):
        return False


class SanitizeStudentContent(SanitizeHTML):
    """nbconvert's ``SanitizeHTML``, stricter: see the module docstring. Used by the worker on the notebook it
    stores and, from ``nbgrader_config.py``, by the formgrader's ``HTMLExporter`` when it renders one."""

    safe_output_keys = Set({"metadata", *KEPT_OUTPUT_TYPES}, help="Output types kept (images if valid)").tag(
        config=True
    )
    sanitized_output_types = Set(set(), help="Output types kept after cleaning with bleach: none").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = self.sanitize_code_outputs(cell.get("outputs", []))
            count = cell.get("execution_count")
            cell.execution_count = count if type(count) is int else None
        elif not _trusted(cell):
            meta = cell.get("metadata")
            cell.metadata = {"nbgrader": meta["nbgrader"]} if isinstance(meta, dict) and "nbgrader" in meta else {}
            cell.pop("attachments", None)
            if cell.cell_type == "markdown":
                if markdown_problems(cell.source):
                    cell.source = as_text(cell.source)
            else:
                cell.source = self.sanitize_html_tags(cell.source)
        return cell, resources

    def sanitize_code_outputs(self, outputs):
        """Each output rebuilt from its checked parts; nothing else of it is kept."""
        return [self._rebuilt(output) for output in (outputs if isinstance(outputs, list) else [])]

    def _rebuilt(self, output) -> nbformat.NotebookNode:
        try:
            kind = output.get("output_type")
            if kind == "stream":
                name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
                return nbformat.v4.new_output("stream", name=name, text=_text(output.get("text", "")))
            if kind == "error":
                return nbformat.v4.new_output(
                    "error",
                    ename=_text(output.get("ename", "")),
                    evalue=_text(output.get("evalue", "")),
                    traceback=[_text(line) for line in output.get("traceback") or []],
                )
            if kind in ("display_data", "execute_result"):
                data = output.get("data") or {}
                kept = {k: _text(v) for k, v in data.items() if k in KEPT_OUTPUT_TYPES and self._valid(k, v)}
                dropped = sorted(str(k) for k in data if k not in kept)
                if dropped and "text/plain" not in kept:
                    kept["text/plain"] = f"[output not shown by the grader: {', '.join(dropped)[:200]}]"
                count = output.get("execution_count")
                extra = {"execution_count": count if type(count) is int else None} if kind == "execute_result" else {}
                return nbformat.v4.new_output(kind, data=kept, **extra)
            return _note(f"{str(kind)[:40]!r} is not an output type")
        except Exception:  # whatever a kernel sent: a placeholder, never a crash (that would cost the notebook)
            return _note("a malformed output")

    @staticmethod
    def _valid(mimetype: str, data) -> bool:
        try:
            text = _text(data)
        except TypeError:
            return False
        return mimetype == "text/plain" or _is_image(mimetype, text)


def _text(value) -> str:
    """A string of an output (nbformat allows a list of lines); TypeError for anything else."""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"not text: {type(value).__name__}")


def _note(what: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=f"[output not shown by the grader: {what}]\n")


def sanitize_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Make an executed notebook safe to show in the instructor's browser (see the module docstring); changes
    ``nb`` in place (it can be large) and returns it."""
    SanitizeStudentContent().preprocess(nb, {})
    return nb


class _StepDisabled(NotebookExporter):
    """An exporter that refuses to be made: nbgrader's converters (autograde, generate_feedback) make their
    exporter before they remove or write anything, so refusing here leaves the course as it was. The
    formgrader shows the message (its buttons); the command line logs it and exits with status 1."""

    step = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from nbgrader.converters.base import NbGraderException

        parent = kwargs.get("parent")
        assignment = getattr(getattr(parent, "coursedir", None), "assignment_id", "") or "<assignment>"
        message = NBGRADER_STEP_OFF[self.step].format(assignment=assignment)
        (parent.log if parent is not None else self.log).error(message)
        raise NbGraderException(message)


class AutogradeDisabled(_StepDisabled):
    """``c.Autograde.exporter_class`` in ``nbgrader_config.py``: nbgrader's autograde (the formgrader's
    Autograde button, ``nbgrader autograde``) would grade again, unsandboxed, and replace adl-grade's results."""

    step = "autograde"


class FeedbackDisabled(_StepDisabled):
    """``c.GenerateFeedback.exporter_class`` in ``nbgrader_config.py``: nbgrader's feedback (the formgrader's
    Generate Feedback button, ``nbgrader generate_feedback``) shows the hidden tests."""

    step = "generate_feedback"
