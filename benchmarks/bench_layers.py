"""Forward+backward time of tinyae's convolution, pooling and upsampling layers next to
PyTorch CPU, at the sizes of an MNIST convolutional autoencoder (batch 200, 1 -> 4 -> 8
channels, 28×28 and 14×14 maps, 5×5 kernels).

    python benchmarks/bench_layers.py [--threads 2] [--repeat 30] [--batch 200] [--dtype float32]

Threads.  Both libraries get the same number of threads: PyTorch through
``torch.set_num_threads``; NumPy's BLAS (OpenBLAS or MKL) through ``threadpoolctl`` when it
is installed, and otherwise through the OMP/OPENBLAS/MKL_NUM_THREADS environment
variables, which this script sets *before* importing NumPy (so they only work when the
script is run directly, not imported).  The threads really used are printed.

Method.  Both sides get the same weights and inputs.  One step is ``y = layer(x)`` then the
backward pass giving dL/dx and the parameter gradients (``layer.backward(dy)`` for tinyae,
``y.backward(dy)`` for torch, with ``x.requires_grad=True`` so both compute dL/dx).  The two
libraries alternate step by step (interleaved, so a slow moment of a shared machine hits
both) and the table shows the median of ``--repeat`` steps after warm-up.  Ratio = tinyae
time / torch time (below 1: tinyae is faster); "best-of ratio" divides the fastest steps
instead, which is steadier when other processes share the cores.  "im2col MiB" is the size of the im2col
matrix (C*KH*KW rows of OH*OW*N numbers) of the convolution; for ConvTranspose2d, of the
im2col of dy in its backward (its forward's GEMM output before col2im has the same size).
"band MiB" is what is really allocated at a time: im2col is built a band of output rows
at a time (``tinyae.nn._conv_engine.BAND_BYTES``), so the whole matrix never exists at once.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and for torch (default 2)")
    p.add_argument("--repeat", type=int, default=30, help="timed steps per layer and library (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--batch", type=int, default=200, help="batch size N (default 200)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--only", default=None, help="run only layers whose name contains this text")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # must happen before NumPy loads its BLAS
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinyae import backend  # noqa: E402
from tinyae.nn import _conv_engine as engine  # noqa: E402
from tinyae.nn.conv import Conv2d, ConvTranspose2d  # noqa: E402
from tinyae.nn.pooling import AvgPool2d, MaxPool2d, MaxUnpool2d, Upsample  # noqa: E402


def im2col_nbytes(c, kh, kw, oh, ow, n, dtype) -> int:
    """Bytes of an im2col matrix of C*KH*KW rows and OH*OW*N columns."""
    return int(c * kh * kw * oh * ow * n * np.dtype(dtype).itemsize)


def limit_threads(n):
    """Limit NumPy's BLAS to n threads; returns a description of what is in force."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return f"BLAS threads from environment variables: {os.environ.get('OPENBLAS_NUM_THREADS')}"
    limit_threads.keep = threadpool_limits(n)  # keep the limiter alive for the whole run
    pools = [f"{d['internal_api']}={d['num_threads']}" for d in threadpool_info()]
    return "threadpoolctl: " + ", ".join(pools)


def layer_specs(n):
    """(name, tinyae factory, torch factory, input shape, im2col shape (C, KH, KW, OH, OW, N) or None)."""
    import torch.nn as tnn

    def conv(c, f, k, s, p, h):
        oh = (h + 2 * p - k) // s + 1
        return (f"Conv2d({c},{f},{k},s={s},p={p})", lambda: Conv2d(c, f, k, s, p, rng=0),
                lambda: tnn.Conv2d(c, f, k, s, p), (n, c, h, h), (c, k, k, oh, oh, n))

    def convT(c, f, k, s, p, op, h):
        return (f"ConvTranspose2d({c},{f},{k},s={s},p={p},op={op})",
                lambda: ConvTranspose2d(c, f, k, s, p, op, rng=0),
                lambda: tnn.ConvTranspose2d(c, f, k, s, p, op), (n, c, h, h), (f, k, k, h, h, n))

    return [
        conv(1, 4, 5, 1, 2, 28),            # encoder, first layer
        conv(4, 8, 5, 1, 2, 14),            # encoder, after 2×2 pooling
        conv(1, 4, 5, 2, 2, 28),            # strided convolution downsampling 28 -> 14
        conv(4, 8, 5, 2, 2, 14),            # strided convolution downsampling 14 -> 7
        conv(8, 4, 5, 1, 2, 14),            # decoder, after upsampling
        conv(4, 1, 5, 1, 2, 28),            # decoder output
        convT(8, 4, 5, 2, 2, 1, 7),         # decoder, 7 -> 14
        convT(4, 1, 5, 2, 2, 1, 14),        # decoder, 14 -> 28
        ("MaxPool2d(2)", lambda: MaxPool2d(2), lambda: tnn.MaxPool2d(2), (n, 4, 28, 28), None),
        ("MaxPool2d(2)", lambda: MaxPool2d(2), lambda: tnn.MaxPool2d(2), (n, 8, 14, 14), None),
        ("AvgPool2d(2)", lambda: AvgPool2d(2), lambda: tnn.AvgPool2d(2), (n, 4, 28, 28), None),
        ("MaxUnpool2d(2)", lambda: MaxUnpool2d(2), lambda: tnn.MaxUnpool2d(2), (n, 8, 7, 7), None),
        ("Upsample(2)", lambda: Upsample(2), lambda: tnn.Upsample(scale_factor=2), (n, 8, 7, 7), None),
        ("Upsample(2)", lambda: Upsample(2), lambda: tnn.Upsample(scale_factor=2), (n, 4, 14, 14), None),
    ]


def bench_one(spec, args, rng):
    import torch

    name, make_ours, make_torch, shape, cols_shape = spec
    dtype = np.dtype(args.dtype)
    ours, theirs = make_ours().to(dtype=dtype), make_torch().to(getattr(torch, args.dtype))
    with torch.no_grad():  # same weights on both sides
        for pname, p in ours.named_parameters():
            getattr(theirs, pname).copy_(torch.from_numpy(p.data))
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()

    if isinstance(ours, MaxUnpool2d):  # its input is a pooled map and the pooling's indices
        big = rng.permutation(shape[0] * shape[1] * shape[2] * 2 * shape[3] * 2).astype(dtype)
        big = big.reshape(shape[0], shape[1], shape[2] * 2, shape[3] * 2)
        x, idx = MaxPool2d(2, return_indices=True)(big)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        idx_t = torch.from_numpy(idx)
        ours_fwd, torch_fwd = (lambda: ours(x, idx)), (lambda: theirs(xt, idx_t))
    else:
        ours_fwd, torch_fwd = (lambda: ours(x)), (lambda: theirs(xt))
    y = ours_fwd()
    dy = rng.standard_normal(y.shape).astype(dtype)
    dyt = torch.from_numpy(dy.copy())

    def step_ours():
        ours_fwd()
        ours.backward(dy)

    def step_torch():
        xt.grad = None
        torch_fwd().backward(dyt)

    for _ in range(args.warmup):
        step_ours()
        step_torch()
    t_ours, t_torch = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        step_ours()
        t1 = time.perf_counter()
        step_torch()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_torch.append(t2 - t1)
    ms_ours, ms_torch = 1e3 * float(np.median(t_ours)), 1e3 * float(np.median(t_torch))
    best_ratio = min(t_ours) / min(t_torch)
    mb = band = None
    if cols_shape:
        c, kh, kw, oh, ow, n = cols_shape
        mb = im2col_nbytes(*cols_shape, dtype) / 2**20
        r0, r1 = engine.row_bands(oh, im2col_nbytes(c, kh, kw, 1, ow, n, dtype))[0]
        band = im2col_nbytes(c, kh, kw, r1 - r0, ow, n, dtype) / 2**20
    return name, shape, ms_ours, ms_torch, best_ratio, mb, band


def main(args):
    import torch

    torch.set_num_threads(args.threads)
    blas = limit_threads(args.threads)
    backend.set_default_dtype(args.dtype)
    print(f"# tinyae layer benchmark: N={args.batch}, {args.dtype}, {args.repeat} steps (median), "
          f"forward+backward")
    print(f"# numpy {np.__version__} ({blas}); torch {torch.__version__} "
          f"(torch.get_num_threads()={torch.get_num_threads()}); {backend.describe_device()}")
    print()
    print("| layer | input shape | tinyae ms | torch ms | ratio | best-of ratio | im2col MiB | band MiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    for spec in layer_specs(args.batch):
        if args.only and args.only not in spec[0]:
            continue
        name, shape, a, b, best, mb, band = bench_one(spec, args, rng)
        mb_s, band_s = (f"{v:.1f}" if v is not None else "-" for v in (mb, band))
        cells = [name, "×".join(map(str, shape)), f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}", f"{best:.2f}", mb_s, band_s]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(ARGS)
