"""Checks shared by the test modules that grade a course (imported as ``helpers``: pytest puts tests/ on the path)."""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import json
import pathlib
import shutil
import warnings

import yaml

from autograder import contract
from autograder.contract import read_answer
from autograder.course import COURSE_SETTINGS, SETTINGS_FILE
from autograder.notebook import read_source

ROOT = pathlib.Path(__file__).resolve().parent.parent


def hidden_test_lines(source_notebook: pathlib.Path) -> list[str]:
    """The lines of the notebook's hidden tests that appear nowhere in its public cells (long enough to be
    telling): feedback that shows one of them has leaked a hidden test."""
    _, cells = read_source(source_notebook)
    hidden = []
    for c in cells:
        inside = False
        for line in c.source.splitlines():
            if "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                hidden.append(line.strip())
    public = {line.strip() for c in cells for line in c.public_source.splitlines()}
    return [h for h in hidden if h not in public]


def tree_diff(generated: pathlib.Path, committed: pathlib.Path) -> list[str]:
    """How two folders differ, file by file (bytes, not stat signatures); [] if they are the same."""
    cmp = filecmp.dircmp(generated, committed, ignore=["__pycache__", ".ipynb_checkpoints"])
    out = [f"only generated: {n}" for n in cmp.left_only] + [f"only committed: {n}" for n in cmp.right_only]
    out += [f"differs: {n}" for n in cmp.diff_files]
    _, mismatch, errors = filecmp.cmpfiles(generated, committed, cmp.common_files, shallow=False)
    out += [f"differs: {n}" for n in mismatch if f"differs: {n}" not in out] + [f"unreadable: {n}" for n in errors]
    for sub in cmp.common_dirs:
        out += [f"{sub}/{line}" for line in tree_diff(generated / sub, committed / sub)]
    return sorted(set(out))


def stale_release(course, assignment: str, root: pathlib.Path) -> list[str]:
    """How the committed ``release/<assignment>`` of ``root`` differs from the one just generated in ``course``."""
    return tree_diff(course.release / assignment, root / "release" / assignment)


def scratch_course(tmp: pathlib.Path, assignments, mp, cell_timeout: int | None = None, **settings) -> None:
    """Make ``tmp`` a course folder holding ``assignments`` from ``source/`` and a SQLite gradebook of its own
    (``mp``, a pytest MonkeyPatch, sets ``ADL_GRADEBOOK_URL``). With ``cell_timeout`` or other grading settings
    (``feedback_rounds=2``), the course gets an ``assignments.yml`` of its own: the package's, with those
    settings for every assignment; other courses keep the package's."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp)
    for a in assignments:
        shutil.copytree(ROOT / "source" / a, tmp / "source" / a)
    mp.setenv("ADL_GRADEBOOK_URL", f"sqlite:///{tmp / 'gradebook.db'}")
    if cell_timeout is not None:
        settings["cell_timeout"] = cell_timeout
    if settings:
        raw = yaml.safe_load(SETTINGS_FILE.read_text())
        raw["defaults"].update(settings)
        raw["assignments"] = {name: {**(entry or {}), **settings} for name, entry in raw["assignments"].items()}
        (tmp / COURSE_SETTINGS).write_text(yaml.safe_dump(raw))


# ----------------------------------------------------------------------- a real formgrader, a real browser


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    url: str
    token: str

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        """A formgrader API call as its pages make them (token-authenticated, so no XSRF cookie)."""
        import json
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read() or b"null")

    def page(self, path: str) -> str:
        return f"{self.url}{path}?token={self.token}"


@contextlib.contextmanager
def jupyter_server(root: pathlib.Path, runtime: pathlib.Path):
    """A real Jupyter server in the course folder ``root``, with nbgrader's formgrader extension; yields a
    :class:`Server` once the formgrader answers, stops the server afterwards."""
    import os
    import secrets
    import subprocess
    import sys
    import time
    import urllib.error

    import pytest

    port, token = free_port(), secrets.token_hex(16)
    with (runtime / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                "--allow-root",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
            ],
            cwd=root,
            env=dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(f"http://127.0.0.1:{port}", token)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    server.api("/formgrader/api/assignments")
                    break
                except (urllib.error.URLError, ConnectionError) as exc:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        pytest.fail(
                            f"the Jupyter server did not start ({exc}):\n{(runtime / 'server.log').read_text()[-3000:]}"
                        )
                    time.sleep(0.5)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def chromium(what: str) -> str:
    """The path of a Chromium; without one, fail under .ci/run (ADL_REQUIRE_BROWSER=1, which installs it), else
    skip, saying what goes unchecked (``what``)."""
    import os

    import pytest

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("ADL_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not installed, and ADL_REQUIRE_BROWSER=1 (.ci/run installs it)")
    pytest.skip(f"chromium is not installed: {what} (apt-get install chromium; .ci/run installs it)")


# ----------------------------------------------------------------------- the grading contract, no process


class FakeKernel:
    """The student's kernel, minus the process: ``ask`` does what the worker's ``_ask`` does (request and
    answer cross as JSON files, the answer is read with ``read_answer``), and :data:`KERNEL_SIDE` answers
    from ``user``, the globals the student's code ``source`` left behind."""

    def __init__(self, folder, source: str = ""):
        self.folder = folder
        self.user: dict = {"__name__": "student"}
        exec(source, self.user)  # noqa: S102 (the "student's" code)
        self._side: dict = {}
        exec(contract.KERNEL_SIDE, self._side)  # noqa: S102 (our own code)

    def ask(self, request: dict) -> dict:
        req, ans = self.folder / "request.json", self.folder / "answer.json"
        req.write_text(json.dumps(request))
        with warnings.catch_warnings():  # as in a kernel, where Python's default filters ignore them
            warnings.simplefilter("ignore", ResourceWarning)
            self._side["_adl_answer"](self.user, str(req), str(ans))
        return read_answer(ans.read_text())
