"""Fully connected layer."""
from __future__ import annotations

from .. import backend
from .init import as_generator, fan_in_bound, uniform_parameter
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

    Init (PyTorch's default): W, b ~ U(-1/√D, 1/√D), drawn from ``rng`` (int seed or Generator).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: feature sizes must be positive, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        bound = fan_in_bound(in_features)
        rng = as_generator(rng)  # one stream: an int seed must not restart it for the bias
        self.weight = uniform_parameter((out_features, in_features), bound, rng)
        self.bias = uniform_parameter((out_features,), bound, rng) if bias else None
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
        self.weight.grad += dy.T @ self.x
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data if self.needs_input_grad else None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


