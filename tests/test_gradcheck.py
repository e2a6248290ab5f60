"""The gradient checker itself: it must pass correct backward passes and catch wrong ones."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyae import nn
from tinyae.gradcheck import GradcheckError, check_loss, check_module, check_scalar_function
from tinyae.losses import MSELoss

MODES = ["full", "directional"]


class ScaledInputGradLinear(nn.Linear):
    """A Linear whose dL/dx is off by a constant factor (a deliberately wrong backward)."""

    def __init__(self, *args, factor=1.01, **kw):
        super().__init__(*args, **kw)
        self.factor = factor

    def backward(self, dy):
        return super().backward(dy) * self.factor


class ScaledWeightGradLinear(nn.Linear):
    """A Linear whose dL/dW is off by a constant factor; dL/dx and dL/db are right."""

    def __init__(self, *args, factor=1.01, **kw):
        super().__init__(*args, **kw)
        self.factor = factor

    def backward(self, dy):
        self.weight.grad += (self.factor - 1.0) * (dy.T @ self.x)
        return super().backward(dy)


class NoFactorTwoMSE(MSELoss):
    """MSE whose backward forgot the factor 2 of d(p−t)²/dp."""

    def _backward(self):
        return super()._backward() / 2


def _reported(message):
    """The tensor names on the report lines (every line after the header)."""
    return {re.split(r"[\[ ]", line.strip(), maxsplit=1)[0] for line in message.splitlines()[1:]}


def _analytic_numeric(message, tensor):
    """Parse 'analytic A  numeric B' from the report line of ``tensor``."""
    for line in message.splitlines():
        if line.strip().startswith(tensor):
            m = re.search(r"analytic (\S+)\s+numeric (\S+)", line)
            return float(m.group(1)), float(m.group(2))
    raise AssertionError(f"no report line for {tensor!r} in:\n{message}")


@pytest.mark.parametrize("mode", MODES)
def test_correct_layers_pass(mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    err = check_module(nn.Linear(5, 3, rng=1), x, mode=mode)
    assert 0 <= err < 1e-7
    err = check_module(nn.Sequential(nn.Linear(5, 4, rng=2), nn.Tanh(), nn.Linear(4, 2, rng=3)), x, mode=mode)
    assert 0 <= err < 1e-7


@pytest.mark.parametrize("mode", MODES)
def test_catches_wrong_input_gradient(mode):
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(GradcheckError) as info:
        check_module(ScaledInputGradLinear(4, 3, rng=0), x, mode=mode)
    msg = str(info.value)
    assert "ScaledInputGradLinear" in msg
    assert _reported(msg) == {"input0"}  # only the wrong tensor is reported
    analytic, numeric = _analytic_numeric(msg, "input0")
    assert analytic / numeric == pytest.approx(1.01, rel=1e-6)
    if mode == "directional":
        assert "random direction" in msg


@pytest.mark.parametrize("mode", MODES)
def test_catches_wrong_weight_gradient(mode):
    x = np.random.default_rng(1).standard_normal((3, 4))
    with pytest.raises(GradcheckError) as info:
        check_module(ScaledWeightGradLinear(4, 3, rng=0), x, mode=mode)
    msg = str(info.value)
    assert _reported(msg) == {"weight"}
    analytic, numeric = _analytic_numeric(msg, "weight")
    assert analytic / numeric == pytest.approx(1.01, rel=1e-6)
    assert "rel.err" in msg and "tolerance 1e-05" in msg


@given(factor=st.one_of(st.floats(0.5, 0.999), st.floats(1.001, 2.0)), mode=st.sampled_from(MODES),
       n=st.integers(1, 4), d=st.integers(1, 5), m=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_catches_any_scaled_gradient(factor, mode, n, d, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    with pytest.raises(GradcheckError):
        check_module(ScaledInputGradLinear(d, m, rng=rng, factor=factor), x, mode=mode, seed=seed)
    with pytest.raises(GradcheckError):
        check_module(ScaledWeightGradLinear(d, m, rng=rng, factor=factor), x, mode=mode, seed=seed)


def test_catches_wrong_loss_gradient():
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    assert check_loss(MSELoss(), p, t) < 1e-7
    with pytest.raises(GradcheckError, match="NoFactorTwoMSE") as info:
        check_loss(NoFactorTwoMSE(), p, t)
    analytic, numeric = _analytic_numeric(str(info.value), "arg0")
    assert analytic / numeric == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_check_scalar_function_known_derivative(mode):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 5))
    b = rng.standard_normal(4)
    saved_a, saved_b = a.copy(), b.copy()

    def f():
        return float(np.sum(a ** 3) + np.sum(np.sin(b)) * np.sum(a))

    good = {"a": 3 * a ** 2 + np.sum(np.sin(b)), "b": np.cos(b) * np.sum(a)}
    assert check_scalar_function(f, {"a": a, "b": b}, good, mode=mode) < 1e-7
    # the arrays are restored exactly after perturbation
    np.testing.assert_array_equal(a, saved_a)
    np.testing.assert_array_equal(b, saved_b)
    bad = {"a": good["a"], "b": good["b"] * 1.01}
    with pytest.raises(GradcheckError, match=r"gradient check of myfunc failed") as info:
        check_scalar_function(f, {"a": a, "b": b}, bad, mode=mode, name="myfunc")
    assert _reported(str(info.value)) == {"b"}
    # without raising, the worst error is returned: |1.01 − 1| / (1.01 + 1) ≈ 4.98e-3
    # (up to the small round-off allowance in the denominator)
    err = check_scalar_function(f, {"a": a, "b": b}, bad, mode=mode, raise_on_fail=False)
    assert err == pytest.approx(0.01 / 2.01, rel=2e-3)


def test_full_mode_reports_the_worst_element():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    analytic = 2 * a
    analytic[1, 0] += 0.5  # one wrong element

    with pytest.raises(GradcheckError) as info:
        check_scalar_function(lambda: float(np.sum(a ** 2)), {"w": a}, {"w": analytic}, mode="full")
    analytic_v, numeric_v = _analytic_numeric(str(info.value), "w[1, 0]")
    assert analytic_v == pytest.approx(6.5) and numeric_v == pytest.approx(6.0, rel=1e-8)


def test_float32_arrays_rejected():
    a = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        check_scalar_function(lambda: float(a.sum()), {"a": a}, {"a": np.ones(3)})


def test_wrong_gradient_shape_rejected():
    a = np.ones((2, 3))
    with pytest.raises(GradcheckError, match=r"shape \(3, 2\)"):
        check_scalar_function(lambda: float(a.sum()), {"a": a}, {"a": np.ones((3, 2))})


def test_exact_zero_gradients_pass():
    """Dead ReLU units: analytic and numeric both exactly 0 is a pass, not 0/0."""
    x = np.array([[-1.0, -2.0, 0.5], [-0.3, 1.5, -0.7]])
    assert check_module(nn.ReLU(), x, mode="full") < 1e-9


def test_saturated_activations_pass():
    """A gradient element tiny next to |L| (tanh'(9) ≈ 6e-8) is within the difference
    quotient's round-off, so a correct layer passes; a wrong one still fails."""
    x = np.array([[9.0, -8.5, 0.3, 7.0]])
    assert check_module(nn.Tanh(), x, mode="full") < 1e-5
    assert check_module(nn.Sigmoid(), 2 * x, mode="full") < 1e-5

    class HalfTanh(nn.Tanh):
        def backward(self, dy):
            return super().backward(dy) * 0.5

    with pytest.raises(GradcheckError):
        check_module(HalfTanh(), x, mode="full")


def test_check_module_converts_to_float64_and_leaves_inputs_alone():
    layer = nn.Linear(3, 2, rng=0)
    assert layer.weight.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    x_saved = x.copy()
    check_module(layer, x)
    assert layer.weight.dtype == np.float64 and layer.bias.grad.dtype == np.float64
    np.testing.assert_array_equal(x, x_saved)
    assert x.dtype == np.float32


def test_check_module_with_given_dy():
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert check_module(nn.Linear(3, 2, rng=0), x, dy=np.ones((2, 2))) < 1e-7


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_arrays_are_perturbed(mode):
    """A transposed input or a Fortran-ordered array must be perturbed in place too
    (``a.reshape(-1)`` would be a copy, leaving the numeric gradient at zero)."""
    x_t = np.random.default_rng(0).standard_normal((4, 3)).T
    assert not x_t.flags["C_CONTIGUOUS"]
    assert check_module(nn.Linear(4, 2, rng=0), x_t, mode=mode) < 1e-7
    with pytest.raises(GradcheckError):
        check_module(ScaledInputGradLinear(4, 2, rng=0), x_t, mode=mode)
    a = np.asfortranarray(np.random.default_rng(1).standard_normal((3, 4)))

    def f():
        return float(np.sum(a ** 3))

    assert check_scalar_function(f, {"a": a}, {"a": 3 * a ** 2}, mode=mode) < 1e-7
    with pytest.raises(GradcheckError):
        check_scalar_function(f, {"a": a}, {"a": 3.03 * a ** 2}, mode=mode)
