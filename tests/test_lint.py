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
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "F821" in proc.stdout and "F401" in proc.stdout
