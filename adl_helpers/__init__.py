"""adl_helpers: the small, tested helper package of the Applied Deep Learning course kit.

The public API is what this module exports. Importing it is cheap: no TensorFlow import, no download,
no training. Submodules that need TensorFlow import it when first used.

Importing it sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the variable is already set, so that TensorFlow's C++
start-up lines stay out of the output: import ``adl_helpers`` before TensorFlow, which reads the variable
once, when it loads (see :mod:`adl_helpers.settings`).
"""

from adl_helpers import datasets, grading, pretrained
from adl_helpers.checks import CheckFailed, check
from adl_helpers.settings import PROFILES, Profile, data_dir, get_profile, mirror_dir, set_seed, setup

__version__ = "0.1.0"

__all__ = [
    "CheckFailed",
    "PROFILES",
    "Profile",
    "check",
    "data_dir",
    "datasets",
    "get_profile",
    "grading",
    "mirror_dir",
    "pretrained",
    "set_seed",
    "setup",
]
