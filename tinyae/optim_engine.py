"""The engine under :mod:`tinyae.optim`: the same update rules, run faster on the CPU.

Read :meth:`tinyae.optim.Adam.update` for the rule; it is the reference, and what the docs
quote.  This module runs *exactly that arithmetic* (same operations, same order, same
float32/float64 rounding: a test checks bit-equality) over the optimizer's flat parameter
buffer, with three differences that only change speed:

1. **Blocks.** The reference makes 13 passes over ~0.5 M numbers; each pass streams 2 MB
   through memory.  Here the buffer is cut into blocks of ``BLOCK`` numbers (a few arrays of
   a block fit in the L2 cache) and all the operations of the rule run on one block before
   the next, into one scratch buffer per thread (no allocation per step).
2. **Threads.** Blocks are spread over a small thread pool (NumPy releases the GIL inside
   each operation), for buffers large enough to pay for it (``THREAD_MIN``).
3. **No subnormal state.** A parameter whose gradient stays exactly zero (a ReLU unit that
   never fires, an always-black border pixel) has its first moment m multiplied by β₁ = 0.9
   every step; after several hundred steps m falls below the smallest normal float
   (1.2e-38 in float32) and every operation that touches it takes a slow microcode path on
   x86 (measured: Adam's step 2× slower in the trained regime).  The engine flushes
   |m| < ``finfo.tiny`` to 0 (and the same for v).  The update such an m would make is
   ≤ lr·1e-38/ε ≈ 1e-33: far below the rounding of any parameter, so the training curve is
   unchanged (docs/performance-details.md has the measurement); frameworks that flush subnormals in
   hardware (FTZ/DAZ) do the same thing.

An optimizer picks its engine once, when it is made (``Adam(..., engine="numba")``, shown in
its repr); :func:`default` is the choice when it says nothing:

* ``"numba"`` (the default when the optional Numba package is installed, ``pip install
  'tinyae[fast]'``): the rule as one compiled loop, each number read and written once
  (4 arrays in, 3 out, instead of the reference's 13 passes), on one thread (see
  :func:`_numba_kernel` for why); compiled on first use and cached on disk;
* ``"reference"`` (the default without Numba): every step calls
  :meth:`~tinyae.optim.Adam.update` itself, subnormals and all;
* ``"blocks"``: NumPy only, points 1–3 above.  Not the default: on the AMD EPYC the docs'
  tables come from it took 1.6–2.3× *longer* than the reference for 457k parameters (its
  flushes add six passes, and 28 blocks × 16 ufunc calls cost ~0.7 ms of call overhead);
  it paid off on an Intel Xeon, where subnormal arithmetic is far slower.

The environment variable ``TINYAE_OPTIM_ENGINE`` sets the default.  Why these two
(and not numexpr, which was measured too): docs/performance-details.md, "Adam's engine".  The GPU
path is separate: CuPy's fused ElementwiseKernel (:func:`tinyae.optim._fused_adam`).
"""
from __future__ import annotations

import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy

__all__ = ["default", "check", "available", "set_num_threads", "adam_step", "BLOCK", "THREAD_MIN"]

BLOCK = 16384            # numbers per block: 64 KiB in float32; ~5 arrays of it stay in L2
THREAD_MIN = 1 << 17     # below ~131k numbers one thread is faster (pool hand-off ~20 µs)
ENGINES = ("numba", "blocks", "reference")

_state = {"pool": None, "workers": 0}
_local = threading.local()


def available() -> list:
    """The engines this process can use (Numba's only when it is installed)."""
    out = ["blocks", "reference"]
    if importlib.util.find_spec("numba") is not None:
        out.insert(0, "numba")
    return out


def check(name, where: str = "tinyae.optim_engine") -> str:
    """``name`` if it is an engine this process can run ("numba", "blocks" or "reference"),
    else a ValueError saying what to choose."""
    if name not in ENGINES:
        raise ValueError(f"{where}: unknown engine {name!r}; choose one of {ENGINES}")
    if name not in available():
        raise ValueError(f"{where}: engine {name!r} needs the numba package "
                         "(pip install numba, or pip install 'tinyae[fast]')")
    return name


def default() -> str:
    """The engine an optimizer gets when it names none: $TINYAE_OPTIM_ENGINE, else "numba"
    if installed, else "reference"."""
    env = os.environ.get("TINYAE_OPTIM_ENGINE")
    if env:
        return check(env, "$TINYAE_OPTIM_ENGINE")
    return "numba" if "numba" in available() else "reference"


def set_num_threads(n):
    """Threads for the "blocks" engine's large buffers; the Numba loop runs on one thread
    (default, and after ``set_num_threads(None)``: $TINYAE_NUM_THREADS, else $OMP_NUM_THREADS
    or $OPENBLAS_NUM_THREADS — the examples' BLAS setting —, else the usable CPUs; at most 8)."""
    if n is None:
        _state.pop("threads", None)
        return
    if int(n) < 1:
        raise ValueError(f"tinyae.optim_engine.set_num_threads: need at least 1 thread, got {n}")
    _state["threads"] = int(n)


def _threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    n = _state.get("threads")
    if n is None:
        env = next((os.environ[k] for k in ("TINYAE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                    if os.environ.get(k, "").strip().isdigit()), None)
        n = int(env) if env else cpus
    return max(1, min(n, cpus, 8))


def _pool(workers):
    """The thread pool (a new one after a fork: the parent's threads do not exist in a child)."""
    if _state["pool"] is None or _state["workers"] != workers or _state.get("pid") != os.getpid():
        if _state["pool"] is not None and _state.get("pid") == os.getpid():
            _state["pool"].shutdown(wait=True)
        _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinyae-optim")
        _state["workers"], _state["pid"] = workers, os.getpid()
    return _state["pool"]


def _scratch(n, dtype):
    buf = getattr(_local, "buf", None)
    if buf is None or buf.dtype != dtype or buf.size < n:
        buf = _local.buf = numpy.empty(max(n, BLOCK), dtype=dtype)
        _local.mask = numpy.empty(max(n, BLOCK), dtype=bool)
    return buf[:n], _local.mask[:n]


def _flush(a, t, mask, tiny):
    """a[|a| < tiny] = 0 without branches (t, mask: scratch of a's size)."""
    numpy.abs(a, out=t)
    numpy.greater_equal(t, tiny, out=mask)
    numpy.multiply(a, mask, out=a)


def _adam_block(p, g, m, v, c):
    """The rule of Adam.update on one block, in the same operations and order."""
    b1, one_m_b1, b2, one_m_b2, step_size, bias2_sqrt, eps, tiny = c
    t, mask = _scratch(p.size, p.dtype)
    m *= b1                                   # m ← β₁ m + (1 − β₁) g
    numpy.multiply(g, one_m_b1, out=t)
    m += t
    v *= b2                                   # v ← β₂ v + (1 − β₂) g²
    numpy.multiply(g, g, out=t)
    t *= one_m_b2
    v += t
    _flush(m, t, mask, tiny)
    _flush(v, t, mask, tiny)
    numpy.sqrt(v, out=t)                      # θ ← θ − step_size · m / (√v / √(1 − β₂ᵗ) + ε)
    t /= bias2_sqrt
    t += eps
    numpy.divide(m, t, out=t)
    t *= step_size
    p -= t


def _run_blocks(fn, arrays, consts):
    n = arrays[0].size
    starts = range(0, n, BLOCK)
    workers = _threads() if n >= THREAD_MIN else 1

    def work(k):
        for s in starts[k::workers]:
            e = s + BLOCK
            fn(*(a[s:e] for a in arrays), consts)

    if workers == 1:
        work(0)
        return
    for f in [_pool(workers).submit(work, k) for k in range(workers)]:
        f.result()


_NUMBA = {}


def _numba_kernel():
    """The compiled Adam loop; built on first use, cached on disk by Numba.

    One thread, on purpose.  Compiled with ``parallel=True`` (``prange`` over Numba's thread
    pool), inside a training step, it made the 784 AE's step 3× slower (4.3 → 13.9 ms on
    2 vCPUs): Numba's workers and OpenBLAS's, which spin for a while after each matrix
    product, fight for the same cores.  And one build only: Numba's disk cache files a
    function by module, name and line, not by compile options, so a serial and a parallel
    build of this same function loaded each other's machine code."""
    if not _NUMBA:
        import numba  # noqa: PLC0415

        def adam(p, g, m, v, b1, c1, b2, c2, s, bc, eps, tiny):
            zero = tiny - tiny                  # a 0 of the arrays' dtype
            for i in range(p.size):
                mi = m[i] * b1 + g[i] * c1      # the rule of Adam.update, each operation rounded
                gi = g[i]                       # as there (Numba contracts nothing into FMAs
                vi = v[i] * b2 + (gi * gi) * c2     # without fastmath)
                if abs(mi) < tiny:
                    mi = zero
                if vi < tiny:
                    vi = zero
                m[i] = mi
                v[i] = vi
                p[i] -= (mi / (numpy.sqrt(vi) / bc + eps)) * s

        # error_model="numpy": Numba's default ("python") tests every division for a zero
        # divisor so that it can raise ZeroDivisionError, and that test keeps the loop from
        # being vectorised.  Here the divisor √v/√(1 − β₂ᵗ) + ε is never 0 (ε > 0), and IEEE
        # division gives the same bits either way.
        _NUMBA["adam"] = numba.njit(cache=True, nogil=True, error_model="numpy")(adam)
    return _NUMBA["adam"]


def adam_step(engine, param, grad, m, v, *, b1, b2, step_size, bias2_sqrt, eps):
    """Run Adam's update with ``engine`` ("numba" or "blocks") on 1-D contiguous NumPy arrays
    (``grad`` already holds any weight decay).  The constants are rounded to the arrays'
    dtype exactly as NumPy rounds a Python float in ``array * x``."""
    f = param.dtype.type
    consts = (f(b1), f(1 - b1), f(b2), f(1 - b2), f(step_size), f(bias2_sqrt), f(eps),
              f(numpy.finfo(param.dtype).tiny))
    if engine == "numba":
        _numba_kernel()(param, grad, m, v, *consts)
    elif engine == "blocks":
        _run_blocks(_adam_block, (param, grad, m, v), consts)
    else:
        raise ValueError(f"tinyae.optim_engine.adam_step: engine {engine!r} is not a CPU engine "
                         "(\"numba\" or \"blocks\"; \"reference\" is Adam.update itself)")
