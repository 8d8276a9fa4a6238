"""The exon classifier of notebook 08: features of the two windows of each position (Arc's last-token
embeddings at every layer, and sequence-only baselines), a probe trained on one chromosome, and its
AUROC with bootstrap intervals on each test set.

    fwd, rev = evo2kit.data.exons.two_sided_windows(chrom, positions, 512)
    emb = window_embeddings(model, fwd, rev, [f"blocks.{i}" for i in range(12)])    # {layer: (N, 2d)}
    base = baseline_features(fwd, rev, k=4, flank=10)                               # {name: (N, f)}
    table, scores = evaluate({**emb, **base}, y, train, val, {"chr22": idx22, "BRCA1": idx17})

Every row of a feature matrix is one position; train / val / test sets are row indices into it.
"""

from __future__ import annotations

from itertools import product
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from evo2kit.analysis.embeddings import extract
from evo2kit.analysis.probes import fit_logistic, onehot_context
from evo2kit.analysis.stats import auroc_ci
from evo2kit.api import Evo2Model
from evo2kit.model.tokenizer import reverse_complement

# --------------------------------------------------------------------------- features


def window_embeddings(model: Evo2Model, forward: Sequence[str], reverse: Sequence[str], layers: Sequence[str],
                      batch_size: int = 16, progress: bool = False) -> dict[str, np.ndarray]:
    """Arc's features: the last token's output of each layer for the forward and the reverse window,
    side by side -> {layer: (N, 2d) float32}. One forward per batch serves every layer
    (``evo2kit.analysis.embeddings.extract``); a window shared by two positions is run once."""
    if len(forward) != len(reverse):
        raise ValueError(f"{len(forward)} forward windows but {len(reverse)} reverse windows")
    n = len(forward)
    names = [f"forward window of position {i}" for i in range(n)] + [f"reverse window of position {i}"
                                                                     for i in range(n)]
    feats = extract(model, list(forward) + list(reverse), list(layers), pooling="last", batch_size=batch_size,
                    names=names, progress=progress)
    return {layer: np.concatenate([a[:n], a[n:]], axis=1) for layer, a in feats.items()}


def kmer_counts(seqs: Sequence[str], k: int) -> np.ndarray:
    """Frequencies of the 4**k k-mers (A/C/G/T only, overlapping) in each sequence -> (N, 4**k) float32,
    rows summing to 1 (columns in lexicographic order, AAAA first)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    code = np.full(256, -1, np.int64)
    code[np.frombuffer(b"ACGT", np.uint8)] = np.arange(4)
    out = np.zeros((len(seqs), 4 ** k), np.float32)
    for i, s in enumerate(seqs):
        c = code[np.frombuffer(s.upper().encode("ascii"), np.uint8)]
        if len(c) < k:
            continue
        idx = np.zeros(len(c) - k + 1, np.int64)
        ok = np.ones(len(c) - k + 1, bool)
        for j in range(k):
            part = c[j:len(c) - k + 1 + j]
            idx, ok = idx * 4 + part, ok & (part >= 0)
        counts = np.bincount(idx[ok], minlength=4 ** k)
        out[i] = counts / max(1, counts.sum())
    return out


def nearest_bases(forward: Sequence[str], reverse: Sequence[str], flank: int) -> np.ndarray:
    """One-hot A/C/G/T of the ``2 * flank + 1`` bases centred on each position, read in the gene's direction
    (the last ``flank + 1`` bases of the forward window, then the ``flank`` that follow, from the reverse
    window) -> (N, (2 * flank + 1) * 4) float32."""
    local = [f[-(flank + 1):] + reverse_complement(r[-(flank + 1):])[1:] for f, r in zip(forward, reverse)]
    if any(len(s) != 2 * flank + 1 for s in local):
        raise ValueError(f"windows shorter than flank + 1 = {flank + 1} bases")
    return onehot_context(local, np.full(len(local), flank), flank)


def gc_content(seqs: Sequence[str]) -> np.ndarray:
    """Share of G and C among the A/C/G/T of each sequence -> (N,) float32."""
    return kmer_counts(seqs, 1)[:, [1, 2]].sum(1)


def baseline_features(forward: Sequence[str], reverse: Sequence[str], k: int, flank: int) -> dict[str, np.ndarray]:
    """Sequence-only features of the same windows: {"GC content": (N, 2) of the forward and the reverse
    window, "<k>-mer counts": (N, 2 * 4**k) their k-mer frequencies side by side, "one-hot ±<flank> bp":
    :func:`nearest_bases`}."""
    return {"GC content": np.stack([gc_content(forward), gc_content(reverse)], axis=1),
            f"{k}-mer counts": np.concatenate([kmer_counts(forward, k), kmer_counts(reverse, k)], axis=1),
            f"one-hot ±{flank} bp": nearest_bases(forward, reverse, flank)}


# --------------------------------------------------------------------------- probes and scores


def evaluate(features: Mapping[str, np.ndarray], y: np.ndarray, train: np.ndarray, val: np.ndarray,
             tests: Mapping[str, np.ndarray], n_boot: int = 1000, seed: int = 0,
             Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A logistic probe per feature set (standardised, L2; the penalty chosen on validation AUROC,
    ``evo2kit.analysis.probes.fit_logistic``), trained on the rows ``train``, scored on every row.

    Returns (table, scores): one table row per (features, test set) with val_auroc, auroc, ci_low, ci_high
    (95% stratified bootstrap over the test set's positions, ``n_boot`` resamples), n, n_exonic; and
    {features: (N,) P(exonic) of every row}."""
    y = np.asarray(y)
    for name, idx in {"train": train, "val": val, **tests}.items():
        labels = y[np.asarray(idx)]
        if not ((labels == 0).any() and (labels == 1).any()) or not np.isin(labels, [0, 1]).all():
            raise ValueError(f"set {name!r} must hold exonic (1) and intronic (0) rows and no other label")
    rows, scores = [], {}
    for name, X in features.items():
        probe = fit_logistic(X[train], y[train], X[val], y[val], Cs)
        scores[name] = probe.predict_proba(X)[:, 1]
        val_auroc = roc_auc_score(y[val], scores[name][val])
        for test, idx in tests.items():
            auc, lo, hi = auroc_ci(y[idx], scores[name][idx], n_boot=n_boot, seed=seed)
            rows.append({"features": name, "test": test, "val_auroc": val_auroc, "auroc": auc, "ci_low": lo,
                         "ci_high": hi, "n": len(idx), "n_exonic": int(y[idx].sum())})
    return pd.DataFrame(rows), scores


def auroc_by_group(y: np.ndarray, scores: Mapping[str, np.ndarray], groups: pd.Series, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """AUROC [95% CI] of each score within each group (e.g. Arc's positions by species): one row per
    (features, group) with auroc, ci_low, ci_high, n. ``groups`` is aligned with ``y`` and the scores."""
    rows = []
    for (name, s), group in product(scores.items(), pd.unique(groups)):
        idx = np.flatnonzero(np.asarray(groups == group))
        auc, lo, hi = auroc_ci(np.asarray(y)[idx], np.asarray(s)[idx], n_boot=n_boot, seed=seed)
        rows.append({"features": name, "group": group, "auroc": auc, "ci_low": lo, "ci_high": hi, "n": len(idx)})
    return pd.DataFrame(rows)


def auroc_table(table: pd.DataFrame, index: str, columns: str) -> pd.DataFrame:
    """``table``'s rows (auroc, ci_low, ci_high) as one "AUROC [low, high]" string per (index, columns)
    cell, rows and columns in order of appearance: for reading, not for computing."""
    text = [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, lo, hi in zip(table["auroc"], table["ci_low"], table["ci_high"])]
    return (table.assign(**{"AUROC [95% CI]": text})
            .pivot_table(index=index, columns=columns, values="AUROC [95% CI]", aggfunc="first", sort=False))
