"""Run profiles and seeding: the one place that decides data sizes and epoch counts.

Two profiles share one code path:

* ``full`` (the default): what students run. Epoch counts and sample sizes are what the notebook asks for.
* ``smoke``: what CI runs. The same notebook, capped to a small sample and at most two epochs, so that every
  notebook executes in seconds on a laptop CPU.

A notebook never branches on the profile itself. It asks the profile for a number::

    profile = adl.setup()                      # reads ADL_PROFILE, seeds everything
    epochs = profile.epochs(10)                # 10 in full, 2 in smoke
    x_train, y_train = profile.subset(x_train, y_train, n=60_000)
"""

from __future__ import annotations

import dataclasses
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


def setup(seed: int = DEFAULT_SEED, profile: str | None = None, quiet: bool = False,
          tensorflow: bool = True) -> Profile:
    """The one call at the top of every notebook: pick the profile, seed everything, say what was chosen.

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
    set_seed(seed, tensorflow=tensorflow)
    if not quiet:
        caps = "no caps" if active.max_epochs is None else (
            f"at most {active.max_epochs} epochs, {active.max_samples} samples, {active.max_steps} steps"
        )
        print(f"adl_helpers: profile '{active.name}' ({caps}), seed {seed}")
    return active
