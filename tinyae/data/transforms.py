"""Transforms: plain functions on host NumPy arrays (float32 out); the random ones take a
seeded ``numpy.random.Generator`` (a :class:`~tinyae.data.DataLoader` passes one per epoch).
The noise transforms also take a device (CuPy) batch and return it on its device, the noise
drawn on the host from ``rng`` (so one seed gives the same noise on both backends)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import get_array_module


def _positive_int(name, value, where):
    """``value`` as an int if it is a whole number >= 1 (not a bool, float or string), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r} "
                         f"({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer (>= 1), got {value}")
    return int(value)


def to_float(images, range="unit"):
    """Pixels as float32 in [0, 1] (``range="unit"``) or [-1, 1] (``"symmetric"``).

    uint8 (or other integer) pixels 0-255 are divided by 255.  Float input is taken to be
    in [0, 1] already and is not divided again; float values outside [0, 1] (for example
    0-255 floats, or NaN) raise :class:`ValueError`, as do integers outside 0-255 and booleans.
    """
    if range not in ("unit", "symmetric"):
        raise ValueError(f"to_float: range must be 'unit' or 'symmetric', got {range!r}")
    a = np.asarray(images)
    kind = a.dtype.kind
    if kind == "f":
        x = a.astype(np.float32)
        if x.size and not (np.all(x >= 0) and np.all(x <= 1)):
            bad = "NaN" if np.isnan(x).any() else f"min {float(np.nanmin(x)):g}, max {float(np.nanmax(x)):g}"
            raise ValueError(f"to_float: float images must already be in [0, 1], got {a.dtype} values with "
                             f"{bad}. to_float scales uint8 pixels (0-255): pass those (call to_float "
                             "before resize, which keeps the 0-255 scale), or divide by 255 yourself")
    elif kind in "ui":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"to_float: integer pixels must be in 0-255, got {a.dtype} values from "
                             f"{a.min()} to {a.max()}")
        x = a.astype(np.float32) / np.float32(255)
    else:
        raise ValueError(f"to_float: expected uint8 pixels (0-255) or floats in [0, 1], got dtype "
                         f"{a.dtype}")
    if range == "unit":
        return x
    return x * np.float32(2) - np.float32(1)


def resize(images, size=14):
    """Resize ``(..., H, W)`` images to ``(..., size, size)`` by area averaging, as float32.

    Each output pixel is the mean of the input area it covers, so ink is
    neither lost nor moved: the digit stays centred.  An exact shrink (28 -> 14)
    is plain 2 x 2 block averaging.  The values keep their scale (uint8 input gives
    floats in 0-255).  ``size`` must be a positive integer.
    """
    size = _positive_int("size", size, "resize")
    x = np.asarray(images, dtype=np.float32)
    if x.ndim < 2:
        raise ValueError(f"resize: expected images of shape (..., H, W), got shape {x.shape}")
    h, w = x.shape[-2:]
    if h % size == 0 and w % size == 0:
        kh, kw = h // size, w // size
        return x.reshape(*x.shape[:-2], size, kh, size, kw).mean(axis=(-3, -1))
    return _area_weights(h, size) @ x @ _area_weights(w, size).T


def _area_weights(n_in, n_out):
    """(n_out, n_in) matrix: row j holds the share of each input pixel in output pixel j."""
    edges = np.arange(n_out + 1) * (n_in / n_out)           # output pixel borders, in input pixels
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / (n_in / n_out)).astype(np.float32)


def flatten(images):
    """``(N, ...)`` -> ``(N, prod(...))``, e.g. (N, 28, 28) -> (N, 784)."""
    x = np.asarray(images)
    if x.ndim == 0:
        raise ValueError("flatten: expected images (N, ...), got a 0-d array")
    return x.reshape(len(x), math.prod(x.shape[1:]))      # (-1 cannot be worked out for N = 0)


def gaussian_noise(x, std, rng, clip=(0.0, 1.0)):
    """``x`` plus N(0, std^2) noise drawn from ``rng`` (for denoising); clipped unless ``clip=None``."""
    if isinstance(std, bool) or not isinstance(std, numbers.Real) or not (math.isfinite(std) and std >= 0):
        raise ValueError(f"gaussian_noise: std must be a finite number >= 0, got {std!r}")
    xp = get_array_module(x)           # a device batch stays on its device (noise drawn on the host)
    x = xp.asarray(x, dtype=np.float32)
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    noisy = x + np.float32(std) * (noise if xp is np else xp.asarray(noise))
    return noisy if clip is None else xp.clip(noisy, clip[0], clip[1])


def dropout_noise(x, p, rng):
    """``x`` with each value set to 0 with probability ``p`` (masking noise; no rescaling)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    xp = get_array_module(x)           # a device batch stays on its device (mask drawn on the host)
    x = xp.asarray(x, dtype=np.float32)
    keep = rng.random(x.shape) >= p
    return x * (keep if xp is np else xp.asarray(keep))


def random_rotate_flip(images, rng, max_degrees=10.0, flip_prob=0.5, fill=0.0):
    """Rotate each image by a random angle in [-max_degrees, max_degrees] about its centre
    (positive = counter-clockwise, as ``scipy.ndimage.rotate``), then mirror it left-right
    with probability ``flip_prob``.

    ``images``: ``(N, H, W)`` or ``(N, C, H, W)`` (the channels of one image move
    together).  Bilinear, same size as the input (like
    ``scipy.ndimage.rotate(..., reshape=False, order=1)``), all images in one
    ``map_coordinates`` call; pixels from outside the image get ``fill``.
    """
    from scipy import ndimage
    for name, value, ok, wants in (("max_degrees", max_degrees, lambda v: v >= 0, "a finite number >= 0"),
                                   ("flip_prob", flip_prob, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
                                   ("fill", fill, lambda v: True, "a finite number")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or not ok(value):
            raise ValueError(f"random_rotate_flip: {name} must be {wants}, got {value!r}")
    x = np.asarray(images, dtype=np.float32)
    if x.ndim not in (3, 4):
        raise ValueError(f"random_rotate_flip: expected images (N, H, W) or (N, C, H, W), got shape "
                         f"{x.shape}; reshape flattened images first, e.g. x.reshape(-1, 28, 28)")
    n, (h, w) = len(x), x.shape[-2:]
    stack = x.reshape(-1, h, w)                       # (N*C, H, W)
    per_image = len(stack) // max(n, 1)
    theta = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n)).repeat(per_image)
    flip = (rng.random(n) < flip_prob).repeat(per_image)
    # For every output pixel (r, c) find where it comes from in the input:
    # undo the flip, then rotate back by -theta about the centre.
    r, c = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    c = np.where(flip[:, None, None], (w - 1) - c, c)           # (M, H, W)
    dy, dx = r - cy, c - cx
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    src_r = cy + cos * dy + sin * dx
    src_c = cx - sin * dy + cos * dx
    index = np.broadcast_to(np.arange(len(stack), dtype=np.float64)[:, None, None], src_r.shape)
    out = ndimage.map_coordinates(stack, [index, src_r, src_c], order=1, mode="constant", cval=fill)
    return out.astype(np.float32).reshape(x.shape)
