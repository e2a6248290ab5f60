r"""Parameter initialisation: the usual schemes, as ``torch.nn.init`` names them.

Every draw is made on the host with a seeded NumPy Generator and then copied to the
parameter's device with its dtype, so the same seed gives the same weights on NumPy and
CuPy.  The in-place functions (trailing underscore, as in PyTorch) take a
:class:`~tinyae.nn.Parameter` (or a bare array) and return it::

    from tinyae.nn import init
    layer = Linear(784, 32)
    init.xavier_uniform_(layer.weight, rng=0)      # Keras's default kernel initialiser
    init.zeros_(layer.bias)                        # Keras's default bias

Fans (:func:`fans`), computed from the weight's shape exactly as PyTorch does
(``torch.nn.init._calculate_fan_in_and_fan_out``): axis 0 is the "output" axis, axis 1 the
"input" axis, and every further axis is the receptive field::

    receptive = prod(shape[2:])          (1 for a matrix)
    fan_in    = shape[1] · receptive
    fan_out   = shape[0] · receptive

so, with tinyae's PyTorch layouts,

    Linear           weight (out, in)                fan_in = in,            fan_out = out
    Conv2d           weight (out, in, kh, kw)        fan_in = in·kh·kw,      fan_out = out·kh·kw
    ConvTranspose2d  weight (in, out, kh, kw)        fan_in = out·kh·kw,     fan_out = in·kh·kw

(the transposed convolution's "fan_in" is its *output* channels: PyTorch reads axis 1 as the
input axis whatever the layer.  Keras's ``compute_fans`` on its own layouts — Dense (in, out),
Conv2D (kh, kw, in, out), Conv2DTranspose (kh, kw, out, in) — gives the same numbers.)

The schemes (U(a, b) uniform, N(μ, σ²) normal, g a gain, see :func:`calculate_gain`):

    xavier_uniform_ / glorot_uniform_   U(−l, l),  l = g · √(6 / (fan_in + fan_out))     Keras's default
    xavier_normal_  / glorot_normal_    N(0, σ²),  σ = g · √(2 / (fan_in + fan_out))
    kaiming_uniform_ / he_uniform_      U(−l, l),  l = √3 · gain(a) / √fan,  gain(a) = √(2 / (1 + a²))
    kaiming_normal_  / he_normal_       N(0, σ²),  σ = gain(a) / √fan
    uniform_, normal_, constant_, zeros_, ones_

PyTorch's default for Linear/Conv (``init="pytorch"`` on the layers) is
``kaiming_uniform_(w, a=√5)``: gain = √(2/6), so l = √3·√(1/3)/√fan_in = 1/√fan_in, and the
bias is U(−1/√fan_in, 1/√fan_in) with the weight's fan_in.  Keras's default
(``init="keras"`` or ``"glorot"``) is ``glorot_uniform`` for the weight and zeros for the bias.
(Keras's *GlorotNormal* draws a truncated normal; :func:`xavier_normal_` follows PyTorch: a
plain normal.)
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from .module import Parameter

__all__ = ["as_generator", "uniform_parameter", "fan_in_bound", "fans", "calculate_gain",
           "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "xavier_uniform_", "xavier_normal_", "glorot_uniform_", "glorot_normal_",
           "kaiming_uniform_", "kaiming_normal_", "he_uniform_", "he_normal_",
           "SCHEMES", "check_scheme", "layer_parameters", "init_module_"]


def as_generator(rng, where: str = "rng") -> numpy.random.Generator:
    """``rng`` may be None (fresh entropy), an int seed >= 0, or a numpy Generator (or a
    SeedSequence / BitGenerator).  ``where`` names the argument in the error message."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numpy.random.SeedSequence, numpy.random.BitGenerator)):
        return numpy.random.default_rng(rng)
    if isinstance(rng, (bool, numpy.bool_)) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"{where} must be None, an int seed >= 0 or a numpy.random.Generator, got "
                        f"{rng!r} ({type(rng).__name__})")
    if rng < 0:
        raise ValueError(f"{where} must be an int seed >= 0 (NumPy's seeds are non-negative), got {rng}")
    return numpy.random.default_rng(int(rng))


def uniform_parameter(shape, bound: float, rng) -> Parameter:
    """A Parameter drawn from U(-bound, bound): PyTorch's default for Linear and Conv
    (kaiming_uniform with a=√5 gives bound = 1/√fan_in, the bias uses the same bound)."""
    host = as_generator(rng).uniform(-bound, bound, size=shape)
    return Parameter(backend.asarray(host, dtype=backend.default_dtype()))


def fan_in_bound(fan_in: int) -> float:
    """1/√fan_in (0 for an empty fan): the bound of PyTorch's default U(−bound, bound)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


# -- fans and gains --------------------------------------------------------------------------
def fans(shape) -> tuple:
    """(fan_in, fan_out) of a weight of this shape, as PyTorch computes them (module docstring).

    A weight needs at least two axes (a bias has no fan of its own); a ValueError otherwise.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"fans: a weight needs at least 2 dimensions to have a fan-in and fan-out, "
                         f"got shape {shape} (a bias takes the fan-in of its layer's weight)")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str = "linear", param=None) -> float:
    """The gain g PyTorch recommends for a nonlinearity (``torch.nn.init.calculate_gain``):
    linear/identity/conv/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2 / (1 + a²)) with
    negative slope a (``param``, default 0.01), selu 3/4."""
    if nonlinearity in ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d",
                        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        if isinstance(a, bool) or not isinstance(a, numbers.Real):
            raise ValueError(f"calculate_gain: negative_slope {a!r} is not a number")
        return math.sqrt(2.0 / (1.0 + float(a) ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected linear, "
                     f"sigmoid, tanh, relu, leaky_relu, selu or a conv name")


def _fan(shape, mode):
    fan_in, fan_out = fans(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


# -- the in-place functions ------------------------------------------------------------------
def _fill(target, host):
    """Write the host array into ``target`` (a Parameter or an array) on its device and dtype."""
    data = target.data if isinstance(target, Parameter) else target
    xp = backend.get_array_module(data)
    data[...] = xp.asarray(host, dtype=data.dtype)
    return target


def _shape(target):
    return tuple((target.data if isinstance(target, Parameter) else target).shape)


def uniform_(target, a: float = 0.0, b: float = 1.0, rng=None):
    """Fill with U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    return _fill(target, as_generator(rng).uniform(a, b, size=_shape(target)))


def normal_(target, mean: float = 0.0, std: float = 1.0, rng=None):
    """Fill with N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(target, as_generator(rng).normal(mean, std, size=_shape(target)))


def constant_(target, val: float):
    """Fill with the constant ``val``."""
    return _fill(target, numpy.full(_shape(target), float(val)))


def zeros_(target):
    """Fill with 0 (Keras's default bias)."""
    return constant_(target, 0.0)


def ones_(target):
    """Fill with 1."""
    return constant_(target, 1.0)


def xavier_uniform_(target, gain: float = 1.0, rng=None):
    """Glorot & Bengio (2010): U(−l, l) with l = gain · √(6 / (fan_in + fan_out)), so that
    Var w = l²/3 = 2 gain² / (fan_in + fan_out).  Keras's default kernel initialiser."""
    fan_in, fan_out = fans(_shape(target))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(target, -bound, bound, rng)


def xavier_normal_(target, gain: float = 1.0, rng=None):
    """Glorot & Bengio (2010), normal form: N(0, σ²) with σ = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(_shape(target))
    return normal_(target, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def kaiming_uniform_(target, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     rng=None):
    """He et al. (2015): U(−l, l) with l = √3 · g / √fan, g = calculate_gain(nonlinearity, a)
    (for leaky_relu g = √(2 / (1 + a²))), fan = fan_in or fan_out (``mode``).
    PyTorch's default for Linear and Conv is a = √5: l = 1/√fan_in."""
    gain = calculate_gain(nonlinearity, a)
    bound = math.sqrt(3.0) * gain / math.sqrt(_fan(_shape(target), mode))
    return uniform_(target, -bound, bound, rng)


def kaiming_normal_(target, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    rng=None):
    """He et al. (2015), normal form: N(0, σ²) with σ = g / √fan (g as in :func:`kaiming_uniform_`)."""
    gain = calculate_gain(nonlinearity, a)
    return normal_(target, 0.0, gain / math.sqrt(_fan(_shape(target), mode)), rng)


glorot_uniform_, glorot_normal_ = xavier_uniform_, xavier_normal_
he_uniform_, he_normal_ = kaiming_uniform_, kaiming_normal_


# -- the layers' ``init=`` choice ------------------------------------------------------------
SCHEMES = ("pytorch", "keras", "glorot")


def check_scheme(init, layer: str) -> str:
    """``init`` if it names a layer scheme, else a ValueError that lists them."""
    if init not in SCHEMES:
        raise ValueError(f"{layer}: init must be one of {', '.join(map(repr, SCHEMES))} "
                         f"(PyTorch's default, or Keras's Glorot-uniform weights with zero biases), "
                         f"got {init!r}")
    return init


def layer_parameters(weight_shape, bias_size, init: str, rng, layer: str = "layer"):
    """(weight, bias or None) Parameters for a Linear/Conv layer under the scheme ``init``;
    ``bias_size`` is the layer's output count (None: no bias), ``layer`` names it in errors.

    "pytorch": w ~ U(−1/√fan_in, 1/√fan_in) (kaiming_uniform_ with a = √5), then
               b ~ U(−1/√fan_in, 1/√fan_in) with the weight's fan_in — both from one stream,
               weight first (so a seed gives the same layer on every backend and version).
    "keras" / "glorot": w ~ glorot_uniform (U(−l, l), l = √(6/(fan_in + fan_out))), b = 0.
    """
    check_scheme(init, layer)
    rng = as_generator(rng)  # one stream: an int seed must not restart it for the bias
    fan_in, fan_out = fans(weight_shape)
    if init == "pytorch":
        bound = fan_in_bound(fan_in)
        w = uniform_parameter(weight_shape, bound, rng)
        b = None if bias_size is None else uniform_parameter((bias_size,), bound, rng)
        return w, b
    w = uniform_parameter(weight_shape, math.sqrt(6.0 / (fan_in + fan_out)), rng)
    b = None if bias_size is None else Parameter(backend.asarray(numpy.zeros(bias_size),
                                                                 dtype=backend.default_dtype()))
    return w, b


def init_module_(module, init: str, rng=None):
    """Re-initialise every Linear, Conv2d and ConvTranspose2d inside ``module`` in place
    (module order, one stream ``rng``), under the scheme ``init`` of :func:`layer_parameters`;
    layers that only own a bias (a TiedLinear decoder) get the scheme's bias: zeros for
    "keras"/"glorot", U(±1/√fan_in) for "pytorch".  Returns ``module``.  The Parameter objects
    are kept (tied weights stay tied, optimizers made before still hold them)."""
    from .conv import Conv2d, ConvTranspose2d   # the layers import this module
    from .linear import Linear
    check_scheme(init, type(module).__name__)
    rng = as_generator(rng)
    for m in module.modules():
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        if isinstance(m, (Linear, Conv2d, ConvTranspose2d)):
            fan_in, fan_out = fans(weight.shape)
            if init == "pytorch":
                bound = fan_in_bound(fan_in)
                uniform_(weight, -bound, bound, rng)
                if bias is not None:
                    uniform_(bias, -bound, bound, rng)
            else:
                xavier_uniform_(weight, rng=rng)
                if bias is not None:
                    zeros_(bias)
        elif isinstance(bias, Parameter) and weight is not None and init != "pytorch":
            zeros_(bias)
        elif isinstance(bias, Parameter) and weight is not None:
            bound = fan_in_bound(getattr(m, "in_features", fans(weight.shape)[0]))
            uniform_(bias, -bound, bound, rng)
    return module
