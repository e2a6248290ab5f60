"""Layers: one conformance walk over every layer class in ``tinyae.nn``, float64 gradient
checks with hypothesis-drawn shapes and hyperparameters, layer-specific behaviour, and
bad-input errors.

``LAYER_FACTORIES`` is the registry the conformance test walks.  Every public Module
subclass exported by ``tinyae.nn`` must have an entry (``test_registry_covers_every_layer``),
so a new layer cannot skip the contract.  Conv/pooling entries are added when
``tinyae.nn`` exports those classes.
"""
from __future__ import annotations

import inspect
import math
import re
import warnings
from typing import Callable, NamedTuple

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from strategies import away_from_zero, distinct, seeds
from tinyae import nn
from tinyae.gradcheck import check_module
from tinyae.nn import Module
from tinyae.nn.activation import sigmoid

# Worst gradient-check error seen per check (read by a report script; see the helper report).
GRADCHECK_WORST: dict[str, float] = {}


def _record(name: str, err: float) -> float:
    GRADCHECK_WORST[name] = max(GRADCHECK_WORST.get(name, 0.0), float(err))
    return err


# ---------------------------------------------------------------------------------------
# Input makers: (rng, dtype) -> tuple of forward arguments; the first one is differentiable.
# ---------------------------------------------------------------------------------------
def _normal(shape):
    return lambda rng, dtype: (rng.standard_normal(shape).astype(dtype),)


def _kinkless(shape):
    return lambda rng, dtype: (away_from_zero(rng, shape, dtype),)


def _distinct(shape):
    return lambda rng, dtype: (distinct(rng, shape, dtype),)


def _with_mask(shape):
    """(x, 0/1 mask) for Dropout.forward(x, mask)."""
    def make(rng, dtype):
        mask = rng.random(shape) >= 0.3
        mask.flat[0] = True  # at least one kept element, so grads are not all zero
        return rng.standard_normal(shape).astype(dtype), mask
    return make


def _with_noise(shape):
    """(x, eps) for GaussianNoise.forward(x, noise)."""
    return lambda rng, dtype: (rng.standard_normal(shape).astype(dtype),
                               rng.standard_normal(shape).astype(dtype))


def unpool_indices(rng, n, c, h, w, k=2):
    """PyTorch-style MaxUnpool2d indices for kernel=stride=k: for every pooled cell, one flat
    index (row * W_out + col) into its k×k window of the (k·h, k·w) output plane."""
    rows = np.arange(h)[:, None] * k + rng.integers(0, k, size=(n, c, h, w))
    cols = np.arange(w)[None, :] * k + rng.integers(0, k, size=(n, c, h, w))
    return (rows * (w * k) + cols).astype(np.int64)


def _with_indices(shape, k=2):
    def make(rng, dtype):
        return rng.standard_normal(shape).astype(dtype), unpool_indices(rng, *shape, k=k)
    return make


def _tied(d, m, seed):
    """TiedLinear over a Linear(d, m): maps m → d with the Linear's weight; one seeded stream
    for the Linear's weight and bias and then the TiedLinear's bias."""
    g = np.random.default_rng(seed)
    return nn.TiedLinear(nn.Linear(d, m, rng=g), rng=g)


def _build(cls_name, *args, seed=0, **kwargs):
    """Construct ``tinyae.nn.<cls_name>``, passing ``rng=seed`` where the constructor takes one."""
    cls = getattr(nn, cls_name)
    if "rng" in inspect.signature(cls).parameters:
        kwargs["rng"] = seed
    return cls(*args, **kwargs)


class Entry(NamedTuple):
    name: str
    factory: Callable[[int], Module]  # seed -> a fresh float32 layer
    input_maker: Callable  # (rng, dtype) -> forward args (first one differentiable)
    out_shape: Callable[[tuple], tuple]  # input shape -> output shape
    bad_shapes: tuple = ()  # input shapes the layer must reject with a ValueError


def _same(s):
    return tuple(s)


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


LAYER_FACTORIES: list[Entry] = [
    Entry("Linear", lambda s: nn.Linear(4, 3, rng=s), _normal((5, 4)), lambda s: (s[0], 3),
          bad_shapes=((5, 5), (4,), (5, 4, 1))),
    Entry("Linear(bias=False)", lambda s: nn.Linear(4, 3, bias=False, rng=s), _normal((2, 4)),
          lambda s: (s[0], 3), bad_shapes=((2, 3),)),
    Entry("TiedLinear", lambda s: _tied(3, 4, s), _normal((5, 4)), lambda s: (s[0], 3),
          bad_shapes=((5, 3), (4,))),
    Entry("Identity", lambda s: nn.Identity(), _normal((3, 4)), _same),
    Entry("ReLU", lambda s: nn.ReLU(), _kinkless((3, 2, 4)), _same),
    Entry("LeakyReLU", lambda s: nn.LeakyReLU(0.2), _kinkless((4, 5)), _same),
    Entry("Tanh", lambda s: nn.Tanh(), _normal((3, 5)), _same),
    Entry("Sigmoid", lambda s: nn.Sigmoid(), _normal((3, 5)), _same),
    Entry("Flatten", lambda s: nn.Flatten(), _normal((2, 3, 2, 2)), lambda s: (s[0], 12)),
    Entry("Reshape", lambda s: nn.Reshape(3, 4), _normal((2, 12)), lambda s: (s[0], 3, 4),
          bad_shapes=((2, 11), (2, 13))),
    Entry("Dropout", lambda s: nn.Dropout(0.3, rng=s), _with_mask((4, 6)), _same),
    Entry("GaussianNoise", lambda s: nn.GaussianNoise(0.5, rng=s), _with_noise((4, 6)), _same),
    Entry("Sequential", lambda s: nn.Sequential(nn.Linear(4, 6, rng=s), nn.Tanh(), nn.Linear(6, 2, rng=s + 1),
                                                nn.Sigmoid()),
          _normal((3, 4)), lambda s: (s[0], 2), bad_shapes=((3, 5),)),
]

# Convolution and pooling layers, when tinyae.nn has them (constructors mirror PyTorch).
if hasattr(nn, "Conv2d"):
    LAYER_FACTORIES += [
        Entry("Conv2d(k3,s2,p1)", lambda s: _build("Conv2d", 2, 3, kernel_size=3, stride=2, padding=1, seed=s),
              _normal((2, 2, 5, 5)), lambda s: (s[0], 3, _conv_out(s[2], 3, 2, 1), _conv_out(s[3], 3, 2, 1)),
              bad_shapes=((2, 3, 5, 5), (2, 2, 5), (2, 50))),
        Entry("Conv2d(k(2,3),nobias)", lambda s: _build("Conv2d", 2, 3, kernel_size=(2, 3), bias=False, seed=s),
              _normal((1, 2, 4, 5)), lambda s: (s[0], 3, s[2] - 1, s[3] - 2)),
        Entry("Conv2d(k3,s2,p1,im2col)",     # the readable level, run by the layer itself
              lambda s: _build("Conv2d", 2, 3, kernel_size=3, stride=2, padding=1, impl="im2col", seed=s),
              _normal((2, 2, 5, 5)), lambda s: (s[0], 3, _conv_out(s[2], 3, 2, 1), _conv_out(s[3], 3, 2, 1))),
    ]
if hasattr(nn, "ConvTranspose2d"):
    LAYER_FACTORIES.append(
        Entry("ConvTranspose2d(k3,s2,p1)",
              lambda s: _build("ConvTranspose2d", 3, 2, kernel_size=3, stride=2, padding=1, seed=s),
              _normal((2, 3, 3, 3)), lambda s: (s[0], 2, (s[2] - 1) * 2 - 2 + 3, (s[3] - 1) * 2 - 2 + 3),
              bad_shapes=((2, 2, 3, 3), (2, 3, 3))))
    LAYER_FACTORIES.append(
        Entry("ConvTranspose2d(k3,s2,p1,im2col)",
              lambda s: _build("ConvTranspose2d", 3, 2, kernel_size=3, stride=2, padding=1, impl="im2col", seed=s),
              _normal((2, 3, 3, 3)), lambda s: (s[0], 2, (s[2] - 1) * 2 - 2 + 3, (s[3] - 1) * 2 - 2 + 3)))
if hasattr(nn, "MaxPool2d"):
    LAYER_FACTORIES += [
        Entry("MaxPool2d(2)", lambda s: _build("MaxPool2d", 2, seed=s), _distinct((2, 2, 4, 4)),
              lambda s: (s[0], s[1], s[2] // 2, s[3] // 2), bad_shapes=((2, 8),)),
        Entry("MaxPool2d(k3,s2,p1)", lambda s: _build("MaxPool2d", 3, stride=2, padding=1, seed=s),
              _distinct((2, 2, 5, 5)), lambda s: (s[0], s[1], _conv_out(s[2], 3, 2, 1), _conv_out(s[3], 3, 2, 1))),
    ]
if hasattr(nn, "AvgPool2d"):
    LAYER_FACTORIES.append(
        Entry("AvgPool2d(2)", lambda s: _build("AvgPool2d", 2, seed=s), _normal((2, 2, 4, 6)),
              lambda s: (s[0], s[1], s[2] // 2, s[3] // 2), bad_shapes=((2, 8),)))
if hasattr(nn, "Upsample"):
    LAYER_FACTORIES.append(
        Entry("Upsample(x2)", lambda s: _build("Upsample", scale_factor=2, seed=s), _normal((2, 2, 3, 2)),
              lambda s: (s[0], s[1], 2 * s[2], 2 * s[3]), bad_shapes=((2, 8),)))
if hasattr(nn, "MaxUnpool2d"):
    LAYER_FACTORIES.append(
        Entry("MaxUnpool2d(2)", lambda s: _build("MaxUnpool2d", 2, seed=s), _with_indices((2, 2, 2, 3)),
              lambda s: (s[0], s[1], 2 * s[2], 2 * s[3])))

# Module classes that need no entry: the abstract base only.
EXCLUDED = {"Module"}


def _ids(entries):
    return [e.name for e in entries]


def _error_name(layer):
    """The class name a bad-input error must mention (a Sequential fails in its first child)."""
    if isinstance(layer, nn.Sequential):
        return _error_name(layer[0])
    return type(layer).__name__


class Bound(Module):
    """``layer`` with its non-differentiable forward arguments (mask, noise, indices) fixed,
    so check_module sees a one-input module."""

    def __init__(self, layer, *extra):
        super().__init__()
        self.layer = layer
        self.extra = extra

    def forward(self, x):
        return self.layer(x, *self.extra)

    def backward(self, dy, need_dx=True):
        return self.layer.backward(dy, need_dx=need_dx)


# ---------------------------------------------------------------------------------------
# The registry covers everything.
# ---------------------------------------------------------------------------------------
def test_registry_covers_every_layer():
    exported = {name: obj for name, obj in vars(nn).items()
                if isinstance(obj, type) and issubclass(obj, Module) and not name.startswith("_")}
    assert {"Linear", "ReLU", "Sequential", "Dropout"} <= set(exported)
    covered = {type(e.factory(0)).__name__ for e in LAYER_FACTORIES}
    missing = sorted(set(exported) - covered - EXCLUDED)
    assert not missing, f"layers without a LAYER_FACTORIES conformance entry: {missing}"


def test_registry_names_unique():
    names = _ids(LAYER_FACTORIES)
    assert len(names) == len(set(names))


# ---------------------------------------------------------------------------------------
# Conformance: the layer contract, for every entry and both float dtypes.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_conformance(entry, dtype):
    rng = np.random.default_rng(0)
    layer = entry.factory(0)
    assert layer.to(dtype=dtype) is layer
    for name, p in layer.named_parameters():
        assert p.data.dtype == dtype and p.grad.dtype == dtype, name
        assert p.grad.shape == p.data.shape, name
    args = entry.input_maker(rng, dtype)
    x = args[0]
    x_saved = x.copy()

    # forward: shape and dtype; the input is left untouched
    y = layer(*args)
    assert y.shape == entry.out_shape(x.shape)
    assert y.dtype == dtype
    np.testing.assert_array_equal(x, x_saved)

    # backward: dx has x's shape and dtype; parameter grads have their parameter's
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy_saved = dy.copy()
    layer.zero_grad()
    dx1 = np.array(layer.backward(dy), copy=True)
    assert dx1.shape == x.shape and dx1.dtype == dtype
    np.testing.assert_array_equal(dy, dy_saved)
    assert np.all(np.isfinite(dx1)) and np.any(dx1 != 0)
    grads1 = {}
    for name, p in layer.named_parameters():
        assert p.grad.shape == p.data.shape and p.grad.dtype == dtype, name
        assert np.any(p.grad != 0), f"{entry.name}: {name}.grad stayed zero"
        grads1[name] = p.grad.copy()

    # a second backward with the same cache gives the same dx and accumulates grads
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx2, dx1)
    tight = 1e-12 if dtype == np.float64 else 1e-6
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * grads1[name], rtol=tight, atol=0, err_msg=name)

    # zero_grad clears, keeping shape and dtype
    layer.zero_grad()
    for name, p in layer.named_parameters():
        assert p.grad.dtype == dtype and p.grad.shape == p.data.shape
        assert not np.any(p.grad), name

    # state_dict: PyTorch-style names, host copies, and a round trip into a fresh layer
    state = layer.state_dict()
    assert list(state) == [n for n, _ in layer.named_parameters()]
    for name, p in layer.named_parameters():
        assert isinstance(state[name], np.ndarray) and state[name].dtype == dtype
        np.testing.assert_array_equal(state[name], p.data)
        assert not np.shares_memory(state[name], p.data), f"state_dict()[{name!r}] aliases the parameter"
    other = entry.factory(1).to(dtype=dtype)
    if state:
        assert any(not np.array_equal(other.state_dict()[k], v) for k, v in state.items())
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    np.testing.assert_array_equal(other(*args), layer(*args))

    # eval mode keeps shape and dtype too
    layer.eval()
    y_eval = layer(*args)
    assert y_eval.shape == y.shape and y_eval.dtype == dtype


@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_registry_gradcheck_float64(entry):
    """Every registered layer (conv/pool included) passes a full float64 gradient check."""
    rng = np.random.default_rng(1)
    layer = entry.factory(3)
    args = entry.input_maker(rng, np.float64)
    err = check_module(Bound(layer, *args[1:]), args[0], seed=2, mode="full")
    _record(f"registry:{entry.name}", err)


# ---------------------------------------------------------------------------------------
# Hypothesis-driven float64 gradient checks of the dense layers.
# ---------------------------------------------------------------------------------------
@given(n=st.integers(1, 5), d=st.integers(1, 6), m=st.integers(1, 6), bias=st.booleans(), seed=seeds)
def test_gradcheck_linear(n, d, m, bias, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(d, m, bias=bias, rng=rng)
    x = rng.standard_normal((n, d))
    _record("Linear", check_module(layer, x, seed=seed % 997, mode="full"))
    assert layer.weight.dtype == np.float64


@given(n=st.integers(8, 40), d=st.integers(20, 60), m=st.integers(20, 60), seed=seeds)
def test_gradcheck_linear_directional(n, d, m, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(d, m, rng=rng)
    x = rng.standard_normal((n, d))
    _record("Linear(directional)", check_module(layer, x, seed=seed % 997, mode="directional", n_directions=3))


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=seeds)
def test_gradcheck_relu(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, tuple(shape))
    _record("ReLU", check_module(nn.ReLU(), x, seed=seed % 997, mode="full"))


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       slope=st.floats(0.0, 3.0, allow_nan=False), seed=seeds)
def test_gradcheck_leaky_relu(shape, slope, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, tuple(shape))
    layer = nn.LeakyReLU(slope)
    _record("LeakyReLU", check_module(layer, x, seed=seed % 997, mode="full"))
    np.testing.assert_array_equal(layer(x), np.where(x > 0, x, slope * x))


@pytest.mark.parametrize("cls", [nn.Tanh, nn.Sigmoid, nn.Identity])
@given(n=st.integers(1, 5), d=st.integers(1, 6), scale=st.floats(0.1, 4.0), seed=seeds)
def test_gradcheck_smooth_activations(cls, n, d, scale, seed):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, d))
    _record(cls.__name__, check_module(cls(), x, seed=seed % 997, mode="full"))


# Each activation's own derivatives(a) = (s'(a), s''(a)), which the contractive penalty uses,
# against central differences of its forward (float64; |a| >= 0.05 keeps the ReLUs' kink at 0
# farther away than the step h).
DERIVATIVE_CASES = {"Identity": nn.Identity, "ReLU": nn.ReLU, "LeakyReLU(0.2)": lambda: nn.LeakyReLU(0.2),
                    "LeakyReLU(1.7)": lambda: nn.LeakyReLU(1.7), "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid}


def test_every_activation_gives_its_derivatives():
    from tinyae.nn import activation
    defined = {name for name, obj in vars(activation).items()
               if isinstance(obj, type) and issubclass(obj, Module) and obj.__module__ == activation.__name__}
    covered = {type(make()).__name__ for make in DERIVATIVE_CASES.values()}
    assert defined == covered, f"activations without a derivative check: {sorted(defined - covered)}"


@pytest.mark.parametrize("name", list(DERIVATIVE_CASES))
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), scale=st.floats(0.5, 6.0), seed=seeds)
def test_activation_derivatives_match_central_differences_of_forward(name, shape, scale, seed):
    act = DERIVATIVE_CASES[name]()
    a = away_from_zero(np.random.default_rng(seed), tuple(shape), low=0.05, high=scale)
    d1, d2 = act.derivatives(a)
    assert d1.shape == d2.shape == a.shape and d1.dtype == d2.dtype == np.float64

    def f(t):
        return np.array(act.forward(t), copy=True)

    # truncation + round-off: h²·|s'''|/6 + eps·|s|/h for s', h²·|s''''|/12 + 4·eps·|s|/h² for s''
    h1, h2 = 1e-5, 1e-4
    np.testing.assert_allclose(d1, (f(a + h1) - f(a - h1)) / (2 * h1), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d2, (f(a + h2) - 2 * f(a) + f(a - h2)) / h2 ** 2, rtol=1e-5, atol=1e-6)


@given(n=st.integers(1, 3), dims=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
def test_gradcheck_flatten_and_reshape(n, dims, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *dims))
    flat = nn.Flatten()
    assert flat(x).shape == (n, math.prod(dims))
    _record("Flatten", check_module(flat, x, seed=seed % 997, mode="full"))
    reshape = nn.Reshape(*dims)
    x2 = rng.standard_normal((n, math.prod(dims)))
    assert reshape(x2).shape == (n, *dims)
    _record("Reshape", check_module(reshape, x2, seed=seed % 997, mode="full"))


@given(n=st.integers(1, 5), d=st.integers(1, 6), p=st.floats(0.0, 0.95), seed=seeds)
def test_gradcheck_dropout_fixed_mask(n, d, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    mask = rng.random((n, d)) >= p
    layer = nn.Dropout(p, rng=seed)
    _record("Dropout", check_module(Bound(layer, mask), x, seed=seed % 997, mode="full"))
    # and the values are exactly the inverted-dropout formula
    dy = rng.standard_normal((n, d))
    np.testing.assert_allclose(layer(x, mask), x * mask / (1 - p), rtol=1e-15, atol=0)
    np.testing.assert_allclose(layer.backward(dy), dy * mask / (1 - p), rtol=1e-15, atol=0)


@given(n=st.integers(1, 5), d=st.integers(1, 6), std=st.floats(0.0, 3.0), seed=seeds)
def test_gradcheck_gaussian_noise_fixed_noise(n, d, std, seed):
    rng = np.random.default_rng(seed)
    x, eps = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    layer = nn.GaussianNoise(std, rng=seed)
    _record("GaussianNoise", check_module(Bound(layer, eps), x, seed=seed % 997, mode="full"))
    np.testing.assert_array_equal(layer(x, eps), x + std * eps)


@given(data=st.data())
def test_gradcheck_sequential_mlp(data):
    """A whole model: hypothesis draws the widths and the activations."""
    widths = data.draw(st.lists(st.integers(1, 5), min_size=2, max_size=4), label="widths")
    acts = data.draw(st.lists(st.sampled_from(["tanh", "sigmoid", "leaky", "id"]),
                              min_size=len(widths) - 1, max_size=len(widths) - 1), label="acts")
    n = data.draw(st.integers(1, 4), label="n")
    seed = data.draw(seeds, label="seed")
    rng = np.random.default_rng(seed)
    make = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky": lambda: nn.LeakyReLU(0.3), "id": nn.Identity}
    layers = []
    for (a, b), act in zip(zip(widths, widths[1:]), acts):
        layers += [nn.Linear(a, b, rng=rng), make[act]()]
    model = nn.Sequential(*layers)
    x = rng.standard_normal((n, widths[0]))
    model.double()
    # LeakyReLU inputs could land on its kink; such draws are rejected (|pre| >= 1e-3 >> eps).
    pre = x
    for layer in model:
        assume(not isinstance(layer, nn.LeakyReLU) or np.min(np.abs(pre)) >= 1e-3)
        pre = layer(pre)
    _record("Sequential", check_module(model, x, seed=seed % 997, mode="full"))


# ---------------------------------------------------------------------------------------
# Layer behaviour with known values.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_stable_at_extremes(dtype):
    x = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype)
    layer = nn.Sigmoid().to(dtype=dtype)
    # overflow / division / invalid must not happen (underflow of e^-1000 to 0 is the intended limit)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        warnings.simplefilter("error")
        y = layer(x)
        dx = layer.backward(np.ones_like(x))
        y_fn = sigmoid(x)
    assert y.dtype == dtype and dx.dtype == dtype
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    np.testing.assert_array_equal(y, y_fn)
    assert dx[0] == 0.0 and dx[-1] == 0.0 and dx[2] == 0.25
    assert np.all(np.isfinite(dx))
    # symmetric: σ(−x) = 1 − σ(x) for moderate x
    z = np.linspace(-20, 20, 41, dtype=dtype)
    np.testing.assert_allclose(sigmoid(-z), 1 - sigmoid(z), atol=4 * np.finfo(dtype).eps)


def test_tanh_and_relu_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    np.testing.assert_array_equal(nn.Tanh()(x), np.tanh(x))
    relu = nn.ReLU()
    np.testing.assert_array_equal(relu(x), [[0, 0, 0, 0.5, 2.0]])
    # the derivative at exactly 0 is taken as 0, as in PyTorch
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 0, 1, 1]])
    leaky = nn.LeakyReLU()
    assert leaky.negative_slope == 0.01
    np.testing.assert_allclose(leaky(x), [[-0.02, -0.005, 0, 0.5, 2.0]], rtol=1e-15)
    np.testing.assert_allclose(leaky.backward(np.ones_like(x)), [[0.01, 0.01, 0.01, 1, 1]], rtol=1e-15)


def test_linear_values_and_init():
    layer = nn.Linear(3, 2, rng=0).double()
    layer.weight.data[...] = [[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]]
    layer.bias.data[...] = [0.5, -2.0]
    x = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, -2.0]])
    np.testing.assert_array_equal(layer(x), [[6.5, -2.5], [-3.5, -5.0]])
    dx = layer.backward(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_array_equal(dx, [[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]])
    np.testing.assert_array_equal(layer.weight.grad, [[1, 1, 1], [2, 0, -2]])
    np.testing.assert_array_equal(layer.bias.grad, [1, 1])


@given(d=st.integers(1, 50), m=st.integers(1, 50), seed=st.integers(0, 1000))
def test_linear_init_pytorch_bounds_and_seeding(d, m, seed):
    a, b = nn.Linear(d, m, rng=seed), nn.Linear(d, m, rng=seed)
    assert a.weight.shape == (m, d) and a.bias.shape == (m,)
    assert a.weight.dtype == np.float32
    bound = 1 / math.sqrt(d)
    assert np.all(np.abs(a.weight.data) <= bound) and np.all(np.abs(a.bias.data) <= bound)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)  # same seed, same weights
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    # the bias is drawn after the weight from the same stream, not a replay of its start
    assert not np.array_equal(a.bias.data, a.weight.data.reshape(-1)[:m])


@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_int_seed_gives_independent_weight_and_bias(entry):
    """An int seed starts one stream for the whole layer: the bias must not replay the start
    of the weight's draws (as it does when every parameter restarts the seed)."""
    for _, mod in entry.factory(0).named_modules():
        w, b = mod._parameters.get("weight"), mod._parameters.get("bias")
        if w is None or b is None:
            continue
        w_flat, b_flat = w.data.reshape(-1), b.data.reshape(-1)
        n = min(w_flat.size, b_flat.size)
        if n < 2:
            continue
        bound = float(np.max(np.abs(w_flat)))
        # same stream restarted: bias[:n] == weight[:n] · (bias bound / weight bound)
        ratio = b_flat[:n] / w_flat[:n]
        assert not np.allclose(ratio, ratio[0], rtol=1e-5), f"{entry.name}: bias replays the weight's draws"
        assert bound > 0


def test_linear_accepts_generator():
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    a1, a2 = nn.Linear(3, 3, rng=g1), nn.Linear(3, 3, rng=g1)
    b1 = nn.Linear(3, 3, rng=g2)
    np.testing.assert_array_equal(a1.weight.data, b1.weight.data)
    assert not np.array_equal(a1.weight.data, a2.weight.data)  # the generator advanced


def test_dropout_eval_is_identity():
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    d = nn.Dropout(0.5, rng=0).eval()
    np.testing.assert_array_equal(d(x), x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(d.backward(dy), dy)
    # back to training: random zeros appear
    d.train()
    assert np.any(d(x) == 0)


@given(p=st.floats(0.05, 0.8), seed=st.integers(0, 2**32 - 1))
def test_dropout_train_preserves_mean(p, seed):
    x = np.ones((200, 500))
    d = nn.Dropout(p, rng=seed)
    y = d(x)
    kept = y != 0
    # every kept element is scaled by exactly 1/(1 − p); the drop rate is about p
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-15)
    sd_rate = math.sqrt(p * (1 - p) / x.size)
    assert abs((1 - kept.mean()) - p) < 6 * sd_rate
    sd_mean = math.sqrt(p / (1 - p) / x.size)
    assert abs(y.mean() - 1.0) < 6 * sd_mean
    # backward uses the same mask
    np.testing.assert_array_equal(d.backward(np.ones_like(x)) != 0, kept)


def test_dropout_seeded_and_zero_p():
    x = np.ones((3, 50))
    np.testing.assert_array_equal(nn.Dropout(0.5, rng=7)(x), nn.Dropout(0.5, rng=7)(x))
    d = nn.Dropout(0.5, rng=7)
    assert not np.array_equal(d(x), d(x))  # fresh mask per call
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)


def test_dropout_mask_injection_float32():
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    mask = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32)
    d = nn.Dropout(0.25)
    y = d(x, mask=mask)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[4 / 3, 0, 4], [0, 0, 8]], rtol=1e-6)
    np.testing.assert_allclose(d.backward(np.ones_like(x)), mask / 0.75, rtol=1e-6)


def test_gaussian_noise_injection_eval_and_statistics():
    x = np.zeros((300, 400), dtype=np.float32)
    g = nn.GaussianNoise(0.3, rng=1)
    y = g(x)
    assert y.dtype == np.float32
    assert abs(float(y.std()) - 0.3) < 0.003 and abs(float(y.mean())) < 0.003
    eps = np.full((2, 2), 2.0)
    np.testing.assert_array_equal(g(np.ones((2, 2)), noise=eps), np.full((2, 2), 1.6))
    dy = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(g.backward(dy), dy)
    g.eval()
    np.testing.assert_array_equal(g(x), x)
    np.testing.assert_array_equal(nn.GaussianNoise(0.3, rng=4)(x), nn.GaussianNoise(0.3, rng=4)(x))


def test_sequential_matches_manual_composition():
    rng = np.random.default_rng(0)
    l1, act, l2 = nn.Linear(4, 3, rng=1), nn.Tanh(), nn.Linear(3, 2, rng=2)
    model = nn.Sequential(l1, act, l2)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = model(x)
    np.testing.assert_array_equal(y, l2(act(l1(x))))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    model.zero_grad()
    dx = model.backward(dy)
    g2 = l2.weight.grad.copy()
    model.zero_grad()
    manual = l1.backward(act.backward(l2.backward(dy)))
    np.testing.assert_array_equal(dx, manual)
    np.testing.assert_array_equal(l2.weight.grad, g2)


# ---------------------------------------------------------------------------------------
# Bad input: errors name the layer and what it expected.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_integer_input_rejected(entry):
    layer = entry.factory(0)
    args = entry.input_maker(np.random.default_rng(0), np.float32)
    bad = (np.round(args[0] * 10).astype(np.int64),) + tuple(args[1:])
    with pytest.raises(ValueError, match=re.escape(_error_name(layer)) + r"(.|\n)*float"):
        layer(*bad)


@pytest.mark.parametrize("entry", [e for e in LAYER_FACTORIES if e.factory(0).parameters()],
                         ids=_ids([e for e in LAYER_FACTORIES if e.factory(0).parameters()]))
def test_dtype_mismatch_with_parameters_rejected(entry):
    layer = entry.factory(0)  # float32 parameters
    args = entry.input_maker(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match=re.escape(_error_name(layer)) + r"(.|\n)*float32"):
        layer(*args)
    layer.double()
    assert layer(*args).dtype == np.float64


@pytest.mark.parametrize("entry", [e for e in LAYER_FACTORIES if e.bad_shapes],
                         ids=_ids([e for e in LAYER_FACTORIES if e.bad_shapes]))
def test_wrong_shape_rejected(entry):
    layer = entry.factory(0)
    rng = np.random.default_rng(0)
    extra = entry.input_maker(rng, np.float32)[1:]
    for shape in entry.bad_shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        with pytest.raises(ValueError, match=re.escape(_error_name(layer))):
            layer(x, *extra)


def test_linear_error_messages_say_what_was_expected():
    layer = nn.Linear(3, 4)
    with pytest.raises(ValueError, match=r"Linear\(3, 4.*expected input of shape \(N, 3\), got \(2, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"Linear.*2-D.*\(3,\)"):
        layer(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"Linear.*dtype float32.*float64"):
        layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Linear.*expected an array.*list"):
        layer([[0.0, 0.0, 0.0]])


def test_shape_layer_errors():
    with pytest.raises(ValueError, match=r"Reshape\(2, 5\) expected 10 features per sample.*\(3, 9\)"):
        nn.Reshape(2, 5)(np.zeros((3, 9)))
    with pytest.raises(ValueError, match="Flatten"):
        nn.Flatten()(np.zeros(()))
    with pytest.raises(ValueError, match="Dropout.*mask shape"):
        nn.Dropout(0.5)(np.zeros((2, 3)), mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="GaussianNoise.*noise shape"):
        nn.GaussianNoise(0.5)(np.zeros((2, 3)), noise=np.ones((2, 3, 1)))


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(0, 3), lambda: nn.Linear(3, -1), lambda: nn.Dropout(1.0), lambda: nn.Dropout(-0.1),
    lambda: nn.GaussianNoise(-0.5), lambda: nn.Reshape(), lambda: nn.Reshape(0, 4),
], ids=["linear-in0", "linear-out-neg", "dropout-p1", "dropout-neg", "noise-neg", "reshape-empty", "reshape-0"])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("make", [nn.ReLU, nn.Tanh, nn.Sigmoid, lambda: nn.LeakyReLU(0.1),
                                  lambda: nn.Linear(2, 2), nn.Flatten, lambda: nn.Reshape(2)],
                         ids=["ReLU", "Tanh", "Sigmoid", "LeakyReLU", "Linear", "Flatten", "Reshape"])
def test_backward_before_forward(make):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        make().backward(np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("entry", LAYER_FACTORIES, ids=_ids(LAYER_FACTORIES))
def test_backward_without_dx_returns_none_and_the_same_parameter_gradients(entry):
    """backward(dy, need_dx=False): every layer returns None and leaves every parameter
    gradient bit-identical to what backward(dy) leaves."""
    rng = np.random.default_rng(5)
    args = entry.input_maker(rng, np.float64)
    grads = {}
    for need_dx in (True, False):
        layer = entry.factory(3).double()
        y = layer(*args)
        layer.zero_grad()
        dx = layer.backward(np.random.default_rng(6).standard_normal(y.shape), need_dx=need_dx)
        grads[need_dx] = ({n: p.grad.copy() for n, p in layer.named_parameters()}, dx)
    (on, dx_on), (off, dx_off) = grads[True], grads[False]
    assert dx_on is not None and dx_on.shape == args[0].shape
    assert dx_off is None
    assert on.keys() == off.keys()
    for n in on:
        np.testing.assert_array_equal(off[n], on[n], err_msg=n)


def test_sequential_stops_at_the_first_layer_with_parameters():
    """need_dx=False reaches the leading parameter-free layers and the first Linear, not
    beyond; backward stops there (Flatten would fail on a None gradient)."""
    seq = nn.Sequential(nn.Flatten(), nn.GaussianNoise(0.0), nn.Linear(6, 4, rng=0), nn.Tanh(),
                        nn.Linear(4, 2, rng=1))
    seq.double()
    asked = []
    for i, m in enumerate(seq):             # record what each layer is asked for
        def spy(dy, need_dx=True, _m=m, _b=m.backward, _i=i):
            asked.append((_i, need_dx))
            return _b(dy, need_dx=need_dx)
        object.__setattr__(m, "backward", spy)
    x = np.random.default_rng(0).standard_normal((3, 2, 3))
    assert seq.backward(np.ones_like(seq(x)), need_dx=False) is None
    assert asked == [(4, True), (3, True), (2, False)]
    assert np.abs(seq[2].weight.grad).sum() > 0
    asked.clear()
    seq.zero_grad()
    assert seq.backward(np.ones_like(seq(x))).shape == x.shape
    assert asked == [(4, True), (3, True), (2, True), (1, True), (0, True)]
