"""Parameter initialisation, done on the host with a seeded NumPy Generator and then moved
to the active backend (so the same seed gives the same weights on NumPy and CuPy)."""
from __future__ import annotations

import math

import numpy

from .. import backend
from .module import Parameter


def as_generator(rng) -> numpy.random.Generator:
    """``rng`` may be None (fresh entropy), an int seed, or a numpy Generator."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    return numpy.random.default_rng(rng)


def uniform_parameter(shape, bound: float, rng) -> Parameter:
    """A Parameter drawn from U(-bound, bound): PyTorch's default for Linear and Conv
    (kaiming_uniform with a=√5 gives bound = 1/√fan_in, the bias uses the same bound)."""
    host = as_generator(rng).uniform(-bound, bound, size=shape)
    return Parameter(backend.asarray(host, dtype=backend.default_dtype()))


def fan_in_bound(fan_in: int) -> float:
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
