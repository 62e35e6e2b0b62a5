"""The formgrader (nbgrader's web UI in the instructor's Jupyter server) and adl-grade: what the instructor's
browser is shown of a hostile submission (autograder/formgrader.py, nbgrader_config.py), that the formgrader
lists adl-grade's results as graded with their scores, that nbgrader's own autograde cannot replace them, and
that the formgrader's manual scores survive a re-run of adl-grade.

One scratch course grades one hw1 submission (the solution's code, with scripts in an answer cell's output and
in a Markdown cell of the student's); a real Jupyter server with the formgrader serves it; headless Chromium
opens its pages (skipped where Chromium is not installed, except in CI, which installs it)."""

from __future__ import annotations

import copy
import dataclasses
import html.parser
import http.server
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import nbformat
import pytest
from helpers import chromium, jupyter_server, scratch_course

from autograder import formgrader, gradebook, pipeline, reports
from autograder.course import load_course

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUDENT = "mallory"
PWNED = "PWNED"  # every payload sets the page title to PWNED-<where> and fetches /<where> from the beacon
IN_CI = os.environ.get("ADL_REQUIRE_BROWSER") == "1"  # set by .ci/run, which installs chromium


# ------------------------------------------------------------------------------------ hostile content


def _payload(port: int, where: str) -> str:
    return f"document.title='{PWNED}-{where}';fetch('http://127.0.0.1:{port}/{where}')"


def _hostile_answer(port: int) -> str:
    """Lines an answer cell ends with: outputs of every kind that could carry a script."""
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" onload="{_payload(port, "svg")}">'
        f"<script>{_payload(port, 'svg-script')}</script></svg>"
    )
    html = f"<b>bold output</b><script>{_payload(port, 'html')}</script>"
    img = f'<img src=x onerror="{_payload(port, "md-output")}">'
    return "\n".join(
        [
            "from IPython.display import HTML, SVG, Javascript, Markdown, display",
            f"display(HTML({html!r}))",
            f"display(Javascript({_payload(port, 'js')!r}))",
            f"display(Markdown({img!r}))",
            f"display(SVG({svg!r}))",
        ]
    )


def _hostile_markdown(port: int) -> str:
    return (
        f'My notes <img src=x onerror="{_payload(port, "md-img")}">\n\n'
        f"<script>{_payload(port, 'md-script')}</script>\n\n[a link](javascript:{_payload(port, 'md-link')})"
    )


def _hostile_notebook(port: int) -> nbformat.NotebookNode:
    """The solution's code (full marks), a script in the first answer cell's outputs and in a Markdown cell."""
    nb = nbformat.read(str(ROOT / "source" / "hw1" / "hw1.ipynb"), as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    nb.cells[index].source += "\n\n" + _hostile_answer(port)
    nb.cells.insert(index + 1, nbformat.v4.new_markdown_cell(_hostile_markdown(port)))
    # The question answered in words is left as released: unanswered, it scores 0 with no hand grade due, so the
    # submission is fully graded once adl-grade has run (the midterm's tests cover one awaiting a hand grade).
    released = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nbformat.read(str(ROOT / "release" / "hw1" / "hw1.ipynb"), as_version=4).cells
        if "nbgrader" in c.metadata
    }
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution") and meta.get("grade"):
            cell.source = released[meta["grade_id"]]
    return nb


class _LiveMarkup(html.parser.HTMLParser):
    """The parts of an HTML page a browser runs: script bodies, event-handler attributes, javascript: links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.live.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script:
            self.live.append(data)


def live_payloads(page: str) -> list[str]:
    parser = _LiveMarkup()
    parser.feed(page)
    return [part for part in parser.live if PWNED in part]


# --------------------------------------------------------------------------------- unit tests: no kernel

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


def _output(kind="display_data", **data):
    out = nbformat.v4.new_output(kind, data=data)
    if kind == "execute_result":
        out.execution_count = 1
    return out


def _notebook_with(outputs=(), cells=()) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x")
    code.outputs = list(outputs)
    nb.cells = [code, *cells]
    return nb


def test_outputs_keep_text_and_images_only():
    shown = _output(**{"text/html": f"<script>{PWNED}</script>", "text/plain": "<HTML object>"})
    only_js = _output(**{"application/javascript": f"{PWNED}()"})
    image = _output(**{"image/png": PNG, "image/svg+xml": f"<svg onload='{PWNED}'/>"})
    fake_image = _output(**{"image/png": f'x" onerror="{PWNED}', "text/plain": "fig"})
    html_image = _output(**{"image/jpeg": PNG})  # PNG bytes under a JPEG label
    widget = _output(
        "execute_result",
        **{
            "application/vnd.jupyter.widget-view+json": {"model_id": "1"},
            "text/markdown": f"<img src=x onerror={PWNED}>",
        },
    )
    image.metadata = {"filenames": {"image/png": "http://evil/x.png"}, "image/png": {"width": "1 onload=x"}}
    stream = nbformat.v4.new_output("stream", name='stdout" onclick="x', text="printed")
    nb = formgrader.sanitize_notebook(_notebook_with([shown, only_js, image, fake_image, html_image, widget, stream]))
    shown, only_js, image, fake_image, html_image, widget, stream = nb.cells[0].outputs
    assert shown.data == {"text/plain": "<HTML object>"}
    assert only_js.data == {"text/plain": "[output not shown by the grader: application/javascript]"}
    assert image.data == {"image/png": PNG, "text/plain": "[output not shown by the grader: image/svg+xml]"}
    assert image.metadata == {}
    assert fake_image.data == {"text/plain": "fig"}
    assert html_image.data == {"text/plain": "[output not shown by the grader: image/jpeg]"}
    assert set(widget.data) == {"text/plain"} and widget.execution_count == 1
    assert (stream.name, stream.text) == ("stdout", "printed")
    nbformat.validate(nb)


def test_malformed_outputs_become_a_note():
    """What a kernel that writes its own messages could send: a placeholder each, never a crash (the worker
    would lose the whole notebook)."""
    outputs = [
        {"output_type": "display_data", "data": ["text/html"], "metadata": {}},
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": [1, 2]},
        {"output_type": "<script>", "text": "x"},
        {"output_type": "stream", "name": "stdout", "text": ["two ", "lines"]},
        {
            "output_type": "execute_result",
            "execution_count": True,
            "metadata": {},
            "data": {"text/plain": ["a", "b"], "image/png": 5},
        },
        "not an output",
    ]
    nb = formgrader.sanitize_notebook(_notebook_with([nbformat.from_dict(o) for o in outputs]))
    shown = nb.cells[0].outputs
    assert [o.get("text") for o in shown[:3]] == ["[output not shown by the grader: a malformed output]\n"] * 2 + [
        "[output not shown by the grader: '<script>' is not an output type]\n"
    ]
    assert shown[3].text == "two lines"
    assert shown[4].data == {"text/plain": "ab"} and shown[4].execution_count is None
    assert shown[5].text == "[output not shown by the grader: a malformed output]\n"
    nbformat.validate(nb)


def test_student_markdown_is_shown_as_text_and_instructor_markdown_is_kept():
    locked = {"nbgrader": {"grade_id": "intro", "locked": True, "solution": False, "grade": False}}
    badge = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://x.org)"
    instructor = nbformat.v4.new_markdown_cell(badge, metadata=copy.deepcopy(locked))
    plain = "## My notes\n\nSome *emphasis*, `a < b`, $x < 0$, a [link](https://x.org).\n\n> a quote"
    student = nbformat.v4.new_markdown_cell(plain)
    hostile = nbformat.v4.new_markdown_cell(f"Hi <img src=x onerror={PWNED}>")
    answer = nbformat.v4.new_markdown_cell(
        f"<script>{PWNED}</script>", metadata={"nbgrader": {"grade_id": "q", "locked": True, "solution": True}}
    )  # an answer cell: the student's
    raw = nbformat.v4.new_raw_cell(f"<script>{PWNED}</script>", metadata={"raw_mimetype": "text/html"})
    nb = formgrader.sanitize_notebook(_notebook_with(cells=[instructor, student, hostile, answer, raw]))
    instructor, student, hostile, answer, raw = nb.cells[1:]
    assert instructor.source == badge and instructor.metadata == locked
    assert student.source == plain
    assert (
        hostile.source.startswith(formgrader.AS_TEXT_NOTE) and f"    Hi <img src=x onerror={PWNED}>" in hostile.source
    )
    assert answer.source.startswith(formgrader.AS_TEXT_NOTE)
    assert raw.source == f"&lt;script&gt;{PWNED}&lt;/script&gt;" and "raw_mimetype" not in raw.metadata
    for cell in (hostile, answer):
        assert formgrader.markdown_problems(cell.source) == []


@pytest.mark.parametrize(
    "source, problem",
    [
        ("<img src=x onerror=alert(1)>", "<img>"),
        ("![a](http://127.0.0.1:9/beacon.png)", "<img>"),
        ("<script>alert(1)</script>", "<script>"),
        ("[a](javascript:alert(1))", "a link to 'javascript:alert(1)'"),
        ("<a href=' JaVaScRiPt:alert(1)'>a</a>", "a link to ' JaVaScRiPt:alert(1)'"),
        ("[a](data:text/html,<script>alert(1)</script>)", "a link to 'data:text/html,%3Cscript"),
        ("<b style='background:url(http://x)'>a</b>", "<b>"),
        ("<p onclick='alert(1)'>a</p>", "<p onclick>"),
        ("$\\href{javascript:alert(1)}{x}$", "a TeX macro that makes a link or a style"),
        ("<!-- hidden -->", "an HTML comment"),
        ("<p\x00 tabindex=1 autofocus onfocus=alert(1)>x", "a control character"),
    ],
)
def test_markdown_problems_name_what_could_run(source, problem):
    assert any(p.startswith(problem) for p in formgrader.markdown_problems(source)), formgrader.markdown_problems(
        source
    )
    assert formgrader.markdown_problems(formgrader.as_text(source)) == []


def test_a_long_markdown_cell_is_shown_as_text_without_rendering_it():
    from nbconvert.filters import markdown2html

    source = "word " * 30_000 + f"<script>{PWNED}</script>"
    assert formgrader.markdown_problems(source) == [f"more than {formgrader.MAX_MARKDOWN:,} characters"]
    shown = formgrader.as_text(source)
    assert shown.endswith(f"    {source}\n") and "<script>" not in str(markdown2html(shown))


def test_the_formgrader_exporter_sanitises_an_unsanitised_notebook():
    """The second layer alone: nbgrader_config.py's HTMLExporter settings on a notebook nobody sanitised,
    rendered with the formgrader's own template as its extension configures it."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    nb = _hostile_notebook(9)
    for cell in nb.cells:  # outputs as the kernel made them
        if "display(HTML(" in cell.source:
            cell.outputs = [
                _output(**{"text/html": f"<script>{_payload(9, 'html')}</script>"}),
                _output(**{"application/javascript": _payload(9, "js")}),
                _output(**{"text/markdown": f'<img src=x onerror="{_payload(9, "md")}">'}),
            ]
    resources = {
        "base_url": "/",
        "assignment_id": "hw1",
        "notebook_id": "hw1",
        "submission_id": "x",
        "index": 0,
        "total": 1,
        "student": STUDENT,
        "last_name": "",
        "first_name": "",
        "notebook_path": "x",
    }
    unsafe = HTMLExporter(
        config=Config(HTMLExporter={"template_name": "formgrade", "extra_template_basedirs": [handlers.template_path]})
    )
    before, _ = unsafe.from_notebook_node(copy.deepcopy(nb), resources=dict(resources))
    assert live_payloads(before), "the check finds nothing even without sanitising: it cannot fail"
    page, _ = HTMLExporter(config=config).from_notebook_node(nb, resources=dict(resources))
    assert live_payloads(page) == []
    assert "My notes &lt;img src=x onerror=" in page  # the student's text, shown as text
    assert "Question 1: the sigmoid" in page


# ------------------------------------------------------------------------- one graded course and server


class _Beacon(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def beacon():
    """A local HTTP server every payload fetches from: its ``hits`` must stay empty."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Beacon)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def course(tmp_path_factory, beacon):
    """A scratch course in which adl-grade graded one hostile hw1 submission: (course, result)."""
    tmp = tmp_path_factory.mktemp("formgrader-course")
    mp = pytest.MonkeyPatch()
    scratch_course(tmp, ["hw1"], mp)
    c = load_course(tmp)
    pipeline.release(c, "hw1")
    download = tmp_path_factory.mktemp("download")
    nbformat.write(_hostile_notebook(beacon.server_address[1]), str(download / f"{STUDENT}_hw1.ipynb"))
    got = pipeline.collect(c, "hw1", download)
    assert got.rejected == [] and (c.submitted / STUDENT / "hw1" / "timestamp.txt").is_file()
    [result] = pipeline.autograde(c, "hw1", workers=1, progress=False)
    yield c, result
    mp.undo()


@pytest.fixture(scope="module")
def server(course, tmp_path_factory):
    """A real Jupyter server, in the course folder, with nbgrader's formgrader extension."""
    c, _ = course
    with jupyter_server(c.root, tmp_path_factory.mktemp("jupyter-runtime")) as srv:
        yield srv


def _nbgrader_api(c):
    """nbgrader's NbGraderAPI with the course's configuration, as the formgrader builds it."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(c.root)).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _snapshot(c) -> dict:
    """Everything nbgrader's autograde or feedback could change: the grader's results and feedback, the
    gradebook's rows."""
    from nbgrader.api import Gradebook

    files = {
        str(p.relative_to(c.build)): p.read_bytes()
        for folder in (c.autograded, c.feedback)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    with Gradebook(c.db_url, course_id=c.course_id) as gb:
        sub = gb.find_submission("hw1", STUDENT)
        rows = {
            "timestamp": sub.timestamp,
            "grades": sorted(
                (g.name, g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                for nb in sub.notebooks
                for g in nb.grades
            ),
        }
    return {"files": files, "gradebook": rows}


# ------------------------------------------------------------------------------ the stored notebook


def test_the_stored_notebook_is_sanitised(course):
    c, result = course
    assert result.score == sum(q.max_points for q in result.questions if not q.manual) > 0, result.questions
    nb = nbformat.read(str(c.autograded / STUDENT / "hw1" / "hw1.ipynb"), as_version=4)
    text = json.dumps(nb)
    assert "text/html" not in text and "application/javascript" not in text and "image/svg+xml" not in text
    notes = [cell for cell in nb.cells if cell.cell_type == "markdown" and "My notes" in cell.source]
    assert len(notes) == 1 and notes[0].source.startswith(formgrader.AS_TEXT_NOTE)
    plain = [o.data["text/plain"] for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if "data" in o]
    assert "<IPython.core.display.Javascript object>" in plain and "<IPython.core.display.SVG object>" in plain


# -------------------------------------------------------------------- the formgrader agrees with adl-grade


def test_nbgrader_lists_the_submission_as_graded_with_its_score(course, server):
    c, result = course
    api = _nbgrader_api(c)
    assert api.get_autograded_students("hw1") == {STUDENT}
    [sub] = api.get_submissions("hw1")
    assert (sub["student"], sub["autograded"], sub["score"], sub["max_score"]) == (
        STUDENT,
        True,
        result.score,
        result.max_score,
    )
    assert sub["needs_manual_grade"] is False and sub["timestamp"] is not None
    [shown] = server.api("/formgrader/api/submissions/hw1")  # what the Manage Submissions page loads
    assert (shown["autograded"], shown["score"]) == (True, result.score)


def test_nbgrader_autograde_and_feedback_refuse_and_change_nothing(course, server):
    """The formgrader's Autograde and Generate Feedback buttons (its API, and NbGraderAPI as it calls it) and
    `nbgrader autograde` leave adl-grade's results, feedback and gradebook rows as they were."""
    c, result = course
    reports.write_feedback(c, result, final=True)
    before = _snapshot(c)
    assert any(name.endswith("feedback.html") for name in before["files"]) and any(
        name.endswith("result.json") for name in before["files"]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", "hw1", "--force"],
        cwd=c.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "adl-grade autograde hw1" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert _snapshot(c) == before
    api = _nbgrader_api(c)
    for answer in (
        api.autograde("hw1", STUDENT),
        server.api(f"/formgrader/api/submission/hw1/{STUDENT}/autograde", "POST", {}),
    ):
        assert answer["success"] is False and "adl-grade autograde hw1" in answer["log"], answer
        assert _snapshot(c) == before
    for answer in (
        api.generate_feedback("hw1", STUDENT),
        server.api(f"/formgrader/api/assignment/hw1/{STUDENT}/generate_feedback", "POST", {}),
    ):
        assert answer["success"] is False and "adl-grade feedback hw1" in answer["log"], answer
        assert _snapshot(c) == before


def test_manual_adjustments_survive_a_forced_regrade(course, server):
    """A manual score, extra credit and a comment, written through the formgrader's API, survive
    `adl-grade autograde --force`; the question is flagged for review only when its automatic score changes."""
    from nbgrader.api import Gradebook

    c, result = course
    first, second = result.questions[0].grade_id, result.questions[1].grade_id
    with Gradebook(c.db_url, course_id=c.course_id) as gb:
        grade_id = gb.find_grade(first, "hw1", "hw1", STUDENT).id
        comment_id = gb.find_submission_notebook("hw1", "hw1", STUDENT).comments[0].id
    try:
        server.api(f"/formgrader/api/grade/{grade_id}", "PUT", {"manual_score": 1.5, "extra_credit": 0.5})
        server.api(f"/formgrader/api/comment/{comment_id}", "PUT", {"manual_comment": "see me"})
        assert gradebook.scores(c, "hw1")[STUDENT][first] == 2.0
        [again] = pipeline.autograde(c, "hw1", [STUDENT], workers=1, force=True, progress=False)
        assert again.elapsed != result.elapsed  # graded again, not read from the cache
        grade = server.api(f"/formgrader/api/grade/{grade_id}")
        assert (grade["manual_score"], grade["extra_credit"], grade["needs_manual_grade"]) == (1.5, 0.5, False)
        assert server.api(f"/formgrader/api/comment/{comment_id}")["manual_comment"] == "see me"
        scores = gradebook.scores(c, "hw1")[STUDENT]
        assert scores[first] == 2.0 and sum(scores.values()) == result.score - result.questions[0].points + 2.0
        [sub] = _nbgrader_api(c).get_submissions("hw1")
        assert (sub["autograded"], sub["needs_manual_grade"]) == (True, False)

        changed = copy.deepcopy(again)  # the automatic scores change (a regraded submission, a fixed test)
        changed.questions[0].points = changed.questions[1].points = 0.0
        gradebook.record(c, changed)
        with Gradebook(c.db_url, course_id=c.course_id) as gb:
            flags = {g: gb.find_grade(g, "hw1", "hw1", STUDENT).needs_manual_grade for g in (first, second)}
        assert flags == {first: True, second: False}  # only the manually scored one needs a look
    finally:
        server.api(f"/formgrader/api/grade/{grade_id}", "PUT", {"manual_score": None, "extra_credit": None})
        server.api(f"/formgrader/api/comment/{comment_id}", "PUT", {"manual_comment": None})
        gradebook.record(c, result)
    assert gradebook.scores(c, "hw1")[STUDENT] == {q.grade_id: q.points for q in result.questions}


def test_record_without_a_readable_time_stamp(course, caplog):
    from nbgrader.api import Gradebook

    c, result = course
    folder = c.submitted / "nostamp" / "hw1"
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text("not a time")
    try:
        with caplog.at_level(logging.WARNING, logger="autograder.pipeline"):
            gradebook.record(c, dataclasses.replace(result, student="nostamp"))
        assert "unreadable time stamp" in caplog.text and "recorded without one" in caplog.text
        with Gradebook(c.db_url, course_id=c.course_id) as gb:
            assert gb.find_submission("hw1", "nostamp").timestamp is None
            assert gb.find_submission("hw1", STUDENT).timestamp is not None
    finally:
        with Gradebook(c.db_url, course_id=c.course_id) as gb:
            gb.remove_submission("hw1", "nostamp")
            gb.remove_student("nostamp")
        shutil.rmtree(c.submitted / "nostamp")


# ---------------------------------------------------------------------------- the instructor's browser


def _chromium() -> str:
    return chromium("the formgrader's pages are not checked in a browser")


def _browse(url: str, profile: pathlib.Path, *action: str, height: int = 1800) -> str:
    """Headless Chromium on ``url``; its stdout (the DOM after scripts ran, with --dump-dom)."""
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=8000",
        f"--window-size=1280,{height}",
        *action,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    """A Chromium profile logged in to the server, as the instructor's browser is (the token in a URL of the
    server's own, which sets the login cookie for the whole server; the formgrader's pages set it for their
    own path only, so their scripts could not load their data)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    assert '"started"' in _browse(server.page("/api/status"), profile, "--dump-dom")
    return profile


def _screenshot(url: str, profile: pathlib.Path, name: str, tmp_path: pathlib.Path, height: int) -> pathlib.Path:
    """A PNG of the page (in $ADL_SCREENSHOTS, when set, to look at)."""
    folder = pathlib.Path(os.environ.get("ADL_SCREENSHOTS") or tmp_path)
    shot = folder / name
    _browse(url, profile, f"--screenshot={shot}", height=height)
    assert shot.stat().st_size > 10_000
    return shot


@pytest.mark.slow
def test_no_student_script_runs_on_the_submission_page(course, server, browser, beacon, tmp_path):
    from nbgrader.api import Gradebook

    c, _ = course
    with Gradebook(c.db_url, course_id=c.course_id) as gb:
        notebook_id = gb.find_submission_notebook("hw1", "hw1", STUDENT).id
    url = f"{server.url}/formgrader/submissions/{notebook_id}/"
    dom = _browse(url, browser, "--dump-dom")
    time.sleep(1)  # a fetch still on its way
    assert PWNED not in dom.split("</title>")[0], dom[:500]
    assert _Beacon.hits == []
    assert live_payloads(dom) == []
    assert "Question 1: the sigmoid" in dom and "q1_sigmoid: the visible checks pass" in dom  # the notebook
    assert "My notes &lt;img src=x onerror=" in dom  # and the student's own text, as text
    assert 'id="q1_sigmoid" style="width: 4em;" type="number" placeholder="2"' in dom  # its grading form
    _screenshot(url, browser, "formgrader-submission.png", tmp_path, height=2600)
    assert _Beacon.hits == []


@pytest.mark.slow
def test_manage_submissions_page_shows_the_score(course, server, browser, beacon, tmp_path):
    c, result = course
    url = f"{server.url}/formgrader/manage_submissions/hw1"
    dom = _browse(url, browser, "--dump-dom")
    row = dom[dom.index('<tbody id="main-table">') :]
    row = row[: row.index("</tbody>")]
    assert f">{STUDENT}<" in row, row
    assert "graded</span>" in row and "needs autograding" not in row.lower(), row
    assert f">{result.score:g} / {result.max_score:g}<" in row, row
    _screenshot(url, browser, "formgrader-manage-submissions.png", tmp_path, height=900)
    assert _Beacon.hits == []
