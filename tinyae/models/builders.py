"""The tutorials' architectures, built by name: ``model = build("vae-784-400-20", seed=1)``.

A built model remembers ``model.builder = (name, kwargs)``; checkpoints store it, so
``load_checkpoint`` can rebuild the architecture.  Keyword arguments must therefore be
JSON values (numbers, strings, lists, None) — a ``seed`` rather than a Generator.
Every builder takes ``seed`` (parameters are initialised from one stream, the model's
noise — corruption, VAE ε — from an independent one).

Name                inputs        architecture (→ = Linear; act after each hidden layer)
------------------  ------------  ---------------------------------------------------------
dense-196-64-16     (N, 196)      196→64→16→k | k→16→64→196, LeakyReLU(0.2), Tanh output, MSE
vae-196-64-16       (N, 196)      196→64→16, heads 16→k (μ, log σ²) | k→16→64→196 Tanh; MSE(sum)+KL
ae-784-32           (N, 784)      784→32 ReLU | 32→784 sigmoid; per-pixel BCE (logits form;
                                  ``loss="keras-bce"``: Keras's clipped BCE on the sigmoid)
ae-784-250-16       (N, 784)      784→250 ReLU →16 Tanh | 16→320 ReLU →784 Sigmoid; MSE
                                  (``activation="tanh"``: the earlier all-tanh variant)
conv-ae             (N,1,28,28)   conv 4@5×5, pool, conv 8@5×5, pool, dense 150, code 16 Tanh |
                                  dense 120, 320, 7·7·16, up + conv 8@5×5, up + conv 4@6×6,
                                  conv 1@7×7 sigmoid ("same" convolutions); MSE
                                  (``code_activation=None, loss="bce"``: the earlier variant)
vae-784-64-2-keras  (N, 784)      the Keras blog's VAE-2D (tinyae.models.keras.KerasVAE)
vae-784-400-20      (N, 784)      PyTorch examples/vae: 784→400 ReLU, heads 400→20 |
                                  20→400 ReLU →784 sigmoid; BCE(sum)+KL
linear-ae           (N, D)        D→k | k→D, no activation (``tied``: decoder W = encoderᵀ); MSE
sparse-ae           (N, D)        D→H Sigmoid | H→D; BCE + L1 or KL(ρ‖ρ̂) penalty on the code
contractive-ae      (N, D)        sizes D→…→H with act | H→D; BCE + λ‖∂h/∂x‖²_F (exact or stochastic)
mlp-ae, mlp-vae     (N, D)        any sizes/activations (small models for tests and experiments)
conv-ae-transposed  (N,1,28,28)   the OpenGenus survey's variants, 3×3 kernels, ReLU, code C2×7×7,
conv-ae-unpool                    sigmoid output, MSE: (a) strided Conv2d down / ConvTranspose2d up,
conv-ae-upsample                  (b) MaxPool2d / MaxUnpool2d with the pools' indices, (c) strided
                                  Conv2d down / nearest Upsample + Conv2d up

Every builder called through :func:`build` also takes ``init="pytorch"`` (PyTorch's
U(±1/√fan_in) for weights and biases: what the builders draw when ``init`` is not given, except
the Keras-only ``vae-784-64-2-keras``) or ``init="keras"``/``"glorot"`` (Keras's defaults:
Glorot-uniform weights, zero biases; :func:`tinyae.nn.init.init_module_`), drawn from the
seed's parameter stream.  The Keras tutorials' nets (ae-784-32, ae-784-250-16, conv-ae) are
Keras models: reproduce them with ``init="keras"`` (examples/ae_mnist.py and
examples/conv_ae_mnist.py do).  ``loss="keras-bce"`` (ae-784-32, conv-ae) is Keras's BCE on
sigmoid outputs, clipped to [1e-7, 1 − 1e-7] (:class:`tinyae.models.keras.KerasBCELoss`).

Common options of the autoencoders: ``corruption=None | ["gaussian", σ] | ["mask", p]``
(denoising) and ``penalty=None | ["l1", λ] | ["kl", ρ, β]`` (sparse).  With BCE the
decoder's last layer gives logits and the model's ``forward`` returns their sigmoid.
"""
from __future__ import annotations

import inspect
import json

import numpy

from .._checks import nonnegative_int, positive_int
from ..losses import BCEWithLogitsLoss, KLSparsityPenalty, L1ActivityPenalty, MSELoss
from ..nn import Flatten, Identity, LeakyReLU, Linear, Module, ReLU, Reshape, Sequential, Sigmoid, Tanh
from ..nn.linear import TiedLinear
from ..nn.init import check_scheme, init_module_
from .autoencoder import AutoEncoder, ContractiveAutoEncoder
from .vae import VAE

__all__ = ["BUILDERS", "register", "build", "available", "MaxUnpoolFrom"]

BUILDERS: dict = {}


def register(name: str):
    """Decorator adding a builder function to :data:`BUILDERS` under ``name``."""
    def deco(fn):
        if name in BUILDERS:
            raise ValueError(f"builder {name!r} is already registered")
        BUILDERS[name] = fn
        return fn
    return deco


def available() -> list:
    """The registered builder names."""
    return sorted(BUILDERS)


def build(name: str, **kwargs):
    """Build the architecture ``name`` (see the module docstring) and record (name, kwargs)."""
    if name not in BUILDERS:
        raise KeyError(f"unknown model builder {name!r}; available: {', '.join(available())}")
    scheme = kwargs.pop("init", None)      # None: the builder's own (PyTorch's, except Keras-only builders)
    if scheme is not None:
        check_scheme(scheme, f"build({name!r})")
    try:
        kwargs = json.loads(json.dumps(kwargs))  # as a checkpoint will give them back (tuples → lists)
    except TypeError as exc:
        raise TypeError(f"build({name!r}): keyword arguments must be JSON values (a checkpoint stores "
                        f"them), e.g. seed=0 rather than a Generator: {exc}") from None
    _check_kwargs(name, kwargs)
    model = BUILDERS[name](**kwargs)
    if scheme is not None:   # redraw every layer under the scheme, from the seed's parameter stream
        init_module_(model, scheme, _rngs(kwargs.get("seed", 0))[0])
        kwargs = {**kwargs, "init": scheme}
    model.builder = (name, kwargs)
    return model


# -- helpers ------------------------------------------------------------------------------
_SIZES = ("latent", "hidden", "in_features", "n_samples")  # keyword arguments that are layer sizes


def _check_kwargs(name, kwargs):
    """Refuse unknown keywords and malformed sizes/seeds/penalties before anything is built,
    naming the builder, the argument and what it must be."""
    where = f"build({name!r})"
    params = inspect.signature(BUILDERS[name]).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise TypeError(f"{where}: unknown keyword argument(s) {', '.join(map(repr, unknown))}; it takes "
                        f"{', '.join(k for k in params if k != 'self')}")
    for key in _SIZES:
        if key in kwargs:
            positive_int(kwargs[key], key, where)
    if "sizes" in kwargs:
        sizes = kwargs["sizes"]
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
            raise (ValueError if isinstance(sizes, (list, tuple)) else TypeError)(
                f"{where}: sizes must be a list of at least two layer sizes, e.g. [784, 128, 16], got {sizes!r}")
        for i, size in enumerate(sizes):
            positive_int(size, f"sizes[{i}]", where)
    if kwargs.get("seed") is not None:
        nonnegative_int(kwargs["seed"], "seed", where)
    if kwargs.get("penalty") is not None:
        _penalty(kwargs["penalty"], "mean")  # builds a throw-away penalty: checks kind and values


def _rngs(seed):
    """(init Generator, noise Generator): two independent streams from one seed."""
    if seed is not None:
        seed = nonnegative_int(seed, "seed", "build")
    init, noise = numpy.random.SeedSequence(seed).spawn(2)
    return numpy.random.default_rng(init), numpy.random.default_rng(noise)


def _act(spec, negative_slope=0.01):
    """A fresh activation layer from a name: relu, leaky_relu, tanh, sigmoid, identity/linear."""
    if spec in (None, "identity", "linear"):
        return None
    table = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
    if spec == "leaky_relu":
        return LeakyReLU(negative_slope)
    if spec in table:
        return table[spec]()
    raise ValueError(f"unknown activation {spec!r}; expected relu, leaky_relu, tanh, sigmoid or identity")


def _mlp(sizes, act, last, rng, negative_slope=0.01, modules=()):
    """Sequential(*modules, Linear(s0, s1), act, …, Linear(s_{n-1}, s_n), last)."""
    layers = list(modules)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng=rng))
        f = _act(last if i == len(sizes) - 2 else act, negative_slope)
        if f is not None:
            layers.append(f)
    return Sequential(*layers)


def _recon(loss, reduction="mean", keras=False):
    if loss == "mse":
        return MSELoss(reduction)
    if loss == "bce":
        return BCEWithLogitsLoss(reduction)
    if loss == "keras-bce" and keras:
        from .keras import KerasBCELoss
        return KerasBCELoss(reduction)
    raise ValueError(f"loss must be 'mse', 'bce' (logits form){', keras-bce' if keras else ''}, got {loss!r}")


def _penalty(spec, reduction):
    if spec is None:
        return None
    expected = "None, ['l1', lam] or ['kl', rho, beta]"
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (list, tuple)) or not spec:
        raise TypeError(f"penalty must be {expected}, got {spec!r}")
    kind, *args = spec
    if len(args) > {"l1": 1, "kl": 2}.get(kind, len(args)):
        raise ValueError(f"penalty must be {expected}, got {spec!r} (too many values for {kind!r})")
    if kind == "l1":
        return L1ActivityPenalty(*args, reduction=reduction)
    if kind == "kl":
        return KLSparsityPenalty(*args, reduction=reduction)
    raise ValueError(f"penalty must be None, ['l1', lam] or ['kl', rho, beta], got {spec!r}")


def _ae(encoder, decoder, loss, corruption, penalty, noise_rng):
    return AutoEncoder(encoder, decoder, loss=loss, corruption=corruption,
                       penalty=_penalty(penalty, loss.reduction), rng=noise_rng)


# -- the tutorials' architectures -------------------------------------------------------------
@register("dense-196-64-16")
def dense_196_64_16(latent=3, negative_slope=0.2, corruption=None, penalty=None, seed=0):
    """14×14 MNIST in [−1, 1]: 196-64-16-k, LeakyReLU(0.2), Tanh output, MSE (mean)."""
    init, noise = _rngs(seed)
    enc = _mlp([196, 64, 16, latent], "leaky_relu", None, init, negative_slope)
    dec = _mlp([latent, 16, 64, 196], "leaky_relu", "tanh", init, negative_slope)
    return _ae(enc, dec, MSELoss(), corruption, penalty, noise)


@register("vae-196-64-16")
def vae_196_64_16(latent=3, negative_slope=0.2, beta=1.0, seed=0):
    """The VAE twin of dense-196-64-16: heads 16→k for μ and log σ², MSE(sum) + β KL."""
    init, noise = _rngs(seed)
    enc = _mlp([196, 64, 16], "leaky_relu", "leaky_relu", init, negative_slope)
    mean, logvar = Linear(16, latent, rng=init), Linear(16, latent, rng=init)
    dec = _mlp([latent, 16, 64, 196], "leaky_relu", "tanh", init, negative_slope)
    return VAE(enc, mean, logvar, dec, loss=MSELoss("sum"), beta=beta, rng=noise)


@register("ae-784-32")
def ae_784_32(latent=32, loss="bce", corruption=None, penalty=None, seed=0):
    """784-32 ReLU | 32-784 sigmoid, per-pixel BCE (mean): "bce" in logits form (the decoder
    gives logits), "keras-bce" Keras's clipped BCE after a Sigmoid layer; "mse" after a Sigmoid.
    The Keras blog's model is ``build("ae-784-32", init="keras", loss="keras-bce")``."""
    init, noise = _rngs(seed)
    recon = _recon(loss, keras=True)
    enc = _mlp([784, latent], None, "relu", init)
    dec = _mlp([latent, 784], None, None if loss == "bce" else "sigmoid", init)
    return _ae(enc, dec, recon, corruption, penalty, noise)


@register("ae-784-250-16")
def ae_784_250_16(activation="relu", code_activation="tanh", corruption=None, penalty=None, seed=0):
    """784-250 (ReLU) -16 (tanh code) | 16-320 (ReLU) -784 (sigmoid output), MSE (mean): the
    "Intro to Autoencoders" dense AE.  ``activation="tanh"``: the earlier all-tanh variant."""
    init, noise = _rngs(seed)
    enc = _mlp([784, 250, 16], activation, code_activation, init)
    dec = _mlp([16, 320, 784], activation, "sigmoid", init)
    return _ae(enc, dec, MSELoss(), corruption, penalty, noise)


@register("conv-ae")
def conv_ae(latent=16, activation="relu", code_activation="tanh", loss="mse", corruption=None, penalty=None,
            seed=0):
    """The "Intro to Autoencoders" convolutional AE on (N, 1, 28, 28): a tanh code (so that
    N(0, 0.33) samples fall where the codes are) and MSE (mean) on a sigmoid output.
    ``code_activation=None, loss="bce"``: the earlier variant (linear code, BCE in logits form);
    ``loss="keras-bce"``: Keras's clipped BCE on the sigmoid output.

    28×28 →conv 4@5×5 same→ 4×28×28 →pool→ 4×14×14 →conv 8@5×5→ 8×14×14 →pool→ 8×7×7
    → flatten 392 → 150 → code k  |  k → 120 → 320 → 784 → 16×7×7 →up→ 16×14×14
    →conv 8@5×5→ 8×14×14 →up→ 8×28×28 →conv 4@6×6→ 4×28×28 →conv 1@7×7→ 1×28×28
    (→ sigmoid, or logits for loss="bce")
    """
    from ..nn.conv import Conv2d
    from ..nn.pooling import MaxPool2d, Upsample

    init, noise = _rngs(seed)

    def a():
        return _act(activation)

    enc = Sequential(
        Conv2d(1, 4, 5, padding="same", rng=init), a(), MaxPool2d(2),
        Conv2d(4, 8, 5, padding="same", rng=init), a(), MaxPool2d(2),
        Flatten(), Linear(8 * 7 * 7, 150, rng=init), a(), Linear(150, latent, rng=init),
        *[m for m in (_act(code_activation),) if m is not None])
    dec = Sequential(
        Linear(latent, 120, rng=init), a(), Linear(120, 320, rng=init), a(),
        Linear(320, 7 * 7 * 16, rng=init), a(), Reshape(16, 7, 7),
        Upsample(2), Conv2d(16, 8, 5, padding="same", rng=init), a(),
        Upsample(2), Conv2d(8, 4, 6, padding="same", rng=init), a(),
        Conv2d(4, 1, 7, padding="same", rng=init), *([] if loss == "bce" else [Sigmoid()]))
    return _ae(enc, dec, _recon(loss, keras=True), corruption, penalty, noise)


@register("vae-784-400-20")
def vae_784_400_20(hidden=400, latent=20, beta=1.0, seed=0):
    """PyTorch examples/vae: fc1 784→400 ReLU, fc21/fc22 400→20 | fc3 20→400 ReLU, fc4 400→784
    sigmoid; loss BCE(sum) + KL (logits form of the BCE)."""
    init, noise = _rngs(seed)
    enc = _mlp([784, hidden], None, "relu", init)
    mean, logvar = Linear(hidden, latent, rng=init), Linear(hidden, latent, rng=init)
    dec = _mlp([latent, hidden, 784], "relu", None, init)
    return VAE(enc, mean, logvar, dec, loss=BCEWithLogitsLoss("sum"), beta=beta, rng=noise)


@register("linear-ae")
def linear_ae(in_features=784, latent=16, bias=False, tied=False, corruption=None, seed=0):
    """x → W x (+b) → Vz (+c), MSE; ``tied``: V = Wᵀ (one shared Parameter)."""
    init, noise = _rngs(seed)
    lin = Linear(in_features, latent, bias=bias, rng=init)
    dec = TiedLinear(lin, bias=bias, rng=init) if tied else Linear(latent, in_features, bias=bias, rng=init)
    return AutoEncoder(Sequential(lin), Sequential(dec), loss=MSELoss(), corruption=corruption, rng=noise)


@register("sparse-ae")
def sparse_ae(in_features=784, hidden=64, penalty=("kl", 0.05, 3.0), loss="bce", corruption=None, seed=0):
    """D→H Sigmoid code | H→D (logits for BCE), plus an L1 or KL(ρ‖ρ̂) sparsity penalty."""
    init, noise = _rngs(seed)
    enc = _mlp([in_features, hidden], None, "sigmoid", init)
    dec = _mlp([hidden, in_features], None, None, init)
    return _ae(enc, dec, _recon(loss), corruption, penalty, noise)


@register("contractive-ae")
def contractive_ae(sizes=(784, 64), activation="sigmoid", lam=0.1, mode="exact", sigma=0.1,
                   n_samples=1, loss="bce", negative_slope=0.01, corruption=None, seed=0):
    """Encoder sizes[0]→…→sizes[-1] with ``activation`` after every layer; decoder H→D
    (logits for BCE).  mode "exact" needs a one-layer encoder (two sizes)."""
    init, noise = _rngs(seed)
    sizes = list(sizes)
    enc = _mlp(sizes, activation, activation, init, negative_slope)
    dec = _mlp([sizes[-1], sizes[0]], None, None, init)
    return ContractiveAutoEncoder(enc, dec, lam=lam, mode=mode, sigma=sigma, n_samples=n_samples,
                                  loss=_recon(loss), corruption=corruption, rng=noise)


@register("mlp-ae")
def mlp_ae(sizes=(784, 128, 16), activation="relu", code_activation=None, output=None, loss="mse",
           reduction="mean", negative_slope=0.01, tied=False, corruption=None, penalty=None, seed=0):
    """Encoder sizes[0]→…→sizes[-1], decoder the mirror image.  ``activation`` after hidden
    layers, ``code_activation`` on the code, ``output`` on the reconstruction (for
    loss="bce" the decoder gives logits and ``output`` must be None).
    ``tied``: each decoder layer is the transpose of its encoder twin (shared weights)."""
    init, noise = _rngs(seed)
    sizes = list(sizes)
    if loss == "bce" and output is not None:
        raise ValueError("mlp-ae: with loss='bce' the decoder gives logits; leave output=None")
    enc = _mlp(sizes, activation, code_activation, init, negative_slope)
    if tied:
        lins = [m for m in enc if isinstance(m, Linear)][::-1]
        layers = []
        for i, lin in enumerate(lins):
            layers.append(TiedLinear(lin, rng=init))
            f = _act(output if i == len(lins) - 1 else activation, negative_slope)
            if f is not None:
                layers.append(f)
        dec = Sequential(*layers)
    else:
        dec = _mlp(sizes[::-1], activation, output, init, negative_slope)
    return _ae(enc, dec, _recon(loss, reduction), corruption, penalty, noise)


@register("mlp-vae")
def mlp_vae(sizes=(784, 400, 20), activation="relu", output=None, loss="bce", reduction="sum",
            negative_slope=0.01, beta=1.0, seed=0):
    """Encoder trunk sizes[0]→…→sizes[-2] (``activation`` after each layer), heads
    sizes[-2]→sizes[-1]; decoder the mirror image with ``output`` on the reconstruction."""
    init, noise = _rngs(seed)
    sizes = list(sizes)
    if loss == "bce" and output is not None:
        raise ValueError("mlp-vae: with loss='bce' the decoder gives logits; leave output=None")
    enc = _mlp(sizes[:-1], activation, activation, init, negative_slope) if len(sizes) > 2 else Sequential(Identity())
    mean, logvar = Linear(sizes[-2], sizes[-1], rng=init), Linear(sizes[-2], sizes[-1], rng=init)
    dec = _mlp(sizes[::-1], activation, output, init, negative_slope)
    return VAE(enc, mean, logvar, dec, loss=_recon(loss, reduction), beta=beta, rng=noise)


# -- the OpenGenus survey's convolutional variants ----------------------------------------------
# Three ways down and up with the same budget: 1×28×28 → C1×14×14 → C2×7×7 (the code, C2·49
# numbers) → C1×14×14 → 1×28×28, 3×3 kernels, ReLU, a sigmoid output (logits for loss="bce").
# "transposed" and "upsample" share the encoder (stride-2 convolutions) and have decoders with
# the same weights' shapes' sizes, so their reconstructions compare at an equal budget.

class MaxUnpoolFrom(Module):
    r"""MaxUnpool2d fed with the indices of a MaxPool2d of the encoder (the pair of SegNet).

    ``forward(x)`` puts every value of x (N, C, H, W) back where ``pool``'s last forward found
    its maximum, zeros elsewhere, in the pool's input size (N, C, PH, PW):
        y.reshape(N, C, PH*PW)[n, c, indices[n, c, h, w]] = x[n, c, h, w]
    ``backward(dy)`` gathers dy at the same places (MaxUnpool2d's backward).  The indices are
    the pool's from the *last encoded batch*: decode only what was just encoded (``forward``
    does); decoding a code from elsewhere (a sample, an interpolation) has no indices to use.
    """

    def __init__(self, pool):
        super().__init__()
        from ..nn.pooling import MaxPool2d, MaxUnpool2d
        if not isinstance(pool, MaxPool2d):
            raise TypeError(f"MaxUnpoolFrom: pool must be a MaxPool2d, got {type(pool).__name__}")
        object.__setattr__(self, "pool", pool)   # a reference, not a child: it belongs to the encoder
        self.unpool = MaxUnpool2d(pool.kernel_size, pool.stride, pool.padding)

    def forward(self, x):
        if getattr(self.pool, "argmax", None) is None:
            raise RuntimeError("MaxUnpoolFrom: its MaxPool2d has not run yet; decode codes right after "
                               "encoding them (model.forward), not codes from elsewhere")
        if tuple(self.pool.argmax.shape) != tuple(x.shape):
            raise ValueError(f"MaxUnpoolFrom: input of shape {tuple(x.shape)} does not match the indices of "
                             f"the last encoded batch {tuple(self.pool.argmax.shape)}; an unpooling decoder "
                             "can only decode the batch that was just encoded")
        return self.unpool(x, self.pool.indices(), output_size=self.pool.in_shape)

    def backward(self, dy, need_dx=True):
        return self.unpool.backward(dy, need_dx=need_dx)


def _survey_check(where, channels, loss):
    if isinstance(channels, (str, bytes)) or not isinstance(channels, (list, tuple)) or len(channels) != 2:
        raise ValueError(f"{where}: channels must be a pair [C1, C2] (C2×7×7 is the code), got {channels!r}")
    for i, c in enumerate(channels):
        positive_int(c, f"channels[{i}]", where)
    return _recon(loss)


def _survey_out(loss):
    return [] if loss == "bce" else [Sigmoid()]


def _strided_encoder(c1, c2, init):
    from ..nn.conv import Conv2d
    return Sequential(Conv2d(1, c1, 3, stride=2, padding=1, rng=init), ReLU(),     # → C1×14×14
                      Conv2d(c1, c2, 3, stride=2, padding=1, rng=init), ReLU())    # → C2×7×7


@register("conv-ae-transposed")
def conv_ae_transposed(channels=(16, 8), loss="mse", corruption=None, seed=0):
    """(a) strided Conv2d down, ConvTranspose2d up (3×3, stride 2, padding 1, output_padding 1):
    1×28×28 →conv s2→ C1×14×14 →conv s2→ C2×7×7 | →convT s2→ C1×14×14 →convT s2→ 1×28×28.
    A 3×3 kernel at stride 2 covers even output rows with two taps and odd ones with one: the
    uneven overlap that can print a checkerboard (period 2) on the output."""
    from ..nn.conv import ConvTranspose2d
    recon = _survey_check("build('conv-ae-transposed')", channels, loss)
    c1, c2 = channels
    init, noise = _rngs(seed)
    enc = _strided_encoder(c1, c2, init)
    dec = Sequential(ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1, rng=init), ReLU(),
                     ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1, rng=init),
                     *_survey_out(loss))
    return _ae(enc, dec, recon, corruption, None, noise)


@register("conv-ae-upsample")
def conv_ae_upsample(channels=(16, 8), loss="mse", corruption=None, seed=0):
    """(c) the same strided encoder; nearest Upsample(2) + Conv2d 3×3 (padding 1) up:
    C2×7×7 →up→ C2×14×14 →conv→ C1×14×14 →up→ C1×28×28 →conv→ 1×28×28.  Every output pixel
    sees the same number of taps (the resize-convolution said to avoid checkerboards); its
    decoder has as many weights as conv-ae-transposed's."""
    from ..nn.conv import Conv2d
    from ..nn.pooling import Upsample
    recon = _survey_check("build('conv-ae-upsample')", channels, loss)
    c1, c2 = channels
    init, noise = _rngs(seed)
    enc = _strided_encoder(c1, c2, init)
    dec = Sequential(Upsample(2), Conv2d(c2, c1, 3, padding=1, rng=init), ReLU(),
                     Upsample(2), Conv2d(c1, 1, 3, padding=1, rng=init), *_survey_out(loss))
    return _ae(enc, dec, recon, corruption, None, noise)


@register("conv-ae-unpool")
def conv_ae_unpool(channels=(16, 8), loss="mse", corruption=None, seed=0):
    """(b) Conv2d 3×3 (padding 1) + MaxPool2d(2) down; MaxUnpool2d with the pools' indices up:
    1×28×28 →conv→ C1×28×28 →pool→ C1×14×14 →conv→ C2×14×14 →pool→ C2×7×7 |
    →unpool (2nd pool's indices)→ C2×14×14 →conv→ C1×14×14 →unpool (1st pool's)→ C1×28×28
    →conv→ 1×28×28.  The decoder needs the indices of the batch just encoded
    (:class:`MaxUnpoolFrom`): it reconstructs, it cannot decode a code from elsewhere."""
    from ..nn.conv import Conv2d
    from ..nn.pooling import MaxPool2d
    recon = _survey_check("build('conv-ae-unpool')", channels, loss)
    c1, c2 = channels
    init, noise = _rngs(seed)
    pool1, pool2 = MaxPool2d(2), MaxPool2d(2)
    enc = Sequential(Conv2d(1, c1, 3, padding=1, rng=init), ReLU(), pool1,
                     Conv2d(c1, c2, 3, padding=1, rng=init), ReLU(), pool2)
    dec = Sequential(MaxUnpoolFrom(pool2), Conv2d(c2, c1, 3, padding=1, rng=init), ReLU(),
                     MaxUnpoolFrom(pool1), Conv2d(c1, 1, 3, padding=1, rng=init), *_survey_out(loss))
    return _ae(enc, dec, recon, corruption, None, noise)
