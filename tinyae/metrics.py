"""Scores of a detector: the ROC curve and the area under it.

An anomaly detector gives each sample a score (higher = more anomalous, e.g. an
autoencoder's reconstruction error) and the ground truth says which samples are
anomalies (positives).  For P positives and Q negatives:

    roc_auc(scores, labels)    P(score of a positive > score of a negative), ties ½
    roc_curve(scores, labels)  (fpr, tpr) at every distinct threshold

Both take host or device 1-D arrays (or lists) and compute on the host in float64;
:func:`tinyae.plot.save_roc` draws the curve.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy

__all__ = ["roc_auc", "roc_curve"]


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
