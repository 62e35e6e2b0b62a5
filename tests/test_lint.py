import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_ruff_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_catches_an_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nprint(undefined_name)\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "F821" in proc.stdout and "F401" in proc.stdout


# `make lint` runs the same three commands: ruff check, ruff format --check and mypy.
FORMAT_CHECK = ["ruff", "format", "--check", "."]  # every Python file; pyproject.toml leaves the notebooks out


def test_the_code_is_formatted():
    proc = subprocess.run([sys.executable, "-m", *FORMAT_CHECK], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"run `.venv/bin/ruff format .`:\n{proc.stdout}{proc.stderr}"


def test_ruff_format_catches_unformatted_code(tmp_path):
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    bad = tmp_path / "bad.py"
    bad.write_text("x = { 'a':1 }\n")
    check = [sys.executable, "-m", "ruff", "format", "--check", *config, str(bad)]
    proc = subprocess.run(check, capture_output=True, text=True)
    assert proc.returncode == 1 and "bad.py" in proc.stdout, proc.stdout + proc.stderr
    subprocess.run([sys.executable, "-m", "ruff", "format", *config, str(bad)], check=True, capture_output=True)
    assert bad.read_text() == 'x = {"a": 1}\n'
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0


def test_mypy_passes():
    """mypy on autograder/ ([tool.mypy] in pyproject.toml says what and how)."""
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues found" in proc.stdout and "source files" in proc.stdout


def test_mypy_catches_a_type_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import nbgrader  # untyped: not an error (ignore_missing_imports)\n\n\n"
        "def half(n: int) -> int:\n    return n / 2\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            "/dev/null",
            str(bad),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "bad.py:5: error: Incompatible return value type" in proc.stdout and "nbgrader" not in proc.stdout
