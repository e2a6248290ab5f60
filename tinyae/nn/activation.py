"""Element-wise activations.  Each keeps the cheaper tensor for its backward pass.

All shapes: x, y, dy, dx are the same shape (any), so "(…)" below.

Each activation s also gives its own derivatives at any input x, without touching the
layer's cache: ``s1, s2 = act.derivatives(x)`` returns s'(x) and s''(x), arrays of x's
shape and dtype (the exact contractive penalty, :class:`tinyae.losses.ContractivePenalty`,
needs both, at the pre-activations).
"""
from __future__ import annotations

import numpy

from .._checks import real
from ..backend import get_array_module
from .module import Module


class Identity(Module):
    """y = x;  dx = dy.

    Derivatives: s'(x) = 1, s''(x) = 0.
    """

    def __init__(self):
        super().__init__()
        self.out_shape = self.out_dtype = None

    def forward(self, x):
        self._check_input(x)
        self.out_shape, self.out_dtype = x.shape, x.dtype
        return x

    def backward(self, dy, need_dx=True):
        self._require_cache("out_shape")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        return dy if need_dx else None

    def derivatives(self, x):
        """(s'(x), s''(x)) = (1, 0), arrays of x's shape and dtype."""
        xp = get_array_module(x)
        return xp.ones_like(x), xp.zeros_like(x)


class ReLU(Module):
    r"""y = max(x, 0)

    Backward: dx = dy · [x > 0]   (the derivative at exactly 0 is taken as 0, like PyTorch).
    Caches the boolean mask [x > 0] (…).

    Derivatives: s'(x) = [x > 0], s''(x) = 0 (almost everywhere; at the kink x = 0, s' is
    taken as 0, as in backward).
    """

    def __init__(self):
        super().__init__()
        self.mask = self.out_dtype = None

    def forward(self, x):
        self._check_input(x)
        self.mask, self.out_dtype = x > 0, x.dtype
        return x * self.mask

    def backward(self, dy, need_dx=True):
        self._require_cache("mask")
        self._check_dy(dy, self.mask.shape, self.out_dtype)
        return dy * self.mask if need_dx else None

    def derivatives(self, x):
        """(s'(x), s''(x)) = ([x > 0], 0), arrays of x's shape and dtype."""
        return (x > 0).astype(x.dtype), get_array_module(x).zeros_like(x)


class LeakyReLU(Module):
    r"""y = x if x > 0 else a·x   (a = ``negative_slope``, 0.01 by default as in PyTorch)

    Backward: dx = dy · (1 if x > 0 else a).  Caches the mask [x > 0].

    Derivatives: s'(x) = 1 if x > 0 else a, s''(x) = 0 (almost everywhere; at x = 0, s' is
    taken as a, as in backward).
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

    def backward(self, dy, need_dx=True):
        self._require_cache("mask")
        self._check_dy(dy, self.mask.shape, self.out_dtype)
        if not need_dx:
            return None
        # the local slope is mask·(1 − a) + a: exactly 1 where x > 0 and a elsewhere
        a = self.negative_slope
        slope = self.mask * dy.dtype.type(1 - a)
        slope += dy.dtype.type(a)
        slope *= dy
        return slope

    def derivatives(self, x):
        """(s'(x), s''(x)) = (1 where x > 0 else ``negative_slope``, 0), of x's shape and dtype."""
        xp = get_array_module(x)
        return xp.where(x > 0, x.dtype.type(1), x.dtype.type(self.negative_slope)), xp.zeros_like(x)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    r"""y = tanh(x)

    Backward: dx = dy · (1 − y²), written with the output y, which is what we cache.

    Derivatives, with t = tanh(x):  s'(x) = 1 − t²,  s''(x) = −2t (1 − t²) = −2t·s'(x)
    (differentiate 1 − t²: −2t·t').
    """

    def __init__(self):
        super().__init__()
        self.y = None

    def forward(self, x):
        self._check_input(x)
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, dy, need_dx=True):
        self._require_cache("y")
        self._check_dy(dy, self.y.shape, self.y.dtype)
        return dy * (1 - self.y * self.y) if need_dx else None

    def derivatives(self, x):
        """(s'(x), s''(x)) = (1 − t², −2t·(1 − t²)) with t = tanh(x)."""
        one = x.dtype.type(1)
        t = get_array_module(x).tanh(x)
        d1 = one - t * t
        return d1, -2 * t * d1


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

    Derivatives, with s = σ(x):  s'(x) = s (1 − s),  s''(x) = s'(x) (1 − 2s)
    (differentiate s(1 − s): s'(1 − s) − s·s' = s'(1 − 2s)).
    """

    def __init__(self):
        super().__init__()
        self.y = None

    def forward(self, x):
        self._check_input(x)
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy, need_dx=True):
        self._require_cache("y")
        self._check_dy(dy, self.y.shape, self.y.dtype)
        return dy * self.y * (1 - self.y) if need_dx else None

    def derivatives(self, x):
        """(s'(x), s''(x)) = (s(1 − s), s(1 − s)(1 − 2s)) with s = σ(x)."""
        one = x.dtype.type(1)
        s = sigmoid(x)
        d1 = s * (one - s)
        return d1, d1 * (one - 2 * s)
