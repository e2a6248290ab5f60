"""Convolution and pooling, level 1 of 3: the definitions as plain loops over output pixels.

Reading order for the convolution and pooling layers:

1. ``tinyae.nn.reference`` (this file): one loop per output pixel, NCHW, float64, NumPy.
   Slow and obviously correct: it is the definition that the other two levels are tested
   against (tests/test_conv_levels.py runs one hypothesis suite over all three).
2. ``tinyae.nn.im2col``: the same maths as whole-matrix products, ``y = W · im2col(x)``.
3. ``tinyae.nn._conv_engine``: the fast version the layers run (batch-last layout, bands
   that stay in cache, reused buffers, the flipped-kernel route).

Every function here follows the definition literally:
    y[n, f, oh, ow] = b[f] + Σ_{c,i,j} w[f, c, i, j] · xpad[n, c, SH*oh + i, SW*ow + j]
and the backward passes are the same loops with the chain rule applied term by term: an
output pixel that read ``xpad[window]`` sends ``dy · (what it multiplied it by)`` back there.

Host NumPy only, on purpose (hence the bare ``np`` calls): the layers never run this file;
it is the definition the tests hold the NumPy and CuPy levels to (pass it host arrays,
``tinyae.backend.to_numpy(x)``).

Shapes: x (N, C, H, W), w (F, C, KH, KW) for a convolution and (C, F, KH, KW) for a
transposed one, pads = (PT, PB, PL, PR), stride = (SH, SW), padding = (PH, PW) symmetric.
"""
import numpy as np

__all__ = ["pad", "out_size", "conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def pad(x, pads, value=0.0):
    """pads = (top, bottom, left, right) on the last two axes."""
    pt, pb, pl, pr = pads
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def out_size(hp, wp, kh, kw, sh, sw):
    """(OH, OW) of KH×KW windows SH, SW apart on an Hp×Wp (padded) input."""
    return (hp - kh) // sh + 1, (wp - kw) // sw + 1


def conv2d(x, w, b, stride, pads):
    """Forward of a convolution: one window at a time."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    sh, sw = stride
    xpad = pad(x, pads)
    oh, ow = out_size(xpad.shape[2], xpad.shape[3], kh, kw, sh, sw)
    y = np.zeros((n, f, oh, ow))
    for ni, fi, r, s in np.ndindex(n, f, oh, ow):
        window = xpad[ni, :, r * sh:r * sh + kh, s * sw:s * sw + kw]
        y[ni, fi, r, s] = np.sum(window * w[fi]) + (b[fi] if b is not None else 0.0)
    return y


def conv2d_backward(x, w, dy, stride, pads):
    """(dx, dw, db) of a convolution: each output pixel sends dy back through its window."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    sh, sw = stride
    pt, pb, pl, pr = pads
    xpad = pad(x, pads)
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    db = np.zeros(f)
    _, _, oh, ow = dy.shape
    for ni, fi, r, s in np.ndindex(n, f, oh, ow):
        g = dy[ni, fi, r, s]
        rows, cols = slice(r * sh, r * sh + kh), slice(s * sw, s * sw + kw)
        dxpad[ni, :, rows, cols] += g * w[fi]
        dw[fi] += g * xpad[ni, :, rows, cols]
        db[fi] += g
    return dxpad[:, :, pt:pt + h, pl:pl + wd], dw, db


def conv_transpose2d(x, w, b, stride, padding, output_padding):
    """Forward of a transposed convolution by its own definition: every input pixel stamps
    x[n, c, h, w] · w[c] onto the output at (SH*h, SW*w); then P is cut from each border."""
    n, c, h, wd = x.shape
    _, f, kh, kw = w.shape
    sh, sw = stride
    ph, pw = padding
    oph, opw = output_padding
    oh, ow = (h - 1) * sh - 2 * ph + kh + oph, (wd - 1) * sw - 2 * pw + kw + opw
    ypad = np.zeros((n, f, oh + 2 * ph, ow + 2 * pw))
    for ni, ci, r, s in np.ndindex(n, c, h, wd):
        ypad[ni, :, r * sh:r * sh + kh, s * sw:s * sw + kw] += x[ni, ci, r, s] * w[ci]
    y = ypad[:, :, ph:ph + oh, pw:pw + ow]
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def conv_transpose2d_backward(x, w, dy, stride, padding):
    """(dx, dw, db) of the transposed convolution, from the same stamping loop."""
    n, c, h, wd = x.shape
    _, f, kh, kw = w.shape
    sh, sw = stride
    ph, pw = padding
    dypad = pad(dy, (ph, ph, pw, pw))
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for ni, ci, r, s in np.ndindex(n, c, h, wd):
        patch = dypad[ni, :, r * sh:r * sh + kh, s * sw:s * sw + kw]   # (F, KH, KW)
        dx[ni, ci, r, s] = np.sum(patch * w[ci])
        dw[ci] += x[ni, ci, r, s] * patch
    return dx, dw, dy.sum(axis=(0, 2, 3))


def max_pool2d(x, kernel, stride, padding):
    """(y, flat indices) of max pooling on the -inf padded input (first maximum on ties)."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xpad = pad(x, (ph, ph, pw, pw), -np.inf)
    oh, ow = out_size(xpad.shape[2], xpad.shape[3], kh, kw, sh, sw)
    y = np.zeros((n, c, oh, ow))
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for ni, ci, r, s in np.ndindex(n, c, oh, ow):
        win = xpad[ni, ci, r * sh:r * sh + kh, s * sw:s * sw + kw]
        i, j = np.unravel_index(np.argmax(win), win.shape)
        y[ni, ci, r, s] = win[i, j]
        idx[ni, ci, r, s] = (r * sh + i - ph) * wd + (s * sw + j - pw)
    return y, idx


def max_pool2d_backward(x, dy, kernel, stride, padding):
    """dx of max pooling: each window's dy goes to its (first) maximum; overlaps add up."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xpad = pad(x, (ph, ph, pw, pw), -np.inf)
    dxpad = np.zeros_like(xpad)
    _, _, oh, ow = dy.shape
    for ni, ci, r, s in np.ndindex(n, c, oh, ow):
        win = xpad[ni, ci, r * sh:r * sh + kh, s * sw:s * sw + kw]
        i, j = np.unravel_index(np.argmax(win), win.shape)
        dxpad[ni, ci, r * sh + i, s * sw + j] += dy[ni, ci, r, s]
    return dxpad[:, :, ph:ph + h, pw:pw + wd]


def avg_pool2d(x, kernel, stride, padding):
    """Average pooling of the zero-padded input, divisor KH*KW (count_include_pad=True)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xpad = pad(x, (ph, ph, pw, pw))
    n, c = x.shape[:2]
    oh, ow = out_size(xpad.shape[2], xpad.shape[3], kh, kw, sh, sw)
    y = np.zeros((n, c, oh, ow))
    for r in range(oh):
        for s in range(ow):
            y[:, :, r, s] = xpad[:, :, r * sh:r * sh + kh, s * sw:s * sw + kw].mean(axis=(2, 3))
    return y


def avg_pool2d_backward(x, dy, kernel, stride, padding):
    """dx of average pooling: every pixel of a window gets 1/(KH*KW) of the window's dy."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dxpad = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    _, _, oh, ow = dy.shape
    for r in range(oh):
        for s in range(ow):
            dxpad[:, :, r * sh:r * sh + kh, s * sw:s * sw + kw] += dy[:, :, r, s, None, None] / (kh * kw)
    return dxpad[:, :, ph:ph + h, pw:pw + wd]
