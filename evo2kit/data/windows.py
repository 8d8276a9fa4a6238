"""Reference and variant windows of SNVs cut from one region (the hg19 BRCA1 region by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from evo2kit.cli import few
from evo2kit.data.brca1 import BRCA1_REGION_START
from evo2kit.data.fasta import read_fasta_first
from evo2kit.data.registry import fetch


@dataclass
class VariantWindows:
    """Reference/variant windows; unpacks as ``ref_seqs, var_seqs, ref_index = vw``.

    ref_seqs: unique reference windows (by (start, end)), in order of first use.
    var_seqs: one variant window per input row (reference window with the SNV substituted).
    ref_index: int64 (n_variants,), ``ref_seqs[ref_index[i]]`` is variant i's reference.
    var_pos_in_window: int64 (n_variants,), index of the SNV within its window.
    """

    ref_seqs: list[str]
    var_seqs: list[str]
    ref_index: np.ndarray
    var_pos_in_window: np.ndarray

    def __iter__(self) -> Iterator:
        return iter((self.ref_seqs, self.var_seqs, self.ref_index))



def variant_windows(df: pd.DataFrame, window: int = 8192, region: str | None = None, *,
                    clip: bool = False, region_start: int = BRCA1_REGION_START) -> VariantWindows:
    """Windows centred on each SNV, with the Evo 2 BRCA1 notebook's semantics.

    For offset ``p = pos - region_start`` the window is ``region[max(0, p - window//2) :
    min(len(region), p + window//2)]`` and the SNV sits at index ``min(window//2, p)``.

    Args:
        df: rows with ``pos`` (1-based), ``ref``, ``alt`` (e.g. from :func:`load_brca1`).
        window: even window length in bp.
        region: sequence whose index 0 is ``region_start``; default the hg19 BRCA1 region
            (``fetch("brca1_hg19_region")``).
        clip: allow windows that leave the region (truncated, as in the notebook);
            otherwise that is an error.

    Raises:
        ValueError: a non-SNV row, a position outside the region, reference-base
            mismatches (all listed in one error), or windows leaving the region.
    """
    if window < 2 or window % 2:
        raise ValueError(f"window must be an even number >= 2, got {window}")
    missing = [c for c in ("pos", "ref", "alt") if c not in df.columns]
    if missing:
        raise ValueError(f"variant table lacks column(s) {missing}")
    if region is None:
        _, region = read_fasta_first(fetch("brca1_hg19_region"))
    half, n = window // 2, len(region)
    rows = list(zip(df.index, df["pos"], df["ref"], df["alt"]))
    not_snv, outside, mismatch, off_edge = [], [], [], []
    for label, pos, ref, alt in rows:
        ref, alt, pos = str(ref).upper(), str(alt).upper(), int(pos)
        p = pos - region_start
        if len(ref) != 1 or len(alt) != 1 or alt not in "ACGT" or alt == ref:
            not_snv.append(f"row {label}: pos {pos} {ref}>{alt}")
        elif not 0 <= p < n:
            outside.append(f"row {label}: pos {pos}")
        elif region[p].upper() != ref:
            mismatch.append(f"row {label}: pos {pos} expected {ref!r} found {region[p].upper()!r}")
        elif p - half < 0 or p + half > n:
            off_edge.append(f"row {label}: pos {pos}")
    if not_snv:
        raise ValueError(f"{len(not_snv)} row(s) are not SNVs: {few(not_snv)}")
    if outside:
        raise ValueError(f"{len(outside)} variant(s) lie outside the region {region_start}-"
                         f"{region_start + n - 1}: {few(outside)}")
    if mismatch:
        raise ValueError(f"{len(mismatch)} reference mismatch(es) against the region "
                         f"(index 0 = position {region_start}): " + "; ".join(mismatch))
    if off_edge and not clip:
        raise ValueError(f"{len(off_edge)} variant(s) have a {window} bp window leaving the "
                         f"region ({n} bp from {region_start}): {few(off_edge)}. Use a "
                         "smaller window, a larger region, or clip=True to truncate them.")
    keys: dict[tuple[int, int], int] = {}
    ref_seqs, var_seqs, ref_index, var_pos = [], [], [], []
    for _, pos, _, alt in rows:
        p = int(pos) - region_start
        start, end = max(0, p - half), min(n, p + half)
        k = p - start
        if (start, end) not in keys:
            keys[(start, end)] = len(ref_seqs)
            ref_seqs.append(region[start:end])
        ref = ref_seqs[keys[(start, end)]]
        var_seqs.append(ref[:k] + str(alt).upper() + ref[k + 1:])
        ref_index.append(keys[(start, end)])
        var_pos.append(k)
    return VariantWindows(ref_seqs, var_seqs, np.asarray(ref_index, dtype=np.int64),
                          np.asarray(var_pos, dtype=np.int64))


