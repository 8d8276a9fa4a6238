"""evo2kit.analysis.stats: the block bootstrap (whole groups resampled) for AUROC and Spearman's rho."""

import numpy as np
import pytest

from evo2kit.analysis import stats


def test_grouped_auroc_is_sklearn_under_repeats_and_resamples_whole_groups():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y, s = rng.random(400) < 0.3, np.round(rng.normal(size=400), 1)  # rounded: ties
    w = rng.integers(0, 3, (5, 400)).astype(float)
    for row, got in zip(w, stats.weighted_auroc(y, s, w)):
        idx = np.repeat(np.arange(400), row.astype(int))
        assert got == pytest.approx(roc_auc_score(y[idx], s[idx]))
    auc, lo, hi = stats.grouped_auroc_ci(y, s + y, np.arange(400) // 20, n_boot=300)
    assert auc == pytest.approx(roc_auc_score(y, s + y)) and lo < auc < hi
    assert stats.grouped_auroc_ci(y, y.astype(float), np.arange(400) // 20, n_boot=50) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        stats.grouped_auroc_ci(y, s, np.arange(10))


def test_grouped_intervals_are_wider_when_members_of_a_group_move_together():
    """Three values per position share a component: resampling them one by one pretends to more
    independent data than there is, so its interval is narrower than the whole-position one."""
    rng = np.random.default_rng(0)
    pos = np.repeat(np.arange(60), 3)
    x = rng.normal(size=180) + np.repeat(rng.normal(size=60), 3)
    y = x + rng.normal(size=180) + np.repeat(rng.normal(size=60), 3)
    rho, lo_one, hi_one = stats.spearman_ci(x, y, n_boot=500)
    _, lo_pos, hi_pos = stats.spearman_ci(x, y, groups=pos, n_boot=500)
    assert lo_pos < lo_one < rho < hi_one < hi_pos
    labels = np.repeat(rng.random(60) < 0.4, 3)
    _, lo_one, hi_one = stats.auroc_ci(labels, x, n_boot=500)
    _, lo_pos, hi_pos = stats.grouped_auroc_ci(labels, x, pos, n_boot=500)
    assert hi_pos - lo_pos > hi_one - lo_one
    with pytest.raises(ValueError, match="at least 3"):
        stats.spearman_ci([1.0, 2.0], [1.0, 2.0])
