"""Zero-shot variant effect: delta log-likelihood of variant vs reference windows, and AUROC.

    table = variant_deltas(model, df, window=2048, batch_size=8)   # df from data.load_brca1()
    auroc, lo, hi = auroc_ci(table["class"] == "LOF", -table["delta"])

delta = mean log-likelihood (nats per predicted base) of the variant window minus that of its
reference window; a damaging variant should look less likely to the model (delta < 0), so
``-delta`` is the score for LOF.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from . import data
from .files import atomic_write, sha256_json, sha256_lines
from .tokenizer import reverse_complement as reverse_complement_of


def delta_likelihood(model, ref_seqs: list[str], var_seqs: list[str], ref_index: np.ndarray,
                     batch_size: int = 8, reverse_complement: bool = False) -> np.ndarray:
    """delta (N,) = score(variant window) - score(its reference window), scoring each unique
    reference window once (``ref_index`` (N,) maps variants to ``ref_seqs``). With
    ``reverse_complement`` both windows are read on the minus strand."""
    if reverse_complement:
        ref_seqs, var_seqs = [reverse_complement_of(s) for s in ref_seqs], [reverse_complement_of(s) for s in var_seqs]
    ref = np.asarray(model.score_sequences(ref_seqs, batch_size=batch_size))
    var = np.asarray(model.score_sequences(var_seqs, batch_size=batch_size))
    return var - ref[np.asarray(ref_index)]


def variant_deltas(model, df: pd.DataFrame, window: int, batch_size: int = 8, strands: str = "+",
                   region: str | None = None, cache: str | os.PathLike | None = None) -> pd.DataFrame:
    """``df`` (rows with pos/ref/alt) plus columns ``delta+`` and/or ``delta-`` (per strand in
    ``strands``: "+", "-" or "+-") and ``delta`` (their mean), for ``window``-bp windows centred
    on each SNV (see :func:`evo2kit.data.variant_windows`).

    ``cache``: a folder where each strand's deltas are kept (``deltas-<key>.npy``, written
    atomically) and reused by a later call with the same model weights, dtype, windows and batch
    size; None computes every time. ``table.attrs["computed"]`` says whether the model scored any
    strand in this call (False: every strand came from the cache, so its time says nothing)."""
    _check_strands(strands)
    windows = data.variant_windows(df, window, region)
    computed: list[str] = []
    deltas = window_deltas(model, windows, batch_size, strands, cache, computed=computed)
    cols = {f"delta{s}": d for s, d in deltas.items()}
    table = df.assign(**cols, delta=np.mean(list(cols.values()), axis=0), window=window,
                      n_unique_ref=len(windows.ref_seqs))
    table.attrs["computed"] = bool(computed)
    return table


def window_deltas(model, windows, batch_size: int = 8, strands: str = "+",
                  cache: str | os.PathLike | None = None, computed: list | None = None) -> dict[str, np.ndarray]:
    """{strand: delta (N,)} for ``windows`` (``data.VariantWindows`` or a ``(ref_seqs, var_seqs,
    ref_index)`` tuple, from BRCA1 or from ``evo2kit.variants``), per strand in ``strands``;
    ``cache`` as in :func:`variant_deltas`; the strands the model scored (not read from the cache)
    are appended to ``computed`` when given."""
    _check_strands(strands)
    ref_seqs, var_seqs, ref_index = windows
    computed = [] if computed is None else computed  # strands scored by the model here, not read from the cache

    def strand(s: str) -> np.ndarray:
        def compute():
            computed.append(s)
            return delta_likelihood(model, ref_seqs, var_seqs, ref_index, batch_size, s == "-")

        if cache is None:
            return compute()
        return _cached(Path(cache), _cache_key(model, ref_seqs, var_seqs, ref_index, batch_size, s), compute)

    return {s: strand(s) for s in dict.fromkeys(strands)}


def _check_strands(strands) -> None:
    if not isinstance(strands, str) or not strands or set(strands) - {"+", "-"}:
        raise ValueError(f"strands must be '+', '-' or '+-', not {strands!r}")


def _cache_key(model, ref_seqs, var_seqs, ref_index, batch_size: int, strand: str) -> str:
    from .embed import model_sha256

    params = next(model.model.parameters())
    identity = [sha256_lines([*ref_seqs, *var_seqs]), np.asarray(ref_index, np.int64).tolist(), model_sha256(model),
                str(params.dtype), params.device.type, batch_size, strand]
    return sha256_json(identity)[:24]


def _cached(folder: Path, key: str, compute) -> np.ndarray:
    """``folder/deltas-<key>.npy`` if present, else ``compute()`` saved there atomically."""
    path = folder / f"deltas-{key}.npy"
    if path.is_file():
        return np.load(path)
    values = np.asarray(compute())
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.save(f, values), mode="wb")
    return values


def auroc_ci(labels, scores, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(AUROC, lower, upper): the percentile bootstrap interval over ``n_boot`` resamples of the
    variants, each resample stratified by label so both classes are always present."""
    y, s = np.asarray(labels, bool), np.asarray(scores, float)
    if y.all() or not y.any():
        raise ValueError(f"AUROC needs both classes; got {int(y.sum())} positives of {len(y)}")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boots[b] = roc_auc_score(y[idx], s[idx])
    alpha = (1 - level) / 2
    return float(roc_auc_score(y, s)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def stratified_subset(df: pd.DataFrame, n: int | None, seed: int = 0, by: str = "class") -> pd.DataFrame:
    """``n`` rows drawn with class proportions kept (all rows when n is None or >= len(df)); each
    class keeps at least one row, so a small ``n`` can give a few more rows than asked."""
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n must be None (all rows) or an int >= 1, got {n!r}")
    if n is None or n >= len(df):
        return df
    frac = n / len(df)
    idx = np.concatenate([g.sample(max(1, round(len(g) * frac)), random_state=seed).index
                          for _, g in df.groupby(by)])
    return df.loc[np.sort(idx)]
