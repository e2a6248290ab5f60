"""Losses: ``value = loss(pred, target)`` (a 0-d array on pred's device), then
``grad = loss.backward()`` returns dL/dpred (GaussianKL: the pair dL/dmean, dL/dlogvar).

Reductions (say which one — pitfall 2 of the guide):
    "mean"  average over every element (MSE, BCE) — PyTorch's default
    "sum"   sum over every element (the VAE convention: report it per sample by dividing by N)
GaussianKL's "mean" averages over the batch of the per-sample KL summed over latent dims.

The value stays on the device: call ``float(value)`` only when you log it (one GPU sync).
"""
from __future__ import annotations

import numpy

from .backend import get_array_module
from .nn.activation import sigmoid

__all__ = ["Loss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "GaussianKL"]


class Loss:
    """Base class: checks inputs, remembers what backward needs, applies the reduction."""

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def _check_pair(self, pred, target, names=("pred", "target")):
        name = type(self).__name__
        for arr, label in zip((pred, target), names):
            if not hasattr(arr, "dtype") or arr.dtype.kind != "f":
                raise ValueError(f"{name}: {label} must be a float array, got "
                                 f"{getattr(arr, 'dtype', type(arr).__name__)}")
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"{name}: {names[0]} has shape {tuple(pred.shape)} but {names[1]} has shape "
                             f"{tuple(target.shape)}; they must match exactly (no broadcasting)")
        if get_array_module(pred) is not get_array_module(target):
            raise ValueError(f"{name}: {names[0]} and {names[1]} are on different devices")

    def _scale(self, n_elements: int) -> float:
        """dL/d(elementwise loss): 1 for "sum", 1/n for "mean"."""
        return 1.0 / n_elements if self.reduction == "mean" else 1.0

    def _reduce(self, elementwise):
        return elementwise.mean() if self.reduction == "mean" else elementwise.sum()

    def __call__(self, *args):
        return self.forward(*args)

    def backward(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return self._backward()


class MSELoss(Loss):
    r"""L = reduce_i (p_i − t_i)²

    Backward: dL/dp = 2 (p − t) · s,  s = 1/n ("mean") or 1 ("sum").  Shapes: p, t, dp all (…).
    """

    def forward(self, pred, target):
        self._check_pair(pred, target)
        diff = pred - target
        self._cache = diff
        return self._reduce(diff * diff)

    def _backward(self):
        diff = self._cache
        return diff * diff.dtype.type(2.0 * self._scale(diff.size))


class BCELoss(Loss):
    r"""Binary cross-entropy on probabilities p ∈ [0, 1]:

        L = reduce_i −[ t_i log p_i + (1 − t_i) log(1 − p_i) ]

    Like PyTorch, each log is clamped at −100, so p = 0 or 1 gives a large finite loss,
    never log(0) = −inf.  Backward (PyTorch's form, denominator clamped at 1e-12):

        dL/dp = (p − t) / max(p (1 − p), 1e-12) · s

    Prefer :class:`BCEWithLogitsLoss` after a final Sigmoid: it is exact for all logits.
    """

    LOG_FLOOR = -100.0

    def forward(self, pred, target):
        self._check_pair(pred, target)
        xp = get_array_module(pred)
        log_p = xp.maximum(_safe_log(pred), self.LOG_FLOOR)
        log_1mp = xp.maximum(_safe_log(1 - pred), self.LOG_FLOOR)
        self._cache = (pred, target)
        return self._reduce(-(target * log_p + (1 - target) * log_1mp))

    def _backward(self):
        xp = get_array_module(self._cache[0])
        p, t = self._cache
        denom = xp.maximum(p * (1 - p), p.dtype.type(1e-12))
        return (p - t) / denom * p.dtype.type(self._scale(p.size))


def _safe_log(x):
    """log(x) with x ≤ 0 mapped to a very negative finite number instead of −inf/NaN warnings."""
    xp = get_array_module(x)
    return xp.log(xp.maximum(x, numpy.finfo(x.dtype).tiny))


class BCEWithLogitsLoss(Loss):
    r"""Binary cross-entropy on logits z (p = σ(z)), exact for grey targets t ∈ [0, 1]:

        L = reduce_i  softplus(z_i) − t_i z_i,   softplus(z) = log(1 + e^z)
                    = max(z, 0) − t z + log(1 + e^{−|z|})      (no overflow for any z)

    Backward: d softplus/dz = σ(z), so  dL/dz = (σ(z) − t) · s.
    """

    def forward(self, logits, target):
        self._check_pair(logits, target, names=("logits", "target"))
        xp = get_array_module(logits)
        self._cache = (logits, target)
        softplus = xp.maximum(logits, 0) + xp.log1p(xp.exp(-xp.abs(logits)))
        return self._reduce(softplus - target * logits)

    def _backward(self):
        z, t = self._cache
        return (sigmoid(z) - t) * z.dtype.type(self._scale(z.size))


class GaussianKL(Loss):
    r"""KL( N(μ, diag σ²) ‖ N(0, I) ) with the encoder's log-variance ℓ = log σ²:

        KL_n = −½ Σ_j (1 + ℓ_nj − μ_nj² − e^{ℓ_nj})          per sample n
        L    = Σ_n KL_n ("sum")   or   (1/N) Σ_n KL_n ("mean")

    Backward (s = 1 or 1/N):
        dL/dμ = μ · s
        dL/dℓ = ½ (e^ℓ − 1) · s
    Shapes: μ, ℓ and both gradients (N, K).  ``backward()`` returns (dμ, dℓ).
    """

    def __init__(self, reduction: str = "sum"):
        super().__init__(reduction)

    def forward(self, mean, logvar):
        self._check_pair(mean, logvar, names=("mean", "logvar"))
        xp = get_array_module(mean)
        var = xp.exp(logvar)
        self._cache = (mean, var)
        total = -0.5 * (1 + logvar - mean * mean - var).sum()
        return total / mean.shape[0] if self.reduction == "mean" else total

    def _backward(self):
        mean, var = self._cache
        s = mean.dtype.type(1.0 / mean.shape[0] if self.reduction == "mean" else 1.0)
        return mean * s, (var - 1) * (s * mean.dtype.type(0.5))
