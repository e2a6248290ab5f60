"""Convolution, level 3 of 3: the fast engine behind Conv2d and ConvTranspose2d (private).

Reading order: ``tinyae.nn.reference`` (the definition as loops) → ``tinyae.nn.im2col``
(the same maths as ``y = W · im2col(x)``, ``dW = dy · colsᵀ``, ``dx = col2im(Wᵀ · dy)``) →
this file, which computes exactly those products, reorganised for speed.  Nothing here is
new maths; tests/test_conv_levels.py checks it against the other two levels.

Shapes use the CS231n names::

    N  batch          C  input channels     H, W    input height, width
    F  filters        KH, KW  kernel        OH, OW  output height, width
    SH, SW  stride    (PT, PB, PL, PR)  padding top, bottom, left, right
    Hp = PT + H + PB,  Wp = PL + W + PR       the padded input

What differs from the im2col level, and why:

* Layout "CHWN".  Inside the engine the batch axis is last: ``x_chwn`` (C, H, W, N).  Every
  strided slice ``xpad[:, rows, cols, :]`` that im2col copies is then made of contiguous
  runs of N (or OW*N) numbers instead of OW, which made im2col about 2× and col2im about
  4× faster at MNIST sizes (OW = 14, 28).  The columns of the im2col matrix are ordered
  (oh, ow, n), so a whole batch is one GEMM.  The price: one transpose of the input and one
  of the output per call, each the size of a feature map.  Matrices in this layout are
  named ``*_cols``: ``dy_cols`` is dy as (F, OH*OW*N), one column per output pixel.
* Bands.  The im2col matrix is built and multiplied a band of output rows at a time
  (about ``BAND_BYTES``), so it stays in cache and is never whole in memory.
* Buffer reuse.  Band buffers are kept from call to call (``band_buffer``).
* Routes.  For stride 1 and F < C the same numbers come cheaper by reading the
  convolution as the adjoint of one with the flipped kernel (the "flipped" route).  For
  stride 1 and few channels (F*C ≤ ``DIRECT_MAX_FC``) the sums are computed without im2col
  at all, by compiled loops on both cores (the "direct" route, ``tinyae.nn._conv_direct``,
  when Numba is installed and the cores are free for it: ``_conv_direct.preferred``).
  A layer decides its route once, at construction (``conv2d_route``), and passes it in.

Everything goes through ``xp = get_array_module(x)``, so the same code runs on NumPy and
CuPy, and every buffer is created with the input's dtype (float32 stays float32).
"""
from __future__ import annotations

import math
import threading

from ..backend import get_array_module
from . import _conv_direct as direct
from .im2col import pad_hw, window_slices

IM2COL, FLIPPED, DIRECT = "im2col", "flipped", "direct"
"""The three routes of a convolution (see :func:`conv2d_route`)."""

DIRECT_MAX_FC = 128
"""The direct route is taken up to this many (filter, channel) pairs.  Measured on the conv
AE's layers (batch 200, 2 threads): 2-3× faster than the GEMM routes from F*C = 4 to 32;
at Conv2d(16, 8, 5) on 14×14 (F*C = 128) about even (its forward faster, its backward
slower; a limit of 64 or 128 made no difference beyond noise per step).  With more channels
the GEMM's inner dimension grows and BLAS does better (docs/performance.md)."""


# --- layout --------------------------------------------------------------------------------
def to_chwn(x, pads=(0, 0, 0, 0), value=0):
    """NCHW ``x`` -> padded CHWN copy (C, Hp, Wp, N), borders filled with ``value`` (one copy:
    the transposed view is written straight into the padded array)."""
    if not any(pads):
        return get_array_module(x).ascontiguousarray(x.transpose(1, 2, 3, 0))
    return pad_hw(x.transpose(1, 2, 3, 0), pads, value, h_axis=1)


def pad_chwn(a, pads, value=0):
    """Pad the H and W axes of a CHWN array (``a`` itself for zero padding)."""
    return pad_hw(a, pads, value, h_axis=1)


def from_chwn(a, crop=(0, 0, 0, 0)):
    """CHWN ``a`` (C, Hp, Wp, N) -> contiguous NCHW with ``crop`` = (PT, PB, PL, PR) removed."""
    pt, pb, pl, pr = crop
    _, hp, wp, _ = a.shape
    a = a[:, pt:hp - pb, pl:wp - pr, :]
    return get_array_module(a).ascontiguousarray(a.transpose(3, 0, 1, 2))


# --- im2col / col2im in CHWN, into given buffers -------------------------------------------
def im2col_chwn(xpad, stride, out):
    """Fill ``out`` (C, KH, KW, OH, OW, N) with ``out[c, i, j, oh, ow, n] = xpad[c, i + SH*oh,
    j + SW*ow, n]`` from the CHWN ``xpad`` (C, Hp, Wp, N): KH*KW strided-slice copies."""
    _, kh, kw, oh, ow, _ = out.shape
    for i, j, rows, cs in window_slices(kh, kw, stride, (oh, ow)):
        out[:, i, j] = xpad[:, rows, cs, :]
    return out


def col2im_chwn(cols, stride, out):
    """The adjoint of :func:`im2col_chwn`: add ``cols`` (C, KH, KW, OH, OW, N) into the CHWN
    ``out`` (C, Hp, Wp, N).  One slice *addition* per offset (the slices of one offset never
    overlap each other, so ``+=`` on a view is exact; ``np.add.at`` is never needed)."""
    _, kh, kw, oh, ow, _ = cols.shape
    for i, j, rows, cs in window_slices(kh, kw, stride, (oh, ow)):
        out[:, rows, cs, :] += cols[:, i, j]
    return out


# --- bands: im2col a few output rows at a time ---------------------------------------------
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
    rows r0..r1-1.  Put side by side, the bands are exactly the whole im2col matrix
    (C*KH*KW, OH*OW*N), because its columns are ordered (oh, ow, n)."""
    xp = get_array_module(xpad)
    c, _, _, n = xpad.shape
    oh, ow = out_hw
    for r0, r1 in row_bands(oh, c * kh * kw * ow * n * xpad.itemsize):
        band = xpad[:, band_input_rows(r0, r1, kh, stride[0])]
        out = band_buffer("cols", (c, kh, kw, r1 - r0, ow, n), xpad.dtype, xp)
        yield r0, r1, im2col_chwn(band, stride, out).reshape(c * kh * kw, -1)


# --- the products over the bands -------------------------------------------------------------
def _gemm(a, b, out=None):
    """2-D matrix product (one BLAS GEMM), optionally into the contiguous array ``out``.

    An inner dimension of 1 (a single filter or channel, e.g. dcols = wᵀ @ dy with F = 1) is
    an outer product, which OpenBLAS ran about 7× slower here than the broadcast multiply."""
    xp = get_array_module(a, b)
    if a.shape[1] == 1:
        return xp.multiply(a, b, out=out)
    return xp.dot(a, b) if out is None else xp.dot(a, b, out=out)


def _products_over_bands(xpad, kh, kw, stride, out_hw, w_mat=None, dy_cols=None):
    """One pass over the bands of ``cols = im2col(xpad)``: ``y = w_mat @ cols`` (if ``w_mat``
    is given) and ``dw = dy_cols @ colsᵀ`` (if ``dy_cols`` is given), each band's share of
    both from the same band while it is in cache.  Returns ``(y, dw)`` (None where not asked)."""
    xp = get_array_module(xpad)
    (oh, ow), n = out_hw, xpad.shape[3]
    y = None if w_mat is None else xp.empty((w_mat.shape[0], oh, ow * n), dtype=xp.result_type(w_mat, xpad))
    dy_rows = None if dy_cols is None else dy_cols.reshape(dy_cols.shape[0], oh, ow * n)
    dw_t = None
    for r0, r1, cols in im2col_bands(xpad, kh, kw, stride, out_hw):
        if w_mat is not None:
            y[:, r0:r1] = _gemm(w_mat, cols).reshape(w_mat.shape[0], r1 - r0, ow * n)
        if dy_cols is not None:
            # dwᵀ = cols @ dy_bandᵀ (C*KH*KW, G), not dw = dy_band @ colsᵀ: the same numbers,
            # but with G (the filters: 1..16 here) as the *narrow* side of the output, OpenBLAS
            # ran these long-inner-dimension products 1.7-3× faster (e.g. 8×11200 by 11200×144:
            # 1.05 → 0.57 ms on 1 thread, 0.61 → 0.35 ms on 2).
            part = _gemm(cols, dy_rows[:, r0:r1].reshape(dy_rows.shape[0], -1).T)
            if dw_t is None:
                dw_t = part
            else:
                dw_t += part
    return (None if y is None else y.reshape(y.shape[0], -1)), (None if dw_t is None else dw_t.T)


def conv2d_chwn(xpad, w, stride, out_hw, dy_cols=None):
    """Cross-correlation of a padded CHWN input with ``w``: xpad (C, Hp, Wp, N),
    w (F, C, KH, KW) -> y_cols (F, OH*OW*N) = w_mat @ im2col(xpad), one band at a time.

    With ``dy_cols`` (G, OH*OW*N) also returns ``dy_cols @ colsᵀ`` (G, C*KH*KW) from the same
    bands: the weight gradient ConvTranspose2d needs next to its input gradient.  Returns
    ``(y_cols, dw)`` (``dw`` None without ``dy_cols``)."""
    f, _, kh, kw = w.shape
    return _products_over_bands(xpad, kh, kw, stride, out_hw, w_mat=w.reshape(f, -1), dy_cols=dy_cols)


def conv2d_backward_weight(xpad, dy_cols, kernel, stride, out_hw):
    """dL/dw of a convolution, dw = dy_cols @ im2col(xpad)ᵀ: xpad (C, Hp, Wp, N),
    dy_cols (F, OH*OW*N) -> (F, C*KH*KW), summed over the bands (im2col rebuilt from xpad)."""
    return _products_over_bands(xpad, kernel[0], kernel[1], stride, out_hw, dy_cols=dy_cols)[1]


def _col2im_route_data(dy_cols, w, out_hw, in_hw, stride, pads):
    """dx = col2im(w_matᵀ @ dy_cols) without the padding, one band of output rows at a time
    (each band's columns are added into the input rows that band read).  CHWN (C, H, W, N)."""
    xp = get_array_module(dy_cols, w)
    f, c, kh, kw = w.shape
    (oh, ow), (h, wd), (pt, pb, pl, pr) = out_hw, in_hw, pads
    n = dy_cols.shape[1] // (oh * ow)
    dtype = xp.result_type(w, dy_cols)
    w_mat_t = w.reshape(f, -1).T                                         # (C*KH*KW, F)
    dy_rows = dy_cols.reshape(f, oh, ow * n)
    dxpad = xp.zeros((c, h + pt + pb, wd + pl + pr, n), dtype=dtype)
    for r0, r1 in row_bands(oh, c * kh * kw * ow * n * dy_cols.itemsize):
        out = band_buffer("dcols", (c * kh * kw, (r1 - r0) * ow * n), dtype, xp)
        dcols = _gemm(w_mat_t, dy_rows[:, r0:r1].reshape(f, -1), out=out).reshape(c, kh, kw, r1 - r0, ow, n)
        col2im_chwn(dcols, stride, out=dxpad[:, band_input_rows(r0, r1, kh, stride[0])])
    return dxpad[:, pt:pt + h, pl:pl + wd, :]


# --- the routes -----------------------------------------------------------------------------
def conv2d_route(out_channels, in_channels, kernel, stride, pads) -> str:
    """The route of a convolution with weight (F, C, KH, KW) = (out_channels, in_channels, ...),
    for a stride of 1 and padding smaller than the kernel: DIRECT when F*C ≤ DIRECT_MAX_FC
    and the direct route can use the cores (``_conv_direct.preferred``: Numba installed,
    and one thread or OpenBLAS threads that sleep soon), else FLIPPED when F < C; IM2COL
    otherwise.  Decided once per layer (the layers call it in their constructor).  A DIRECT
    layer given CuPy arrays takes the GEMM route the same rule gives without Numba
    (:func:`_gemm_route`).

    On the flipped route every pass reads the layer as the adjoint of the convolution with
    the kernel turned by 180° and F, C swapped, whose im2col has F*KH*KW rows instead of
    C*KH*KW: C/F times less memory traffic (docs/backprop.md, "the flipped route")."""
    (kh, kw), (pt, pb, pl, pr) = kernel, pads
    stride1_fits = tuple(stride) == (1, 1) and max(pt, pb) < kh and max(pl, pr) < kw
    if stride1_fits and out_channels * in_channels <= DIRECT_MAX_FC and direct.preferred():
        return DIRECT
    return FLIPPED if stride1_fits and out_channels < in_channels else IM2COL


def _gemm_route(route, w, *arrays):
    """``route``, unless it is DIRECT and these arrays cannot take it (CuPy arrays, or an
    integer dtype): then the GEMM route the rule of :func:`conv2d_route` gives without it."""
    if route != DIRECT or direct.usable(w, *arrays):
        return route
    return FLIPPED if w.shape[0] < w.shape[1] else IM2COL


def _flip_kernel(w):
    """(F, C, KH, KW) -> (C, F, KH, KW) turned by 180° in both spatial axes (a contiguous copy)."""
    return get_array_module(w).ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def _flipped_pads(kernel, pads):
    """The padding K−1−P of the flipped-kernel convolution that is the adjoint of one padded by P."""
    (kh, kw), (pt, pb, pl, pr) = kernel, pads
    return kh - 1 - pt, kh - 1 - pb, kw - 1 - pl, kw - 1 - pr


# --- what the layers call ---------------------------------------------------------------------
def conv2d_forward(x_chwn, w, stride, pads, out_hw, route):
    """y_cols (F, OH*OW*N) of a convolution of the unpadded CHWN ``x_chwn`` (C, H, W, N) with
    w (F, C, KH, KW).

    IM2COL: ``conv2d_chwn`` of the padded x (an im2col of C*KH*KW rows).  FLIPPED: y is the
    *transposed* convolution of x with the flipped kernel (the code of
    ``conv2d_backward_data``): a GEMM to F*KH*KW rows, then col2im — half the memory traffic
    for Conv2d(8, 4, 6) (measured 11.8 → 7.0 ms at batch 200, 28×28)."""
    f, c, kh, kw = w.shape
    route = _gemm_route(route, w, x_chwn)
    if route == DIRECT:
        return direct.correlate(pad_chwn(x_chwn, pads), w, out_hw).reshape(f, -1)
    if route == FLIPPED:
        return _col2im_route_data(x_chwn.reshape(c, -1), _flip_kernel(w), x_chwn.shape[1:3], out_hw, (1, 1),
                                  _flipped_pads((kh, kw), pads)).reshape(f, -1)
    return conv2d_chwn(pad_chwn(x_chwn, pads), w, stride, out_hw)[0]


def conv2d_backward(x_chwn, dy_cols, w, stride, pads, out_hw, route, need_dx=True):
    """(dx_chwn, dw_mat) of a convolution: ``x_chwn`` (C, H, W, N) its unpadded input,
    dy_cols (F, OH*OW*N).  dx_chwn (C, H, W, N) is None unless ``need_dx``; dw_mat is
    (F, C*KH*KW).

    IM2COL: two passes, ``conv2d_backward_weight`` (im2col of the padded x) and
    ``conv2d_backward_data``.  FLIPPED: dx comes from the im2col of the padded dy, only
    F*KH*KW rows, and dw from the *same* bands: substituting q = p + (i, j) − P in
    dw[f, c, i, j] = Σ_p dy[f, p] · xpad[c, p + (i, j)] gives Σ_q x[c, q] · dypad[f, q +
    (KH−1−i, KW−1−j)], i.e. ``dw_flipped = x_cols @ im2col(dypad)ᵀ`` (C, F*KH*KW), the
    weight gradient of the flipped kernel; turned back by 180° it is dw.  The large im2col
    of the input is never built."""
    f, c, kh, kw = w.shape
    (h, wd), n = x_chwn.shape[1:3], x_chwn.shape[3]
    route = _gemm_route(route, w, x_chwn, dy_cols)
    if route == DIRECT:
        dy_cols = direct.flush_subnormals(dy_cols)          # (a trained model's tiny gradients)
        dy = dy_cols.reshape(f, out_hw[0], out_hw[1], n)
        dw = direct.weight_grad(pad_chwn(x_chwn, pads), dy, (kh, kw))
        dx_chwn = conv2d_backward_data(dy_cols, w, out_hw, (h, wd), stride, pads, DIRECT) if need_dx else None
        return dx_chwn, dw.reshape(f, -1)
    if route != FLIPPED:
        dw_mat = conv2d_backward_weight(pad_chwn(x_chwn, pads), dy_cols, (kh, kw), stride, out_hw)
        dx_chwn = conv2d_backward_data(dy_cols, w, out_hw, (h, wd), stride, pads, route) if need_dx else None
        return dx_chwn, dw_mat
    dypad = pad_chwn(dy_cols.reshape(f, out_hw[0], out_hw[1], n), _flipped_pads((kh, kw), pads))
    x_cols = x_chwn.reshape(c, -1)                                       # (C, H*W*N)
    if need_dx:
        dx_cols, dw_flipped = conv2d_chwn(dypad, _flip_kernel(w), (1, 1), (h, wd), dy_cols=x_cols)
        dx_chwn = dx_cols.reshape(c, h, wd, n)
    else:
        dx_chwn, dw_flipped = None, conv2d_backward_weight(dypad, x_cols, (kh, kw), (1, 1), (h, wd))
    dw = dw_flipped.reshape(c, f, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return dx_chwn, dw.reshape(f, -1)


def conv2d_backward_data(dy_cols, w, out_hw, in_hw, stride, pads, route):
    """dL/dx of a convolution, equivalently the forward of a transposed convolution:
    dy_cols (F, OH*OW*N), w (F, C, KH, KW), in_hw = (H, W) unpadded -> dx_chwn (C, H, W, N).

    IM2COL: dcols = w_matᵀ @ dy_cols, then col2im, then drop the padding.  FLIPPED and
    DIRECT: the same sum read the other way round, the *full* cross-correlation of dy
    (padded by K-1-P) with the flipped kernel — on FLIPPED an im2col of F*KH*KW rows instead
    of C*KH*KW and no col2im, on DIRECT the compiled loops."""
    f, c, kh, kw = w.shape
    route = _gemm_route(route, w, dy_cols)
    if route == IM2COL:
        return _col2im_route_data(dy_cols, w, out_hw, in_hw, stride, pads)
    (oh, ow), (h, wd) = out_hw, in_hw
    n = dy_cols.shape[1] // (oh * ow)
    dypad = pad_chwn(dy_cols.reshape(f, oh, ow, n), _flipped_pads((kh, kw), pads))
    if route == DIRECT:
        return direct.correlate(dypad, _flip_kernel(w), (h, wd))
    return conv2d_chwn(dypad, _flip_kernel(w), (1, 1), (h, wd))[0].reshape(c, h, wd, n)
