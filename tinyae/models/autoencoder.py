"""The autoencoder models and the training interface they share.

Every model is a :class:`~tinyae.nn.Module` (``forward``/``backward``, parameters, state)
and adds the two methods :func:`tinyae.train.fit` needs::

    total, parts = model.loss(x)       # forward + objective; 0-d arrays on x's device
    model.backward_loss()              # d total / dθ added into every param.grad (no dL/dx: x is data)

``parts`` names the pieces of the objective ({"recon": …, "kl": …} for a VAE,
{"recon": …, "sparsity": …} for a sparse AE, …) so that logs can show them.
``model.reduction`` says whether ``total`` is a batch sum ("sum": report it divided
by N, i.e. per sample) or a batch average ("mean").

Noise (denoising corruption, the VAE's ε, the contractive estimator's ε) is drawn on
the host from the model's seeded ``rng`` and copied to the device, so a seed gives the
same noise on NumPy and CuPy; every ``loss`` takes the noise as an argument too, so a
gradient check can hold it fixed.
"""
from __future__ import annotations

from .._checks import DTypeError, float_array, pixels_error, positive_int, real
from ..backend import asarray_like, device_noise, get_array_module
from ..losses import (BCEWithLogitsLoss, ContractivePenalty, MSELoss,
                      StochasticContractivePenalty)
from ..nn import Identity, LeakyReLU, Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from ..nn.init import as_generator

__all__ = ["Model", "AutoEncoder", "ContractiveAutoEncoder"]


class Model(Module):
    """Base class of the trainable models: ``loss``/``backward_loss`` and the builder record.

    ``builder`` is set by :func:`tinyae.models.build` to ``(name, kwargs)`` so that a
    checkpoint can rebuild the same architecture; it is None for hand-assembled models.
    """

    builder = None

    def __init__(self):
        super().__init__()
        self.rng = None     # the model's noise (corruption, ε): a numpy Generator, or None

    def generator(self):
        return self.rng

    @property
    def reduction(self) -> str:
        """Either "sum" (``loss`` returns a batch sum: report it per sample) or "mean" (a batch average)."""
        return self.recon_loss.reduction

    def loss(self, x, target=None):
        raise NotImplementedError

    def backward_loss(self, need_dx=False):
        """Add d total / dθ into every param.grad.  The input is data, so by default no
        dL/dx is computed (returns None); ``need_dx=True`` returns it."""
        raise NotImplementedError

    def _check_target(self, x, target):
        """Check the batch (a non-empty float array) and return the target (x itself by default)."""
        dtype = getattr(x, "dtype", None)
        if target is None and dtype is not None and dtype.kind == "f" and x.ndim and x.shape[0]:
            return x  # the common case in three comparisons; the loop below names what is wrong
        where = f"{type(self).__name__}.loss"
        for arr, label in ((x, "x"), (target, "target")):
            if arr is None:
                continue
            dtype = getattr(arr, "dtype", None)
            if dtype is None or not hasattr(arr, "shape"):
                raise DTypeError(f"{where}: {label} must be an array (a batch of samples), got "
                                 f"{type(arr).__name__}")
            if dtype.kind != "f":
                raise pixels_error(where, label, dtype, f"{label}.astype('float32')")
            float_array(arr, label, where)      # a non-empty batch
        return x if target is None else target


def _check_parts(where, **parts):
    """Raise a TypeError unless each part is a Module (encoder, decoder, heads)."""
    for label, m in parts.items():
        if not isinstance(m, Module):
            raise TypeError(f"{where}: {label} must be a Module (e.g. Sequential(Linear(...), ...)), got "
                            f"{type(m).__name__}")


def _check_loss_object(where, loss, label="loss"):
    """A loss object (MSELoss(), BCEWithLogitsLoss(), …), not a name: builders take names."""
    if not (callable(loss) and hasattr(loss, "backward") and getattr(loss, "reduction", None) in ("mean", "sum")):
        raise TypeError(f"{where}: {label} must be a loss object such as MSELoss() or BCEWithLogitsLoss(), "
                        f"got {loss!r} (names such as 'mse' are for tinyae.models.build)")


def _parse_corruption(corruption):
    """None, ("gaussian", std), ("mask", p) or ("dropout", p) → a normalised tuple (lists from JSON allowed)."""
    if corruption is None:
        return None
    expected = "None, ('gaussian', std >= 0), ('mask', p in [0, 1)) or ('dropout', p in [0, 1))"
    if isinstance(corruption, (str, bytes)) or not isinstance(corruption, (tuple, list)):
        raise TypeError(f"corruption must be {expected}, got {corruption!r}")
    kind, *args = corruption
    if kind not in ("gaussian", "mask", "dropout") or len(args) != 1:
        raise ValueError(f"corruption must be {expected}, got {corruption!r}")
    if kind == "gaussian":
        return ("gaussian", real(args[0], "std", "corruption ('gaussian', std)", low=0.0))
    return (kind, real(args[0], "p (the masked fraction)", f"corruption ({kind!r}, p)", 0.0, 1.0,
                       high_open=True))


class AutoEncoder(Model):
    r"""x → encoder → h → decoder → x̂, trained to reconstruct (a possibly corrupted) x.

    encoder, decoder: any Modules (e.g. ``Sequential`` of dense or convolutional layers).
    loss:       reconstruction loss object (default ``MSELoss()``, mean over elements).
                With ``BCEWithLogitsLoss`` the decoder's last layer gives *logits* z and
                ``forward``/``decode`` return σ(z); the loss uses z directly (exact for grey
                pixels, never log 0).
    corruption: None, ("gaussian", σ) — x̃ = x + σ ε — or ("mask", p) — x̃ = x ⊙ m with
                m ~ Bernoulli(1 − p) (masking noise, no rescaling) — the denoising AE —
                or ("dropout", p) — x̃ = x ⊙ m / (1 − p), the kept pixels scaled up as
                ``nn.Dropout(p)(torch.ones(...))`` masks them (the NYU notebook: p = 0.5,
                masks in {0, 2}).
                Applied in training mode only; the loss always compares with the clean x.
    penalty:    an optional penalty on the code h with ``penalty(h)`` → value and
                ``penalty.backward()`` → dP/dh (the sparse AE:
                :class:`~tinyae.losses.L1ActivityPenalty`, :class:`~tinyae.losses.KLSparsityPenalty`).
    rng:        seed or Generator for the corruption noise.

    Objective (one batch):  L = ℓ(decoder(encoder(x̃)), x) + P(encoder(x̃))
    Backward:  dh = decoder.backward(dℓ/dx̂) + dP/dh;  encoder.backward(dh).
    """

    def __init__(self, encoder: Module, decoder: Module, loss=None, corruption=None, penalty=None, rng=None):
        super().__init__()
        where = type(self).__name__
        _check_parts(where, encoder=encoder, decoder=decoder)
        if loss is not None:
            _check_loss_object(where, loss)
        if penalty is not None and not (callable(penalty) and hasattr(penalty, "backward")):
            raise TypeError(f"{where}: penalty must be None or a penalty object such as "
                            f"L1ActivityPenalty(1e-3) or KLSparsityPenalty(0.05, 3.0), got {penalty!r} "
                            "(specs such as ['l1', 1e-3] are for tinyae.models.build)")
        self.encoder, self.decoder = encoder, decoder
        self.recon_loss = MSELoss() if loss is None else loss
        self.logits = isinstance(self.recon_loss, BCEWithLogitsLoss)
        self.output = Sigmoid() if self.logits else Identity()
        self.corruption = _parse_corruption(corruption)
        self.penalty = penalty
        self.rng = as_generator(rng)

    # -- plain Module interface ------------------------------------------------------
    def encode(self, x):
        """h = encoder(x)  (no corruption)."""
        return self.encoder(x)

    def decode(self, h):
        """x̂ = decoder(h), passed through σ if the decoder produces logits."""
        return self.output(self.decoder(h))

    def forward(self, x):
        """x̂ = decode(encode(x)): the reconstruction of the (uncorrupted) input."""
        return self.decode(self.encode(x))

    def backward(self, dx_hat, need_dx=True):
        """dL/dx for a given dL/dx̂ (through output σ, decoder, encoder); None with ``need_dx=False``."""
        return self.encoder.backward(self.decoder.backward(self.output.backward(dx_hat)), need_dx=need_dx)

    # -- denoising --------------------------------------------------------------------
    def corrupt(self, x, noise=None):
        r"""x̃: x + σ·ε ("gaussian"; ``noise`` = ε), x ⊙ m ("mask"; ``noise`` = m ∈ {0, 1}) or
        x ⊙ m / (1 − p) ("dropout"; ``noise`` = m ∈ {0, 1}, the same 0/1 mask, scaled here).

        ``noise`` fixes the randomness (gradient checks); otherwise it is drawn from ``self.rng``.
        Returns x unchanged without corruption or in eval mode.
        """
        if self.corruption is None or not self.training:
            return x
        kind, amount = self.corruption
        if noise is None:
            noise = device_noise(self.rng, "normal" if kind == "gaussian" else "keep", x.shape, x, amount)
        else:
            if tuple(noise.shape) != tuple(x.shape):
                raise ValueError(f"corruption noise has shape {tuple(noise.shape)}, input {tuple(x.shape)}")
            noise = asarray_like(noise, x)
        if kind == "gaussian":
            return x + noise * x.dtype.type(amount)
        if kind == "dropout":
            return x * (noise * x.dtype.type(1.0 / (1.0 - amount)))
        return x * noise

    # -- training interface -----------------------------------------------------------
    def loss(self, x, target=None, noise=None):
        """(total, parts) for a batch; ``noise`` fixes the corruption (see :meth:`corrupt`)."""
        target = self._check_target(x, target)
        h = self.encoder(self.corrupt(x, noise))
        recon = self.recon_loss(self.decoder(h), target)
        parts = {"recon": recon}
        total = recon
        if self.penalty is not None:
            pen = self.penalty(h)
            parts[self.penalty.name] = pen
            total = total + pen
        return total, parts

    def backward_loss(self, need_dx=False):
        """Backpropagate the last ``loss`` total into every param.grad; returns dL/dx̃ (the encoder
        input's gradient) with ``need_dx=True``, else None (x is data)."""
        dh = self.decoder.backward(self.recon_loss.backward())
        if self.penalty is not None:
            dh = dh + self.penalty.backward()
        return self.encoder.backward(dh, need_dx=need_dx)


_ACTIVATIONS = (Sigmoid, Tanh, ReLU, LeakyReLU, Identity)   # the exact penalty's: each gives s' and s''.


class ContractiveAutoEncoder(AutoEncoder):
    r"""Contractive autoencoder: reconstruction + λ‖∂h/∂x‖²_F (Rifai et al., 2011).

    mode="exact": the encoder must be ``Sequential(Linear(D, H), act)`` (or a bare Linear)
        with act one of Sigmoid, Tanh, ReLU, LeakyReLU, Identity; the penalty is
        :class:`~tinyae.losses.ContractivePenalty`, computed from the pre-activation a and W:

            forward:  a = lin(x̃);  h = act(a);  x̂ = decoder(h)
            backward: dh = decoder.backward(dℓ/dx̂)
                      da = act.backward(dh) + dP/da        (the s'' term)
                      lin.backward(da);  W.grad += dP/dW|direct

    mode="stochastic": any encoder; with K = ``n_samples`` draws ε_k ~ N(0, I) the encoder
        runs once on the stacked batch [x̃; x̃ + σε_1; …; x̃ + σε_K]  ((K+1)N, …) and
        :class:`~tinyae.losses.StochasticContractivePenalty` compares h(x̃ + σε_k) with h(x̃):

            backward: dH = [decoder.backward(dℓ/dx̂) + dP/dh0;  dP/dh_1; …; dP/dh_K]
                      encoder.backward(dH)                 (one batched backward)

        Encoders whose output for one sample depends on the rest of the batch (batch
        statistics) would break this; random layers (Dropout) would draw different masks
        for the stacked copies — don't put them in the encoder.
    ``loss(x, eps=...)`` fixes ε (shape (K, *x.shape)); ``penalty_reduction`` defaults to the
    reconstruction loss's reduction.
    """

    def __init__(self, encoder, decoder, lam=0.1, mode="exact", sigma=0.1, n_samples=1, loss=None,
                 corruption=None, rng=None):
        super().__init__(encoder, decoder, loss=loss, corruption=corruption, rng=rng)
        if mode not in ("exact", "stochastic"):
            raise ValueError(f"ContractiveAutoEncoder: mode must be 'exact' or 'stochastic', got {mode!r}")
        self.mode = mode
        self.n_samples = positive_int(n_samples, "n_samples", "ContractiveAutoEncoder")
        red = self.recon_loss.reduction
        if mode == "exact":
            lin, act_mod = self._one_layer(encoder)
            # plain attributes, not registered again as children (they live in the encoder)
            object.__setattr__(self, "_lin", lin)
            object.__setattr__(self, "_act", act_mod)
            # the penalty asks the activation layer itself for s' and s'' (its derivatives(a))
            self.contractive = ContractivePenalty(lam, self._act, reduction=red)
        else:
            self.contractive = StochasticContractivePenalty(lam, sigma, reduction=red)

    @staticmethod
    def _one_layer(encoder):
        if isinstance(encoder, Linear):
            return encoder, Identity()
        mods = list(encoder) if isinstance(encoder, Sequential) else []
        if len(mods) == 1 and isinstance(mods[0], Linear):
            return mods[0], Identity()
        if len(mods) == 2 and isinstance(mods[0], Linear) and type(mods[1]) in _ACTIVATIONS:
            return mods[0], mods[1]
        raise ValueError("ContractiveAutoEncoder(mode='exact') needs a one-layer encoder "
                         "Sequential(Linear(D, H), act) with act in Sigmoid/Tanh/ReLU/LeakyReLU/Identity, "
                         f"got {encoder!r}; use mode='stochastic' for deeper encoders")

    def loss(self, x, target=None, noise=None, eps=None):
        """(total, {"recon", "contractive"}); ``noise`` fixes the corruption, ``eps`` the
        stochastic estimator's ε (shape (n_samples, *x.shape))."""
        target = self._check_target(x, target)
        xin = self.corrupt(x, noise)
        if self.mode == "exact":
            a = self._lin(xin)
            h = self._act(a)
            pen = self.contractive(a, self._lin.weight.data)
        else:
            xp = get_array_module(x)
            k, n = self.n_samples, x.shape[0]
            shape = (k,) + tuple(x.shape)
            if eps is None:
                eps = device_noise(self.rng, "normal", shape, x)
            elif tuple(eps.shape) != shape:
                raise ValueError(f"eps must have shape {shape} (n_samples, *x.shape), got {tuple(eps.shape)}")
            else:
                eps = asarray_like(eps, x)
            stacked = xp.concatenate([xin[None], xin[None] + eps * x.dtype.type(self.contractive.sigma)])
            hs = self.encoder(stacked.reshape((-1,) + tuple(x.shape[1:])))        # ((K+1)N, …)
            h, hk = hs[:n], hs[n:].reshape((k, n) + tuple(hs.shape[1:]))
            pen = self.contractive(h, hk)
        recon = self.recon_loss(self.decoder(h), target)
        return recon + pen, {"recon": recon, "contractive": pen}

    def backward_loss(self, need_dx=False):
        dh = self.decoder.backward(self.recon_loss.backward())
        if self.mode == "exact":
            da_pen, dw_pen = self.contractive.backward()
            dx = self._lin.backward(self._act.backward(dh) + da_pen, need_dx=need_dx)
            self._lin.weight.grad += dw_pen
            return dx
        xp = get_array_module(dh)
        dh0, dhk = self.contractive.backward()
        dhs = xp.concatenate([(dh + dh0)[None], dhk]).reshape((-1,) + tuple(dh.shape[1:]))
        dxs = self.encoder.backward(dhs, need_dx=need_dx)                     # ((K+1)N, …)
        if dxs is None:
            return None
        n = dh.shape[0]
        return dxs[:n] + dxs[n:].reshape((self.n_samples, n) + tuple(dxs.shape[1:])).sum(axis=0)
