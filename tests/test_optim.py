"""Optimizers without PyTorch: update rules against a reference written here from the formulas,
exact resume from a state_dict, and argument checking.  (PyTorch agreement: test_torch_dense.py.)"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyae import nn
from tinyae.losses import MSELoss
from tinyae.nn import Parameter
from tinyae.optim import SGD, Adam


def _problem(seed=0, dtype=np.float64):
    """A small regression model and fixed data, so runs are deterministic."""
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(5, 4, rng=seed), nn.Tanh(), nn.Linear(4, 3, rng=seed + 1)).to(dtype=dtype)
    x = rng.standard_normal((8, 5)).astype(dtype)
    t = rng.standard_normal((8, 3)).astype(dtype)
    return model, x, t


def _train(model, opt, x, t, steps):
    loss = MSELoss()
    for _ in range(steps):
        opt.zero_grad()
        loss(model(x), t)
        model.backward(loss.backward())
        opt.step()


def _params(model):
    return [p.data.copy() for p in model.parameters()]


# ---------------------------------------------------------------------------------------
# Update rules against an independent reference.
# ---------------------------------------------------------------------------------------
def _quadratic_grad(theta, a):
    """∇ of ½ Σ a·θ² + Σ sin θ (a fixed, non-trivial gradient field)."""
    return a * theta + np.cos(theta)


@given(lr=st.floats(1e-3, 0.5), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       dampening=st.sampled_from([0.0, 0.3]), nesterov=st.booleans(),
       weight_decay=st.sampled_from([0.0, 1e-2, 0.3]), seed=st.integers(0, 10**6))
def test_sgd_matches_reference(lr, momentum, dampening, nesterov, weight_decay, seed):
    if nesterov and (momentum == 0 or dampening != 0):
        with pytest.raises(ValueError, match="nesterov"):
            SGD([Parameter(np.zeros(2))], lr=lr, momentum=momentum, dampening=dampening, nesterov=True)
        return
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, (3, 2))
    p = Parameter(rng.standard_normal((3, 2)))
    theta = p.data.copy()
    buf = None
    opt = SGD([p], lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
    for step in range(10):
        p.grad[...] = _quadratic_grad(p.data, a)
        opt.step()
        # reference
        g = _quadratic_grad(theta, a) + weight_decay * theta
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        np.testing.assert_allclose(p.data, theta, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")
    assert opt.step_count == 10


def test_sgd_one_plain_step_is_exact():
    p = Parameter(np.array([1.0, -2.0, 3.0]))
    p.grad[...] = [0.5, 0.5, -1.0]
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, -2.05, 3.1], rtol=1e-15)


@given(lr=st.floats(1e-4, 0.1), b1=st.floats(0.0, 0.99), b2=st.floats(0.5, 0.9999),
       eps=st.sampled_from([1e-8, 1e-6, 1e-3]), weight_decay=st.sampled_from([0.0, 0.05]),
       seed=st.integers(0, 10**6))
def test_adam_matches_reference(lr, b1, b2, eps, weight_decay, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, (4,))
    p = Parameter(rng.standard_normal(4))
    theta, m, v = p.data.copy(), np.zeros(4), np.zeros(4)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)
    for t in range(1, 16):
        p.grad[...] = _quadratic_grad(p.data, a)
        opt.step()
        g = _quadratic_grad(theta, a) + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(p.data, theta, rtol=1e-10, atol=1e-13, err_msg=f"step {t}")


@given(lr=st.floats(1e-4, 1.0), seed=st.integers(0, 10**6))
def test_adam_first_step_moves_by_lr_times_sign(lr, seed):
    """With eps → 0, step 1 is θ − lr·g/|g|: the bias corrections cancel exactly.  (eps = 0
    itself is refused, so the smallest normal float stands in: |g| ≥ 0.01 swamps it.)"""
    rng = np.random.default_rng(seed)
    p = Parameter(rng.standard_normal(6))
    start = p.data.copy()
    p.grad[...] = away = rng.choice([-1.0, 1.0], 6) * rng.uniform(0.01, 100.0, 6)
    Adam([p], lr=lr, eps=float(np.finfo(np.float64).tiny)).step()
    np.testing.assert_allclose(p.data, start - lr * np.sign(away), rtol=1e-12, atol=1e-15)


def test_adam_minimises_a_quadratic():
    target = np.array([3.0, -1.0, 0.5])
    p = Parameter(np.zeros(3))
    opt = Adam([p], lr=0.05)
    for _ in range(1000):
        opt.zero_grad()
        p.grad += 2 * (p.data - target)
        opt.step()
    np.testing.assert_allclose(p.data, target, atol=1e-3)


def test_optimizer_on_a_model_lowers_the_loss():
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps, lr=0.01)):
        model, x, t = _problem(3)
        loss = MSELoss()
        before = float(loss(model(x), t))
        _train(model, make(model.parameters()), x, t, 100)
        assert float(loss(model(x), t)) < 0.5 * before


def test_float32_parameters_stay_float32():
    model, x, t = _problem(0, np.float32)
    for opt in (SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01),
                Adam(model.parameters(), weight_decay=0.01)):
        _train(model, opt, x, t, 3)
        for p in model.parameters():
            assert p.dtype == np.float32
        for st_ in opt.state:
            assert all(buf.dtype == np.float32 for buf in st_.values())


def test_zero_grad():
    model, x, t = _problem()
    opt = SGD(model.parameters(), lr=0.1)
    model.backward(np.ones_like(model(x)))
    opt.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


# ---------------------------------------------------------------------------------------
# state_dict: resuming gives bit-identical parameters
# ---------------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd-momentum": lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda ps: SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "sgd-plain": lambda ps: SGD(ps, lr=0.05),
    "adam": lambda ps: Adam(ps, lr=1e-2, betas=(0.8, 0.95), weight_decay=1e-2),
}


def _savez_round_trip(state):
    """Through numpy.savez / numpy.load, as a checkpoint on disk would go."""
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("via_disk", [False, True], ids=["in-memory", "savez"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_resume_from_state_dict_is_bit_identical(name, dtype, via_disk):
    make = OPTIMIZERS[name]
    model, x, t = _problem(0, dtype)
    _train(model, make(model.parameters()), x, t, 12)
    uninterrupted = _params(model)

    model_a, _, _ = _problem(0, dtype)
    opt_a = make(model_a.parameters())
    _train(model_a, opt_a, x, t, 5)
    model_state, opt_state = model_a.state_dict(), opt_a.state_dict()
    if via_disk:
        model_state, opt_state = _savez_round_trip(model_state), _savez_round_trip(opt_state)
    saved = {k: np.array(v, copy=True) for k, v in opt_state.items()}

    model_b, _, _ = _problem(7, dtype)  # different initial weights, overwritten by the load
    model_b.load_state_dict(model_state)
    opt_b = make(model_b.parameters())
    opt_b.load_state_dict(opt_state)
    assert opt_b.step_count == 5
    _train(model_b, opt_b, x, t, 7)
    for got, want in zip(_params(model_b), uninterrupted):
        np.testing.assert_array_equal(got, want)
    # continuing training must not write into the state dict it was loaded from
    for k, v in opt_state.items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)


def test_one_state_dict_loaded_into_two_optimizers_gives_independent_runs():
    model, x, t = _problem()
    opt = Adam(model.parameters(), lr=1e-2)
    _train(model, opt, x, t, 3)
    m_state, o_state = model.state_dict(), opt.state_dict()
    runs = []
    for _ in range(2):
        m, _, _ = _problem()
        m.load_state_dict(m_state)
        o = Adam(m.parameters())
        o.load_state_dict(o_state)
        _train(m, o, x, t, 4)
        runs.append(_params(m))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_state_dict_contents_and_hyperparameters_restored():
    model, x, t = _problem()
    opt = Adam(model.parameters(), lr=3e-3, betas=(0.5, 0.75), eps=1e-5, weight_decay=0.1)
    _train(model, opt, x, t, 2)
    state = opt.state_dict()
    assert state["step_count"] == 2 and state["lr"] == 3e-3
    assert state["hyper.betas"] == (0.5, 0.75) and state["hyper.eps"] == 1e-5
    n = len(model.parameters())
    assert {k for k in state if k.startswith("state.")} == {
        f"state.{i}.{b}" for i in range(n) for b in ("exp_avg", "exp_avg_sq")}
    for i, p in enumerate(model.parameters()):
        assert state[f"state.{i}.exp_avg"].shape == p.shape
    fresh = Adam(_problem()[0].parameters())  # default hyperparameters, overwritten by the load
    fresh.load_state_dict(_savez_round_trip(state))
    assert fresh.betas == (0.5, 0.75) and isinstance(fresh.betas, tuple)
    assert fresh.eps == 1e-5 and fresh.weight_decay == 0.1 and fresh.lr == 3e-3 and fresh.step_count == 2
    sgd = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sgd2 = SGD(model.parameters(), lr=1.0)
    sgd2.load_state_dict(_savez_round_trip(sgd.state_dict()))
    assert sgd2.nesterov is True and sgd2.momentum == 0.9 and sgd2.lr == 0.1


def test_load_state_dict_rejects_a_different_model():
    model, x, t = _problem()
    opt = Adam(model.parameters())
    _train(model, opt, x, t, 1)
    state = opt.state_dict()
    smaller = Adam(nn.Linear(5, 4).parameters())
    with pytest.raises(ValueError, match="state for parameter 2"):
        smaller.load_state_dict(state)
    other = Adam(nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).parameters())
    with pytest.raises(ValueError, match=r"exp_avg.* parameter 2 has shape \(3, 4\).*\(2, 4\)"):
        other.load_state_dict(state)


@pytest.mark.parametrize("make", [
    lambda: SGD([], lr=0.1), lambda: SGD([Parameter(np.zeros(1))], lr=0.0),
    lambda: Adam([Parameter(np.zeros(1))], lr=-1e-3), lambda: Adam([Parameter(np.zeros(1))], betas=(1.0, 0.9)),
    lambda: Adam([Parameter(np.zeros(1))], betas=(0.9, -0.1)),
    lambda: SGD([Parameter(np.zeros(1))], lr=0.1, nesterov=True),
    lambda: SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
], ids=["empty", "lr0", "lr-neg", "beta1=1", "beta2<0", "nesterov-no-momentum", "nesterov-dampening"])
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_lr_changes_take_effect():
    p = Parameter(np.array([1.0]))
    opt = SGD([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    opt.lr = 0.5
    opt.step()
    assert p.data[0] == pytest.approx(1.0 - 0.1 - 0.5, abs=1e-15)
    assert math.isclose(opt.state_dict()["lr"], 0.5)
