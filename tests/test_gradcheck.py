"""The gradient checker itself: it must pass correct backward passes and catch wrong ones."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyae import nn
from tinyae.gradcheck import (GradcheckError, check_loss, check_module, check_scalar_function, diagnose,
                              directional_derivative, numerical_gradient, relative_error, roundoff)
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
    """The tensor names on the report lines (every line after the header but the diagnoses)."""
    return {re.split(r"[\[ ]", line.strip(), maxsplit=1)[0] for line in message.splitlines()[1:]
            if not line.strip().startswith("likely:")}


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


# ---------------------------------------------------------------------------
# the pieces: numerical_gradient, directional_derivative, relative_error
# ---------------------------------------------------------------------------
def test_numerical_gradient_of_a_known_function():
    a = np.random.default_rng(4).standard_normal((3, 4))
    saved = a.copy()
    g = numerical_gradient(lambda: float(np.sum(np.sin(a)) + np.sum(a) ** 2), a)
    np.testing.assert_allclose(g, np.cos(saved) + 2 * np.sum(saved), rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(a, saved)                   # every element put back


def test_directional_derivative_moves_every_array_at_once():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(4), rng.standard_normal((2, 3))
    da, db = rng.standard_normal(4), rng.standard_normal((2, 3))
    saved_a, saved_b = a.copy(), b.copy()
    got = directional_derivative(lambda: float(np.sum(a ** 2) * np.sum(b)), {"a": a, "b": b}, {"a": da, "b": db})
    expected = np.sum(2 * saved_a * da) * np.sum(saved_b) + np.sum(saved_a ** 2) * np.sum(db)
    assert got == pytest.approx(float(expected), rel=1e-8)
    np.testing.assert_array_equal(a, saved_a)
    np.testing.assert_array_equal(b, saved_b)


def test_relative_error_and_its_roundoff_allowance():
    assert relative_error(1.01, 1.0, floor=0.0) == pytest.approx(0.01 / 2.01)
    assert relative_error(0.0, 0.0) == 0.0                     # the floor: no 0/0
    # an absolute difference within the allowance passes at any size of the elements
    allowance = roundoff(1e3, eps=1e-6)
    assert allowance == pytest.approx(16 * np.finfo(np.float64).eps * 1e3 / 2e-6)
    assert relative_error(1e-9 + 0.5 * allowance, 1e-9, allowance=allowance, tol=1e-5) <= 1e-5
    assert relative_error(1e-9 + 2 * allowance, 1e-9, allowance=allowance, tol=1e-5) > 1e-5


# ---------------------------------------------------------------------------
# a failed check names the likely mistake: one deliberately broken layer per pattern
# ---------------------------------------------------------------------------
class HalfWeightGradLinear(nn.Linear):
    """dL/dW missing its factor: half of what it should be."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.weight.grad -= 0.5 * (dy.T @ self.x)
        return dx


class SignFlippedLinear(nn.Linear):
    """dL/dx with the wrong sign."""

    def backward(self, dy):
        return -super().backward(dy)


class TransposedWeightGradLinear(nn.Linear):
    """dL/dW computed as x.T @ dy, the gradient of the transposed weight (square layer)."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.weight.grad -= dy.T @ self.x
        self.weight.grad += self.x.T @ dy
        return dx


class ForgetsWeightGradLinear(nn.Linear):
    """Computes dL/dW into a local and never adds it into .grad."""

    def backward(self, dy):
        self.dw = dy.T @ self.x                        # the bug: computed, never added into .grad
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data


class RunningTotalLinear(nn.Linear):
    """Keeps a running total of dL/dW that zero_grad() does not clear, and adds the total."""

    def backward(self, dy):
        self.total = getattr(self, "total", 0) + dy.T @ self.x
        self.weight.grad += self.total
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data


class OverwritingLinear(nn.Linear):
    """Writes dL/dW into .grad (=) instead of adding (+=)."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.weight.grad[...] = dy.T @ self.x
        return dx


class BorderlessConv2d(nn.Conv2d):
    """A padded convolution whose dx loses the border pixels (as if the padding were cut
    from the wrong side)."""

    def backward(self, dy):
        dx = super().backward(dy).copy()
        dx[:, :, 0, :] = dx[:, :, -1, :] = dx[:, :, :, 0] = dx[:, :, :, -1] = 0
        return dx


class TurnedKernelConv2d(nn.Conv2d):
    """dL/dw turned by 180°: the gradient of a convolution, not of a cross-correlation."""

    def backward(self, dy):
        before = self.weight.grad.copy()
        dx = super().backward(dy)
        dw = self.weight.grad - before
        self.weight.grad[...] = before + dw[:, :, ::-1, ::-1]
        return dx


X34 = np.random.default_rng(11).standard_normal((3, 4))
X2365 = np.random.default_rng(12).standard_normal((2, 3, 6, 5))
X2255 = np.random.default_rng(13).standard_normal((2, 2, 5, 5))

# (broken layer, input, the one tensor reported, what the report must say)
BROKEN = {
    "missing factor": (lambda: HalfWeightGradLinear(4, 3, rng=0), X34, "weight",
                       ["likely: analytic ≈ 0.5 × numeric everywhere: a constant factor: a missing factor 2?"]),
    "sign flip": (lambda: SignFlippedLinear(4, 3, rng=0), X34, "input0",
                  ["likely: analytic ≈ −numeric everywhere: a sign flip"]),
    "transposed weight": (lambda: TransposedWeightGradLinear(4, 4, rng=0), X34, "weight",
                          ["likely: analytic ≈ numeric with its first two axes swapped: "
                           "the gradient of the transposed weight"]),
    "all-zero gradient": (lambda: ForgetsWeightGradLinear(4, 3, rng=0), X34, "weight",
                          ["likely: the analytic gradient is all zeros while the numeric one is not: "
                           "did backward add into `.grad`"]),
    "doubles on the second call": (lambda: RunningTotalLinear(4, 3, rng=0), X34, "weight",
                                   ["weight (second call): after zero_grad() the same forward and backward give "
                                    "2 × the first gradient", "likely: state not reset between calls / accumulated twice"]),
    "overwrites .grad": (lambda: OverwritingLinear(4, 3, rng=0), X34, "weight",
                         ["two backward calls leave 1 × the gradient in .grad, not 2 ×",
                          "likely: backward overwrites .grad (=) instead of adding into it (+=)"]),
    "border only": (lambda: BorderlessConv2d(3, 2, 3, padding=1, rng=0), X2365, "input0",
                    ["likely: the mismatches all lie within 1 row(s)/column(s) of the border",
                     "padding or edge handling?"]),
    "turned kernel": (lambda: TurnedKernelConv2d(2, 3, 3, rng=0), X2255, "weight",
                      ["likely: analytic ≈ numeric with the kernel turned by 180°"]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("mistake", list(BROKEN))
def test_a_failed_check_names_the_likely_mistake(mistake, mode):
    make, x, tensor, phrases = BROKEN[mistake]
    with pytest.raises(GradcheckError) as info:
        check_module(make(), x, mode=mode)
    msg = str(info.value)
    assert _reported(msg) == {tensor}
    for phrase in phrases:
        assert phrase in msg


def test_diagnoses_a_loss_missing_its_factor_two():
    rng = np.random.default_rng(0)
    with pytest.raises(GradcheckError, match=r"analytic ≈ 0\.5 × numeric.*a missing factor 2\?"):
        check_loss(NoFactorTwoMSE(), rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


@pytest.mark.parametrize("mode", MODES)
def test_a_transposed_gradient_shape_is_named(mode):
    w = np.random.default_rng(15).standard_normal((3, 4))
    with pytest.raises(GradcheckError, match=r"has shape \(4, 3\), but 'weight' has shape \(3, 4\) \(transposed"):
        check_scalar_function(lambda: float(np.sum(w ** 2)), {"weight": w}, {"weight": 2 * w.T}, mode=mode)


def test_no_pattern_is_claimed_for_a_random_error():
    rng = np.random.default_rng(14)
    numeric = rng.standard_normal((3, 4))
    assert diagnose(numeric + rng.standard_normal((3, 4)), numeric, bad=np.ones((3, 4), bool)) == []
    a = rng.standard_normal((3, 4))

    def f():
        return float(np.sum(a ** 2))

    wrong = 2 * a + rng.standard_normal((3, 4))
    with pytest.raises(GradcheckError, match=r"likely: no simple pattern: \d+ of 12 elements disagree"):
        check_scalar_function(f, {"a": a}, {"a": wrong}, mode="full")
