"""Parameter initialisation, done on the host with a seeded NumPy Generator and then moved
to the active backend (so the same seed gives the same weights on NumPy and CuPy)."""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from .module import Parameter


def as_generator(rng, where: str = "rng") -> numpy.random.Generator:
    """``rng`` may be None (fresh entropy), an int seed >= 0, or a numpy Generator (or a
    SeedSequence / BitGenerator).  ``where`` names the argument in the error message."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numpy.random.SeedSequence, numpy.random.BitGenerator)):
        return numpy.random.default_rng(rng)
    if isinstance(rng, (bool, numpy.bool_)) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"{where} must be None, an int seed >= 0 or a numpy.random.Generator, got "
                        f"{rng!r} ({type(rng).__name__})")
    if rng < 0:
        raise ValueError(f"{where} must be an int seed >= 0 (NumPy's seeds are non-negative), got {rng}")
    return numpy.random.default_rng(int(rng))


def uniform_parameter(shape, bound: float, rng) -> Parameter:
    """A Parameter drawn from U(-bound, bound): PyTorch's default for Linear and Conv
    (kaiming_uniform with a=√5 gives bound = 1/√fan_in, the bias uses the same bound)."""
    host = as_generator(rng).uniform(-bound, bound, size=shape)
    return Parameter(backend.asarray(host, dtype=backend.default_dtype()))


def fan_in_bound(fan_in: int) -> float:
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
