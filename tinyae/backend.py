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


def to_backend(a, name: str):
    """``a`` moved to backend ``name`` ("numpy" or "cupy")."""
    return asarray(a, backend=name)


def synchronize():
    """Wait for the GPU to finish queued work (no-op on NumPy). For timing."""
    if _state["name"] == "cupy" and _cupy is not None:
        _cupy.cuda.Device().synchronize()


def describe_device() -> str:
    """One line naming the backend and the device, printed by the examples at start."""
    if _state["name"] == "cupy":
        cp = _import_cupy()
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"backend cupy {cp.__version__} on GPU {dev.id}: {name}"
    import os
    return f"backend numpy {numpy.__version__} on CPU ({os.cpu_count()} cores)"
