"""Losses: known values, extreme inputs, reductions, float64 gradient checks, and bad input."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies import seeds
from tinyae.gradcheck import check_loss
from tinyae.losses import BCELoss, BCEWithLogitsLoss, GaussianKL, MSELoss
from tinyae.nn.activation import sigmoid

GRADCHECK_WORST: dict[str, float] = {}
reductions = st.sampled_from(["mean", "sum"])


def _record(name, err):
    GRADCHECK_WORST[name] = max(GRADCHECK_WORST.get(name, 0.0), float(err))
    return err


def _strict_fp():
    """A context in which any floating-point warning is an error."""
    class _Ctx:
        def __enter__(self):
            self._w = warnings.catch_warnings()
            self._w.__enter__()
            warnings.simplefilter("error")
            self._e = np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")
            self._e.__enter__()

        def __exit__(self, *exc):
            self._e.__exit__(*exc)
            self._w.__exit__(*exc)
    return _Ctx()


# ---------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------
def test_mse_known_values():
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[0.0, 2.0], [5.0, 1.0]])  # differences 1, 0, −2, 3 → squares 1, 0, 4, 9
    mean = MSELoss()
    assert float(mean(p, t)) == 3.5
    np.testing.assert_array_equal(mean.backward(), [[0.5, 0.0], [-1.0, 1.5]])  # 2·diff / 4
    total = MSELoss(reduction="sum")
    assert float(total(p, t)) == 14.0
    np.testing.assert_array_equal(total.backward(), [[2.0, 0.0], [-4.0, 6.0]])


def test_bce_known_values():
    p = np.array([0.5, 0.9, 0.2])
    t = np.array([1.0, 1.0, 0.0])
    expected = [math.log(2), -math.log(0.9), -math.log(0.8)]
    loss = BCELoss(reduction="sum")
    assert float(loss(p, t)) == pytest.approx(sum(expected), rel=1e-15)
    # dL/dp = (p − t) / (p (1 − p))
    np.testing.assert_allclose(loss.backward(), [-2.0, -1 / 0.9, 1 / 0.8], rtol=1e-14)
    grey = BCELoss()
    value = float(grey(np.array([0.3]), np.array([0.3])))  # grey target: the entropy of 0.3
    assert value == pytest.approx(-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)), rel=1e-15)
    assert grey.backward()[0] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_at_probabilities_zero_and_one_is_clamped_at_100(dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    loss = BCELoss(reduction="sum")
    with _strict_fp():
        value = loss(p, t)
        grad = loss.backward()
    assert value.dtype == dtype and grad.dtype == dtype
    # each log is clamped at −100 (PyTorch's convention): 100 + 100 + 0 + 0
    assert float(value) == 200.0
    assert np.all(np.isfinite(grad))
    # PyTorch's gradient: (p − t) / max(p (1 − p), 1e-12)
    np.testing.assert_allclose(grad, [-1e12, 1e12, 0.0, 0.0], rtol=1e-6)
    mean = BCELoss()
    assert float(mean(p[:1], t[:1])) == 100.0


def test_bce_does_not_hide_nan_predictions():
    loss = BCELoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(np.array([0.5, np.nan]), np.array([1.0, 0.0]))
    assert np.isnan(value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_at_plus_minus_1000_is_finite_and_exact(dtype):
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype=dtype)
    loss = BCEWithLogitsLoss(reduction="sum")
    with _strict_fp():
        value = loss(z, t)
        grad = loss.backward()
    assert value.dtype == dtype and grad.dtype == dtype
    # softplus(z) − t z:  0, 0, 1000, 1000, log 2
    assert float(value) == pytest.approx(2000.0 + math.log(2), rel=float(np.finfo(dtype).eps) * 4)
    np.testing.assert_array_equal(grad, np.array([0.0, 0.0, 1.0, -1.0, 0.0], dtype=dtype))
    assert float(BCEWithLogitsLoss()(z[:4], t[:4])) == 500.0


@given(n=st.integers(1, 6), d=st.integers(1, 6), seed=seeds, reduction=reductions)
def test_bce_with_logits_equals_bce_of_sigmoid(n, d, seed, reduction):
    rng = np.random.default_rng(seed)
    z, t = rng.uniform(-6, 6, (n, d)), rng.random((n, d))
    a, b = BCEWithLogitsLoss(reduction), BCELoss(reduction)
    np.testing.assert_allclose(a(z, t), b(sigmoid(z), t), rtol=1e-10)
    # chain rule: dL/dz = dL/dp · σ'(z)
    p = sigmoid(z)
    np.testing.assert_allclose(a.backward(), b.backward() * p * (1 - p), rtol=1e-8, atol=1e-15)


def test_gaussian_kl_known_values():
    zeros = np.zeros((3, 4))
    kl = GaussianKL()
    assert float(kl(zeros, zeros)) == 0.0
    dmu, dlogvar = kl.backward()
    assert not dmu.any() and not dlogvar.any()
    # μ = 1, log σ² = 0 in one of two dimensions: KL = ½ μ² = 0.5
    mu, lv = np.array([[1.0, 0.0]]), np.zeros((1, 2))
    assert float(kl(mu, lv)) == 0.5
    # σ² = e: KL = −½ (1 + 1 − 0 − e) = (e − 2)/2
    assert float(kl(np.zeros((1, 1)), np.ones((1, 1)))) == pytest.approx((math.e - 2) / 2, rel=1e-15)
    dmu, dlv = kl.backward()
    assert dlv[0, 0] == pytest.approx((math.e - 1) / 2, rel=1e-15)
    # "mean" averages over the batch of the per-sample sums
    two = np.array([[1.0, 0.0], [2.0, 0.0]])  # per-sample KL 0.5 and 2
    assert float(GaussianKL(reduction="sum")(two, np.zeros((2, 2)))) == 2.5
    mean = GaussianKL(reduction="mean")
    assert float(mean(two, np.zeros((2, 2)))) == 1.25
    np.testing.assert_array_equal(mean.backward()[0], two / 2)


@given(n=st.integers(1, 5), k=st.integers(1, 5), seed=seeds)
def test_gaussian_kl_matches_closed_form_in_variances(n, k, seed):
    rng = np.random.default_rng(seed)
    mu, var = rng.standard_normal((n, k)), rng.uniform(0.1, 3.0, (n, k))
    closed = 0.5 * np.sum(var + mu ** 2 - 1 - np.log(var))
    value = float(GaussianKL()(mu, np.log(var)))
    assert value == pytest.approx(closed, rel=1e-12)
    assert value >= 0


@given(n=st.integers(1, 6), d=st.integers(1, 6), seed=seeds)
def test_sum_is_n_elements_times_mean(n, d, seed):
    rng = np.random.default_rng(seed)
    p, t = rng.random((n, d)) * 0.9 + 0.05, rng.random((n, d))
    for cls in (MSELoss, BCELoss, BCEWithLogitsLoss):
        s, m = cls("sum"), cls("mean")
        assert float(s(p, t)) == pytest.approx(n * d * float(m(p, t)), rel=1e-12)
        np.testing.assert_allclose(s.backward(), n * d * m.backward(), rtol=1e-12)


@pytest.mark.parametrize("cls", [MSELoss, BCELoss, BCEWithLogitsLoss, GaussianKL])
def test_float32_in_float32_out(cls):
    rng = np.random.default_rng(0)
    a = (rng.random((4, 3)) * 0.8 + 0.1).astype(np.float32)
    b = rng.random((4, 3)).astype(np.float32)
    loss = cls()
    value = loss(a, b)
    assert value.dtype == np.float32 and np.ndim(value) == 0
    for g in (loss.backward() if isinstance(loss, GaussianKL) else (loss.backward(),)):
        assert g.dtype == np.float32 and g.shape == (4, 3)


# ---------------------------------------------------------------------------------------
# Float64 gradient checks (hypothesis draws shapes, reductions and ranges)
# ---------------------------------------------------------------------------------------
@given(n=st.integers(1, 5), d=st.integers(1, 6), seed=seeds, reduction=reductions)
def test_gradcheck_mse(n, d, seed, reduction):
    rng = np.random.default_rng(seed)
    p, t = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    _record("MSELoss", check_loss(MSELoss(reduction), p, t, mode="full"))


@given(n=st.integers(1, 5), d=st.integers(1, 6), seed=seeds, reduction=reductions, binary=st.booleans())
def test_gradcheck_bce(n, d, seed, reduction, binary):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, (n, d))
    t = (rng.random((n, d)) < 0.5).astype(float) if binary else rng.random((n, d))
    _record("BCELoss", check_loss(BCELoss(reduction), p, t, mode="full"))


@given(n=st.integers(1, 5), d=st.integers(1, 6), seed=seeds, reduction=reductions,
       scale=st.floats(0.1, 8.0))
def test_gradcheck_bce_with_logits(n, d, seed, reduction, scale):
    rng = np.random.default_rng(seed)
    z, t = scale * rng.standard_normal((n, d)), rng.random((n, d))
    _record("BCEWithLogitsLoss", check_loss(BCEWithLogitsLoss(reduction), z, t, mode="full"))


@given(n=st.integers(1, 5), k=st.integers(1, 6), seed=seeds, reduction=reductions)
def test_gradcheck_gaussian_kl(n, k, seed, reduction):
    rng = np.random.default_rng(seed)
    mu, lv = rng.standard_normal((n, k)), rng.uniform(-2, 2, (n, k))
    _record("GaussianKL", check_loss(GaussianKL(reduction), mu, lv, mode="full"))


@given(n=st.integers(20, 60), d=st.integers(20, 60), seed=seeds)
def test_gradcheck_losses_directional(n, d, seed):
    rng = np.random.default_rng(seed)
    p, t = rng.uniform(0.05, 0.95, (n, d)), rng.random((n, d))
    for loss in (MSELoss("sum"), BCELoss(), BCEWithLogitsLoss("sum"), GaussianKL("mean")):
        _record(type(loss).__name__ + "(directional)",
                check_loss(loss, p, t, mode="directional", n_directions=3, seed=seed % 1000))


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MSELoss, BCELoss, BCEWithLogitsLoss, GaussianKL])
@pytest.mark.parametrize("shapes", [((4, 3), (3,)), ((4, 3), (4, 1)), ((4, 1), (4, 3)), ((4, 3), (3, 4)),
                                    ((2, 3), (1, 2, 3))])
def test_shape_mismatch_is_rejected_not_broadcast(cls, shapes):
    a, b = np.full(shapes[0], 0.5), np.full(shapes[1], 0.5)
    with pytest.raises(ValueError, match=cls.__name__ + r".*shape.*must match exactly \(no broadcasting\)"):
        cls()(a, b)


@pytest.mark.parametrize("cls", [MSELoss, BCELoss, BCEWithLogitsLoss, GaussianKL])
def test_non_float_input_rejected(cls):
    with pytest.raises(ValueError, match=cls.__name__ + ".*float"):
        cls()(np.ones((2, 2)), np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=cls.__name__ + ".*float"):
        cls()([[0.5]], np.ones((1, 1)))


@pytest.mark.parametrize("cls", [MSELoss, BCELoss, BCEWithLogitsLoss, GaussianKL])
def test_mixed_float_dtypes_rejected(cls):
    """float32 prediction, float64 target: an error naming both, not a silently float64 gradient."""
    with pytest.raises(ValueError, match=cls.__name__ + ".*float32 but .* is float64.*astype"):
        cls()(np.full((2, 2), 0.5, dtype=np.float32), np.full((2, 2), 0.5))


@pytest.mark.parametrize("cls", [MSELoss, BCELoss, BCEWithLogitsLoss, GaussianKL])
def test_bad_reduction_and_backward_before_forward(cls):
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        cls(reduction="avg")
    with pytest.raises(RuntimeError, match="backward called before forward"):
        cls().backward()
