"""Optimizers: SGD and Adam, with the same update rules as torch.optim.

Usage::

    opt = Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); ...; model.backward(dy); opt.step()

Each optimizer's :meth:`~Optimizer.update` is its rule, line by line: what the docs quote.
Two speed-ups are chosen once, when the optimizer is made, and shown in its repr:

* ``flat=True`` (the default) moves every parameter into one contiguous buffer
  (:class:`FlatBuffers`: each ``p.data`` / ``p.grad`` becomes a view of it), so that the
  rule runs once over all parameters instead of once per parameter.
* ``Adam(engine=...)`` picks who runs the rule on the CPU (``tinyae/optim_engine.py``):
  "reference" runs :meth:`Adam.update` itself; "numba" / "blocks" run the same arithmetic
  faster.  On CuPy arrays one fused GPU kernel runs it.

``state_dict()`` / ``load_state_dict()`` save and restore everything needed to
resume training bit for bit (step counts, moment estimates, hyperparameters).
"""
from __future__ import annotations

import math

import numpy

from . import backend, optim_engine
from . import _checks
from ._checks import boolean, real

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Holds a list of Parameters and, per parameter, named state arrays ("exp_avg", …).

    Subclasses write their rule once, for arrays ``(param, grad, *state)``, in
    :meth:`update`; :meth:`step` applies it either once to the flat buffers holding every
    parameter (``flat=True``, see :class:`FlatBuffers`) or to each parameter in turn.
    """

    buffers: tuple = ()  # names of the per-parameter state arrays, e.g. ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float, flat: bool = True):
        self.params = _checks.parameter_list(params, type(self).__name__)
        self.lr = _check_lr(lr, type(self).__name__)
        self.state = [dict() for _ in self.params]
        self.step_count = 0
        self.flat = FlatBuffers(self.params) if flat and FlatBuffers.possible(self.params) else None
        self._flat_state = {}  # name -> the flat buffer behind state[i][name]

    # -- the update -------------------------------------------------------------------
    def update(self, param, grad, *state):
        """Update ``param`` in place from ``grad`` and the state arrays named in ``buffers``."""
        raise NotImplementedError

    def step(self):
        self.step_count += 1
        for param, grad, *state in self._groups():
            self._apply(param, grad, *state)

    def _groups(self):
        """(param, grad, *state) arrays to update: the flat buffers, or each parameter's own."""
        if self.flat is not None and self.flat.intact():
            return [(self.flat.data, self.flat.grad, *(self._flat_buffer(n) for n in self.buffers))]
        return [(p.data, p.grad, *(self._buffer(i, n) for n in self.buffers)) for i, p in enumerate(self.params)]

    def _apply(self, param, grad, *state):
        """Run :meth:`update` (an optimizer with a faster engine runs that instead)."""
        self.update(param, grad, *state)

    def flat_grad(self):
        """The one contiguous buffer that holds every parameter's gradient (``flat=True``, while
        the parameters still live in it), or None.  (MPI sums it in one call.)"""
        return self.flat.grad if self.flat is not None and self.flat.intact() else None

    def zero_grad(self):
        if self.flat is not None and self.flat.intact():
            self.flat.grad.fill(0)
            return
        for p in self.params:
            p.grad[...] = 0

    # -- state ---------------------------------------------------------------------------
    def _flat_buffer(self, name):
        """The flat state buffer ``name`` (zeros on first use); state[i][name] are its views."""
        if name not in self._flat_state:
            flat, views = self.flat.zeros()
            self._flat_state[name] = flat
            for st, view in zip(self.state, views):
                st[name] = view
        return self._flat_state[name]

    def _buffer(self, i, name):
        """The state array ``name`` of parameter i, created as zeros on first use (and made
        anew if the parameter was moved or cast since: the state follows the parameter)."""
        p = self.params[i].data
        st = self.state[i].get(name)
        if st is None and self.flat is not None and self.flat.intact():
            self._flat_buffer(name)
            st = self.state[i][name]
        if st is None:
            st = self.state[i][name] = backend.get_array_module(p).zeros_like(p)
        elif st.dtype != p.dtype or type(st) is not type(p):
            st = self.state[i][name] = backend.asarray_like(st, p)
        return st

    def _hyper(self) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """A flat dict of NumPy arrays and numbers, ready for ``numpy.savez``."""
        out = {"step_count": self.step_count, "lr": self.lr}
        out.update({f"hyper.{k}": v for k, v in self._hyper().items()})
        for i, st in enumerate(self.state):
            for name, arr in st.items():
                out[f"state.{i}.{name}"] = backend.to_numpy(arr).copy()
        return out

    def load_state_dict(self, state: dict):
        """Restore from :meth:`state_dict` (values are copied in; the dict is not kept).

        Everything is checked before anything changes, so on an error the optimizer is as it
        was: every key :meth:`state_dict` writes must be there (after the first step, each
        parameter's every state array: a missing one would silently restart at zero), no
        other keys, each array the shape of its parameter, hyperparameters valid.  Raises a
        ValueError naming the key and what was expected."""
        step_count, lr, hyper, arrays = _checks.optimizer_state(self, state)   # all checked first
        # all checked: apply
        self.step_count, self.lr = step_count, lr
        for k, v in hyper.items():
            setattr(self, k, v)
        self._after_hyper()
        for (i, buf), arr in arrays.items():
            # copy into our own buffer: in-place updates must never write into the caller's dict
            self._buffer(i, buf)[...] = arr
        return self

    @staticmethod
    def _checked_hyper(**hyper) -> dict:
        """The hyperparameters (other than lr) checked and converted (subclasses)."""
        return hyper

    @staticmethod
    def _buffers_for(hyper: dict) -> tuple:
        """The state arrays this optimizer keeps under the hyperparameters ``hyper``."""
        return ()

    def _after_hyper(self):
        """Hook run after hyperparameters were loaded."""


def _check_lr(lr, where):
    return real(lr, "lr", where, low=0.0, low_open=True)


class SGD(Optimizer):
    r"""Stochastic gradient descent, as torch.optim.SGD:

        g ← ∇θ + λ θ                                  (weight_decay λ)
        b ← g (first step),   b ← μ b + (1 − τ) g     (momentum μ, dampening τ)
        g ← g + μ b (nesterov)   or   g ← b
        θ ← θ − lr · g
    """

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 flat=True):
        hyper = self._checked_hyper(momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                    nesterov=nesterov)
        super().__init__(params, lr, flat)
        for k, v in hyper.items():
            setattr(self, k, v)
        self._after_hyper()

    @staticmethod
    def _checked_hyper(momentum, dampening, weight_decay, nesterov):
        """The checks torch.optim.SGD makes (momentum, weight_decay >= 0; nesterov needs
        momentum > 0 and dampening 0), plus: every value finite, dampening in [0, 1]."""
        hyper = {"momentum": real(momentum, "momentum", "SGD", low=0.0),
                 "dampening": real(dampening, "dampening", "SGD", 0.0, 1.0),
                 "weight_decay": real(weight_decay, "weight_decay", "SGD", low=0.0),
                 "nesterov": boolean(nesterov, "nesterov", "SGD")}
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(f"SGD: nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={hyper['momentum']:g}, dampening={hyper['dampening']:g}")
        return hyper

    @staticmethod
    def _buffers_for(hyper):
        return ("momentum_buffer",) if hyper["momentum"] else ()

    def _after_hyper(self):
        self.buffers = self._buffers_for(self._hyper())

    def _hyper(self):
        return {"momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}

    def update(self, param, grad, buf=None):
        g = grad
        if self.weight_decay:
            g = g + self.weight_decay * param
        if self.momentum:
            if self.step_count == 1:
                buf[...] = g
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        param -= self.lr * g


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), the same arithmetic as torch.optim.Adam:

        g ← ∇θ + λ θ                              (L2 weight_decay λ, as PyTorch's Adam)
        m ← β₁ m + (1 − β₁) g                      (first moment)
        v ← β₂ v + (1 − β₂) g²                     (second moment)
        θ ← θ − lr/(1 − β₁ᵗ) · m / ( √v / √(1 − β₂ᵗ) + ε )    (bias-corrected, t = step)

    :meth:`update` is that rule, line by line (the reference).  ``engine`` says who runs it on
    the CPU, chosen once here (tinyae/optim_engine.py): "reference" runs :meth:`update`;
    "numba" (the default when Numba is installed) and "blocks" run the same operations in
    one compiled loop or in cache-sized blocks, and flush subnormal moments to 0 (bit-equal
    otherwise: tests/test_optim_engine.py).  ``None``: ``optim_engine.default()``
    ($TINYAE_OPTIM_ENGINE, else "numba" if installed, else "reference").  On CuPy arrays one
    fused GPU kernel runs the rule, whatever the engine.
    """

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, flat=True,
                 engine=None):
        hyper = self._checked_hyper(betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, lr, flat)
        self.betas, self.eps, self.weight_decay = hyper["betas"], hyper["eps"], hyper["weight_decay"]
        self.engine = optim_engine.default() if engine is None else optim_engine.check(engine, type(self).__name__)

    def __repr__(self):
        return (f"{type(self).__name__}(lr={self.lr:g}, betas={self.betas}, eps={self.eps:g}, "
                f"weight_decay={self.weight_decay:g}, flat={self.flat is not None}, engine={self.engine!r})")

    @staticmethod
    def _checked_hyper(betas, eps, weight_decay):
        """torch.optim.Adam's checks (0 <= betas < 1, weight_decay >= 0), plus: finite values and
        eps > 0 (torch allows eps = 0, which divides 0 by 0 for a parameter whose gradient is 0)."""
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        b1 = real(betas[0], "betas[0] (beta1)", "Adam", 0.0, 1.0, high_open=True)
        b2 = real(betas[1], "betas[1] (beta2)", "Adam", 0.0, 1.0, high_open=True)
        return {"betas": (b1, b2), "eps": real(eps, "eps", "Adam", low=0.0, low_open=True),
                "weight_decay": real(weight_decay, "weight_decay", "Adam", low=0.0)}

    @staticmethod
    def _buffers_for(hyper):
        return Adam.buffers

    def _hyper(self):
        return {"betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def update(self, param, grad, m, v):
        t = self.step_count
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** t)
        bias2_sqrt = math.sqrt(1 - b2 ** t)
        g = grad
        if self.weight_decay:
            g = g + self.weight_decay * param
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        denom = backend.get_array_module(param).sqrt(v)
        denom /= bias2_sqrt
        denom += self.eps
        param -= step_size * (m / denom)

    def _apply(self, param, grad, m, v):
        """The rule of :meth:`update`, run by the fused GPU kernel on CuPy arrays, else by the
        engine chosen at construction (on contiguous arrays; the reference otherwise)."""
        xp = backend.get_array_module(param)
        if xp is numpy:
            if self.engine == "reference":
                return self.update(param, grad, m, v)
            if param.ndim != 1:     # one parameter at a time: the engines take 1-D views of it
                if not (param.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
                    return self.update(param, grad, m, v)
                param, grad, m, v = (a.reshape(-1) for a in (param, grad, m, v))
        t = self.step_count
        b1, b2 = self.betas
        step_size, bias2_sqrt = self.lr / (1 - b1 ** t), math.sqrt(1 - b2 ** t)
        g = grad + self.weight_decay * param if self.weight_decay else grad
        if xp is not numpy:
            _fused_adam(xp)(g, b1, b2, 1 - b1, 1 - b2, step_size, bias2_sqrt, self.eps, param, m, v)
        else:
            optim_engine.adam_step(self.engine, param, g, m, v, b1=b1, b2=b2, step_size=step_size,
                                   bias2_sqrt=bias2_sqrt, eps=self.eps)


# -- the speed-ups: one buffer for all parameters, one GPU kernel for Adam --------------------

class FlatBuffers:
    """Every parameter's ``data`` and ``grad`` as views into two contiguous 1-D buffers.

    An update rule is element-wise, so it can run once over the concatenation of all
    parameters instead of once per parameter: a small model (12 arrays of a few
    hundred numbers) then pays ~10 array operations per step instead of ~120, and
    Python's per-call overhead stops dominating.  Building it rebinds each ``p.data`` (and
    ``p.grad``) to a reshaped view of its slice, so the modules read and write the buffer.
    Anything that later *replaces* ``p.data`` or ``p.grad`` (``module.to``, ``.double()``)
    breaks the link: :meth:`intact` says so, and the optimizer then updates parameter by
    parameter (same numbers; create optimizers after moving the model to keep the speed).
    """

    def __init__(self, params):
        xp = backend.get_array_module(params[0].data)
        dtype = params[0].dtype
        self.params = params
        self.slices, start = [], 0
        for p in params:
            self.slices.append(slice(start, start + p.data.size))
            start += p.data.size
        self.data = xp.empty(start, dtype=dtype)
        self.grad = xp.empty(start, dtype=dtype)
        for p, sl in zip(params, self.slices):
            self.data[sl] = p.data.reshape(-1)
            self.grad[sl] = p.grad.reshape(-1)
            p.data = self.data[sl].reshape(p.shape)
            p.grad = self.grad[sl].reshape(p.shape)
        self.views = [(p.data, p.grad) for p in params]

    @staticmethod
    def possible(params) -> bool:
        """One dtype and one device for all parameters, each a distinct array."""
        first = params[0].data
        xp = backend.get_array_module(first)
        return all(p.dtype == first.dtype and backend.get_array_module(p.data) is xp for p in params)

    def intact(self) -> bool:
        return all(p.data is d and p.grad is g for p, (d, g) in zip(self.params, self.views))

    def zeros(self):
        """A new flat buffer shaped like ``data`` and its per-parameter views."""
        flat = backend.get_array_module(self.data).zeros_like(self.data)
        return flat, [flat[sl].reshape(p.shape) for p, sl in zip(self.params, self.slices)]


_FUSED = {}


def _fused_adam(xp):
    """The Adam update above as one CuPy ElementwiseKernel, built on first use and cached.

    On a GPU every separate array operation is a kernel launch (~5-10 µs each), which
    dominates small models; fusing the eight operations of the update into one launch
    is what pays.  :meth:`Adam.update` is its reference, operation for operation: 1 − β₁ and
    1 − β₂ come in computed on the host, as NumPy computes them (tests/test_cupy_standin.py).
    """
    if "adam" not in _FUSED:
        _FUSED["adam"] = xp.ElementwiseKernel(
            "T g, T b1, T b2, T one_minus_b1, T one_minus_b2, T step_size, T bias2_sqrt, T eps",
            "T p, T m, T v",
            """
            m = b1 * m + one_minus_b1 * g;
            v = b2 * v + one_minus_b2 * (g * g);
            p -= step_size * (m / (sqrt(v) / bias2_sqrt + eps));
            """,
            "tinyae_adam_update")
    return _FUSED["adam"]
