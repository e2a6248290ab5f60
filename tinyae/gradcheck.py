"""Numerical gradient checks: is my backward pass right, and if not, what is wrong with it?

The idea fits in one line.  For a scalar function L of an array a, the central
difference

    dL/da[i]  ≈  (L(a + ε e_i) − L(a − ε e_i)) / (2ε)

has error O(ε²), so in float64 with ε = 1e-6 it agrees with a correct analytic gradient
to about 1e-8 relative.  The file is built from three small pieces:

* :func:`numerical_gradient` — that loop, over every element (two calls of L each; for
  small inputs, "full" mode);
* :func:`directional_derivative` — the same difference along one random direction d,
  moving every array at once: (L(θ + εd) − L(θ − εd)) / 2ε, to compare with Σ g·d (two
  calls of L whatever the sizes; "directional" mode, for large inputs);
* :func:`relative_error` — the comparison, with its round-off allowance:

      err = |analytic − numeric| / (|analytic| + |numeric| + floor + roundoff/tol)

  so an element passes (err ≤ tol) when |analytic − numeric| ≤ tol·(|analytic| +
  |numeric| + floor) + roundoff: a relative error, with a small absolute ``floor`` so that
  exact zeros (ReLU's dead units) do not divide by zero, plus the round-off of the central
  difference itself (:func:`roundoff`).  L is only known to about ε_mach·S, where S is the
  size of the terms it adds up (``scale``; check_module uses S = Σ|y·dy|, the default is
  |L|), so the quotient is only known to about ε_mach·S/ε; we allow ROUNDOFF_ULPS times
  that.  Without it a correct layer fails wherever a gradient element is tiny next to S
  (a saturated Tanh: tanh'(8)·2ε ≈ 1e-12 is resolved only to ~1e-4 relative).

When a check fails, :func:`diagnose` compares the analytic and numeric arrays and names
what the mismatch looks like: a constant factor ("analytic ≈ 0.5 × numeric: a missing
factor 2?"), a sign flip, the gradient of the transposed weight or of the turned kernel,
an all-zero gradient ("did backward add into .grad?"), errors only on the border
(padding).  :func:`check_module` also runs backward twice and catches a gradient that
changes between identical calls (state not reset, accumulated twice) or that overwrites
``.grad`` instead of adding into it.

Public API:
    check_scalar_function  the general tool: any f() and named arrays
    check_module           a layer or model: L = Σ y·dy for a fixed random dy
    check_loss             a loss: L = loss(pred, target)
All return the worst error found and raise :class:`GradcheckError` with a readable report
(tensor, index, analytic vs numeric, and the likely mistake) above ``tol``.
"""
from __future__ import annotations

import numpy

from . import backend

__all__ = ["GradcheckError", "numerical_gradient", "directional_derivative", "relative_error", "roundoff",
           "diagnose", "check_scalar_function", "check_module", "check_loss"]

FULL_LIMIT = 2048  # "auto" mode checks every element of tensors up to this size
DIAGNOSE_LIMIT = 4096  # a failed directional check computes the full numeric gradient up to this size
ROUNDOFF_ULPS = 16  # allowed round-off of L, in units of float64 epsilon times the scale S


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


# ---------------------------------------------------------------------------
# the three pieces
# ---------------------------------------------------------------------------
def numerical_gradient(f, a, eps=1e-6):
    """∂f/∂a by central differences, element by element: (f(a + ε e_i) − f(a − ε e_i)) / 2ε.

    ``f()`` takes no arguments and reads the current contents of ``a``, which is moved in
    place and put back (through ``a[idx]``: ``a.reshape(-1)`` is a copy, not a view, when
    ``a`` is not C-contiguous, and nothing would move).  Returns a float64 NumPy array."""
    grad = numpy.zeros(a.shape)
    for idx in numpy.ndindex(*a.shape):
        old = float(a[idx])
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def directional_derivative(f, arrays, directions, eps=1e-6):
    """d/dt f(θ + t·d) at t = 0, by one central difference with *every* array of ``arrays``
    ({name: array}) moved along its direction (``directions``: {name: array}) at once.
    Compare it with Σ_name Σ analytic[name]·directions[name].  Two calls of ``f``."""
    bases = {k: a.copy() for k, a in arrays.items()}

    def moved(t):
        for k, a in arrays.items():
            a[...] = bases[k] + t * directions[k]
        return f()

    up, down = moved(eps), moved(-eps)
    for k, a in arrays.items():
        a[...] = bases[k]
    return (up - down) / (2 * eps)


def roundoff(value, eps=1e-6, scale=0.0):
    """The round-off of a central difference of a function whose value is ``value`` and whose
    terms are of size ``scale``: about ROUNDOFF_ULPS · ε_mach · max(|value|, scale) / 2ε."""
    return ROUNDOFF_ULPS * numpy.finfo(numpy.float64).eps * max(abs(value), scale) / (2 * eps)


def relative_error(analytic, numeric, floor=1e-7, allowance=0.0, tol=1e-5):
    """|a − n| / (|a| + |n| + floor + allowance/tol), element-wise: ≤ tol exactly when
    |a − n| ≤ tol·(|a| + |n| + floor) + allowance (``allowance``: the :func:`roundoff`)."""
    return abs(analytic - numeric) / (abs(analytic) + abs(numeric) + floor + allowance / tol)


# ---------------------------------------------------------------------------
# what a mismatch looks like
# ---------------------------------------------------------------------------
def _close(a, b, rel=1e-4):
    na, nb = float(numpy.linalg.norm(a)), float(numpy.linalg.norm(b))
    return float(numpy.linalg.norm(a - b)) <= rel * max(na, nb) + 1e-12


def _factor_hint(r):
    """'a missing factor 2?' for r ≈ 1/2, 'an extra factor 3?' for r ≈ 3, '' otherwise."""
    for k in range(2, 11):
        if abs(abs(r) - 1 / k) < 1e-3 / k:
            return f": a missing factor {k}?"
        if abs(abs(r) - k) < 1e-3 * k:
            return f": an extra factor {k} (or a term counted {k} times)?"
    return ""


def _border_width(bad):
    """The smallest b in (1, 2) such that every failing element lies within b rows/columns of
    the border of the last two axes while the interior has elements and they all pass."""
    h, w = bad.shape[-2:]
    for b in (1, 2):
        if h > 2 * b and w > 2 * b and bad.any() and not bad[..., b:h - b, b:w - b].any():
            return b
    return None


def diagnose(analytic, numeric, bad=None):
    """Likely causes of a mismatch between an analytic and a numeric gradient (same shape), as
    sentences; ``bad``: the elements that failed (for the border test).  May be empty."""
    g, n = numpy.asarray(analytic, dtype=numpy.float64), numpy.asarray(numeric, dtype=numpy.float64)
    if not g.any() and n.any():
        return ["the analytic gradient is all zeros while the numeric one is not: "
                "did backward add into `.grad` (or return its dx)?"]
    if g.any() and not n.any():
        return ["the numeric gradient is all zeros: the function does not depend on this array "
                "(is it the array forward reads?), yet backward gives it a gradient"]
    found = []
    if n.any():
        r = float(numpy.sum(g * n) / numpy.sum(n * n))           # least-squares g ≈ r·n
        if _close(g, r * n) and not _close(g, n):
            if abs(r + 1) < 1e-3:
                found.append("analytic ≈ −numeric everywhere: a sign flip")
            else:
                sign = " and a sign flip" if r < 0 else ""
                found.append(f"analytic ≈ {r:.4g} × numeric everywhere: a constant factor{sign}{_factor_hint(r)}")
    if g.ndim >= 2 and g.shape[0] == g.shape[1] and g.shape[0] > 1 and _close(g, n.swapaxes(0, 1)):
        found.append("analytic ≈ numeric with its first two axes swapped: "
                     "the gradient of the transposed weight (dy.T @ x where x.T @ dy was meant, or vice versa)?")
    if g.ndim == 4 and g.shape[2] * g.shape[3] > 1 and _close(g, n[:, :, ::-1, ::-1]):
        found.append("analytic ≈ numeric with the kernel turned by 180°: a convolution where a "
                     "cross-correlation was meant (or the flipped kernel not turned back)?")
    if not found and bad is not None and g.ndim >= 2:
        b = _border_width(numpy.asarray(bad))
        if b is not None:
            found.append(f"the mismatches all lie within {b} row(s)/column(s) of the border (last two axes) "
                         "and the interior agrees: padding or edge handling?")
    return found


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------
def _report_line(key, where, g_value, numeric, err):
    return f"  {key}{where}: analytic {g_value:.10g}  numeric {numeric:.10g}  rel.err {err:.2e}"


def _likely(lines):
    return [f"    likely: {line}" for line in lines]


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
    Returns the worst error; raises GradcheckError above ``tol`` if ``raise_on_fail``, with
    one line per failing tensor and the likely mistake under it.
    """
    return _check(f, arrays, analytic, (), eps=eps, tol=tol, floor=floor, mode=mode, n_directions=n_directions,
                  seed=seed, name=name, raise_on_fail=raise_on_fail, scale=scale)


def _check(f, arrays, analytic, failures, *, eps, tol, floor, mode, n_directions, seed, name, raise_on_fail,
           scale):
    """check_scalar_function, plus ``failures`` found before (report entries ``(err, lines)``)."""
    rng = numpy.random.default_rng(seed)
    allowance = roundoff(f(), eps, scale)
    worst, report = 0.0, []
    for key, a in arrays.items():
        if a.dtype != numpy.float64:
            raise TypeError(f"gradcheck: {key!r} is {a.dtype}; check gradients in float64 "
                            "(float32 round-off swamps the differences)")
        g = backend.to_numpy(analytic[key])
        if g.shape != a.shape:
            hint = " (transposed: dy.T @ x where x.T @ dy was meant?)" if g.shape == tuple(a.shape)[::-1] else ""
            raise GradcheckError(f"{name}: gradient of {key!r} has shape {g.shape}, "
                                 f"but {key!r} has shape {tuple(a.shape)}{hint}")
        if a.size == 0:
            report.append((0.0, [f"  {key}: empty"]))
            continue
        numeric = None
        if mode == "full" or (mode == "auto" and a.size <= FULL_LIMIT):
            numeric = numerical_gradient(f, a, eps)
            errs = relative_error(g, numeric, floor, allowance, tol)
            i = numpy.unravel_index(int(numpy.argmax(errs)), a.shape)
            e = float(errs[i])
            lines = [_report_line(key, list(map(int, i)), g[i], numeric[i], e)]
        else:
            xp = backend.get_array_module(a)
            e, lines = 0.0, []
            for k in range(n_directions):
                d = rng.standard_normal(a.shape)
                along = directional_derivative(f, {key: a}, {key: xp.asarray(d)}, eps)
                ana = float(numpy.sum(g * d))
                ek = float(relative_error(ana, along, floor, allowance, tol))
                if ek >= e:
                    e, lines = ek, [_report_line(key, f" along random direction {k}", ana, along, ek)]
        if raise_on_fail and e > tol:
            if numeric is None and a.size <= DIAGNOSE_LIMIT:
                numeric = numerical_gradient(f, a, eps)
            if numeric is None:
                lines += _likely([f"(not diagnosed: {a.size} elements; check a smaller input with mode='full')"])
            else:
                bad = relative_error(g, numeric, floor, allowance, tol) > tol
                lines += _likely(diagnose(g, numeric, bad) or
                                 [f"no simple pattern: {int(bad.sum())} of {bad.size} elements disagree"])
        worst = max(worst, e)
        report.append((e, lines))
    worst = max([worst] + [e for e, _ in failures])
    if raise_on_fail and worst > tol:
        lines = [line for e, ls in list(failures) + report if e > tol for line in ls]
        raise GradcheckError(f"gradient check of {name} failed (tolerance {tol:g}):\n" + "\n".join(lines))
    return worst


def _float64(a):
    xp = backend.get_array_module(a)
    return xp.array(a, dtype=numpy.float64, order="C")  # always a copy we may perturb


def _repeat_failures(first, again, twice, tol):
    """Report entries for gradients that change between two identical backward calls
    (``again``, after zero_grad) or that do not add up over two calls without zero_grad
    (``twice`` should be 2× ``again``).  ``twice`` has no entries for the inputs' dx."""
    failures = []
    for key, g in first.items():
        g = backend.to_numpy(g)
        g2 = backend.to_numpy(again[key])
        if not numpy.allclose(g2, g, rtol=tol, atol=1e-12):
            r = float(numpy.sum(g2 * g) / numpy.sum(g * g)) if g.any() else float("nan")
            failures.append((numpy.inf, [
                f"  {key} (second call): after zero_grad() the same forward and backward give {r:.4g} × "
                "the first gradient",
                *_likely(["state not reset between calls / accumulated twice (a buffer backward adds into, "
                          "that zero_grad() does not clear?)"])]))
        elif key in twice and not numpy.allclose(backend.to_numpy(twice[key]), 2 * g2, rtol=tol, atol=1e-12):
            failures.append((numpy.inf, [
                f"  {key} (no zero_grad): two backward calls leave 1 × the gradient in .grad, not 2 ×",
                *_likely(["backward overwrites .grad (=) instead of adding into it (+=): "
                          "a weight used twice would lose one contribution"])]))
    return failures


def check_module(module, *inputs, dy=None, seed=0, **kw):
    """Gradient-check ``module``'s backward for its inputs and every parameter.

    The module is converted to float64 in place (``module.double()``) and the
    inputs copied to float64.  With a fixed random ``dy`` (one per output) the
    scalar checked is L = Σ_outputs Σ y·dy, so dL/dy = dy and ``module.backward(dy)``
    must return dL/dx.  The forward must be deterministic: fix any noise first
    (e.g. Dropout with an explicit mask).  Backward also runs twice more: after
    ``zero_grad()`` it must give the same gradients, and without it, twice them.
    """
    module.double()
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

    def gradients():
        """Forward and backward once more; {name: dx or a copy of .grad}."""
        _as_tuple(module(*xs))  # forward again so the cache matches xs
        dxs = _as_tuple(module.backward(*dys))
        grads = {f"input{i}": None if dx is None else dx.copy() for i, dx in enumerate(dxs[:len(xs)])}
        grads.update((pname, p.grad.copy()) for pname, p in module.named_parameters())
        return grads

    outs = _as_tuple(module(*xs))
    kw.setdefault("scale", float(sum(float(abs(o * d).sum()) for o, d in zip(outs, dys))))
    module.zero_grad()
    analytic = gradients()
    module.zero_grad()
    again = gradients()                                     # the same call again: the same gradients
    twice = {k: v for k, v in gradients().items() if not k.startswith("input")}   # no zero_grad: 2× again
    for pname, p in module.named_parameters():              # leave .grad as one backward call does
        p.grad[...] = analytic[pname]
    options = dict(eps=1e-6, tol=1e-5, floor=1e-7, mode="auto", n_directions=2, name=repr(module).split("\n")[0],
                   raise_on_fail=True)
    options.update(kw)
    failures = _repeat_failures(analytic, again, twice, options["tol"])
    arrays = {f"input{i}": x for i, x in enumerate(xs)}
    arrays.update((pname, p.data) for pname, p in module.named_parameters())
    return _check(loss, arrays, analytic, failures, seed=seed, **options)


def _as_tuple(v):
    return v if isinstance(v, tuple) else (v,)


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
