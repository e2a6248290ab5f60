"""The figures people expect from an autoencoder on MNIST.

Every function takes host or device arrays (CuPy arrays are copied to the host
with :func:`tinyae.backend.to_numpy`), draws with Matplotlib's object-oriented
API (a fresh :class:`~matplotlib.figure.Figure` on an Agg canvas: pyplot and the
global backend are never touched, so an interactive session is left alone),
writes one PNG and returns its path as a ``str``.

Writing is atomic: the PNG goes to a temporary file in the destination folder
(created if missing) and is moved over ``path`` with :func:`os.replace` only
once it is complete; the PNG gets the user's usual permissions (0666 minus the
umask).  Inputs are checked before anything is drawn, so a bad argument raises
:class:`ValueError` and leaves no file behind.

Image grids (``save_image_grid``, ``save_samples``, ``save_filters``) are
written pixel-exactly, without resampling: with N tiles of H×W pixels,
``ncol = min(nrow, N)`` tiles per row, ``rows = ceil(N / ncol)`` rows, padding
``pad`` and magnification ``scale``, the PNG is::

    width  = scale * (ncol * W + (ncol + 1) * pad)
    height = scale * (rows * H + (rows + 1) * pad) + (title_height(dpi) if title else 0)

Tile ``i`` sits at row ``i // ncol``, column ``i % ncol`` (row-major, image 0
top-left), upright: image row 0 is the top of the tile.

Functions: ``save_image_grid``, ``save_reconstructions``, ``save_image_rows``, ``save_samples``,
``save_latent_scatter``, ``save_latent_comparison``, ``save_manifold``, ``save_interpolation``,
``save_loss_curves``, ``save_filters``, ``save_filter_comparison``,
``save_histograms`` and ``save_roc`` (its AUC from :func:`tinyae.metrics.roc_auc`).
"""
from __future__ import annotations

import math
import numbers
import os
import statistics

import numpy as np
from matplotlib import colormaps
from matplotlib import colors as mcolors
from matplotlib import image as mimage
from matplotlib.ticker import MaxNLocator

from . import _files
from .backend import to_numpy
from .metrics import roc_auc, roc_curve
# titles and row labels drawn to pixels, and the exact-size figure they and the plots share
from .pixeltext import new_figure as _new_figure
from .pixeltext import render_text as _render_text
from .pixeltext import text_width as _text_width
from .pixeltext import title_height
from .pixeltext import with_title as _with_title

__all__ = [
    "save_image_grid", "save_reconstructions", "save_samples", "save_latent_scatter",
    "save_manifold", "save_interpolation", "save_loss_curves", "save_filters",
    "save_filter_comparison", "save_histograms", "save_roc", "title_height", "save_image_rows",
    "save_latent_comparison",
]

PAD_COLOR = "#808080"      # grid lines between tiles: visible on black and on white tiles


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

def _prepare_path(path):
    """``path`` as a str, with its parent folder created."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return path


def _atomic_write(path, write):
    """Call ``write(tmp_path)`` for a temp file beside ``path``, then move it over ``path``
    (with the user's usual file permissions).  Leftovers of an earlier, killed write of
    the same figure are removed first, and named on stderr (a write still running in another
    process is left alone: see :func:`tinyae._files.remove_orphans`)."""
    path = _prepare_path(path)
    removed = _files.remove_orphans(path)
    if removed:
        import sys
        print(f"tinyae.plot: removed {', '.join(removed)}: the unfinished write of an interrupted run",
              file=sys.stderr, flush=True)
    return _files.atomic_write(path, write, binary=None)


def _save_figure(fig, path, dpi):
    try:
        return _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    finally:
        fig.clear()   # free the artists now; the Figure is not registered anywhere else


def _save_rgba(rgba, path, dpi):
    """Write a (H, W, 4) uint8 array as a PNG, one array element per pixel."""
    return _atomic_write(path, lambda tmp: mimage.imsave(tmp, rgba, format="png", dpi=dpi))


def _check_dpi(dpi):
    if not isinstance(dpi, numbers.Real) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")


def _fmt(v):
    """A tick label with two decimals and no "-0.00"."""
    return f"{round(float(v), 2) + 0.0:.2f}"


# --------------------------------------------------------------------------
# images → tiles → grid
# --------------------------------------------------------------------------

def _as_images(x, name="images", image_shape=None):
    """Normalise a stack of images to float64 (N, H, W) or (N, H, W, 3).

    Accepted: (N, H, W); (N, D) with D = prod(image_shape) or a perfect square;
    (N, 1, H, W); (N, 3, H, W) (RGB).
    """
    x = np.asarray(to_numpy(x))
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if x.ndim == 2:
        n, d = x.shape
        if image_shape is not None:
            h, w = (int(s) for s in image_shape)
            if h * w != d:
                raise ValueError(f"{name}: rows of length {d} cannot be reshaped to image_shape "
                                 f"{tuple(image_shape)} ({h * w} pixels)")
        else:
            side = math.isqrt(d)
            if side * side != d:
                raise ValueError(f"{name}: got shape {x.shape}; flat images need a square number of "
                                 f"pixels (like 784 = 28×28), {d} is not square")
            h = w = side
        x = x.reshape(n, h, w)
    elif x.ndim == 4:
        if x.shape[1] == 1:
            x = x[:, 0]
        elif x.shape[1] == 3:
            x = np.moveaxis(x, 1, -1)
        else:
            raise ValueError(f"{name}: got shape {x.shape}; 4-D images must be (N, 1, H, W) or "
                             f"(N, 3, H, W), not {x.shape[1]} channels")
    elif x.ndim != 3:
        raise ValueError(f"{name}: got shape {x.shape}; expected (N, H, W), (N, H*W), "
                         "(N, 1, H, W) or (N, 3, H, W)")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no images (shape {x.shape})")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _value_range(images, value_range, name="value_range"):
    if value_range is None:
        lo, hi = float(images.min()), float(images.max())
        if hi <= lo:
            hi = lo + 1.0
        return lo, hi
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) or None, got {value_range!r}") from None
    if not hi > lo:
        raise ValueError(f"{name}: high must be greater than low, got {value_range!r}")
    return lo, hi


def _colorize(images, cmap, vmin, vmax):
    """(N, H, W) → (N, H, W, 4) floats in [0, 1] via a colormap; (N, H, W, 3) RGB just scaled."""
    scaled = np.clip((images - vmin) / (vmax - vmin), 0.0, 1.0)
    if scaled.ndim == 4:   # RGB
        return np.concatenate([scaled, np.ones(scaled.shape[:-1] + (1,))], axis=-1)
    try:
        cm = colormaps[cmap] if isinstance(cmap, str) else cmap
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}") from None
    return np.asarray(cm(scaled), dtype=np.float64)


def _grid_layout(n, nrow):
    """(rows, cols) for n tiles with ``nrow`` tiles per row (torchvision's meaning of nrow)."""
    if not isinstance(nrow, numbers.Integral) or nrow < 1:
        raise ValueError(f"nrow (tiles per row) must be a positive integer, got {nrow!r}")
    cols = min(int(nrow), n)
    return int(math.ceil(n / cols)), cols


def _tile(rgba, nrow, pad=2, pad_color=PAD_COLOR):
    """Tile (N, H, W, 4) RGBA images row-major into one (rows·H + (rows+1)·pad, ...) RGBA image."""
    n, h, w, _ = rgba.shape
    rows, cols = _grid_layout(n, nrow)
    fill = np.asarray(mcolors.to_rgba(pad_color), dtype=np.float64)
    grid = np.empty((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 4))
    grid[...] = fill
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top:top + h, left:left + w] = rgba[i]
    return grid


def _to_uint8(rgba, scale=1):
    """Float RGBA in [0, 1] → uint8, each pixel magnified to a scale×scale block."""
    if not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    out = np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8)
    if scale > 1:
        out = np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)
    return out


def _grid_rgba(images, nrow, cmap, value_range, pad, pad_color, name="images", image_shape=None):
    imgs = _as_images(images, name, image_shape)
    vmin, vmax = _value_range(imgs, value_range)
    if not isinstance(pad, numbers.Integral) or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    return _tile(_colorize(imgs, cmap, vmin, vmax), nrow, pad, pad_color)


# --------------------------------------------------------------------------
# image grids
# --------------------------------------------------------------------------

def save_image_grid(images, path, nrow=8, title=None, cmap="gray", value_range=(0, 1), *,
                    scale=2, pad=2, pad_color=PAD_COLOR, dpi=100):
    """Tile ``images`` into a grid and write it pixel-exactly.

    images: (N, H, W), (N, H*W) with H = W, (N, 1, H, W) or (N, 3, H, W).
    nrow: tiles per row; image 0 is top-left, image nrow-1 top-right.
    value_range: (low, high) mapped to the ends of ``cmap`` (values outside are
    clipped); None uses the data's min and max.

    Output size (see the module docstring): width = scale·(ncol·W + (ncol+1)·pad),
    height = scale·(rows·H + (rows+1)·pad), plus ``title_height(dpi)`` with a title.
    """
    _check_dpi(dpi)
    grid = _to_uint8(_grid_rgba(images, nrow, cmap, value_range, pad, pad_color), scale)
    return _save_rgba(_with_title(grid, title, dpi), path, dpi)


def save_samples(images, path, nrow=8, title=None, dpi=100, **kwargs):
    """Decoded draws from the prior (usually 64) as an 8×8 grid: :func:`save_image_grid`."""
    return save_image_grid(images, path, nrow=nrow, title=title, dpi=dpi, **kwargs)


def save_reconstructions(originals, reconstructions, path, n=8, title=None, noisy=None,
                         row_labels=None, *, cmap="gray", value_range=(0, 1), scale=2, pad=2,
                         dpi=100):
    """Rows of ``n`` images: (noisy input, if given), original, reconstruction.

    Each row is labelled on the left: ("input", "reconstruction"), or ("noisy
    input", "original", "reconstruction") with ``noisy``, or ``row_labels``.
    All arrays take the shapes :func:`save_image_grid` takes and must hold the
    same images (same H, W; at least ``n``, or all of them if fewer).

    Output: the grid of (rows × n) tiles as in :func:`save_image_grid`, with a
    white label column (as wide as the longest label needs) on its left, and
    ``title_height(dpi)`` more pixels on top with a title.
    """
    _check_dpi(dpi)
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    groups = [("originals", originals), ("reconstructions", reconstructions)]
    if noisy is not None:
        groups.insert(0, ("noisy", noisy))
    arrays = [_as_images(a, name) for name, a in groups]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise ValueError("save_reconstructions: image shapes differ: "
                         + ", ".join(f"{name} {a.shape[1:]}" for (name, _), a in zip(groups, arrays)))
    counts = [a.shape[0] for a in arrays]
    k = min(int(n), *counts)
    if row_labels is None:
        row_labels = (["noisy input", "original", "reconstruction"] if noisy is not None
                      else ["input", "reconstruction"])
    row_labels = [str(s) for s in row_labels]
    if len(row_labels) != len(arrays):
        raise ValueError(f"row_labels: {len(row_labels)} labels for {len(arrays)} rows")
    return _save_labelled_rows(arrays, row_labels, k, path, title, cmap, value_range, pad, scale, dpi)


def _save_labelled_rows(arrays, labels, k, path, title, cmap, value_range, pad, scale, dpi):
    """The first ``k`` images of each array as one row, a label column on the left, a title."""
    stack = np.concatenate([a[:k] for a in arrays], axis=0)
    vmin, vmax = _value_range(stack, value_range)
    grid = _to_uint8(_tile(_colorize(stack, cmap, vmin, vmax), nrow=k, pad=pad), scale)
    h = arrays[0].shape[1]
    label_w = max(_text_width(s, dpi) for s in labels) + 12
    centres = [scale * (pad + r * (h + pad) + h / 2) for r in range(len(arrays))]
    text = _render_text(label_w, grid.shape[0],
                        [(label_w - 6, y, s, "right") for y, s in zip(centres, labels)], dpi)
    return _save_rgba(_with_title(np.concatenate([text, grid], axis=1), title, dpi), path, dpi)


def save_image_rows(rows, path, n=None, title=None, *, cmap="gray", value_range=(0, 1), scale=2, pad=2,
                    dpi=100):
    """Labelled rows of images: ``rows`` is a dict {label: images} (or a list of (label, images)),
    drawn top to bottom in that order, the first ``n`` images of each (default: as many as the
    shortest row has).  Every row holds images of the same H×W, in the shapes
    :func:`save_image_grid` takes; one ``value_range`` for all.

    Output: the grid of (len(rows) × n) tiles exactly as :func:`save_image_grid` draws it
    (height scale·(R·H + (R + 1)·pad)), with a white column on its left holding each row's label
    (as wide as the longest label needs) and ``title_height(dpi)`` more pixels on top with a
    title.  :func:`save_reconstructions` is the two- or three-row case.
    """
    _check_dpi(dpi)
    items = list(rows.items()) if isinstance(rows, dict) else [tuple(r) for r in rows]
    if not items or any(len(r) != 2 for r in items):
        raise ValueError("rows must be a non-empty dict {label: images} or a list of (label, images) pairs")
    arrays = [_as_images(images, f"rows[{str(label)!r}]") for label, images in items]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise ValueError("save_image_rows: image shapes differ: "
                         + ", ".join(f"{label!r} {a.shape[1:]}" for (label, _), a in zip(items, arrays)))
    shortest = min(a.shape[0] for a in arrays)
    if n is None:
        n = shortest
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    k = min(int(n), shortest)
    labels = [str(label) for label, _ in items]
    return _save_labelled_rows(arrays, labels, k, path, title, cmap, value_range, pad, scale, dpi)


# --------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------

def _filter_images(weights, name="weights", channel=None):
    """First-layer weights → (F, h, w) filters, each divided by its own max |w|.

    Conv weights (F, C, KH, KW): channel ``channel``, or the mean over C.
    Dense weights (H, D) in PyTorch's (out, in) layout: each row reshaped to √D × √D.
    """
    w = np.asarray(to_numpy(weights), dtype=np.float64)
    if w.ndim == 4:
        if channel is None:
            w = w.mean(axis=1)
        else:
            if not 0 <= channel < w.shape[1]:
                raise ValueError(f"{name}: channel {channel} out of range for {w.shape[1]} channels")
            w = w[:, channel]
    elif w.ndim == 2:
        side = math.isqrt(w.shape[1])
        if side * side != w.shape[1]:
            raise ValueError(f"{name}: dense weights {w.shape} are (out, in); in = {w.shape[1]} is "
                             "not a square number of pixels (pass the first layer's weight, e.g. (H, 784))")
        w = w.reshape(w.shape[0], side, side)
    elif w.ndim != 3:
        raise ValueError(f"{name}: expected conv weights (F, C, KH, KW) or dense weights (H, D), "
                         f"got shape {w.shape}")
    if w.shape[0] == 0:
        raise ValueError(f"{name}: no filters (shape {w.shape})")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    peak = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    peak[peak == 0] = 1.0
    return w / peak[:, None, None]     # in [-1, 1]; 0 stays at the colormap's centre


def _filter_grid(weights, nrow, cmap, name, channel=None, max_filters=None, scale=None):
    """Filters → uint8 RGBA grid: each tile magnified ``scale``× first, then 2-px screen padding."""
    f = _filter_images(weights, name, channel)
    if max_filters is not None:
        f = f[:max_filters]
    if nrow is None:
        nrow = int(math.ceil(math.sqrt(f.shape[0])))
    if scale is None:
        scale = max(1, int(math.ceil(56 / max(f.shape[1:]))))
    tiles = _colorize(f, cmap, -1.0, 1.0)
    if not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    tiles = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)
    return _to_uint8(_tile(tiles, nrow, pad=2))


def save_filters(weights, path, title=None, nrow=None, *, cmap="RdBu_r", channel=None,
                 max_filters=None, scale=None, dpi=100):
    """First-layer filters as a grid, each scaled by its own max |w| (red +, blue −, white 0).

    weights: conv (F, C, KH, KW) (mean over C unless ``channel``) or dense (H, D),
    D = d² (e.g. (H, 784) → 28×28).  nrow: tiles per row (default ceil(√F)).
    Each kh×kw filter is drawn ``scale``× larger (default ceil(56 / max(kh, kw)): a
    5×5 kernel 12×, a 28×28 filter 2×), with 2 screen pixels between tiles:
    width = ncol·scale·kw + (ncol + 1)·2, height = rows·scale·kh + (rows + 1)·2,
    plus ``title_height(dpi)`` with a title.
    """
    _check_dpi(dpi)
    grid = _filter_grid(weights, nrow, cmap, "weights", channel, max_filters, scale)
    return _save_rgba(_with_title(grid, title, dpi), path, dpi)


def save_filter_comparison(weights_a, weights_b, path, labels=("plain", "denoising"), n=16, *,
                           title=None, cmap="RdBu_r", scale=None, dpi=100):
    """The first ``n`` filters of two models, side by side, each panel headed by its label."""
    _check_dpi(dpi)
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if len(labels) != 2:
        raise ValueError(f"labels must be two strings, got {labels!r}")
    nrow = int(math.ceil(math.sqrt(n)))
    panels = []
    for w, name in ((weights_a, "weights_a"), (weights_b, "weights_b")):
        panels.append(_filter_grid(w, nrow, cmap, name, max_filters=int(n), scale=scale))
    panels = [_with_title(p, str(lab), dpi) for p, lab in zip(panels, labels)]
    height = max(p.shape[0] for p in panels)
    gap = max(8, int(round(0.2 * dpi)))
    white = lambda h, w: np.full((h, w, 4), 255, dtype=np.uint8)  # noqa: E731
    panels = [np.concatenate([p, white(height - p.shape[0], p.shape[1])], axis=0) for p in panels]
    out = np.concatenate([panels[0], white(height, gap), panels[1]], axis=1)
    return _save_rgba(_with_title(out, title, dpi), path, dpi)


# --------------------------------------------------------------------------
# decoders: manifold and interpolation
# --------------------------------------------------------------------------

def _decode(decode_fn, z, image_shape):
    out = _as_images(decode_fn(z), "decode_fn output", image_shape)
    if out.shape[0] != z.shape[0]:
        raise ValueError(f"decode_fn returned {out.shape[0]} images for {z.shape[0]} codes")
    return out


def _image_axes(fig, rect_px, fig_w, fig_h):
    l, b, w, h = rect_px
    return fig.add_axes((l / fig_w, b / fig_h, w / fig_w, h / fig_h))


def save_manifold(decode_fn, path, n=15, grid_range=None, image_shape=(28, 28), title=None, *,
                  cmap="gray", value_range=(0, 1), dpi=100):
    """The classic 2-D latent manifold (the Keras VAE figure): decoded images on an n×n grid.

    The grid takes z1 (columns, left → right) and z2 (rows, bottom → top) at the
    standard-normal quantiles ``norm.ppf(linspace(0.05, 0.95, n))``, or at
    ``linspace(lo, hi, n)`` for ``grid_range=(lo, hi)`` (a number r means (-r, r)).
    decode_fn: host array (n*n, 2) float32 → images (n*n, ...) in any shape
    :func:`save_image_grid` takes, flat ones reshaped to ``image_shape``.
    The axes' ticks give the z value of every row and column.
    """
    _check_dpi(dpi)
    if not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    n = int(n)
    if grid_range is None:
        nd = statistics.NormalDist()
        values = np.array([nd.inv_cdf(p) for p in np.linspace(0.05, 0.95, n)])
    else:
        if isinstance(grid_range, numbers.Real):
            grid_range = (-float(grid_range), float(grid_range))
        lo, hi = _value_range(None, grid_range, "grid_range")
        values = np.linspace(lo, hi, n)
    zz1, zz2 = np.meshgrid(values, values[::-1])      # row 0 is the top: the largest z2
    z = np.stack([zz1.ravel(), zz2.ravel()], axis=1).astype(np.float32)
    imgs = _decode(decode_fn, z, image_shape)
    vmin, vmax = _value_range(imgs, value_range)
    h, w = imgs.shape[1:3]
    grid = np.empty((n * h, n * w) + imgs.shape[3:])
    for i in range(n * n):
        r, c = divmod(i, n)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = imgs[i]
    rgba = _colorize(grid[None], cmap, vmin, vmax)[0]

    side = max(360, 2 * n * max(h, w))                 # image area, pixels
    left, bottom, top, right = int(0.75 * dpi), int(0.7 * dpi), int((0.45 if title else 0.15) * dpi), 20
    fig_w, fig_h = left + side + right, bottom + side + top
    fig = _new_figure(fig_w, fig_h, dpi)
    ax = _image_axes(fig, (left, bottom, side, side), fig_w, fig_h)
    ax.imshow(rgba, interpolation="nearest", aspect="auto")
    ax.set_xticks((np.arange(n) + 0.5) * w - 0.5)
    ax.set_xticklabels([_fmt(v) for v in values], rotation=90, fontsize=8)
    ax.set_yticks((np.arange(n) + 0.5) * h - 0.5)
    ax.set_yticklabels([_fmt(v) for v in values[::-1]], fontsize=8)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    if title is not None:
        ax.set_title(str(title))
    return _save_figure(fig, path, dpi)


def save_interpolation(decode_fn, z_start, z_end, path, steps=10, image_shape=(28, 28), title=None,
                       *, cmap="gray", value_range=(0, 1), scale=2, dpi=100):
    """Decoded images along the straight line z(t) = (1 − t)·z_start + t·z_end, t in [0, 1].

    z_start, z_end: codes of the same length k ((k,) or (1, k)).  decode_fn:
    host array (steps, k) float32 → images.  One strip of ``steps`` tiles, t
    under each.
    """
    _check_dpi(dpi)
    if not isinstance(steps, numbers.Integral) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    a = np.asarray(to_numpy(z_start), dtype=np.float64).reshape(-1)
    b = np.asarray(to_numpy(z_end), dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"z_start and z_end must be codes of the same length, got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("z_start / z_end contain NaN or infinite values")
    t = np.linspace(0.0, 1.0, int(steps))
    z = ((1 - t)[:, None] * a + t[:, None] * b).astype(np.float32)
    imgs = _decode(decode_fn, z, image_shape)
    vmin, vmax = _value_range(imgs, value_range)
    pad = 2
    strip = _to_uint8(_tile(_colorize(imgs, cmap, vmin, vmax), nrow=len(t), pad=pad), scale)
    h, w = imgs.shape[1:3]

    sh, sw = strip.shape[:2]
    bottom, top = int(0.55 * dpi), int((0.35 if title else 0.05) * dpi)
    fig_w, fig_h = sw + 20, bottom + sh + top
    fig = _new_figure(fig_w, fig_h, dpi)
    ax = _image_axes(fig, (10, bottom, sw, sh), fig_w, fig_h)
    ax.imshow(strip, interpolation="nearest", aspect="auto")
    ax.set_xticks([scale * (pad + i * (w + pad) + w / 2) - 0.5 for i in range(len(t))])
    ax.set_xticklabels([_fmt(v) for v in t], fontsize=8)
    ax.set_yticks([])
    ax.set_xlabel("t   (z = (1 − t)·z_start + t·z_end)")
    if title is not None:
        ax.set_title(str(title))
    return _save_figure(fig, path, dpi)


# --------------------------------------------------------------------------
# latent codes
# --------------------------------------------------------------------------

def _class_colors(labels):
    """(cmap, n_classes) for integer labels 0..9 (tab10) or up to 19 (tab20)."""
    top = int(labels.max()) if labels.size else 0
    if top < 10:
        return colormaps["tab10"], 10
    if top < 20:
        return colormaps["tab20"], 20
    raise ValueError(f"labels: at most 20 classes can be coloured, got labels up to {top}")


def _codes_and_labels(z, labels, name="z"):
    """Check codes (N, k >= 2) and optional digit labels (N,): (float64 codes, int64 labels or None)."""
    z = np.asarray(to_numpy(z))
    if z.ndim != 2 or z.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a numeric (N, k) array of codes, got shape {z.shape} dtype {z.dtype}")
    z = z.astype(np.float64)
    n, k = z.shape
    if n == 0:
        raise ValueError(f"{name}: no codes (N = 0)")
    if k < 2:
        raise ValueError(f"{name} has k = {k} latent dimension(s); a latent scatter needs k >= 2")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if labels is not None:
        labels = np.asarray(to_numpy(labels))
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape (N,) = ({n},) to match {name} {z.shape}, "
                             f"got {labels.shape}")
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        if labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
            raise ValueError(f"labels must be non-negative integers (digit classes), got dtype "
                             f"{labels.dtype}")
        labels = labels.astype(np.int64)
    return z, labels


def _scatter_by_digit(ax, coords, labels, legend, kw):
    """Points coloured by digit (tab10); ``legend``: one scatter per digit, each labelled for a
    legend (the last digit drawn on top); else one scatter for a colour bar (returned)."""
    if labels is None:
        return ax.scatter(*coords.T, color="tab:blue", **kw)
    cmap, n_classes = _class_colors(labels)
    if legend:
        for c in np.unique(labels):
            ax.scatter(*coords[labels == c].T, color=cmap(int(c)), label=str(int(c)), **kw)
        return None
    norm = mcolors.BoundaryNorm(np.arange(n_classes + 1) - 0.5, n_classes)
    return ax.scatter(*coords.T, c=labels, cmap=cmap, norm=norm, **kw)


def _digit_legend(ax, title="digit"):
    """A legend right of ``ax`` (of a 3-D axes: clear of its z label), one opaque, enlarged
    marker per digit."""
    x = 1.1 if hasattr(ax, "get_zlim") else 1.02
    leg = ax.legend(title=title, loc="upper left", bbox_to_anchor=(x, 1.0), borderaxespad=0.0,
                    markerscale=3.0, frameon=False, handletextpad=0.2)
    for handle in getattr(leg, "legend_handles", None) or getattr(leg, "legendHandles", []):
        handle.set_alpha(1.0)
    return leg


def save_latent_scatter(z, labels, path, title=None, *, s=5.0, alpha=0.7, legend=False, dpi=100):
    """Codes ``z`` (N, k) coloured by digit label (N,) with the discrete tab10 colormap.

    k = 2: a 2-D scatter (z1, z2); k = 3: a 3-D scatter (z1, z2, z3); k > 3: the
    first two principal components of z (the axis labels say so, with the share
    of variance each explains).  A colour bar has ticks 0–9, or with ``legend=True``
    a legend has one entry per digit (the 14×14 chapter's figure; each digit's points
    drawn in turn, so the last digit lies on top).  ``labels=None`` draws every point
    in one colour.  Size: 720×560 pixels for k = 3, 640×560 otherwise.
    """
    _check_dpi(dpi)
    z, labels = _codes_and_labels(z, labels)
    n, k = z.shape

    if k > 3:
        centred = z - z.mean(axis=0)
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        var = sv ** 2
        share = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
        coords = _pad_columns(centred @ vt[:2].T, 2)       # fewer than 2 codes: one component, or none
        share = np.concatenate([share, np.zeros(2)])
        axis_labels = [f"PC{i + 1} of z ({k}-D; {100 * share[i]:.0f}% of variance)" for i in range(2)]
    else:
        coords = z
        axis_labels = [f"z{i + 1}" for i in range(k)]

    fig = _new_figure(720 if k == 3 else 640, 560, dpi)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(projection="3d" if k == 3 else None)
    kw = dict(s=s, alpha=alpha, linewidths=0)
    sc = _scatter_by_digit(ax, coords, labels, legend, kw)
    if labels is not None and legend:
        _digit_legend(ax)
    elif labels is not None:
        cbar = fig.colorbar(sc, ax=ax, ticks=np.arange(_class_colors(labels)[1]),
                            shrink=0.7 if k == 3 else 1.0)
        cbar.set_label("label")
        cbar.solids.set_alpha(1)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if k == 3:
        ax.set_zlabel(axis_labels[2])
    if title is not None:
        ax.set_title(str(title))
    return _save_figure(fig, path, dpi)


def save_latent_comparison(codes, labels, path, titles=None, title=None, *, s=5.0, alpha=0.7,
                           legend=True, dpi=100):
    """The latent spaces of several models side by side, **on the same axes**.

    codes: a list of P arrays (N, k), one per model, all with the same k = 2 or 3 and the
    same N — row i of each the code of the same input (e.g. the AE's codes and the VAE's
    means μ of the same test digits).  labels: (N,) digit labels or None.  titles: one per
    panel.  Every panel gets the same limits on each coordinate — the range of all panels'
    codes on it, 5 % margin — and 3-D panels the same view, so a compact latent space looks
    compact beside a spread one (the 14×14 chapter's AE-vs-VAE argument).  A legend per digit
    beside the last panel (``legend=False``: a colour bar).  Size: 640·P × 560 pixels.
    """
    _check_dpi(dpi)
    if isinstance(codes, np.ndarray) or not isinstance(codes, (list, tuple)) or not codes:
        raise ValueError("codes must be a non-empty list of (N, k) arrays, one per model")
    shapes = {np.shape(to_numpy(z)) for z in codes}
    if len(shapes) != 1:
        raise ValueError(f"codes: every model's codes must have the same shape (the same N inputs, the same "
                         f"k), got {sorted(shapes)}")
    checked = [_codes_and_labels(z, labels, f"codes[{i}]") for i, z in enumerate(codes)]
    n, k = checked[0][0].shape
    if k > 3:
        raise ValueError(f"codes have k = {k} dimensions; save_latent_comparison draws 2-D or 3-D codes "
                         "(project them first, the same projection for every model)")
    labels = checked[0][1]
    titles = [None] * len(checked) if titles is None else [str(t) for t in titles]
    if len(titles) != len(checked):
        raise ValueError(f"titles: {len(titles)} titles for {len(checked)} panels")
    every = np.concatenate([z for z, _ in checked])
    lo, hi = every.min(axis=0), every.max(axis=0)
    margin = 0.05 * np.maximum(hi - lo, 1e-12)
    lo, hi = lo - margin, hi + margin

    fig = _new_figure(640 * len(checked), 560, dpi)
    fig.set_layout_engine("constrained")
    kw = dict(s=s, alpha=alpha, linewidths=0)
    for i, ((z, _), name) in enumerate(zip(checked, titles)):
        ax = fig.add_subplot(1, len(checked), i + 1, projection="3d" if k == 3 else None)
        sc = _scatter_by_digit(ax, z, labels, legend, kw)
        for axis, a, b, label in zip("xyz", lo, hi, ("z1", "z2", "z3")):
            getattr(ax, f"set_{axis}lim")(a, b)
            getattr(ax, f"set_{axis}label")(label)
            getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(5))     # tick labels that do not collide
        if name is not None:
            ax.set_title(name)
        if i == len(checked) - 1 and labels is not None:
            if legend:
                _digit_legend(ax)
            else:
                cbar = fig.colorbar(sc, ax=ax, ticks=np.arange(_class_colors(labels)[1]),
                                    shrink=0.7 if k == 3 else 1.0)
                cbar.set_label("label")
                cbar.solids.set_alpha(1)
    if title is not None:
        fig.suptitle(str(title))
    return _save_figure(fig, path, dpi)


# --------------------------------------------------------------------------
# curves and histograms
# --------------------------------------------------------------------------

_SPLITS = ("train_", "test_", "val_")


def _history_columns(history):
    """list of per-epoch dicts (or a dict of lists) → (epochs, {key: float array with NaN gaps})."""
    if isinstance(history, dict):
        lengths = {len(v) for v in history.values()}
        if len(lengths) > 1:
            raise ValueError("history: as a dict of lists, every list must have the same length")
        m = lengths.pop() if lengths else 0
        history = [{key: vals[i] for key, vals in history.items()} for i in range(m)]
    history = list(history)
    if not history:
        raise ValueError("history is empty: nothing to plot")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise ValueError(f"history[{i}] must be a dict like {{'epoch': 1, 'train_loss': ...}}, "
                             f"got {type(row).__name__}")
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)], dtype=np.float64)
    keys = []
    for row in history:
        for key in row:
            if key not in keys:
                keys.append(key)
    cols = {}
    for key in keys:
        vals = []
        for row in history:
            v = row.get(key)
            try:
                v = float(to_numpy(v)) if v is not None and not isinstance(v, (str, bool)) else None
            except (TypeError, ValueError):
                v = None
            vals.append(np.nan if v is None else v)
        cols[key] = np.array(vals)
    return epochs, cols


def save_loss_curves(history, path, title=None, keys=None, logy=False, *, dpi=100):
    """Loss per epoch.

    history: a list of per-epoch dicts ``{"epoch": 1, "train_loss": ..., "test_loss": ...}``
    (or a dict of equal-length lists).  Plotted: every numeric key starting with
    ``train_``, ``test_`` or ``val_``, or the given ``keys``.  One colour per
    quantity (``loss``, ``recon``, ``kl`` …): train solid, test/val dashed.  An
    epoch missing a key leaves a gap.  x = "epoch" (1, 2, … if absent).
    """
    _check_dpi(dpi)
    epochs, cols = _history_columns(history)
    if keys is None:
        keys = [k for k in cols if k.startswith(_SPLITS) and np.any(np.isfinite(cols[k]))]
        if not keys:
            raise ValueError(f"history has no numeric train_*/test_* keys to plot (keys: {sorted(cols)})")
    else:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if k not in cols or not np.any(np.isfinite(cols[k]))]
        if missing:
            raise ValueError(f"keys {missing} have no numeric values in history (keys: {sorted(cols)})")

    def quantity(key):
        for p in _SPLITS:
            if key.startswith(p):
                return key[len(p):]
        return key

    palette = colormaps["tab10"].colors
    colour_of = {}
    for key in keys:
        colour_of.setdefault(quantity(key), palette[len(colour_of) % len(palette)])

    fig = _new_figure(720, 480, dpi)
    ax = fig.add_subplot()
    for key in keys:
        y = cols[key]
        ok = np.isfinite(y)
        style = "--" if key.startswith(("test_", "val_")) else "-"
        ax.plot(epochs[ok], y[ok], linestyle=style, color=colour_of[quantity(key)], label=key,
                marker="o" if len(epochs) <= 30 else None, markersize=3)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title is not None:
        ax.set_title(str(title))
    fig.tight_layout()
    return _save_figure(fig, path, dpi)


def save_histograms(groups, path, bins=50, title=None, xlabel="value", ylabel="count", logy=False,
                    *, density=False, dpi=100):
    """Overlaid step histograms of several groups, one legend entry each.

    groups: dict label → array (flattened), e.g. {"digit 0": scores0, "others": scores1}.
    With an integer ``bins`` every group shares the same edges over the pooled range.
    """
    _check_dpi(dpi)
    if not isinstance(groups, dict) or not groups:
        raise ValueError("groups must be a non-empty dict: label → 1-D array of values")
    data = {}
    for label, values in groups.items():
        v = np.asarray(to_numpy(values))
        if v.dtype.kind not in "fiub":
            raise ValueError(f"groups[{label!r}]: expected numbers, got dtype {v.dtype}")
        v = v.astype(np.float64).ravel()
        if v.size == 0:
            raise ValueError(f"groups[{label!r}] is empty")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"groups[{label!r}] contains NaN or infinite values")
        data[str(label)] = v
    if isinstance(bins, numbers.Integral):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        pooled = np.concatenate(list(data.values()))
        lo, hi = pooled.min(), pooled.max()
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, int(bins) + 1)

    fig = _new_figure(720, 480, dpi)
    ax = fig.add_subplot()
    for label, v in data.items():
        ax.hist(v, bins=bins, histtype="step", linewidth=1.5, label=label, density=density)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    if title is not None:
        ax.set_title(str(title))
    fig.tight_layout()
    return _save_figure(fig, path, dpi)


# --------------------------------------------------------------------------
# ROC (the numbers come from tinyae.metrics)
# --------------------------------------------------------------------------

def save_roc(scores, is_anomaly, path, title=None, *, dpi=100):
    """ROC curve of anomaly ``scores`` (higher = more anomalous) against ``is_anomaly``.

    Returns ``(path, auc)`` with auc = :func:`tinyae.metrics.roc_auc` (shown in the legend).
    """
    _check_dpi(dpi)
    auc = roc_auc(scores, is_anomaly)
    fpr, tpr = roc_curve(scores, is_anomaly)
    fig = _new_figure(560, 520, dpi)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, color="tab:blue", linewidth=2, label=f"ROC (AUC = {auc:.4f})")
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance (AUC = 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    if title is not None:
        ax.set_title(str(title))
    fig.tight_layout()
    return _save_figure(fig, path, dpi), auc


# --------------------------------------------------------------------------
# the Keras tutorials' figures: per-coordinate code histograms, KernelPCA of the
# codes, the reconstruction-progress animation
# --------------------------------------------------------------------------

def _codes(codes, name="codes"):
    z = np.asarray(to_numpy(codes))
    if z.ndim != 2 or z.dtype.kind not in "fiu" or z.shape[0] == 0:
        raise ValueError(f"{name} must be a numeric (N, k) array with N >= 1, got shape {z.shape} "
                         f"dtype {z.dtype}")
    z = z.astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return z


def _digit_labels(labels, n):
    labels = np.asarray(to_numpy(labels))
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},) to match the codes, got {labels.shape}")
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
        raise ValueError(f"labels must be non-negative integers (digit classes), got dtype {labels.dtype}")
    return labels.astype(np.int64)


def save_code_histograms(codes, path, bins=40, ncols=4, title=None, *, dpi=100):
    """One histogram per code coordinate, in a grid (``ncols`` per row), as the tutorial
    shows the distribution of each of the 16 code values.

    codes: (N, k).  Output: 200·ncols × (160·rows + 40 with a title) pixels at ``dpi`` = 100
    (rows = ceil(k / ncols)); each panel is titled ``z<j>`` with its mean and std.
    """
    _check_dpi(dpi)
    z = _codes(codes)
    k = z.shape[1]
    if not isinstance(ncols, numbers.Integral) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if not isinstance(bins, numbers.Integral) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    ncols = min(int(ncols), k)
    rows = math.ceil(k / ncols)
    top = 40 if title is not None else 0
    fig = _new_figure(200 * ncols, 160 * rows + top, dpi)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(rows, ncols, squeeze=False)
    for j in range(rows * ncols):
        ax = axes[j // ncols][j % ncols]
        if j >= k:
            ax.set_axis_off()
            continue
        ax.hist(z[:, j], bins=int(bins), color="tab:blue")
        ax.set_title(f"z{j + 1}: mean {z[:, j].mean():.2f}, std {z[:, j].std():.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(3))
    if title is not None:
        fig.suptitle(str(title))
    return _save_figure(fig, path, dpi)


def kernel_pca(codes, n_components=2, kernel="rbf", gamma=None, seed=0):
    """scikit-learn's ``KernelPCA(n_components, kernel, gamma)`` fitted to ``codes`` (N, k);
    returns the (N, n_components) projection (scikit-learn is a dependency of tinyae);
    gamma=None is scikit-learn's 1/k."""
    try:
        from sklearn.decomposition import KernelPCA
    except ImportError as exc:
        raise ImportError("the KernelPCA figures need scikit-learn (a dependency of tinyae): "
                          f"pip install scikit-learn ({exc})") from None
    z = _codes(codes)
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3 (a 2-D or 3-D scatter), got {n_components!r}")
    kpca = KernelPCA(n_components=n_components, kernel=kernel, gamma=gamma, random_state=seed)
    return _pad_columns(kpca.fit_transform(z), n_components)   # a handful of codes gives fewer


def _pad_columns(coords, n):
    """``coords`` (N, m) with zero columns added up to n: a projection of very few points has
    fewer components than asked for, and the figure draws them at 0 on the missing axes."""
    coords = np.asarray(coords, dtype=np.float64).reshape(len(coords), -1)
    if coords.shape[1] >= n:
        return coords
    return np.concatenate([coords, np.zeros((len(coords), n - coords.shape[1]))], axis=1)


def save_kernel_pca(codes, labels, path, n_components=2, kernel="rbf", gamma=None, title=None, *,
                    s=6.0, alpha=0.8, dpi=100):
    """KernelPCA of the codes (usually 3,000 training codes) in 2-D or 3-D, one colour per
    digit (tab10) and a legend "0" … "9".

    Output: 640 × 560 pixels (2-D) or 760 × 620 (3-D) at ``dpi`` = 100.
    """
    _check_dpi(dpi)
    z = _codes(codes)
    labels = _digit_labels(labels, z.shape[0])
    coords = kernel_pca(z, n_components, kernel, gamma)
    cmap, _ = _class_colors(labels)
    three = n_components == 3
    fig = _new_figure(760 if three else 640, 620 if three else 560, dpi)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(projection="3d" if three else None)
    for d in np.unique(labels):
        pts = coords[labels == d]
        ax.scatter(*pts.T, s=s, alpha=alpha, linewidths=0, color=cmap(int(d)), label=str(d))
    name = f"{kernel} KernelPCA" if gamma is None else f"{kernel} KernelPCA (γ = {gamma:g})"
    ax.set_xlabel(f"{name} 1")
    ax.set_ylabel(f"{name} 2")
    if three:
        ax.set_zlabel(f"{name} 3")
    ax.legend(title="digit", markerscale=2.5, fontsize=8, loc="upper left",
              bbox_to_anchor=(1.02, 1.0) if not three else (1.05, 1.0))
    if title is not None:
        ax.set_title(str(title))
    return _save_figure(fig, path, dpi)


def save_reconstruction_animation(originals, frames, path, fps=2, *, value_range=(0, 1), scale=2, pad=2,
                                  dpi=100):
    """An animated GIF of the reconstructions getting better: frame i shows the originals
    (top row) over their reconstructions at stage i, titled with the stage's label.

    frames: a dict {epoch: reconstructions} (titled "epoch <e>") or a list of
    (label, reconstructions); every reconstruction array holds the same images as
    ``originals`` (shapes as :func:`save_image_grid` takes).  Written through matplotlib's
    Pillow writer (:class:`matplotlib.animation.PillowWriter`), ``fps`` frames a second, looping.
    Each frame is the :func:`save_image_grid` grid of 2 rows × n tiles plus a title band:
    width = scale·(n·W + (n+1)·pad), height = scale·(2·H + 3·pad) + title_height(dpi).
    """
    _check_dpi(dpi)
    from matplotlib.animation import PillowWriter

    class _GifWriter(PillowWriter):
        """PillowWriter that names the format, so the temporary file needs no .gif suffix."""

        def finish(self):
            self._frames[0].save(self.outfile, format="GIF", save_all=True, append_images=self._frames[1:],
                                 duration=int(1000 / self.fps), loop=0)

    if not isinstance(fps, numbers.Real) or not fps > 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    items = [(f"epoch {k}", v) for k, v in frames.items()] if isinstance(frames, dict) else list(frames)
    if not items:
        raise ValueError("frames is empty: give at least one stage's reconstructions")
    orig = _as_images(originals, "originals")
    rgba = []
    for label, recon in items:
        rec = _as_images(recon, f"reconstructions at {label!r}")
        if rec.shape != orig.shape:
            raise ValueError(f"reconstructions at {label!r} have shape {rec.shape}, the originals {orig.shape}")
        stack = np.concatenate([orig, rec])
        vmin, vmax = _value_range(stack, value_range)
        grid = _to_uint8(_tile(_colorize(stack, "gray", vmin, vmax), nrow=len(orig), pad=pad), scale)
        rgba.append(_with_title(grid, str(label), dpi))
    h, w = rgba[0].shape[:2]
    fig = _new_figure(w, h, dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    im = ax.imshow(rgba[0], interpolation="nearest", aspect="auto")

    def write(tmp):
        writer = _GifWriter(fps=fps)
        with writer.saving(fig, tmp, dpi):
            for frame in rgba:
                im.set_data(frame)
                writer.grab_frame()

    try:
        return _atomic_write(path, write)
    finally:
        fig.clear()


__all__ += ["save_code_histograms", "kernel_pca", "save_kernel_pca", "save_reconstruction_animation"]
