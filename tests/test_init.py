"""tinyae.nn.init against torch.nn.init: fans for every layer shape, the distributions'
statistics, in-place use on Parameters, seeding, and the layers' ``init=`` choice."""
import math
import os

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyae.nn import Linear, Parameter
from tinyae.nn import init
from tinyae.nn.conv import Conv2d, ConvTranspose2d

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

sizes = st.integers(1, 9)
kernels = st.tuples(st.integers(1, 5), st.integers(1, 5))


def torch_fans(weight):
    return torch.nn.init._calculate_fan_in_and_fan_out(weight)


# -- fans ---------------------------------------------------------------------------------
@given(i=sizes, o=sizes)
def test_linear_fans_match_torch(i, o):
    ours = Linear(i, o, rng=0)
    assert init.fans(ours.weight.shape) == torch_fans(torch.nn.Linear(i, o).weight) == (i, o)


@given(c=sizes, f=sizes, k=kernels)
def test_conv2d_fans_match_torch(c, f, k):
    ours = Conv2d(c, f, k, rng=0)
    theirs = torch.nn.Conv2d(c, f, k)
    assert tuple(ours.weight.shape) == tuple(theirs.weight.shape)
    assert init.fans(ours.weight.shape) == torch_fans(theirs.weight) == (c * k[0] * k[1], f * k[0] * k[1])


@given(c=sizes, f=sizes, k=kernels)
def test_conv_transpose2d_fans_match_torch(c, f, k):
    """PyTorch reads axis 1 of (in, out, kh, kw) as the input axis: fan_in = out·kh·kw."""
    ours = ConvTranspose2d(c, f, k, rng=0)
    theirs = torch.nn.ConvTranspose2d(c, f, k)
    assert tuple(ours.weight.shape) == tuple(theirs.weight.shape)
    assert init.fans(ours.weight.shape) == torch_fans(theirs.weight) == (f * k[0] * k[1], c * k[0] * k[1])


def test_keras_compute_fans_agree_on_keras_layouts():
    """Keras's own layouts — Dense (in, out), Conv2D (kh, kw, in, out), Conv2DTranspose
    (kh, kw, out, in) — give the same fans as ours on the PyTorch layouts."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    ri = pytest.importorskip("keras.src.initializers.random_initializers")
    assert ri.compute_fans((7, 3)) == init.fans((3, 7))
    assert ri.compute_fans((5, 4, 3, 8)) == init.fans((8, 3, 5, 4))          # Conv2d(3 → 8)
    assert ri.compute_fans((5, 4, 8, 3)) == init.fans((3, 8, 5, 4))          # ConvTranspose2d(3 → 8)


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fans((5,))


@pytest.mark.parametrize("name, param", [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                         ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)),
                                         ("selu", None), ("conv2d", None)])
def test_calculate_gain_matches_torch(name, param):
    assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-12)


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


# -- distributions against torch.nn.init ----------------------------------------------------
SHAPE = (128, 64, 3, 3)          # 73,728 draws: fan_in 576, fan_out 1152
FAN_IN, FAN_OUT = 64 * 9, 128 * 9

CASES = [  # (our function, kwargs, torch function, kwargs, "uniform" bound or "normal" std)
    (init.xavier_uniform_, {}, torch.nn.init.xavier_uniform_, {}, ("uniform", math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    (init.xavier_uniform_, {"gain": 2.0}, torch.nn.init.xavier_uniform_, {"gain": 2.0},
     ("uniform", 2 * math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    (init.xavier_normal_, {}, torch.nn.init.xavier_normal_, {}, ("normal", math.sqrt(2 / (FAN_IN + FAN_OUT)))),
    (init.kaiming_uniform_, {"a": math.sqrt(5)}, torch.nn.init.kaiming_uniform_, {"a": math.sqrt(5)},
     ("uniform", 1 / math.sqrt(FAN_IN))),
    (init.kaiming_uniform_, {"nonlinearity": "relu"}, torch.nn.init.kaiming_uniform_, {"nonlinearity": "relu"},
     ("uniform", math.sqrt(3) * math.sqrt(2) / math.sqrt(FAN_IN))),
    (init.kaiming_uniform_, {"mode": "fan_out", "nonlinearity": "relu"}, torch.nn.init.kaiming_uniform_,
     {"mode": "fan_out", "nonlinearity": "relu"}, ("uniform", math.sqrt(6 / FAN_OUT))),
    (init.kaiming_normal_, {"nonlinearity": "relu"}, torch.nn.init.kaiming_normal_, {"nonlinearity": "relu"},
     ("normal", math.sqrt(2 / FAN_IN))),
    (init.normal_, {"mean": 0.5, "std": 0.1}, torch.nn.init.normal_, {"mean": 0.5, "std": 0.1}, ("normal", 0.1)),
    (init.uniform_, {"a": -0.3, "b": 0.7}, torch.nn.init.uniform_, {"a": -0.3, "b": 0.7}, ("uniform", 0.5)),
]


@pytest.mark.parametrize("ours, kw, theirs, tkw, expect", CASES,
                         ids=[f"{c[0].__name__}{c[1] or ''}" for c in CASES])
def test_statistics_match_torch_init(ours, kw, theirs, tkw, expect):
    """Same law as torch.nn.init: the analytic bound/std, and a two-sample KS test of the
    draws against torch's draws of the same shape (fixed seeds: deterministic)."""
    p = Parameter(numpy.zeros(SHAPE, dtype=numpy.float64))
    assert ours(p, rng=1, **kw) is p
    a = p.data.ravel()
    g = torch.Generator().manual_seed(1)
    t = torch.empty(SHAPE, dtype=torch.float64)
    theirs(t, generator=g, **tkw)
    b = t.numpy().ravel()
    kind, scale = expect
    centre = kw.get("mean", (kw.get("a", 0) + kw.get("b", 0)) / 2 if ours is init.uniform_ else 0.0)
    if kind == "uniform":
        assert float(numpy.abs(a - centre).max()) <= scale
        assert float(numpy.abs(a - centre).max()) == pytest.approx(scale, rel=1e-3)   # fills the interval
        assert float(a.std()) == pytest.approx(scale / math.sqrt(3), rel=0.02)
    else:
        assert float(a.std()) == pytest.approx(scale, rel=0.02)
    assert float(a.mean()) == pytest.approx(centre, abs=0.02 * scale)
    assert float(a.std()) == pytest.approx(float(b.std()), rel=0.02)
    assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_constant_zeros_ones():
    p = Parameter(numpy.full((3, 4), 7.0, dtype=numpy.float32))
    assert init.zeros_(p) is p and not p.data.any() and p.data.dtype == numpy.float32
    init.ones_(p)
    assert (p.data == 1).all()
    init.constant_(p, -2.5)
    assert (p.data == -2.5).all()
    arr = numpy.empty((2, 2))
    assert init.constant_(arr, 3.0) is arr and (arr == 3).all()     # bare arrays too


def test_in_place_keeps_object_dtype_and_grad():
    p = Parameter(numpy.zeros((20, 10), dtype=numpy.float32))
    data, grad = p.data, p.grad
    init.xavier_uniform_(p, rng=0)
    assert p.data is data and p.grad is grad and p.data.dtype == numpy.float32 and p.data.any()


def test_seeded():
    a, b, c = (Parameter(numpy.zeros((30, 20))) for _ in range(3))
    init.kaiming_uniform_(a, a=math.sqrt(5), rng=3)
    init.kaiming_uniform_(b, a=math.sqrt(5), rng=numpy.random.default_rng(3))
    init.kaiming_uniform_(c, a=math.sqrt(5), rng=4)
    assert numpy.array_equal(a.data, b.data) and not numpy.array_equal(a.data, c.data)


def test_bad_arguments_are_named():
    p = Parameter(numpy.zeros((3, 3)))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_uniform_(p, mode="fan_avg")
    with pytest.raises(ValueError, match="std must be >= 0"):
        init.normal_(p, std=-1)
    with pytest.raises(ValueError, match="need a <= b"):
        init.uniform_(p, 1, 0)


# -- the layers' init= --------------------------------------------------------------------------
LAYERS = [lambda s: Linear(300, 40, rng=0, init=s), lambda s: Conv2d(6, 16, (5, 3), rng=0, init=s),
          lambda s: ConvTranspose2d(16, 6, 4, rng=0, init=s)]


@pytest.mark.parametrize("make", LAYERS, ids=["Linear", "Conv2d", "ConvTranspose2d"])
@pytest.mark.parametrize("scheme", ["keras", "glorot"])
def test_keras_init_is_glorot_uniform_with_zero_bias(make, scheme):
    layer = make(scheme)
    fan_in, fan_out = torch_fans(torch.from_numpy(numpy.asarray(layer.weight.data)))
    limit = math.sqrt(6 / (fan_in + fan_out))
    w = layer.weight.data
    assert float(numpy.abs(w).max()) <= limit and float(numpy.abs(w).max()) > 0.95 * limit
    assert float(w.std()) == pytest.approx(limit / math.sqrt(3), rel=0.05)
    assert not layer.bias.data.any() and layer.bias.data.shape == (w.shape[1] if isinstance(layer, ConvTranspose2d)
                                                                    else w.shape[0],)


@pytest.mark.parametrize("make, torch_make", [
    (LAYERS[0], lambda: torch.nn.Linear(300, 40)), (LAYERS[1], lambda: torch.nn.Conv2d(6, 16, (5, 3))),
    (LAYERS[2], lambda: torch.nn.ConvTranspose2d(16, 6, 4))], ids=["Linear", "Conv2d", "ConvTranspose2d"])
def test_pytorch_init_matches_the_torch_layers_bounds(make, torch_make):
    """The default scheme: weight and bias within ±1/√fan_in, as the torch layers draw them."""
    torch.manual_seed(0)
    ours, theirs = make("pytorch"), torch_make()
    bound = 1 / math.sqrt(torch_fans(theirs.weight)[0])
    for a, b in ((ours.weight.data, theirs.weight), (ours.bias.data, theirs.bias)):
        b = b.detach().numpy()
        assert a.shape == b.shape
        assert float(numpy.abs(a).max()) <= bound and float(numpy.abs(b).max()) <= bound
    assert float(ours.weight.data.std()) == pytest.approx(float(theirs.weight.detach().std()), rel=0.05)


def test_pytorch_init_draws_are_unchanged():
    """init="pytorch" keeps tinyae's historical draws: weight, then bias, from one stream."""
    g = numpy.random.default_rng(5)
    bound = 1 / math.sqrt(12)
    w, b = g.uniform(-bound, bound, size=(7, 12)), g.uniform(-bound, bound, size=(7,))
    layer = Linear(12, 7, rng=5)
    numpy.testing.assert_allclose(layer.weight.data, w.astype(numpy.float32))
    numpy.testing.assert_allclose(layer.bias.data, b.astype(numpy.float32))


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Linear\(3, 2\): init must be one of 'pytorch', 'keras', 'glorot'"):
        Linear(3, 2, init="xavier")
    with pytest.raises(ValueError, match="Conv2d.*init must be one of"):
        Conv2d(1, 2, 3, init=None)
