"""Run profiles and seeding: the one place that decides data sizes and epoch counts.

Two profiles share one code path:

* ``full`` (the default): what students run. Epoch counts and sample sizes are what the notebook asks for.
* ``smoke``: what CI runs. The same notebook, capped to a small sample and at most two epochs, so that every
  notebook executes in seconds on a laptop CPU.

A notebook never branches on the profile itself. It asks the profile for a number::

    profile = adl.setup()                      # reads ADL_PROFILE, seeds everything
    epochs = profile.epochs(10)                # 10 in full, 2 in smoke
    x_train, y_train = profile.subset(x_train, y_train, n=60_000)

It also keeps TensorFlow quiet. TensorFlow's C++ runtime prints start-up lines on stderr (which CPU
instructions it was built for, ...) unless ``TF_CPP_MIN_LOG_LEVEL`` says otherwise when it loads. Importing
``adl_helpers`` sets ``TF_CPP_MIN_LOG_LEVEL=2`` (errors only) unless it is already set, so a notebook imports
``adl_helpers`` before TensorFlow. A level set by the user (``TF_CPP_MIN_LOG_LEVEL=0`` to see everything)
is left alone. TensorFlow 2.21 also prints two notices that no log level governs (absl's line about its
logging, and that oneDNN is on); while TensorFlow is imported after ``adl_helpers``, those two lines are
filtered out of stderr and everything else it writes there still shows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import random
import sys

import numpy as np

__all__ = ["Profile", "PROFILES", "data_dir", "get_profile", "mirror_dir", "set_seed", "setup"]

PROFILE_ENV = "ADL_PROFILE"
DATA_DIR_ENV = "ADL_DATA_DIR"
MIRROR_ENV = "ADL_DATA_MIRROR"
DEFAULT_SEED = 42
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
TF_LOG_DEFAULT = "2"  # TensorFlow's C++ errors only: no INFO or WARNING lines


def _quiet_tensorflow_cpp() -> None:
    """Set ``TF_CPP_MIN_LOG_LEVEL=2`` unless it is set. TensorFlow reads it once, when its C++ runtime loads."""
    os.environ.setdefault(TF_LOG_ENV, TF_LOG_DEFAULT)


def _quiet_tensorflow_loggers() -> None:
    """Let TensorFlow's Python loggers (``tensorflow`` and absl's) print errors only, if TensorFlow is loaded."""
    if "tensorflow" not in sys.modules:
        return
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging  # a dependency of TensorFlow
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


# Start-up lines of TensorFlow's C++ runtime that no log level governs (TensorFlow 2.21): absl's notice before
# its logging is initialised, and the oneDNN notice. Filtered out of stderr while TensorFlow is imported.
_STARTUP_CHATTER = (b"All log messages before absl::InitializeLog() is called", b"oneDNN custom operations are on")


class _QuietTensorFlowImport:
    """A one-shot import hook: while ``tensorflow`` itself is imported, the process's stderr (file descriptor
    2, where C++ writes) goes to a temporary file; afterwards every line of it except the start-up notices
    above is written back to stderr, so real warnings and errors still show. Python-level writes to
    ``sys.stderr`` are not touched. Installed only while ``TF_CPP_MIN_LOG_LEVEL`` asks for no INFO lines."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        self.remove()
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader

        class _Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                with _stderr_without(_STARTUP_CHATTER):
                    loader.exec_module(module)

        spec.loader = _Loader()
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


class _stderr_without:
    """Context manager: file descriptor 2 into a temporary file, then its lines back, less ``drop``."""

    def __init__(self, drop: tuple[bytes, ...]):
        self.drop = drop

    def __enter__(self):
        import tempfile

        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2: nothing to filter
            self.saved = None
            return self
        self.tmp = tempfile.TemporaryFile()
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            return False
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        kept = [ln for ln in self.tmp.read().splitlines(keepends=True) if not any(d in ln for d in self.drop)]
        self.tmp.close()
        if kept:
            os.write(2, b"".join(kept))
        return False


_IMPORT_HOOK = _QuietTensorFlowImport()


def _install_import_hook() -> None:
    quiet = os.environ.get(TF_LOG_ENV, "").strip() in ("1", "2", "3")
    if quiet and "tensorflow" not in sys.modules and _IMPORT_HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _IMPORT_HOOK)


_quiet_tensorflow_cpp()  # when adl_helpers is imported, so before the notebook imports TensorFlow
_install_import_hook()


@dataclasses.dataclass(frozen=True)
class Profile:
    """How big a run is.

    Args:
        name: ``"full"`` or ``"smoke"``.
        max_epochs: cap on epochs per training run, or ``None`` for no cap.
        max_samples: cap on examples per array a notebook takes, or ``None`` for no cap.
        max_steps: cap on iterations of hand-written loops (optimizer demos, GAN steps), or ``None``.

    Example:
        >>> p = PROFILES["smoke"]
        >>> p.epochs(10), p.samples(60_000)
        (2, 2000)
    """

    name: str
    max_epochs: int | None
    max_samples: int | None
    max_steps: int | None

    @property
    def is_smoke(self) -> bool:
        """True in the small CI profile. For printing and tests; notebooks should ask for numbers instead."""
        return self.name == "smoke"

    def epochs(self, full: int) -> int:
        """Number of epochs to train: ``full`` in the full profile, at most ``max_epochs`` otherwise."""
        return _capped("epochs", full, self.max_epochs)

    def samples(self, full: int) -> int:
        """Number of examples to use: ``full`` in the full profile, at most ``max_samples`` otherwise."""
        return _capped("samples", full, self.max_samples)

    def steps(self, full: int) -> int:
        """Number of loop iterations: ``full`` in the full profile, at most ``max_steps`` otherwise."""
        return _capped("steps", full, self.max_steps)

    def subset(self, *arrays, n: int | None = None, seed: int = DEFAULT_SEED):
        """Take the same random ``samples(n)`` rows of each array (all rows of the arrays if ``n`` is None).

        The rows are drawn without replacement with a fixed seed, so a subset is the same on every run and
        keeps the class balance of a shuffled sample rather than the order of the file.

        Args:
            *arrays: arrays with the same first dimension.
            n: how many rows the full profile takes; defaults to all of them.
            seed: seed of the draw.

        Returns:
            One array if one was given, else a tuple of arrays.
        """
        if not arrays:
            raise ValueError("subset: pass at least one array")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"subset: arrays must have the same length, got lengths {sorted(lengths)}")
        total = lengths.pop()
        want = self.samples(total if n is None else n)
        if want > total:
            raise ValueError(f"subset: asked for {want} rows but the arrays have only {total}")
        if want == total:
            out = tuple(arrays)
        else:
            idx = np.sort(np.random.default_rng(seed).choice(total, size=want, replace=False))
            out = tuple(a[idx] for a in arrays)
        return out[0] if len(out) == 1 else out


def _capped(what: str, full: int, cap: int | None) -> int:
    if isinstance(full, bool) or not isinstance(full, (int, np.integer)) or full < 1:
        raise ValueError(f"Profile.{what}: expected a positive whole number, got {full!r}")
    return int(full) if cap is None else int(min(full, cap))


PROFILES: dict[str, Profile] = {
    "full": Profile("full", max_epochs=None, max_samples=None, max_steps=None),
    "smoke": Profile("smoke", max_epochs=2, max_samples=2000, max_steps=200),
}


def get_profile(name: str | None = None) -> Profile:
    """The active profile: ``name`` if given, else ``$ADL_PROFILE``, else ``"full"``.

    Raises:
        ValueError: for a name that is not a profile, naming the choices.
    """
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or "full"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"get_profile: profile must be one of {sorted(PROFILES)}, got {name!r} "
            f"(set {PROFILE_ENV}=full or {PROFILE_ENV}=smoke)"
        )
    return PROFILES[key]


def data_dir() -> pathlib.Path:
    """The writable data cache: ``$ADL_DATA_DIR`` if set, else ``<user cache dir>/adl-course-kit``.

    The folder is not created here; writers create it when they first store a file.
    """
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return pathlib.Path(env).expanduser()
    import platformdirs

    return pathlib.Path(platformdirs.user_cache_dir("adl-course-kit", appauthor=False))


def mirror_dir() -> pathlib.Path | None:
    """The read-only data mirror named by ``$ADL_DATA_MIRROR``, or ``None`` when unset or not a folder.

    The mirror has the cache's layout (``mnist/t10k-images-idx3-ubyte.gz``, ``banknote/...``,
    ``pretrained/...``). Nothing is ever written into it.
    """
    env = os.environ.get(MIRROR_ENV, "").strip()
    if not env:
        return None
    path = pathlib.Path(env).expanduser()
    return path if path.is_dir() else None


def set_seed(seed: int = DEFAULT_SEED, deterministic: bool = True, tensorflow: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow in one call, and make TensorFlow's ops deterministic.

    Args:
        seed: the seed, a non-negative whole number.
        deterministic: also call ``tf.config.experimental.enable_op_determinism()`` so that two runs of
            the same cell give the same numbers (slightly slower on GPUs, free on CPUs).
        tensorflow: seed TensorFlow too (importing it, a few seconds). ``False`` for NumPy-only notebooks;
            TensorFlow is then seeded anyway if it was already imported.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_seed: seed must be a non-negative whole number, got {seed!r}")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    if not tensorflow and "tensorflow" not in sys.modules:
        return
    import tensorflow as tf  # deferred: importing adl_helpers must stay cheap

    tf.keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def setup(
    seed: int = DEFAULT_SEED, profile: str | None = None, quiet: bool = False, tensorflow: bool = True
) -> Profile:
    """The one call at the top of every notebook: pick the profile, seed everything, say what was chosen.

    It also keeps TensorFlow quiet: ``TF_CPP_MIN_LOG_LEVEL=2`` unless set (as importing ``adl_helpers``
    does; it only has an effect before TensorFlow is imported), and, when TensorFlow is imported, its
    Python and absl loggers print errors only.

    Args:
        seed: passed to :func:`set_seed`.
        profile: profile name; defaults to ``$ADL_PROFILE`` or ``"full"``.
        quiet: do not print the one-line summary.
        tensorflow: passed to :func:`set_seed` (``False``: do not import TensorFlow just to seed it).

    Returns:
        The active :class:`Profile`.

    Example:
        >>> profile = setup(seed=0, profile="smoke", quiet=True)
        >>> profile.name
        'smoke'
    """
    active = get_profile(profile)
    _quiet_tensorflow_cpp()
    set_seed(seed, tensorflow=tensorflow)
    _quiet_tensorflow_loggers()
    if not quiet:
        caps = (
            "no caps"
            if active.max_epochs is None
            else (f"at most {active.max_epochs} epochs, {active.max_samples} samples, {active.max_steps} steps")
        )
        print(f"adl_helpers: profile '{active.name}' ({caps}), seed {seed}")
    return active
