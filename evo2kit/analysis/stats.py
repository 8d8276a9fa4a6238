"""Statistics of a score against labels: AUROC with bootstrap intervals, and differences of means.

    auroc, lo, hi = auroc_ci(table["class"] == "LOF", -table["delta"])
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score


def auroc_ci(labels, scores, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(AUROC, lower, upper): the percentile bootstrap interval over ``n_boot`` resamples of the
    variants, each resample stratified by label so both classes are always present.

    labels (N,) bool, scores (N,) finite floats (higher: more likely positive)."""
    y, s = np.asarray(labels, bool), np.asarray(scores, float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be two vectors of the same length")
    if y.all() or not y.any():
        raise ValueError(f"AUROC needs both classes; got {int(y.sum())} positives of {len(y)}")
    bad = np.flatnonzero(~np.isfinite(s))
    if len(bad):
        raise ValueError(f"{len(bad)} score(s) are not finite numbers (the first at index {bad[0]}: {s[bad[0]]})")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    resamples = np.stack([np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
                          for _ in range(n_boot)])  # (n_boot, N), positives first
    per_block = max(1, 4_000_000 // len(y))  # rows ranked at once: a few tens of MB
    boots = np.concatenate([ranked_auroc(s[resamples[i:i + per_block]], len(pos))
                            for i in range(0, n_boot, per_block)])
    alpha = (1 - level) / 2
    return float(roc_auc_score(y, s)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def mean_difference_ci(a, b, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), lower, upper): percentile bootstrap interval, each group resampled
    on its own. a (N,), b (M,) finite floats, N, M >= 1."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1 or not len(a) or not len(b):
        raise ValueError(f"need two non-empty vectors, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the values must be finite numbers")
    rng = np.random.default_rng(seed)
    boots = (a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
             - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1))
    alpha = (1 - level) / 2
    return float(a.mean() - b.mean()), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def ranked_auroc(scores: np.ndarray, n_pos: int) -> np.ndarray:
    """AUROC of each row of ``scores`` (R, N) whose first ``n_pos`` columns are the positives:
    the Mann-Whitney U statistic over n_pos x n_neg, ties counting one half (sklearn's
    ``roc_auc_score`` to float rounding, for all rows at once)."""
    n_neg = scores.shape[1] - n_pos
    ranks = rankdata(scores, axis=1)  # average ranks for ties
    return (ranks[:, :n_pos].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
