"""Exercise 8: Adam's update, with bias correction.

Read first: tinyae/optim.py (``Adam.update``) and docs/backprop.md, section "Optimizers".

One step t = 1, 2, 3, … for a parameter θ with gradient g, all arrays of θ's shape:

    m ← β₁ m + (1 − β₁) g                     first moment (m starts at 0)
    v ← β₂ v + (1 − β₂) g²                    second moment (v starts at 0)
    m̂ = m / (1 − β₁ᵗ),   v̂ = v / (1 − β₂ᵗ)     bias correction: early m, v lean towards 0
    θ ← θ − lr · m̂ / (√v̂ + ε)

Update ``param``, ``m`` and ``v`` in place (``m *= …``, ``m += …``, ``param -= …``): the
caller keeps those arrays from step to step; ``m = …`` would only rebind a local name.
Return nothing.  The checker runs several steps and compares with ``tinyae.optim.Adam``.

Check:  python -m tinyae.exercises check DIR adam
"""
import numpy as np


def adam_update(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    # your code: update param, m and v in place
    raise NotImplementedError
