"""The pool of worker processes: which idle worker a job gets, and what a worker keeps between jobs."""

from __future__ import annotations

import os
import pathlib

import pytest

from autograder import processes, worker
from autograder.job import Job


class FakeWorker:
    """Stands in for a worker process: records what it was started with (no process, no imports)."""

    started: list[FakeWorker] = []

    def __init__(self, log_file: pathlib.Path):
        self.log = log_file
        self.inherited = processes.inherited()
        self.dead = False
        FakeWorker.started.append(self)

    def alive(self) -> bool:
        return not self.dead


@pytest.fixture
def pool(monkeypatch):
    FakeWorker.started = []
    monkeypatch.setattr(processes, "Worker", FakeWorker)
    return processes.Pool()


def test_an_idle_worker_serves_another_course_started_with_the_same_environment(pool, tmp_path):
    first = pool.take(tmp_path / "a" / "logs")
    pool.give_back(first)
    assert pool.take(tmp_path / "b" / "logs") is first
    assert len(FakeWorker.started) == 1


def test_a_worker_of_the_same_course_is_preferred(pool, tmp_path):
    a, b = pool.take(tmp_path / "a"), pool.take(tmp_path / "b")
    pool.give_back(a)
    pool.give_back(b)
    assert pool.take(tmp_path / "b") is b
    assert pool.take(tmp_path / "b") is a  # then any idle one


def test_a_changed_environment_gets_a_new_worker(pool, tmp_path, monkeypatch):
    """PATH without bubblewrap, say: a worker looks for it on the PATH it was started with."""
    old = pool.take(tmp_path)
    pool.give_back(old)
    monkeypatch.setenv("PATH", "/nowhere")
    new = pool.take(tmp_path)
    assert new is not old and len(FakeWorker.started) == 2
    pool.give_back(new)
    monkeypatch.undo()
    assert pool.take(tmp_path) is old


def test_a_dead_worker_is_dropped(pool, tmp_path):
    gone = pool.take(tmp_path)
    pool.give_back(gone)
    gone.dead = True
    assert pool.take(tmp_path) is not gone
    assert pool._idle == []


def test_a_job_leaves_the_workers_environment_as_it_found_it(tmp_path, monkeypatch):
    """One course's data folder must not reach the next course's job in the same worker, even when the job
    fails (here: its notebook is missing)."""
    monkeypatch.setenv("ADL_DATA_DIR", "/the/workers/own")
    monkeypatch.delenv("ADL_DATA_MIRROR", raising=False)
    before = dict(os.environ)
    job = Job(
        workdir=str(tmp_path),
        notebook=str(tmp_path / "missing.ipynb"),
        executed=str(tmp_path / "x.ipynb"),
        result=str(tmp_path / "run.json"),
        cell_timeout=5,
        notebook_timeout=10,
        env={},
        sandbox=None,
        grader_env={"ADL_DATA_DIR": "/course/a/cache", "ADL_DATA_MIRROR": "/course/a/mirror"},
    )
    job.write(tmp_path / "job.json")
    with pytest.raises(FileNotFoundError):
        worker.run_job(str(tmp_path / "job.json"))
    assert dict(os.environ) == before
