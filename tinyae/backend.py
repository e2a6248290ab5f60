"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every kernel in tinyae is written once against an array module ``xp`` that is
either :mod:`numpy` or :mod:`cupy`::

    xp = get_array_module(x)      # numpy for numpy arrays, cupy for cupy arrays
    y = xp.maximum(x, 0)

This is the only module that imports CuPy.  ``use("cupy")`` switches the
*active* backend, which decides where new parameters and data batches live;
arrays that already exist keep their device until moved with
:func:`asarray` / :func:`to_numpy` or ``Module.to``.
"""
from __future__ import annotations

import os

import numpy

__all__ = [
    "BackendError",
    "get_array_module",
    "use",
    "current",
    "xp",
    "asarray",
    "to_numpy",
    "to_backend",
    "is_cupy_array",
    "default_dtype",
    "set_default_dtype",
    "describe_device",
    "synchronize",
    "cupy_available",
    "set_num_threads",
    "device_noise",
    "asarray_like",
    "cupy_module",
    "cupy_is_standin",
]

INSTALL_HINT = (
    "Install CuPy for your CUDA version: pip install 'tinyae[cuda12]' (CUDA 12.x) "
    "or pip install 'tinyae[cuda13]' (CUDA 13.x), or run with --backend numpy."
)


class BackendError(RuntimeError):
    """The requested backend cannot be used on this machine."""


_state = {"name": "numpy", "dtype": numpy.float32}
_cupy = None  # the cupy module, once imported successfully


def _import_cupy():
    """Import CuPy and check a CUDA device exists; raise a clear error if not."""
    global _cupy
    if _cupy is not None:
        return _cupy
    if os.environ.get("TINYAE_FAKE_CUPY") == "1":   # a developer tool: tinyae/_cupy_standin.py
        from . import _cupy_standin  # noqa: PLC0415
        _cupy = _cupy_standin
        return _cupy
    try:
        import cupy  # noqa: PLC0415  (the one place tinyae imports cupy)
    except ImportError as exc:
        raise BackendError(f"backend 'cupy' needs the CuPy package, which is not installed ({exc}). "
                           + INSTALL_HINT) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing, no device, broken install
        raise BackendError(f"backend 'cupy': CuPy is installed but no CUDA device is usable ({exc}). "
                           "Check `nvidia-smi` and that the CuPy wheel matches your CUDA driver; "
                           + INSTALL_HINT) from None
    if count < 1:
        raise BackendError("backend 'cupy': CuPy is installed but no CUDA device was found. "
                           "Run with --backend numpy on this machine.")
    _cupy = cupy
    return cupy


def cupy_module():
    """The module ``use("cupy")`` puts behind the backend: CuPy, or with ``TINYAE_FAKE_CUPY=1``
    the CPU stand-in (tinyae/_cupy_standin.py). Raises :class:`BackendError` like ``use``."""
    return _import_cupy()


def cupy_is_standin() -> bool:
    """True when ``TINYAE_FAKE_CUPY=1`` replaces CuPy by the CPU stand-in (no GPU, no CUDA)."""
    return os.environ.get("TINYAE_FAKE_CUPY") == "1"


def cupy_available() -> bool:
    """True when CuPy imports and a CUDA device is present."""
    try:
        _import_cupy()
    except BackendError:
        return False
    return True


def use(name: str):
    """Make ``name`` ("numpy" or "cupy") the active backend and return its array module."""
    if name not in ("numpy", "cupy"):
        raise ValueError(f"unknown backend {name!r}: expected 'numpy' or 'cupy'")
    if name == "cupy":
        _import_cupy()
    _state["name"] = name
    return xp()


def current() -> str:
    """Name of the active backend: "numpy" or "cupy"."""
    return _state["name"]


def xp():
    """The array module of the active backend (numpy or cupy)."""
    return _cupy if _state["name"] == "cupy" else numpy


def is_cupy_array(a) -> bool:
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def get_array_module(*arrays):
    """numpy, or cupy if any of ``arrays`` is a CuPy array (like ``cupy.get_array_module``)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return numpy


def default_dtype():
    """The dtype new parameters and batches get (float32 unless changed)."""
    return _state["dtype"]


def set_default_dtype(dtype):
    dtype = numpy.dtype(dtype)
    if dtype not in (numpy.float32, numpy.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _state["dtype"] = dtype.type


def asarray(a, dtype=None, backend: str | None = None):
    """``a`` as an array of the given (default: active) backend, copying across devices if needed."""
    name = backend or _state["name"]
    if name == "cupy":
        return _import_cupy().asarray(a, dtype=dtype)
    if is_cupy_array(a):
        a = a.get()
    return numpy.asarray(a, dtype=dtype)


def to_numpy(a):
    """A NumPy copy/view of ``a`` (a device→host copy for CuPy arrays)."""
    if is_cupy_array(a):
        return a.get()
    return numpy.asarray(a)


def asarray_like(a, like):
    """``a`` (a host or device array) on ``like``'s device with ``like``'s dtype."""
    xp = get_array_module(like)
    return xp.asarray(to_numpy(a) if xp is numpy else a, dtype=like.dtype)


def device_noise(rng: numpy.random.Generator, kind: str, shape, like, p: float = 0.0):
    """Noise drawn on the host from ``rng`` and put on ``like``'s device with its dtype.

    kind "normal": ε ~ N(0, 1);  kind "keep": a 0/1 mask, 1 with probability 1 − p.
    Drawn on the host, so one seed gives the same noise on NumPy and CuPy (the models'
    corruption, the VAE's ε, the stochastic contractive estimator's ε).
    """
    if kind == "normal":
        host = rng.standard_normal(shape)
    elif kind == "keep":
        host = rng.random(shape) >= p
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return get_array_module(like).asarray(host, dtype=like.dtype)


def to_backend(a, name: str):
    """``a`` moved to backend ``name`` ("numpy" or "cupy")."""
    return asarray(a, backend=name)


def synchronize():
    """Wait for the GPU to finish queued work (no-op on NumPy). For timing."""
    if _state["name"] == "cupy" and _cupy is not None:
        _cupy.cuda.Device().synchronize()


_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def set_num_threads(n: int) -> int:
    """Use ``n`` CPU threads from now on: in NumPy's BLAS (and any other BLAS or OpenMP
    library already loaded, e.g. SciPy's), and in the optimizer engine
    (:func:`tinyae.optim_engine.set_num_threads`).  Returns ``n``.

    Safe to call after NumPy is imported, at any time: an OpenBLAS or MKL reads its
    ``*_NUM_THREADS`` variable only once, when the shared library is loaded (that is, when
    NumPy is imported), so changing the variable later does nothing; but each library also
    has a run-time setter (``openblas_set_num_threads``, ``MKL_Set_Num_Threads``,
    ``omp_set_num_threads``) that resizes its pool for every later call.
    :func:`threadpoolctl.threadpool_limits` finds the libraries loaded in this process and
    calls those setters.  For a library loaded *after* this call (SciPy's own OpenBLAS on
    its first import) and for child processes, the variables ``OPENBLAS_NUM_THREADS``,
    ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set to ``n`` as well.
    """
    import os
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"tinyae.backend.set_num_threads: need a whole number of threads >= 1, got {n!r}")
    try:
        import threadpoolctl  # noqa: PLC0415  (installed with scikit-learn; only needed here)
    except ImportError:
        raise BackendError("tinyae.backend.set_num_threads needs the threadpoolctl package to limit the "
                           "BLAS threads of a running process: pip install threadpoolctl") from None
    for var in _BLAS_ENV:
        os.environ[var] = str(n)
    threadpoolctl.threadpool_limits(limits=n)   # applied now; stays until changed (no `with`)
    from . import optim_engine  # noqa: PLC0415  (optim_engine imports nothing of tinyae)
    optim_engine.set_num_threads(n)
    return n


def describe_device() -> str:
    """One line naming the backend and the device, printed by the examples at start."""
    if _state["name"] == "cupy":
        cp = _import_cupy()
        if getattr(cp, "IS_STANDIN", False):
            return f"backend cupy: {cp.DESCRIPTION} (numpy {numpy.__version__})"
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"backend cupy {cp.__version__} on GPU {dev.id}: {name}"
    import os
    return f"backend numpy {numpy.__version__} on CPU ({os.cpu_count()} cores)"
