r"""Keras's conventions in tinyae, to reproduce the Keras tutorials exactly.

Two tutorials tinyae follows are written in Keras (the Keras blog's "Building autoencoders
in Keras": the 784-32-784 AE and the 2-D VAE; and the "Intro to Autoencoders" dense and
convolutional AEs).  Keras's defaults differ from PyTorch's in four places, and each one
shows in the numbers:

* **init**: Glorot-uniform kernels and zero biases — ``init="keras"`` on the layers and
  builders (:mod:`tinyae.nn.init`);
* **BCE**: on sigmoid *probabilities*, clipped to [ε, 1 − ε] with ε = 1e-7
  (:class:`KerasBCELoss`), where tinyae's own BCE takes logits;
* **Adam**: ε = 1e-7 added to √v *before* the bias correction (:class:`KerasAdam`);
* **the VAE-2D**: its own parameterisation (:class:`KerasVAE`, builder ``vae-784-64-2-keras``).

``benchmarks/reproduce.py`` runs each tutorial in Keras itself (Keras 3 on the PyTorch
backend) beside these, from the same weights on the same batches.
"""
from __future__ import annotations

import math

import numpy

from .. import backend
from ..backend import asarray_like, device_noise, get_array_module
from ..losses import Loss
from ..optim import Adam, _fused_adam
from ..nn import Linear, ReLU, Sequential, Sigmoid
from .builders import _rngs
from .vae import VAE

__all__ = ["KerasBCELoss", "KerasAdam", "KerasVAE", "EPSILON"]

EPSILON = 1e-7  # keras.config.epsilon()


class KerasBCELoss(Loss):
    r"""Keras's ``binary_crossentropy`` on probabilities p (after a Sigmoid layer):

        p̃ = clip(p, ε, 1 − ε),   ε = 1e-7 (Keras's ``epsilon()``, in p's dtype)
        L = reduce_i −[ t_i log p̃_i + (1 − t_i) log(1 − p̃_i) ]

    "mean" averages over every element (Keras: mean over the last axis, then over the
    batch — the same number for equal-sized rows), "sum" adds them.

    Backward (the clip passes the gradient only where ε ≤ p ≤ 1 − ε, as ``torch.clip`` does):

        dL/dp = (p̃ − t) / (p̃ (1 − p̃)) · 1[ε ≤ p ≤ 1 − ε] · s,   s = 1/n ("mean") or 1 ("sum")

    So a saturated output (p < 1e-7 or p > 1 − 1e-7) gets no gradient at all, and a pixel
    can cost at most −log 1e-7 ≈ 16.1; tinyae's :class:`~tinyae.losses.BCEWithLogitsLoss` has
    neither limit.  Shapes: p, t, dL/dp all (…).
    """

    def forward(self, pred, target):
        self._check_pair(pred, target)
        xp = get_array_module(pred)
        lo, hi = pred.dtype.type(EPSILON), pred.dtype.type(1.0 - EPSILON)
        p = xp.clip(pred, lo, hi)
        self._cache = (p, target, (pred >= lo) & (pred <= hi))
        return self._reduce(-(target * xp.log(p) + (1 - target) * xp.log(1 - p)))

    def _backward(self):
        p, t, inside = self._cache
        return (p - t) / (p * (1 - p)) * inside * p.dtype.type(self._scale(p.size))


class KerasAdam(Adam):
    r"""Adam as ``keras.optimizers.Adam`` computes it (defaults lr 1e-3, β = (0.9, 0.999), ε = 1e-7):

        m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
        α = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ)
        θ ← θ − α · m / (√v + ε)

    The difference from :class:`~tinyae.optim.Adam` (PyTorch's form, θ ← θ − lr/(1 − β₁ᵗ) ·
    m / (√v/√(1 − β₂ᵗ) + ε)) is where ε sits: Keras adds it to √v before the bias correction
    (the paper's "ε-hat"), i.e. PyTorch's update with ε/√(1 − β₂ᵗ) — 31.6× larger at step 1,
    the same after a few thousand steps.  It matters where v is tiny (dead units).

    On the CPU :meth:`update` always runs itself (``engine`` is "reference": the CPU engines
    run PyTorch's form); on CuPy arrays the fused kernel runs PyTorch's form with ε/√(1 − β₂ᵗ).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=EPSILON, weight_decay=0.0, flat=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, flat=flat,
                         engine="reference")

    def _apply(self, param, grad, m, v):
        xp = backend.get_array_module(param)
        if xp is numpy:
            return self.update(param, grad, m, v)
        t = self.step_count
        b1, b2 = self.betas
        bias2_sqrt = math.sqrt(1 - b2 ** t)
        g = grad + self.weight_decay * param if self.weight_decay else grad
        _fused_adam(xp)(g, b1, b2, 1 - b1, 1 - b2, self.lr / (1 - b1 ** t), bias2_sqrt, self.eps / bias2_sqrt,
                        param, m, v)

    def update(self, param, grad, m, v):
        t = self.step_count
        b1, b2 = self.betas
        bias2_sqrt = math.sqrt(1 - b2 ** t)
        alpha = self.lr * bias2_sqrt / (1 - b1 ** t)
        g = grad
        if self.weight_decay:
            g = g + self.weight_decay * param
        xp = backend.get_array_module(param)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        denom = xp.sqrt(v)
        denom += self.eps
        param -= alpha * (m / denom)


class KerasVAE(VAE):
    r"""The Keras blog's VAE, with its parameterisation written as published, or the consistent one.

    The encoder's second head s(x) is called ``z_log_sigma`` there, and used twice:

        sampler (parameterisation="keras"):   z = μ + e^{s} ⊙ ε,   ε ~ N(0, σ_ε² I), σ_ε = 0.1
        KL term:                              KL = −½ Σ_j (1 + s_j − μ_j² − e^{s_j})

    The KL is the Gaussian KL of N(μ, e^{s}) — it reads s as a log-*variance* — while the
    sampler draws from N(μ, (0.1 e^{s})²), reading s as a log-*std* (and shrinking ε).
    The posterior that is sampled and the one that is penalised are not the same
    distribution: KL pushes e^{s} → 1 (s → 0), so the sampled std is ≈ 0.1, not 1, and the
    decoder sees codes ten times less noisy than the prior it is asked to match (docs/models.md,
    "The Keras VAE-2D").  ``parameterisation="consistent"`` is the same network with
    z = μ + e^{s/2} ε, ε ~ N(0, I) (the standard VAE): the comparison.

    Loss, as Keras computes it (per sample, then the batch mean):
        L = (1/N) Σ_n [ 784 · mean_pixels BCE(x_n, x̂_n) + KL_n ]
          = (1/N) [ Σ_{n,pixels} BCE + Σ_n KL_n ]
    with Keras's clipped BCE on sigmoid outputs (:class:`KerasBCELoss`, "sum"), so
    ``reduction`` is "mean": ``total`` is already the average per-sample loss.

    Backward, with dz = decoder.backward(dL/dx̂) (N, K) (everything × 1/N):
        keras:       ∂z/∂s = ε e^{s}          ds = dz ⊙ ε e^{s} + ½ (e^{s} − 1)
        consistent:  ∂z/∂s = ½ ε e^{s/2}      ds = dz ⊙ ½ ε e^{s/2} + ½ (e^{s} − 1)
        dμ = dz + μ
    ``eps`` passed to ``loss``/``forward`` is the *standard* normal draw; the keras sampler
    scales it by σ_ε itself, so both parameterisations can be fed the same draws.
    """

    def __init__(self, encoder, mean_head, logvar_head, decoder, parameterisation="keras",
                 epsilon_std=0.1, rng=None):
        if parameterisation not in ("keras", "consistent"):
            raise ValueError(f"KerasVAE: parameterisation must be 'keras' (z = μ + e^s·ε, ε ~ N(0, σ_ε²), "
                             f"as published) or 'consistent' (z = μ + e^(s/2)·ε, ε ~ N(0, 1)), "
                             f"got {parameterisation!r}")
        if not (isinstance(epsilon_std, (int, float)) and not isinstance(epsilon_std, bool)
                and math.isfinite(epsilon_std) and epsilon_std > 0):
            raise ValueError(f"KerasVAE: epsilon_std must be a positive number, got {epsilon_std!r}")
        super().__init__(encoder, mean_head, logvar_head, decoder, loss=KerasBCELoss("sum"), rng=rng)
        self.parameterisation = parameterisation
        self.epsilon_std = float(epsilon_std) if parameterisation == "keras" else 1.0
        self._n = None

    @property
    def reduction(self) -> str:
        """"mean": ``loss`` returns the batch mean of the per-sample loss (Keras's ``K.mean``)."""
        return "mean"

    def reparameterize(self, mean, logvar, eps=None):
        """keras: z = μ + e^{s} ⊙ σ_ε ε;  consistent: z = μ + e^{s/2} ⊙ ε  (ε standard normal,
        drawn from ``self.rng`` unless given)."""
        if eps is None:
            eps = device_noise(self.rng, "normal", mean.shape, mean)
        elif tuple(eps.shape) != tuple(mean.shape):
            raise ValueError(f"KerasVAE.reparameterize: eps has shape {tuple(eps.shape)}, mean {tuple(mean.shape)}")
        else:
            eps = asarray_like(eps, mean)
        xp = get_array_module(logvar)
        if self.parameterisation == "keras":
            eps = eps * eps.dtype.type(self.epsilon_std)
            scale = xp.exp(logvar)                            # ∂z/∂s = ε e^{s} = ε · scale
        else:
            scale = xp.exp(logvar * logvar.dtype.type(0.5))   # ∂z/∂s = ½ ε · scale
        self._sample = (eps, scale)
        return mean + scale * eps

    def _backward(self, dz, dmean, dlogvar, need_dx):
        if self._sample is None:
            raise RuntimeError("KerasVAE: backward called before forward")
        eps, scale = self._sample
        half = 1.0 if self.parameterisation == "keras" else 0.5
        dm = dz if dmean is None else dz + dmean
        dl = dz * eps * scale * dz.dtype.type(half)
        if dlogvar is not None:
            dl = dl + dlogvar
        dh = self.mean_head.backward(dm) + self.logvar_head.backward(dl)
        return self.encoder.backward(dh, need_dx=need_dx)

    def loss(self, x, target=None, eps=None):
        """(total, {"recon", "kl"}): batch means of the per-sample BCE sum and KL."""
        total, parts = super().loss(x, target, eps)
        self._n = x.shape[0]
        inv = total.dtype.type(1.0 / self._n)
        return total * inv, {k: v * inv for k, v in parts.items()}

    def backward_loss(self, need_dx=False):
        inv = 1.0 / self._n
        dz = self.decoder.backward(self.recon_loss.backward() * self.recon_loss._cache[0].dtype.type(inv))
        dmean, dlogvar = self.kl.backward()
        s = dmean.dtype.type(inv * self.beta)
        return self._backward(dz, dmean * s, dlogvar * s, need_dx)   # need_dx False: x is data

    def sample(self, n: int):
        """n digits decoded from z ~ N(0, I), the prior both parameterisations claim."""
        return super().sample(n)


def vae_784_64_2_keras(hidden=64, latent=2, parameterisation="keras", epsilon_std=0.1, seed=0):
    """The Keras blog's VAE: 784→64 ReLU, heads 64→2 (z_mean, z_log_sigma) | 2→64 ReLU →784
    sigmoid; Keras's init (Glorot-uniform, zero biases), clipped BCE × 784 + KL, batch mean.
    ``parameterisation``: "keras" (as published) or "consistent" (see :class:`KerasVAE`)."""
    g, noise = _rngs(seed)
    enc = Sequential(Linear(784, hidden, rng=g, init="keras"), ReLU())
    mean, log_sigma = Linear(hidden, latent, rng=g, init="keras"), Linear(hidden, latent, rng=g, init="keras")
    dec = Sequential(Linear(latent, hidden, rng=g, init="keras"), ReLU(),
                     Linear(hidden, 784, rng=g, init="keras"), Sigmoid())
    return KerasVAE(enc, mean, log_sigma, dec, parameterisation=parameterisation, epsilon_std=epsilon_std,
                    rng=noise)
