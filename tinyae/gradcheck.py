"""Numerical gradient checks: is my backward pass right?

The idea fits in one line.  For a scalar function L of an array a, the central
difference

    dL/da[i]  ≈  (L(a + ε e_i) − L(a − ε e_i)) / (2ε)

has error O(ε²), so in float64 with ε = 1e-6 it agrees with a correct
analytic gradient to about 1e-8 relative.  Checking every element costs two
forward passes per element ("full" mode, for small inputs).  For large inputs
we check a *directional* derivative instead: pick a random direction d and
compare Σ g·d with (L(a + εd) − L(a − εd)) / (2ε) — two forward passes per
tensor, whatever its size ("directional" mode).

Error measure, per element (or per direction):

    err = |analytic − numeric| / (|analytic| + |numeric| + floor + noise/tol)

so an element passes (err ≤ tol) when |analytic − numeric| ≤ tol·(|analytic| +
|numeric| + floor) + noise: a relative error, with a small absolute ``floor``
so that exact zeros (ReLU's dead units) do not divide by zero, plus an
absolute allowance ``noise`` for the round-off the central difference itself
carries: L is only known to about ε_mach·S, where S is the
size of the terms it adds up (``scale``; check_module uses S = Σ|y·dy|, the
default is |L|), so the difference quotient is only known to about
ε_mach·S/ε (≈ 2e-10·S for ε = 1e-6); we allow ROUNDOFF_ULPS times that.
Without it a correct layer fails wherever a gradient element is tiny next to
S (a saturated Tanh: y = tanh(8) sits within 1e-7 of 1, so its change
tanh'(8)·2ε ≈ 1e-12 is resolved only to ~1e-4 relative).

Public API:
    check_scalar_function  the general tool: any f() and named arrays
    check_module           a layer or model: L = Σ y·dy for a fixed random dy
    check_loss             a loss: L = loss(pred, target)
All return the worst error found and raise :class:`GradcheckError` with a
readable report (tensor, index, analytic vs numeric) above ``tol``.
"""
from __future__ import annotations

import numpy

from . import backend

__all__ = ["GradcheckError", "check_scalar_function", "check_module", "check_loss"]

FULL_LIMIT = 2048  # "auto" mode checks every element of tensors up to this size
ROUNDOFF_ULPS = 16  # allowed round-off of L, in units of float64 epsilon times the scale S


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def _as_tuple(v):
    return v if isinstance(v, tuple) else (v,)


def _rel_err(a, n, floor):
    return abs(a - n) / (abs(a) + abs(n) + floor)


def _noise(up, down, eps, scale):
    """Round-off of the central difference (L(+) − L(−)) / 2ε: about ε_mach·S / ε."""
    size = max(abs(up), abs(down), scale)
    return ROUNDOFF_ULPS * numpy.finfo(numpy.float64).eps * size / (2 * eps)


def check_scalar_function(f, arrays, analytic, *, eps=1e-6, tol=1e-5, floor=1e-7,
                          mode="auto", n_directions=2, seed=0, name="function", raise_on_fail=True,
                          scale=0.0):
    """Compare ``analytic[k]`` with central differences of ``f()`` with respect to ``arrays[k]``.

    f:        callable with no arguments returning a Python float; it must read the
              *current contents* of the arrays (they are perturbed in place and restored).
    arrays:   {name: float64 array}.
    analytic: {name: array of the same shape}, the gradient your backward computed.
    mode:     "full" (every element), "directional" (random directions), or "auto".
    scale:    size of the terms f adds up (e.g. Σ|y·dy|), for the round-off allowance;
              |f| is always used as a lower bound.
    Returns the worst error; raises GradcheckError above ``tol`` if ``raise_on_fail``.
    """
    rng = numpy.random.default_rng(seed)
    worst, report = 0.0, []
    for key, a in arrays.items():
        if a.dtype != numpy.float64:
            raise TypeError(f"gradcheck: {key!r} is {a.dtype}; check gradients in float64 "
                            "(float32 round-off swamps the differences)")
        g = backend.to_numpy(analytic[key])
        if g.shape != a.shape:
            raise GradcheckError(f"{name}: gradient of {key!r} has shape {g.shape}, "
                                 f"but {key!r} has shape {tuple(a.shape)}")
        xp = backend.get_array_module(a)
        use_full = mode == "full" or (mode == "auto" and a.size <= FULL_LIMIT)
        if use_full:
            numeric, noise = numpy.empty(a.size), numpy.empty(a.size)
            # perturb a[idx] in place; not through a.reshape(-1), which is a copy, not a view,
            # when ``a`` is not C-contiguous (a transposed input), so nothing would move
            for i, idx in enumerate(numpy.ndindex(*a.shape)):
                old = float(a[idx])
                a[idx] = old + eps
                up = f()
                a[idx] = old - eps
                down = f()
                a[idx] = old
                numeric[i] = (up - down) / (2 * eps)
                noise[i] = _noise(up, down, eps, scale)
            errs = _rel_err(g.reshape(-1), numeric, floor + noise / tol)
            i = int(numpy.argmax(errs)) if errs.size else 0
            e = float(errs[i]) if errs.size else 0.0
            where = numpy.unravel_index(i, a.shape) if a.size else ()
            line = (f"  {key}{list(map(int, where))}: analytic {g.reshape(-1)[i]:.10g}  "
                    f"numeric {numeric[i]:.10g}  rel.err {e:.2e}") if a.size else f"  {key}: empty"
        else:
            e, line = 0.0, ""
            base = a.copy()
            for k in range(n_directions):
                d = rng.standard_normal(a.shape)
                d_x = xp.asarray(d)
                a[...] = base + eps * d_x
                up = f()
                a[...] = base - eps * d_x
                down = f()
                a[...] = base
                numeric = (up - down) / (2 * eps)
                ana = float(numpy.sum(g * d))
                ek = _rel_err(ana, numeric, floor + _noise(up, down, eps, scale) / tol)
                if ek >= e:
                    e = ek
                    line = (f"  {key} along random direction {k}: analytic {ana:.10g}  "
                            f"numeric {numeric:.10g}  rel.err {e:.2e}")
        worst = max(worst, e)
        report.append((e, line))
    if raise_on_fail and worst > tol:
        lines = [line for e, line in report if e > tol]
        raise GradcheckError(f"gradient check of {name} failed (tolerance {tol:g}):\n" + "\n".join(lines))
    return worst


def _float64(a):
    xp = backend.get_array_module(a)
    return xp.array(a, dtype=numpy.float64, order="C")  # always a copy we may perturb


def check_module(module, *inputs, dy=None, seed=0, **kw):
    """Gradient-check ``module``'s backward for its inputs and every parameter.

    The module is converted to float64 in place (``module.double()``) and the
    inputs copied to float64.  With a fixed random ``dy`` (one per output) the
    scalar checked is L = Σ_outputs Σ y·dy, so dL/dy = dy and ``module.backward(dy)``
    must return dL/dx.  The forward must be deterministic: fix any noise first
    (e.g. Dropout with an explicit mask).
    """
    module.double().set_needs_input_grad(True)  # a model switches its input gradient off by default
    xs = tuple(_float64(x) for x in inputs)
    ys = _as_tuple(module(*xs))
    rng = numpy.random.default_rng(seed + 1)
    if dy is None:
        dys = tuple(backend.get_array_module(y).asarray(rng.standard_normal(y.shape)) for y in ys)
    else:
        dys = tuple(_float64(d) for d in _as_tuple(dy))

    def loss():
        outs = _as_tuple(module(*xs))
        return float(sum(float((o * d).sum()) for o, d in zip(outs, dys)))

    outs = _as_tuple(module(*xs))  # forward again so the cache matches xs
    kw.setdefault("scale", float(sum(float(abs(o * d).sum()) for o, d in zip(outs, dys))))
    module.zero_grad()
    dxs = _as_tuple(module.backward(*dys))
    arrays = {f"input{i}": x for i, x in enumerate(xs)}
    analytic = {f"input{i}": dx for i, dx in enumerate(dxs[:len(xs)])}
    for pname, p in module.named_parameters():
        arrays[pname] = p.data
        analytic[pname] = p.grad.copy()
    return check_scalar_function(loss, arrays, analytic, seed=seed, name=repr(module).split("\n")[0], **kw)


def check_loss(loss, *args, seed=0, **kw):
    """Gradient-check a loss object: ``value = loss(*args)``, ``grads = loss.backward()``.

    If backward returns k arrays, they are checked against the first k arguments
    (MSE/BCE: the prediction; GaussianKL: mean and logvar).  The remaining
    arguments (targets) are held fixed.
    """
    xs = tuple(_float64(a) for a in args)
    loss(*xs)
    grads = _as_tuple(loss.backward())
    arrays = {f"arg{i}": xs[i] for i in range(len(grads))}
    analytic = {f"arg{i}": g for i, g in enumerate(grads)}
    return check_scalar_function(lambda: float(loss(*xs)), arrays, analytic, seed=seed,
                                 name=type(loss).__name__, **kw)
