"""Helpers shared by the convolution and pooling layers: argument parsing, padding,
im2col / col2im and the three convolution kernels (forward, backward-data, backward-weight).

Shapes use the CS231n names::

    N  batch          C  input channels     H, W    input height, width
    F  filters        KH, KW  kernel        OH, OW  output height, width
    SH, SW  stride    (PT, PB, PL, PR)  padding top, bottom, left, right
    Hp = PT + H + PB,  Wp = PL + W + PR       the padded input
    OH = (Hp - KH) // SH + 1,  OW = (Wp - KW) // SW + 1

Layout.  Layers take and return NCHW arrays (as PyTorch does).  *Inside* the
convolution kernels we move the batch axis last, the "CHWN" layout ``(C, H, W, N)``:

* every strided slice ``xpad[:, i:i+SH*OH:SH, j:j+SW*OW:SW, :]`` that im2col copies
  is then made of contiguous runs of N (or OW*N) numbers instead of runs of OW,
  which made im2col about 2× and col2im about 4× faster at MNIST sizes (OW = 14, 28);
* the im2col matrix ``cols`` of shape (C*KH*KW, OH*OW*N) puts the batch next to the
  output pixels, so the whole layer is one matrix product (F, C*KH*KW) @ (C*KH*KW,
  OH*OW*N) instead of N small ones.

The price is one transpose of the input and one of the output per call, each the
size of a feature map (KH*KW times smaller than ``cols``).

Bands.  ``cols`` is built and multiplied a band of output rows at a time (about
``BAND_BYTES``), which keeps it in cache; the product is the same, split by columns.

Everything goes through ``xp = get_array_module(x)``, so the same code runs on
NumPy and CuPy, and every buffer is created with the input's dtype (float32 stays
float32).
"""
from __future__ import annotations

import functools
import math
import numbers
import threading

from ..backend import get_array_module

__all__ = [
    "pair", "check_positive", "same_padding", "resolve_padding", "conv_output_size",
    "to_chwn", "from_chwn", "pad_chwn", "pad_nchw", "window_slices", "im2col", "col2im",
    "BAND_BYTES", "band_buffer", "row_bands", "band_input_rows", "im2col_bands",
    "conv2d_chwn", "conv2d_forward", "conv2d_backward", "conv2d_backward_data", "conv2d_backward_weight",
    "im2col_nbytes",
]


# ---------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------
def pair(value, what: str, layer: str):
    """``value`` as a pair of Python ints: ``3 -> (3, 3)``, ``(3, 5) -> (3, 5)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")


def check_positive(values, what: str, layer: str, allow_zero: bool = False):
    """Raise a ValueError naming ``layer`` unless every entry of ``values`` is > 0 (>= 0)."""
    bad = [v for v in values if (v < 0 if allow_zero else v <= 0)]
    if bad:
        need = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{layer}: {what} must be {need}, got {tuple(values)}")
    return tuple(values)


def same_padding(kh: int, kw: int):
    """Padding (PT, PB, PL, PR) that keeps H×W unchanged for a stride-1 convolution.

    The total padding along a side is K - 1.  For odd K that splits evenly; for even K
    the extra row/column goes to the bottom/right, as Keras' ``padding='same'`` does
    (K = 6: 2 rows on top, 3 at the bottom).
    """
    return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2


def resolve_padding(padding, kernel, stride, layer: str):
    """(PT, PB, PL, PR) from an int, a pair (symmetric), "valid" or "same" (stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise ValueError(f"{layer}: padding='same' needs stride 1, got stride {tuple(stride)}; "
                                 "give the padding as numbers for a strided convolution")
            return same_padding(*kernel)
        raise ValueError(f"{layer}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = check_positive(pair(padding, "padding", layer), "padding", layer, allow_zero=True)
    return ph, ph, pw, pw


def conv_output_size(layer: str, in_hw, kernel, stride, pads):
    """(OH, OW) of a sliding window, or a ValueError naming the layer and the numbers
    when the kernel does not fit in the padded input."""
    (h, w), (kh, kw), (sh, sw) = in_hw, kernel, stride
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, w + pl + pr
    if kh > hp or kw > wp:
        raise ValueError(f"{layer}: kernel size ({kh}, {kw}) is larger than the padded input ({hp}, {wp}) "
                         f"(input {h}×{w} plus padding {pads} as (top, bottom, left, right))")
    return (hp - kh) // sh + 1, (wp - kw) // sw + 1


def im2col_nbytes(c, kh, kw, oh, ow, n, dtype) -> int:
    """Bytes of the im2col buffer ``cols`` (C*KH*KW rows of OH*OW*N numbers)."""
    import numpy  # host-side arithmetic only
    return int(c * kh * kw * oh * ow * n * numpy.dtype(dtype).itemsize)


# ---------------------------------------------------------------------------
# layout changes and padding
# ---------------------------------------------------------------------------
def _pad_hw(a, pads, value, h_axis):
    """A copy of ``a`` with axes h_axis, h_axis + 1 (H and W) padded by (PT, PB, PL, PR) with ``value``."""
    xp = get_array_module(a)
    pt, pb, pl, pr = pads
    shape = list(a.shape)
    h, w = shape[h_axis], shape[h_axis + 1]
    shape[h_axis:h_axis + 2] = h + pt + pb, w + pl + pr
    out = xp.full(tuple(shape), value, dtype=a.dtype)
    inner = [slice(None)] * a.ndim
    inner[h_axis:h_axis + 2] = slice(pt, pt + h), slice(pl, pl + w)
    out[tuple(inner)] = a
    return out


def to_chwn(x, pads=(0, 0, 0, 0), value=0):
    """NCHW ``x`` -> padded CHWN copy of shape (C, Hp, Wp, N), borders filled with ``value``
    (one copy: the transposed view is written straight into the padded array)."""
    if not any(pads):
        return get_array_module(x).ascontiguousarray(x.transpose(1, 2, 3, 0))
    return _pad_hw(x.transpose(1, 2, 3, 0), pads, value, h_axis=1)


def pad_chwn(a, pads, value=0):
    """Pad the H and W axes of a CHWN array (a copy; returns ``a`` itself for zero padding)."""
    return _pad_hw(a, pads, value, h_axis=1) if any(pads) else a


def pad_nchw(x, pads, value=0):
    """Pad the H and W axes of an NCHW array with ``value`` (returns ``x`` itself for zero padding)."""
    return _pad_hw(x, pads, value, h_axis=2) if any(pads) else x


def from_chwn(a, crop=(0, 0, 0, 0)):
    """CHWN ``a`` (C, Hp, Wp, N) -> contiguous NCHW with ``crop`` = (PT, PB, PL, PR) removed."""
    xp = get_array_module(a)
    pt, pb, pl, pr = crop
    _, hp, wp, _ = a.shape
    a = a[:, pt:hp - pb, pl:wp - pr, :]
    return xp.ascontiguousarray(a.transpose(3, 0, 1, 2))


# ---------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------
def window_slices(kh, kw, stride, out_hw):
    """For every kernel offset (i, j) the tuple ``(i, j, rows, cols)``: the slices that pick, from
    a padded input, the pixel under offset (i, j) of every one of the OH×OW windows.

    ``xpad[rows, cols]`` is the OH×OW grid ``xpad[i + SH*oh, j + SW*ow]``.  This one loop over
    KH*KW offsets (never over pixels or images) drives im2col, col2im and pooling.  (The list
    is cached: a training step asks for the same few hundred times.)
    """
    return _window_slices(int(kh), int(kw), tuple(stride), tuple(out_hw))


@functools.lru_cache(maxsize=256)
def _window_slices(kh, kw, stride, out_hw):
    (sh, sw), (oh, ow) = stride, out_hw
    return tuple((i, j, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
                 for i in range(kh) for j in range(kw))


def im2col(xpad, kh, kw, stride, out_hw, out=None):
    """Copy every receptive field into a column: CHWN ``xpad`` (C, Hp, Wp, N) ->
    ``cols`` (C, KH, KW, OH, OW, N), i.e. the matrix (C*KH*KW, OH*OW*N) with

        cols[c, i, j, oh, ow, n] = xpad[c, i + SH*oh, j + SW*ow, n].

    Filled by KH*KW strided-slice copies.  Size: C*KH*KW*OH*OW*N numbers.
    ``out``: a contiguous array of that shape and dtype to fill instead of a new one.
    """
    xp = get_array_module(xpad)
    c, _, _, n = xpad.shape
    oh, ow = out_hw
    cols = xp.empty((c, kh, kw, oh, ow, n), dtype=xpad.dtype) if out is None else out
    for i, j, rows, cs in window_slices(kh, kw, stride, out_hw):
        cols[:, i, j] = xpad[:, rows, cs, :]
    return cols


def col2im(cols, stride, out):
    """The adjoint of :func:`im2col`: add every column back where it came from.

    ``cols`` (C, KH, KW, OH, OW, N) is added into the CHWN array ``out`` (C, Hp, Wp, N):

        out[c, y, x, n] += Σ_{i, j, oh, ow : i + SH*oh = y, j + SW*ow = x} cols[c, i, j, oh, ow, n].

    Overlapping windows add up, so this is KH*KW slice *additions* (one per offset; the
    slices of one offset never overlap each other, so ``+=`` on a view is exact and
    ``np.add.at`` is never needed).  Returns ``out``.
    """
    _, kh, kw, oh, ow, _ = cols.shape
    for i, j, rows, cs in window_slices(kh, kw, stride, (oh, ow)):
        out[:, rows, cs, :] += cols[:, i, j]
    return out


# ---------------------------------------------------------------------------
# bands: im2col a few output rows at a time
# ---------------------------------------------------------------------------
BAND_BYTES = 8 * 2**20
"""Target size of one band of the im2col matrix.  The matrix of a whole layer is tens of MB
(C*KH*KW*OH*OW*N numbers); built whole, it goes out to main memory and is read back by the
GEMM.  Built and consumed a band of output rows at a time, it stays in the last-level cache
(32 MB here): the forward of Conv2d(4, 1, 5) on 200×4×28×28 (a 60 MB matrix) ran about 2×
faster, and a layer never holds more than one band.  Measured at MNIST sizes: 8 MiB beat
4 MiB and 16 MiB by 5-15%; much smaller bands mean many small GEMM calls, which suffer
when the BLAS threads have to wait for busy cores."""


_scratch = threading.local()


def band_buffer(purpose, shape, dtype, xp):
    """An uninitialised array for one band, reused from call to call (and layer to layer).

    On the CPU a fresh multi-MB array is expensive: the kernel hands out new pages and
    zeroes each on first touch (measured: 5 fresh 3.4 MB buffers cost 2.9 ms to fill, the
    same buffer reused 0.33 ms).  A band buffer never outlives the call that asked for it,
    so one buffer per ``purpose`` ("cols", "dcols") and thread is enough; it grows to the
    largest band seen.  On CuPy the memory pool already recycles blocks: plain ``empty``.
    """
    if xp.__name__ != "numpy":
        return xp.empty(shape, dtype=dtype)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    size, key = math.prod(shape), (purpose, xp.dtype(dtype))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def row_bands(oh, bytes_per_row):
    """Split output rows 0..OH-1 into bands ``(r0, r1)`` whose im2col is about BAND_BYTES."""
    step = max(1, min(oh, BAND_BYTES // max(1, bytes_per_row)))
    return [(r0, min(oh, r0 + step)) for r0 in range(0, oh, step)]


def band_input_rows(r0, r1, kh, sh):
    """The rows of the padded input that output rows r0..r1-1 read (bands overlap when KH > SH)."""
    return slice(sh * r0, sh * (r1 - 1) + kh)


def im2col_bands(xpad, kh, kw, stride, out_hw):
    """Yield ``(r0, r1, cols)`` with ``cols`` (C*KH*KW, (r1-r0)*OW*N) the im2col matrix of output
    rows r0..r1-1.  Put side by side, the bands are exactly ``im2col(xpad)`` reshaped to
    (C*KH*KW, OH*OW*N), because the columns are ordered (oh, ow, n)."""
    xp = get_array_module(xpad)
    c, _, _, n = xpad.shape
    oh, ow = out_hw
    for r0, r1 in row_bands(oh, c * kh * kw * ow * n * xpad.itemsize):
        band = xpad[:, band_input_rows(r0, r1, kh, stride[0])]
        out = band_buffer("cols", (c, kh, kw, r1 - r0, ow, n), xpad.dtype, xp)
        yield r0, r1, im2col(band, kh, kw, stride, (r1 - r0, ow), out=out).reshape(c * kh * kw, -1)


# ---------------------------------------------------------------------------
# the convolution kernels, in CHWN layout
# ---------------------------------------------------------------------------
def _gemm(a, b, out=None):
    """2-D matrix product (one BLAS GEMM), optionally into the contiguous array ``out``.

    An inner dimension of 1 (a single filter or channel, e.g. dcols = wᵀ @ dy with F = 1) is
    an outer product, which OpenBLAS ran about 7× slower here than the broadcast multiply."""
    xp = get_array_module(a, b)
    if a.shape[1] == 1:
        return xp.multiply(a, b, out=out)
    return xp.dot(a, b) if out is None else xp.dot(a, b, out=out)


def _conv_bands(xpad, kh, kw, stride, out_hw, wm=None, dy2=None):
    """The loop behind the two functions below: for each band of im2col, ``y = wm @ cols``
    (if ``wm`` is given) and ``dw += dy2 @ colsᵀ`` (if ``dy2`` is given)."""
    xp = get_array_module(xpad)
    (oh, ow), n = out_hw, xpad.shape[3]
    y = None if wm is None else xp.empty((wm.shape[0], oh, ow * n), dtype=xp.result_type(wm, xpad))
    dy3 = None if dy2 is None else dy2.reshape(dy2.shape[0], oh, ow * n)
    dw = None
    for r0, r1, cols in im2col_bands(xpad, kh, kw, stride, out_hw):
        if wm is not None:
            y[:, r0:r1] = _gemm(wm, cols).reshape(wm.shape[0], r1 - r0, ow * n)
        if dy2 is not None:
            part = _gemm(dy3[:, r0:r1].reshape(dy3.shape[0], -1), cols.T)
            if dw is None:
                dw = part
            else:
                dw += part
    return (None if y is None else y.reshape(y.shape[0], -1)), dw


def conv2d_chwn(xpad, w, stride, out_hw, dy2=None):
    """Cross-correlation of a padded CHWN input with ``w`` as GEMMs over im2col.

    xpad (C, Hp, Wp, N), w (F, C, KH, KW)  ->  y (F, OH*OW*N):

        y = w.reshape(F, C*KH*KW) @ cols,        cols = im2col(xpad)  (C*KH*KW, OH*OW*N)

    computed one band of output rows at a time (:func:`im2col_bands`), so the GEMM is split
    by columns and ``cols`` is never whole in memory.

    With ``dy2`` (G, OH*OW*N) also returns ``dy2 @ colsᵀ`` (G, C*KH*KW) from the same bands:
    the weight gradient ConvTranspose2d needs next to its input gradient.  Returns ``(y, dw)``
    (``dw`` None without ``dy2``).
    """
    f, _, kh, kw = w.shape
    return _conv_bands(xpad, kh, kw, stride, out_hw, wm=w.reshape(f, -1), dy2=dy2)


def conv2d_backward_weight(xpad, dy2, kernel, stride, out_hw):
    """dL/dw of a convolution: xpad (C, Hp, Wp, N), dy2 (F, OH*OW*N) -> (F, C*KH*KW),

        dw = dy2 @ im2col(xpad)ᵀ        (a GEMM summing over pixels and images at once)

    accumulated over the bands of im2col (recomputed here rather than kept from forward).
    """
    return _conv_bands(xpad, kernel[0], kernel[1], stride, out_hw, dy2=dy2)[1]


def _flipped_route(f, c, kernel, stride, pads) -> bool:
    """Whether dx is cheaper as the full correlation of dy with the flipped kernel (see below)."""
    (kh, kw), (pt, pb, pl, pr) = kernel, pads
    return tuple(stride) == (1, 1) and f < c and max(pt, pb) < kh and max(pl, pr) < kw


def _flip_kernel(w):
    """(F, C, KH, KW) -> (C, F, KH, KW) turned by 180° in both spatial axes (a contiguous copy)."""
    return get_array_module(w).ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def _flipped_pads(kernel, pads):
    """The padding K−1−P of the flipped-kernel convolution that is the adjoint of one padded by P."""
    (kh, kw), (pt, pb, pl, pr) = kernel, pads
    return kh - 1 - pt, kh - 1 - pb, kw - 1 - pl, kw - 1 - pr


def conv2d_forward(x, w, stride, pads, out_hw):
    """The forward of a convolution: CHWN ``x`` (C, H, W, N), unpadded, w (F, C, KH, KW)
    -> y (F, OH*OW*N).

    Usually ``conv2d_chwn`` of the padded x: one im2col of C*KH*KW rows.  When the layer has
    fewer outputs than inputs (F < C, stride 1) the adjoint of the flipped-kernel convolution is
    cheaper: y is the *transposed* convolution of x with the flipped kernel (the code of
    ``conv2d_backward_data``): a GEMM to F*KH*KW rows, then col2im — half the memory
    traffic for Conv2d(8, 4, 6) (measured 11.8 → 7.0 ms at batch 200, 28×28).
    """
    f, c, kh, kw = w.shape
    if _flipped_route(f, c, (kh, kw), stride, pads):
        dxpad_pads = _flipped_pads((kh, kw), pads)
        return conv2d_backward_data(x.reshape(c, -1), _flip_kernel(w), x.shape[1:3], out_hw, (1, 1),
                                    dxpad_pads).reshape(f, -1)
    return conv2d_chwn(pad_chwn(x, pads), w, stride, out_hw)[0]


def conv2d_backward(x, dy2, w, stride, pads, out_hw, need_dx=True):
    """(dx, dw) of a convolution: CHWN ``x`` (C, H, W, N) its unpadded input, dy2 (F, OH*OW*N).

    Returns dx as CHWN (C, H, W, N) (None unless ``need_dx``) and dw (F, C*KH*KW).

    Usually two passes: ``conv2d_backward_weight`` (im2col of the padded x, C*KH*KW rows)
    and ``conv2d_backward_data``.  On the flipped-kernel route (stride 1, F < C) dx comes
    from the im2col of the padded dy, only F*KH*KW rows, and dw can come from the *same*
    bands: substituting q = p + (i, j) − P in dw[f, c, i, j] = Σ_p dy[f, p] · xpad[c, p + (i, j)]
    gives Σ_q x[c, q] · dypad[f, q + (KH−1−i, KW−1−j)], i.e.

        dw_flipped = x.reshape(C, H*W*N) @ im2col(dypad)ᵀ          (C, F*KH*KW)

    the weight gradient of the flipped kernel (the rule ConvTranspose2d uses).  Turning it
    back by 180° gives dw.  The large im2col of the input is never built.
    """
    f, c, kh, kw = w.shape
    (h, wd), n = x.shape[1:3], x.shape[3]
    if _flipped_route(f, c, (kh, kw), stride, pads):
        dypad = pad_chwn(dy2.reshape(f, out_hw[0], out_hw[1], n), _flipped_pads((kh, kw), pads))
        if need_dx:
            dx, dw_flipped = conv2d_chwn(dypad, _flip_kernel(w), (1, 1), (h, wd), dy2=x.reshape(c, -1))
            dx = dx.reshape(c, h, wd, n)
        else:
            dx, dw_flipped = None, conv2d_backward_weight(dypad, x.reshape(c, -1), (kh, kw), (1, 1), (h, wd))
        dw = dw_flipped.reshape(c, f, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        return dx, dw.reshape(f, -1)
    dw = conv2d_backward_weight(pad_chwn(x, pads), dy2, (kh, kw), stride, out_hw)
    dx = conv2d_backward_data(dy2, w, out_hw, (h, wd), stride, pads) if need_dx else None
    return dx, dw


def conv2d_backward_data(dy2, w, out_hw, in_hw, stride, pads):
    """dL/dx of a convolution (equivalently: the forward of a transposed convolution).

    dy2 (F, OH*OW*N) is the upstream gradient in CHWN order, w (F, C, KH, KW),
    in_hw = (H, W) the unpadded input size.  Returns dx as CHWN (C, H, W, N).

    Every input pixel received ``w[f, c, i, j]`` times itself in output (f, oh, ow) for
    each offset (i, j) that put it there, so

        dcols = w.reshape(F, C*KH*KW).T @ dy2            (C*KH*KW, OH*OW*N)
        dxpad = col2im(dcols)                            (C, Hp, Wp, N)
        dx    = dxpad without the padding,

    one band of output rows at a time (each band's columns are added into the input rows
    that band read).

    For stride 1 and F < C it is cheaper to read the same sum the other way round: dx is
    the *full* cross-correlation of dy (padded by K-1-P) with the kernel flipped in both
    spatial axes and with F and C swapped.  That im2col is F*KH*KW rows instead of
    C*KH*KW, and needs no col2im.  Both give the same numbers (a test checks it).
    """
    xp = get_array_module(dy2, w)
    f, c, kh, kw = w.shape
    (oh, ow), (h, wd), (pt, pb, pl, pr) = out_hw, in_hw, pads
    n = dy2.shape[1] // (oh * ow)
    if _flipped_route(f, c, (kh, kw), stride, pads):
        dypad = pad_chwn(dy2.reshape(f, oh, ow, n), _flipped_pads((kh, kw), pads))
        return conv2d_chwn(dypad, _flip_kernel(w), (1, 1), (h, wd))[0].reshape(c, h, wd, n)
    wm_t = w.reshape(f, -1).T                                            # (C*KH*KW, F)
    dy3 = dy2.reshape(f, oh, ow * n)
    dxpad = xp.zeros((c, h + pt + pb, wd + pl + pr, n), dtype=xp.result_type(w, dy2))
    for r0, r1 in row_bands(oh, c * kh * kw * ow * n * dy2.itemsize):
        out = band_buffer("dcols", (c * kh * kw, (r1 - r0) * ow * n), xp.result_type(w, dy2), xp)
        dcols = _gemm(wm_t, dy3[:, r0:r1].reshape(f, -1), out=out).reshape(c, kh, kw, r1 - r0, ow, n)
        col2im(dcols, stride, out=dxpad[:, band_input_rows(r0, r1, kh, stride[0])])
    return dxpad[:, pt:pt + h, pl:pl + wd, :]
