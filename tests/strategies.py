"""Hypothesis strategies and input makers shared by the test files.

* ``seeds``: any NumPy seed (tests make their arrays from ``np.random.default_rng(seed)``).
* ``away_from_zero``, ``distinct``: inputs safe for a gradient check at a kink (ReLU at 0,
  ties in a max).
* ``conv_configs``, ``conv_transpose_configs``, ``pool_configs``: valid (batch, channels,
  size, kernel, stride, padding) combinations of the convolution and pooling layers, drawn
  small enough for the plain-loop references.
* ``auc_by_pairs``: the ROC AUC by brute force (tests/test_metrics.py, tests/test_plot.py).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

seeds = st.integers(0, 2**32 - 1)


def away_from_zero(rng, shape, dtype=np.float64, low=0.1, high=2.0):
    """Values with |v| in [low, high] and random sign: no element near ReLU's kink."""
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (sign * rng.uniform(low, high, size=shape)).astype(dtype)


def distinct(rng, shape, dtype=np.float64, spacing=0.05):
    """A shuffled grid of distinct values ``spacing`` apart (no ties for max pooling, so it is
    differentiable there with margin).  ``rng``: a Generator or an int seed."""
    n = math.prod(shape)
    return ((np.random.default_rng(rng).permutation(n) - n / 2.0) * spacing).reshape(shape).astype(dtype)


@st.composite
def conv_configs(draw, max_hw=9, asymmetric=False, max_stride=3):
    """A Conv2d problem: n, c, f, kernel, stride (up to ``max_stride``), padding (PH, PW), h, w,
    bias, and ``pads`` (PT, PB, PL, PR): symmetric, or with ``asymmetric`` each side drawn on
    its own (what ``padding='same'`` gives an even kernel).  The padded input holds the kernel."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    pads = (ph, draw(st.integers(0, 2)), pw, draw(st.integers(0, 2))) if asymmetric else (ph, ph, pw, pw)
    return dict(
        n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), f=draw(st.integers(1, 3)),
        kernel=(kh, kw), stride=(draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))),
        padding=(ph, pw), pads=pads,
        h=draw(st.integers(max(1, kh - pads[0] - pads[1]), max_hw)),
        w=draw(st.integers(max(1, kw - pads[2] - pads[3]), max_hw)),
        bias=draw(st.booleans()))


@st.composite
def conv_transpose_configs(draw, max_hw=5):
    """A ConvTranspose2d problem: n, c, f, kernel, stride, padding, output_padding (< stride),
    h, w, bias, with a positive output size."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cfg = dict(
        n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), f=draw(st.integers(1, 3)),
        kernel=(kh, kw), stride=(sh, sw), padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        output_padding=(draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))),
        h=draw(st.integers(1, max_hw)), w=draw(st.integers(1, max_hw)), bias=draw(st.booleans()))
    (ph, pw), (oph, opw) = cfg["padding"], cfg["output_padding"]
    assume((cfg["h"] - 1) * sh - 2 * ph + kh + oph > 0 and (cfg["w"] - 1) * sw - 2 * pw + kw + opw > 0)
    return cfg


@st.composite
def pool_configs(draw, max_hw=9):
    """Kernel, stride and padding as PyTorch allows them (padding at most half the kernel)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)),
                kernel=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=(ph, pw),
                h=draw(st.integers(max(1, kh - 2 * ph), max_hw)), w=draw(st.integers(max(1, kw - 2 * pw), max_hw)))


def shape_of(cfg):
    """The NCHW input shape of a conv or pool configuration."""
    return cfg["n"], cfg["c"], cfg["h"], cfg["w"]


def auc_by_pairs(scores, labels):
    """Brute force: the share of (positive, negative) pairs ordered right, ties counting ½."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))
