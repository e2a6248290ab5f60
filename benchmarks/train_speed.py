#!/usr/bin/env python
"""Training throughput of tinyae against PyTorch, JAX and DeZero, on the tutorials' models.

    python benchmarks/train_speed.py --threads 2 --json speed.json     # the docs' tables
    python benchmarks/train_speed.py --quick --models dense-ae-64       # a smoke test (seconds)
    python benchmarks/train_speed.py --isolate                          # each framework in its own process
    python benchmarks/train_speed.py --backend cupy                     # CuPy vs PyTorch CUDA

What one "step" is, for every framework: zero the gradients, forward, loss, backward, Adam
update (lr 1e-3), from the same initial weights (copied from the tinyae model by name):

* ``tinyae``  the model from tinyae.models.build, trained through its interface
              (``model.loss(x)``, ``model.backward_loss()``) with tinyae.optim.Adam;
* ``raw``     the same arithmetic as straight array calls without Module objects
              (benchmarks/raw_kernels.py): tinyae/raw − 1 is the cost of the Module layer;
* ``torch``   the identical PyTorch model, torch.optim.Adam (default options), same threads;
* ``jax``     the identical model in JAX, the whole step (grad + Adam) one jit-compiled function;
* ``dezero``  the identical dense model in DeZero (benchmarks/peers.py says how float32 is kept).
JAX and DeZero are optional: when one is not installed the run says so in one line.

Fair timing (docs/performance.md, "How the benchmark measures"):

* **settle**: before every timed round the process sleeps ``--settle`` seconds (0.3 by
  default), so that the BLAS/OpenMP worker threads of the framework that ran before have
  stopped spin-waiting and given the cores back; ``--isolate`` also puts each framework in its
  own process (the parent only tells one at a time to run a round);
* **interleaved, alternating**: in each round every implementation runs ``--steps`` steps,
  the order reversed every other round, so slow drift of the machine hits all alike;
* **fresh and trained**: the rounds are timed on the freshly initialised models, then every
  implementation trains ``--train-steps`` more steps (untimed) and the rounds are timed again:
  the trained regime, where Adam's first moments of parameters whose gradient stays zero (dead
  ReLU units, always-black border pixels) have decayed into subnormal floats.  The count of
  subnormal Adam-state entries of each framework is reported;
* **spread**: every ratio is computed round by round (that round's two step times) and given
  as median (min–max) over the rounds.

FLOPs are counted analytically (GEMMs only: 2·M·N·K per forward product, ×3 for forward +
the two backward products, convolutions as their im2col GEMM); the machine's GEMM peak is a
large float32 matmul timed in the same run.  The machine (CPU model, flags, cores, BLAS) is
read from the system and printed first.

See benchmarks/README.md for every option and column, docs/performance.md for results.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import dataclasses
import gzip
import json
import math
import multiprocessing
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT, HERE):                  # run from a checkout without installing; the neighbours
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import tinyae  # noqa: E402  (before NumPy, as a user would: it sets OpenBLAS's spin time)
import numpy  # noqa: E402
from tinyae import backend, nn, optim, optim_engine  # noqa: E402
from tinyae.backend import BackendError  # noqa: E402

import peers  # noqa: E402  (benchmarks/peers.py: JAX and DeZero)
from raw_kernels import Parts, model_parts, raw_step  # noqa: E402,F401  (Parts: for importers)

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the benchmark still runs, without the PyTorch columns
    torch = None

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

MNIST_DIR = Path(os.environ.get("TINYAE_MNIST", ROOT.parent / "shared" / "data" / "mnist"))
IMPLS = ("tinyae", "raw", "torch", "jax", "dezero")
PEERS = ("torch", "jax", "dezero")


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
    target: float | None = None   # the tinyae/PyTorch ratio aimed at (CPU, 2 threads, trained): docs/performance.md


BENCHES = [
    Bench("dense-ae-64", "196-64-16-3 AE", "dense-196-64-16", 64, "14x14", 3.0),
    Bench("dense-ae-1024", "196-64-16-3 AE", "dense-196-64-16", 1024, "14x14"),
    Bench("dense-vae-64", "196-64-16-3 VAE", "vae-196-64-16", 64, "14x14", 3.0),
    Bench("dense-vae-1024", "196-64-16-3 VAE", "vae-196-64-16", 1024, "14x14"),
    Bench("ae-784-200", "784-250-16 / 16-320-784 AE", "ae-784-250-16", 200, "784", 1.3),
    Bench("ae-784-1024", "784-250-16 / 16-320-784 AE", "ae-784-250-16", 1024, "784", 1.1),
    Bench("vae-784-128", "784-400-20 VAE", "vae-784-400-20", 128, "784", 1.2),
    Bench("conv-ae-200", "conv AE", "conv-ae", 200, "1x28x28", 1.2),
]
BENCH_BY_KEY = {b.key: b for b in BENCHES}


def build_model(bench: Bench, seed: int):
    """The tinyae model, exactly as the tutorials build it."""
    from tinyae import models  # noqa: PLC0415
    return models.build(bench.builder, seed=seed)
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
# the implementations: each a step function ``step(x) -> loss`` with ``step.sync()`` (wait
# for queued device work) and ``step.adam_state()`` (the Adam moment arrays, for counting
# subnormals)
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
    step.opt = opt
    return step


def optimizer_state(opt):
    """The moment arrays of a tinyae optimizer (its flat buffers when it has them)."""
    flat = getattr(opt, "_flat_state", None)
    if flat:
        return list(flat.values())
    return [a for st in opt.state for a in st.values()]


def with_hooks(step, sync=None, adam_state=None):
    step.sync = sync or getattr(step, "sync", None) or (lambda: None)
    step.adam_state = adam_state or getattr(step, "adam_state", None) or (lambda: [])
    return step


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
        step.opt = opt
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
    vae_step.opt = opt
    return vae_step


def make_impl(name: str, bench: Bench, seed: int, gpu: bool):
    """The step function of implementation ``name`` for ``bench`` (a fresh model from ``seed``).
    Raises peers.PeerUnsupported when that framework is missing or cannot build the model."""
    model = build_model(bench, seed)
    if name == "tinyae":
        step = tinyae_step(model)
        return with_hooks(step, backend.synchronize if gpu else None, lambda: optimizer_state(step.opt))
    parts = model_parts(model)
    if name == "raw":
        step = raw_step(parts, seed)
        return with_hooks(step, backend.synchronize if gpu else None,
                          (lambda: optimizer_state(step.opt)) if hasattr(step, "opt") else None)
    if name == "torch":
        if torch is None:
            raise peers.PeerUnsupported("PyTorch is not installed")
        dev = "cuda" if gpu else "cpu"
        t_step = torch_step(parts, dev, seed)
        cache = {}

        def step(x):
            t = cache.get(id(x))
            if t is None:
                t = cache[id(x)] = (x, torch.from_numpy(backend.to_numpy(x)).to(dev))
            return t_step(t[1])
        return with_hooks(step, torch.cuda.synchronize if gpu else None,
                          lambda: [s for st in t_step.opt.state.values() for s in st.values()
                                   if getattr(s, "ndim", 0) > 0])
    if gpu:
        raise peers.PeerUnsupported(f"{name} is compared on the CPU only")
    available = peers.available()
    if name == "jax":
        if not available["jax"]:
            raise peers.PeerUnsupported("JAX is not installed (pip install jax)")
        return with_hooks(peers.jax_step(parts, seed))
    if name == "dezero":
        if not available["dezero"]:
            raise peers.PeerUnsupported("DeZero is not installed (pip install dezero)")
        return with_hooks(peers.dezero_step(parts, seed))
    raise ValueError(f"unknown implementation {name!r}")


def agreement(key: str, seed: int = 0, steps: int = 3, batch=None, impls=("raw", "tinyae", "torch")):
    """Losses of the first ``steps`` training steps of each implementation, from the same
    weights, noise and data: {"tinyae": [...], "raw": [...], "torch": [...], ...}.  tinyae and
    raw must agree to rounding (same arithmetic), the peers to float32 accuracy.  A peer that
    is missing or cannot build the model is left out."""
    bench = BENCH_BY_KEY[key]
    if batch is not None:
        bench = Bench(bench.key, bench.title, bench.builder, batch, bench.input)
    images, _ = load_images(bench.batch, seed)
    x = make_batches(images, bench, 1)[0]
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
        for name in impls:
            parts = model_parts(build_model(bench, seed))
            if name == "tinyae":
                step, xb = tinyae_step(build_model(bench, seed)), backend.asarray(x)
            elif name == "raw":
                step, xb = raw_step(parts, seed), backend.asarray(x)
            elif name == "torch":
                if torch is None:
                    continue
                step, xb = torch_step(parts, "cpu", seed, host_eps=True), torch.from_numpy(x)
            else:
                if not peers.available().get(name):
                    continue
                try:
                    step = (peers.jax_step if name == "jax" else peers.dezero_step)(parts, seed, host_eps=True)
                except peers.PeerUnsupported:
                    continue
                xb = x
            out[name] = [float(numpy.asarray(v.detach() if hasattr(v, "detach") else v)) for v in
                         (step(xb) for _ in range(steps))]
    return out


def count_subnormals(arrays):
    """(subnormal entries, all entries) over float arrays of any framework (moved to the host)."""
    sub = total = 0
    for a in arrays:
        h = a.detach().cpu().numpy() if hasattr(a, "detach") else numpy.asarray(backend.to_numpy(a)
                                                                                   if not isinstance(a, numpy.ndarray) else a)
        if h.dtype.kind != "f":
            continue
        tiny = numpy.finfo(h.dtype).tiny
        mag = numpy.abs(h)
        sub += int(numpy.count_nonzero((mag < tiny) & (mag > 0)))
        total += h.size
    return sub, total


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
        pool = backend.cupy_module().get_default_memory_pool()   # (only reached after backend.use("cupy"))
        backend.synchronize()
        pool.free_all_blocks()
        base = pool.total_bytes()
        step = make_step()
        step(batch)
        step(batch)
        backend.synchronize()
        return pool.total_bytes() - base
    warm = make_step()   # a throwaway model's step first: one-time costs (Numba's compiled Adam
    warm(batch)          # loop and its dispatcher, lazy imports) are not the model's memory
    del warm
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
# runners: one implementation of one model, in this process or in a process of its own
# ---------------------------------------------------------------------------
def limit_threads(threads: int):
    """Give NumPy's BLAS, tinyae's Adam engine and PyTorch ``threads`` threads (JAX: see
    configure_jax_threads)."""
    limiter = threadpoolctl.threadpool_limits(threads) if threadpoolctl is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    optim_engine.set_num_threads(threads)      # tinyae's Adam engine (tinyae/optim_engine.py)
    return limiter


def configure_jax_threads(threads: int):
    """XLA's CPU thread pool is sized when jax is first imported: one thread needs a flag."""
    if threads == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()


class LocalRunner:
    """Runs one implementation's steps on its own batches and reports seconds per step."""

    def __init__(self, name, bench, seed, gpu, batch_count):
        self.name, self.gpu = name, gpu
        images, self.source = load_images(bench.batch * batch_count, seed)
        self.batches = [backend.asarray(b) for b in make_batches(images, bench, batch_count)]
        self.step = make_impl(name, bench, seed, gpu)
        self.done = 0

    def run(self, steps):
        """Seconds per step over ``steps`` steps (the device synchronised before the clock stops)."""
        step, batches = self.step, self.batches
        self.step.sync()
        t0 = time.perf_counter()
        for i in range(steps):
            step(batches[(self.done + i) % len(batches)])
        step.sync()
        elapsed = time.perf_counter() - t0
        self.done += steps
        return elapsed / steps

    def subnormals(self):
        return count_subnormals(self.step.adam_state())

    def close(self):
        pass


def _worker(conn, name, key, seed, gpu, batch_count, threads, backend_name, batch=None):
    """The loop of a runner in its own process (--isolate): answers ("run", steps),
    ("subnormals",) and ("close",) over ``conn``.  ``batch``: another batch size than the model's."""
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    configure_jax_threads(threads)
    try:
        select_backend(backend_name)
        limit_threads(threads)
        bench = BENCH_BY_KEY[key]
        if batch is not None:
            bench = dataclasses.replace(bench, batch=batch)
        runner = LocalRunner(name, bench, seed, gpu, batch_count)
    except peers.PeerUnsupported as exc:
        conn.send(("unsupported", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001  (reported by the parent, which stops)
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", runner.source))
    while True:
        cmd = conn.recv()
        if cmd[0] == "run":
            conn.send(runner.run(cmd[1]))
        elif cmd[0] == "subnormals":
            conn.send(runner.subnormals())
        else:
            conn.close()
            return


class ProcessRunner:
    """A LocalRunner in a process of its own (spawned, so it shares no thread pool or heap)."""

    def __init__(self, name, bench, seed, gpu, batch_count, threads, backend_name):
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, name, bench.key, seed, gpu, batch_count,
                                                      threads, backend_name, bench.batch), daemon=True)
        self.proc.start()
        child.close()
        status, detail = self.conn.recv()
        if status == "unsupported":
            self.proc.join()
            raise peers.PeerUnsupported(detail)
        if status == "error":
            self.proc.join()
            raise RuntimeError(f"{name} worker failed: {detail}")
        self.source = detail

    def run(self, steps):
        self.conn.send(("run", steps))
        return self.conn.recv()

    def subnormals(self):
        self.conn.send(("subnormals",))
        return self.conn.recv()

    def close(self):
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(("close",))
        self.proc.join(timeout=10)


def timed_rounds(runners, steps, repeat, settle):
    """``repeat`` rounds; in each, every runner runs ``steps`` steps after a ``settle``-second
    pause, in an order reversed every other round.  Returns {name: [seconds per step, ...]}."""
    names = list(runners)
    out = {n: [] for n in names}
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            if settle:
                time.sleep(settle)
            out[name].append(runners[name].run(steps))
    return out


def spread(values):
    """{"median", "min", "max"} of a list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratio_spread(rounds, peer, base="tinyae"):
    """Per-round throughput ratios base/peer (= peer's step time / base's), median (min–max)."""
    return spread([p / b for p, b in zip(rounds[peer], rounds[base])])


# ---------------------------------------------------------------------------
# cProfile: where tinyae's time goes
# ---------------------------------------------------------------------------
ENGINE_FILE = "_conv_engine.py"   # tinyae/nn/_conv_engine.py: _gemm, and otherwise layout copies
KERNEL_FILES = {"activation.py", "losses.py", "pooling.py", "optim.py", "optim_engine.py", "conv.py",
                "dropout.py", "shape.py"}
CATEGORIES = ("GEMM", "im2col/col2im/layout", "elementwise+reductions", "Python overhead")


def _category(key):
    """Category of a Python function's *own* time (builtins are attributed to their callers)."""
    filename, _, func = key
    base = os.path.basename(filename)
    if (base == "linear.py" and func in ("forward", "backward")) or (base == ENGINE_FILE and func == "_gemm"):
        # x @ W.T, dy.T @ x, dy @ W are operators and numpy.dot is not a plain C function
        # (NumPy ≥ 1.25 wraps it for __array_function__): cProfile books their time here
        return "GEMM"
    if base == ENGINE_FILE:   # im2col_chwn, col2im_chwn, the NCHW <-> CHWN moves, padding, bands
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
# the machine, read from the system
# ---------------------------------------------------------------------------
FLAG_PREFIXES = ("avx", "fma", "amx", "sse4_2")


def cpu_description() -> dict:
    """CPU model, counts and vector flags from ``lscpu`` (or /proc/cpuinfo when it is missing)."""
    info = {}
    text = ""
    if shutil.which("lscpu"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                                  env=dict(os.environ, LC_ALL="C")).stdout
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    if not fields:                                   # no lscpu: the kernel's own description
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    fields.setdefault({"model name": "Model name", "flags": "Flags"}.get(k.strip(), k.strip()),
                                      v.strip())
    info["model"] = fields.get("Model name") or platform.processor() or "unknown"
    for key, name in (("CPU(s)", "logical_cpus"), ("Core(s) per socket", "cores_per_socket"),
                      ("Socket(s)", "sockets"), ("Thread(s) per core", "threads_per_core")):
        if fields.get(key, "").isdigit():
            info[name] = int(fields[key])
    for key, name in (("Hypervisor vendor", "hypervisor"), ("L2 cache", "l2"), ("L3 cache", "l3"),
                      ("Vendor ID", "vendor")):
        if key in fields:
            info[name] = fields[key]
    info["vector_flags"] = sorted(f for f in fields.get("Flags", "").split() if f.startswith(FLAG_PREFIXES))
    info["source"] = "lscpu" if text else "/proc/cpuinfo"
    return info


def machine_info(threads, gpu):
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu_description(), "threads": threads, "numpy": numpy.__version__,
            "tinyae": tinyae.__version__, "backend": backend.describe_device()}
    with contextlib.suppress(AttributeError):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    if threadpoolctl is not None:
        info["threadpools"] = [{k: d.get(k) for k in ("user_api", "internal_api", "version", "architecture",
                                                       "num_threads", "threading_layer", "filepath")}
                               for d in threadpoolctl.threadpool_info()]
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        try:       # e.g. "oneAPI Math Kernel Library Version 2024.2", "CPU capability usage: AVX512"
            info["torch_build"] = [line.strip(" -") for line in torch.__config__.show().splitlines()
                                   if any(k in line for k in ("Math Kernel", "MKL-DNN", "OpenMP", "CPU capability"))]
        except Exception:  # noqa: BLE001  (purely informative)
            pass
        if gpu:
            info["gpu"] = torch.cuda.get_device_name()
    for name in ("jax", "dezero"):
        if peers.available()[name]:
            with contextlib.suppress(Exception):
                from importlib.metadata import version  # noqa: PLC0415
                info[name] = version(name)
    return info


def machine_lines(info) -> list:
    """The machine as a few printable lines (what the docs' machine table is made from)."""
    cpu = info["cpu"]
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in cpu.items()
                       if k in ("logical_cpus", "cores_per_socket", "sockets", "threads_per_core"))
    lines = [f"CPU: {cpu['model']} ({cpu.get('vendor', '?')}{', ' + cpu['hypervisor'] + ' guest' if 'hypervisor' in cpu else ''})"
             f"; {counts}; usable here: {info.get('usable_cpus', '?')}; L2 {cpu.get('l2', '?')}, L3 {cpu.get('l3', '?')}"
             f" (from {cpu['source']})",
             "vector flags: " + (" ".join(cpu["vector_flags"]) or "none reported")]
    for pool in info.get("threadpools", []):
        lines.append(f"{pool['user_api']}: {pool['internal_api']} {pool.get('version') or ''} "
                     f"({pool.get('architecture') or 'n/a'} kernels, {pool['num_threads']} threads; "
                     f"{os.path.basename(pool.get('filepath') or '')})")
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    lines.append(f"OpenBLAS threads sleep after 2^{timeout or 28} idle cycles "
                 f"({'OPENBLAS_THREAD_TIMEOUT=' + timeout if timeout else 'its default'})")
    lines.append(f"NumPy {info['numpy']}, Python {info['python']}, {info['platform']}")
    if "torch" in info:
        lines.append(f"PyTorch {info['torch']} ({info['torch_threads']} threads): " + "; ".join(info.get("torch_build", [])))
    for name in ("jax", "dezero"):
        lines.append(f"{name}: {info.get(name, 'not installed')}")
    return lines


def load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def select_backend(name: str) -> bool:
    """Activate the backend; True for the GPU.  Raises BackendError when it cannot be honoured."""
    if name == "numpy":
        backend.use("numpy")
        return False
    backend.use("cupy")                       # BackendError when CuPy or the GPU is missing
    if torch is not None and not torch.cuda.is_available() and not backend.cupy_is_standin():
        raise BackendError("--backend cupy compares with PyTorch CUDA, but this PyTorch "
                           f"({torch.__version__}) has no usable CUDA device; install a CUDA build "
                           "of PyTorch or run without --backend cupy")
    return True


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def _memory_child(key, seed, impl, threads, backend_name, batch=None):
    """Peak bytes of a fresh model's second step, measured in a process of its own."""
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    gpu = select_backend(backend_name)
    limit_threads(threads)
    bench = BENCH_BY_KEY[key]
    if batch is not None:
        bench = Bench(bench.key, bench.title, bench.builder, batch, bench.input)
    images, _ = load_images(bench.batch, seed)
    x = make_batches(images, bench, 1)[0]
    if impl == "tinyae":
        return peak_memory_tinyae(lambda: tinyae_step(build_model(bench, seed)), backend.asarray(x), gpu)
    dev = "cuda" if gpu else "cpu"
    return peak_memory_torch(lambda: torch_step(model_parts(build_model(bench, seed)), dev, seed),
                             torch.from_numpy(x).to(dev), gpu)


def peak_memory(bench, args, impl, gpu, batch=None):
    if args.quick:       # the smoke test: in this process (a spawn costs seconds)
        return _memory_child(bench.key, args.seed, impl, args.threads, args.backend, batch)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_memory_child, (bench.key, args.seed, impl, args.threads, args.backend, batch))


def memory_by_batch(key, batches, args, gpu):
    """Peak MiB of tinyae and PyTorch for model ``key`` at each batch size (own processes)."""
    bench, rows = BENCH_BY_KEY[key], []
    impls = ["tinyae"] + (["torch"] if torch is not None and "torch" in args.impls else [])
    for b in batches:
        rows.append({"batch": b, **{i: peak_memory(bench, args, i, gpu, b) / 2**20 for i in impls}})
    lines = [f"Peak memory of the {bench.title} by batch size (fresh model, second step, each in "
             "a process of its own):", "", "| batch | " + " | ".join(f"{i} MiB" for i in impls) + " |",
             "|---" * (len(impls) + 1) + "|"]
    lines += ["| " + " | ".join([str(r["batch"])] + [f"{r[i]:.1f}" for i in impls]) + " |" for r in rows]
    return rows, "\n".join(lines)


def make_runners(bench, args, gpu, notes):
    runners = {}
    for name in args.impls:
        try:
            if args.isolate:
                runners[name] = ProcessRunner(name, bench, args.seed, gpu, args.batches, args.threads, args.backend)
            else:
                runners[name] = LocalRunner(name, bench, args.seed, gpu, args.batches)
        except peers.PeerUnsupported as exc:
            note = f"{name}: skipped ({exc})"
            if note not in notes:
                notes.append(note)
                print(f"# {note}", flush=True)
    return runners


def regime_result(rounds, bench, flops):
    out = {}
    for name, r in rounds.items():
        med = statistics.median(r)
        out[name] = {"step_ms": med * 1e3, "best_step_ms": min(r) * 1e3, "worst_step_ms": max(r) * 1e3,
                     "samples_per_s": bench.batch / med, "gflops": flops * bench.batch / med / 1e9,
                     "rounds_ms": [t * 1e3 for t in r]}
    out["ratios"] = {p: ratio_spread(rounds, p) for p in PEERS if p in rounds and "tinyae" in rounds}
    if "raw" in rounds and "tinyae" in rounds:
        over = [100.0 * (t / w - 1.0) for t, w in zip(rounds["tinyae"], rounds["raw"])]
        out["module_overhead_pct"] = spread(over)
    return out


def run_one(bench: Bench, args, gpu: bool, notes):
    load_start = load_average()
    runners = make_runners(bench, args, gpu, notes)
    if "tinyae" not in runners:
        raise RuntimeError("tinyae itself could not be built")
    try:
        source = runners["tinyae"].source
        for r in runners.values():                       # warm-up (JAX compiles here)
            r.run(args.warmup)
        if args.steps:
            steps = args.steps
        else:                                            # steps that make the slowest round ≈ round_time
            k = max(2, args.warmup // 2)
            slowest = max(r.run(k) for r in runners.values())
            steps = max(2, min(100000, round(args.round_time / slowest)))
        fresh = timed_rounds(runners, steps, args.repeat, args.settle)
        train_ms = {}
        for name, r in runners.items():                  # into the trained regime (not timed rounds)
            train_ms[name] = r.run(args.train_steps) * 1e3 if args.train_steps else None
        subnormals = {name: r.subnormals() for name, r in runners.items()}
        trained = timed_rounds(runners, steps, args.repeat, args.settle) if args.train_steps else None
    finally:
        for r in runners.values():
            r.close()
    flops = 3.0 * count_flops(tinyae_step(build_model(bench, args.seed)),
                              backend.asarray(make_batches(load_images(bench.batch, args.seed)[0], bench, 1)[0][:2]))
    res = {"model": bench.key, "title": bench.title, "batch": bench.batch, "steps_per_round": steps,
           "rounds": args.repeat, "flops_per_sample": flops, "target_ratio": bench.target,
           "builder": bench.builder, "data": source, "impls": list(runners), "train_steps": args.train_steps,
           "train_step_ms": train_ms, "load_average": {"start": load_start, "end": load_average()},
           "adam_subnormals": {n: {"subnormal": s, "entries": t} for n, (s, t) in subnormals.items()},
           "fresh": regime_result(fresh, bench, flops)}
    if trained is not None:
        res["trained"] = regime_result(trained, bench, flops)
    if not args.no_memory:
        res["peak_bytes"] = {"tinyae": peak_memory(bench, args, "tinyae", gpu)}
        if torch is not None and "torch" in runners:
            res["peak_bytes"]["torch"] = peak_memory(bench, args, "torch", gpu)
    if args.profile:
        runner = LocalRunner("tinyae", bench, args.seed, gpu, args.batches)
        runner.run(args.warmup + args.train_steps)       # profile the trained regime
        prof_steps = max(2, min(steps, 200))
        cats, top = profile_step(runner.step, runner.batches, prof_steps)
        res["profile"] = {"steps": prof_steps, "seconds_per_step": cats, "top": top}
    return res


def fmt_rate(v):
    return "n/a" if v is None else (f"{v / 1e3:,.1f}k" if v >= 1e4 else f"{v:,.0f}")


def fmt_mib(b):
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def fmt_spread(s, digits=2):
    if s is None:
        return "n/a"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def table(results):
    head = ("| model | batch | regime | tinyae samples/s | tinyae/PyTorch (target) | tinyae/JAX | tinyae/DeZero "
            "| Module overhead % | tinyae GFLOP/s (% peak) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        for regime in ("fresh", "trained"):
            if regime not in r:
                continue
            g = r[regime]
            t = g["tinyae"]
            ratios = g["ratios"]
            torch_cell = fmt_spread(ratios.get("torch"))
            if r["target_ratio"] and "torch" in ratios:
                ok = "✓" if ratios["torch"]["median"] >= r["target_ratio"] else "✗"
                torch_cell += f" (≥ {r['target_ratio']:g} {ok})"
            over = g.get("module_overhead_pct")
            over_cell = "n/a" if over is None else f"{over['median']:+.1f} ({over['min']:+.0f}…{over['max']:+.0f})"
            lines.append(f"| {r['title']} | {r['batch']} | {regime} | {fmt_rate(t['samples_per_s'])} | {torch_cell} | "
                         f"{fmt_spread(ratios.get('jax'))} | {fmt_spread(ratios.get('dezero'))} | {over_cell} | "
                         f"{t['gflops']:.1f} ({100 * t.get('peak_share', 0):.0f}%) |")
    return "\n".join(lines)


def detail_table(results):
    head = ("| model | batch | steps/round × rounds | trained after | subnormal Adam-state entries (" +
            " / ".join(IMPLS) + ") | peak MiB tinyae / PyTorch | load avg start → end |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        subs = []
        for name in IMPLS:
            s = r["adam_subnormals"].get(name)
            subs.append("—" if s is None else f"{100 * s['subnormal'] / max(1, s['entries']):.1f}%")
        mem = r.get("peak_bytes", {})
        la = r["load_average"]
        load = "n/a" if la["start"] is None else f"{la['start'][0]:.1f} → {la['end'][0]:.1f}"
        lines.append(f"| {r['title']} | {r['batch']} | {r['steps_per_round']} × {r['rounds']} | "
                     f"{r['train_steps']} steps | {' / '.join(subs)} | {fmt_mib(mem.get('tinyae'))} / "
                     f"{fmt_mib(mem.get('torch'))} | {load} |")
    return "\n".join(lines)


def profile_table(results):
    lines = ["| model | batch | step ms (profiled) | " + " | ".join(CATEGORIES) + " | top own-time functions (ms) |",
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="models: " + ", ".join(BENCH_BY_KEY))
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="numpy: tinyae on NumPy vs PyTorch CPU (and JAX, DeZero); cupy: CuPy vs PyTorch CUDA")
    p.add_argument("--models", default="all", help="comma-separated subset of the model names below")
    p.add_argument("--impls", default="all",
                   help="comma-separated subset of " + ",".join(IMPLS) + " (tinyae is always included)")
    p.add_argument("--repeat", type=int, default=None, help="timed rounds per regime (default 9; quick 3)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per round (default: as many as take --round-time seconds)")
    p.add_argument("--round-time", type=float, default=None,
                   help="target seconds per round of the slowest implementation (default 0.3; quick 0.02)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per implementation (default 10)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="untimed training steps between the fresh and the trained rounds "
                        "(default 1000; quick 20; 0: fresh only)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds of sleep before every timed round, for spinning BLAS/OpenMP threads "
                        "to stop (default 0.3; quick 0)")
    p.add_argument("--isolate", action="store_true",
                   help="run each implementation in its own process (the parent drives the rounds)")
    p.add_argument("--batches", type=int, default=None, help="distinct batches cycled through (default 8; quick 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS, PyTorch and JAX (default: the usable CPUs)")
    p.add_argument("--quick", action="store_true", help="few, short rounds: a smoke test, not a measurement")
    p.add_argument("--profile", action="store_true",
                   help="also cProfile tinyae's steps (trained regime) and print where the time goes")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--memory-batches", default="200,1000",
                   help="batch sizes at which the conv AE's peak memory is also measured, tinyae vs "
                        "PyTorch, each in its own process (comma-separated; '' for none; default 200,1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    p.add_argument("--markdown", metavar="PATH", help="also write the machine and the tables as Markdown")
    args = p.parse_args(argv)
    if args.models == "all":
        args.models = list(BENCH_BY_KEY)
    else:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in args.models if m not in BENCH_BY_KEY]
        if unknown:
            p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(BENCH_BY_KEY)}")
    if args.impls == "all":
        args.impls = list(IMPLS)
    else:
        wanted = [m.strip() for m in args.impls.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in IMPLS]
        if unknown:
            p.error(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(IMPLS)}")
        args.impls = ["tinyae"] + [m for m in IMPLS if m in wanted and m != "tinyae"]
    try:
        args.memory_batches = [int(b) for b in args.memory_batches.split(",") if b.strip()]
    except ValueError:
        p.error(f"--memory-batches: expected comma-separated batch sizes such as 200,1000, got "
                f"{args.memory_batches!r}")
    if any(b < 1 for b in args.memory_batches):
        p.error("--memory-batches: batch sizes must be at least 1")
    if args.quick:
        args.memory_batches = []
    args.repeat = args.repeat or (3 if args.quick else 9)
    args.warmup = args.warmup or (2 if args.quick else 10)
    args.round_time = args.round_time or (0.02 if args.quick else 0.3)
    args.train_steps = (20 if args.quick else 1000) if args.train_steps is None else args.train_steps
    args.settle = (0.0 if args.quick else 0.3) if args.settle is None else args.settle
    args.batches = args.batches or (2 if args.quick else 8)
    for name in ("repeat", "warmup", "batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.train_steps < 0 or args.settle < 0:
        p.error("--train-steps and --settle must not be negative")
    if args.threads is None:
        try:
            args.threads = len(os.sched_getaffinity(0))
        except AttributeError:
            args.threads = os.cpu_count() or 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_jax_threads(args.threads)
    gpu = select_backend(args.backend)        # BackendError propagates (the CLI prints it)
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    limiter = limit_threads(args.threads)
    try:
        info = machine_info(args.threads, gpu)
        for line in machine_lines(info):
            print(f"# {line}", flush=True)
        load = load_average()
        print(f"# {backend.describe_device()}; {args.threads} thread(s); load average at start "
              f"{'n/a' if load is None else ', '.join(f'{v:.2f}' for v in load)}; "
              f"settle {args.settle:g} s; {'one process per implementation' if args.isolate else 'one process'}; "
              f"trained regime after {args.train_steps} steps", flush=True)
        size = 512 if args.quick else (4096 if gpu else 2048)
        peak = gemm_peak(size, gpu)
        print(f"# GEMM peak (float32 {size}²): {peak['tinyae_backend']:.1f} GFLOP/s "
              f"{'CuPy' if gpu else 'NumPy'}" + (f", {peak['torch']:.1f} PyTorch" if 'torch' in peak else ""),
              flush=True)
        notes, results = [], []
        for key in args.models:
            res = run_one(BENCH_BY_KEY[key], args, gpu, notes)
            results.append(res)
            last = res.get("trained", res["fresh"])
            print(f"#   {key}: tinyae {fmt_rate(last['tinyae']['samples_per_s'])}/s; "
                  + "; ".join(f"tinyae/{p} {fmt_spread(s)}" for p, s in last["ratios"].items()), flush=True)
        peak_end = gemm_peak(size, gpu)
        peak = {"size": size, "start": peak, "end": peak_end, "peak": max(peak["peak"], peak_end["peak"])}
        for res in results:
            for regime in ("fresh", "trained"):
                for impl, v in res.get(regime, {}).items():
                    if impl in IMPLS:
                        v["peak_share"] = v["gflops"] / peak["peak"]
        md = [table(results), "", detail_table(results)]
        memory_rows = None
        if args.memory_batches and not args.no_memory and "conv-ae-200" in args.models:
            memory_rows, memory_md = memory_by_batch("conv-ae-200", args.memory_batches, args, gpu)
            md += ["", memory_md]
        if args.profile:
            md += ["", "cProfile of tinyae's steps, trained regime (share of profiled time):", "",
                   profile_table(results)]
        print()
        print("\n".join(md))
        if args.json:
            out = {"machine": dict(info, load_average_at_start=load, load_average_at_end=load_average()),
                   "settings": {k: getattr(args, k) for k in ("backend", "impls", "repeat", "steps", "round_time",
                                                              "warmup", "train_steps", "settle", "isolate",
                                                              "batches", "threads", "quick", "seed")},
                   "notes": notes, "gemm_peak_gflops": peak, "results": results,
                   "conv_ae_memory_by_batch": memory_rows}
            Path(args.json).write_text(json.dumps(out, indent=2))
            print(f"\nwrote {args.json}")
        if args.markdown:
            cmd = "python benchmarks/train_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
            body = (["`" + cmd.strip() + "`", ""] + [f"- {line}" for line in machine_lines(info)]
                    + [f"- GEMM peak (float32 {size}²): {peak['peak']:.1f} GFLOP/s"]
                    + [f"- {n}" for n in notes] + [""] + md)
            Path(args.markdown).write_text("\n".join(body) + "\n")
            print(f"wrote {args.markdown}")
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
