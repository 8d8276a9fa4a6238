"""In-silico saturation mutagenesis (ISM): every position of a region changed to each of the other
three bases, each change scored as notebook 03 scores a variant.

    table = saturation_mutagenesis(model, region, start, end, window=512, region_start=41_176_312)
    grid = ism_matrix(table)                 # positions x A/C/G/T, NaN at the reference base
    track = grid.mean(axis=1)                # one number per position (or .min(axis=1))
    probs = base_probabilities(model, region, start, end, context=256, region_start=41_176_312)

``region`` is any sequence (a FASTA record, the hg19 BRCA1 region, a learner's own gene) whose index
0 sits at coordinate ``region_start``; ``start``..``end`` are 1-based, inclusive, in those coordinates.
A variant's delta is that of :func:`evo2kit.analysis.zero_shot.window_deltas`: the mean
log-likelihood (nats per predicted base) of the ``window``-bp window centred on it with the base
changed, minus that of the same window unchanged (the windows of
:func:`evo2kit.data.brca1.brca1_windows` on this region, so at a Findlay SNV it is notebook 03's delta), scored
with the prefix-shared passes: each variant window continues its reference window's state at the SNV.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from evo2kit.analysis.stats import spearman_ci
from evo2kit.analysis.zero_shot import window_deltas
from evo2kit.data.brca1 import brca1_windows

BASES = "ACGT"


def saturation_variants(region: str, start: int, end: int, region_start: int = 1) -> pd.DataFrame:
    """Every SNV of positions ``start``..``end`` (1-based, inclusive; ``region[0]`` is at
    ``region_start``): columns pos, ref, alt, three rows per position in A/C/G/T order of alt."""
    if not region_start <= start <= end < region_start + len(region):
        raise ValueError(f"positions {start}-{end} must lie inside the region, {region_start}-"
                         f"{region_start + len(region) - 1}, with start <= end")
    refs = region[start - region_start:end - region_start + 1].upper()
    odd = [f"{start + i}:{b}" for i, b in enumerate(refs) if b not in BASES]
    if odd:
        raise ValueError(f"{len(odd)} position(s) hold no A/C/G/T base, so they have no three alternatives: "
                         f"{', '.join(odd[:5])}")
    rows = [(start + i, ref, alt) for i, ref in enumerate(refs) for alt in BASES if alt != ref]
    return pd.DataFrame(rows, columns=["pos", "ref", "alt"])


def saturation_mutagenesis(model, region: str, start: int, end: int, window: int, region_start: int = 1,
                           batch_size: int = 8, strands: str = "+",
                           cache: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`saturation_variants` with ``delta`` (and ``delta+``/``delta-`` per strand of
    ``strands``): the window delta of each SNV (see the module docstring; ``cache`` as in
    ``zero_shot.variant_deltas``). Every window must fit inside ``region``."""
    variants = saturation_variants(region, start, end, region_start)
    windows = brca1_windows(variants, window, region, region_start=region_start)
    deltas = window_deltas(model, windows, batch_size, strands, cache)
    cols = {f"delta{s}": d for s, d in deltas.items()}
    return variants.assign(**cols, delta=np.mean(list(cols.values()), axis=0))


def ism_matrix(table: pd.DataFrame, value: str = "delta") -> pd.DataFrame:
    """positions x bases (columns A, C, G, T, every position from the smallest to the largest
    ``pos`` of ``table``): ``table[value]`` of the SNV pos>base, NaN where there is none (the
    reference base; an SNV not measured)."""
    if table.duplicated(["pos", "alt"]).any():
        raise ValueError("the table holds the same SNV (pos, alt) more than once")
    grid = table.pivot(index="pos", columns="alt", values=value)
    positions = np.arange(table["pos"].min(), table["pos"].max() + 1)
    return grid.reindex(index=positions, columns=list(BASES)).rename_axis(index="pos", columns="base")


@torch.no_grad()
def base_probabilities(model, region: str, start: int, end: int, context: int, region_start: int = 1,
                       chunk_size: int | None = None) -> pd.DataFrame:
    """positions ``start``..``end`` x A/C/G/T: the model's probability of each base at each position
    given the ``context`` bases before ``start`` and the region up to it (one forward pass, left
    to right; renormalised over the four bases). ``chunk_size``: the exact chunked forward, for
    evo2kit models on long stretches."""
    first = start - region_start - context
    if first < 0 or start < region_start or end >= region_start + len(region) or end < start:
        raise ValueError(f"positions {start}-{end} with {context} bases of context before them must lie inside the "
                         f"region, {region_start}-{region_start + len(region) - 1}")
    seq = region[first:end - region_start + 1]
    ids = torch.tensor([model.tokenizer.tokenize(seq)], dtype=torch.long)
    logits = model(ids, chunk_size=chunk_size)[0][0] if chunk_size else model(ids)[0][0]
    acgt = torch.tensor([ord(b) for b in BASES], device=logits.device)
    probs = torch.softmax(logits[0, context - 1:-1].float()[:, acgt], -1)  # row i-1 predicts base i
    return pd.DataFrame(probs.double().cpu().numpy(), index=pd.RangeIndex(start, end + 1, name="pos"),
                        columns=list(BASES))


def per_position(grid: pd.DataFrame, how: str = "mean") -> pd.Series:
    """One number per position of an :func:`ism_matrix`: the mean or the min over its SNVs."""
    if how not in ("mean", "min"):
        raise ValueError(f"how must be 'mean' or 'min', not {how!r}")
    return grid.mean(axis=1) if how == "mean" else grid.min(axis=1)


def correlations(table: pd.DataFrame, by: str, x: str = "delta", y: str = "score", n_boot: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Spearman's rho of ``x`` against ``y`` within each group ``by`` of ``table`` (rows with both),
    and over all rows ("all"): columns n (SNVs), positions, rho, low, high (95% interval over
    resamples of whole positions, since the SNVs of one position share their window)."""
    rows = []
    both = table.dropna(subset=[x, y])
    for key, g in [*both.groupby(by, sort=True), ("all", both)]:
        rho, lo, hi = spearman_ci(g[x], g[y], groups=g["pos"], n_boot=n_boot, seed=seed)
        rows.append({by: key, "n": len(g), "positions": g["pos"].nunique(), "rho": rho, "low": lo, "high": hi})
    return pd.DataFrame(rows).set_index(by)
