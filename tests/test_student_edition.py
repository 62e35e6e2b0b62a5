"""The student edition (`make student`) holds what students need and nothing an instructor keeps private: no
solution, hidden test, sample submission or wrong-answer case, in the folder, its wheel, its sdist or the
build context of its image."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course"))
import student_edition  # noqa: E402


@pytest.fixture(scope="module")
def private():
    return student_edition.private_lines()


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    return student_edition.build(tmp_path_factory.mktemp("edition") / "adl-student")


@pytest.fixture(scope="module")
def dists(edition, tmp_path_factory):
    """The edition's wheel and sdist, built from a copy with the standard PEP 517 hooks (no network)."""
    work = tmp_path_factory.mktemp("dist-build") / "src"
    shutil.copytree(edition, work)
    out = work.parent / "dist"
    for hook in ("build_sdist", "build_wheel"):  # one process per hook, as build frontends do
        code = f"import sys; from setuptools import build_meta as b; b.{hook}(sys.argv[1])"
        proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == 1, proc.stdout[-2000:]
    return wheels[0], sdists[0]


def test_private_material_is_known(private):
    # Solutions, hidden tests, sample submissions and wrong-answer cases of every assignment.
    assert len(private) > 500
    solution = json.loads((ROOT / "source" / "hw1" / "hw1.ipynb").read_text())
    blocks = [
        ln
        for c in solution["cells"]
        for ln in student_edition._blocks("".join(c["source"]), "### BEGIN SOLUTION", "### END SOLUTION")
    ]
    assert any(student_edition._norm(ln) in private for ln in blocks)
    assert not private & student_edition.public_lines(), "a public line counted as private"


def test_edition_holds_what_students_need(edition):
    top = sorted(p.name for p in edition.iterdir())
    assert top == sorted(
        [
            ".adl-student-edition",
            ".dockerignore",
            "Dockerfile",
            "LICENSE",
            "README.md",
            "adl_helpers",
            "course",
            "environment.yml",
            "notebooks",
            "pyproject.toml",
            "release",
            "requirements.txt",
        ]
    )
    assert sorted(p.name for p in (edition / "notebooks").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb")
    )
    assert sorted(p.name for p in (edition / "release").iterdir()) == sorted(
        p.name for p in (ROOT / "release").iterdir()
    )
    assert sorted(p.name for p in (edition / "course").iterdir()) == ["project", "schedule.yml", "syllabus.md"]
    assert sorted(p.name for p in (edition / "course" / "project" / "starters").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "course" / "project" / "starters").glob("*.ipynb")
    )
    readme = (edition / "README.md").read_text()
    assert "{table}" not in readme and "colab.research.google.com/github/" in readme
    assert "week01_tensorflow_keras.ipynb" in readme and "release/hw1" in readme
    assert (edition / "requirements.txt").read_text() == (ROOT / "requirements-student.lock").read_text()


def test_edition_wheel_sdist_and_image_context_hold_no_private_material(edition, dists, private):
    wheel, sdist = dists
    assert student_edition.scan([edition, wheel, sdist], private) == []
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert {n.split("/")[0] for n in names} == {
        "adl_helpers",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert "Name: adl-helpers" in metadata and "Requires-Python: >=3.10" in metadata
    assert "tensorflow" not in [
        ln.split()[1] for ln in metadata.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    ]
    # The image is built from the edition folder as it is (its .dockerignore drops only caches and builds),
    # and copies nothing from outside it.
    dockerfile = (edition / "Dockerfile").read_text()
    copies = [ln.split()[-2] for ln in dockerfile.splitlines() if ln.startswith("COPY")]
    assert copies == ["requirements.txt", "."], copies


def test_scan_finds_each_kind_of_leak(edition, dists, private, tmp_path):
    """The scan is not vacuous: each way private material could get in is caught."""
    leaky = tmp_path / "leaky"
    shutil.copytree(edition, leaky)
    assert student_edition.scan([leaky], private) == []
    # 1. a whole instructor folder
    shutil.copytree(ROOT / "source" / "hw2", leaky / "source" / "hw2")
    hits = student_edition.scan([leaky], private)
    assert any("source/hw2/hw2.ipynb: instructor-only folder" in h for h in hits)
    assert any("BEGIN SOLUTION" in h for h in hits)
    shutil.rmtree(leaky / "source")
    # 2. one solution line pasted into a released notebook (no marker around it)
    secret = sorted(private)[0]
    nb_path = leaky / "release" / "hw1" / "hw1.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][-1]["source"] = ["x = 1\n", "    " + secret + "\n"]
    nb_path.write_text(json.dumps(nb))
    assert [h for h in student_edition.scan([leaky], private) if "hw1.ipynb" in h] == [f"{nb_path}: {secret[:120]}"]
    # 3. a sample submission inside the wheel
    wheel, _ = dists
    bad = tmp_path / wheel.name
    shutil.copy(wheel, bad)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.write(next((ROOT / "autograder" / "samples" / "hw1").glob("s01_*.ipynb")), "adl_helpers/s01.ipynb")
    assert student_edition.scan([bad], private)


def test_build_refuses_and_removes_a_leaky_edition(monkeypatch, tmp_path):
    monkeypatch.setattr(student_edition, "COPIED", (*student_edition.COPIED, "source"))
    with pytest.raises(student_edition.LeakError, match="private lines in the student edition"):
        student_edition.build(tmp_path / "edition")
    assert not (tmp_path / "edition").exists()


def test_build_refuses_a_folder_that_is_not_an_edition(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(SystemExit, match="not a student edition"):
        student_edition.build(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    with pytest.raises(SystemExit, match="outside the repository"):
        student_edition.build(ROOT / "notebooks")


def test_rebuild_keeps_the_editions_git_folder(tmp_path):
    dest = student_edition.build(tmp_path / "e")
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "stale.txt").write_text("from last time")
    student_edition.build(dest)
    assert (dest / ".git" / "HEAD").exists() and not (dest / "stale.txt").exists()


def test_helpers_parse_as_python_3_10():
    """The student package says Python >= 3.10: its syntax must be 3.10's (a 3.11 construct fails here)."""
    import ast

    for path in sorted((ROOT / "adl_helpers").glob("*.py")):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))
    with pytest.raises(SyntaxError):
        ast.parse("try:\n    pass\nexcept* ValueError:\n    pass\n", feature_version=(3, 10))
