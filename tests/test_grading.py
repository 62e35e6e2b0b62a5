"""adl_helpers.grading (a saved model evaluated in the notebook) and autograder.evaluate (the same call in the
grader: the file is loaded in a sandboxed process of its own, in safe mode, and only numbers come back)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from adl_helpers import grading
from autograder.evaluate import ModelEvaluator
from autograder.sandbox import bwrap_problem

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


def test_grader_evaluates_in_its_own_process(saved, monkeypatch):
    d, model, x = saved
    ev = ModelEvaluator(d, timeout=120, sandbox=bwrap_problem() is None, env={"PATH": os.environ["PATH"]})
    monkeypatch.setattr(grading, "_evaluator", ev)
    r = grading.evaluate_saved_model("net.keras", {"a": x, "b": x[:1]})  # the notebook's call, the grader's way
    again = grading.evaluate_saved_model("net.keras", x[:1])
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
    for bad, match in ((str(d / "net.keras"), "file name"), ("../net.keras", "file name"),
                       ("link.keras", "not a regular file"), ("dir.keras", "not a regular file"),
                       ("missing.keras", "did not save it")):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            ev(bad, x)
    with pytest.raises(ValueError, match="NumPy array"):
        ev("link.keras", "x")


def test_grader_refuses_an_oversized_model(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "MAX_MODEL_BYTES", 10)
    pathlib.Path(tmp_path / "big.keras").write_bytes(b"x" * 11)
    with pytest.raises(ValueError, match="MiB"):
        ModelEvaluator(tmp_path, timeout=5)("big.keras", np.zeros((1, 3)))
