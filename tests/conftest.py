"""Fixtures shared by the test modules (pytest loads this file for every test under tests/)."""

from __future__ import annotations

import pytest
from helpers import scratch_course

from autograder.course import Course, load_course


@pytest.fixture
def empty_course(tmp_path, monkeypatch) -> Course:
    """A course folder with nbgrader's configuration and a gradebook of its own, and no assignment yet."""
    root = tmp_path / "course"
    root.mkdir()
    scratch_course(root, [], monkeypatch)
    return load_course(root)


@pytest.fixture(scope="module")
def hw1_course(tmp_path_factory) -> Course:
    """A course holding hw1's source, with a gradebook of its own, shared by a module's tests."""
    root = tmp_path_factory.mktemp("course")
    mp = pytest.MonkeyPatch()
    scratch_course(root, ["hw1"], mp)
    yield load_course(root)
    mp.undo()
