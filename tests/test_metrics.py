"""tinyae.metrics: roc_auc against brute-force pair counting (ties ½), roc_curve's area, bad input."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from strategies import auc_by_pairs
from tinyae import metrics


def test_roc_auc_known_cases():
    y = np.array([0, 0, 0, 1, 1])
    assert metrics.roc_auc([0.1, 0.2, 0.3, 0.8, 0.9], y) == 1.0
    assert metrics.roc_auc([0.9, 0.8, 0.7, 0.2, 0.1], y) == 0.0
    assert metrics.roc_auc(np.full(5, 3.0), y) == 0.5
    # by hand: positives 0.4, 0.6; negatives 0.1, 0.4, 0.7
    #   0.4 vs (0.1 win, 0.4 tie, 0.7 loss) = 1.5; 0.6 vs (win, win, loss) = 2 → 3.5 / 6
    assert metrics.roc_auc([0.1, 0.4, 0.7, 0.4, 0.6], [False, False, False, True, True]) == pytest.approx(3.5 / 6)
    assert metrics.roc_auc(np.array([1, 2, 3]), np.array([True, False, True])) == pytest.approx(0.5)


@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=40)
       .filter(lambda rows: 0 < sum(y for _, y in rows) < len(rows)),
       st.sampled_from([1.0, 0.25, -3.0]))
def test_roc_auc_matches_pair_counting(rows, unit):
    """Small integer scores (times a unit) make many ties."""
    scores = np.array([s * unit for s, _ in rows])
    labels = np.array([y for _, y in rows])
    auc = metrics.roc_auc(scores, labels)
    assert auc == pytest.approx(auc_by_pairs(scores, labels), abs=1e-12)
    assert metrics.roc_auc(-scores, labels) == pytest.approx(1 - auc, abs=1e-12)
    fpr, tpr = metrics.roc_curve(scores, labels)        # the drawn curve has the same area
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(auc, abs=1e-12)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=30), st.data())
def test_roc_auc_matches_pair_counting_floats(scores, data):
    labels = data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores))
                       .filter(lambda ys: 0 < sum(ys) < len(ys)))
    assert metrics.roc_auc(scores, labels) == pytest.approx(auc_by_pairs(scores, labels), abs=1e-12)


def test_roc_auc_bad_input():
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="same length"):
        metrics.roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="0/1"):
        metrics.roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc([np.nan, 0.2], [0, 1])
