"""Statistics of a score against labels: AUROC with bootstrap intervals, differences of means, rank
correlations.

    auroc, lo, hi = auroc_ci(table["class"] == "LOF", -table["delta"])
    auroc, lo, hi = grouped_auroc_ci(in_exon, feature, groups=window_of_base)   # whole windows resampled
    rho, lo, hi = spearman_ci(delta, measured, groups=position)                  # whole positions resampled

Neighbouring bases, or the three SNVs of one position, are not independent samples: resampling them
one by one gives intervals far too narrow. The grouped versions resample whole groups (windows,
positions) with replacement, the block bootstrap.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata, spearmanr
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


def grouped_auroc_ci(labels, scores, groups, n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """(AUROC, lower, upper): percentile interval over ``n_boot`` resamples of whole groups (each
    group drawn with replacement as often as there are groups; a drawn group counts with all its
    members). labels (N,) bool, scores (N,) finite floats, groups (N,) any hashable ids."""
    y, s = np.asarray(labels, bool), np.asarray(scores, float)
    if y.shape != s.shape or y.ndim != 1 or np.shape(groups) != y.shape:
        raise ValueError(f"labels {y.shape}, scores {s.shape} and groups {np.shape(groups)} must be three vectors "
                         "of the same length")
    if y.all() or not y.any():
        raise ValueError(f"AUROC needs both classes; got {int(y.sum())} positives of {len(y)}")
    if not np.isfinite(s).all():
        raise ValueError("the scores must be finite numbers")
    _, group = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = group.max() + 1
    # members alike in group, label and score weigh as one (a sparse feature's zeros: two per group)
    keys, first, mult = np.unique(np.stack([group, y, s.view(np.int64)], 1), axis=0, return_index=True,
                                  return_counts=True)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups) for _ in range(n_boot)])
    boots = weighted_auroc(y[first], s[first], counts[:, group[first]] * mult.astype(float))
    boots = boots[np.isfinite(boots)]  # a resample holding one class only has no AUROC
    alpha = (1 - level) / 2
    return float(roc_auc_score(y, s)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` (N,) for ``labels`` (N,) bool under each row of ``weights`` (R, N) (a
    member counted w times: the AUROC of the sample repeating it w times), ties counting one half;
    NaN for a row whose weights leave one class empty."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # the first member of each group of equal scores
    out = np.empty(len(weights))
    per_block = max(1, 20_000_000 // len(s))
    for i in range(0, len(weights), per_block):
        w = weights[i:i + per_block][:, order]
        pos = np.add.reduceat(np.where(y, w, 0.0), starts, axis=1)  # (rows, tie groups)
        neg = np.add.reduceat(np.where(y, 0.0, w), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each tie group
        n_pos, n_neg = pos.sum(1), neg.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i:i + per_block] = (pos * (below + neg / 2)).sum(1) / (n_pos * n_neg)
    return out


def spearman_ci(x, y, groups=None, n_boot: int = 1000, level: float = 0.95,
                seed: int = 0) -> tuple[float, float, float]:
    """(Spearman's rho, lower, upper): percentile interval over ``n_boot`` resamples of the pairs,
    or with ``groups`` (N,) of whole groups as in :func:`grouped_auroc_ci`. x, y (N,) finite floats."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x {x.shape} and y {y.shape} must be two vectors of the same length, at least 3")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite numbers")
    if groups is not None and np.shape(groups) != x.shape:
        raise ValueError(f"groups {np.shape(groups)} must have one id per pair ({x.shape})")
    group = np.arange(len(x)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    members = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        rho = spearmanr(x[idx], y[idx]).statistic
        if np.isfinite(rho):
            boots.append(rho)
    alpha = (1 - level) / 2
    return float(spearmanr(x, y).statistic), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
