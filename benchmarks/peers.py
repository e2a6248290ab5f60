"""The peers benchmarks/train_speed.py compares tinyae with besides PyTorch: JAX (the whole
training step jit-compiled) and DeZero (the NumPy/CuPy framework of "Deep Learning from
Scratch 3").  Both are optional: :func:`available` says which are importable, and the
benchmark skips the others with a one-line note.

Each builder reads a tinyae model (its :class:`raw_kernels.Parts`) and returns a step that
trains the *same* network from the *same* initial weights with the same loss (same formula,
same reduction) and Adam (lr 1e-3, β = (0.9, 0.999), ε = 1e-8):

* ``jax_step``: parameters as a pytree of ``jax.numpy`` arrays; forward, loss, ``jax.grad``
  and the Adam update are one ``jax.jit``-compiled function (parameters and Adam state
  donated, so XLA updates them in place).  The VAE's ε comes from ``jax.random`` inside the
  compiled step (``host_eps=True``: from a copy of the tinyae model's Generator, for the
  agreement test).  Every layer of the tutorials' models is supported, the conv AE included.
* ``dezero_step``: the dense models (DeZero has no nearest-neighbour upsampling, so not the
  conv AE), with ``dezero.optimizers.Adam`` (its ε is added to √v before the bias
  correction, PyTorch adds it after: a ~1e-8 relative difference, nothing at these scales).

DeZero and NumPy 2: DeZero 0.0.13 (the release on PyPI) fails to import on NumPy ≥ 1.24
(it names ``numpy.int``); :func:`import_dezero` sets ``numpy.int = int`` first.  And it wraps
every Python number of an expression (``loss / n``, ``1 - t``) in ``numpy.array(number)``,
a float64 (or int64) 0-d array.  NumPy < 2 let a 0-d array take the other operand's dtype;
NumPy ≥ 2 (NEP 50) promotes float32 with it to float64, so a naive DeZero model on NumPy 2
computes its gradients in float64 (measured: ``F.sum(d ** 2) / d.size`` gives float64 grads
for float32 weights).  Here every constant is a float32 NumPy scalar, so DeZero's arrays stay
float32 from start to end: like for like with tinyae and PyTorch.  That is not enough: DeZero's
own backward passes use Python numbers too (``1 - y * y``), so :func:`import_dezero` also
makes DeZero's ``as_array`` give float32 for Python numbers, which restores its NumPy 1.x
behaviour; ``dezero_step`` checks the gradient dtypes after its first step and raises if any
is not float32.
"""
from __future__ import annotations

import copy
import importlib.util

import numpy

from tinyae import backend

__all__ = ["available", "import_dezero", "jax_step", "dezero_step", "PeerUnsupported"]


class PeerUnsupported(Exception):
    """This peer cannot build this model (the benchmark notes it and goes on)."""


def available() -> dict:
    """{"jax": bool, "dezero": bool}: which peers are installed (nothing is imported)."""
    return {name: importlib.util.find_spec(name) is not None for name in ("jax", "dezero")}


# ---------------------------------------------------------------------------
# the model, read once for both peers
# ---------------------------------------------------------------------------
def layer_ops(module, weights):
    """Flatten a tinyae Module tree into ("kind", ...) tuples; parameters go to ``weights``
    as host float32 copies, referred to by index (PyTorch layouts: Linear W is (out, in))."""
    name = type(module).__name__

    def take(*params):
        idx = []
        for p in params:
            if p is not None:
                weights.append(backend.to_numpy(p.data).astype(numpy.float32).copy())
                idx.append(len(weights) - 1)
            else:
                idx.append(None)
        return idx

    if name == "Sequential":
        return [op for child in module for op in layer_ops(child, weights)]
    if name == "Linear":
        return [("linear", *take(module.weight, module.bias))]
    if name == "Conv2d":
        return [("conv", *take(module.weight, module.bias), tuple(module.stride), tuple(module.pads))]
    if name == "MaxPool2d":
        return [("maxpool", tuple(module.kernel_size), tuple(module.stride), tuple(module.pads))]
    if name == "Upsample":
        return [("upsample", tuple(module.scale_factor))]
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
    if name == "Flatten":
        return [("reshape", None)]
    if name == "Reshape":
        return [("reshape", tuple(module.shape))]
    raise PeerUnsupported(f"no peer translation for the tinyae layer {name}")


def read_model(parts):
    """(ops by sub-module name, list of host weights) for a Parts (AE or VAE)."""
    weights = []
    ops = {k: layer_ops(m, weights) for k, m in parts.modules().items()}
    return ops, weights


# ---------------------------------------------------------------------------
# JAX: the whole step jit-compiled
# ---------------------------------------------------------------------------
def jax_step(parts, seed: int, host_eps: bool = False):
    """A step function ``step(x) -> loss`` (x a NumPy batch; it is moved to the device once
    and cached by identity, like the PyTorch batches) with a ``sync()`` that waits for JAX's
    asynchronous dispatch."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    from jax import lax  # noqa: PLC0415

    ops, host = read_model(parts)
    params = [jnp.asarray(w) for w in host]
    m_state = [jnp.zeros_like(p) for p in params]
    v_state = [jnp.zeros_like(p) for p in params]

    def run(seq, p, x):
        for op in seq:
            kind = op[0]
            if kind == "linear":
                x = x @ p[op[1]].T
                if op[2] is not None:
                    x = x + p[op[2]]
            elif kind == "conv":
                _, wi, bi, stride, (pt, pb, pl, pr) = op
                x = lax.conv_general_dilated(x, p[wi], stride, [(pt, pb), (pl, pr)],
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                if bi is not None:
                    x = x + p[bi][None, :, None, None]
            elif kind == "maxpool":
                _, (kh, kw), (sh, sw), (pt, pb, pl, pr) = op
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, kh, kw), (1, 1, sh, sw),
                                      ((0, 0), (0, 0), (pt, pb), (pl, pr)))
            elif kind == "upsample":
                x = jnp.repeat(jnp.repeat(x, op[1][0], axis=2), op[1][1], axis=3)
            elif kind == "relu":
                x = jnp.maximum(x, 0)
            elif kind == "lrelu":
                x = jnp.where(x > 0, x, op[1] * x)
            elif kind == "tanh":
                x = jnp.tanh(x)
            elif kind == "sigmoid":
                x = jax.nn.sigmoid(x)
            elif kind == "reshape":
                x = x.reshape((x.shape[0], -1) if op[1] is None else (x.shape[0],) + op[1])
        return x

    def reduce(a):
        return a.mean() if parts.reduction == "mean" else a.sum()

    def recon(out, x):
        if parts.recon == "mse":
            return reduce((out - x) ** 2)
        if parts.recon == "bce_logits":
            return reduce(jax.nn.softplus(out) - x * out)
        logp, log1mp = jnp.maximum(jnp.log(out), -100.0), jnp.maximum(jnp.log1p(-out), -100.0)
        return reduce(-(x * logp + (1 - x) * log1mp))

    if parts.is_vae:
        def loss_fn(p, x, eps):
            h = run(ops["encoder"], p, x)
            mu, lv = run(ops["mean"], p, h), run(ops["logvar"], p, h)
            z = mu + jnp.exp(0.5 * lv) * eps
            kl = -0.5 * jnp.sum(1 + lv - mu * mu - jnp.exp(lv))
            if parts.reduction == "mean":
                kl = kl / x.shape[0]
            return recon(run(ops["decoder"], p, z), x) + parts.beta * kl
    else:
        def loss_fn(p, x, eps):
            return recon(run(ops["decoder"], p, run(ops["encoder"], p, x)), x)

    b1, b2, lr, adam_eps = 0.9, 0.999, 1e-3, 1e-8

    def train_step(p, m, v, t, x, eps):
        loss, g = jax.value_and_grad(loss_fn)(p, x, eps)
        step_size = lr / (1 - b1 ** t)
        bias2_sqrt = jnp.sqrt(1 - b2 ** t)
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        p = [pi - step_size * mi / (jnp.sqrt(vi) / bias2_sqrt + adam_eps) for pi, mi, vi in zip(p, m, v)]
        return p, m, v, loss

    compiled = jax.jit(train_step, donate_argnums=(0, 1, 2))
    key = [jax.random.PRNGKey(seed)]
    rng = copy.deepcopy(parts.rng) if parts.rng is not None else numpy.random.default_rng(seed)
    state = {"p": params, "m": m_state, "v": v_state, "t": 0, "last": None}
    cache = {}
    latent = None
    if parts.is_vae:
        latent = next(host[op[1]].shape[0] for op in ops["mean"] if op[0] == "linear")

    def step(x):
        xd = cache.get(id(x))
        if xd is None:
            xd = cache[id(x)] = (x, jnp.asarray(x))
        xd = xd[1]
        state["t"] += 1
        if parts.is_vae:
            if host_eps:
                eps = jnp.asarray(rng.standard_normal((x.shape[0], latent)).astype(numpy.float32))
            else:
                key[0], sub = jax.random.split(key[0])
                eps = jax.random.normal(sub, (x.shape[0], latent), dtype=jnp.float32)
        else:
            eps = jnp.zeros((), jnp.float32)
        state["p"], state["m"], state["v"], loss = compiled(
            state["p"], state["m"], state["v"], jnp.float32(state["t"]), xd, eps)
        state["last"] = loss
        return loss

    def sync():
        if state["last"] is not None:
            state["last"].block_until_ready()

    def adam_state():
        return [numpy.asarray(a) for a in state["m"] + state["v"]]

    step.sync, step.adam_state = sync, adam_state
    return step


# ---------------------------------------------------------------------------
# DeZero: define-by-run autodiff on NumPy
# ---------------------------------------------------------------------------
def import_dezero(float32_constants: bool = True):
    """Import DeZero (setting ``numpy.int = int`` first, which DeZero 0.0.13 needs on NumPy ≥ 1.24).

    ``float32_constants``: make ``dezero.core.as_array`` turn Python numbers into float32 0-d
    arrays instead of ``numpy.array(number)`` (float64/int64).  On NumPy ≥ 2 the latter
    promotes every float32 expression it meets to float64 — DeZero's own backward passes
    write ``1 - y * y`` (tanh) and ``y * (1 - y)`` (sigmoid), so a float32 model gets float64
    gradients.  With the patch DeZero computes as it did on NumPy 1.x, in float32."""
    if not hasattr(numpy, "int"):
        numpy.int = int
    import dezero  # noqa: PLC0415
    import dezero.core  # noqa: PLC0415
    original = getattr(dezero.core, "_tinyae_original_as_array", dezero.core.as_array)
    dezero.core._tinyae_original_as_array = original
    if float32_constants:
        def as_array(x, array_module=numpy):
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                return array_module.array(x, dtype=numpy.float32)
            return original(x, array_module)
        dezero.core.as_array = as_array
    else:
        dezero.core.as_array = original
    return dezero


def dezero_step(parts, seed: int, host_eps: bool = False, float32_constants: bool = True):
    """A step function for DeZero (dense models only: :class:`PeerUnsupported` otherwise).
    ``float32_constants=False`` runs DeZero as installed (float64 gradients on NumPy ≥ 2)."""
    dezero = import_dezero(float32_constants)
    import dezero.functions as F  # noqa: PLC0415
    import dezero.layers as L  # noqa: PLC0415

    ops, host = read_model(parts)
    if any(op[0] in ("conv", "maxpool", "upsample") for seq in ops.values() for op in seq):
        raise PeerUnsupported("DeZero has no nearest-neighbour upsampling: the conv AE is not built")
    holder = L.Layer()
    params = []
    for i, w in enumerate(host):
        # DeZero's Linear computes x·W with W (in, out): store the transpose of PyTorch's (out, in)
        p = dezero.Parameter(numpy.ascontiguousarray(w.T) if w.ndim == 2 else w.copy(), name=f"p{i}")
        setattr(holder, f"p{i}", p)
        params.append(p)
    opt = dezero.optimizers.Adam(alpha=1e-3).setup(holder)
    f32 = numpy.float32
    half, one = f32(0.5), f32(1)

    def run(seq, x):
        for op in seq:
            kind = op[0]
            if kind == "linear":
                x = F.linear(x, params[op[1]], None if op[2] is None else params[op[2]])
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "lrelu":
                x = F.leaky_relu(x, f32(op[1]))
            elif kind == "tanh":
                x = F.tanh(x)
            elif kind == "sigmoid":
                x = F.sigmoid(x)
            elif kind == "reshape":
                x = F.reshape(x, (x.shape[0], -1) if op[1] is None else (x.shape[0],) + op[1])
        return x

    def reduce(a):
        total = F.sum(a)
        return total * f32(1.0 / a.size) if parts.reduction == "mean" else total

    def recon(out, x):
        if parts.recon == "mse":
            d = out - x
            return reduce(d * d)
        if parts.recon == "bce_logits":      # softplus(z) − x·z, with |z| = relu(z) + relu(−z)
            absz = F.relu(out) + F.relu(-out)
            return reduce(F.relu(out) + F.log(one + F.exp(-absz)) - x * out)
        raise PeerUnsupported(f"DeZero twin: no {parts.recon} loss")

    rng = copy.deepcopy(parts.rng) if parts.rng is not None else numpy.random.default_rng(seed)
    checked = []

    def step(x):
        holder.cleargrads()
        if parts.is_vae:
            h = run(ops["encoder"], x)
            mu, lv = run(ops["mean"], h), run(ops["logvar"], h)
            eps = rng.standard_normal(mu.shape).astype(f32)
            z = mu + F.exp(lv * half) * eps
            kl = F.sum(one + lv - mu * mu - F.exp(lv)) * f32(-0.5)
            if parts.reduction == "mean":
                kl = kl * f32(1.0 / x.shape[0])
            loss = recon(run(ops["decoder"], z), x) + kl * f32(parts.beta)
        else:
            loss = recon(run(ops["decoder"], run(ops["encoder"], x)), x)
        loss.backward()
        if not checked:
            kinds = sorted({str(p.grad.data.dtype) for p in params})
            if float32_constants and kinds != ["float32"]:
                raise RuntimeError(f"DeZero twin: gradients in {kinds}, not float32")
            checked.append(kinds)
        opt.update()
        return loss.data

    def adam_state():
        return list(opt.ms.values()) + list(opt.vs.values())

    step.sync, step.adam_state, step.grad_dtypes = (lambda: None), adam_state, checked
    return step
