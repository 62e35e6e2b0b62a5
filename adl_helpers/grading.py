"""Evaluating a saved Keras model the way the grader does.

Homework questions about a trained model work in two steps: the student's notebook trains the model and
saves it (``model.save("hw3_cnn.keras")``), and the question's test cell evaluates the *file* with
:func:`evaluate_saved_model`: it never retrains. In the student's own notebook the file is loaded right
there, with Keras' safe mode. At grading time the test cell runs in the grader (see
``autograder/README.md``, "The grading contract"), which loads the file in a fresh sandboxed process that
runs no student code, also in safe mode, and gets back only numbers.

Safe mode refuses ``Lambda`` layers that carry Python code, and Keras refuses classes it does not know, so
a saved model for grading is built from Keras' own layers. Put the preprocessing the model needs inside it
(``keras.layers.Rescaling``, ``keras.layers.Normalization``): the test feeds raw inputs.

Example:
    >>> r = evaluate_saved_model("hw3_cnn.keras", x_test)  # doctest: +SKIP
    >>> accuracy = np.mean(r["outputs"].argmax(axis=1) == y_test)  # doctest: +SKIP
    >>> r["trainable_params"]  # doctest: +SKIP
    121930
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

__all__ = ["MAX_MODEL_BYTES", "evaluate_saved_model", "model_report"]

#: Largest model file :func:`evaluate_saved_model` accepts (a course model is a few MB).
MAX_MODEL_BYTES = 200 * 2**20

# The grader installs its own evaluator here (a function with the signature of evaluate_saved_model) so
# that, in the grader's process, the file is loaded in a sandbox instead of in-process.
_evaluator = None


def evaluate_saved_model(path, inputs, *, batch_size=256):
    """Load a saved ``.keras`` model in safe mode and run it on ``inputs``.

    Args:
        path: the model file, as saved by ``model.save(path)``; relative paths are relative to the
            notebook's folder.
        inputs: one NumPy array (a batch of model inputs), or a dict ``{name: array}`` to run several
            batches through the same loaded model.
        batch_size: batch size for ``model.predict``.

    Returns:
        A dict of plain data: ``"outputs"`` (``model.predict`` of the inputs: an array, or a dict with the
        keys of ``inputs``), ``"trainable_params"`` and ``"non_trainable_params"`` (ints),
        ``"input_shape"`` and ``"output_shape"`` (lists, ``None`` for the batch dimension) and
        ``"layer_types"`` (the class names of the model's top-level layers).

    Raises:
        FileNotFoundError: there is no file at ``path`` (run the cell that trains and saves the model).
        ValueError: the file is not a loadable Keras model (not a ``.keras`` file, too large, written with
            a ``Lambda`` layer or a custom class), or ``inputs`` is not an array or a dict of arrays.
    """
    batches = _check_inputs(inputs)
    if _evaluator is not None:
        return _evaluator(os.fspath(path), inputs, batch_size=batch_size)
    model = load_for_grading(path)
    return model_report(model, batches, batch_size=batch_size, single=not isinstance(inputs, dict))


def load_for_grading(path):
    """The model in ``path``, loaded with ``safe_mode=True`` and ``compile=False``; errors as in
    :func:`evaluate_saved_model`."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"evaluate_saved_model: no model file {str(path)!r} in {os.getcwd()}: run the cell that trains "
            "the model and saves it with model.save(...)"
        )
    if not path.is_file():
        raise ValueError(f"evaluate_saved_model: {str(path)!r} is not a file")
    if path.suffix != ".keras":
        raise ValueError(f"evaluate_saved_model: {str(path)!r} should be a .keras file (model.save('name.keras'))")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ValueError(f"evaluate_saved_model: {str(path)!r} is {size / 2**20:.0f} MiB, more than the "
                         f"{MAX_MODEL_BYTES // 2**20} MiB a course model needs")
    import keras  # deferred: importing adl_helpers stays cheap

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises ValueError, TypeError, zipfile/h5py errors, ...
        raise ValueError(
            f"evaluate_saved_model: {str(path)!r} could not be loaded as a Keras model in safe mode "
            f"({type(err).__name__}: {str(err)[:300]}). Save a model built from Keras layers, without Lambda "
            "layers or custom classes, with model.save(path)."
        ) from err


def model_report(model, batches, *, batch_size=256, single=True):
    """The dict :func:`evaluate_saved_model` returns, for a loaded ``model`` and ``{name: array}`` batches."""
    outputs = {}
    expected = _shape(getattr(model, "input_shape", None))
    for name, x in batches.items():
        if expected and not isinstance(expected[0], list) and (len(expected) != x.ndim or any(
                e is not None and e != d for e, d in zip(expected[1:], x.shape[1:], strict=True))):
            raise ValueError(f"evaluate_saved_model: inputs of shape {x.shape} do not fit the model, which takes "
                             f"{tuple(expected)} (None: any size)")
        y = model.predict(x, batch_size=batch_size, verbose=0)
        if isinstance(y, (list, tuple)):
            raise ValueError("evaluate_saved_model: the model has several outputs; grading expects one")
        outputs[name] = np.asarray(y)
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    frozen = int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))
    return {
        "outputs": outputs["x"] if single else outputs,
        "trainable_params": trainable,
        "non_trainable_params": frozen,
        "input_shape": _shape(getattr(model, "input_shape", None)),
        "output_shape": _shape(getattr(model, "output_shape", None)),
        "layer_types": [type(layer).__name__ for layer in model.layers],
    }


def _shape(shape):
    if shape is None:
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [_shape(s) for s in shape]
    return [None if d is None else int(d) for d in shape]


def _check_inputs(inputs):
    if isinstance(inputs, dict):
        if not inputs:
            raise ValueError("evaluate_saved_model: inputs is an empty dict; give {name: array}")
        batches = {}
        for name, x in inputs.items():
            if not isinstance(name, str):
                raise ValueError(f"evaluate_saved_model: input names must be strings, got {name!r}")
            batches[name] = _array(x, f"inputs[{name!r}]")
        return batches
    return {"x": _array(inputs, "inputs")}


def _array(x, what):
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f"evaluate_saved_model: {what} should be a NumPy array, got {type(x).__name__}")
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise ValueError(f"evaluate_saved_model: {what} should be a numeric array with a batch dimension, "
                         f"got dtype {x.dtype} and shape {x.shape}")
    return x
