"""Argument checks shared by layers, losses, optimizers and model builders.

Each check returns the value converted to a plain Python type, or raises with a message
that names the owner (``where``: "Linear", "Adam", …), the argument and what was expected:
``TypeError`` for a wrong type (2.5 or "4" where an int is needed), ``ValueError`` for a
value out of range (0, NaN, a negative learning rate).  They run once, when an object is
built, never per step.
"""
from __future__ import annotations

import math
import numbers

import numpy

__all__ = ["DTypeError", "positive_int", "nonnegative_int", "real", "boolean", "float_array"]


class DTypeError(TypeError, ValueError):
    """An array of the wrong kind (an int array where floats are needed, a list where an array
    is needed).  A TypeError, and a ValueError too, as NumPy and earlier tinyae versions raise
    for a bad array, so ``except ValueError`` around a layer or a loss keeps working."""


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _integer(value, name, where, what):
    # bool is an int subclass, and 2.0 or "4" would silently become 2 or 4: refuse them all
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be {what}, got {_describe(value)}")
    return int(value)


def positive_int(value, name: str, where: str) -> int:
    """An int (or NumPy integer) ≥ 1."""
    v = _integer(value, name, where, "a positive int")
    if v < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {v}")
    return v


def nonnegative_int(value, name: str, where: str) -> int:
    """An int (or NumPy integer) ≥ 0."""
    v = _integer(value, name, where, "an int >= 0")
    if v < 0:
        raise ValueError(f"{where}: {name} must be an int >= 0, got {v}")
    return v


def real(value, name: str, where: str, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real number (int, float or NumPy scalar; not bool, not a string) in the
    interval given by ``low``/``high`` (closed ends unless ``low_open``/``high_open``)."""
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {_describe(value)}")
    v = float(value)
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    if low is not None and high is not None:
        rng = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        rng = lo or hi
    if not math.isfinite(v):
        raise ValueError(f"{where}: {name} must be finite{' and ' + rng if rng else ''}, got {v}")
    if (low is not None and (v <= low if low_open else v < low)) or \
            (high is not None and (v >= high if high_open else v > high)):
        raise ValueError(f"{where}: {name} must be {rng}, got {v:g}")
    return v


def boolean(value, name: str, where: str) -> bool:
    """True or False (or a NumPy bool); a string such as "false" would be truthy, so refuse it."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {_describe(value)}")
    return bool(value)


def float_array(x, name: str, where: str, batch: bool = True):
    """Raise unless ``x`` is a floating-point array (and, with ``batch``, has a non-empty first
    axis).  Cheap: attribute lookups only, no pass over the data."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        raise DTypeError(f"{where}: {name} must be an array, got {type(x).__name__}")
    if dtype.kind != "f":
        raise DTypeError(f"{where}: {name} must be a float array (float32 or float64), got dtype {dtype}; "
                        f"convert with {name}.astype('float32')")
    if batch and (x.ndim == 0 or x.shape[0] == 0):
        raise ValueError(f"{where}: {name} must be a non-empty batch (N >= 1 samples along axis 0), "
                         f"got shape {tuple(x.shape)}")
