"""Element-wise activations.  Each keeps the cheaper tensor for its backward pass.

All shapes: x, y, dy, dx are the same shape (any), so "(…)" below.
"""
from __future__ import annotations

from ..backend import get_array_module
from .module import Module


class Identity(Module):
    """y = x;  dx = dy."""

    def forward(self, x):
        self._check_input(x)
        return x

    def backward(self, dy):
        return dy


class ReLU(Module):
    r"""y = max(x, 0)

    Backward: dx = dy · [x > 0]   (the derivative at exactly 0 is taken as 0, like PyTorch).
    Caches the boolean mask [x > 0] (…).
    """

    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        self._check_input(x)
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy):
        self._require_cache("mask")
        return dy * self.mask


class LeakyReLU(Module):
    r"""y = x if x > 0 else a·x   (a = ``negative_slope``, 0.01 by default as in PyTorch)

    Backward: dx = dy · (1 if x > 0 else a).  Caches the mask [x > 0].
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.mask = None

    def forward(self, x):
        self._check_input(x)
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.where(self.mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy):
        self._require_cache("mask")
        xp = get_array_module(dy)
        return xp.where(self.mask, dy, dy * dy.dtype.type(self.negative_slope))

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
        return dy * (1 - self.y * self.y)


def sigmoid(x):
    r"""σ(x) = 1 / (1 + e^{−x}), computed without overflow for large |x|:
    with e = e^{−|x|} ∈ (0, 1],  σ(x) = 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


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
        return dy * self.y * (1 - self.y)
