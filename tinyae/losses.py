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

from . import _checks
from ._checks import DTypeError, float_array, real
from .backend import get_array_module
from .nn.activation import Identity, LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from .nn.module import Module

__all__ = ["Loss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "GaussianKL"]


class Loss:
    """Base class: checks inputs, remembers what backward needs, applies the reduction."""

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    # -- the checks a loss's forward opens with (bodies in tinyae/_checks.py) --
    def _check_pair(self, pred, target, names=("pred", "target")):
        """Raise unless pred and target are float arrays of one shape, dtype and device, non-empty."""
        _checks.loss_pair(type(self).__name__, pred, target, names)

    def _check_unit_interval(self, arr, label, hint):
        """Raise unless every value of ``arr`` lies in [0, 1] (NaN passes: fit reports a NaN loss)."""
        _checks.unit_interval(type(self).__name__, arr, label, hint)

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
        self._check_unit_interval(pred, "pred (probabilities)", "BCELoss takes probabilities: for logits "
                                  "(a decoder without a final Sigmoid) use BCEWithLogitsLoss")
        self._check_unit_interval(target, "target", _TARGET_HINT)
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


_TARGET_HINT = ("binary cross-entropy compares with targets in [0, 1]: scale pixels with "
                "tinyae.data.to_float (0..255 → 0..1), or use MSELoss for data in [−1, 1]")


def _safe_log(x):
    """log(x) with x ≤ 0 mapped to −inf, without divide-by-zero/NaN warnings (the caller clamps).
    Not log(max(x, tiny)): in float32 that is −87.3, above the −100 floor, so p = 0 would
    give a loss of 87.3 instead of PyTorch's 100."""
    xp = get_array_module(x)
    nonpositive = x <= 0  # False for NaN, so a NaN prediction still gives a NaN loss
    return xp.where(nonpositive, -xp.inf, xp.log(xp.where(nonpositive, 1, x)))


class BCEWithLogitsLoss(Loss):
    r"""Binary cross-entropy on logits z (p = σ(z)), exact for grey targets t ∈ [0, 1]:

        L = reduce_i  softplus(z_i) − t_i z_i,   softplus(z) = log(1 + e^z)
                    = max(z, 0) − t z + log(1 + e^{−|z|})      (no overflow for any z)

    Backward: d softplus/dz = σ(z), so  dL/dz = (σ(z) − t) · s.
    """

    def forward(self, logits, target):
        self._check_pair(logits, target, names=("logits", "target"))
        self._check_unit_interval(target, "target", _TARGET_HINT)
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
        # NumPy scalars, not Python numbers: on NumPy 1.x a float32 scalar times a Python
        # float (or over a Python int) is promoted to float64.
        half, n = mean.dtype.type(0.5), mean.dtype.type(mean.shape[0])
        total = -half * (1 + logvar - mean * mean - var).sum()
        return total / n if self.reduction == "mean" else total

    def _backward(self):
        mean, var = self._cache
        s = mean.dtype.type(1.0 / mean.shape[0] if self.reduction == "mean" else 1.0)
        return mean * s, (var - 1) * (s * mean.dtype.type(0.5))


# ---------------------------------------------------------------------------
# Penalties on the code of an autoencoder (sparse and contractive autoencoders)
# ---------------------------------------------------------------------------
# Their "reduction" is over *samples*: "mean" averages the per-sample penalty over the
# batch (like GaussianKL), "sum" adds it up.  Pair "mean" with a mean-reduced
# reconstruction loss and "sum" with a sum-reduced one, so that the total is a batch
# average or a batch sum throughout.

__all__ += ["L1ActivityPenalty", "KLSparsityPenalty", "ContractivePenalty",
            "StochasticContractivePenalty", "activation_derivatives"]


class _Penalty(Loss):
    """A Loss whose reduction is over samples (see above); ``backward`` returns dP/dh."""

    name = "penalty"

    def _per_batch(self, n: int) -> float:
        """The factor c in L = c · Σ_n (per-sample penalty): 1/N for "mean", 1 for "sum"."""
        return 1.0 / n if self.reduction == "mean" else 1.0


class L1ActivityPenalty(_Penalty):
    r"""L1 penalty on the code activity (a sparse autoencoder's simplest regulariser):

        P = λ · c · Σ_n Σ_j |h_nj|          c = 1/N ("mean") or 1 ("sum")

    Backward:  dP/dh = λ · c · sign(h)     (sign(0) = 0, the subgradient PyTorch also uses)
    Shapes: h and dh (N, …); the penalty sums over every axis but the first.
    """

    name = "sparsity"

    def __init__(self, lam: float = 1e-3, reduction: str = "mean"):
        super().__init__(reduction)
        self.lam = real(lam, "lam", "L1ActivityPenalty", low=0.0)

    def forward(self, h):
        float_array(h, "h (the code)", "L1ActivityPenalty")
        xp = get_array_module(h)
        self._cache = h
        return xp.abs(h).sum() * h.dtype.type(self.lam * self._per_batch(h.shape[0]))

    def _backward(self):
        h = self._cache
        xp = get_array_module(h)
        return xp.sign(h) * h.dtype.type(self.lam * self._per_batch(h.shape[0]))

    def __repr__(self):
        return f"L1ActivityPenalty(lam={self.lam}, reduction={self.reduction!r})"


class KLSparsityPenalty(_Penalty):
    r"""The sparse autoencoder's KL(ρ ‖ ρ̂) penalty (Ng's CS294A notes).

    With code activities h ∈ (0, 1) (a sigmoid code), N samples and H units:

        ρ̂_j = (1/N) Σ_n h_nj                               mean activity of unit j   (H,)
        P   = β · k · Σ_j [ ρ log(ρ/ρ̂_j) + (1−ρ) log((1−ρ)/(1−ρ̂_j)) ]

    k = 1 for "mean" (the penalty is already a batch statistic) and k = N for "sum"
    (so that it scales with the batch like a summed loss).

    Backward, with dP/dρ̂_j = β k (−ρ/ρ̂_j + (1−ρ)/(1−ρ̂_j)) and dρ̂_j/dh_nj = 1/N:

        dP/dh_nj = (β k / N) · ( −ρ/ρ̂_j + (1−ρ)/(1−ρ̂_j) )      the same for every n

    ρ̂ is clipped to [δ, 1−δ] (δ = the dtype's machine epsilon) so that a dead or saturated
    unit gives a large finite penalty rather than log(0); the gradient is that of the
    unclipped formula evaluated at the clipped ρ̂.  Shapes: h, dh (N, H) (or (N, …)).
    """

    name = "sparsity"

    def __init__(self, rho: float = 0.05, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.rho = real(rho, "rho (the target activity)", "KLSparsityPenalty", 0.0, 1.0, True, True)
        self.beta = real(beta, "beta", "KLSparsityPenalty", low=0.0)

    def forward(self, h):
        float_array(h, "h (the code)", "KLSparsityPenalty")
        self._check_unit_interval(h, "h (the code activities)", "KL(ρ‖ρ̂) compares mean activities in "
                                  "(0, 1): put a Sigmoid on the code, or use L1ActivityPenalty")
        xp = get_array_module(h)
        n = h.shape[0]
        delta = numpy.finfo(h.dtype).eps
        rho_hat = xp.clip(h.mean(axis=0), delta, 1 - delta)
        rho = h.dtype.type(self.rho)
        kl = rho * xp.log(rho / rho_hat) + (1 - rho) * xp.log((1 - rho) / (1 - rho_hat))
        k = 1.0 if self.reduction == "mean" else float(n)
        self._cache = (h, rho_hat, k)
        return kl.sum() * h.dtype.type(self.beta * k)

    def _backward(self):
        h, rho_hat, k = self._cache
        xp = get_array_module(h)
        rho = h.dtype.type(self.rho)
        d_rho_hat = (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) * h.dtype.type(self.beta * k / h.shape[0])
        return xp.broadcast_to(d_rho_hat, h.shape).copy()

    def __repr__(self):
        return f"KLSparsityPenalty(rho={self.rho}, beta={self.beta}, reduction={self.reduction!r})"


# the activations the exact contractive penalty takes by name; each gives its own s' and s''
_ACTIVATIONS_BY_NAME = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
                       "identity": Identity}


def _activation_layer(activation, negative_slope: float, where: str):
    """The activation layer named ``activation`` (a LeakyReLU gets ``negative_slope``), or
    ``activation`` itself when it is a layer with a ``derivatives`` method."""
    if isinstance(activation, Module):
        if not callable(getattr(activation, "derivatives", None)):
            known = ", ".join(c.__name__ for c in _ACTIVATIONS_BY_NAME.values())
            raise TypeError(f"{where}: the activation {activation!r} has no derivatives(a) method giving "
                            f"(s'(a), s''(a)); use one of {known}")
        return activation
    if not isinstance(activation, str) or activation not in _ACTIVATIONS_BY_NAME:
        raise ValueError(f"{where}: unknown activation {activation!r}; expected one of "
                         "'sigmoid', 'tanh', 'relu', 'leaky_relu', 'identity'")
    cls = _ACTIVATIONS_BY_NAME[activation]
    return cls(negative_slope) if cls is LeakyReLU else cls()


def activation_derivatives(a, activation, negative_slope: float = 0.01):
    r"""(s'(a), s''(a)) of an element-wise activation at pre-activations ``a`` (any shape).

    ``activation``: a name ("sigmoid", "tanh", "relu", "leaky_relu", "identity") or an
    activation layer; the numbers come from the layer's own ``derivatives(a)`` (see
    :mod:`tinyae.nn.activation` for each formula):

        sigmoid     s = σ(a)      s' = s(1−s)        s'' = s'(1−2s)
        tanh        t = tanh(a)   s' = 1−t²          s'' = −2t·s'
        relu                      s' = [a > 0]       s'' = 0
        leaky_relu                s' = 1 or slope    s'' = 0
        identity                  s' = 1             s'' = 0
    (The ReLUs' s'' is 0 almost everywhere; at a = 0 we take s' from the right-open side,
    s'(0) = 0 or slope, like the layers' backward.)
    """
    return _activation_layer(activation, negative_slope, "activation_derivatives").derivatives(a)


class ContractivePenalty(_Penalty):
    r"""Exact contractive penalty λ‖∂h/∂x‖²_F for a one-layer encoder h = s(a), a = x Wᵀ + b.

    Shapes: x (N, D), W (H, D), b (H,), a and h (N, H).  The Jacobian of sample n is
    J_n = diag(s'(a_n)) W  (H, D), so with w_j = Σ_i W_ji²  (the squared row norms, (H,)):

        ‖J_n‖²_F = Σ_j s'(a_nj)² w_j
        P        = λ · c · Σ_n Σ_j s'(a_nj)² w_j              c = 1/N ("mean") or 1 ("sum")

    P depends on W twice: directly through w, and through a = x Wᵀ + b.  Backward returns
    the two pieces separately so that the model can route the second through the
    encoder's Linear.backward (which then also gives the b and x parts):

        dP/da_nj = λ c · 2 s'(a_nj) s''(a_nj) w_j                         (N, H)   "da"
        dP/dW_ji |direct = λ c · 2 W_ji Σ_n s'(a_nj)²                    (H, D)   "dW"

    so  dP/dW = daᵀ x + dW,  dP/db = Σ_n da_n,  dP/dx = da W.
    ``forward(a, W)`` → P;  ``backward()`` → (da, dW).

    ``activation``: the encoder's activation layer (s' and s'' come from its
    ``derivatives(a)``), or its name ("sigmoid", "tanh", "relu", "leaky_relu" with
    ``negative_slope``, "identity").
    """

    name = "contractive"

    def __init__(self, lam: float = 0.1, activation="sigmoid", negative_slope: float = 0.01,
                 reduction: str = "mean"):
        super().__init__(reduction)
        self.lam = real(lam, "lam", "ContractivePenalty", low=0.0)
        self.negative_slope = real(negative_slope, "negative_slope", "ContractivePenalty")
        self.act = _activation_layer(activation, self.negative_slope, "ContractivePenalty")
        self.activation = activation if isinstance(activation, str) else next(
            (k for k, c in _ACTIVATIONS_BY_NAME.items() if type(activation) is c), type(activation).__name__)

    def forward(self, a, W):
        float_array(a, "a (the pre-activations)", "ContractivePenalty")
        float_array(W, "W", "ContractivePenalty", batch=False)
        if a.ndim != 2 or W.ndim != 2 or a.shape[1] != W.shape[0]:
            raise ValueError(f"ContractivePenalty: expected a (N, H) and W (H, D), got a {tuple(a.shape)} "
                             f"and W {tuple(W.shape)}")
        if a.dtype != W.dtype:
            raise DTypeError(f"ContractivePenalty: a is {a.dtype} but W is {W.dtype}; they must match")
        d1, d2 = self.act.derivatives(a)              # s'(a), s''(a)  (N, H)
        w = (W * W).sum(axis=1)                       # (H,)
        d1sq = d1 * d1                                # (N, H)
        scale = a.dtype.type(self.lam * self._per_batch(a.shape[0]))
        self._cache = (W, d1, d2, w, d1sq, scale)
        return (d1sq @ w).sum() * scale

    def _backward(self):
        W, d1, d2, w, d1sq, scale = self._cache
        da = (2 * scale) * d1 * d2 * w                # (N, H)
        dW = (2 * scale) * W * d1sq.sum(axis=0)[:, None]   # (H, D)
        return da, dW

    def __repr__(self):
        return f"ContractivePenalty(lam={self.lam}, activation={self.activation!r}, reduction={self.reduction!r})"


class StochasticContractivePenalty(_Penalty):
    r"""Stochastic estimate of λ‖∂h/∂x‖²_F for any (deep) encoder h, from finite differences:

        ‖J(x)‖²_F  ≈  (1/(K σ²)) Σ_k ‖h(x + σ ε_k) − h(x)‖²,      ε_k ~ N(0, I)

    (for a linear h it is unbiased: E‖Jε‖² = tr(JᵀJ) = ‖J‖²_F; see docs/models.md for the
    O(σ²) bias of a curved h and the variance).  With h0 = h(x) (N, …) and
    hk = h(x + σ ε_k) stacked as (K, N, …):

        P        = λ c/(K σ²) · Σ_k Σ_n ‖hk_kn − h0_n‖²          c = 1/N ("mean") or 1 ("sum")
        dP/dhk_k = 2 λ c/(K σ²) · (hk_k − h0)
        dP/dh0   = −Σ_k dP/dhk_k

    The model feeds both gradients into one batched ``encoder.backward``.
    ``forward(h0, hk)`` → P;  ``backward()`` → (dh0, dhk).
    """

    name = "contractive"

    def __init__(self, lam: float = 0.1, sigma: float = 0.1, reduction: str = "mean"):
        super().__init__(reduction)
        self.lam = real(lam, "lam", "StochasticContractivePenalty", low=0.0)
        self.sigma = real(sigma, "sigma", "StochasticContractivePenalty", low=0.0, low_open=True)

    def forward(self, h0, hk):
        float_array(h0, "h0", "StochasticContractivePenalty")
        float_array(hk, "hk", "StochasticContractivePenalty")
        if hk.dtype != h0.dtype:
            raise DTypeError(f"StochasticContractivePenalty: h0 is {h0.dtype} but hk is {hk.dtype}; "
                             "they must match")
        if tuple(hk.shape[1:]) != tuple(h0.shape):
            raise ValueError(f"StochasticContractivePenalty: hk must have shape (K, *h0.shape) = "
                             f"(K, {', '.join(map(str, h0.shape))}), got {tuple(hk.shape)}")
        k = hk.shape[0]
        diff = hk - h0                                 # (K, N, …), broadcast over k
        scale = h0.dtype.type(self.lam * self._per_batch(h0.shape[0]) / (k * self.sigma ** 2))
        self._cache = (diff, scale)
        return (diff * diff).sum() * scale

    def _backward(self):
        diff, scale = self._cache
        dhk = diff * (2 * scale)
        return -dhk.sum(axis=0), dhk

    def __repr__(self):
        return (f"StochasticContractivePenalty(lam={self.lam}, sigma={self.sigma}, "
                f"reduction={self.reduction!r})")
