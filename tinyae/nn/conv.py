"""Convolution layers: Conv2d (to downsample with a stride) and ConvTranspose2d (to upsample).

Reading order, from the definition to the code that runs:

1. ``tinyae.nn.reference``: ``conv2d``, ``conv_transpose2d`` and their backward passes as
   plain loops over output pixels (NCHW, float64) — the definition.
2. ``tinyae.nn.im2col``: the same as whole-matrix products, ``y = W · im2col(x)``,
   ``dW = dy · colsᵀ``, ``dx = col2im(Wᵀ · dy)`` (docs/backprop.md derives each line).
3. ``tinyae.nn._conv_engine``: what these layers call by default — the same products in a
   batch-last layout, a band of rows at a time, with reused buffers and the flipped-kernel route.

Each layer runs any of the three: ``Conv2d(..., impl="im2col")`` (or "loops", NumPy only,
slow) runs the readable level instead of the engine, and :func:`set_conv_impl` switches every
convolution of a model, so a whole model can be trained on the level a learner reads
(tests/test_conv_levels.py trains the conv AE on each and gets the same numbers).  The two
layers are adjoint: the forward of one is the input gradient of the other, so both are
assembled from the same functions.
"""
from __future__ import annotations

import numpy

from ..backend import get_array_module
from . import _conv_engine as engine
from . import im2col, reference
from ._conv_args import channels as _channels, check_positive, conv_output_size, pair, resolve_padding
from .init import layer_parameters
from .module import Module

IMPLS = ("engine", "im2col", "loops")   # the three levels, fastest first


def _impl(impl, layer):
    if impl not in IMPLS:
        raise ValueError(f"{layer}: impl must be one of {IMPLS}, got {impl!r}")
    return impl


def set_conv_impl(model, impl):
    """Run every Conv2d / ConvTranspose2d of ``model`` on ``impl`` ("engine", "im2col" or
    "loops"); returns the model.  The parameters are untouched: only who computes changes."""
    for m in model.modules():
        if isinstance(m, (Conv2d, ConvTranspose2d)):
            m.impl = _impl(impl, repr(m))
            m._moved()              # the old level's cache means nothing to the new one
    return model


def _host(a, like):
    """A float64 loop-level result back in ``like``'s dtype (the loops compute in float64)."""
    return a.astype(like.dtype, copy=False)


def _add_grads(layer, x, grads, need_dx):
    """A readable level's (dx, dW, db): dW and db added into the layer's .grad, dx returned
    (None when nobody needs it)."""
    dx, dw, db = grads
    layer.weight.grad += _host(dw, x)
    if layer.bias is not None:
        layer.bias.grad += _host(db, x)
    return _host(dx, x) if need_dx else None


def _loops_input(layer, x):
    """The loops level is host NumPy only (tinyae/nn/reference.py): refuse a device array."""
    if get_array_module(x) is not numpy:
        raise ValueError(f"{layer!r}: impl='loops' runs on NumPy arrays only (the definition, on the "
                         "host); use impl='im2col' or 'engine' on the GPU")
    return x


class Conv2d(Module):
    r"""2-D convolution (cross-correlation, as in every deep-learning library), NCHW.

    Reading order: ``tinyae.nn.reference.conv2d`` / ``conv2d_backward`` (loops, the
    definition) → ``tinyae.nn.im2col.conv2d_forward`` / ``conv2d_backward`` (the matrix
    products below) → ``tinyae.nn._conv_engine.conv2d_forward`` / ``conv2d_backward`` (what
    this layer runs).

    Shapes: x (N, C, H, W), weight (F, C, KH, KW) as in PyTorch, bias (F,), y (N, F, OH, OW),
    with the input zero-padded to (Hp, Wp) = (PT+H+PB, PL+W+PR) and
    OH = (Hp - KH) // SH + 1, OW = (Wp - KW) // SW + 1.

    Forward:
        y[n, f, oh, ow] = b[f] + Σ_{c, i, j} w[f, c, i, j] · xpad[n, c, SH*oh + i, SW*ow + j]
    computed as a matrix product over the im2col matrix
        cols (C*KH*KW, OH*OW*N),   y = w.reshape(F, C*KH*KW) @ cols + b
    (in the engine with the batch moved last, built and multiplied a band of output rows at a
    time so that it stays in cache).  With stride 1 and F < C the same y is computed as the
    transposed convolution of x with the flipped kernel, which needs a buffer C/F times
    smaller (``self.route`` is "flipped"; decided once, in the constructor, by
    ``_conv_engine.conv2d_route``; docs/backprop.md, "the flipped route").

    Backward, given dy = dL/dy (N, F, OH, OW), as (F, OH*OW*N):
        dL/db = Σ_{n, oh, ow} dy[n, f, oh, ow]                               (F,)
        dL/dw = dy @ colsᵀ                                                   (F, C*KH*KW)
        dL/dx = col2im(w.reshape(F, C*KH*KW)ᵀ @ dy) without the padding      (N, C, H, W)
    The last line is a transposed convolution of dy with the same weight (docs/backprop.md);
    it is skipped (backward returns None) with ``backward(dy, need_dx=False)``.  With stride 1
    and F < C both gradients come from one smaller im2col, of dy.
    Forward caches the unpadded input (in CHWN order, ``x_chwn``); backward rebuilds the im2col
    bands from it.

    Arguments: kernel_size, stride, padding are ints or pairs; ``padding="same"`` (stride 1
    only) keeps H×W, padding an even kernel asymmetrically like Keras (one more row/column at
    the bottom/right); ``padding="valid"`` means 0.
    Init, from ``rng``: ``init="pytorch"`` (default) w, b ~ U(-1/√fan_in, 1/√fan_in), fan_in = C*KH*KW;
    ``init="keras"``/"glorot": w ~ U(-l, l), l = √(6/(fan_in + fan_out)), fan_out = F*KH*KW, b = 0.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, rng=None,
                 init="pytorch", impl="engine"):
        super().__init__()
        name = f"Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size!r})"
        _channels(name, in_channels, out_channels)
        self.impl = _impl(impl, name)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = check_positive(pair(kernel_size, "kernel_size", name), "kernel_size", name)
        self.stride = check_positive(pair(stride, "stride", name), "stride", name)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", name)
        self.pads = resolve_padding(padding, self.kernel_size, self.stride, name)  # (PT, PB, PL, PR)
        self.route = engine.conv2d_route(out_channels, in_channels, self.kernel_size, self.stride, self.pads)
        kh, kw = self.kernel_size
        self.weight, self.bias = layer_parameters((out_channels, in_channels, kh, kw),
                                                  out_channels if bias else None, init, rng, name)
        self.x_chwn = None  # cached input in CHWN order (C, H, W, N)
        self.cache = None   # what the im2col / loops levels keep for backward

    def output_size(self, h, w):
        """(OH, OW) for an H×W input, or a ValueError if the kernel does not fit."""
        return conv_output_size(repr(self), (h, w), self.kernel_size, self.stride, self.pads)

    def forward(self, x):
        n, c, h, w = _check_nchw(self, x)
        oh, ow = self.output_size(h, w)
        b = None if self.bias is None else self.bias.data
        if self.impl == "im2col":   # level 2: y = W · im2col(x) + b  (the engine adds b itself below)
            y, cols = im2col.conv2d_forward(x, self.weight.data, b, self.stride, self.pads)
            self.cache = (x, cols, y.shape)
            return y
        if self.impl == "loops":    # level 1: the definition, one window at a time
            y = _host(reference.conv2d(_loops_input(self, x), self.weight.data, b, self.stride, self.pads), x)
            self.cache = (x, None, y.shape)
            return y
        self.x_chwn = engine.to_chwn(x)                                   # (C, H, W, N)
        y_cols = engine.conv2d_forward(self.x_chwn, self.weight.data, self.stride, self.pads, (oh, ow),
                                       self.route)                        # (F, OH*OW*N)
        if self.bias is not None:
            y_cols += self.bias.data[:, None]
        self.out_hw = (oh, ow)
        return engine.from_chwn(y_cols.reshape(self.out_channels, oh, ow, n))   # (N, F, OH, OW)

    def backward(self, dy, need_dx=True):
        if self.impl != "engine":
            return self._readable_backward(dy, need_dx)
        self._require_cache("x_chwn")
        f, (oh, ow) = self.out_channels, self.out_hw
        n = self.x_chwn.shape[3]
        self._check_dy(dy, (n, f, oh, ow), self.x_chwn.dtype)
        dy_cols = engine.to_chwn(dy).reshape(f, -1)                       # (F, OH*OW*N)
        dx_chwn, dw_mat = engine.conv2d_backward(self.x_chwn, dy_cols, self.weight.data, self.stride, self.pads,
                                                 self.out_hw, self.route, need_dx=need_dx)
        self.weight.grad += dw_mat.reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += dy_cols.sum(axis=1)
        return None if dx_chwn is None else engine.from_chwn(dx_chwn)     # (N, C, H, W)

    def _readable_backward(self, dy, need_dx):
        """Backward on the im2col or loops level: (dx, dW, db) from the level's own function."""
        self._require_cache("cache")
        x, cols, y_shape = self.cache
        self._check_dy(dy, y_shape, x.dtype)
        if self.impl == "im2col":
            grads = im2col.conv2d_backward(dy, cols, x.shape, self.weight.data, self.stride, self.pads)
        else:
            grads = reference.conv2d_backward(x, self.weight.data, dy, self.stride, self.pads)
        return _add_grads(self, x, grads, need_dx)

    def _moved(self):
        self.x_chwn = self.cache = None

    def extra_repr(self):
        padding = "" if self.padding in ((0, 0), "valid") else f", padding={self.padding!r}"
        return _conv_repr(self, padding)


class ConvTranspose2d(Module):
    r"""2-D transposed convolution ("deconvolution"), NCHW: the adjoint of Conv2d.

    Reading order: ``tinyae.nn.reference.conv_transpose2d`` / ``conv_transpose2d_backward``
    (loops, the definition) → ``tinyae.nn.im2col.conv_transpose2d_forward`` / ``..._backward``
    (``y = col2im(Wᵀ · x)``) → ``tinyae.nn._conv_engine.conv2d_backward_data`` /
    ``conv2d_chwn`` (what this layer runs).

    Shapes: x (N, C, H, W) with C = in_channels, weight (C, F, KH, KW) as in PyTorch
    (F = out_channels), bias (F,), y (N, F, OH, OW) with
        OH = (H - 1)*SH - 2*PH + KH + OPH,   OW = (W - 1)*SW - 2*PW + KW + OPW.

    Forward: every input pixel stamps a weighted copy of the kernel on the output,
    windows SH apart; overlaps add; then P rows/columns are cut from each border:
        ypad[n, f, SH*h + i, SW*w + j] += Σ_c x[n, c, h, w] · w[c, f, i, j]
        y = ypad[:, :, PH:PH+OH, PW:PW+OW] + b[f]
    This is exactly dL/dx of ``Conv2d(F, C, kernel, stride, padding)`` with weight w, and is
    computed by the same code (``_conv_engine.conv2d_backward_data``: a GEMM, then col2im).
    ``output_padding`` (< stride) only adds rows/columns at the bottom/right, so that the
    output size can be any of the sizes a stride-S convolution maps to H.

    Backward, given dy (N, F, OH, OW), by the adjoint argument once more:
        dL/dx = Conv2d forward of dy (padded by P) with the same weight             (N, C, H, W)
        dL/dw[c, f, i, j] = Σ_{n, h, w} x[n, c, h, w] · dypad[n, f, SH*h + i, SW*w + j]
              = x.reshape(C, H*W*N) @ im2col(dypad)ᵀ                               (C, F*KH*KW)
        dL/db = Σ_{n, oh, ow} dy[n, f, oh, ow]                                        (F,)
    (dL/dx is skipped, and backward returns None, with ``backward(dy, need_dx=False)``.)

    Init, from ``rng``: ``init="pytorch"`` (default) w, b ~ U(-1/√fan_in, 1/√fan_in) with fan_in
    computed from the weight's second axis as PyTorch does: fan_in = F*KH*KW; ``init="keras"``/
    "glorot": w ~ U(-l, l), l = √(6/(fan_in + fan_out)), fan_out = C*KH*KW, b = 0.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, rng=None, init="pytorch", impl="engine"):
        super().__init__()
        name = f"ConvTranspose2d({in_channels}, {out_channels}, kernel_size={kernel_size!r})"
        _channels(name, in_channels, out_channels)
        self.impl = _impl(impl, name)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = check_positive(pair(kernel_size, "kernel_size", name), "kernel_size", name)
        self.stride = check_positive(pair(stride, "stride", name), "stride", name)
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a pair of ints, got {padding!r}")
        self.padding = check_positive(pair(padding, "padding", name), "padding", name, allow_zero=True)
        self.output_padding = check_positive(pair(output_padding, "output_padding", name),
                                             "output_padding", name, allow_zero=True)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller than "
                             f"the stride {self.stride}")
        ph, pw = self.padding
        self.pads = (ph, ph, pw, pw)
        # the forward is the input gradient of Conv2d(F -> C) with this weight (C, F, KH, KW)
        self.route = engine.conv2d_route(in_channels, out_channels, self.kernel_size, self.stride, self.pads)
        kh, kw = self.kernel_size
        self.weight, self.bias = layer_parameters((in_channels, out_channels, kh, kw),
                                                  out_channels if bias else None, init, rng, name)
        self.x_chwn = None  # cached input in CHWN order (C, H, W, N)
        self.cache = None   # what the im2col / loops levels keep for backward

    def output_size(self, h, w):
        """(OH, OW) for an H×W input, or a ValueError if that is not positive."""
        (kh, kw), (sh, sw), (ph, pw), (oph, opw) = self.kernel_size, self.stride, self.padding, self.output_padding
        oh, ow = (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw
        if oh <= 0 or ow <= 0:
            raise ValueError(f"{self!r}: a {h}×{w} input gives a non-positive output size ({oh}, {ow}); "
                             f"padding {self.padding} is too large for kernel {self.kernel_size}")
        return oh, ow

    def forward(self, x):
        n, c, h, w = _check_nchw(self, x)
        oh, ow = self.output_size(h, w)
        if self.impl != "engine":   # level 2: y = col2im(Wᵀ · x) + b;  level 1: the stamping loops
            b = None if self.bias is None else self.bias.data
            args = (x, self.weight.data, b, self.stride, self.padding, self.output_padding)
            y = im2col.conv_transpose2d_forward(*args) if self.impl == "im2col" else \
                _host(reference.conv_transpose2d(_loops_input(self, x), *args[1:]), x)
            self.cache = (x, None, y.shape)
            return y
        self.x_chwn = engine.to_chwn(x)                                   # (C, H, W, N)
        self.in_hw, self.out_hw = (h, w), (oh, ow)
        # the input gradient of Conv2d(F -> C) whose output is our input x
        y_chwn = engine.conv2d_backward_data(self.x_chwn.reshape(c, -1), self.weight.data, (h, w), (oh, ow),
                                             self.stride, self.pads, self.route)
        y = engine.from_chwn(y_chwn)                                      # (N, F, OH, OW)
        if self.bias is not None:
            y += self.bias.data[:, None, None]
        return y

    def backward(self, dy, need_dx=True):
        if self.impl != "engine":
            return self._readable_backward(dy, need_dx)
        self._require_cache("x_chwn")
        (h, w), (oh, ow) = self.in_hw, self.out_hw
        n = self.x_chwn.shape[3]
        x_cols = self.x_chwn.reshape(self.in_channels, -1)                # (C, H*W*N)
        self._check_dy(dy, (n, self.out_channels, oh, ow), self.x_chwn.dtype)
        dypad = engine.to_chwn(dy, self.pads)                             # (F, OH+2PH, OW+2PW, N)
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=(0, 2, 3))
        if not need_dx:
            dw_mat = engine.conv2d_backward_weight(dypad, x_cols, self.kernel_size, self.stride, (h, w))
            self.weight.grad += dw_mat.reshape(self.weight.shape)
            return None
        # the forward of Conv2d(F -> C), which reads exactly the H×W windows our forward wrote;
        # from the same im2col of dy: dw = x @ im2col(dypad)ᵀ
        dx_cols, dw_mat = engine.conv2d_chwn(dypad, self.weight.data, self.stride, (h, w), dy_cols=x_cols)
        self.weight.grad += dw_mat.reshape(self.weight.shape)
        return engine.from_chwn(dx_cols.reshape(self.in_channels, h, w, n))   # (N, C, H, W)

    def _readable_backward(self, dy, need_dx):
        """Backward on the im2col or loops level: (dx, dW, db) from the level's own function."""
        self._require_cache("cache")
        x, _, y_shape = self.cache
        self._check_dy(dy, y_shape, x.dtype)
        if self.impl == "im2col":
            grads = im2col.conv_transpose2d_backward(dy, x, self.weight.data, self.stride, self.padding)
        else:
            grads = reference.conv_transpose2d_backward(x, self.weight.data, dy, self.stride, self.padding)
        return _add_grads(self, x, grads, need_dx)

    def _moved(self):
        self.x_chwn = self.cache = None

    def extra_repr(self):
        padding = "" if self.padding == (0, 0) else f", padding={self.padding}"
        if self.output_padding != (0, 0):
            padding += f", output_padding={self.output_padding}"
        return _conv_repr(self, padding)


def _conv_repr(layer, padding: str) -> str:
    """"C, F, kernel_size=…[, stride=…]<padding>[, bias=False]" — the arguments that differ from
    the defaults, as PyTorch prints them."""
    s = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}"
    if layer.stride != (1, 1):
        s += f", stride={layer.stride}"
    return s + padding + (", bias=False" if layer.bias is None else "")


def _check_nchw(layer, x):
    """(N, C, H, W) of ``x`` after checking it is a float NCHW batch with ``layer.in_channels``."""
    layer._check_input(x, ndim=4)
    n, c, h, w = x.shape
    if c != layer.in_channels:
        raise ValueError(f"{layer!r} expected {layer.in_channels} input channels, got {c} "
                         f"(input shape {tuple(x.shape)})")
    return n, c, h, w
