"""Pretrained backbones: MobileNetV2 (alpha=0.35) with ImageNet weights, offline first.

The course uses one small ImageNet backbone for transfer learning (week 8, hw4): MobileNetV2 with width
multiplier 0.35 and no classification head (410,208 parameters, 1,280 features per image). Its weights
come from the first of:

1. the Teachable Machine export ``pretrained/mobilenet_v2_035_224_no_top_teachable/keras_model.h5`` in the
   read-only data mirror (``$ADL_DATA_MIRROR``) or the data cache (:func:`adl_helpers.data_dir`),
   checked against its sha256;
2. Keras' own download (``keras.applications.MobileNetV2(weights="imagenet")``), which needs the internet
   once and is then cached under ``~/.keras/models/``;
3. in the ``smoke`` profile only, which never downloads: when neither of those is on this machine, a
   **stand-in** with the same architecture (410,208 parameters, the same layer names) but deterministic
   *random* weights, announced by one printed line. Its features are not ImageNet features: code runs,
   accuracies are near chance. :func:`weights_source` says which of the three ``load_mobilenet_v2`` uses, so
   that a check can relax its accuracy threshold for the stand-in.

Importing this module is cheap: Keras, TensorFlow and h5py are imported when a function is first called.

Example:
    >>> from adl_helpers import pretrained
    >>> base_model = pretrained.load_mobilenet_v2(input_shape=(96, 96, 3))  # doctest: +SKIP
    >>> x_train = np.zeros((10, 96, 96, 3), dtype="uint8")  # pixels 0..255
    >>> pretrained.extract_features(base_model, x_train).shape  # doctest: +SKIP
    (10, 1280)
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import warnings

import numpy as np

from adl_helpers._download import OFFLINE_ENV, offline
from adl_helpers.settings import MIRROR_ENV, PROFILES, Profile, data_dir, get_profile, mirror_dir

__all__ = ["architecture", "extract_features", "load_mobilenet_v2", "preprocess", "weights_source"]

#: Where the Teachable Machine export lives inside the data mirror and the data cache.
MOBILENET_V2_FILE = "pretrained/mobilenet_v2_035_224_no_top_teachable/keras_model.h5"
#: sha256 of that file (from the data mirror's MANIFEST.txt).
MOBILENET_V2_SHA256 = "54a761a1c046b7cd5e63a553b93d342ca6dbde9e2a0116fcdc7273106ee500d8"
#: The h5 group whose sub-groups are the backbone's layers, one per weighted layer.
MOBILENET_V2_H5_GROUP = "model_weights/sequential_1"

ALPHA = 0.35
MIN_SIZE = 32  # MobileNetV2 halves the image five times
_SOURCES = ("auto", "mirror", "keras", "stand-in")
STANDIN_SEED = 35  # seeds the stand-in's random weights (alpha 0.35)
_POOLINGS = (None, "avg", "max")
_KERAS_SIZES = (96, 128, 160, 192, 224)  # resolutions Keras publishes weights for
_KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"


def load_mobilenet_v2(input_shape=(224, 224, 3), *, source="auto", pooling=None, trainable=False, profile=None):
    """MobileNetV2 (alpha=0.35, no top) with ImageNet weights, as a ``keras.Model``.

    The backbone is fully convolutional, so the same weights serve any image size: ``(96, 96, 3)`` or
    ``(128, 128, 3)`` run much faster on a CPU than the default ``(224, 224, 3)``. Feed it images scaled
    with :func:`preprocess` (pixels 0..255 to -1..1).

    Args:
        input_shape: ``(height, width, 3)``; height and width at least 32, or ``None`` for a model that
            takes any size.
        source: where the weights come from.
            ``"auto"`` (default): the Teachable Machine export if a local copy exists (in
            ``$ADL_DATA_MIRROR`` or the data cache, sha256-checked), else Keras' download. The ``smoke``
            profile never downloads: there, with neither a local export nor Keras' file already in
            ``~/.keras/models/``, it returns the stand-in and prints one line saying so.
            ``"mirror"``: only the local Teachable Machine export.
            ``"keras"``: only ``keras.applications.MobileNetV2(weights="imagenet")`` (downloads once to
            ``~/.keras/models/``; its weights were trained at the resolution closest to yours, or 224).
            ``"stand-in"``: the stand-in, in any profile: the same architecture with deterministic random
            weights (seeded by :data:`STANDIN_SEED`, the same for every input size), not ImageNet weights.
            A path to a ``keras_model.h5`` Teachable Machine image-model export: load that file (no
            checksum, but every layer is checked by name and shape).
        pooling: as in Keras: ``None`` (default) outputs the last feature map ``(batch, h/32, w/32,
            1280)``; ``"avg"`` or ``"max"`` pool it to ``(batch, 1280)``.
        trainable: whether the backbone's weights are trainable. Keep ``False`` for feature
            extraction; to fine-tune, set ``True`` and call the model with ``training=False`` so that its
            BatchNormalization layers keep their ImageNet statistics.
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile
            (``$ADL_PROFILE``); only ``"auto"`` asks it.

    Returns:
        A ``keras.Model`` named ``mobilenetv2_0.35_<size>`` with 410,208 parameters.

    Raises:
        ValueError: for a bad argument, or a weight file that is corrupted (checksum, unreadable, a
            missing layer or a shape that does not match), naming what was wrong.
        FileNotFoundError: ``source="mirror"`` or a path, and the file is not there.
        RuntimeError: no local file and Keras could not download its weights (offline, full profile); the
            message says which file to get and where to put it.

    Example:
        >>> base_model = load_mobilenet_v2(input_shape=(96, 96, 3))  # doctest: +SKIP
        >>> base_model.output_shape  # doctest: +SKIP
        (None, 3, 3, 1280)
        >>> inputs = keras.Input((96, 96, 3))  # doctest: +SKIP
        >>> x = base_model(inputs, training=False)  # doctest: +SKIP
        >>> x = keras.layers.GlobalAveragePooling2D()(x)  # doctest: +SKIP
        >>> outputs = keras.layers.Dense(10, activation="softmax")(x)  # doctest: +SKIP
        >>> model = keras.Model(inputs, outputs)  # doctest: +SKIP
    """
    input_shape = _check_input_shape(input_shape)
    if pooling not in _POOLINGS:
        raise ValueError(f"load_mobilenet_v2: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if not isinstance(trainable, bool):
        raise ValueError(f"load_mobilenet_v2: trainable must be True or False, got {trainable!r}")
    mode, path = _resolve_source(source)
    profile = _resolve_profile(profile)

    import keras  # deferred: importing adl_helpers must stay cheap

    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "load_mobilenet_v2: needs keras.config.image_data_format() == 'channels_last', got "
            f"{keras.config.image_data_format()!r}; call keras.config.set_image_data_format('channels_last')"
        )

    if mode == "file":
        if not path.is_file():
            raise FileNotFoundError(f"load_mobilenet_v2: source file {str(path)!r} does not exist")
        model = _from_h5(path, input_shape, pooling, verify=False)
    elif mode == "keras":
        try:
            model = _from_keras(input_shape, pooling)
        except Exception as err:  # Keras' get_file raises a bare Exception when offline
            raise RuntimeError(_unavailable_message(input_shape, err, tried_local=False)) from err
    elif mode == "stand-in":
        model = _standin(input_shape, pooling, why="source='stand-in'")
    else:
        local = _local_file()
        if local is not None:
            model = _from_h5(local, input_shape, pooling, verify=True)
        elif mode == "mirror":
            raise FileNotFoundError(
                "load_mobilenet_v2(source='mirror'): the Teachable Machine export was not found. Looked at: "
                + "; ".join(_local_candidates_described())
                + f". Copy keras_model.h5 (sha256 {MOBILENET_V2_SHA256}) to one of those places, or use "
                "source='keras' to download Keras' weights."
            )
        elif profile.is_smoke and not _keras_file(input_shape).is_file():
            model = _standin(input_shape, pooling, why="smoke profile, and no ImageNet weights on this machine")
        else:
            try:
                model = _from_keras(input_shape, pooling)
            except Exception as err:  # Keras' get_file raises a bare Exception when offline
                raise RuntimeError(_unavailable_message(input_shape, err, tried_local=True)) from err
    model.trainable = trainable
    return model


def architecture(input_shape=(224, 224, 3)):
    """MobileNetV2 (alpha=0.35, no top) without weights: the layout checks compare a model with.

    Built once per input shape and process (about a second each time otherwise) and shared: read it
    (``count_params()``, ``layers``, ``get_layer(name).output``), never train or change it.

    Args:
        input_shape: ``(height, width, 3)``, as in :func:`load_mobilenet_v2`.

    Returns:
        The same ``keras.Model`` for the same shape, every call.

    Example:
        >>> architecture((96, 96, 3)).count_params()  # doctest: +SKIP
        410208
    """
    return _architecture(_check_input_shape(input_shape))


@functools.lru_cache(maxsize=4)
def _architecture(input_shape):
    import keras

    return keras.applications.MobileNetV2(alpha=ALPHA, include_top=False, weights=None, input_shape=input_shape)


def weights_source(input_shape=(224, 224, 3), *, profile=None):
    """Which weights ``load_mobilenet_v2(input_shape)`` (``source="auto"``) would use here, without loading them.

    A check that needs ImageNet features (an accuracy threshold, say) asks this first: the stand-in of the
    smoke profile gives features no better than random ones.

    Args:
        input_shape: as in :func:`load_mobilenet_v2` (Keras keeps one weight file per resolution).
        profile: a :class:`~adl_helpers.settings.Profile`, a profile name, or ``None`` for the active profile.

    Returns:
        ``"local"`` (the Teachable Machine export in ``$ADL_DATA_MIRROR`` or the data cache), ``"keras"``
        (Keras' ImageNet weights: the file in ``~/.keras/models/``, or a download in the full profile, which
        may still fail offline) or ``"stand-in"`` (smoke profile, neither file here: random weights).

    Example:
        >>> threshold = 0.0 if weights_source((96, 96, 3)) == "stand-in" else 0.35  # doctest: +SKIP
    """
    input_shape = _check_input_shape(input_shape)
    profile = _resolve_profile(profile)
    if _local_file() is not None:
        return "local"
    if profile.is_smoke and not _keras_file(input_shape).is_file():
        return "stand-in"
    return "keras"


def preprocess(images):
    """Scale pixels from 0..255 to -1..1, the input range the MobileNetV2 weights were trained on.

    The same transform as ``keras.applications.mobilenet_v2.preprocess_input`` (``x / 127.5 - 1``), but it
    never changes its argument in place (Keras' function scales float NumPy arrays in place) and it catches
    the two common mistakes: images already scaled to -1..1 (negative values: an error) and images scaled to
    0..1 (a warning).

    Args:
        images: pixel values 0..255, any shape, e.g. ``(n, height, width, 3)``; a NumPy array or list. A
            TensorFlow tensor (say, inside ``tf.data.Dataset.map``) is passed to Keras' function unchecked.

    Returns:
        A new ``float32`` array of the same shape with values in -1..1 (a tensor for a tensor).

    Example:
        >>> preprocess(np.array([0, 127.5, 255]))
        array([-1.,  0.,  1.], dtype=float32)
    """
    if not isinstance(images, (np.ndarray, list, tuple, int, float, np.number)):
        import keras

        return keras.applications.mobilenet_v2.preprocess_input(images)
    x = np.array(images, dtype="float32")  # a copy
    _check_pixels(x, "preprocess")
    return x / np.float32(127.5) - np.float32(1.0)


def extract_features(model, images, batch_size=32):
    """One feature vector per image: the backbone's output, averaged over the image (GlobalAveragePooling).

    Applies :func:`preprocess` itself, so pass raw pixels. The features are what a linear classifier
    (``sklearn.linear_model.LogisticRegression`` or one ``Dense`` layer) learns from in transfer learning.

    Args:
        model: a backbone from :func:`load_mobilenet_v2` (any ``pooling``).
        images: ``(n, height, width, 3)`` pixel values 0..255, the size the model was built for.
        batch_size: images per forward pass; lower it if memory runs out.

    Returns:
        A ``float32`` NumPy array ``(n, 1280)``.

    Example:
        >>> base_model = load_mobilenet_v2(input_shape=(96, 96, 3))  # doctest: +SKIP
        >>> x = np.random.default_rng(0).integers(0, 256, size=(8, 96, 96, 3))
        >>> extract_features(base_model, x).shape  # doctest: +SKIP
        (8, 1280)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"extract_features: batch_size must be a positive whole number, got {batch_size!r}")
    images = np.asarray(images)
    want = tuple(model.input_shape[1:])
    if images.ndim != 4:
        raise ValueError(
            f"extract_features: images must have shape (n, height, width, channels), got shape {images.shape}"
            + ("; for one image use images[None]" if images.ndim == 3 else "")
        )
    if images.shape[-1] != want[-1]:
        hint = "; for grayscale use np.repeat(images, 3, axis=-1)" if images.shape[-1] == 1 else ""
        raise ValueError(
            f"extract_features: the model takes {want[-1]} channels but images have shape {images.shape}{hint}"
        )
    for got, need in zip(images.shape[1:3], want[:2], strict=True):
        if need is not None and got != need:
            raise ValueError(
                f"extract_features: the model takes {want[0]}x{want[1]} images but images have shape "
                f"{images.shape}; resize them, e.g. keras.ops.image.resize(images, ({want[0]}, {want[1]})), "
                "or build the model with that input_shape"
            )
    x = preprocess(images)
    features = model.predict(x, batch_size=int(batch_size), verbose=0)
    features = np.asarray(features, dtype="float32")
    if features.ndim == 4:
        features = features.mean(axis=(1, 2))
    return features


# ----------------------------------------------------------------------------------------------------
# Private helpers


def _check_input_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3:
        raise ValueError(
            f"load_mobilenet_v2: input_shape must be (height, width, 3), e.g. (96, 96, 3), got {input_shape!r}"
        )
    if shape[2] != 3:
        raise ValueError(
            f"load_mobilenet_v2: input_shape must have 3 channels (RGB), got {input_shape!r}; for grayscale "
            "images use (height, width, 3) and repeat the channel: np.repeat(images, 3, axis=-1)"
        )
    for side in shape[:2]:
        if side is None:
            continue
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < MIN_SIZE:
            raise ValueError(
                f"load_mobilenet_v2: height and width must be whole numbers >= {MIN_SIZE} (or None), got "
                f"input_shape={input_shape!r}; upsample small images, e.g. to (96, 96, 3)"
            )
    return tuple(None if s is None else int(s) for s in shape[:2]) + (3,)


def _resolve_profile(profile):
    if profile is None:
        return get_profile()
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile.strip().lower() in PROFILES:
        return PROFILES[profile.strip().lower()]
    raise ValueError(
        f"load_mobilenet_v2: profile must be a Profile, one of {sorted(PROFILES)}, or None for the active "
        f"profile, got {profile!r}"
    )


def _resolve_source(source):
    """``("auto"|"mirror"|"keras", None)`` or ``("file", path)``."""
    if isinstance(source, str) and source in _SOURCES:
        return source, None
    if isinstance(source, os.PathLike) or (isinstance(source, str) and source.lower().endswith((".h5", ".hdf5"))):
        return "file", pathlib.Path(source).expanduser()
    raise ValueError(
        f"load_mobilenet_v2: source must be 'auto', 'mirror', 'keras', 'stand-in' or a path to a keras_model.h5 "
        f"file, got {source!r}"
    )


def _local_candidates():
    mirror = mirror_dir()
    places = [] if mirror is None else [mirror / MOBILENET_V2_FILE]
    return places + [data_dir() / MOBILENET_V2_FILE]


def _local_candidates_described():
    described = [str(p) for p in _local_candidates()]
    if mirror_dir() is None:
        raw = os.environ.get(MIRROR_ENV, "").strip()
        described.insert(0, f"${MIRROR_ENV} ({'not set' if not raw else repr(raw) + ' is not a folder'})")
    return described


def _local_file():
    return next((p for p in _local_candidates() if p.is_file()), None)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _keras_file_name(input_shape):
    rows, cols = input_shape[:2]
    size = rows if rows == cols and rows in _KERAS_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(ALPHA)}_{size}_no_top.h5"


def _unavailable_message(input_shape, err, tried_local):
    name = _keras_file_name(input_shape)
    local = ""
    if tried_local:
        local = (
            "no local copy of the Teachable Machine export (looked at: "
            + "; ".join(_local_candidates_described())
            + ") and "
        )
    return (
        f"load_mobilenet_v2: no ImageNet weights for MobileNetV2 (alpha={ALPHA}) available: {local}Keras "
        f"could not download its weights ({type(err).__name__}: {err}). Fix one of: "
        f"(1) copy the Teachable Machine export keras_model.h5 (sha256 {MOBILENET_V2_SHA256}) to "
        f"{data_dir() / MOBILENET_V2_FILE}, or set {MIRROR_ENV} to a folder containing {MOBILENET_V2_FILE}; "
        f"(2) go online once so that Keras downloads {_KERAS_BASE_URL}{name} into ~/.keras/models/ "
        "(or put that file there yourself)."
    )


def _keras_file(input_shape):
    """Where Keras keeps its weight file for ``input_shape`` once downloaded."""
    keras_home = pathlib.Path(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")))
    return keras_home / "models" / _keras_file_name(input_shape)


def _from_keras(input_shape, pooling):
    if offline("load_mobilenet_v2") and not _keras_file(input_shape).is_file():
        raise OSError(f"{OFFLINE_ENV}=1 forbids downloading (unset it to let Keras download)")
    import keras

    return keras.applications.MobileNetV2(
        alpha=ALPHA, include_top=False, weights="imagenet", input_shape=input_shape, pooling=pooling
    )


def _standin(input_shape, pooling, why):
    """The architecture with deterministic random weights, announced by one printed line.

    Kernels are drawn from He-normal distributions (standard deviation sqrt(2 / fan_in)) by a NumPy generator
    seeded with STANDIN_SEED, layer after layer in the architecture's order, so the weights do not depend on
    the input size; BatchNormalization layers start as the identity (gamma 1, beta 0, mean 0, variance 1).
    """
    import keras

    model = keras.applications.MobileNetV2(
        alpha=ALPHA, include_top=False, weights=None, input_shape=input_shape, pooling=pooling
    )
    rng = np.random.default_rng(STANDIN_SEED)
    for layer in model.layers:
        if not layer.weights:
            continue
        values = []
        for variable in layer.weights:
            shape = tuple(variable.shape)
            if variable.name == "kernel":
                # Conv2D (kh, kw, in, out): fan_in kh*kw*in; DepthwiseConv2D (kh, kw, in, 1): kh*kw.
                depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
                fan_in = shape[0] * shape[1] * (1 if depthwise else shape[2])
                values.append((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype("float32"))
            elif variable.name in ("gamma", "moving_variance"):
                values.append(np.ones(shape, dtype="float32"))
            else:  # beta, moving_mean
                values.append(np.zeros(shape, dtype="float32"))
        layer.set_weights(values)
    print(
        f"adl_helpers: MobileNetV2 with a STAND-IN for its ImageNet weights ({why}): the same architecture with "
        f"deterministic random weights. Code runs, but the features are not ImageNet features: accuracies are near "
        f"chance. The real weights: {MOBILENET_V2_FILE} in ${MIRROR_ENV}, or the full profile online."
    )
    return model


def _from_h5(path, input_shape, pooling, verify):
    import h5py
    import keras

    if verify:
        actual = _sha256(path)
        if actual != MOBILENET_V2_SHA256:
            raise ValueError(
                f"load_mobilenet_v2: {path} is corrupted or not the expected Teachable Machine export "
                f"(sha256 {actual}, expected {MOBILENET_V2_SHA256}). Replace it with a fresh copy, or pass "
                "source='keras' to use Keras' download, or source=<path to the file> to load another export "
                "without the checksum."
            )
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"load_mobilenet_v2: cannot read {path} as an HDF5 file ({err}); it is truncated or not a Keras "
            ".h5 export. Replace it with a fresh copy of the Teachable Machine keras_model.h5."
        ) from err
    with h5:
        group = _weights_group(h5, path)
        model = keras.applications.MobileNetV2(
            alpha=ALPHA, include_top=False, weights=None, input_shape=input_shape, pooling=pooling
        )
        _copy_weights(model, group, path)
    return model


def _weights_group(h5, path):
    """The group holding one sub-group per backbone layer (``Conv1``, ``bn_Conv1``, ...)."""
    import h5py

    if MOBILENET_V2_H5_GROUP in h5 and "Conv1" in h5[MOBILENET_V2_H5_GROUP]:
        return h5[MOBILENET_V2_H5_GROUP]
    # Other Teachable Machine exports may number their nested model differently.
    weights = h5.get("model_weights")
    if isinstance(weights, h5py.Group):
        for name in weights:
            if isinstance(weights[name], h5py.Group) and "Conv1" in weights[name]:
                return weights[name]
    raise ValueError(
        f"load_mobilenet_v2: {path} has no MobileNetV2 weights: expected a group {MOBILENET_V2_H5_GROUP!r} "
        f"holding layer groups such as 'Conv1' and 'bn_Conv1' (top-level groups: {sorted(h5)}). Is it a "
        "Teachable Machine image-model export (keras_model.h5)?"
    )


def _layer_arrays(layer_group, layer_name, path):
    """``{"kernel": array, "gamma": array, ...}`` from a Keras 2 layer group (``kernel:0`` and the like).

    Keras 2 called a DepthwiseConv2D's kernel ``depthwise_kernel``; Keras 3 calls it ``kernel``.
    """
    import h5py

    arrays = {}

    def collect(name, obj):
        if isinstance(obj, h5py.Dataset):
            key = name.rsplit("/", 1)[-1].split(":", 1)[0]
            key = "kernel" if key == "depthwise_kernel" else key
            if key in arrays:
                raise ValueError(f"load_mobilenet_v2: layer {layer_name!r} in {path} has two {key!r} weights")
            arrays[key] = obj[()]

    layer_group.visititems(collect)
    return arrays


def _copy_weights(model, group, path):
    """Set every weighted layer of ``model`` from ``group``, checking names and shapes. Returns the count."""
    weighted = [layer for layer in model.layers if layer.weights]
    wanted = {layer.name for layer in weighted}
    missing = [layer.name for layer in weighted if layer.name not in group]
    if missing:
        raise ValueError(
            f"load_mobilenet_v2: {path} lacks {len(missing)} of the {len(weighted)} weighted MobileNetV2 "
            f"layers, e.g. layer {missing[0]!r} (missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}). "
            "The file is damaged or not a MobileNetV2 export; replace it with a fresh copy."
        )
    extra = sorted(set(group) - wanted)
    if extra:
        raise ValueError(
            f"load_mobilenet_v2: {path} has layers a MobileNetV2 (alpha={ALPHA}) backbone does not, e.g. "
            f"{extra[:5]}; is it an export of a different model?"
        )
    for layer in weighted:
        arrays = _layer_arrays(group[layer.name], layer.name, path)
        names = [variable.name for variable in layer.weights]
        if sorted(arrays) != sorted(names):
            raise ValueError(
                f"load_mobilenet_v2: layer {layer.name!r} in {path} has weights {sorted(arrays)} but the "
                f"Keras layer needs {names}; the file is damaged or not a MobileNetV2 export"
            )
        values = []
        for variable in layer.weights:
            value = arrays[variable.name]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"load_mobilenet_v2: layer {layer.name!r} weight {variable.name!r} has shape "
                    f"{tuple(value.shape)} in {path} but MobileNetV2 (alpha={ALPHA}) needs "
                    f"{tuple(variable.shape)}; is it an export with a different width (alpha)?"
                )
            values.append(value)
        layer.set_weights(values)
    return len(weighted)


def _check_pixels(x, caller):
    if x.size == 0:
        return
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{caller}: images contain NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0:
        raise ValueError(
            f"{caller}: images must be raw pixels 0..255 but contain negative values (min {low:g}); were they "
            "already preprocessed? Preprocess once."
        )
    if high > 255:
        raise ValueError(f"{caller}: images must be pixels 0..255 but contain values up to {high:g}")
    if 0 < high <= 1:
        warnings.warn(
            f"{caller}: all pixel values are <= 1 (max {high:g}); images scaled to 0..1? MobileNetV2 expects "
            "0..255 here: multiply by 255 first.",
            UserWarning,
            stacklevel=3,
        )
