"""Ingesting the LMS download: each hostile or malformed member is refused with its reason, and nothing is
written outside submitted/."""

from __future__ import annotations

import datetime
import io
import pathlib
import stat
import zipfile

import pytest

from autograder import ingest as ing
from autograder.course import CourseError

ROOT = pathlib.Path(__file__).resolve().parent.parent
NB = (ROOT / "release" / "hw1" / "hw1.ipynb").read_bytes()


@pytest.fixture
def course(empty_course):
    return empty_course


def make_zip(path: pathlib.Path, members: list[tuple]) -> pathlib.Path:
    """members: (name, bytes) or (ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def files_under(folder: pathlib.Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_accepts_good_members_and_writes_only_submitted(course, tmp_path):
    z = make_zip(tmp_path / "dl.zip", [("alice_hw1.ipynb", NB), ("sub/dir/bob_LATE_12_34_hw1.ipynb", NB)])
    got = ing.ingest(course, "hw1", z)
    assert sorted(got.accepted) == ["alice", "bob"] and got.rejected == []
    assert (course.submitted / "alice" / "hw1" / "hw1.ipynb").read_bytes() == NB
    assert files_under(course.root) == {
        "nbgrader_config.py",
        *(
            f"{course.submitted.relative_to(course.root)}/{s}/hw1/{f}"
            for s in ("alice", "bob")
            for f in ("hw1.ipynb", "timestamp.txt")
        ),
    }


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../evil_hw1.ipynb", "climbs out"),
        ("/etc/abs_hw1.ipynb", "absolute path"),
        ("C:/win_hw1.ipynb", "absolute path"),
        ("notes_hw1.txt", "not a notebook"),
        ("inner_hw1.zip", "archive inside the archive"),
        ("__MACOSX/._alice_hw1.ipynb", "hidden or system file"),
        ("hw1.ipynb", "does not match"),
    ],
)
def test_refuses_unsafe_or_foreign_members(course, tmp_path, name, reason):
    z = make_zip(tmp_path / "dl.zip", [(name, NB)])
    got = ing.ingest(course, "hw1", z)
    assert got.accepted == {}
    assert len(got.rejected) == 1 and got.rejected[0][0] == name and reason in got.rejected[0][1]
    assert not (tmp_path / "evil_hw1.ipynb").exists() and not course.submitted.exists()


def test_refuses_symlinks(course, tmp_path):
    info = zipfile.ZipInfo("link_hw1.ipynb")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "dl.zip", [(info, "/etc/passwd")])
    got = ing.ingest(course, "hw1", z)
    assert got.rejected == [("link_hw1.ipynb", "a symbolic link, not a file")]


def test_refuses_zip_bombs(course, tmp_path, monkeypatch):
    monkeypatch.setattr(ing, "MAX_FILE_BYTES", 5 * 2**20)
    z = make_zip(
        tmp_path / "dl.zip",
        [("big_hw1.ipynb", b"\0" * (6 * 2**20)), ("dense_hw1.ipynb", b"{" + b" " * (3 * 2**20) + b"}")],
    )
    got = ing.ingest(course, "hw1", z)
    reasons = dict(got.rejected)
    assert "over the 5,242,880 limit" in reasons["big_hw1.ipynb"]
    assert "zip bomb" in reasons["dense_hw1.ipynb"]
    assert got.accepted == {}


def test_a_lying_header_is_caught_while_reading(course, tmp_path, monkeypatch):
    z = make_zip(tmp_path / "dl.zip", [("liar_hw1.ipynb", b"x" * 4096)])
    monkeypatch.setattr(ing, "MAX_FILE_BYTES", 1000)
    real_infolist = zipfile.ZipFile.infolist

    def understated(self):
        infos = real_infolist(self)
        for info in infos:
            info.file_size = 10  # the header claims 10 bytes
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", understated)
    got = ing.ingest(course, "hw1", z)
    assert got.rejected and got.rejected[0][0] == "liar_hw1.ipynb" and got.accepted == {}


def test_non_utf8_names_are_refused(course, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ab_hw1.ipynb", NB)
    raw = buf.getvalue().replace(b"ab_hw1.ipynb", b"\xff\xfe_hw1.ipynb")  # same length, invalid UTF-8
    (tmp_path / "dl.zip").write_bytes(raw)
    got = ing.ingest(course, "hw1", tmp_path / "dl.zip")
    assert got.accepted == {} and got.rejected[0][1] == "the file name is not valid UTF-8"


def test_duplicates_keep_the_newest_and_late_is_listed(course, tmp_path):
    pattern = r"^(?P<student_id>[a-z]+)_(?P<timestamp>\d{4}-\d\d-\d\dT\d\d-\d\d)_hw1\.ipynb$"
    z = make_zip(
        tmp_path / "dl.zip",
        [
            ("carol_2026-09-30T10-00_hw1.ipynb", b"old"),
            ("carol_2026-10-02T09-00_hw1.ipynb", NB),
            ("dan_2026-09-30T23-00_hw1.ipynb", NB),
            ("eve_2026-13-45T99-99_hw1.ipynb", NB),
        ],
    )
    due = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC)
    got = ing.ingest(course, "hw1", z, pattern=pattern, due=due)
    assert sorted(got.accepted) == ["carol", "dan"]
    assert (course.submitted / "carol" / "hw1" / "hw1.ipynb").read_bytes() == NB
    reasons = dict(got.rejected)
    assert "older submission of carol" in reasons["carol_2026-09-30T10-00_hw1.ipynb"]
    assert "cannot read the time stamp" in reasons["eve_2026-13-45T99-99_hw1.ipynb"]
    assert got.late == ["carol"]


def test_unsafe_student_ids_are_refused(course, tmp_path):
    z = make_zip(tmp_path / "dl.zip", [("bad id!_hw1.ipynb", NB)])
    got = ing.ingest(course, "hw1", z, pattern=r"^(?P<student_id>.+)_hw1\.ipynb$")
    assert got.accepted == {} and "cannot safely hold" in got.rejected[0][1]


def test_bad_inputs_raise_clear_errors(course, tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CourseError, match="not a readable zip file"):
        ing.ingest(course, "hw1", tmp_path / "broken.zip")
    with pytest.raises(CourseError, match="neither a .zip file nor a folder"):
        ing.ingest(course, "hw1", tmp_path / "missing.zip")
    with pytest.raises(CourseError, match="no \\(\\?P<student_id>"):
        ing.ingest(course, "hw1", tmp_path, pattern=r"^(?P<sid>.+)\.ipynb$")


def test_a_time_stamp_with_an_offset_is_kept_in_utc(course, tmp_path):
    """An LMS time in another zone (-05:00) is written as UTC, so nbgrader and the late policy read the moment it
    was, not a time five hours early."""
    from nbgrader.utils import parse_utc

    pattern = r"^(?P<student_id>[a-z]+)_(?P<timestamp>.+)_hw1\.ipynb$"
    z = make_zip(tmp_path / "dl.zip", [("carol_2026-10-02T06:30-05:00_hw1.ipynb", NB)])
    ing.ingest(course, "hw1", z, pattern=pattern)
    stamp = parse_utc((course.submitted / "carol" / "hw1" / "timestamp.txt").read_text().strip())
    assert stamp.replace(tzinfo=None) == datetime.datetime(2026, 10, 2, 11, 30)
