"""Scores of a detector (the ROC curve and the area under it) and a VAE's log-likelihood.

An anomaly detector gives each sample a score (higher = more anomalous, e.g. an
autoencoder's reconstruction error) and the ground truth says which samples are
anomalies (positives).  For P positives and Q negatives:

    roc_auc(scores, labels)    P(score of a positive > score of a negative), ties ½
    roc_curve(scores, labels)  (fpr, tpr) at every distinct threshold

Both take host or device 1-D arrays (or lists) and compute on the host in float64;
:func:`tinyae.plot.save_roc` draws the curve.

    iwae_bound(vae, x, k)      the k-sample importance-weighted lower bound on log p(x), in nats
"""
from __future__ import annotations

import math

import numpy as np

from . import backend
from ._checks import float_array, positive_int
from .backend import to_numpy
from .losses import BCEWithLogitsLoss, MSELoss

__all__ = ["roc_auc", "roc_curve", "iwae_bound"]


def _scores_labels(scores, labels):
    s = np.asarray(to_numpy(scores))
    y = np.asarray(to_numpy(labels))
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D of the same length, got {s.shape} and {y.shape}")
    if s.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be booleans or 0/1 (1 = anomaly / positive)")
    y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"labels need both classes: got {n_pos} positives and {y.size - n_pos} negatives")
    return s, y


def roc_auc(scores, labels):
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting ½.

    The rank form of the Mann–Whitney U statistic: rank all scores (tied scores
    share their average rank), R = sum of the positives' ranks, then
    AUC = (R − P(P+1)/2) / (P·Q) for P positives and Q negatives.  Higher
    scores mean "more likely positive" (anomalous).
    """
    s, y = _scores_labels(scores, labels)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # tie groups in the sorted order: [start, end) ranges of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg_rank = (starts + 1 + ends) / 2.0            # mean of ranks start+1 .. end (1-based)
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(avg_rank, ends - starts)
    p = int(y.sum())
    q = s.size - p
    return float((ranks[y].sum() - p * (p + 1) / 2.0) / (p * q))


def roc_curve(scores, labels):
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1); ties move diagonally."""
    s, y = _scores_labels(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_group]
    fp = np.cumsum(~y)[last_of_group]
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    return fpr, tpr


# -- a VAE's log-likelihood --------------------------------------------------------------------

def iwae_bound(vae, x, k: int, seed: int = 0, max_rows: int = 1 << 14):
    r"""The k-sample importance-weighted bound on log p(x) of each sample (Burda et al., 2016):

        log p(x) ≥ L_k(x) = E[ log (1/k) Σ_i p(x, z_i) / q(z_i | x) ],   z_i ~ q(z | x)
                 log w_i = log p(x | z_i) + log N(z_i; 0, I) − log N(z_i; μ, diag e^ℓ)

    L_1 is the ELBO; L_k grows with k and tends to log p(x).  Returns a float64 host array
    (N,) of one estimate per sample, in nats (log-mean-exp over the k draws, numerically
    stable).  ``vae``: a model with ``encode(x) -> (μ, ℓ = log σ²)``, a ``decoder`` and a
    ``recon_loss`` (tinyae.models.VAE, the main job's VAE); its loss decides p(x | z):

    * ``MSELoss("sum")``: the decoder's output x̂ is the mean of N(x̂, ½ I), the Gaussian whose
      negative log-density is Σ (x − x̂)² + (D/2) log π.  The constant is included, so the
      number is a log-density of continuous pixels (it can be positive).
    * ``BCEWithLogitsLoss("sum")``: the decoder gives logits of independent Bernoullis,
      log p(x | z) = −BCE.  A normalised likelihood for binary pixels (binarised MNIST, as
      the literature reports); on grey pixels it is not a density (the continuous Bernoulli
      would need its normaliser), only the same bound on the cross-entropy objective.

    ε is drawn on the host from ``numpy.random.default_rng(seed)`` (the same numbers on NumPy
    and CuPy); the decoder runs on at most ``max_rows`` codes at a time, so k = 1000 fits.
    """
    where = "iwae_bound"
    k = positive_int(k, "k (the number of importance samples)", where)
    float_array(x, "x", where)
    loss = getattr(vae, "recon_loss", None)
    if not (hasattr(vae, "encode") and hasattr(vae, "decoder")) or \
            not isinstance(loss, (MSELoss, BCEWithLogitsLoss)) or loss.reduction != "sum":
        raise TypeError(f"{where}: expected a VAE with encode(x) -> (mean, logvar), a decoder and a summed "
                        f"MSELoss or BCEWithLogitsLoss (tinyae.models.VAE), got {type(vae).__name__}")
    if getattr(vae, "parameterisation", "consistent") != "consistent":
        raise ValueError(f"{where}: a {type(vae).__name__} with parameterisation="
                         f"{vae.parameterisation!r} samples z from another distribution than its KL "
                         "describes; its bound is not defined (use parameterisation='consistent')")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    was_training = vae.training
    vae.eval()
    try:
        rows = max(1, max_rows // k)                  # samples per chunk, k draws each
        out = [_iwae_chunk(vae, x[i:i + rows], k, rng, max_rows, isinstance(loss, MSELoss))
               for i in range(0, n, rows)]
    finally:
        vae.train(was_training)
    return np.concatenate(out)


_LOG_PI, _LOG_2PI = math.log(math.pi), math.log(2 * math.pi)


def _iwae_chunk(vae, x, k, rng, max_rows, gaussian):
    """L_k of the samples x (n, D): their k draws in blocks of at most max_rows codes."""
    xp = backend.get_array_module(x)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    d = flat.shape[1]
    mean, logvar = vae.encode(x)                                  # (n, K)
    std = xp.exp(logvar * logvar.dtype.type(0.5))
    kz = mean.shape[1]
    top, total = np.full(n, -np.inf), np.zeros(n)                # running log-sum-exp over the draws
    step = max(1, max_rows // n)
    for start in range(0, k, step):
        m = min(step, k - start)
        eps = backend.device_noise(rng, "normal", (m, n, kz), mean)   # (m, n, K)
        z = mean + std * eps
        out = vae.decoder(z.reshape(m * n, kz)).reshape(m, n, d)
        target = flat[None]
        if gaussian:   # N(x̂, ½ I): −Σ (x − x̂)² − (D/2) log π
            log_px = -((out - target) ** 2).sum(axis=2) - d / 2 * _LOG_PI
        else:          # Bernoulli(σ(logits)): −BCE in the logits form
            log_px = -(xp.logaddexp(0, out) - target * out).sum(axis=2)
        log_pz = -0.5 * (z * z).sum(axis=2) - kz / 2 * _LOG_2PI     # Python floats: the model's dtype stays
        log_qz = -0.5 * (eps * eps + logvar[None] + _LOG_2PI).sum(axis=2)
        log_w = to_numpy(log_px + log_pz - log_qz).astype(np.float64)   # (m, n)
        new_top = np.maximum(top, log_w.max(axis=0))
        total = total * np.exp(top - new_top) + np.exp(log_w - new_top).sum(axis=0)
        top = new_top
    return top + np.log(total / k)

