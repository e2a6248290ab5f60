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
    is needed).  A TypeError, and a ValueError too, as NumPy raises
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


def pixels_error(where: str, name: str, dtype, cast: str) -> DTypeError:
    """The error for integer pixels (or any non-float data) where floats are needed."""
    return DTypeError(f"{where}: {name} must be a float array (float32 or float64), got dtype {dtype}; scale "
                      f"pixels with tinyae.data.to_float (0..255 → 0..1) or cast with {cast}")


def same_length(x, y):
    """Raise unless labels ``y`` (None: no labels) have one entry per sample of ``x``."""
    if y is not None and len(y) != len(x):
        raise ValueError(f"x and y differ in length: {len(x)} samples but {len(y)} labels")


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


# -- the checks a loss runs on every call (tinyae.losses.Loss's helpers) ----------------------------

def loss_pair(name, pred, target, names=("pred", "target")):
    """Raise, naming the loss, unless ``pred`` and ``target`` are float arrays of one shape,
    dtype and device, with a non-empty batch."""
    dtype = getattr(pred, "dtype", None)
    if (type(pred) is type(target) and dtype is not None and dtype.kind == "f" and dtype == target.dtype
            and pred.shape == target.shape and pred.ndim and pred.shape[0]):
        return  # the common case, in a few comparisons; the checks below name what is wrong
    for arr, label in zip((pred, target), names):
        if not hasattr(arr, "dtype") or arr.dtype.kind != "f":
            raise DTypeError(f"{name}: {label} must be a float array, got "
                             f"{getattr(arr, 'dtype', type(arr).__name__)}; convert with "
                             f"{label}.astype('float32')")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{name}: {names[0]} has shape {tuple(pred.shape)} but {names[1]} has shape "
                         f"{tuple(target.shape)}; they must match exactly (no broadcasting)")
    if backend.get_array_module(pred) is not backend.get_array_module(target):
        raise ValueError(f"{name}: {names[0]} and {names[1]} are on different devices")
    if pred.dtype != target.dtype:  # else the result and gradient would silently be the wider type
        raise DTypeError(f"{name}: {names[0]} is {pred.dtype} but {names[1]} is {target.dtype}; "
                         f"cast one, e.g. {names[1]}.astype({names[0]}.dtype)")
    if pred.ndim == 0 or pred.shape[0] == 0:  # a mean over nothing is NaN
        raise ValueError(f"{name}: expected a non-empty batch (N >= 1 along axis 0), got {names[0]} "
                         f"of shape {tuple(pred.shape)}")


def unit_interval(name, arr, label, hint):
    """Raise unless every value of ``arr`` lies in [0, 1]: one min and one max reduction
    (and on a GPU one synchronisation).  NaN passes, to give a NaN loss that fit reports."""
    lo, hi = arr.min(), arr.max()
    if (lo < 0) | (hi > 1):
        raise ValueError(f"{name}: {label} must lie in [0, 1], got values in "
                         f"[{float(lo):.4g}, {float(hi):.4g}]; {hint}")


# -- an optimizer's state_dict, checked before anything is loaded (Optimizer.load_state_dict) -------

def optimizer_state(opt, state):
    """(step_count, lr, hyperparameters, {(i, buffer): array}) from ``state``, every key and
    value checked against optimizer ``opt`` (see :meth:`tinyae.optim.Optimizer.load_state_dict`)."""
    name = type(opt).__name__
    where = f"{name}.load_state_dict"
    if not (hasattr(state, "keys") and hasattr(state, "__getitem__")):
        raise TypeError(f"{where}: expected the dict that optimizer.state_dict() returns, got "
                        f"{type(state).__name__}")
    hyper_keys = [f"hyper.{k}" for k in opt._hyper()]
    missing = [k for k in ["step_count", "lr"] + hyper_keys if k not in state]
    if missing:
        raise ValueError(f"{where}: the state has no {', '.join(map(repr, missing))} (keys that "
                         f"{name}.state_dict() always writes); pass the dict an optimizer of this "
                         "class saved")
    step_count = numpy.asarray(state["step_count"])
    if step_count.shape != () or step_count.dtype.kind not in "iu" or int(step_count) < 0:
        raise ValueError(f"{where}: 'step_count' must be an int >= 0, got {state['step_count']!r}")
    step_count = int(step_count)
    lr = _scalar(state["lr"], "lr", where)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"{where}: 'lr' must be finite and > 0, got {lr}")
    saved = {k: _hyper_value(state[f"hyper.{k}"], v, k, where) for k, v in opt._hyper().items()}
    try:
        hyper = opt._checked_hyper(**saved)
    except (TypeError, ValueError) as exc:  # a wrong type inside the state is a bad value of it
        raise ValueError(f"{where}: invalid hyperparameter in the state: {exc}") from None
    buffers = type(opt)._buffers_for(hyper)
    arrays, unexpected = {}, []
    for key in state.keys():
        if key in ("step_count", "lr") or key in hyper_keys:
            continue
        parts = str(key).split(".", 2)
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
            unexpected.append(key)
            continue
        i, buf = int(parts[1]), parts[2]
        if i >= len(opt.params) or buf not in buffers:
            raise ValueError(f"{where}: {buf} state for parameter {i}, but this optimizer has "
                             f"{len(opt.params)} parameters and buffers {buffers} (a different model "
                             "or optimizer?)")
        arrays[(i, buf)] = _state_array(state[key], opt.params[i], key, where)
    if unexpected:
        raise ValueError(f"{where}: unexpected keys {unexpected}; expected 'step_count', 'lr', "
                         f"{', '.join(map(repr, hyper_keys))} and 'state.<i>.<buffer>' arrays")
    if step_count > 0 and buffers:
        absent = [f"state.{i}.{b}" for i in range(len(opt.params)) for b in buffers if (i, b) not in arrays]
        if absent:
            shown = ", ".join(absent[:4]) + (f" and {len(absent) - 4} more" if len(absent) > 4 else "")
            raise ValueError(f"{where}: the state is after {step_count} step(s) but has no {shown}; "
                             f"each of the {len(opt.params)} parameters needs {', '.join(buffers)} "
                             "(was it saved for a model with a different parameter layout?)")
    return step_count, lr, hyper, arrays


def _scalar(value, key, where):
    arr = numpy.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iuf":
        raise ValueError(f"{where}: {key!r} must be a number, got {value!r}")
    return arr.item()


def _hyper_value(value, like, key, where):
    """A saved hyperparameter back as the Python type of ``like`` (float, bool or a tuple of floats)."""
    arr = numpy.asarray(value)
    if isinstance(like, tuple):
        if arr.shape != (len(like),) or arr.dtype.kind not in "iuf":
            raise ValueError(f"{where}: 'hyper.{key}' must hold {len(like)} numbers, got {value!r}")
        return tuple(arr.tolist())
    if isinstance(like, bool):
        if arr.shape != () or arr.dtype.kind != "b":
            raise ValueError(f"{where}: 'hyper.{key}' must be True or False, got {value!r}")
        return bool(arr)
    return _scalar(value, f"hyper.{key}", where)


def _state_array(value, p, key, where):
    """A saved state array checked against parameter ``p`` and converted to its dtype/device."""
    host = backend.to_numpy(value)
    if host.dtype.kind not in "iuf":
        raise ValueError(f"{where}: {key!r} holds {host.dtype} values; expected a real array")
    if tuple(host.shape) != tuple(p.shape):
        i, buf = key.split(".", 2)[1:]
        raise ValueError(f"{where}: {buf} of parameter {i} has shape {tuple(host.shape)}, the parameter "
                         f"has shape {tuple(p.shape)}")
    if not numpy.isfinite(host).all():
        raise ValueError(f"{where}: {key!r} holds NaN or infinite values (saved from a run that diverged?)")
    return backend.get_array_module(p.data).asarray(host, dtype=p.dtype)


def parameter_list(params, where):
    """``params`` as a list of distinct Parameters, or a TypeError/ValueError saying what to pass."""
    from .nn.module import Module, Parameter  # noqa: PLC0415  (nn.module imports this module)

    hint = "pass model.parameters()"
    if isinstance(params, Module):
        raise TypeError(f"{where}: got the model {type(params).__name__} itself, not its parameters; "
                        f"{hint} (a list of Parameters)")
    if isinstance(params, Parameter):
        raise TypeError(f"{where}: params must be an iterable of Parameters, got a single Parameter; "
                        f"wrap it in a list, or {hint}")
    if hasattr(params, "shape") and hasattr(params, "dtype"):
        raise TypeError(f"{where}: params must be an iterable of Parameters, got an array of shape "
                        f"{tuple(params.shape)}; {hint}, or wrap arrays as tinyae.nn.Parameter(array)")
    if isinstance(params, (str, bytes)) or hasattr(params, "keys"):
        raise TypeError(f"{where}: params must be an iterable of Parameters, got {type(params).__name__}; "
                        f"{hint} (a state_dict holds copies, which an optimizer cannot update)")
    try:
        items = list(params)
    except TypeError:
        raise TypeError(f"{where}: params must be an iterable of Parameters, got "
                        f"{type(params).__name__}; {hint}") from None
    for i, p in enumerate(items):
        if not isinstance(p, Parameter):
            extra = " (parameter groups are not supported)" if hasattr(p, "keys") else ""
            raise TypeError(f"{where}: params[{i}] is of type {type(p).__name__}, not a Parameter{extra}; {hint}")
    if not items:
        raise ValueError(f"{where}: got an empty parameter list; {hint} of a model that has parameters")
    first = {}
    for i, p in enumerate(items):
        j = first.setdefault(id(p), i)
        if j != i:
            raise ValueError(f"{where}: params[{i}] is the same Parameter as params[{j}] (a parameter appears "
                             "twice in the list, so a step would update it twice); list each once")
    return items
