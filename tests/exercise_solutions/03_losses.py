"""Exercise 3: two losses, MSE and binary cross-entropy from logits.

Read first: docs/backprop.md, section "Losses".

A loss is an element-wise ℓ_i followed by a reduction over all n elements of the batch:
"mean" (L = (1/n) Σ ℓ_i, so s = 1/n) or "sum" (L = Σ ℓ_i, s = 1).  Then always

    dL/dp_i = ℓ'(p_i) · s            (same shape as p)

    MSELoss             ℓ = (p − t)²                     ℓ' = 2 (p − t)
    BCEWithLogitsLoss   ℓ = softplus(z) − t z            ℓ' = σ(z) − t    (softplus' = σ)

Shapes: p (or the logits z) and t are any shape (…), n = p.size; ``loss(p, t)`` returns the
scalar L and remembers what ``backward()`` needs; ``backward()`` takes no argument and
returns dL/dp.  Keep the dtype: float32 in, float32 out (multiply by ``p.dtype.type(s)``,
or divide by n: both keep float32).

Check:  python -m tinyae.exercises check DIR losses
"""
import numpy as np


class MSELoss:
    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def __call__(self, pred, target):
        self.diff = pred - target                   # what backward needs
        squared = self.diff * self.diff
        return squared.mean() if self.reduction == "mean" else squared.sum()

    def backward(self):
        scale = 1 / self.diff.size if self.reduction == "mean" else 1
        return self.diff * self.diff.dtype.type(2 * scale)


class BCEWithLogitsLoss:
    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def __call__(self, logits, target):
        self.logits, self.target = logits, target
        # softplus(z) = log(1 + e^z) = max(z, 0) + log(1 + e^{−|z|}): no overflow for any z
        softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
        elementwise = softplus - target * logits
        return elementwise.mean() if self.reduction == "mean" else elementwise.sum()

    def backward(self):
        scale = 1 / self.logits.size if self.reduction == "mean" else 1
        sigma = 1 / (1 + np.exp(-self.logits))
        return (sigma - self.target) * self.logits.dtype.type(scale)
