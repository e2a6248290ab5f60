"""The checker's tools: run a learner's file, compare what it computes with tinyae, name the mistake.

Three outcomes of a check, as exceptions the runner turns into one line each:

* :class:`NotWritten`: the learner's function still raises NotImplementedError;
* :class:`Mistake`: something is wrong; its message says what, in one line (a learner's own
  exception becomes one too, naming their file and line, never the checker's traceback);
* nothing raised: that part passed.

:func:`compare` is the heart of it: it checks the shape and dtype of what the learner's code
returned, then the values against tinyae's own, and when they differ it looks for a known
wrong answer (each exercise lists the classic ones) and then for a pattern: all zeros, the
sign, a constant factor (½, 2, 1/N, 1/n, …), the transpose, the kernel turned by 180°.
"""
from __future__ import annotations

import importlib.util
import re
import traceback

import numpy as np

from .. import gradcheck


class Mistake(Exception):
    """What is wrong with an exercise, in one line."""


class NotWritten(Exception):
    """A function of the exercise still raises NotImplementedError."""


class Learner:
    """An exercise file, imported; :meth:`call` runs any of its code."""

    def __init__(self, path):
        self.path = path
        spec = importlib.util.spec_from_file_location(f"tinyae_exercise_{path.stem}", path)
        self.module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(self.module)
        except SyntaxError as exc:
            raise Mistake(f"{path.name}:{exc.lineno}: SyntaxError: {exc.msg}") from None
        except Exception as exc:   # noqa: BLE001 (anything the learner's file raises is reported)
            raise Mistake(self._where(exc)) from None

    def get(self, name):
        """The function or class ``name`` of the file (a Mistake if it is gone)."""
        try:
            return getattr(self.module, name)
        except AttributeError:
            raise Mistake(f"{self.path.name} has no {name!r} any more: "
                          "keep the names the exercise gave") from None

    def call(self, fn, *args, **kwargs):
        """fn(*args, **kwargs); the learner's exception becomes NotWritten or a one-line Mistake."""
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as exc:
            if self._frame(exc) is not None:
                raise NotWritten(getattr(fn, "__qualname__", str(fn))) from None
            raise Mistake(self._where(exc)) from None
        except Exception as exc:   # noqa: BLE001
            raise Mistake(self._where(exc)) from None

    def _frame(self, exc):
        """The innermost frame of ``exc``'s traceback that lies in the learner's file, or None."""
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(self.path)]
        return frames[-1] if frames else None

    def _where(self, exc):
        """'01_linear.py:42 in backward: ValueError: … (the line) — hint': their file, not ours."""
        message = " ".join(str(exc).split()) or "(no message)"
        frame = self._frame(exc)
        where = f"{self.path.name}:{frame.lineno} in {frame.name}" if frame else self.path.name
        line = f"  [{frame.line.strip()}]" if frame and frame.line else ""
        return f"{where}: {type(exc).__name__}: {message}{line}{_exception_hint(message)}"


def _exception_hint(message):
    """What numpy's broadcasting error means when an array was added into a gradient: ``a += b``
    with b of another shape says "… shapes (a) (b) …" or "… shape (a) doesn't match … (b)"."""
    found = (re.search(r"broadcast together with shapes \(([\d,]*)\) \(([\d,]*)\)", message)
             or re.search(r"operand with shape \(([\d,]*)\) doesn't match the broadcast shape \(([\d,]*)\)", message))
    if not found:
        return ""
    have, added = (tuple(int(s) for s in g.split(",") if s) for g in found.groups())
    hint = _shape_hint(added, have)
    return f" — a {added} array added to a {have} one{hint}" if hint else ""


def _shape_hint(got, want):
    """Why an array may have shape ``got`` where ``want`` belongs ('' if no idea)."""
    if len(got) == 2 and got == want[::-1] and got != want:
        return ": transposed (dyᵀ x where xᵀ dy was meant, or the other way round?)"
    if len(got) == len(want) + 1 and got[1:] == want:
        return ": the batch axis is still there: sum over the batch (axis 0)"
    if len(want) == 1 and len(got) > 1 and want[0] in got:
        return ": sum over every axis but the channel's (the batch and the pixels)"
    if len(got) == len(want) == 4 and got[:2] == want[:2] and all(g > w for g, w in zip(got[2:], want[2:])):
        return ": the padding border is still there: drop it (the padded pixels are not inputs)"
    if np.prod(got) == np.prod(want):
        return ": the right number of elements in another shape (reshape it, and check it is not transposed)"
    return ""


# ---------------------------------------------------------------------------
# comparing with tinyae's own numbers
# ---------------------------------------------------------------------------
def close(a, b, rtol=1e-6):
    """a ≈ b elementwise, up to rtol of b's largest entry (NaN never matches)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * (np.abs(b).max(initial=0) + 1e-300)))


def compare(what, got, want, known=(), sizes=()):
    """Raise a Mistake naming the difference unless ``got`` is ``want`` (shape, dtype, values).

    known: (description, wrong answer) pairs, the classic mistakes of this array;
    sizes: (label, number) pairs, e.g. ("N = 5, the batch size", 5), for naming a factor.
    """
    if got is None:
        raise Mistake(f"{what} is None")
    if not hasattr(got, "shape") or not hasattr(got, "dtype"):
        raise Mistake(f"{what} is a {type(got).__name__}, not an array")
    if got.shape != want.shape:
        raise Mistake(f"{what} has shape {got.shape}, expected {want.shape}{_shape_hint(got.shape, want.shape)}")
    if got.dtype != want.dtype:
        raise Mistake(f"{what} is {got.dtype} for {want.dtype} inputs: a {got.dtype} constant or array crept in "
                      f"(np.where(mask, 1, a) and np.float64 numbers are float64; use x.dtype.type(a))")
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
        raise Mistake(f"{what} holds NaN or inf")
    if close(got, want):
        return
    for description, wrong in known:
        if close(got, wrong):
            raise Mistake(f"{what}: {description}")
    raise Mistake(f"{what}: {pattern(got, want, sizes)}")


def pattern(got, want, sizes=()):
    """What ``got`` looks like next to ``want`` (same shape), in a few words."""
    g, w = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if not g.any():
        return "all zeros (nothing added into .grad, or nothing computed?)"
    if w.any():
        r = float(np.sum(g * w) / np.sum(w * w))         # the best factor: got ≈ r · want
        if close(g, r * w, 1e-5):
            return _factor(r, sizes)
    if g.ndim == 2 and g.shape[0] == g.shape[1] and close(g, w.T):
        return "transposed (dyᵀ x where xᵀ dy was meant, or the other way round?)"
    if g.ndim == 4 and close(g, w[:, :, ::-1, ::-1]):
        return "the kernel turned by 180° (a convolution where the cross-correlation's gradient was meant?)"
    i = np.unravel_index(int(np.argmax(np.abs(g - w))), g.shape)
    hint = gradcheck.diagnose(g, w)
    return (f"wrong values: at {list(map(int, i))} yours {g[i]:.6g}, expected {w[i]:.6g}"
            + (f" ({hint[0]})" if hint else " (no simple pattern: a factor or term missing in part of it?)"))


def _factor(r, sizes):
    """'−1 ×: the sign is flipped', '½ ×: a factor 2 is missing', '1/5 ×: divided by N = 5 …'."""
    if abs(r + 1) < 1e-6:
        return "the sign is flipped"
    sign = " and the sign is flipped" if r < 0 else ""
    a = abs(r)
    for label, k in (("2", 2),) + tuple(sizes):
        if abs(a - 1 / k) < 1e-6 / k:
            why = "a factor 2 is missing" if label == "2" else f"divided by {label}, where no division belongs"
            return f"1/{k} × the right values{sign}: {why}"
        if abs(a - k) < 1e-6 * k:
            why = "an extra factor 2 (a term counted twice?)" if label == "2" else f"the division by {label} is missing"
            return f"{k} × the right values{sign}: {why}"
    if abs(r - 1) < 1e-3:
        return f"within {abs(r - 1):.0e} of the right values: a small term (an ε?) in another place"
    return f"{r:.4g} × the right values: a constant factor{sign}"


# ---------------------------------------------------------------------------
# the numerical gradient check, of the learner's backward against the learner's forward
# ---------------------------------------------------------------------------
def numeric_check(learner, f, arrays, analytic, where):
    """Central differences of ``f()`` (run through the learner) against ``analytic``, float64."""
    err = gradcheck.check_scalar_function(lambda: float(learner.call(f)), arrays, analytic, mode="full",
                                          raise_on_fail=False)
    if err > 1e-5:
        raise Mistake(f"{where}: the numerical gradient of your own forward disagrees (worst relative error "
                      f"{err:.1e}), though the gradient equals tinyae's: did the given forward change?")
