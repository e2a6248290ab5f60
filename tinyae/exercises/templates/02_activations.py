"""Exercise 2: element-wise activations, Sigmoid, Tanh and LeakyReLU.

Read first: docs/backprop.md, section "Element-wise activations".

Every array here has one shape (…): y = f(x) element by element, so ∂y[j]/∂x[i] is 0
unless i = j and the chain rule has one term per element:

    dx = dy ⊙ f'(x)

What matters is what forward caches.  Write each derivative with the cached array:

    Sigmoid    y = σ(x) = 1 / (1 + e^{−x})     f'(x) = σ(x)(1 − σ(x)) = y (1 − y)    caches y
    Tanh       y = tanh x                      f'(x) = 1 − tanh² x    = 1 − y²       caches y
    LeakyReLU  y = x if x > 0 else a·x         f'(x) = 1 if x > 0 else a             caches x > 0

None of them has parameters; backward returns dx (None when need_dx is False).  Keep the
dtype: float32 in, float32 out (``np.where(mask, 1, a)`` builds a float64 array).

Check:  python -m tinyae.exercises check DIR activations
"""
import numpy as np

from tinyae.nn import Module


class Sigmoid(Module):
    def forward(self, x):
        with np.errstate(over="ignore"):             # e^{−x} = inf for x ≪ 0 gives σ = 0, the right limit
            self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, dy, need_dx=True):
        # your code
        raise NotImplementedError


class Tanh(Module):
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy, need_dx=True):
        # your code
        raise NotImplementedError


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy, need_dx=True):
        # your code
        raise NotImplementedError
