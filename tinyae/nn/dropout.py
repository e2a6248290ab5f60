"""Dropout and input noise.  Both are random in training mode and the identity in eval mode.

Random numbers are drawn on the host from a seeded NumPy Generator and copied to the
active backend once per call, so a given seed gives the same masks on NumPy and CuPy.
Tests (and denoising recipes that need a known corruption) can pass their own
``mask`` / ``noise``.
"""
from __future__ import annotations

from .. import backend
from .._checks import real
from .init import as_generator
from .module import Module


class Dropout(Module):
    r"""Inverted dropout with drop probability p.

    Training:  m ~ Bernoulli(1 − p) per element,  y = x · m / (1 − p)   (so E[y] = x)
    Eval:      y = x
    Backward:  dx = dy · m / (1 − p)  (the same scaled mask; identity in eval mode)

    ``forward(x, mask=None)``: pass a 0/1 ``mask`` of x's shape to fix the randomness.
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        self.p = real(p, "p (the drop probability)", "Dropout", 0.0, 1.0, high_open=True)
        self.rng = as_generator(rng)
        self.scale = None  # the cached m / (1 − p), or None in eval mode
        self.out_shape = self.out_dtype = None

    def generator(self):
        return self.rng

    def forward(self, x, mask=None):
        self._check_input(x)
        self.out_shape, self.out_dtype = x.shape, x.dtype
        if not self.training or self.p == 0.0:
            self.scale = None
            return x
        xp = backend.get_array_module(x)
        if mask is None:
            mask = self.rng.random(x.shape) >= self.p
        elif getattr(mask, "shape", None) != x.shape:
            raise ValueError(f"{self!r}: mask shape {getattr(mask, 'shape', type(mask).__name__)} != input "
                             f"shape {tuple(x.shape)}; pass a 0/1 array of the input's shape")
        self.scale = xp.asarray(mask, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.scale

    def backward(self, dy, need_dx=True):
        self._require_cache("out_shape")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        if not need_dx:
            return None
        return dy if self.scale is None else dy * self.scale

    def extra_repr(self):
        return f"p={self.p}"


class GaussianNoise(Module):
    r"""Additive Gaussian input noise for denoising autoencoders.

    Training:  y = x + σ·ε,  ε ~ N(0, I)  (``forward(x, noise=ε)`` to fix ε)
    Eval:      y = x
    Backward:  dx = dy  (the noise does not depend on x)
    """

    def __init__(self, std: float = 0.1, rng=None):
        super().__init__()
        self.std = real(std, "std", "GaussianNoise", low=0.0)
        self.rng = as_generator(rng)
        self.out_shape = self.out_dtype = None

    def generator(self):
        return self.rng

    def forward(self, x, noise=None):
        self._check_input(x)
        self.out_shape, self.out_dtype = x.shape, x.dtype
        if not self.training or self.std == 0.0:
            return x
        xp = backend.get_array_module(x)
        if noise is None:
            noise = self.rng.standard_normal(x.shape)
        elif getattr(noise, "shape", None) != x.shape:
            raise ValueError(f"{self!r}: noise shape {getattr(noise, 'shape', type(noise).__name__)} != input "
                             f"shape {tuple(x.shape)}; pass an array of the input's shape")
        return x + xp.asarray(noise, dtype=x.dtype) * x.dtype.type(self.std)

    def backward(self, dy, need_dx=True):
        self._require_cache("out_shape")
        self._check_dy(dy, self.out_shape, self.out_dtype)
        return dy if need_dx else None

    def extra_repr(self):
        return f"std={self.std}"
