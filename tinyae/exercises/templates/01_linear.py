"""Exercise 1: Linear, y = x Wᵀ + b.

Read first: tinyae/nn/module.py (the contract a layer keeps) and docs/backprop.md,
section "Linear".

Shapes: x (N, D), W (M, D) (``self.weight``), b (M,) (``self.bias``), y (N, M).

Given dy = ∂L/∂y (N, M), ``backward(dy, need_dx=True)`` must

    add   ∂L/∂W = dyᵀ x          (M, N)·(N, D) → (M, D)   into self.weight.grad
    add   ∂L/∂b = Σ_n dy[n, :]   (M,)                     into self.bias.grad
    return ∂L/∂x = dy W          (N, M)·(M, D) → (N, D)   (None when need_dx is False)

"Add" means ``+=``: a weight used twice (tied weights) collects both gradients, and
``zero_grad()`` clears them before each step.  The forward caches x, which is all backward
needs.  Keep the dtype: float32 in, float32 out.

Check:  python -m tinyae.exercises check DIR linear
"""
import numpy as np

from tinyae.nn import Module
from tinyae.nn.init import layer_parameters


class Linear(Module):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # W, b ~ U(-1/√D, 1/√D), drawn from rng as tinyae's own Linear draws them
        self.weight, self.bias = layer_parameters((out_features, in_features), out_features, "pytorch", rng)
        self.x = None

    def forward(self, x):
        self.x = x                                   # (N, D), kept for backward
        return x @ self.weight.data.T + self.bias.data

    def backward(self, dy, need_dx=True):
        # your code: add into self.weight.grad and self.bias.grad, then return dx (or None)
        raise NotImplementedError
