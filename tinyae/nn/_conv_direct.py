"""Convolution without im2col: the "direct" route of the engine (private; needs Numba).

The im2col route turns a convolution into one matrix product, and that is the right trade
when the product is big.  In an MNIST autoencoder it is not: with 1 to 16 channels the
inner dimension of the product (C, or F on the flipped route) is 1 to 16, so the GEMM
reads and writes a matrix of C*KH*KW (or F*KH*KW) rows × OH*OW*N columns — up to 90 MB —
to do a few FLOPs per number.  The layer is bound by memory, not by arithmetic.

Here the sums are computed where the numbers are, in the engine's batch-last layout
(``tinyae.nn._conv_engine``)::

    y[f, oh, ow, :] = Σ_{c,i,j} w[f, c, i, j] · xpad[c, oh+i, ow+j, :]        (stride 1)

Each term is a whole row of N numbers (the batch) times one weight: a loop the compiler
turns into SIMD instructions, over rows that stay in the L1 cache.  Four filters are done
at once, so each row of ``xpad`` is loaded once for four sums.  The backward pass needs
the same two sums as the im2col level (tests/test_conv_levels.py checks all three levels):

* dx is the *full* correlation of dy (padded by K−1−P) with the kernel turned by 180° and
  F, C swapped — the same kernel, :func:`correlate`;
* dw[f, c, i, j] = Σ_{oh,ow,n} dy[f, oh, ow, n] · xpad[c, oh+i, ow+j, n] — :func:`weight_grad`,
  a sum per lane n over the output pixels, then over the lanes.

Both cores.  The work is cut into independent tasks (blocks of four filters × output rows;
for dw, filters × input channels × kernel rows), grouped into a few chunks per thread; the
calling thread and the optimizer engine's pool of Python threads take the chunks in turn.
The compiled loops release the GIL.  Python threads wait on a lock, not in a spin loop, so
they take no core from OpenBLAS's threads; OpenBLAS's own threads spin after each matrix
product (~0.1 s by default; tinyae/__init__.py shortens it to ~0.4 ms when it can, and
:func:`preferred` keeps the GEMM routes when it could not).  Every task writes numbers
no other task writes, in a fixed order, so the result does not depend on the thread count.

Numba is optional (the ``fast`` extra).  Without it, and for CuPy arrays, the engine takes
its GEMM routes instead (:func:`usable`).
"""
from __future__ import annotations

import functools
import importlib.util
import os

import numpy

_KERNELS = {}


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """True when Numba is installed (the direct route can run)."""
    return importlib.util.find_spec("numba") is not None


_TIMEOUT = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "").strip()
BLAS_SLEEPS_SOON = _TIMEOUT.isdigit() and int(_TIMEOUT) <= 24
"""Whether OpenBLAS's idle threads go to sleep within ~2^24 cycles (read when tinyae is
imported; tinyae/__init__.py sets 20 when it is imported before NumPy).  When they spin for
the default ~0.1 s instead, they hold the second core through every convolution, and the
direct route on two threads was measured 14 % *slower* per conv AE step than the GEMM routes
(whose own copies run on one thread): see :func:`preferred`."""


def preferred() -> bool:
    """Whether layers should take the direct route (asked once, by ``conv2d_route``): Numba
    is installed, and either the engine runs on one thread or OpenBLAS's idle threads sleep
    soon (:data:`BLAS_SLEEPS_SOON`).  Measured per conv AE step (batch 200, trained), direct
    vs GEMM routes: 0.95× the time on 1 thread, 0.79× on 2 threads with the short spin,
    1.14× on 2 threads with OpenBLAS's default spin — the case this rule leaves out."""
    return available() and (BLAS_SLEEPS_SOON or _threads() == 1)


def usable(*arrays) -> bool:
    """True when these arrays can go through the compiled loops: NumPy arrays of float32 or
    float64, and Numba installed."""
    return available() and all(type(a) is numpy.ndarray and a.dtype.kind == "f" and a.itemsize in (4, 8)
                               for a in arrays)


# --- threads ------------------------------------------------------------------------------------
def _threads() -> int:
    from ..optim_engine import _threads as optim_threads   # one setting for both engines
    return optim_threads()


def _pool(threads):
    from ..optim_engine import _pool as optim_pool          # and one pool: they never run at once
    return optim_pool(threads)


def _run_split(kernel, args, tasks):
    """Run ``kernel(*args, t0, t1)`` over tasks 0..tasks-1 on all threads.

    The tasks are cut into a few chunks per thread (in order), and each thread takes the next
    chunk when it is done with one, so a thread slowed down by another process does not keep
    the others waiting.  Which thread runs a chunk changes nothing in the result: every chunk
    writes its own numbers."""
    threads = min(_threads(), tasks)
    if threads <= 1:
        kernel(*args, 0, tasks)
        return
    count = min(tasks, 4 * threads)
    edges = [tasks * k // count for k in range(count + 1)]
    chunks = iter(range(count))          # next() on it is atomic under the GIL

    def work():
        for k in chunks:
            kernel(*args, edges[k], edges[k + 1])
    futures = [_pool(threads).submit(work) for _ in range(threads - 1)]
    work()
    for fut in futures:
        fut.result()


# --- the compiled loops ---------------------------------------------------------------------------
def _compile():
    """Build the two loops on first use (cached on disk by Numba).

    ``fastmath={"contract"}`` lets ``acc + w * x`` be one fused multiply-add; nothing else is
    reordered.  ``error_model="numpy"``: no zero-division checks in the loops."""
    if _KERNELS:
        return _KERNELS
    import numba  # noqa: PLC0415
    jit = numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")

    def correlate_rows(xpad, w, y, t0, t1):
        # tasks: (block of 4 filters, output row); y[f, oh, ow, :] = Σ w[f, c, i, j] xpad[c, oh+i, ow+j, :]
        nf, nc, kh, kw = w.shape
        _, oh_count, ow_count, n = y.shape
        for t in range(t0, t1):
            f0, oh = 4 * (t // oh_count), t % oh_count
            if f0 + 4 <= nf:
                for ow in range(ow_count):
                    a0, a1, a2, a3 = y[f0, oh, ow], y[f0 + 1, oh, ow], y[f0 + 2, oh, ow], y[f0 + 3, oh, ow]
                    a0[:] = 0
                    a1[:] = 0
                    a2[:] = 0
                    a3[:] = 0
                    for c in range(nc):
                        for i in range(kh):
                            for j in range(kw):
                                w0, w1, w2, w3 = w[f0, c, i, j], w[f0 + 1, c, i, j], w[f0 + 2, c, i, j], w[f0 + 3, c, i, j]
                                xr = xpad[c, oh + i, ow + j]
                                for k in range(n):
                                    xv = xr[k]
                                    a0[k] += w0 * xv
                                    a1[k] += w1 * xv
                                    a2[k] += w2 * xv
                                    a3[k] += w3 * xv
            else:                                   # the last 1-3 filters, one at a time
                for f in range(f0, nf):
                    for ow in range(ow_count):
                        acc = y[f, oh, ow]
                        acc[:] = 0
                        for c in range(nc):
                            for i in range(kh):
                                for j in range(kw):
                                    wv = w[f, c, i, j]
                                    xr = xpad[c, oh + i, ow + j]
                                    for k in range(n):
                                        acc[k] += wv * xr[k]

    def weight_grad_rows(xpad, dy, dw, t0, t1):
        # tasks: (filter f, input channel c, kernel row i); dw[f, c, i, j] =
        # Σ_{oh,ow,n} dy[f, oh, ow, n] xpad[c, oh+i, ow+j, n]: per lane n first, then over n.
        # One store stream per loop (a row of ``lanes``): with several, the compiler's
        # run-time overlap checks grow past its limit and it leaves the loop unvectorised.
        nf, oh_count, ow_count, n = dy.shape
        _, nc, kh, kw = dw.shape
        lanes = numpy.empty((kw, n), dtype=dy.dtype)
        for t in range(t0, t1):
            f, rest = t // (nc * kh), t % (nc * kh)
            c, i = rest // kh, rest % kh
            lanes[:] = 0
            for oh in range(oh_count):
                for ow in range(ow_count):
                    d = dy[f, oh, ow]
                    for j in range(kw):
                        xr, lj = xpad[c, oh + i, ow + j], lanes[j]
                        for k in range(n):
                            lj[k] += d[k] * xr[k]
            for j in range(kw):
                s = lanes[j, 0]
                for k in range(1, n):
                    s += lanes[j, k]
                dw[f, c, i, j] = s

    _KERNELS["correlate"] = jit(correlate_rows)
    _KERNELS["weight_grad"] = jit(weight_grad_rows)
    return _KERNELS


# --- subnormal floats -----------------------------------------------------------------------------
def flush_subnormals(a):
    """``a``, or a copy of it with its subnormal numbers (0 < |v| < the dtype's smallest
    normal, 1.2e-38 in float32) replaced by 0.

    A trained conv AE's sigmoid output saturates, so its backward hands the last convolution
    a dy with subnormal entries, and the products with them spread to the layers before.
    The CPU computes with subnormals many times slower: the backward of Conv2d(4, 1, 7)
    took 41 ms instead of 4, and the conv AE's epoch went from 26 s to 42 s during a
    50-epoch run.  A contribution below 1e-38 is below the last bit of any gradient of
    normal size, so the sums come out the same."""
    small = numpy.abs(a) < numpy.finfo(a.dtype).tiny
    return numpy.where(small, a.dtype.type(0), a) if small.any() else a


# --- what the engine calls ------------------------------------------------------------------------
def correlate(xpad, w, out_hw):
    """Stride-1 cross-correlation: xpad (C, Hp, Wp, N), w (F, C, KH, KW) -> y (F, OH, OW, N),
    ``y[f, oh, ow, n] = Σ_{c,i,j} w[f, c, i, j] · xpad[c, oh+i, ow+j, n]``."""
    f, n = w.shape[0], xpad.shape[3]
    xpad, w = numpy.ascontiguousarray(xpad), numpy.ascontiguousarray(w, dtype=xpad.dtype)
    y = numpy.empty((f, out_hw[0], out_hw[1], n), dtype=xpad.dtype)
    _run_split(_compile()["correlate"], (xpad, w, y), ((f + 3) // 4) * out_hw[0])
    return y


def weight_grad(xpad, dy, kernel):
    """dw (F, C, KH, KW) of a stride-1 correlation: xpad (C, Hp, Wp, N) its padded input,
    dy (F, OH, OW, N), ``dw[f, c, i, j] = Σ_{oh,ow,n} dy[f, oh, ow, n] · xpad[c, oh+i, ow+j, n]``."""
    c, f = xpad.shape[0], dy.shape[0]
    xpad, dy = numpy.ascontiguousarray(xpad), numpy.ascontiguousarray(dy, dtype=xpad.dtype)
    dw = numpy.empty((f, c, kernel[0], kernel[1]), dtype=xpad.dtype)
    _run_split(_compile()["weight_grad"], (xpad, dy, dw), f * c * kernel[0])
    return dw
