"""Layers that only change the view of the data.  Backward undoes the reshape."""
from __future__ import annotations

import math

from .._checks import positive_int
from .module import Module


class Flatten(Module):
    """(N, d1, d2, …) → (N, d1·d2·…);  backward reshapes dy (N, D) back to the input shape."""

    def __init__(self):
        super().__init__()
        self.in_shape = self.out_shape = self.out_dtype = None

    def forward(self, x):
        if getattr(x, "ndim", 1) < 1:
            raise ValueError("Flatten() expected an input with a batch axis, got a 0-d array")
        self._check_input(x)
        y = x.reshape(x.shape[0], -1)
        self.in_shape, self.out_shape, self.out_dtype = x.shape, y.shape, x.dtype
        return y

    def backward(self, dy, need_dx=True):
        self._require_cache("in_shape")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        return dy.reshape(self.in_shape) if need_dx else None


class Reshape(Module):
    """(N, D) → (N, *shape) with D = prod(shape), e.g. Reshape(16, 7, 7) before a decoder's
    convolutions;  backward reshapes dy back to (N, D)."""

    def __init__(self, *shape: int):
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not shape:
            raise ValueError("Reshape: give the target shape per sample, e.g. Reshape(16, 7, 7); got none")
        self.shape = tuple(positive_int(s, f"target shape {shape}: size {i}", "Reshape")
                           for i, s in enumerate(shape))
        self.in_shape = self.out_shape = self.out_dtype = None

    def forward(self, x):
        self._check_input(x)
        size = math.prod(x.shape[1:])
        if size != math.prod(self.shape):
            raise ValueError(f"{self!r} expected {math.prod(self.shape)} features per sample, "
                             f"got input of shape {tuple(x.shape)} ({size} per sample)")
        y = x.reshape((x.shape[0],) + self.shape)
        self.in_shape, self.out_shape, self.out_dtype = x.shape, y.shape, x.dtype
        return y

    def backward(self, dy, need_dx=True):
        self._require_cache("in_shape")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        return dy.reshape(self.in_shape) if need_dx else None

    def extra_repr(self):
        return ", ".join(map(str, self.shape))
