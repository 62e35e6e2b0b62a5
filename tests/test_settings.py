import logging
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from absl import logging as absl_logging

import adl_helpers as adl
from adl_helpers import settings


def test_default_profile_is_full(monkeypatch):
    monkeypatch.delenv("ADL_PROFILE", raising=False)
    profile = adl.get_profile()
    assert profile.name == "full" and not profile.is_smoke
    assert profile.epochs(10) == 10 and profile.samples(60_000) == 60_000 and profile.steps(5000) == 5000


def test_smoke_profile_caps(monkeypatch):
    monkeypatch.setenv("ADL_PROFILE", " Smoke ")
    profile = adl.get_profile()
    assert profile.is_smoke
    assert (profile.epochs(10), profile.epochs(1)) == (2, 1)
    assert (profile.samples(60_000), profile.samples(500)) == (2000, 500)
    assert profile.steps(10_000) == 200


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("ADL_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"one of \['full', 'smoke'\], got 'fast'"):
        adl.get_profile()


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_epochs_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="positive whole number"):
        adl.PROFILES["full"].epochs(bad)


def test_subset_is_deterministic_and_aligned():
    x = np.arange(5000)
    y = x * 10
    xs, ys = adl.PROFILES["smoke"].subset(x, y, n=3000)
    assert xs.shape == (2000,) and np.array_equal(ys, xs * 10)
    assert np.array_equal(xs, adl.PROFILES["smoke"].subset(x, n=3000))
    assert np.all(np.diff(xs) > 0)  # sorted, no duplicates
    full = adl.PROFILES["full"].subset(x, y)
    assert full[0] is x and full[1] is y


def test_subset_errors():
    smoke = adl.PROFILES["smoke"]
    with pytest.raises(ValueError, match="same length"):
        smoke.subset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="only 3"):
        adl.PROFILES["full"].subset(np.zeros(3), n=5)
    with pytest.raises(ValueError, match="at least one array"):
        smoke.subset()


def test_set_seed_repeats_python_numpy_and_tensorflow():
    import tensorflow as tf

    draws = []
    for _ in range(2):
        adl.set_seed(7)
        draws.append((random.random(), np.random.rand(), float(tf.random.uniform(()))))
    assert draws[0] == draws[1]
    adl.set_seed(8)
    assert (random.random(), np.random.rand()) != draws[0][:2]


@pytest.mark.parametrize("bad", [-1, 1.5, "1", None])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative whole number"):
        adl.set_seed(bad)


def test_setup_prints_one_line(capsys):
    profile = adl.setup(seed=3, profile="smoke")
    out = capsys.readouterr().out
    assert profile.name == "smoke"
    assert out == "adl_helpers: profile 'smoke' (at most 2 epochs, 2000 samples, 200 steps), seed 3\n"


def test_data_dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("ADL_DATA_DIR", str(tmp_path / "cache"))
    assert adl.data_dir() == tmp_path / "cache"
    monkeypatch.delenv("ADL_DATA_DIR")
    assert adl.data_dir().name == "adl-course-kit"
    monkeypatch.setenv("ADL_DATA_MIRROR", str(tmp_path))
    assert adl.mirror_dir() == tmp_path
    monkeypatch.setenv("ADL_DATA_MIRROR", str(tmp_path / "missing"))
    assert adl.mirror_dir() is None
    monkeypatch.delenv("ADL_DATA_MIRROR")
    assert settings.mirror_dir() is None


def test_import_is_cheap():
    code = (
        "import sys, adl_helpers; print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_setup_without_tensorflow_does_not_import_it():
    """NumPy-only notebooks (hw1) skip the TensorFlow import: grading kernels start in a second, not five."""
    code = (
        "import sys, adl_helpers as adl; adl.setup(seed=1, profile='smoke', quiet=True, tensorflow=False); "
        "import numpy as np; a = np.random.rand(); adl.set_seed(1, tensorflow=False); "
        "assert np.random.rand() == a; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# TensorFlow's C++ start-up lines: the INFO line of cpu_feature_guard.cc ("This TensorFlow binary is optimized
# ...", which TF_CPP_MIN_LOG_LEVEL=2 hides; printed whenever the CPU has instructions the wheel was not built
# for), and two lines no log level governs in TensorFlow 2.21 (absl's "All log messages before
# absl::InitializeLog() ..." and the oneDNN notice), which adl_helpers filters out while TensorFlow loads.
CPP_STARTUP = (
    "cpu_feature_guard",
    "This TensorFlow binary",
    "To enable the following instructions",
    "absl::InitializeLog",
    "oneDNN custom operations",
)
TF_RUN = "import tensorflow as tf; print(int(tf.constant(1) + 1))"


@pytest.fixture(scope="module")
def tensorflow_stderr():
    """stdout and stderr of three fresh processes that start TensorFlow, run side by side (a few seconds each)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # make sets it
    runs = {
        "with adl_helpers": ("import os, adl_helpers; print(os.environ['TF_CPP_MIN_LOG_LEVEL']); " + TF_RUN, env),
        "without": ("print('-'); " + TF_RUN, env),
        "user level 0": (
            "import os, adl_helpers; print(os.environ['TF_CPP_MIN_LOG_LEVEL']); " + TF_RUN,
            {**env, "TF_CPP_MIN_LOG_LEVEL": "0"},
        ),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", code], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (code, e) in runs.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, stderr)
        out[name] = (stdout.split(), stderr)
    return out


def _startup_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(s in line for s in CPP_STARTUP)]


@pytest.mark.slow
def test_importing_adl_helpers_first_hides_tensorflows_cpp_startup_lines(tensorflow_stderr):
    stdout, stderr = tensorflow_stderr["with adl_helpers"]
    assert stdout == ["2", "2"]
    assert _startup_lines(stderr) == [], stderr


@pytest.mark.slow
def test_without_adl_helpers_tensorflow_prints_them(tensorflow_stderr):
    """The control: on this machine TensorFlow does print the lines the test above must not see."""
    stdout, stderr = tensorflow_stderr["without"]
    assert stdout == ["-", "2"]
    assert _startup_lines(stderr), f"TensorFlow printed no cpu_feature_guard line here; its stderr:\n{stderr}"


@pytest.mark.slow
def test_a_level_the_user_set_is_kept(tensorflow_stderr):
    stdout, stderr = tensorflow_stderr["user level 0"]
    assert stdout == ["0", "2"]
    assert _startup_lines(stderr), stderr


@pytest.mark.slow
def test_setup_quiets_tensorflows_python_loggers():
    """In a fresh process: the loggers are process-wide, and this one may have set them already."""
    code = (
        "import logging, absl.logging, adl_helpers as adl\n"
        "adl.setup(seed=0, profile='smoke', quiet=True, tensorflow=False)\n"
        "print(logging.getLogger('tensorflow').level, absl.logging.get_verbosity())\n"
        "adl.setup(seed=0, profile='smoke', quiet=True)\n"
        "print(logging.getLogger('tensorflow').level, absl.logging.get_verbosity())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.splitlines()
    assert before == "0 -1", "without TensorFlow, setup leaves the loggers alone"
    assert after == f"{logging.ERROR} {absl_logging.ERROR}"


def test_the_import_filter_keeps_every_other_line_on_stderr():
    """What a C++ library writes to file descriptor 2 while TensorFlow loads still shows, but the notices."""
    code = (
        "import os, sys\n"
        "from adl_helpers.settings import _stderr_without\n"
        "with _stderr_without((b'oneDNN custom operations',)):\n"
        "    os.write(2, b'E real error: keep me\\n')\n"
        "    os.write(2, b'I port.cc] oneDNN custom operations are on. drop me\\n')\n"
        "    os.write(2, b'no newline at the end')\n"
        "os.write(2, b' - and after\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == b"E real error: keep me\nno newline at the end - and after\n"
