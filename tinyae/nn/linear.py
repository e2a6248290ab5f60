"""Fully connected layer."""
from __future__ import annotations

from .._checks import boolean, positive_int
from .init import layer_parameters
from .module import Module


class Linear(Module):
    r"""y = x Wᵀ + b

    Shapes: x (N, D), W (M, D) as in PyTorch (``weight``), b (M,) (``bias``), y (N, M).

    Backward, given dL/dy = dy (N, M):
        dL/dx = dy W           (N, M)·(M, D) → (N, D)
        dL/dW = dyᵀ x          (M, N)·(N, D) → (M, D)   (summed over the batch by the product)
        dL/db = Σ_n dy[n]      (M,)
    Each row of x only meets W through a dot product, so the chain rule is one
    matrix product per gradient.  With ``needs_input_grad`` False (the first layer of a
    model: x is data) the first product is skipped and backward returns None.

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

    def backward(self, dy):
        self._require_cache("x")
        self._check_dy(dy, (self.x.shape[0], self.out_features), self.x.dtype)
        self.weight.grad += dy.T @ self.x
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data if self.needs_input_grad else None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


