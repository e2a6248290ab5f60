"""Convolution, level 2 of 3: im2col, and a convolution as one matrix product (NCHW).

Reading order: ``tinyae.nn.reference`` (the definition, one loop per output pixel) →
this file (the same sums as matrix products) → ``tinyae.nn._conv_engine`` (what the layers
run: the same products, reorganised for speed).  docs/backprop.md derives every line here.

Shapes (CS231n names): x (N, C, H, W), w (F, C, KH, KW), stride (SH, SW), padding
pads = (PT, PB, PL, PR); the padded input xpad is (N, C, Hp, Wp) with Hp = PT + H + PB,
and the output y (N, F, OH, OW) with OH = (Hp - KH) // SH + 1 (likewise OW).

The whole idea: copy every receptive field into a column, ``cols = im2col(xpad)`` of
shape (C*KH*KW, N*OH*OW).  The convolution is then one matrix product,
``y = W · im2col(x)`` with W = w.reshape(F, C*KH*KW), and its backward is that of a
matrix product (as for Linear), followed by col2im, the adjoint of the copy.  Pooling is
the same columns reduced by a max or a mean instead of multiplied.  The pooling layers use
the padding and window helpers of this file too.  (How the layers parse kernel_size, stride
and padding is in ``tinyae/nn/_conv_args.py``.)
"""
from __future__ import annotations

import functools

from ..backend import get_array_module
from ._conv_args import conv_output_size


# --- padding and windows -------------------------------------------------------------------
def pad_hw(a, pads, value=0, h_axis=2):
    """``a`` with its H and W axes (h_axis, h_axis + 1; NCHW: 2) padded by (PT, PB, PL, PR)
    with ``value`` (a new array; ``a`` itself when there is no padding)."""
    if not any(pads):
        return a
    pt, pb, pl, pr = pads
    shape = list(a.shape)
    h, w = shape[h_axis], shape[h_axis + 1]
    shape[h_axis:h_axis + 2] = h + pt + pb, w + pl + pr
    out = get_array_module(a).full(tuple(shape), value, dtype=a.dtype)
    inner = [slice(None)] * a.ndim
    inner[h_axis:h_axis + 2] = slice(pt, pt + h), slice(pl, pl + w)
    out[tuple(inner)] = a
    return out


def window_slices(kh, kw, stride, out_hw):
    """For every kernel offset (i, j) the tuple ``(i, j, rows, cols)``: the slices that pick,
    from a padded input, the pixel under offset (i, j) of every one of the OH×OW windows:
    ``xpad[..., rows, cols]`` is the OH×OW grid ``xpad[..., i + SH*oh, j + SW*ow]``.

    This one loop over KH*KW offsets (never over pixels or images) drives im2col, col2im and
    pooling.  (Cached: a training step asks for the same few hundred times.)"""
    return _window_slices(int(kh), int(kw), tuple(stride), tuple(out_hw))


@functools.lru_cache(maxsize=256)
def _window_slices(kh, kw, stride, out_hw):
    (sh, sw), (oh, ow) = stride, out_hw
    return tuple((i, j, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
                 for i in range(kh) for j in range(kw))


# --- im2col and its adjoint ----------------------------------------------------------------
def im2col(xpad, kernel, stride, out_hw):
    """xpad (N, C, Hp, Wp) -> cols (C*KH*KW, N*OH*OW): one column per output pixel, holding
    the receptive field that pixel reads,

        cols[(c, i, j), (n, oh, ow)] = xpad[n, c, SH*oh + i, SW*ow + j].
    """
    (kh, kw), (oh, ow) = kernel, out_hw
    n, c = xpad.shape[:2]
    cols = get_array_module(xpad).empty((c, kh, kw, n, oh, ow), dtype=xpad.dtype)
    for i, j, rows, columns in window_slices(kh, kw, stride, out_hw):
        cols[:, i, j] = xpad[:, :, rows, columns].transpose(1, 0, 2, 3)      # (C, N, OH, OW)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, xpad_shape, kernel, stride, out_hw):
    """The adjoint of im2col: add every entry of cols (C*KH*KW, N*OH*OW) back onto the pixel
    it was copied from, into a zero (N, C, Hp, Wp) array.  A pixel under several windows
    collects the sum (the gradient of a copied value is the sum over its copies)."""
    (kh, kw), (oh, ow), (n, c) = kernel, out_hw, xpad_shape[:2]
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    xpad = get_array_module(cols).zeros(xpad_shape, dtype=cols.dtype)
    for i, j, rows, columns in window_slices(kh, kw, stride, out_hw):
        xpad[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)     # (N, C, OH, OW)
    return xpad


def _as_matrix(a):
    """(N, K, H, W) -> (K, N*H*W): channels as rows, (n, h, w) as columns, like cols."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def _from_matrix(a_mat, n, hw):
    """(K, N*H*W) -> (N, K, H, W), the inverse of :func:`_as_matrix`."""
    return a_mat.reshape(a_mat.shape[0], n, *hw).transpose(1, 0, 2, 3)


# --- the convolution ---------------------------------------------------------------------
def conv2d_forward(x, w, b, stride, pads):
    """y (N, F, OH, OW) = w ⋆ x + b.  Returns ``(y, cols)``; backward needs cols."""
    f, _, kh, kw = w.shape
    out_hw = conv_output_size("conv2d", x.shape[2:], (kh, kw), stride, pads)
    cols = im2col(pad_hw(x, pads), (kh, kw), stride, out_hw)   # (C*KH*KW, N*OH*OW)
    w_mat = w.reshape(f, -1)                                   # (F, C*KH*KW)
    y = w_mat @ cols                                           # y = W · im2col(x)
    if b is not None:
        y += b[:, None]
    return _from_matrix(y, x.shape[0], out_hw), cols


def conv2d_backward(dy, cols, x_shape, w, stride, pads):
    """(dx, dw, db) of :func:`conv2d_forward`, given dy (N, F, OH, OW) and its cols."""
    (n, c, h, wd), (f, _, kh, kw), (pt, pb, pl, pr) = x_shape, w.shape, pads
    w_mat, dy_mat = w.reshape(f, -1), _as_matrix(dy)           # (F, C*KH*KW), (F, N*OH*OW)
    db = dy_mat.sum(axis=1)                                    # db = Σ over pixels of dy
    dw = dy_mat @ cols.T                                       # dW = dy · colsᵀ
    dxpad = col2im(w_mat.T @ dy_mat, (n, c, pt + h + pb, pl + wd + pr), (kh, kw), stride,
                   dy.shape[2:])                               # dx = col2im(Wᵀ · dy)
    return dxpad[:, :, pt:pt + h, pl:pl + wd], dw.reshape(w.shape), db


# --- the transposed convolution: the same pieces, read the other way ---------------------
def conv_transpose2d_forward(x, w, b, stride, padding, output_padding):
    """y (N, F, OH, OW) of a transposed convolution, w (C, F, KH, KW): the input gradient of
    a convolution F -> C with the same w, i.e. y = col2im(Wᵀ · x) without the padding,
    OH = (H - 1)*SH - 2*PH + KH + OPH (likewise OW)."""
    (n, c, h, wd), (_, f, kh, kw), (sh, sw), (ph, pw) = x.shape, w.shape, stride, padding
    oh, ow = (h - 1) * sh - 2 * ph + kh + output_padding[0], (wd - 1) * sw - 2 * pw + kw + output_padding[1]
    ypad = col2im(w.reshape(c, -1).T @ _as_matrix(x), (n, f, oh + 2 * ph, ow + 2 * pw), (kh, kw), stride, (h, wd))
    y = ypad[:, :, ph:ph + oh, pw:pw + ow]
    return y if b is None else y + b[:, None, None]


def conv_transpose2d_backward(dy, x, w, stride, padding):
    """(dx, dw, db): dx is the convolution of the padded dy with w, dw = x · colsᵀ."""
    (n, c, h, wd), (ph, pw) = x.shape, padding
    cols = im2col(pad_hw(dy, (ph, ph, pw, pw)), w.shape[2:], stride, (h, wd))   # (F*KH*KW, N*H*W)
    dx = w.reshape(c, -1) @ cols                                                # (C, N*H*W)
    dw = _as_matrix(x) @ cols.T                                                 # (C, F*KH*KW)
    return _from_matrix(dx, n, (h, wd)), dw.reshape(w.shape), dy.sum(axis=(0, 2, 3))


# --- pooling: the same columns, reduced instead of multiplied ------------------------------
def _pool_cols(x, kernel, stride, padding, value):
    """Every channel as its own one-channel image: cols (KH*KW, N*C*OH*OW), one column per
    window.  Returns ``(cols, xpad_shape, out_hw)``."""
    (n, c, h, w), (ph, pw) = x.shape, padding
    out_hw = conv_output_size("pool2d", (h, w), kernel, stride, (ph, ph, pw, pw))
    xpad = pad_hw(x, (ph, ph, pw, pw), value).reshape(n * c, 1, h + 2 * ph, w + 2 * pw)
    return im2col(xpad, kernel, stride, out_hw), xpad.shape, out_hw


def _pool_dx(dcols, xpad_shape, x_shape, kernel, stride, out_hw, padding):
    """dx (N, C, H, W) from the gradient of the pooling columns: col2im, then drop the padding."""
    (n, c, h, w), (ph, pw) = x_shape, padding
    return col2im(dcols, xpad_shape, kernel, stride, out_hw).reshape(n, c, h + 2 * ph, w + 2 * pw)[
        :, :, ph:ph + h, pw:pw + w]


def max_pool2d(x, kernel, stride, padding):
    """(y, backward) of max pooling: y = the max of each column of im2col(x padded with -inf);
    ``backward(dy)`` puts each window's dy on the row (the pixel) that won it, then col2im."""
    xp = get_array_module(x)
    cols, xpad_shape, out_hw = _pool_cols(x, kernel, stride, padding, -xp.inf)
    winner = cols.argmax(axis=0)                              # first maximum on ties
    y = cols.max(axis=0).reshape(x.shape[:2] + out_hw)

    def backward(dy):
        dcols = xp.zeros_like(cols)
        dcols[winner, xp.arange(cols.shape[1])] = dy.reshape(-1)
        return _pool_dx(dcols, xpad_shape, x.shape, kernel, stride, out_hw, padding)
    return y, backward


def avg_pool2d(x, kernel, stride, padding):
    """(y, backward) of average pooling (zero padding, divisor KH*KW): y = the mean of each
    column; ``backward(dy)`` gives every row of a column dy / (KH*KW), then col2im."""
    xp = get_array_module(x)
    cols, xpad_shape, out_hw = _pool_cols(x, kernel, stride, padding, 0)
    y = cols.mean(axis=0).reshape(x.shape[:2] + out_hw)

    def backward(dy):
        dcols = xp.broadcast_to(dy.reshape(1, -1) / cols.shape[0], cols.shape)
        return _pool_dx(dcols, xpad_shape, x.shape, kernel, stride, out_hw, padding)
    return y, backward
