"""Fully connected layers: Linear, and TiedLinear (the transpose of a Linear, sharing its weight)."""
from __future__ import annotations

from .._checks import boolean, positive_int
from .init import fan_in_bound, layer_parameters, uniform_parameter
from .module import Module


class Linear(Module):
    r"""y = x Wᵀ + b

    Shapes: x (N, D), W (M, D) as in PyTorch (``weight``), b (M,) (``bias``), y (N, M).

    Backward, given dL/dy = dy (N, M):
        dL/dx = dy W           (N, M)·(M, D) → (N, D)
        dL/dW = dyᵀ x          (M, N)·(N, D) → (M, D)   (summed over the batch by the product)
        dL/db = Σ_n dy[n]      (M,)
    Each row of x only meets W through a dot product, so the chain rule is one
    matrix product per gradient.  ``backward(dy, need_dx=False)`` (the first layer of a
    model: x is data) skips the first product and returns None.

    Init, drawn from ``rng`` (int seed or Generator): ``init="pytorch"`` (default) W, b ~
    U(-1/√D, 1/√D); ``init="keras"`` (or "glorot") W ~ U(-l, l), l = √(6/(D + M)), b = 0
    (see :mod:`tinyae.nn.init`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None, init="pytorch"):
        super().__init__()
        in_features = positive_int(in_features, "in_features", "Linear")
        out_features = positive_int(out_features, "out_features", "Linear")
        bias = boolean(bias, "bias", "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight, self.bias = layer_parameters((out_features, in_features), out_features if bias else None,
                                                  init, rng, f"Linear({in_features}, {out_features})")
        self.x = None

    def forward(self, x):
        self._check_input(x, ndim=2, shape_tail=(self.in_features,))
        self.x = x
        y = x @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, dy, need_dx=True):
        self._require_cache("x")
        self._check_dy(dy, (self.x.shape[0], self.out_features), self.x.dtype)
        self.weight.grad += dy.T @ self.x
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data if need_dx else None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class TiedLinear(Module):
    r"""The transpose of an encoder's Linear, sharing its weight: y = x W + c.

    Shapes: W (M, D) is the *same* Parameter as ``linear.weight`` (the encoder maps D → M),
    x (N, M), c (D,) this layer's own ``bias``, y (N, D).

    Backward, given dy (N, D):
        dL/dx = dy Wᵀ                       (N, M)
        dL/dW += xᵀ dy                      (M, D)  — added into the shared Parameter's grad,
                                            so it holds encoder + decoder contributions
        dL/dc = Σ_n dy[n]                   (D,)
    ``named_parameters`` of a model lists the shared weight once (under the encoder).
    """

    def __init__(self, linear: Linear, bias: bool = True, rng=None):
        super().__init__()
        if not isinstance(linear, Linear):
            raise TypeError(f"TiedLinear ties to a Linear layer, got {type(linear).__name__}")
        bias = boolean(bias, "bias", "TiedLinear")
        self.weight = linear.weight
        self.in_features, self.out_features = linear.out_features, linear.in_features
        self.bias = uniform_parameter((self.out_features,), fan_in_bound(self.in_features), rng) if bias else None
        self.x = None

    def forward(self, x):
        self._check_input(x, ndim=2, shape_tail=(self.in_features,))
        self.x = x
        y = x @ self.weight.data
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, dy, need_dx=True):
        self._require_cache("x")
        self._check_dy(dy, (self.x.shape[0], self.out_features), self.x.dtype)
        self.weight.grad += self.x.T @ dy
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data.T if need_dx else None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, tied, bias={self.bias is not None}"
