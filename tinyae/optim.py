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


class Optimizer:
    """Holds a list of Parameters and per-parameter state buffers (named arrays)."""

    buffers: tuple = ()  # names of the per-parameter state arrays, e.g. ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.lr = float(lr)
        self.state = [dict() for _ in self.params]
        self.step_count = 0

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

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
        self.step_count = int(state["step_count"])
        self.lr = float(state["lr"])
        for k, v in self._hyper().items():
            if f"hyper.{k}" in state:
                saved = numpy.asarray(state[f"hyper.{k}"])
                setattr(self, k, tuple(saved.tolist()) if isinstance(v, tuple) else type(v)(saved.item()))
        self.state = [dict() for _ in self.params]
        for key, arr in state.items():
            if not key.startswith("state."):
                continue
            _, i, name = key.split(".", 2)
            i = int(i)
            if i >= len(self.params):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter {i}, but the "
                                 f"optimizer has {len(self.params)} parameters (different model?)")
            p = self.params[i]
            if tuple(numpy.shape(arr)) != tuple(p.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name} of parameter {i} has shape "
                                 f"{tuple(numpy.shape(arr))}, the parameter has shape {tuple(p.shape)}")
            # a copy: in-place updates must not write into the caller's state dict (or into
            # another optimizer loaded from the same dict)
            self.state[i][name] = backend.get_array_module(p.data).array(arr, dtype=p.dtype, copy=True)
        return self

    def _buffer(self, i, name):
        """The state array ``name`` of parameter i, created as zeros on first use."""
        st = self.state[i]
        if name not in st:
            p = self.params[i].data
            st[name] = backend.get_array_module(p).zeros_like(p)
        return st[name]


class SGD(Optimizer):
    r"""Stochastic gradient descent, as torch.optim.SGD:

        g ← ∇θ + λ θ                                  (weight_decay λ)
        b ← g (first step),   b ← μ b + (1 − τ) g     (momentum μ, dampening τ)
        g ← g + μ b (nesterov)   or   g ← b
        θ ← θ − lr · g
    """

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def _hyper(self):
        return {"momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}

    def step(self):
        self.step_count += 1
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                if "momentum_buffer" not in self.state[i]:
                    buf = self.state[i]["momentum_buffer"] = g.copy()
                else:
                    buf = self.state[i]["momentum_buffer"]
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), the same arithmetic as torch.optim.Adam:

        g ← ∇θ + λ θ                              (L2 weight_decay λ, as PyTorch's Adam)
        m ← β₁ m + (1 − β₁) g                      (first moment)
        v ← β₂ v + (1 − β₂) g²                     (second moment)
        θ ← θ − lr/(1 − β₁ᵗ) · m / ( √v / √(1 − β₂ᵗ) + ε )    (bias-corrected, t = step)
    """

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.betas = (float(b1), float(b2))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def _hyper(self):
        return {"betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def step(self):
        self.step_count += 1
        t = self.step_count
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** t)
        bias2_sqrt = math.sqrt(1 - b2 ** t)
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m = self._buffer(i, "exp_avg")
            v = self._buffer(i, "exp_avg_sq")
            xp = backend.get_array_module(p.data)
            if xp is not numpy:  # on the GPU: the same arithmetic as one fused kernel (one launch)
                _fused_adam(xp)(g, b1, b2, step_size, bias2_sqrt, self.eps, p.data, m, v)
                continue
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            denom = backend.get_array_module(v).sqrt(v)
            denom /= bias2_sqrt
            denom += self.eps
            p.data -= step_size * (m / denom)


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
