"""Element-wise activations.  Each keeps the cheaper tensor for its backward pass.

All shapes: x, y, dy, dx are the same shape (any), so "(…)" below.
"""
from __future__ import annotations

import numpy

from .._checks import real
from ..backend import get_array_module
from .module import Module


class Identity(Module):
    """y = x;  dx = dy."""

    def __init__(self):
        super().__init__()
        self.out_shape = self.out_dtype = None

    def forward(self, x):
        self._check_input(x)
        self.out_shape, self.out_dtype = x.shape, x.dtype
        return x

    def backward(self, dy):
        self._require_cache("out_shape")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        return dy


class ReLU(Module):
    r"""y = max(x, 0)

    Backward: dx = dy · [x > 0]   (the derivative at exactly 0 is taken as 0, like PyTorch).
    Caches the boolean mask [x > 0] (…).
    """

    def __init__(self):
        super().__init__()
        self.mask = self.out_dtype = None

    def forward(self, x):
        self._check_input(x)
        self.mask, self.out_dtype = x > 0, x.dtype
        return x * self.mask

    def backward(self, dy):
        self._require_cache("mask")
        self._check_dy(dy, self.mask.shape, self.out_dtype)
        return dy * self.mask


class LeakyReLU(Module):
    r"""y = x if x > 0 else a·x   (a = ``negative_slope``, 0.01 by default as in PyTorch)

    Backward: dx = dy · (1 if x > 0 else a).  Caches the mask [x > 0].
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = real(negative_slope, "negative_slope", "LeakyReLU")
        self.mask = self.out_dtype = None

    def forward(self, x):
        self._check_input(x)
        xp = get_array_module(x)
        self.mask, self.out_dtype = x > 0, x.dtype
        # For 0 ≤ a ≤ 1, "x if x > 0 else a·x" is max(x, a·x) (min for a > 1): one branch-free
        # pass, many times faster than xp.where on a random sign pattern.
        y = x * x.dtype.type(self.negative_slope)
        pick = xp.maximum if self.negative_slope <= 1 else xp.minimum
        return pick(x, y, out=y)

    def backward(self, dy):
        self._require_cache("mask")
        self._check_dy(dy, self.mask.shape, self.out_dtype)
        # the local slope is mask·(1 − a) + a: exactly 1 where x > 0 and a elsewhere
        a = self.negative_slope
        slope = self.mask * dy.dtype.type(1 - a)
        slope += dy.dtype.type(a)
        slope *= dy
        return slope

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    r"""y = tanh(x)

    Backward: dx = dy · (1 − y²), written with the output y, which is what we cache.
    """

    def __init__(self):
        super().__init__()
        self.y = None

    def forward(self, x):
        self._check_input(x)
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, dy):
        self._require_cache("y")
        self._check_dy(dy, self.y.shape, self.y.dtype)
        return dy * (1 - self.y * self.y)


def sigmoid(x):
    r"""σ(x) = 1 / (1 + e^{−x}), safe for any x.

    For very negative x, e^{−x} overflows to +inf (x < −88 in float32) and 1/(1 + inf) = 0,
    which is the correct limit; for large x, e^{−x} → 0 and σ → 1.  So the plain formula is
    exact in both tails; we only silence NumPy's overflow warning.  (It is computed in one
    scratch buffer: four passes over memory, no branches.)"""
    xp = get_array_module(x)
    t = xp.negative(x)
    with numpy.errstate(over="ignore"):
        xp.exp(t, out=t)
    t += 1
    return xp.divide(1, t, out=t)


class Sigmoid(Module):
    r"""y = σ(x) = 1 / (1 + e^{−x})   (numerically stable, see :func:`sigmoid`)

    Backward: dx = dy · y (1 − y), written with the cached output y.
    """

    def __init__(self):
        super().__init__()
        self.y = None

    def forward(self, x):
        self._check_input(x)
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy):
        self._require_cache("y")
        self._check_dy(dy, self.y.shape, self.y.dtype)
        return dy * self.y * (1 - self.y)
