"""The CuPy stand-in (tinyae/_cupy_standin.py, TINYAE_FAKE_CUPY=1): its own refusals, each with
CuPy's message; that it is active only under the variable; and the device-discipline bugs it
found in tinyae, one test each.  These run in every pass (no GPU needed); the gpu-marked tests
run on the stand-in with ``TINYAE_FAKE_CUPY=1 python -m pytest -m gpu``.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from tinyae import _cupy_standin, backend, data, optim

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use .get() to construct a NumPy array explicitly.")
UNSUPPORTED = "Unsupported type <class 'numpy.ndarray'>"


@pytest.fixture
def cp(monkeypatch):
    """The stand-in behind backend.use("cupy") for this test only (the backend's cache restored after)."""
    monkeypatch.setenv("TINYAE_FAKE_CUPY", "1")
    monkeypatch.setattr(backend, "_cupy", None)
    module = backend.use("cupy")           # new batches and parameters go to the "device"
    assert module is _cupy_standin
    yield module
    backend.use("numpy")


# -- the refusals, with CuPy's messages --------------------------------------------------------
def test_implicit_conversion_to_numpy_is_refused(cp):
    c = cp.asarray(np.arange(6.0).reshape(2, 3))
    assert not isinstance(c, np.ndarray)            # a wrapper: numpy.asarray cannot unwrap it
    for convert in (np.asarray, np.array, lambda a: np.array([a[0, 0], a[0, 1]]), np.float32,
                    lambda a: np.testing.assert_allclose(a, 0)):
        with pytest.raises(TypeError) as err:
            convert(c)
        assert str(err.value) == IMPLICIT
    host = np.zeros((2, 3))
    with pytest.raises(TypeError, match=re.escape(IMPLICIT)):
        host[...] = c                                # a host array cannot take device values either


def test_mixing_with_numpy_arrays_is_refused_scalars_are_not(cp):
    c = cp.asarray(np.ones(3, np.float32))
    n = np.ones(3, np.float32)
    for mix in (lambda: c + n, lambda: n + c, lambda: c * np.array(2.0),       # 0-d arrays too
                lambda: np.exp(c) - n, lambda: cp.maximum(c, n), lambda: np.where(c > 0, c, n),
                lambda: np.concatenate([n, c]), lambda: n @ c, lambda: cp.zeros_like(n)):
        with pytest.raises(TypeError) as err:
            mix()
        assert str(err.value) == UNSUPPORTED
    with pytest.raises(TypeError, match=re.escape(UNSUPPORTED)):
        c += n
    for ok in (c + 1, 2.5 * c, c - np.float32(1), np.float32(2) * c, np.exp(c), c @ c):
        assert isinstance(ok, cp.ndarray)
    assert (c + np.float32(1)).dtype == np.float32


def test_reductions_are_0d_device_arrays_converted_explicitly(cp):
    c = cp.asarray(np.array([1.5, 2.0, 3.5], np.float32))
    for r in (c.sum(), c.max(), cp.mean(c), np.mean(c), c.argmax(), c[1]):
        assert isinstance(r, cp.ndarray) and r.ndim == 0
    total = c.sum()
    assert float(total) == 7.0 and int(total) == 7 and total.item() == 7.0 and f"{total:.2f}" == "7.00"
    assert isinstance(c.get(), np.ndarray) and isinstance(cp.asnumpy(c), np.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(c), [1.5, 2.0, 3.5])
    assert cp.asnumpy(np.ones(2)).shape == (2,)        # asnumpy also takes host input
    assert cp.get_array_module(c) is cp and cp.get_array_module(np.ones(2)) is np
    assert backend.get_array_module(c) is cp and backend.is_cupy_array(c)


def test_fill_refuses_host_arrays_integer_indices_take_them(cp):
    c = cp.zeros((3, 2), dtype=np.float32)
    for key in (slice(None), Ellipsis, 0, (slice(0, 2), 1)):
        with pytest.raises(ValueError, match="^non-scalar numpy.ndarray cannot be used for fill$"):
            c[key] = np.ones(2, np.float32)
    c[:] = np.array(4.0)                               # a 0-d host array is a scalar to fill
    c[0] = np.float32(1)
    c[np.array([1, 2])] = np.full((2, 2), 7.0)          # an integer index array takes host values
    c[cp.asarray(np.array([0]))] = cp.asarray(np.full((1, 2), 5.0))
    np.testing.assert_array_equal(c.get(), [[5, 5], [7, 7], [7, 7]])
    np.testing.assert_array_equal(c[np.array([2, 0])].get(), [[7, 7], [5, 5]])   # host index arrays work


def test_stricter_than_cupy_where_cupy_is_silently_wrong(cp):
    c = cp.zeros(3)
    with pytest.raises(IndexError):                     # CuPy wraps the index around
        c[np.array([3])]
    with pytest.raises(ValueError, match="repeated indices.*scatter_add"):
        c[np.array([0, 0])] = cp.asarray(np.array([1.0, 2.0]))   # CuPy keeps one of them, undefined which
    cp.cupyx.scatter_add(c, np.array([0, 0, 2]), 1.0)
    cp.add.at(c, np.array([1, 1]), 2.0)
    np.testing.assert_array_equal(c.get(), [2, 4, 1])


def test_cuda_namespace_has_one_device_and_no_nccl(cp):
    assert cp.cuda.runtime.getDeviceCount() == 1
    cp.cuda.Device().synchronize()
    cp.cuda.Device(0).use()
    with pytest.raises(Exception, match="one device"):
        cp.cuda.Device(1).use()
    assert not hasattr(cp.cuda, "nccl")
    from tinyae import distributed
    assert distributed._nccl_module(cp) is None         # so device gradients are summed through the host


def test_elementwise_kernel_runs_plain_arithmetic_and_refuses_cuda_c(cp):
    axpy = cp.ElementwiseKernel("T a, T x", "T y", "y = a * x + y;  // comment", "axpy")
    y = cp.asarray(np.ones(4, np.float32))
    out = axpy(np.float32(2), cp.asarray(np.arange(4, dtype=np.float32)), y)
    assert out is y and y.dtype == np.float32
    np.testing.assert_array_equal(y.get(), [1, 3, 5, 7])
    with pytest.raises(TypeError, match=re.escape(UNSUPPORTED)):
        axpy(2.0, np.ones(4, np.float32), y)
    with pytest.raises(TypeError, match="Type is mismatched"):
        axpy(2.0, cp.asarray(np.ones(4)), y)          # float64 x, float32 y: one T
    for body in ("if (x > 0) y = x;", "y = x[i];", "y = 0.5 * x;", "x = y;", "y = foo(x);"):
        with pytest.raises(NotImplementedError, match="needs CUDA"):
            cp.ElementwiseKernel("T x", "T y", body, "k")


def test_standin_only_under_the_variable_and_says_so():
    code = ("from tinyae import backend\n"
            "try:\n    backend.use('cupy')\nexcept backend.BackendError:\n    print('no cupy')\n"
            "else:\n    print(getattr(backend.xp(), 'IS_STANDIN', False), '|', backend.describe_device())\n")
    env = {k: v for k, v in os.environ.items() if k != "TINYAE_FAKE_CUPY"}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(("no cupy", "False")), plain.stdout      # real CuPy or none: never the stand-in
    fake = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(env, TINYAE_FAKE_CUPY="1"), cwd=ROOT)
    assert fake.returncode == 0, fake.stderr
    assert fake.stdout.startswith("True | backend cupy: CuPy stand-in on the CPU: device discipline only, "
                                  "not a GPU"), fake.stdout


# -- the bugs the stand-in found, one guard each -------------------------------------------------
def test_dataloader_takes_labels_on_the_device(cp):
    """DataLoader turned y's batch into a host array with numpy.asarray (a TypeError on CuPy)."""
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    batches = list(data.DataLoader(cp.asarray(x), cp.asarray(y), batch_size=4, seed=1))
    host = list(data.DataLoader(x, y, batch_size=4, seed=1))
    for (xb, yb), (xh, yh) in zip(batches, host, strict=True):
        assert isinstance(xb, cp.ndarray) and isinstance(yb, np.ndarray)    # yb stays a NumPy array
        np.testing.assert_array_equal(xb.get(), backend.to_numpy(xh))
        np.testing.assert_array_equal(yb, yh)


def test_sharded_loader_takes_labels_on_the_device(cp):
    """distributed.ShardedLoader had DataLoader's numpy.asarray on y's batch too."""
    from tinyae import distributed
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    for rank in (0, 1):
        dev = list(distributed.ShardedLoader(cp.asarray(x), cp.asarray(y), batch_size=4, rank=rank, size=2))
        host = list(distributed.ShardedLoader(x, y, batch_size=4, rank=rank, size=2))
        for (xb, yb), (xh, yh) in zip(dev, host, strict=True):
            assert isinstance(xb, cp.ndarray) and isinstance(yb, np.ndarray)
            np.testing.assert_array_equal(xb.get(), backend.to_numpy(xh))
            np.testing.assert_array_equal(yb, yh)


def test_noise_transforms_keep_a_device_batch_on_its_device(cp):
    """gaussian_noise / dropout_noise called numpy.asarray on their input (a TypeError for a device
    batch, e.g. a DataLoader over device data with a transform); now the noise, drawn on the host
    from the same generator, goes to the batch's device."""
    x = np.random.default_rng(0).uniform(0, 1, (6, 5)).astype(np.float32)
    for noise in (lambda a, r: data.gaussian_noise(a, 0.2, r), lambda a, r: data.dropout_noise(a, 0.3, r)):
        on_device = noise(cp.asarray(x), np.random.default_rng(1))
        assert isinstance(on_device, cp.ndarray) and on_device.dtype == np.float32
        np.testing.assert_array_equal(on_device.get(), noise(x, np.random.default_rng(1)))
    loader = data.DataLoader(cp.asarray(x), batch_size=4, transform=lambda a, r: data.gaussian_noise(a, 0.1, r))
    host = data.DataLoader(x, batch_size=4, transform=lambda a, r: data.gaussian_noise(a, 0.1, r), to_device=False)
    for (xb, _), (xh, _) in zip(loader, host, strict=True):
        assert isinstance(xb, cp.ndarray) and isinstance(xh, np.ndarray)
        np.testing.assert_array_equal(xb.get(), xh)


def _adam_reference(p, g, m, v, b1, b2, step_size, bias2_sqrt, eps):
    """Adam.update's NumPy lines (the rule the docs quote), on host arrays in place."""
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    denom = np.sqrt(v)
    denom /= bias2_sqrt
    denom += eps
    p -= step_size * (m / denom)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_adam_kernel_is_the_reference_arithmetic_bit_for_bit(cp, dtype):
    """The fused Adam kernel (tinyae.optim), run as array code by the stand-in, is Adam.update
    operation for operation: 1 - b1 and 1 - b2 rounded from double on the host, (1 - b2) * (g * g),
    so its argument order and formula are right and the results equal the NumPy update to the
    last bit, in float64 and float32."""
    rng = np.random.default_rng(0)
    p, g, m, v = (rng.standard_normal(1000).astype(dtype) for _ in range(4))
    v = np.abs(v)
    args = dict(b1=0.9, b2=0.999, step_size=1e-3 / (1 - 0.9 ** 3),   # Python floats, as Adam passes them
                bias2_sqrt=float(np.sqrt(1 - 0.999 ** 3)), eps=1e-8)
    dev = [cp.asarray(a) for a in (p, m, v)]
    optim._fused_adam(cp)(cp.asarray(g), args["b1"], args["b2"], 1 - args["b1"], 1 - args["b2"], args["step_size"],
                          args["bias2_sqrt"], args["eps"], *dev)
    _adam_reference(p, g, m, v, **args)
    for d, h in zip(dev, (p, m, v)):
        np.testing.assert_array_equal(d.get(), h)


# -- the main job: the same losses on the stand-in as on NumPy -------------------------------------
@pytest.fixture(scope="module")
def main_job_lines(tmp_path_factory):
    """examples/vae_mnist.py, 2 epochs on 2,000 embedded digits, --backend cupy (the stand-in)
    and --backend numpy: each run's epoch lines without their seconds."""
    lines = {}
    for name in ("cupy", "numpy"):
        out = tmp_path_factory.mktemp(name)
        env = dict(os.environ, TINYAE_FAKE_CUPY="1", MPLBACKEND="Agg", TINYAE_OFFLINE="1",
                   XDG_CACHE_HOME=str(out / "cache"))
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / "vae_mnist.py"), "--backend", name,
                               "--epochs", "2", "--data", "embedded", "--limit", "2000", "--threads", "1",
                               "--no-progress", "--out", str(out)], capture_output=True, text=True, env=env,
                              timeout=240)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("backend cupy: CuPy stand-in" if name == "cupy" else "backend numpy")
        lines[name] = [re.sub(r"\s+\([\d.]+ s\)$", "", ln) for ln in proc.stdout.splitlines()
                       if ln.startswith("epoch ")]
        assert len(lines[name]) == 2
    return lines


def _numbers(line):
    return [float(t) for t in re.findall(r"\d+\.\d+", line)]


def test_main_job_losses_on_the_standin_match_numpy(main_job_lines):
    """The printed losses agree to 4 significant digits after 2 epochs (and, the next test, exactly)."""
    for a, b in zip(main_job_lines["cupy"], main_job_lines["numpy"], strict=True):
        np.testing.assert_allclose(_numbers(a), _numbers(b), rtol=1e-4)


def test_main_job_prints_the_same_losses_on_the_standin_as_on_numpy(main_job_lines):
    """The same float32 arithmetic: the same printed losses, to the last digit."""
    assert main_job_lines["cupy"] == main_job_lines["numpy"]
