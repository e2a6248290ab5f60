"""Argument checks shared by layers, losses, optimizers and model builders.

Each check returns the value converted to a plain Python type, or raises with a message
that names the owner (``where``: "Linear", "Adam", …), the argument and what was expected:
``TypeError`` for a wrong type (2.5 or "4" where an int is needed), ``ValueError`` for a
value out of range (0, NaN, a negative learning rate).  They run once, when an object is
built, never per step.

The second half holds the bodies of the checks a layer runs on every call (its input, its
dy, that forward ran): a layer's forward or backward opens with one call such as
``self._check_input(x, ndim=2)``, and the details live here, out of the lesson's way.
"""
from __future__ import annotations

import math
import numbers

import numpy

from . import backend

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


# -- the checks a layer runs on every forward and backward (tinyae.nn.Module's helpers) -------------
# Each is one call at the top of a layer's forward or backward; the happy path is a few
# attribute comparisons and builds no strings.

def layer_input(layer, x, ndim=None, shape_tail=None, what="input"):
    """Raise, naming ``layer``, unless ``x`` is a float array of the right rank, trailing shape
    and dtype (the dtype of the layer's parameters, if it has any), on the parameters' device."""
    try:
        dtype, shape = x.dtype, x.shape
    except AttributeError:
        raise DTypeError(f"{layer!r} expected an array as {what}, got {type(x).__name__}") from None
    if dtype.kind != "f":
        raise DTypeError(f"{layer!r} expected a floating-point {what} (float32 or float64), got dtype "
                         f"{dtype}; convert with x.astype('float32')")
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{layer!r} expected a {ndim}-D {what}, got shape {tuple(shape)}")
    if shape and not shape[0]:  # an empty batch: NaN means and reshape errors further on
        raise ValueError(f"{layer!r} expected a non-empty batch as {what} (N >= 1 along axis 0), "
                         f"got shape {tuple(shape)}")
    if shape_tail is not None and tuple(shape[-len(shape_tail):]) != tuple(shape_tail):
        raise ValueError(f"{layer!r} expected {what} of shape (N, {', '.join(map(str, shape_tail))}), "
                         f"got {tuple(shape)}")
    params = layer.__dict__["_parameters"]
    if params:
        p = next(iter(params.values())).data
        if dtype != p.dtype:
            raise DTypeError(f"{layer!r} expected {what} of dtype {p.dtype} (its parameters' dtype), got "
                             f"{dtype}; cast the input or call .to(dtype={dtype.name!r}) on the model")
        if type(x) is not type(p) and backend.get_array_module(x) is not backend.get_array_module(p):
            raise ValueError(f"{layer!r}: {what} and parameters live on different devices; move the "
                             "input with tinyae.backend.asarray or the model with .to(...)")


def forward_ran(layer, attr):
    """Raise unless ``layer.<attr>`` (a cache its forward fills) is set."""
    if getattr(layer, attr, None) is None:
        raise RuntimeError(f"{layer!r}: backward called before forward")


def layer_dy(layer, dy, shape, dtype):
    """Raise unless ``dy`` = dL/d(output) has the ``shape`` and ``dtype`` of the last forward's
    output (no silent broadcasting, no float64 gradient into a float32 layer)."""
    dy_dtype = getattr(dy, "dtype", None)
    if getattr(dy, "shape", None) == shape and dy_dtype is not None and dy_dtype == dtype:
        return
    shape = tuple(shape)
    expected = (f"{layer!r}.backward expected dy = dL/d(output) with its forward output's shape {shape} "
                f"and dtype {dtype}")
    if not (hasattr(dy, "shape") and hasattr(dy, "dtype")):
        raise DTypeError(f"{expected}, got {type(dy).__name__}")
    got = f"got shape {tuple(dy.shape)} and dtype {dy.dtype}"
    if tuple(dy.shape) != shape:
        raise ValueError(f"{expected}; {got}")
    raise DTypeError(f"{expected}; {got}" + (f"; cast with dy.astype('{dtype}')" if dy.dtype.kind in "fiub" else ""))


def state_value(where, name, value, p):
    """``value`` checked and converted to parameter ``p``'s dtype on its device (what
    ``Module.load_state_dict`` copies; see there for the errors)."""
    host = backend.get_array_module(value) is numpy
    if host:
        try:
            value = numpy.asarray(value)
        except (TypeError, ValueError) as exc:  # e.g. a ragged nested list
            raise TypeError(f"{where}: parameter {name!r}: the value does not convert to an array "
                            f"({exc}); expected an array of shape {tuple(p.shape)}") from None
    kind = value.dtype.kind
    if kind == "c":
        raise TypeError(f"{where}: parameter {name!r} holds complex values (dtype {value.dtype}); "
                        f"expected real numbers for a {p.dtype} parameter")
    if kind not in "biuf":
        if kind == "O":  # NumPy 1.x makes a ragged nested list an object array instead of raising
            raise TypeError(f"{where}: parameter {name!r} holds object values, not numbers (a ragged "
                            f"nested list?); expected an array of shape {tuple(p.shape)} convertible "
                            f"to {p.dtype}")
        raise TypeError(f"{where}: parameter {name!r} holds {value.dtype} values, not numbers; "
                        f"expected a real array of shape {tuple(p.shape)} convertible to {p.dtype}")
    shape = tuple(value.shape)
    if shape != tuple(p.shape):
        raise ValueError(f"{where}: parameter {name!r} has shape {tuple(p.shape)} but the state holds "
                         f"shape {shape}")
    xp = backend.get_array_module(p.data)
    with numpy.errstate(over="ignore", invalid="ignore"):
        if xp is numpy:
            out = backend.to_numpy(value).astype(p.dtype)
        else:
            out = xp.asarray(value, dtype=p.dtype)
    if kind == "f" and not bool(xp.isfinite(out).all()):
        source = backend.get_array_module(value)
        if bool(source.isfinite(value).all()):
            big = float(source.abs(value).max())
            raise ValueError(f"{where}: parameter {name!r} holds values up to {big:.3g} in magnitude, which "
                             f"overflow {p.dtype} (largest {float(numpy.finfo(p.dtype).max):.3g}); "
                             "convert the model with .double() or rescale the values")
        raise ValueError(f"{where}: parameter {name!r} holds NaN or infinite values; expected finite "
                         f"numbers (was the state saved from a model that diverged?)")
    return out


def float_dtype(dtype, where):
    """``numpy.dtype(dtype)``, unless it is not a float type."""
    if numpy.dtype(dtype).kind != "f":
        raise DTypeError(f"{where}: dtype must be a float type (float32 or float64), got {numpy.dtype(dtype)}")
    return numpy.dtype(dtype)


def parameter_data(data):
    """Raise unless ``data`` (a Parameter's array) is a float array."""
    if not hasattr(data, "dtype") or getattr(data.dtype, "kind", None) != "f":
        raise DTypeError(f"Parameter: data must be a float array (float32 or float64), got "
                         f"{getattr(data, 'dtype', type(data).__name__)}")
