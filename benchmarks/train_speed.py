#!/usr/bin/env python
"""Training throughput of tinyae against PyTorch, on the tutorials' models.

    python benchmarks/train_speed.py                      # NumPy vs PyTorch CPU, all models
    python benchmarks/train_speed.py --quick --models dense-ae-64
    python benchmarks/train_speed.py --backend cupy       # CuPy vs PyTorch CUDA
    python benchmarks/train_speed.py --json out.json --profile

What one "step" is, for every framework: zero the gradients, forward, loss, backward,
Adam update (lr 1e-3).  Three implementations of each model are timed:

* ``tinyae``  the model from tinyae.models.build, trained through its interface
              (``model.loss(x)``, ``model.backward_loss()``) with tinyae.optim.Adam;
* ``raw``     the same arithmetic, as straight NumPy/CuPy calls on bare arrays, without
              Module objects (dense layers, activations, losses, VAE sampling inline;
              convolution/pooling/upsampling by calling a private copy of the layer, whose
              Module cost is negligible there).  tinyae/raw - 1 is the cost of the Module layer;
* ``torch``   the identical PyTorch model (weights copied by state_dict name), with
              torch.optim.Adam, on the same thread count (or on CUDA with --backend cupy).

After warm-up steps, R rounds each time S steps of every implementation, interleaved in
one process (the order alternates each round), so machine noise hits all of them; the
tables give the median over rounds.  FLOPs are counted analytically (GEMMs only:
2·M·N·K per forward product, ×3 for forward + the two backward products, convolutions as
their im2col GEMM); the machine's GEMM peak is a large float32 matmul timed in the same run.

See benchmarks/README.md for how to read the output, docs/performance.md for results.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import gzip
import json
import math
import os
import platform
import pstats
import statistics
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:           # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import tinyae  # noqa: E402
from tinyae import backend, nn, optim  # noqa: E402
from tinyae.backend import BackendError  # noqa: E402
from tinyae.nn.activation import sigmoid as activation_sigmoid  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the benchmark still runs, with tinyae-only columns
    torch = None

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

MNIST_DIR = Path(os.environ.get("TINYAE_MNIST", ROOT.parent / "shared" / "data" / "mnist"))


# ---------------------------------------------------------------------------
# the models
# ---------------------------------------------------------------------------
@dataclass
class Bench:
    key: str            # name on the command line
    title: str          # name in the table
    builder: str        # name in the tinyae.models registry (tinyae.models.build)
    batch: int
    input: str          # "14x14" (N, 196) in [-1, 1], "784" (N, 784) or "1x28x28" (N, 1, 28, 28)
    target: float | None = None   # issue 7's minimum tinyae/PyTorch ratio (CPU, 2 threads)


BENCHES = [
    Bench("dense-ae-64", "196-64-16-3 AE", "dense-196-64-16", 64, "14x14", 3.0),
    Bench("dense-ae-1024", "196-64-16-3 AE", "dense-196-64-16", 1024, "14x14"),
    Bench("dense-vae-64", "196-64-16-3 VAE", "vae-196-64-16", 64, "14x14", 3.0),
    Bench("dense-vae-1024", "196-64-16-3 VAE", "vae-196-64-16", 1024, "14x14"),
    Bench("ae-784-200", "784-250-16 / 16-320-784 AE", "ae-784-250-16", 200, "784", 1.2),
    Bench("vae-784-128", "784-400-20 VAE", "vae-784-400-20", 128, "784"),
    Bench("conv-ae-200", "conv AE", "conv-ae", 200, "1x28x28", 1.0),
]
BENCH_BY_KEY = {b.key: b for b in BENCHES}


def build_model(bench: Bench, seed: int):
    """The tinyae model, exactly as the tutorials build it."""
    from tinyae import models  # noqa: PLC0415
    return models.build(bench.builder, seed=seed)


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


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def load_images(n: int, seed: int):
    """``n`` MNIST training images as float32 (n, 28, 28) in [0, 1], or uniform noise of that
    shape when the IDX file is not there.  Returns (images, source)."""
    path = MNIST_DIR / "train-images-idx3-ubyte.gz"
    if path.exists():
        with gzip.open(path, "rb") as f:
            raw = f.read(16 + n * 784)
        magic, count = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big")
        if magic == 2051 and count >= n:
            img = numpy.frombuffer(raw, dtype=numpy.uint8, offset=16).reshape(n, 28, 28)
            return img.astype(numpy.float32) / numpy.float32(255), f"MNIST ({path})"
    rng = numpy.random.default_rng(seed)
    return rng.random((n, 28, 28), dtype=numpy.float32), "uniform random (MNIST not found)"


def make_batches(images, bench: Bench, count: int):
    """``count`` distinct host batches of the model's input shape."""
    n = bench.batch
    out = []
    for k in range(count):
        x = images[(k * n) % len(images):][:n]
        if len(x) < n:
            x = images[:n]
        if bench.input == "14x14":       # 2×2 area downsampling, scaled to [-1, 1] (Tanh output)
            x = x.reshape(n, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(n, 196) * 2 - 1
        elif bench.input == "784":
            x = x.reshape(n, 784)
        else:
            x = x.reshape(n, 1, 28, 28)
        out.append(numpy.ascontiguousarray(x, dtype=numpy.float32))
    return out


# ---------------------------------------------------------------------------
# implementation 1: tinyae (the model's training interface + tinyae.optim.Adam)
# ---------------------------------------------------------------------------
def tinyae_step(model):
    """One training step, as tinyae's fit loop takes it."""
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(x):
        opt.zero_grad()
        total, _ = model.loss(x)
        model.backward_loss()
        opt.step()
        return total
    return step


# ---------------------------------------------------------------------------
# implementation 2: raw kernels (same arithmetic, no Module objects)
# ---------------------------------------------------------------------------
# A layer becomes a tuple ("kind", Parameters / constants...); forward/backward below are
# one if-chain over the tuples, each branch the same array calls the tinyae layer makes.
# Parameters are copies, updated by tinyae.optim.Adam (not a Module: the optimizer is the
# same code in both), so the implementations never share memory.

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
    parameters and returns None, as a model's Sequential does (``needs_input_grad``)."""
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
            op[1].set_needs_input_grad(input_grad or i != first)
            dy = op[1].backward(dy)
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
    return vae_step


# ---------------------------------------------------------------------------
# implementation 3: PyTorch
# ---------------------------------------------------------------------------
def torch_twin(module):
    """The PyTorch module with the same structure, names and weights as tinyae ``module``."""
    from torch_models import torch_layer  # benchmarks/torch_models.py: the twins reproduce.py uses too
    twin = torch_layer(module)
    state = {k: torch.from_numpy(backend.to_numpy(v).copy()) for k, v in module.state_dict().items()}
    twin.load_state_dict(state)
    return twin


def torch_step(parts: Parts, device: str, seed: int, host_eps: bool = False):
    """One training step of the PyTorch twin with torch.optim.Adam (default options).
    ``host_eps``: draw the VAE's ε from a copy of the tinyae model's Generator, as tinyae
    does (for the agreement check; timings use torch.randn_like)."""
    mods = {k: torch_twin(m).to(device) for k, m in parts.modules().items()}
    opt = torch.optim.Adam([p for m in mods.values() for p in m.parameters()], lr=1e-3)
    rec = {"mse": TF.mse_loss, "bce_logits": TF.binary_cross_entropy_with_logits,
           "bce": TF.binary_cross_entropy}[parts.recon]
    reduction = parts.reduction
    enc, dec = mods["encoder"], mods["decoder"]
    torch.manual_seed(seed)

    if not parts.is_vae:
        def step(x):
            opt.zero_grad()
            loss = rec(dec(enc(x)), x, reduction=reduction)
            loss.backward()
            opt.step()
            return loss
        return step

    head_mu, head_lv = mods["mean"], mods["logvar"]
    beta = parts.beta
    host_rng = copy.deepcopy(parts.rng)

    def noise(like):
        if host_eps:
            return torch.from_numpy(host_rng.standard_normal(tuple(like.shape))).to(like)
        return torch.randn_like(like)

    def vae_step(x):
        opt.zero_grad()
        h = enc(x)
        mu, lv = head_mu(h), head_lv(h)
        std = torch.exp(0.5 * lv)
        z = mu + std * noise(std)
        kl = -0.5 * torch.sum(1 + lv - mu * mu - lv.exp())
        if reduction == "mean":
            kl = kl / x.shape[0]
        loss = rec(dec(z), x, reduction=reduction) + beta * kl
        loss.backward()
        opt.step()
        return loss
    return vae_step


def agreement(key: str, seed: int = 0, steps: int = 3, batch=None):
    """Losses of the first ``steps`` training steps of each implementation, from the same
    weights, noise and data: {"tinyae": [...], "raw": [...], "torch": [...]}.  tinyae and raw
    must agree to rounding (same arithmetic), PyTorch to float32 accuracy."""
    bench = BENCH_BY_KEY[key]
    if batch is not None:
        bench = Bench(bench.key, bench.title, bench.builder, batch, bench.input)
    images, _ = load_images(bench.batch, seed)
    x = make_batches(images, bench, 1)[0]
    model = build_model(bench, seed)
    parts = model_parts(model)
    impls = {"raw": (raw_step(parts, seed), backend.asarray(x)), "tinyae": (tinyae_step(model), backend.asarray(x))}
    if torch is not None:
        impls["torch"] = (torch_step(parts, "cpu", seed, host_eps=True), torch.from_numpy(x))

    def number(v):
        return float(v.detach()) if hasattr(v, "detach") else float(v)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
        return {name: [number(step(xb)) for _ in range(steps)] for name, (step, xb) in impls.items()}


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------
class Clock:
    """perf_counter that first waits for queued GPU work of both frameworks (no-op on the CPU)."""

    def __init__(self, gpu: bool):
        self.gpu = gpu

    def __call__(self):
        if self.gpu:
            backend.synchronize()
            if torch is not None:
                torch.cuda.synchronize()
        return time.perf_counter()


def count_flops(step, x) -> float:
    """GEMM FLOPs per sample of one forward pass, counted from the shapes seen by every
    Linear and Conv2d during one call of ``step(x)``: 2·N·out·in for a Linear,
    2·N·F·OH·OW·C·KH·KW for a convolution."""
    seen = []
    originals = {}
    from tinyae.nn.conv import Conv2d  # noqa: PLC0415
    for cls in (nn.Linear, Conv2d):
        original = cls.forward
        originals[cls] = original

        def recorder(self, inp, _orig=original):
            out = _orig(self, inp)
            seen.append(2.0 * out.size * math.prod(self.weight.shape[1:]))
            return out
        cls.forward = recorder
    try:
        step(x)
    finally:
        for cls, original in originals.items():
            cls.forward = original
    return sum(seen) / x.shape[0]


def time_rounds(steps_by_name, batches, steps, repeat, clock):
    """Median seconds per step of each implementation: ``repeat`` rounds of ``steps`` steps each,
    implementations interleaved, order reversed every other round.  Returns (median, all)."""
    names = list(steps_by_name)
    rounds = {n: [] for n in names}
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn = steps_by_name[name]
            t0 = clock()
            for i in range(steps):
                fn(batches[i % len(batches)])
            rounds[name].append((clock() - t0) / steps)
    return {n: statistics.median(v) for n, v in rounds.items()}, rounds


def calibrate(steps_by_name, batches, warmup, round_time, clock):
    """Run the warm-up steps; return the step count that makes the slowest round ≈ round_time."""
    slowest = 0.0
    for fn in steps_by_name.values():
        for i in range(warmup):
            fn(batches[i % len(batches)])
        t0 = clock()
        k = max(2, warmup // 2)
        for i in range(k):
            fn(batches[i % len(batches)])
        slowest = max(slowest, (clock() - t0) / k)
    return max(2, min(100000, round(round_time / slowest)))


def gemm_peak(n: int, gpu: bool, reps: int = 5):
    """GFLOP/s of an n×n float32 matmul (best of ``reps``), by NumPy/CuPy and by PyTorch."""
    out = {"size": n}
    xp = backend.xp()
    rng = numpy.random.default_rng(0)
    a = backend.asarray(rng.random((n, n), dtype=numpy.float32))
    b = backend.asarray(rng.random((n, n), dtype=numpy.float32))
    clock = Clock(gpu)

    def best(fn):
        fn()
        times = []
        for _ in range(reps):
            t0 = clock()
            fn()
            times.append(clock() - t0)
        return 2.0 * n ** 3 / min(times) / 1e9

    out["tinyae_backend"] = best(lambda: xp.matmul(a, b))
    if torch is not None:
        dev = "cuda" if gpu else "cpu"
        ta, tb = torch.rand(n, n, device=dev), torch.rand(n, n, device=dev)
        out["torch"] = best(lambda: torch.matmul(ta, tb))
    out["peak"] = max(v for k, v in out.items() if k in ("tinyae_backend", "torch"))
    return out


@contextlib.contextmanager
def quiet_stderr():
    """Silence C-level stderr (PyTorch's profiler prints start/stop lines there)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_memory_tinyae(make_step, batch, gpu: bool):
    """Peak bytes held by a fresh tinyae model during its second training step: parameters,
    gradients, Adam state, activations and temporaries (the input batch excluded).
    CPU: tracemalloc (NumPy reports its data buffers to it).  GPU: growth of CuPy's pool."""
    if gpu:
        import cupy  # noqa: PLC0415  (only reached when backend.use("cupy") succeeded)
        pool = cupy.get_default_memory_pool()
        backend.synchronize()
        pool.free_all_blocks()
        base = pool.total_bytes()
        step = make_step()
        step(batch)
        step(batch)
        backend.synchronize()
        return pool.total_bytes() - base
    tracemalloc.start()
    try:
        step = make_step()
        step(batch)
        tracemalloc.reset_peak()
        step(batch)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_memory_torch(make_step, batch, gpu: bool):
    """The same for PyTorch.  CPU: the profiler's allocation events (profile_memory=True; their
    running total counts every tensor allocated since the profiler started).  GPU: growth of
    max_memory_reserved (the caching allocator's pool, like CuPy's)."""
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_reserved()
        step = make_step()
        step(batch)
        step(batch)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_reserved() - base
    from torch.profiler import ProfilerActivity, profile, record_function  # noqa: PLC0415
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step = make_step()
            step(batch)
            with record_function("bench_second_step"):
                step(batch)
    peak = None

    def walk(event, inside):
        nonlocal peak
        inside = inside or event.name == "bench_second_step"
        extra = event.extra_fields
        if inside and type(extra).__name__ == "_ExtraFields_Allocation":
            peak = max(peak or 0, extra.total_allocated)
        for child in event.children:
            walk(child, inside)
    try:
        for root in prof.profiler.kineto_results.experimental_event_tree():
            walk(root, False)
    except AttributeError:          # a PyTorch without this (private) API: report n/a
        return None
    return peak


# ---------------------------------------------------------------------------
# cProfile: where tinyae's time goes
# ---------------------------------------------------------------------------
LAYOUT_WORDS = ("im2col", "col2im", "chwn", "pad", "band", "window")   # the conv engine's copy kernels
CONV_FILES = {"_conv_engine.py", "im2col.py"}
KERNEL_FILES = {"activation.py", "losses.py", "pooling.py", "optim.py", "conv.py"}
CATEGORIES = ("GEMM", "im2col/col2im/layout", "elementwise+reductions", "Python overhead")


def _category(key):
    """Category of a Python function's *own* time (builtins are attributed to their callers)."""
    filename, _, func = key
    base = os.path.basename(filename)
    if (base == "linear.py" and func in ("forward", "backward")) or (base in CONV_FILES and func == "_gemm"):
        # x @ W.T, dy.T @ x, dy @ W are operators and numpy.dot is not a plain C function
        # (NumPy ≥ 1.25 wraps it for __array_function__): cProfile books their time here
        return "GEMM"
    if base in CONV_FILES and any(word in func for word in LAYOUT_WORDS):
        return "im2col/col2im/layout"
    if base in KERNEL_FILES and func not in ("__call__", "_check_input", "_require_cache", "_buffer",
                                             "output_size", "extra_repr", "__repr__"):
        return "elementwise+reductions"
    if base == Path(__file__).name and func in ("step", "vae_step"):
        return "elementwise+reductions"   # VAE sampling / glue arithmetic in the step itself
    return "Python overhead"


def _builtin_category(func, caller_cat):
    if any(s in func for s in ("dot", "matmul", "tensordot", "einsum")):
        return "GEMM"
    if caller_cat == "Python overhead" and any(
            s in func for s in ("ascontiguousarray", "copy", "zeros", "full", "empty", "where", "copyto",
                                "sum", "reduce", "standard_normal", "maximum", "exp", "sqrt")):
        return "elementwise+reductions"   # array work called from glue code is still array work
    return caller_cat


def profile_step(step, batches, steps):
    """cProfile ``steps`` steps; return (seconds by category, top functions by own time)."""
    prof = cProfile.Profile()
    prof.enable()
    for i in range(steps):
        step(batches[i % len(batches)])
    prof.disable()
    stats = pstats.Stats(prof).stats
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for key, (_, _, tt, _, callers) in stats.items():
        if key[0] == "~":                      # a C function: split its time over its callers
            if not callers:
                totals[_builtin_category(key[2], "Python overhead")] += tt
                continue
            for ckey, cval in callers.items():
                totals[_builtin_category(key[2], _category(ckey))] += cval[2]
        else:
            totals[_category(key)] += tt
    top = sorted(((tt, f"{os.path.basename(k[0])}:{k[2]}" if k[0] != "~" else k[2])
                  for k, (_, _, tt, _, _) in stats.items()), reverse=True)[:8]
    per_step = {k: v / steps for k, v in totals.items()}
    return per_step, [(name, tt / steps) for tt, name in top]


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def machine_info(threads, gpu):
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_model": platform.processor() or None, "logical_cpus": os.cpu_count(),
            "threads": threads, "numpy": numpy.__version__, "tinyae": tinyae.__version__,
            "backend": backend.describe_device()}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = os.getloadavg()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if threadpoolctl is not None:
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                                "threading_layer", "filepath")}
                        for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        try:       # e.g. "oneAPI Math Kernel Library Version 2024.2", "MKL-DNN v3.12.0", "CPU capability usage: AVX512"
            info["torch_build"] = [line.strip(" -") for line in torch.__config__.show().splitlines()
                                   if any(k in line for k in ("Math Kernel", "MKL-DNN", "OpenMP", "CPU capability"))]
        except Exception:  # noqa: BLE001  (purely informative)
            pass
        if gpu:
            info["gpu"] = torch.cuda.get_device_name()
    return info


def busy_warning(threads):
    """Print a warning when other processes already keep the CPUs busy; return the load average."""
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    if load[0] > 0.5:
        print(f"# warning: load average {load[0]:.1f} on {cpus} CPUs before starting: other processes are "
              "running, timings will be noisy" + (" (and multi-threaded BLAS may thrash: try --threads 1)"
                                                   if threads > 1 and load[0] + threads > cpus else ""),
              flush=True)
    return load


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="models: " + ", ".join(BENCH_BY_KEY))
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="numpy: tinyae on NumPy vs PyTorch CPU; cupy: tinyae on CuPy vs PyTorch CUDA")
    p.add_argument("--models", default="all", help="comma-separated subset of the model names below")
    p.add_argument("--repeat", type=int, default=None, help="timed rounds per model (default 9; quick 3)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per round (default: as many as take --round-time seconds)")
    p.add_argument("--round-time", type=float, default=None,
                   help="target seconds per round of the slowest implementation (default 0.3; quick 0.02)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per implementation (default 10)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS and for PyTorch (default: the usable CPUs)")
    p.add_argument("--quick", action="store_true", help="few, short rounds: a smoke test, not a measurement")
    p.add_argument("--profile", action="store_true",
                   help="also cProfile tinyae's steps and print where the time goes")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.models == "all":
        args.models = list(BENCH_BY_KEY)
    else:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in args.models if m not in BENCH_BY_KEY]
        if unknown:
            p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(BENCH_BY_KEY)}")
    args.repeat = args.repeat or (3 if args.quick else 9)
    args.warmup = args.warmup or (2 if args.quick else 10)
    args.round_time = args.round_time or (0.02 if args.quick else 0.3)
    if args.threads is None:
        try:
            args.threads = len(os.sched_getaffinity(0))
        except AttributeError:
            args.threads = os.cpu_count() or 1
    return args


def select_backend(name: str) -> bool:
    """Activate the backend; True for the GPU.  Raises BackendError when it cannot be honoured."""
    if name == "numpy":
        backend.use("numpy")
        return False
    backend.use("cupy")                       # BackendError when CuPy or the GPU is missing
    if torch is not None and not torch.cuda.is_available():
        raise BackendError("--backend cupy compares with PyTorch CUDA, but this PyTorch "
                           f"({torch.__version__}) has no usable CUDA device; install a CUDA build "
                           "of PyTorch or run without --backend cupy")
    return True


def run_one(bench: Bench, args, images, gpu: bool):
    dev = "cuda" if gpu else "cpu"
    host_batches = make_batches(images, bench, 2 if args.quick else 4)
    batches = [backend.asarray(b) for b in host_batches]
    model = build_model(bench, args.seed)
    parts = model_parts(model)
    impls = {"tinyae": tinyae_step(model), "raw": raw_step(parts, args.seed)}
    if torch is not None:
        t_batches = [torch.from_numpy(b).to(dev) for b in host_batches]
        t_step = torch_step(parts, dev, args.seed)
        impls["torch"] = lambda x, _s=t_step, _m={id(b): t for b, t in zip(batches, t_batches)}: _s(_m[id(x)])
    clock = Clock(gpu)
    steps = args.steps or calibrate(impls, batches, args.warmup, args.round_time, clock)
    if args.steps:
        for fn in impls.values():
            for i in range(args.warmup):
                fn(batches[i % len(batches)])
    med, rounds = time_rounds(impls, batches, steps, args.repeat, clock)

    # FLOPs from a separate copy of the model (count_flops runs one step on it)
    flops = 3.0 * count_flops(tinyae_step(build_model(bench, args.seed)), batches[0][:2])
    res = {"model": bench.key, "title": bench.title, "batch": bench.batch, "steps_per_round": steps,
           "rounds": args.repeat, "flops_per_sample": flops, "target_ratio": bench.target,
           "builder": bench.builder}
    for name, t in med.items():
        res[name] = {"step_ms": t * 1e3, "best_step_ms": min(rounds[name]) * 1e3, "samples_per_s": bench.batch / t,
                     "gflops": flops * bench.batch / t / 1e9,
                     "rounds_ms": [r * 1e3 for r in rounds[name]]}
    res["module_overhead_pct"] = 100.0 * (med["tinyae"] / med["raw"] - 1.0)
    res["module_overhead_pct_best"] = 100.0 * (min(rounds["tinyae"]) / min(rounds["raw"]) - 1.0)
    res["ratio"] = med["torch"] / med["tinyae"] if "torch" in med else None

    if not args.no_memory:
        res["tinyae"]["peak_bytes"] = peak_memory_tinyae(
            lambda: tinyae_step(build_model(bench, args.seed)), batches[0], gpu)
        if torch is not None:
            res["torch"]["peak_bytes"] = peak_memory_torch(
                lambda: torch_step(model_parts(build_model(bench, args.seed)), dev, args.seed),
                t_batches[0], gpu)
    if args.profile:
        prof_steps = max(2, min(steps, 200))
        cats, top = profile_step(impls["tinyae"], batches, prof_steps)
        res["profile"] = {"steps": prof_steps, "seconds_per_step": cats, "top": top}
    return res


def fmt_rate(v):
    return "n/a" if v is None else (f"{v / 1e3:,.1f}k" if v >= 1e4 else f"{v:,.0f}")


def fmt_mib(b):
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def table(results):
    head = ("| model | batch | tinyae samples/s | PyTorch samples/s | tinyae/PyTorch (target) "
            "| raw kernels samples/s | Module overhead (best rounds) | tinyae GFLOP/s (% peak) | PyTorch GFLOP/s (% peak) "
            "| peak MiB tinyae / PyTorch |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        t, w, raw = r["tinyae"], r.get("torch"), r["raw"]
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        if r["target_ratio"]:
            ok = "" if r["ratio"] is None else (" ✓" if r["ratio"] >= r["target_ratio"] else " ✗")
            ratio += f" (≥ {r['target_ratio']:g}{ok})"
        tg = f"{t['gflops']:.1f} ({100 * t['peak_share']:.0f}%)"
        wg = "n/a" if w is None else f"{w['gflops']:.1f} ({100 * w['peak_share']:.0f}%)"
        mem = f"{fmt_mib(t.get('peak_bytes'))} / {fmt_mib(w.get('peak_bytes') if w else None)}"
        lines.append(f"| {r['title']} | {r['batch']} | {fmt_rate(t['samples_per_s'])} | "
                     f"{fmt_rate(w['samples_per_s'] if w else None)} | {ratio} | {fmt_rate(raw['samples_per_s'])} | "
                     f"{r['module_overhead_pct']:+.1f}% ({r['module_overhead_pct_best']:+.1f}%) | {tg} | {wg} | {mem} |")
    return "\n".join(lines)


def profile_table(results):
    lines = ["| model | batch | step ms (profiled) | " + " | ".join(CATEGORIES) + " | top own-time functions |",
             "|" + "---|" * (4 + len(CATEGORIES))]
    for r in results:
        if "profile" not in r:
            continue
        cats = r["profile"]["seconds_per_step"]
        total = sum(cats.values())
        shares = " | ".join(f"{100 * cats[c] / total:.0f}%" for c in CATEGORIES)
        top = ", ".join(f"{n} {1e3 * t:.2f}" for n, t in r["profile"]["top"][:4])
        lines.append(f"| {r['title']} | {r['batch']} | {1e3 * total:.2f} | {shares} | {top} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    gpu = select_backend(args.backend)        # BackendError propagates (the CLI prints it)
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    limiter = threadpoolctl.threadpool_limits(args.threads) if threadpoolctl is not None else None
    if torch is not None:
        torch.set_num_threads(args.threads)
    try:
        print(f"# {backend.describe_device()}; PyTorch "
              f"{torch.__version__ + (' CUDA' if gpu else ' CPU') if torch is not None else 'not installed'}; "
              f"{args.threads} thread(s)",
              flush=True)
        load = busy_warning(args.threads)
        size = 512 if args.quick else (4096 if gpu else 2048)
        peak = gemm_peak(size, gpu)
        print(f"# GEMM peak (float32 {size}²): {peak['tinyae_backend']:.1f} GFLOP/s "
              f"{'CuPy' if gpu else 'NumPy'}" + (f", {peak['torch']:.1f} PyTorch" if 'torch' in peak else "")
              + "; measured again at the end, the higher value counts", flush=True)
        need = max(BENCH_BY_KEY[m].batch for m in args.models) * (2 if args.quick else 4)
        images, source = load_images(need, args.seed)
        results = []
        for key in args.models:
            res = run_one(BENCH_BY_KEY[key], args, images, gpu)
            results.append(res)
            print(f"#   {key}: tinyae {fmt_rate(res['tinyae']['samples_per_s'])}/s, "
                  f"raw {fmt_rate(res['raw']['samples_per_s'])}/s"
                  + (f", PyTorch {fmt_rate(res['torch']['samples_per_s'])}/s" if "torch" in res else ""),
                  flush=True)
        peak_end = gemm_peak(size, gpu)
        peak = {"size": size, "start": peak, "end": peak_end, "peak": max(peak["peak"], peak_end["peak"])}
        print(f"# GEMM peak used for '% peak': {peak['peak']:.1f} GFLOP/s")
        for res in results:
            for impl in ("tinyae", "raw", "torch"):
                if impl in res:
                    res[impl]["peak_share"] = res[impl]["gflops"] / peak["peak"]
        print()
        print(table(results))
        if args.profile:
            print()
            print("cProfile of tinyae's steps (share of profiled time; ms per step in the last column):")
            print(profile_table(results))
        if args.json:
            out = {"machine": dict(machine_info(args.threads, gpu), load_average_at_start=load), "data": source,
                   "settings": {k: getattr(args, k) for k in ("backend", "repeat", "steps", "round_time",
                                                              "warmup", "threads", "quick", "seed")},
                   "gemm_peak_gflops": peak, "results": results}
            Path(args.json).write_text(json.dumps(out, indent=2))
            print(f"\nwrote {args.json}")
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BackendError as exc:
        print(f"train_speed.py: {exc}", file=sys.stderr)
        sys.exit(2)
