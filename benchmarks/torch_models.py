"""PyTorch twins of tinyae's tutorial models, for benchmarks/reproduce.py.

``twin(model)`` returns a ``torch.nn.Module`` with the same layers, the same parameter
names and a copy of ``model``'s weights (float32; ``dtype="float64"`` for the tests).  Every twin has

    loss = twin.loss(x)             # autoencoders
    loss = twin.loss(x, eps)        # VAEs: ε (N, K) is passed in, so both frameworks
                                    # draw the same z = μ + exp(½ ℓ) ε

with the loss in the same reduction as the tinyae model ("mean" or "sum").

The layers: Linear, Conv2d, ConvTranspose2d (weight (C_in, C_out, KH, KW) in both, same
stride/padding/output_padding), MaxPool2d, Upsample (nearest), the activations, Flatten/
Reshape, and conv-ae-unpool's MaxUnpoolFrom: its encoder pool's twin keeps the indices of its
last forward (:class:`PoolKeepingIndices`) and the decoder's :class:`UnpoolFrom` unpools with
them, as tinyae's MaxUnpoolFrom reads its MaxPool2d's.

The 784-400-20 VAE has two twins: ``variant="examples"`` is PyTorch's examples/vae/main.py
written as there (fc1, fc21/fc22, fc3, fc4; sigmoid output, then
``F.binary_cross_entropy(..., reduction="sum")``, which clamps log at −100), the script
the published numbers come from; ``variant="logits"`` is the same network with the BCE in
logits form (``binary_cross_entropy_with_logits``), the formula tinyae uses.
"""
from __future__ import annotations

import numpy
import torch
import torch.nn.functional as F

from tinyae import nn as tnn
from tinyae.losses import BCEWithLogitsLoss, MSELoss
from tinyae.models import VAE, AutoEncoder
from tinyae.models.builders import MaxUnpoolFrom
from tinyae.nn.conv import Conv2d, ConvTranspose2d
from tinyae.nn.pooling import MaxPool2d, Upsample

__all__ = ["twin", "torch_layer", "unpool_sources", "PoolKeepingIndices", "UnpoolFrom", "TorchAE",
           "TorchVAE", "ExamplesVAE", "EXAMPLES_NAMES"]


class PoolKeepingIndices(torch.nn.Module):
    """torch.nn.MaxPool2d that returns only y but keeps the indices (and the input size) of
    its last forward, for the :class:`UnpoolFrom` that twins tinyae's ``MaxUnpoolFrom``."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.pool = torch.nn.MaxPool2d(kernel_size, stride, padding, return_indices=True)
        self.indices = self.in_size = None

    def forward(self, x):
        y, self.indices = self.pool(x)
        self.in_size = x.shape
        return y


class UnpoolFrom(torch.nn.Module):
    """torch.nn.MaxUnpool2d fed with a :class:`PoolKeepingIndices`' last indices, in its input size."""

    def __init__(self, keep, kernel_size, stride, padding):
        super().__init__()
        self._keep = [keep]          # a list: a reference to the encoder's pool, not a child
        self.unpool = torch.nn.MaxUnpool2d(kernel_size, stride, padding)

    def forward(self, x):
        keep = self._keep[0]
        return self.unpool(x, keep.indices, output_size=keep.in_size)


def torch_layer(m, pools=None):
    """The torch.nn module matching one tinyae layer (a Sequential recursively).

    ``pools``: a dict shared by the calls for one model's parts, {id(tinyae MaxPool2d): its
    twin}; a MaxPool2d listed there (with None) becomes a :class:`PoolKeepingIndices`, and a
    ``MaxUnpoolFrom`` becomes an :class:`UnpoolFrom` reading that twin's indices — convert the
    encoder before the decoder."""
    if isinstance(m, tnn.Sequential):
        return torch.nn.Sequential(*[torch_layer(child, pools) for child in m])
    if isinstance(m, tnn.Linear):
        return torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    if isinstance(m, Conv2d):
        return torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                               padding=m.padding, bias=m.bias is not None)
    if isinstance(m, ConvTranspose2d):     # weight (C_in, C_out, KH, KW) in both
        return torch.nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                        padding=m.padding, output_padding=m.output_padding,
                                        bias=m.bias is not None)
    if isinstance(m, MaxPool2d):
        if pools is not None and id(m) in pools:
            pools[id(m)] = PoolKeepingIndices(m.kernel_size, m.stride, m.padding)
            return pools[id(m)]
        return torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding)
    if isinstance(m, MaxUnpoolFrom):
        keep = (pools or {}).get(id(m.pool))
        if keep is None:
            raise ValueError("MaxUnpoolFrom: its MaxPool2d has no twin yet; convert the encoder first, "
                             "with the pools found by unpool_sources(decoder)")
        u = m.unpool
        return UnpoolFrom(keep, u.kernel_size, u.stride, u.padding)
    if isinstance(m, Upsample):
        return torch.nn.Upsample(scale_factor=m.scale_factor, mode="nearest")
    if isinstance(m, tnn.LeakyReLU):
        return torch.nn.LeakyReLU(m.negative_slope)
    if isinstance(m, tnn.Reshape):
        return torch.nn.Unflatten(1, m.shape)
    plain = {tnn.ReLU: torch.nn.ReLU, tnn.Tanh: torch.nn.Tanh, tnn.Sigmoid: torch.nn.Sigmoid,
             tnn.Identity: torch.nn.Identity, tnn.Flatten: torch.nn.Flatten}
    if type(m) not in plain:
        raise TypeError(f"no PyTorch twin for the tinyae layer {m!r}")
    return plain[type(m)]()


def unpool_sources(*parts):
    """{id(pool): None} for the MaxPool2d layers whose indices a MaxUnpoolFrom in ``parts`` reads."""
    return {id(m.pool): None for part in parts for m in part.modules() if isinstance(m, MaxUnpoolFrom)}


def _recon_fn(loss):
    """(pred, target) → the reconstruction loss in PyTorch, same formula and reduction."""
    if isinstance(loss, BCEWithLogitsLoss):
        return lambda out, x: F.binary_cross_entropy_with_logits(out, x, reduction=loss.reduction)
    if isinstance(loss, MSELoss):
        return lambda out, x: F.mse_loss(out, x, reduction=loss.reduction)
    raise TypeError(f"no PyTorch twin for the loss {loss!r}")


class TorchAE(torch.nn.Module):
    """encoder → decoder, reconstruction loss against the clean input (no penalty).

    A denoising AE with ("mask", p) or ("dropout", p) corruption takes the 0/1 keep-mask m
    of the batch (N, D) in ``loss(x, m)`` (training mode only, as tinyae's): the input is
    x ⊙ m, or x ⊙ m / (1 − p) — the NYU notebook's ``x * nn.Dropout()(torch.ones(...))``."""

    def __init__(self, ours: AutoEncoder):
        super().__init__()
        if ours.penalty is not None or (ours.corruption is not None
                                        and ours.corruption[0] not in ("mask", "dropout")):
            raise ValueError("TorchAE twins autoencoders without a penalty, with no corruption or "
                             "('mask', p) / ('dropout', p)")
        pools = unpool_sources(ours.decoder)            # conv-ae-unpool: the pools' twins keep indices
        self.encoder = torch_layer(ours.encoder, pools)
        self.decoder = torch_layer(ours.decoder, pools)
        self.recon = _recon_fn(ours.recon_loss)
        self.corruption = ours.corruption

    def loss(self, x, keep=None):
        xin = x
        if self.corruption is not None and self.training:
            if keep is None:
                raise ValueError("a denoising twin needs the batch's keep-mask: loss(x, keep)")
            kind, p = self.corruption
            xin = x * (keep * (1.0 / (1.0 - p))) if kind == "dropout" else x * keep
        return self.recon(self.decoder(self.encoder(xin)), x)


class TorchVAE(torch.nn.Module):
    """encoder → (mean_head, logvar_head) → z = μ + exp(½ℓ) ε → decoder; recon + β·KL."""

    def __init__(self, ours: VAE):
        super().__init__()
        self.encoder, self.decoder = torch_layer(ours.encoder), torch_layer(ours.decoder)
        self.mean_head, self.logvar_head = torch_layer(ours.mean_head), torch_layer(ours.logvar_head)
        self.recon, self.beta = _recon_fn(ours.recon_loss), ours.beta
        self.sum = ours.kl.reduction == "sum"

    def loss(self, x, eps):
        h = self.encoder(x)
        mu, logvar = self.mean_head(h), self.logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        if not self.sum:
            kld = kld / x.shape[0]
        return self.recon(self.decoder(z), x) + self.beta * kld


class ExamplesVAE(torch.nn.Module):
    """PyTorch examples/vae/main.py's VAE and loss_function, as written there (ε passed in)."""

    def __init__(self, hidden=400, latent=20):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, hidden)
        self.fc21 = torch.nn.Linear(hidden, latent)
        self.fc22 = torch.nn.Linear(hidden, latent)
        self.fc3 = torch.nn.Linear(latent, hidden)
        self.fc4 = torch.nn.Linear(hidden, 784)

    def loss(self, x, eps):
        h1 = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + eps * torch.exp(0.5 * logvar)
        recon = torch.sigmoid(self.fc4(F.relu(self.fc3(z))))
        bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
        return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


# tinyae's vae-784-400-20 parameter prefixes → the examples' names
EXAMPLES_NAMES = {"encoder.0": "fc1", "mean_head": "fc21", "logvar_head": "fc22",
                  "decoder.0": "fc3", "decoder.2": "fc4"}


def copy_weights(twin_model, ours, rename=None, dtype="float32"):
    """Load ``ours``'s parameters into ``twin_model`` (``dtype``: "float32", the default, or
    "float64"), names mapped by ``rename``."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"copy_weights: dtype must be 'float32' or 'float64', got {dtype!r}")
    state = {}
    for name, arr in ours.state_dict().items():
        prefix, leaf = name.rsplit(".", 1)
        key = f"{rename[prefix]}.{leaf}" if rename else name
        state[key] = torch.from_numpy(numpy.array(arr, dtype=dtype))
    twin_model = twin_model.double() if dtype == "float64" else twin_model.float()
    twin_model.load_state_dict(state, strict=True)
    return twin_model


def twin(ours, variant="logits", dtype="float32"):
    """The PyTorch twin of the tinyae model ``ours``, with a copy of its weights in ``dtype``
    ("float32", as the benchmarks train, or "float64", for the tests).

    variant: only for the 784-400-20 VAE — "examples" (PyTorch's examples/vae code) or
    "logits" (the generic twin: same network, BCE in logits form).
    """
    if isinstance(ours, VAE):
        name = ours.builder[0] if ours.builder else None
        if variant == "examples":
            if name != "vae-784-400-20" or ours.beta != 1.0:
                raise ValueError("variant='examples' twins the vae-784-400-20 model with beta=1 only")
            kw = ours.builder[1]
            return copy_weights(ExamplesVAE(kw.get("hidden", 400), kw.get("latent", 20)), ours,
                                EXAMPLES_NAMES, dtype)
        return copy_weights(TorchVAE(ours), ours, dtype=dtype)
    if isinstance(ours, AutoEncoder):
        return copy_weights(TorchAE(ours), ours, dtype=dtype)
    raise TypeError(f"no PyTorch twin for {type(ours).__name__}")
