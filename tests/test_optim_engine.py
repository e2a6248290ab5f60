"""The CPU engine under tinyae.optim (tinyae/optim_engine.py) against the reference update
rule (Adam.update's own lines, engine "reference"): bit-equal steps in float32 and float64,
for buffers below and above the threading threshold and across block boundaries; subnormal
moments flushed to 0 and nothing else changed."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyae import nn, optim, optim_engine


@pytest.fixture
def engine():
    """Two threads during the test (so the buffers above THREAD_MIN take the threaded paths),
    the default thread count after it."""
    optim_engine.set_num_threads(2)
    yield optim_engine
    optim_engine.set_num_threads(None)


def run_adam(engine_name, sizes, dtype, steps, seed=0, flat=True, **hyper):
    rng = np.random.default_rng(seed)
    params = [nn.Parameter(rng.standard_normal(n).astype(dtype)) for n in sizes]
    opt = optim.Adam(params, engine=engine_name, flat=flat, **hyper)
    assert f"engine={engine_name!r}" in repr(opt)
    for _ in range(steps):
        opt.zero_grad()
        for p in params:
            p.grad[...] = rng.standard_normal(p.shape).astype(dtype)
            p.grad[: p.data.size // 3] = 0           # some gradients exactly zero, as for dead units
        opt.step()
    return [p.data.copy() for p in params], opt


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [[7, 300], [optim_engine.BLOCK + 5, 3], [optim_engine.THREAD_MIN + 999, 17]])
def test_engine_equals_reference_bit_for_bit(engine, dtype, sizes):
    ref, ref_opt = run_adam("reference", sizes, dtype, steps=4, lr=1e-2)
    for name in engine.available():
        got, opt = run_adam(name, sizes, dtype, steps=4, lr=1e-2)
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b, err_msg=name)
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(opt._flat_state[key], ref_opt._flat_state[key], err_msg=name)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3000), lr=st.floats(1e-5, 1e-1), b1=st.floats(0.0, 0.99), b2=st.floats(0.5, 0.9999),
       eps=st.floats(1e-10, 1e-3), wd=st.sampled_from([0.0, 1e-2]), seed=st.integers(0, 2**16))
def test_engine_equals_reference_for_drawn_hyperparameters(n, lr, b1, b2, eps, wd, seed):
    hyper = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    ref, _ = run_adam("reference", [n], np.float64, steps=3, seed=seed, **hyper)
    for name in optim_engine.available():
        got, _ = run_adam(name, [n], np.float64, steps=3, seed=seed, **hyper)
        np.testing.assert_array_equal(got[0], ref[0], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_flushes_subnormal_moments_only(engine, dtype):
    tiny = np.finfo(dtype).tiny
    for name in engine.available():
        if name == "reference":
            continue
        p = nn.Parameter(np.ones(6, dtype=dtype))
        opt = optim.Adam([p], lr=1e-3, engine=name)
        opt.step()                                   # creates the state (all zeros: grad 0)
        m, v = opt._flat_state["exp_avg"], opt._flat_state["exp_avg_sq"]
        m[:] = np.array([tiny * 1.05, -tiny * 1.05, tiny * 50, 0.5, 0, -1e-3], dtype=dtype)
        v[:] = 1.0
        opt.step()                                   # grad 0: m ← 0.9 m
        assert m[0] == 0 and m[1] == 0, name         # 0.9 · 1.05 · tiny is subnormal: flushed
        np.testing.assert_array_equal(m[2:], (np.array([tiny * 50, 0.5, 0, -1e-3], dtype=dtype)
                                              * dtype(0.9)), err_msg=name)
        assert not np.any((np.abs(m) < tiny) & (m != 0))


def test_unknown_engine_and_bad_thread_count_are_refused(engine):
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="Adam: unknown engine 'fast'.*blocks"):
        optim.Adam([p], engine="fast")
    with pytest.raises(ValueError, match="at least 1 thread, got 0"):
        engine.set_num_threads(0)


def test_the_default_engine_comes_from_the_environment_when_set(monkeypatch):
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    monkeypatch.setenv("TINYAE_OPTIM_ENGINE", "blocks")
    assert optim.Adam([p]).engine == "blocks"
    monkeypatch.setenv("TINYAE_OPTIM_ENGINE", "turbo")
    with pytest.raises(ValueError, match=r"\$TINYAE_OPTIM_ENGINE: unknown engine 'turbo'"):
        optim.Adam([p])
    monkeypatch.delenv("TINYAE_OPTIM_ENGINE")
    assert optim.Adam([p]).engine == ("numba" if "numba" in optim_engine.available() else "reference")


# -- parameter by parameter: flat=False, or the flat buffer left behind (issue: Adam crashed) ---

def _model(seed):
    return nn.Sequential(nn.Linear(6, 5, rng=seed), nn.Tanh(), nn.Linear(5, 3, rng=seed + 1))


def _train(model, opt, steps, dtype=np.float32):
    rng = np.random.default_rng(7)
    for _ in range(steps):
        x = rng.standard_normal((4, 6)).astype(dtype)
        y = model(x)
        opt.zero_grad()
        model.backward(y - 1, need_dx=False)
        opt.step()
    return [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("name", optim_engine.available())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_parameter_updates_equal_the_flat_ones_bit_for_bit(name, dtype):
    """flat=False runs the same arithmetic one parameter at a time, on every engine."""
    a, b = _model(0).to(dtype=dtype), _model(0).to(dtype=dtype)
    flat = _train(a, optim.Adam(a.parameters(), lr=1e-2, engine=name, weight_decay=1e-3), 5, dtype)
    each = _train(b, optim.Adam(b.parameters(), lr=1e-2, engine=name, weight_decay=1e-3, flat=False), 5, dtype)
    for x, y in zip(flat, each):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", optim_engine.available())
@pytest.mark.parametrize("move", ["double", "float", "to", "replace data", "replace grad"])
def test_adam_keeps_working_when_the_model_is_changed_under_it(name, move):
    """After .double()/.float()/.to() on a model whose optimizer exists, or a replaced p.data or
    p.grad, the flat buffer no longer holds the parameters: Adam updates them one by one, its
    moments following each parameter's dtype, and the numbers equal the reference engine's."""
    results = {}
    for engine_name in ("reference", name):
        model = _model(1)
        opt = optim.Adam(model.parameters(), lr=1e-2, engine=engine_name)
        _train(model, opt, 2)
        if move == "double":
            model.double()
        elif move == "float":
            model.double().float()
        elif move == "to":
            model.to("numpy")
        elif move == "replace data":
            p = model[0].weight
            p.data = p.data.copy()
        else:
            p = model[0].weight
            p.grad = np.zeros_like(p.data)
        dtype = np.float64 if move == "double" else np.float32
        results[engine_name] = _train(model, opt, 3, dtype)
        assert all(p.data.dtype == dtype for p in model.parameters())
        assert all(st["exp_avg"].dtype == dtype for st in opt.state)
    for x, y in zip(results["reference"], results[name]):
        np.testing.assert_array_equal(x, y)
