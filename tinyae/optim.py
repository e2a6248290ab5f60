"""Optimizers: SGD and Adam, with the same update rules as torch.optim.

Usage::

    opt = Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); ...; model.backward(dy); opt.step()

``state_dict()`` / ``load_state_dict()`` save and restore everything needed to
resume training bit for bit (step counts, moment estimates, hyperparameters).
"""
from __future__ import annotations

import math

import numpy

from . import backend

__all__ = ["Optimizer", "SGD", "Adam"]


class FlatBuffers:
    """Every parameter's ``data`` and ``grad`` as views into two contiguous 1-D buffers.

    An update rule is element-wise, so it can run once over the concatenation of all
    parameters instead of once per parameter: a small model (12 arrays of a few
    hundred numbers) then pays ~10 array operations per step instead of ~120, and
    Python's per-call overhead stops dominating.  The modules never notice: each
    ``p.data`` is rebound to a reshaped view of its slice, so reading and writing it
    reads and writes the buffer.  Anything that *replaces* ``p.data`` (``module.to``)
    breaks the link; :meth:`intact` sees that and the optimizer falls back to a
    per-parameter loop (create optimizers after moving the model).
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


class Optimizer:
    """Holds a list of Parameters and, per parameter, named state arrays ("exp_avg", …).

    Subclasses write their update once, for arrays ``(param, grad, *state)``, in
    :meth:`update`; :meth:`step` applies it either once to the flat buffers holding every
    parameter (the fast path, see :class:`FlatBuffers`) or to each parameter in turn.
    """

    buffers: tuple = ()  # names of the per-parameter state arrays, e.g. ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float, flat: bool = True):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears twice in the list")
        self.lr = float(lr)
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
        if self.flat is not None and self.flat.intact():
            self.update(self.flat.data, self.flat.grad, *(self._flat_buffer(n) for n in self.buffers))
            return
        for i, p in enumerate(self.params):
            self.update(p.data, p.grad, *(self._buffer(i, n) for n in self.buffers))

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
        """The state array ``name`` of parameter i, created as zeros on first use."""
        if name not in self.state[i]:
            if self.flat is not None:
                self._flat_buffer(name)
            else:
                p = self.params[i].data
                self.state[i][name] = backend.get_array_module(p).zeros_like(p)
        return self.state[i][name]

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
        """Restore from :meth:`state_dict` (values are copied in; the dict is not kept)."""
        self.step_count = int(state["step_count"])
        self.lr = float(state["lr"])
        for k, v in self._hyper().items():
            if f"hyper.{k}" in state:
                saved = numpy.asarray(state[f"hyper.{k}"])
                setattr(self, k, tuple(saved.tolist()) if isinstance(v, tuple) else type(v)(saved.item()))
        for key, arr in state.items():
            if not key.startswith("state."):
                continue
            _, i, name = key.split(".", 2)
            i = int(i)
            if i >= len(self.params) or name not in self.buffers:
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name} state for parameter {i}, "
                                 f"but this optimizer has {len(self.params)} parameters and buffers "
                                 f"{self.buffers} (a different model or optimizer?)")
            p = self.params[i]
            if tuple(numpy.shape(arr)) != tuple(p.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name} of parameter {i} has shape "
                                 f"{tuple(numpy.shape(arr))}, the parameter has shape {tuple(p.shape)}")
            # copy into our own buffer: in-place updates must never write into the caller's dict
            self._buffer(i, name)[...] = backend.get_array_module(p.data).asarray(arr, dtype=p.dtype)
        return self


class SGD(Optimizer):
    r"""Stochastic gradient descent, as torch.optim.SGD:

        g ← ∇θ + λ θ                                  (weight_decay λ)
        b ← g (first step),   b ← μ b + (1 − τ) g     (momentum μ, dampening τ)
        g ← g + μ b (nesterov)   or   g ← b
        θ ← θ − lr · g
    """

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 flat=True):
        super().__init__(params, lr, flat)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        self.buffers = ("momentum_buffer",) if self.momentum else ()

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
    """

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, flat=True):
        super().__init__(params, lr, flat)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.betas = (float(b1), float(b2))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

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
        xp = backend.get_array_module(param)
        if xp is not numpy:  # on the GPU: the same arithmetic as one fused kernel (one launch)
            _fused_adam(xp)(g, b1, b2, step_size, bias2_sqrt, self.eps, param, m, v)
            return
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        denom = xp.sqrt(v)
        denom /= bias2_sqrt
        denom += self.eps
        param -= step_size * (m / denom)


_FUSED = {}


def _fused_adam(xp):
    """The Adam update above as one CuPy ElementwiseKernel, built on first use and cached.

    On a GPU every separate array operation is a kernel launch (~5-10 µs each), which
    dominates small models; fusing the eight operations of the update into one launch
    is what pays.  The NumPy branch of :meth:`Adam.step` is its reference (tests/test_gpu.py).
    """
    if "adam" not in _FUSED:
        _FUSED["adam"] = xp.ElementwiseKernel(
            "T g, T b1, T b2, T step_size, T bias2_sqrt, T eps",
            "T p, T m, T v",
            """
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            p -= step_size * (m / (sqrt(v) / bias2_sqrt + eps));
            """,
            "tinyae_adam_update")
    return _FUSED["adam"]
