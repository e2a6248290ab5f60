"""tinyae.backend: switching backends, moving arrays, dtype defaults."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyae import backend, nn


@pytest.fixture(autouse=True)
def _restore_backend_state():
    """Every test leaves the active backend and default dtype as it found them."""
    saved = dict(backend._state)
    yield
    backend._state.clear()
    backend._state.update(saved)


needs_no_cupy = pytest.mark.skipif(backend.cupy_available(), reason="this machine has a usable CuPy")


def test_use_numpy():
    xp = backend.use("numpy")
    assert xp is np
    assert backend.current() == "numpy"
    assert backend.xp() is np


@needs_no_cupy
def test_use_cupy_without_cupy_names_cupy_and_the_install_command():
    with pytest.raises(backend.BackendError) as info:
        backend.use("cupy")
    msg = str(info.value)
    assert "CuPy" in msg
    assert "pip install 'tinyae[cuda12]'" in msg
    # a failed switch leaves the active backend alone
    assert backend.current() == "numpy" and backend.xp() is np
    assert not backend.cupy_available()


@needs_no_cupy
def test_moving_to_cupy_without_cupy_fails_loudly():
    with pytest.raises(backend.BackendError, match="CuPy"):
        backend.asarray(np.ones(3), backend="cupy")
    with pytest.raises(backend.BackendError, match="CuPy"):
        nn.Linear(2, 2).to("cupy")


def test_backend_error_is_a_runtime_error():
    assert issubclass(backend.BackendError, RuntimeError)


@pytest.mark.parametrize("name", ["torch", "CUPY", "", "jax"])
def test_unknown_backend_name(name):
    with pytest.raises(ValueError, match=r"unknown backend.*'numpy' or 'cupy'"):
        backend.use(name)
    assert backend.current() == "numpy"


@given(shape=st.lists(st.integers(0, 4), max_size=3),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8]),
       seed=st.integers(0, 2**32 - 1))
def test_asarray_to_numpy_round_trip(shape, dtype, seed):
    host = (np.random.default_rng(seed).random(tuple(shape)) * 100).astype(dtype)
    dev = backend.asarray(host)
    assert backend.get_array_module(dev) is np
    back = backend.to_numpy(dev)
    assert isinstance(back, np.ndarray) and back.dtype == host.dtype and back.shape == host.shape
    np.testing.assert_array_equal(back, host)
    np.testing.assert_array_equal(backend.to_backend(host, "numpy"), host)


def test_asarray_converts_lists_and_dtypes():
    a = backend.asarray([[1, 2], [3, 4]], dtype=np.float32)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 2)
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    b = backend.asarray(np.arange(3), dtype=np.float64)
    assert b.dtype == np.float64
    assert backend.to_numpy(3.5).shape == ()


def test_get_array_module():
    assert backend.get_array_module(np.ones(2)) is np
    assert backend.get_array_module(np.ones(2), np.zeros(3)) is np
    assert backend.get_array_module() is np
    assert backend.get_array_module(1.0, [1, 2]) is np
    assert not backend.is_cupy_array(np.ones(2))


def test_default_dtype_is_float32():
    assert backend.default_dtype() is np.float32
    assert nn.Linear(2, 3).weight.dtype == np.float32


def test_set_default_dtype():
    backend.set_default_dtype("float64")
    assert backend.default_dtype() is np.float64
    layer = nn.Linear(2, 3, rng=0)
    assert layer.weight.dtype == np.float64 and layer.bias.grad.dtype == np.float64
    backend.set_default_dtype(np.float32)
    assert backend.default_dtype() is np.float32
    with pytest.raises(ValueError, match="float32 or float64"):
        backend.set_default_dtype(np.int32)
    with pytest.raises(ValueError, match="float32 or float64"):
        backend.set_default_dtype(np.float16)
    assert backend.default_dtype() is np.float32


def test_describe_device_and_synchronize_on_numpy():
    line = backend.describe_device()
    assert line.startswith("backend numpy") and np.__version__ in line and "CPU" in line
    assert backend.synchronize() is None


def test_set_num_threads_limits_the_loaded_blas_and_the_optimizer_engine(monkeypatch):
    """NumPy (and its BLAS) is loaded long before this test: the limit still applies."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import os

    from tinyae import optim_engine
    for var in backend._BLAS_ENV:
        monkeypatch.setenv(var, "7")                       # put back after the test
    monkeypatch.setitem(optim_engine._state, "threads", None)
    with threadpoolctl.threadpool_limits(limits=None):     # the pools' sizes put back on exit
        threadpoolctl.threadpool_limits(limits=2)          # a pool of 2 (where 2 CPUs exist) ...
        assert backend.set_num_threads(1) == 1             # ... cut to 1 at run time
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert blas, "NumPy's BLAS was not found"
        assert [p["num_threads"] for p in blas] == [1] * len(blas)
        assert optim_engine._threads() == 1
        assert [os.environ[v] for v in backend._BLAS_ENV] == ["1"] * len(backend._BLAS_ENV)


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_whole_number_of_threads(n):
    with pytest.raises(ValueError, match=r"set_num_threads: need a whole number of threads >= 1"):
        backend.set_num_threads(n)
