"""The variational autoencoder (Kingma & Welling, 2014) with the reparameterisation trick."""
from __future__ import annotations

from .._checks import positive_int, real
from ..backend import asarray_like, device_noise, get_array_module
from ..losses import BCEWithLogitsLoss, GaussianKL, MSELoss
from ..nn import Identity, Module, Sigmoid
from ..nn.init import as_generator
from .autoencoder import Model, _check_loss_object, _check_parts

__all__ = ["VAE"]


class VAE(Model):
    r"""Variational autoencoder with a Gaussian posterior q(z|x) = N(μ(x), diag e^{ℓ(x)}).

    Modules:  h = encoder(x) (N, F);  μ = mean_head(h), ℓ = logvar_head(h) (N, K);
              x̂ = decoder(z) (N, …).  The encoder learns the log-variance ℓ = log σ².

    Reparameterisation (one sample per input, ε injectable):
        σ = exp(½ ℓ),   z = μ + σ ⊙ ε,   ε ~ N(0, I)   (N, K)
    Objective (β-VAE; β = 1 is the ELBO's negative):
        L = ℓ_rec(decoder(z), x) + β · KL(N(μ, σ²) ‖ N(0, I))
    with KL = −½ Σ (1 + ℓ − μ² − e^ℓ) (:class:`~tinyae.losses.GaussianKL`), which uses the
    *same* parameterisation σ² = e^ℓ as the sampler.

    Backward (``backward_loss``), with dz = decoder.backward(dℓ_rec/dx̂) (N, K):
        ∂z/∂μ = 1,   ∂z/∂ℓ = ε ⊙ ½ e^{½ℓ} = ½ ε σ
        dμ = dz + β ∂KL/∂μ         = dz + β μ              (× 1/N for "mean")
        dℓ = dz ⊙ ½ ε σ + β ∂KL/∂ℓ = dz ⊙ ½ ε σ + β ½ (e^ℓ − 1)
        dh = mean_head.backward(dμ) + logvar_head.backward(dℓ);   encoder.backward(dh)

    loss: reconstruction loss (default ``MSELoss("sum")``); the KL uses the same reduction,
    so with "sum" (the usual VAE convention) the total is a batch sum — report it per sample.
    With ``BCEWithLogitsLoss`` the decoder gives logits and ``decode``/``forward`` return σ of them.
    """

    def __init__(self, encoder: Module, mean_head: Module, logvar_head: Module, decoder: Module,
                 loss=None, beta: float = 1.0, rng=None):
        super().__init__()
        _check_parts("VAE", encoder=encoder, mean_head=mean_head, logvar_head=logvar_head, decoder=decoder)
        if loss is not None:
            _check_loss_object("VAE", loss)
        self.encoder, self.mean_head, self.logvar_head, self.decoder = encoder, mean_head, logvar_head, decoder
        self.recon_loss = MSELoss("sum") if loss is None else loss
        self.kl = GaussianKL(reduction=self.recon_loss.reduction)
        self.logits = isinstance(self.recon_loss, BCEWithLogitsLoss)
        self.output = Sigmoid() if self.logits else Identity()
        self.beta = real(beta, "beta (the KL weight)", "VAE", low=0.0)
        self.rng = as_generator(rng)
        self._sample = None  # (eps, std) of the last reparameterize

    # -- pieces --------------------------------------------------------------------
    def reparameterize(self, mean, logvar, eps=None):
        """z = μ + exp(½ ℓ) ⊙ ε; ε drawn from ``self.rng`` unless given (shape of μ)."""
        if eps is None:
            eps = device_noise(self.rng, "normal", mean.shape, mean)
        elif tuple(eps.shape) != tuple(mean.shape):
            raise ValueError(f"VAE.reparameterize: eps has shape {tuple(eps.shape)}, mean {tuple(mean.shape)}")
        else:
            eps = asarray_like(eps, mean)
        std = get_array_module(logvar).exp(logvar * logvar.dtype.type(0.5))
        self._sample = (eps, std)
        return mean + std * eps

    def encode(self, x, mode: str = "parameters", eps=None):
        """mode "parameters" → (μ, ℓ);  "sampled" → z = μ + σ ε;  "deterministic" → μ."""
        h = self.encoder(x)
        mean, logvar = self.mean_head(h), self.logvar_head(h)
        if mode == "parameters":
            return mean, logvar
        if mode == "sampled":
            return self.reparameterize(mean, logvar, eps)
        if mode == "deterministic":
            return mean
        raise ValueError(f"VAE.encode: mode must be 'parameters', 'sampled' or 'deterministic', got {mode!r}")

    def decode(self, z):
        """x̂ = decoder(z) (σ of it when the decoder gives logits)."""
        return self.output(self.decoder(z))

    def reconstruct(self, x, mode: str = "deterministic"):
        """decode(encode(x, mode)) with mode "deterministic" (z = μ) or "sampled"."""
        return self.decode(self.encode(x, mode))

    def sample(self, n: int):
        """n outputs decoded from z ~ N(0, I) (ε drawn from ``self.rng``); needs a Linear mean_head."""
        n = positive_int(n, "n (the number of samples)", "VAE.sample")
        k = getattr(self.mean_head, "out_features", None)
        if k is None:
            raise ValueError("VAE.sample: cannot infer the latent size (mean_head is not a Linear)")
        like = self.parameters()[0].data
        return self.decode(device_noise(self.rng, "normal", (n, k), like))

    # -- Module interface ------------------------------------------------------------
    def forward(self, x, eps=None):
        """(x̂, μ, ℓ) with z = μ + σ ε sampled (``eps`` fixes ε)."""
        mean, logvar = self.encode(x)
        z = self.reparameterize(mean, logvar, eps)
        return self.decode(z), mean, logvar

    def backward(self, dx_hat, dmean=None, dlogvar=None, need_dx=True):
        """dL/dx given dL/dx̂ and (optionally) direct gradients dL/dμ, dL/dℓ (None with
        ``need_dx=False``)."""
        return self._backward(self.decoder.backward(self.output.backward(dx_hat)), dmean, dlogvar, need_dx)

    def _backward(self, dz, dmean, dlogvar, need_dx):
        if self._sample is None:
            raise RuntimeError("VAE: backward called before forward")
        eps, std = self._sample
        for g, label in ((dmean, "dmean"), (dlogvar, "dlogvar")):
            if g is not None and (getattr(g, "shape", None) != std.shape or getattr(g, "dtype", None) != std.dtype):
                raise ValueError(f"VAE.backward: {label} must have the shape {tuple(std.shape)} and dtype "
                                 f"{std.dtype} of the latent code, got {getattr(g, 'shape', type(g).__name__)} "
                                 f"and {getattr(g, 'dtype', None)}")
        dm = dz if dmean is None else dz + dmean
        dl = dz * eps * std * dz.dtype.type(0.5)
        if dlogvar is not None:
            dl = dl + dlogvar
        dh = self.mean_head.backward(dm) + self.logvar_head.backward(dl)
        return self.encoder.backward(dh, need_dx=need_dx)

    # -- training interface -----------------------------------------------------------
    def loss(self, x, target=None, eps=None):
        """(total, {"recon", "kl"}) with total = recon + β kl; ``eps`` fixes ε."""
        target = self._check_target(x, target)
        mean, logvar = self.encode(x)
        z = self.reparameterize(mean, logvar, eps)
        recon = self.recon_loss(self.decoder(z), target)
        kl = self.kl(mean, logvar)
        return recon + kl * kl.dtype.type(self.beta), {"recon": recon, "kl": kl}

    def backward_loss(self, need_dx=False):
        dz = self.decoder.backward(self.recon_loss.backward())
        dmean, dlogvar = self.kl.backward()
        b = dmean.dtype.type(self.beta)
        return self._backward(dz, dmean * b, dlogvar * b, need_dx)   # need_dx False: x is data
