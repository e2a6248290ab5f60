"""Exercise 5: the VAE's latent layer: the KL term and the reparameterisation.

Read first: docs/models.md, section "Variational autoencoder", and train_step in
examples/vae_mnist.py (its backward chain is what you write here).

The encoder's two heads give μ and ℓ = log σ², both (N, K).  The sample and the KL are

    σ = exp(½ ℓ),   z = μ + σ ⊙ ε,   ε ~ N(0, I) (drawn once, then a constant)     (N, K)
    KL = −½ Σ_{n,j} (1 + ℓ − μ² − e^ℓ)                  (summed over the batch: a scalar)

Part 1, ``GaussianKL.backward()``: return (∂KL/∂μ, ∂KL/∂ℓ), both (N, K).

Part 2, ``latent_backward``: the decoder's backward has given dz = ∂recon/∂z (N, K).  The
loss is L = recon + β KL.  Return (dμ, dℓ) = (∂L/∂μ, ∂L/∂ℓ), both (N, K): the path through
z (∂z/∂μ = 1, ∂z/∂ℓ = ?) plus β times the KL's gradient.  Differentiate σ = exp(½ℓ) with
care.  Keep the dtype: float32 in, float32 out (``x.dtype.type(0.5)`` is a float32 ½).

Check:  python -m tinyae.exercises check DIR vae
"""
import numpy as np


def reparameterize(mu, logvar, eps):
    """(z, σ): z = μ + σ ⊙ ε with σ = exp(½ ℓ)."""
    std = np.exp(logvar * logvar.dtype.type(0.5))
    return mu + std * eps, std


class GaussianKL:
    """KL(N(μ, diag e^ℓ) ‖ N(0, I)), summed over the batch and the latent dimensions."""

    def __call__(self, mu, logvar):
        self.mu, self.logvar = mu, logvar
        half = mu.dtype.type(0.5)
        return -half * (1 + logvar - mu * mu - np.exp(logvar)).sum()

    def backward(self):
        # your code: (dμ, dℓ) of the KL
        raise NotImplementedError


def latent_backward(dz, mu, logvar, eps, beta):
    # your code: (dμ, dℓ) of recon + β KL, given dz = ∂recon/∂z
    raise NotImplementedError
