"""nbgrader's gradebook on a real PostgreSQL server: the test starts a throwaway cluster (initdb, pg_ctl) on
loopback, releases hw1 into it, records results, re-records them (idempotent) and exports them.

Skipped where PostgreSQL's server binaries are not installed, except when ADL_REQUIRE_POSTGRES=1 (set by
.ci/run, which installs them): then a missing server is a failure."""

from __future__ import annotations

import csv
import glob
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

from autograder import gradebook, notebook, pipeline, reports, scoring
from autograder.course import load_course

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _pg_bin() -> pathlib.Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return pathlib.Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return pathlib.Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("ADL_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL's server (initdb, pg_ctl) is not installed, and ADL_REQUIRE_POSTGRES=1")
        pytest.skip("PostgreSQL's server is not installed (apt install postgresql); .ci/run installs it")
    # Not under pytest's tmp folder: that is private to our user, and the server may run as another.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="adl-pg-"))
    data, sockets = tmp / "data", tmp / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        user = pwd.getpwnam("postgres")
        for path in (tmp, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        tmp.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd):
        proc = subprocess.run(as_user + [str(bindir / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{cmd[0]} failed:\n{proc.stdout}\n{proc.stderr}"

    run("initdb", "-D", str(data), "-U", "adl", "--auth=trust", "-E", "UTF8", "--no-instructions")
    run(
        "pg_ctl",
        "-D",
        str(data),
        "-l",
        str(tmp / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "adl", "gradebook")
        yield f"postgresql+psycopg2://adl@127.0.0.1:{port}/gradebook"  # SQLAlchemy 2.1 defaults to psycopg 3
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def _result(student: str, points: dict[str, float], maxima: dict[str, float]) -> scoring.Result:
    qs = [
        scoring.QuestionResult(
            g,
            points[g],
            maxima[g],
            "passed" if points[g] == maxima[g] else "failed",
            "" if points[g] == maxima[g] else "a hidden test failed",
        )
        for g in maxima
    ]
    return scoring.Result(student, "hw1", qs, [], 1.0, f"key-{student}")


def test_gradebook_on_postgresql(postgres_url, tmp_path, monkeypatch):
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "source", tmp_path / "source")
    monkeypatch.setenv("ADL_GRADEBOOK_URL", postgres_url)
    course = load_course(tmp_path)
    assert course.db_url == postgres_url
    pipeline.release(course, "hw1")  # nbgrader registers the assignment in PostgreSQL

    _, cells = notebook.read_source(course.source_notebook("hw1"))
    maxima = {c.grade_id: c.points for c in cells if c.autograded_test}
    by_hand = {c.grade_id: 0.0 for c in cells if c.grade and not c.autograded_test}  # no grade yet: counts 0
    full = _result("s01", dict(maxima), maxima)
    partial = _result("s02", {g: (p if i % 2 else 0.0) for i, (g, p) in enumerate(maxima.items())}, maxima)
    stamp = course.submitted / "s01" / "hw1" / "timestamp.txt"  # as collect writes it
    stamp.parent.mkdir(parents=True)
    stamp.write_text("2026-10-01 23:58:59.123456 UTC")
    for r in (full, partial, full, partial):  # recording twice changes nothing
        gradebook.record(course, r)
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    with Gradebook(course.db_url, course_id=course.course_id) as gb:  # the formgrader compares the two
        assert gb.find_submission("hw1", "s01").timestamp == parse_utc(stamp.read_text())

    scores = gradebook.scores(course, "hw1")
    assert scores == {
        "s01": {**maxima, **by_hand},
        "s02": {**{q.grade_id: q.points for q in partial.questions}, **by_hand},
    }
    with reports.export_csv(course, "hw1").open() as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert float(rows["s01"]["score"]) == sum(maxima.values())
    assert float(rows["s01"]["max_score"]) == sum(c.points for c in cells if c.grade)
    assert float(rows["s02"]["score"]) == partial.score < full.score
