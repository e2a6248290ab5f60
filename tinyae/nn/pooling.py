"""Pooling and upsampling layers, NCHW: MaxPool2d, AvgPool2d (downsample), MaxUnpool2d and
Upsample (upsample).  None has parameters.

Reading order for MaxPool2d and AvgPool2d: ``tinyae.nn.reference.max_pool2d`` /
``avg_pool2d`` and their ``*_backward`` (one loop per output pixel, the definition) →
``tinyae.nn.im2col.window_slices`` (the strided-slice loop over kernel offsets that im2col
uses too) → this file.  There is no separate engine: the loop over the KH×KW offsets below
already is the fast version.  For offset (i, j), ``xpad[:, :, rows, cols]`` is the
(N, C, OH, OW) grid of the pixels at position (i, j) of every window; no loop over pixels.
"""
from __future__ import annotations

import numbers

from ..backend import get_array_module
from ._conv_args import check_positive, conv_output_size, pair
from .im2col import pad_hw, window_slices
from .module import Module


def _window_args(layer, kernel_size, stride, padding):
    """Set ``layer.kernel_size``, ``.stride`` (default: the kernel) and ``.padding`` as checked
    pairs of ints; returns the layer's name for error messages."""
    name = f"{type(layer).__name__}(kernel_size={kernel_size!r})"
    layer.kernel_size = check_positive(pair(kernel_size, "kernel_size", name), "kernel_size", name)
    stride = layer.kernel_size if stride is None else stride
    layer.stride = check_positive(pair(stride, "stride", name), "stride", name)
    layer.padding = check_positive(pair(padding, "padding", name), "padding", name, allow_zero=True)
    return name


class _Pool2d(Module):
    """Argument handling shared by the pooling layers: kernel, stride (default: the kernel)
    and symmetric padding of at most half the kernel (PyTorch's rule: no window may lie
    entirely in the padding)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = _window_args(self, kernel_size, stride, padding)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size}")
        ph, pw = self.padding
        self.pads = (ph, ph, pw, pw)

    def output_size(self, h, w):
        return conv_output_size(repr(self), (h, w), self.kernel_size, self.stride, self.pads)

    def _windows(self, out_hw):
        kh, kw = self.kernel_size
        return enumerate(window_slices(kh, kw, self.stride, out_hw))

    def _crop(self, dxpad, hw):
        """dx without the padding, as a contiguous array."""
        (h, w), (pt, _, pl, _) = hw, self.pads
        if not any(self.pads):
            return dxpad
        xp = get_array_module(dxpad)
        return xp.ascontiguousarray(dxpad[:, :, pt:pt + h, pl:pl + w])

    def extra_repr(self):
        return _window_repr(self)


class MaxPool2d(_Pool2d):
    r"""Max over each KH×KW window, windows SH×SW apart, on an input padded with -inf.

    Reading order: ``tinyae.nn.reference.max_pool2d`` / ``max_pool2d_backward`` (loops, the
    definition) → ``tinyae.nn.im2col.window_slices`` (the offsets loop) → this class.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW), OH = (H + 2PH - KH) // SH + 1 (likewise OW).

    Forward:  y[n, c, oh, ow] = max_{i, j} xpad[n, c, SH*oh + i, SW*ow + j];  we also keep
    ``argmax`` (N, C, OH, OW), the offset k = i*KW + j that won (the first one on ties, as
    PyTorch).  With ``return_indices=True`` forward returns ``(y, indices)``: int64 (N, C, OH, OW),
    the flat position h*W + w of the winner in its unpadded H×W plane (PyTorch's convention,
    what MaxUnpool2d takes).

    Backward: the max passes its gradient to the winner only, so the gradient is *routed*:
        dxpad[n, c, SH*oh + i, SW*ow + j] += dy[n, c, oh, ow]   where (i, j) won window (oh, ow)
    done as one masked slice-add per offset; overlapping windows add up; then drop the padding.
    ``backward(dy)`` takes only dy, also when forward returned indices.
    """

    def __init__(self, kernel_size, stride=None, padding=0, return_indices=False):
        super().__init__(kernel_size, stride, padding)
        self.return_indices = bool(return_indices)
        self.argmax = None

    def forward(self, x):
        self._check_input(x, ndim=4)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        oh, ow = self.output_size(h, w)
        xpad = pad_hw(x, self.pads, value=-xp.inf)
        kh, kw = self.kernel_size
        y = argmax = better = None
        for k, (i, j, rows, cols) in self._windows((oh, ow)):
            v = xpad[:, :, rows, cols]
            if y is None:
                y = v.copy()
                argmax = xp.zeros(y.shape, dtype=xp.uint8 if kh * kw <= 256 else xp.int32)
                better = xp.empty(y.shape, dtype=bool)
                continue
            xp.greater(v, y, out=better)        # strict: the first maximum wins ties
            xp.maximum(y, v, out=y)
            # argmax = k where better, else unchanged.  The offsets come in increasing order,
            # so that is max(argmax, k*better): plain arithmetic, much faster than a masked copy.
            xp.maximum(argmax, better.view(xp.uint8) * argmax.dtype.type(k), out=argmax)
        self.argmax, self.in_shape, self.in_dtype = argmax, x.shape, x.dtype
        if not self.return_indices:
            return y
        return y, self.indices()

    def indices(self):
        """The winners of the last forward as PyTorch-style flat indices h*W + w, int64 (N, C, OH, OW)."""
        self._require_cache("argmax")
        xp = get_array_module(self.argmax)
        _, _, h, w = self.in_shape
        (_, kw), (sh, sw), (pt, _, pl, _) = self.kernel_size, self.stride, self.pads
        oh, ow = self.argmax.shape[2:]
        k = self.argmax.astype(xp.int64)
        row = xp.arange(oh, dtype=xp.int64)[:, None] * sh - pt + k // kw   # (N, C, OH, OW)
        col = xp.arange(ow, dtype=xp.int64) * sw - pl + k % kw
        return row * w + col

    def backward(self, dy, need_dx=True):
        self._require_cache("argmax")
        self._check_dy(dy, self.argmax.shape, self.in_dtype)
        if not need_dx:
            return None
        xp = get_array_module(dy)
        n, c, h, w = self.in_shape
        pt, pb, pl, pr = self.pads
        dxpad = xp.zeros((n, c, h + pt + pb, w + pl + pr), dtype=dy.dtype)
        overlap = any(s < k for s, k in zip(self.stride, self.kernel_size))
        for k, (i, j, rows, cols) in self._windows(dy.shape[2:]):
            won = self.argmax == k              # (N, C, OH, OW): windows whose max sat at (i, j)
            if overlap:                         # a pixel may win several windows: add
                dxpad[:, :, rows, cols] += dy * won
            else:                               # each pixel is in one window: write in place
                xp.multiply(dy, won, out=dxpad[:, :, rows, cols])
        return self._crop(dxpad, (h, w))

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", return_indices=True" if self.return_indices else "")


class AvgPool2d(_Pool2d):
    r"""Mean over each KH×KW window of the zero-padded input (PyTorch's default
    ``count_include_pad=True``: the divisor is always KH*KW, padding zeros included).

    Reading order: ``tinyae.nn.reference.avg_pool2d`` / ``avg_pool2d_backward`` (loops, the
    definition) → ``tinyae.nn.im2col.window_slices`` (the offsets loop) → this class.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW), OH = (H + 2PH - KH) // SH + 1 (likewise OW).

    Forward:  y[n, c, oh, ow] = (1 / (KH*KW)) Σ_{i, j} xpad[n, c, SH*oh + i, SW*ow + j]
    Backward: each pixel of a window gets an equal share of its gradient,
        dxpad[n, c, SH*oh + i, SW*ow + j] += dy[n, c, oh, ow] / (KH*KW)   for every (i, j)
    (one slice-add per offset), then drop the padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
        self.in_shape = None

    def forward(self, x):
        self._check_input(x, ndim=4)
        n, c, h, w = x.shape
        oh, ow = self.output_size(h, w)
        xpad = pad_hw(x, self.pads, value=0)
        y = None
        for _, (i, j, rows, cols) in self._windows((oh, ow)):
            if y is None:
                y = xpad[:, :, rows, cols].copy()
            else:
                y += xpad[:, :, rows, cols]
        y /= self.kernel_size[0] * self.kernel_size[1]
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return y

    def backward(self, dy, need_dx=True):
        self._require_cache("in_shape")
        xp = get_array_module(dy)
        n, c, h, w = self.in_shape
        expected = (n, c) + self.output_size(h, w)
        self._check_dy(dy, expected, self.in_dtype)
        if not need_dx:
            return None
        pt, pb, pl, pr = self.pads
        share = dy / (self.kernel_size[0] * self.kernel_size[1])
        dxpad = xp.zeros((n, c, h + pt + pb, w + pl + pr), dtype=dy.dtype)
        for _, (i, j, rows, cols) in self._windows(dy.shape[2:]):
            dxpad[:, :, rows, cols] += share
        return self._crop(dxpad, (h, w))


class MaxUnpool2d(Module):
    r"""Partial inverse of MaxPool2d: put each value back where its maximum came from, zeros
    elsewhere.

    ``forward(x, indices, output_size=None)``: x and indices (N, C, H, W), indices the int
    flat positions h*W + w returned by ``MaxPool2d(return_indices=True)``.  The output is
    (N, C, OH, OW) with, by default, OH = (H - 1)*SH - 2*PH + KH (likewise OW): the size of the
    pooled input, give ``output_size`` ((OH, OW) or (N, C, OH, OW)) when pooling dropped rows.

        y.reshape(N, C, OH*OW)[n, c, indices[n, c, h, w]] = x[n, c, h, w]

    Backward: y is a scatter of x, so dx is the gather of dy at the same places,
        dx[n, c, h, w] = dy.reshape(N, C, OH*OW)[n, c, indices[n, c, h, w]],
    and the indices get no gradient: ``backward(dy)`` returns dx only.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        _window_args(self, kernel_size, stride, padding)
        self.target = None

    def output_size(self, h, w):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw

    def forward(self, x, indices, output_size=None):
        self._check_input(x, ndim=4)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        if tuple(getattr(indices, "shape", ())) != tuple(x.shape):
            raise ValueError(f"{self!r} expected indices of the input's shape {tuple(x.shape)}, "
                             f"got {tuple(getattr(indices, 'shape', ()))}")
        if getattr(indices, "dtype", None) is None or indices.dtype.kind not in "iu":
            raise ValueError(f"{self!r} expected integer indices (from MaxPool2d(return_indices=True)), "
                             f"got dtype {getattr(indices, 'dtype', None)}")
        oh, ow = self.output_size(h, w) if output_size is None else tuple(output_size)[-2:]
        if oh <= 0 or ow <= 0:
            raise ValueError(f"{self!r}: output size ({oh}, {ow}) for a {h}×{w} input is not positive")
        lo, hi = (int(indices.min()), int(indices.max())) if indices.size else (0, 0)
        if lo < 0 or hi >= oh * ow:  # checked (one GPU sync): a bad index would land in another plane
            raise ValueError(f"{self!r}: indices must lie in the {oh}×{ow} output plane [0, {oh * ow}), "
                             f"got values in [{lo}, {hi}]; pass output_size or check the indices come "
                             "from the matching MaxPool2d")
        # position of every input value in the flattened output (N*C planes of OH*OW)
        target = (xp.arange(n * c, dtype=xp.int64) * (oh * ow)).reshape(n, c, 1, 1) + indices
        self.target, self.in_shape, self.out_shape = target.reshape(-1), x.shape, (n, c, oh, ow)
        self.out_dtype = x.dtype
        y = xp.zeros(n * c * oh * ow, dtype=x.dtype)
        y[self.target] = x.reshape(-1)
        return y.reshape(n, c, oh, ow)

    def backward(self, dy, need_dx=True):
        self._require_cache("target")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        return dy.reshape(-1)[self.target].reshape(self.in_shape) if need_dx else None

    def extra_repr(self):
        return _window_repr(self)


class Upsample(Module):
    r"""Nearest-neighbour upsampling by integer factors (SH, SW): every pixel becomes an SH×SW block.

    Shapes: x (N, C, H, W) -> y (N, C, SH*H, SW*W).
    Forward:  y[n, c, SH*h + a, SW*w + b] = x[n, c, h, w]   for 0 ≤ a < SH, 0 ≤ b < SW.
    Backward: x[n, c, h, w] was copied to the whole block, so its gradient is the sum over it:
        dx[n, c, h, w] = Σ_{a, b} dy[n, c, SH*h + a, SW*w + b],
    i.e. dx = Σ_{a, b} dy[:, :, a::SH, b::SW]: SH*SW strided slices added up (this is much
    faster in NumPy than ``dy.reshape(N, C, H, SH, W, SW).sum((3, 5))``).

    Followed by a stride-1 convolution this is the upsampling that avoids the checkerboard
    pattern of a transposed convolution whose kernel size is not a multiple of its stride.
    """

    def __init__(self, scale_factor, mode="nearest"):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is implemented, got mode={mode!r}")
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
        ok = len(factors) == 2 and all(isinstance(f, numbers.Real) and not isinstance(f, bool)
                                       and float(f).is_integer() for f in factors)
        if not ok:
            raise ValueError(f"Upsample: scale_factor must be a positive integer or a pair of them, "
                             f"got {scale_factor!r}")
        self.scale_factor = check_positive(tuple(int(f) for f in factors), "scale_factor", "Upsample")
        self.mode = mode
        self.in_shape = None

    def forward(self, x):
        self._check_input(x, ndim=4)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        sh, sw = self.scale_factor
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return xp.repeat(xp.repeat(x, sh, axis=2), sw, axis=3)

    def backward(self, dy, need_dx=True):
        self._require_cache("in_shape")
        n, c, h, w = self.in_shape
        sh, sw = self.scale_factor
        self._check_dy(dy, (n, c, h * sh, w * sw), self.in_dtype)
        if not need_dx:
            return None
        dx = dy[:, :, 0::sh, 0::sw].copy()     # Σ over the SH×SW offsets (a, b) of each block
        for a in range(sh):
            for b in range(sw):
                if a or b:
                    dx += dy[:, :, a::sh, b::sw]
        return dx

    def extra_repr(self):
        sf = self.scale_factor[0] if self.scale_factor[0] == self.scale_factor[1] else self.scale_factor
        return f"scale_factor={sf}, mode={self.mode!r}"


def _window_repr(layer):
    """"kernel_size=…, stride=…[, padding=…]" for the pooling and unpooling layers."""
    s = f"kernel_size={layer.kernel_size}, stride={layer.stride}"
    if layer.padding != (0, 0):
        s += f", padding={layer.padding}"
    return s
