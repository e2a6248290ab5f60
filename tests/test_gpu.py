"""The same kernels on CuPy: every layer, loss and penalty, both optimizers and every model
builder, checked against the NumPy backend (same weights, same inputs) and by float64
gradient checks on the device; the models also in float32, the device's default dtype.

All tests here carry the ``gpu`` marker: they run where CuPy and a CUDA device are present,
and on the CPU stand-in for CuPy with ``TINYAE_FAKE_CUPY=1`` (CI's stand-in step);
conftest.py skips them elsewhere, and on the stand-in skips those marked
``cuda(feature)``, naming the feature.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinyae import backend, losses, models, optim
from tinyae.gradcheck import check_loss, check_module

from test_layers_dense import LAYER_FACTORIES, Bound, _ids

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    return backend.cupy_module()   # CuPy, or its CPU stand-in under TINYAE_FAKE_CUPY=1


def _to_cupy(args):
    """Forward arguments (inputs, masks, indices) moved to the GPU."""
    return tuple(backend.asarray(a, backend="cupy") if isinstance(a, np.ndarray) else a for a in args)


@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_layer_matches_numpy(entry, cp):
    rng = np.random.default_rng(0)
    host = entry.factory(0).double()
    dev = entry.factory(0).double().to("cupy")
    dev.load_state_dict(host.state_dict())
    args = entry.input_maker(rng, np.float64)
    y_host = host(*args)
    y_dev = dev(*_to_cupy(args))
    assert isinstance(y_dev, cp.ndarray)
    np.testing.assert_allclose(backend.to_numpy(y_dev), y_host, rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y_host.shape)
    dx_host = host.backward(dy)
    dx_dev = dev.backward(cp.asarray(dy))
    np.testing.assert_allclose(backend.to_numpy(dx_dev), dx_host, rtol=1e-10, atol=1e-12)
    for (name, p_host), (name_dev, p_dev) in zip(host.named_parameters(), dev.named_parameters(), strict=True):
        assert name_dev == name
        np.testing.assert_allclose(backend.to_numpy(p_dev.grad), p_host.grad, rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_layer_gradcheck_on_device(entry, cp):
    rng = np.random.default_rng(1)
    layer = entry.factory(0).to("cupy")
    args = _to_cupy(entry.input_maker(rng, np.float64))
    module = Bound(layer, *args[1:]) if len(args) > 1 else layer
    assert check_module(module, args[0]) < 1e-5


@pytest.mark.parametrize("loss, args", [
    (losses.MSELoss(), ("pred", "target")),
    (losses.BCELoss(), ("prob", "target")),
    (losses.BCEWithLogitsLoss(reduction="sum"), ("pred", "target")),
    (losses.GaussianKL(), ("pred", "pred")),
    (losses.L1ActivityPenalty(lam=0.1), ("pred",)),
    (losses.KLSparsityPenalty(rho=0.1, beta=2.0), ("prob",)),
    (losses.ContractivePenalty(lam=0.1), ("pred", "weight")),
    (losses.StochasticContractivePenalty(lam=0.1, sigma=0.1), ("pred", "codes")),
], ids=["mse", "bce", "bce-logits", "kl", "l1-penalty", "kl-sparsity", "contractive", "contractive-stochastic"])
def test_loss_on_device(loss, args, cp):
    rng = np.random.default_rng(2)
    make = {"pred": lambda: rng.standard_normal((4, 5)),
            "prob": lambda: rng.uniform(0.05, 0.95, (4, 5)),
            "target": lambda: rng.uniform(0, 1, (4, 5)),
            "weight": lambda: rng.standard_normal((5, 3)),      # ContractivePenalty's W (H, D) for a (N, H)
            "codes": lambda: rng.standard_normal((2, 4, 5))}    # the stochastic penalty's hk (K, N, H)
    host = [make[a]() for a in args]
    value_host = float(loss(*host))
    grads_host = loss.backward()
    value_dev = loss(*[cp.asarray(a) for a in host])
    assert isinstance(value_dev, cp.ndarray)
    assert float(value_dev) == pytest.approx(value_host, rel=1e-12)
    grads_dev = loss.backward()
    for g_h, g_d in zip(grads_host if isinstance(grads_host, tuple) else (grads_host,),
                        grads_dev if isinstance(grads_dev, tuple) else (grads_dev,), strict=True):
        assert isinstance(g_d, cp.ndarray)
        np.testing.assert_allclose(backend.to_numpy(g_d), g_h, rtol=1e-12)
    assert check_loss(loss, *[cp.asarray(a) for a in host]) < 1e-5


@pytest.mark.parametrize("opt_cls, kw", [(optim.Adam, dict(lr=1e-2, weight_decay=1e-3)),
                                         (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_matches_numpy(opt_cls, kw, dtype, cp):
    """The device update (a fused kernel for Adam) against the NumPy reference, 20 steps."""
    rng = np.random.default_rng(3)
    from tinyae.nn import Parameter
    host = [Parameter(rng.standard_normal(s).astype(dtype)) for s in [(7, 5), (5,)]]
    dev = [Parameter(cp.asarray(p.data)) for p in host]
    o_host, o_dev = opt_cls(host, **kw), opt_cls(dev, **kw)
    for _ in range(20):
        for ph, pd in zip(host, dev):
            g = rng.standard_normal(ph.shape).astype(dtype)
            ph.grad[...] = g
            pd.grad[...] = cp.asarray(g)
        o_host.step()
        o_dev.step()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for ph, pd in zip(host, dev):
        np.testing.assert_allclose(backend.to_numpy(pd.data), ph.data, rtol=tol, atol=tol)


# Every registered builder, with the options that add noise (corruption), penalties and ties.
# Both models draw their noise (corruption, VAE ε, stochastic-contractive ε) from identically
# seeded host generators, so host and device see the same noise.
MODEL_CASES = [
    ("dense-196-64-16", {}, (6, 196)),
    ("dense-196-64-16", {"corruption": ["gaussian", 0.1], "penalty": ["l1", 1e-3]}, (6, 196)),
    ("vae-196-64-16", {}, (6, 196)),
    ("ae-784-32", {}, (4, 784)),
    ("ae-784-250-16", {}, (4, 784)),
    ("vae-784-400-20", {}, (4, 784)),
    ("conv-ae", {}, (2, 1, 28, 28)),
    ("linear-ae", {"in_features": 20, "latent": 4, "bias": True, "tied": True}, (5, 20)),
    ("sparse-ae", {"in_features": 20, "hidden": 6}, (5, 20)),
    ("sparse-ae", {"in_features": 20, "hidden": 6, "penalty": ["l1", 0.01]}, (5, 20)),
    ("contractive-ae", {"sizes": [20, 6]}, (5, 20)),
    ("contractive-ae", {"sizes": [20, 8, 6], "activation": "tanh", "mode": "stochastic", "n_samples": 2}, (5, 20)),
    ("mlp-ae", {"sizes": [20, 8, 4], "code_activation": "sigmoid", "tied": True, "corruption": ["mask", 0.3],
                "penalty": ["kl", 0.1, 1.0]}, (5, 20)),     # KL sparsity needs codes in (0, 1)
    ("mlp-vae", {"sizes": [20, 8, 3]}, (5, 20)),
]


def _model_id(case):
    name, kw, _ = case
    def fmt(v):
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)
    return name + "".join(f"-{k}={fmt(v)}" for k, v in kw.items())


@pytest.mark.parametrize("name, kw, shape", MODEL_CASES, ids=[_model_id(c) for c in MODEL_CASES])
def test_model_matches_numpy(name, kw, shape, cp):
    """Whole models: loss and every parameter gradient equal on both backends (float64)."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, shape)
    host = models.build(name, **kw).double()
    dev = models.build(name, **kw).double().to("cupy")
    dev.load_state_dict(host.state_dict())
    kw_host, kw_dev = {}, {}
    if "vae" in name:
        latent = host.mean_head.out_features
        eps = rng.standard_normal((shape[0], latent))
        kw_host, kw_dev = {"eps": eps}, {"eps": cp.asarray(eps)}
    total_host, _ = host.loss(x, **kw_host)
    host.backward_loss()
    total_dev, _ = dev.loss(cp.asarray(x), **kw_dev)
    dev.backward_loss()
    assert isinstance(total_dev, cp.ndarray)
    assert float(total_dev) == pytest.approx(float(total_host), rel=1e-10)
    for (n, p_h), (n_d, p_d) in zip(host.named_parameters(), dev.named_parameters(), strict=True):
        assert n_d == n
        np.testing.assert_allclose(backend.to_numpy(p_d.grad), p_h.grad, rtol=1e-8, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("name, kw, shape", MODEL_CASES, ids=[_model_id(c) for c in MODEL_CASES])
def test_model_float32_on_device(name, kw, shape, cp):
    """The default dtype on the device: float32 stays float32 (loss, parts, every gradient), and the
    loss agrees with the NumPy float32 loss to float32 round-off (summation orders differ)."""
    x = np.random.default_rng(5).uniform(0, 1, shape).astype(np.float32)
    host = models.build(name, **kw)
    dev = models.build(name, **kw).to("cupy")
    total_host, _ = host.loss(x)
    total_dev, parts_dev = dev.loss(cp.asarray(x))
    dev.backward_loss()
    assert isinstance(total_dev, cp.ndarray) and total_dev.dtype == np.float32
    assert all(v.dtype == np.float32 for v in parts_dev.values()), {k: v.dtype for k, v in parts_dev.items()}
    for n, p in dev.named_parameters():
        assert isinstance(p.grad, cp.ndarray) and p.data.dtype == p.grad.dtype == np.float32, n
    assert float(total_dev) == pytest.approx(float(total_host), rel=1e-4)


@pytest.mark.cuda("the fused Adam ElementwiseKernel, compiled by NVRTC")
def test_fused_adam_is_one_compiled_kernel(cp):
    """On a GPU, Adam's device update is CuPy's compiled kernel (the CPU stand-in runs its body as
    array code instead: tests/test_cupy_standin.py), and one step agrees with the NumPy rule."""
    kernel = optim._fused_adam(cp)
    assert type(kernel).__module__.startswith("cupy")
    rng = np.random.default_rng(6)
    p, g, m, v = (rng.standard_normal(4096).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    dev = [cp.asarray(a) for a in (p, m, v)]
    kernel(cp.asarray(g), 0.9, 0.999, 1 - 0.9, 1 - 0.999, 1e-3, 0.05, 1e-8, *dev)
    m = 0.9 * m + np.float32(0.1) * g
    v = 0.999 * v + np.float32(0.001) * (g * g)
    p = p - np.float32(1e-3) * (m / (np.sqrt(v) / np.float32(0.05) + np.float32(1e-8)))
    for d, h in zip(dev, (p, m, v)):
        np.testing.assert_allclose(backend.to_numpy(d), h, rtol=1e-5, atol=1e-7)


def test_use_cupy_puts_batches_on_device(cp):
    from tinyae.data import DataLoader
    try:
        backend.use("cupy")
        xb, _ = next(iter(DataLoader(np.zeros((10, 4), np.float32), batch_size=4)))
        assert isinstance(xb, cp.ndarray) and xb.dtype == np.float32
    finally:
        backend.use("numpy")
