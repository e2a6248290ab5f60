"""The "raw kernels" twin of a tinyae model: the same arithmetic as straight NumPy/CuPy calls
on bare arrays, without Module objects (dense layers, activations, losses and the VAE's
sampling inline; convolution, pooling and upsampling by calling a private copy of the layer,
whose Module cost is negligible beside their array work).

benchmarks/train_speed.py times it beside tinyae: tinyae/raw − 1 is the cost of the Module
layer.  tests/test_benchmarks_smoke.py checks that it takes the same training steps as the
model it was read from.

A layer becomes a tuple ("kind", Parameters / constants...); :func:`raw_forward` and
:func:`raw_backward` are one if-chain over the tuples, each branch the same array calls the
tinyae layer makes.  Parameters are copies, updated by tinyae.optim.Adam (not a Module: the
optimizer is the same code in both), so the twins never share memory.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy

from tinyae import backend, nn, optim
from tinyae.nn.activation import sigmoid as activation_sigmoid

__all__ = ["Parts", "model_parts", "compile_raw", "raw_forward", "raw_backward", "raw_step"]


@dataclass
class Parts:
    """What the raw and PyTorch twins need to know about a tinyae model: its sub-modules and
    its objective.  An AE is decoder(encoder(x)); a VAE has an encoder trunk, two heads
    (mean, log-variance) and samples z = μ + exp(½ℓ)·ε before the decoder.
    recon: "mse", "bce_logits" (the decoder gives logits) or "bce" (probabilities)."""

    encoder: object
    decoder: object
    recon: str
    reduction: str
    mean: object = None
    logvar: object = None
    beta: float = 1.0
    rng: object = None      # a copy of the model's noise Generator (the VAE's ε)

    @property
    def is_vae(self):
        return self.mean is not None

    def modules(self):
        names = ("encoder", "mean", "logvar", "decoder") if self.is_vae else ("encoder", "decoder")
        return {k: getattr(self, k) for k in names}


def model_parts(model) -> Parts:
    """Read a tinyae.models AutoEncoder / VAE into :class:`Parts` (no corruption, no penalty)."""
    if getattr(model, "corruption", None) is not None or getattr(model, "penalty", None) is not None:
        raise NotImplementedError("the benchmark times plain AEs/VAEs (no corruption or penalty)")
    loss = model.recon_loss
    recon = {"MSELoss": "mse", "BCEWithLogitsLoss": "bce_logits", "BCELoss": "bce"}[type(loss).__name__]
    if hasattr(model, "mean_head"):
        return Parts(model.encoder, model.decoder, recon, loss.reduction, model.mean_head, model.logvar_head,
                     model.beta, copy.deepcopy(model.rng))
    return Parts(model.encoder, model.decoder, recon, loss.reduction)


def compile_raw(module, slots):
    """Flatten a tinyae Module tree into raw op tuples; append the (copied) Parameters to ``slots``.
    The ops hold Parameter objects and read ``.data`` / ``.grad`` at every use, as the layers do,
    so an optimizer may rebind them."""
    name = type(module).__name__

    def param(p):
        own = nn.Parameter(p.data.copy())
        slots.append(own)
        return own

    if isinstance(module, nn.Sequential):
        return [op for child in module for op in compile_raw(child, slots)]
    if name == "Linear":
        return [("linear", param(module.weight), param(module.bias))]
    if name == "ReLU":
        return [("relu",)]
    if name == "LeakyReLU":
        return [("lrelu", module.negative_slope)]
    if name == "Tanh":
        return [("tanh",)]
    if name == "Sigmoid":
        return [("sigmoid",)]
    if name == "Identity":
        return []
    if name in ("Flatten", "Reshape"):
        return [("reshape", getattr(module, "shape", None))]
    if name in ("Conv2d", "MaxPool2d", "Upsample"):
        # The spatial layers: a private copy of the layer itself (with its own Parameters).
        # Their kernels are being tuned and their signatures change; a mirror here would
        # drift.  The Module cost of 8 such calls (a few µs) is nothing beside their array
        # work (~100 ms per step in the conv AE), so the overhead figure is unaffected.
        twin = copy.deepcopy(module)
        slots.extend(twin.parameters())
        return [("layer", twin)]
    raise NotImplementedError(f"raw kernels: no translation for {name}")


def raw_forward(ops, x, tape):
    """Run the ops on x, pushing what backward needs onto ``tape``.

    The branches mirror tinyae/nn/linear.py and activation.py (and raw_step mirrors the
    losses and models): when those kernels change, change these too.  The agreement test
    (tests/test_benchmarks_smoke.py) catches a numerical mismatch, not a speed one."""
    xp = backend.get_array_module(x)
    for op in ops:
        kind = op[0]
        if kind == "linear":
            tape.append(x)
            x = x @ op[1].data.T
            x += op[2].data
        elif kind == "relu":
            mask = x > 0
            tape.append(mask)
            x = x * mask
        elif kind == "lrelu":
            mask = x > 0
            tape.append(mask)
            y = x * x.dtype.type(op[1])
            x = xp.maximum(x, y, out=y)        # 0 <= slope <= 1 in these models
        elif kind == "tanh":
            x = xp.tanh(x)
            tape.append(x)
        elif kind == "sigmoid":
            x = activation_sigmoid(x)          # the function Sigmoid and BCEWithLogitsLoss call
            tape.append(x)
        elif kind == "reshape":
            tape.append(x.shape)
            x = x.reshape(x.shape[0], -1) if op[1] is None else x.reshape((x.shape[0],) + op[1])
        elif kind == "layer":
            x = op[1].forward(x)
        else:
            raise NotImplementedError(kind)
    return x


def raw_backward(ops, dy, tape, input_grad=True):
    """The reverse of raw_forward: returns dL/dx, accumulates into the grads.  With
    ``input_grad`` False (the encoder: its input is data) it stops after the first layer with
    parameters and returns None, as ``Sequential.backward(dy, need_dx=False)`` does."""
    first = next((i for i, op in enumerate(ops) if op[0] in ("linear", "layer")), None)
    for i in reversed(range(len(ops))):
        op = ops[i]
        kind = op[0]
        if kind == "linear":
            _, w, b = op
            x = tape.pop()
            w.grad += dy.T @ x
            b.grad += dy.sum(axis=0)
            if i == first and not input_grad:
                return None
            dy = dy @ w.data
        elif kind == "relu":
            dy = dy * tape.pop()
        elif kind == "lrelu":
            slope = tape.pop() * dy.dtype.type(1 - op[1])
            slope += dy.dtype.type(op[1])
            slope *= dy
            dy = slope
        elif kind == "tanh":
            y = tape.pop()
            dy = dy * (1 - y * y)
        elif kind == "sigmoid":
            y = tape.pop()
            dy = dy * y * (1 - y)
        elif kind == "reshape":
            dy = dy.reshape(tape.pop())
        elif kind == "layer":
            dy = op[1].backward(dy, need_dx=input_grad or i != first)
            if dy is None:
                return None
    return dy


def raw_step(parts: Parts, seed: int):
    """One training step as straight array calls on copies of the model's parameters: the
    arithmetic of AutoEncoder/VAE.loss + backward_loss, the losses and tinyae.optim.Adam,
    without Module objects (the Module-overhead baseline)."""
    slots = []
    ops = {k: compile_raw(m, slots) for k, m in parts.modules().items()}
    enc, dec = ops["encoder"], ops["decoder"]
    xp = backend.get_array_module(slots[0].data)
    kind, reduction = parts.recon, parts.reduction
    opt = optim.Adam(slots, lr=1e-3)

    def reduce(a):
        return a.mean() if reduction == "mean" else a.sum()

    def recon_fwd_bwd(p, t):
        """(loss, dL/dp): the arithmetic of MSELoss / BCEWithLogitsLoss / BCELoss."""
        scale = p.dtype.type(1.0 / p.size if reduction == "mean" else 1.0)
        if kind == "mse":
            diff = p - t
            return reduce(diff * diff), diff * (2 * scale)
        if kind == "bce_logits":
            softplus = xp.maximum(p, 0) + xp.log1p(xp.exp(-xp.abs(p)))
            value = reduce(softplus - t * p)
            return value, (activation_sigmoid(p) - t) * scale
        tiny = numpy.finfo(p.dtype).tiny
        log_p = xp.maximum(xp.log(xp.maximum(p, tiny)), -100.0)
        log_1mp = xp.maximum(xp.log(xp.maximum(1 - p, tiny)), -100.0)
        value = reduce(-(t * log_p + (1 - t) * log_1mp))
        denom = xp.maximum(p * (1 - p), p.dtype.type(1e-12))
        return value, (p - t) / denom * scale

    if not parts.is_vae:
        def step(x):
            opt.zero_grad()
            tape = []
            value, d = recon_fwd_bwd(raw_forward(dec, raw_forward(enc, x, tape), tape), x)
            raw_backward(enc, raw_backward(dec, d, tape), tape, input_grad=False)
            opt.step()
            return value
        step.opt = opt
        return step

    head_mu, head_lv = ops["mean"], ops["logvar"]
    host_rng = copy.deepcopy(parts.rng) if parts.rng is not None else numpy.random.default_rng(seed)
    beta = parts.beta

    def vae_step(x):
        opt.zero_grad()
        tape, tape_mu, tape_lv, tape_dec = [], [], [], []
        h = raw_forward(enc, x, tape)
        mu, lv = raw_forward(head_mu, h, tape_mu), raw_forward(head_lv, h, tape_lv)
        eps = xp.asarray(host_rng.standard_normal(mu.shape), dtype=mu.dtype)   # as VAE draws ε
        std = xp.exp(lv * lv.dtype.type(0.5))
        rec, d = recon_fwd_bwd(raw_forward(dec, mu + std * eps, tape_dec), x)
        var = xp.exp(lv)
        kl = -0.5 * (1 + lv - mu * mu - var).sum()
        if reduction == "mean":
            kl = kl / mu.shape[0]
        value = rec + kl * kl.dtype.type(beta)
        dz = raw_backward(dec, d, tape_dec)
        s = mu.dtype.type(1.0 / mu.shape[0] if reduction == "mean" else 1.0)
        b = mu.dtype.type(beta)
        dmean, dlogvar = mu * s, (var - 1) * (s * mu.dtype.type(0.5))
        dm = dz + dmean * b
        dl = dz * eps * std * dz.dtype.type(0.5) + dlogvar * b
        raw_backward(enc, raw_backward(head_mu, dm, tape_mu) + raw_backward(head_lv, dl, tape_lv), tape,
                     input_grad=False)
        opt.step()
        return value
    vae_step.opt = opt
    return vae_step
