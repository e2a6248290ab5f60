"""Layers that only change the view of the data.  Backward undoes the reshape."""
from __future__ import annotations

import math

from .module import Module


class Flatten(Module):
    """(N, d1, d2, …) → (N, d1·d2·…);  backward reshapes dy (N, D) back to the input shape."""

    def __init__(self):
        super().__init__()
        self.in_shape = None

    def forward(self, x):
        self._check_input(x)
        if x.ndim < 1:
            raise ValueError("Flatten() expected an input with a batch axis, got a 0-d array")
        self.in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        self._require_cache("in_shape")
        return dy.reshape(self.in_shape)


class Reshape(Module):
    """(N, D) → (N, *shape) with D = prod(shape), e.g. Reshape(16, 7, 7) before a decoder's
    convolutions;  backward reshapes dy back to (N, D)."""

    def __init__(self, *shape: int):
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not shape or any(int(s) <= 0 for s in shape):
            raise ValueError(f"Reshape: target shape must be positive integers, got {shape}")
        self.shape = tuple(int(s) for s in shape)
        self.in_shape = None

    def forward(self, x):
        self._check_input(x)
        size = math.prod(x.shape[1:])
        if size != math.prod(self.shape):
            raise ValueError(f"{self!r} expected {math.prod(self.shape)} features per sample, "
                             f"got input of shape {tuple(x.shape)} ({size} per sample)")
        self.in_shape = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, dy):
        self._require_cache("in_shape")
        return dy.reshape(self.in_shape)

    def extra_repr(self):
        return ", ".join(map(str, self.shape))
