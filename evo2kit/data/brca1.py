"""Findlay et al. (2018) BRCA1 saturation genome editing: the variants, their classes and subsets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from evo2kit.cli import few
from evo2kit.data.fasta import read_fasta_first
from evo2kit.data.registry import fetch
from evo2kit.data.variants import Genome, VariantWindows, variant_windows

BRCA1_REGION_START = 41_176_312
"""hg19 (1-based) position of index 0 of the ``brca1_hg19_region`` sequence."""
BRCA1_GRCH38_SHIFT = 1_847_983
"""GRCh38 position = hg19 position + this, for hg19 41,176,312-41,354,196 (no assembly change
inside that span moves a base; notebook 07 checks the two regions' sequences against each other)."""
BRCA1_GRCH38_SPAN = (41_176_312, 41_354_196)


BRCA1_COLUMNS = {
    "chromosome": "chrom",
    "position (hg19)": "pos",
    "reference": "ref",
    "alt": "alt",
    "function.score.mean": "score",
    "func.class": "func_class",
    "clinvar": "clinvar",
}
"""Source column in the Findlay et al. xlsx -> output column of :func:`load_brca1`."""


def load_brca1(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Findlay et al. 2018 BRCA1 SNVs as a DataFrame (one row per variant, index 0..n-1).

    Columns: ``chrom`` (str, "17"), ``pos`` (int, hg19 1-based), ``ref``, ``alt``,
    ``score`` (function.score.mean), ``class`` ("FUNC/INT" or "LOF"), ``func_class``
    (FUNC/INT/LOF as published), ``clinvar`` (the file's ``clinvar`` column), and when the file
    has them ``consequence`` (Missense, Synonymous, Intronic, Splice region, ...), ``exon`` (int:
    the exon whose saturation editing experiment measured it, from ``experiment`` "X2" .. "X23")
    and ``hgvs_c`` (the position on the transcript NM_007294.3, e.g. "4891", "80+1", "-19-3").
    ``path`` defaults to ``fetch("brca1_sge")``.
    """
    path = fetch("brca1_sge") if path is None else Path(path)
    raw = pd.read_excel(path, header=2, engine="openpyxl")
    missing = [c for c in BRCA1_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (header expected on row 3; "
                         f"found {[str(c) for c in raw.columns][:12]}...)")
    extra = [c for c in BRCA1_EXTRA_COLUMNS if c in raw.columns]
    df = raw[list(BRCA1_COLUMNS) + extra].rename(columns=BRCA1_COLUMNS | BRCA1_EXTRA_COLUMNS).reset_index(drop=True)
    bad = df[["chrom", "pos", "ref", "alt", "func_class"]].isna().any(axis=1)
    if bad.any():
        raise ValueError(f"{path}: empty chromosome/position/reference/alt/func.class in data "
                         f"row(s) {df.index[bad].tolist()[:10]}")
    unknown = sorted(set(df["func_class"]) - {"FUNC", "INT", "LOF"})
    if unknown:
        raise ValueError(f"{path}: unexpected func.class value(s) {unknown}")
    df["chrom"] = [str(int(c)) if isinstance(c, (int, float, np.number)) else str(c) for c in df["chrom"]]
    df["pos"] = _numbers(df["pos"], "position (hg19)", path, whole=True)
    df["score"] = _numbers(df["score"], "function.score.mean", path, whole=False)
    df.insert(5, "class", df["func_class"].replace({"FUNC": "FUNC/INT", "INT": "FUNC/INT"}))
    if "exon" in df:
        exon = df["exon"].astype(str).str.fullmatch(r"X(\d+)")
        if not exon.all():
            raise ValueError(f"{path}: column 'experiment' must hold X<exon number>; rows {list(df.index[~exon][:5])} "
                             "do not")
        df["exon"] = df["exon"].astype(str).str[1:].astype(np.int64)
    if "hgvs_c" in df:
        df["hgvs_c"] = df["hgvs_c"].astype(str)
    return df


BRCA1_EXTRA_COLUMNS = {"consequence": "consequence", "experiment": "exon", "transcript_position": "hgvs_c"}
"""Columns :func:`load_brca1` keeps when the file has them (source -> output)."""


def exon_layout(df: pd.DataFrame) -> pd.DataFrame:
    """Every hg19 position of each exon's measured span (``df`` from :func:`load_brca1`), one row
    each: ``exon``, ``pos``, ``coding`` (the position's number in the coding sequence of
    NM_007294.3, c.1 = the A of the ATG; NA outside it) and ``codon_position`` (1, 2, 3; NA
    outside the coding sequence).

    A position no SNV measured takes its coding number from the measured coding positions of its
    exon (BRCA1 lies on the minus strand: c + pos is constant along an exon); a position of an
    intron or UTR (``hgvs_c`` with an offset such as "80+1", or a negative number) is not coding.
    """
    missing = [c for c in ("exon", "pos", "hgvs_c") if c not in df.columns]
    if missing:
        raise ValueError(f"the BRCA1 table lacks column(s) {missing}: read it with load_brca1()")
    rows = []
    for exon, g in df.groupby("exon", sort=True):
        at = g.drop_duplicates("pos").set_index("pos")["hgvs_c"]
        coding = pd.to_numeric(at.where(at.str.fullmatch(r"\d+")), errors="coerce").dropna()
        offsets = set((coding + coding.index).astype(np.int64))  # c + pos, constant along a minus-strand exon
        if len(offsets) > 1:
            raise ValueError(f"exon {exon}: the measured coding positions do not run along one exon "
                             f"({sorted(offsets)})")
        lo, hi = int(g["pos"].min()), int(g["pos"].max())
        span = np.arange(lo, hi + 1)
        c = pd.array([pd.NA] * len(span), dtype="Int64")
        if offsets:
            first, last = int(coding.index.min()), int(coding.index.max())
            inside = (span >= first) & (span <= last)
            c[inside] = offsets.pop() - span[inside]
        rows.append(pd.DataFrame({"exon": exon, "pos": span, "coding": c}))
    out = pd.concat(rows, ignore_index=True)
    out["codon_position"] = ((out["coding"] - 1) % 3 + 1).astype("Int64")
    return out


def brca1_on_grch38(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (hg19 rows of :func:`load_brca1`) on GRCh38: ``pos`` + :data:`BRCA1_GRCH38_SHIFT`,
    ``chrom`` "chr17" (UCSC's spelling). Raises ValueError for a position outside
    :data:`BRCA1_GRCH38_SPAN`, where the shift does not hold."""
    lo, hi = BRCA1_GRCH38_SPAN
    out = df[(df["pos"] < lo) | (df["pos"] > hi)]
    if len(out):
        raise ValueError(f"{len(out)} position(s) outside hg19 {lo:,}-{hi:,}, where GRCh38 = hg19 + "
                         f"{BRCA1_GRCH38_SHIFT:,} holds: {out['pos'].tolist()[:5]}")
    return df.assign(chrom="chr17", pos=df["pos"] + BRCA1_GRCH38_SHIFT)


def _numbers(values: pd.Series, column: str, path, whole: bool) -> pd.Series:
    """``values`` as int64 (``whole``) or float64; a ValueError naming the file, the column and the
    rows (of the sheet: the header is row 3, data row i is row i + 4) holding anything else."""
    nums = pd.to_numeric(values, errors="coerce")
    bad = (nums.isna() & values.notna()) | ((nums % 1 != 0) & nums.notna() if whole else False)
    if bad.any():
        plain = lambda v: v.item() if isinstance(v, np.generic) else v  # noqa: E731 (quote 1020.5, not np.float64)
        rows = [f"row {i + 4} ({plain(values[i])!r})" for i in values.index[bad]]
        raise ValueError(f"{path}: column {column!r} must hold {'whole numbers' if whole else 'numbers'}; "
                         f"{len(rows)} row(s) do not: {few(rows)}")
    return nums.astype(np.int64) if whole else nums.astype(float)


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


def brca1_variants(n_variants: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The Findlay et al. SNVs the notebooks study: all of them (None), or ``n_variants`` drawn
    class-stratified with ``seed`` (:func:`stratified_subset`); index 0..N-1."""
    return stratified_subset(load_brca1(), n_variants, seed=seed).reset_index(drop=True)


def brca1_windows(df: pd.DataFrame, window: int = 8192, region: str | None = None, *,
                    clip: bool = False, region_start: int = BRCA1_REGION_START) -> VariantWindows:
    """Windows centred on each SNV, with the Evo 2 BRCA1 notebook's semantics: the region is a
    one-record genome cut by :func:`evo2kit.data.variants.variant_windows`, the one window cutter.

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
    genome = Genome.from_sequence(region, "region", region_start)
    snvs = pd.DataFrame({"chrom": "region", "pos": df["pos"], "ref": df["ref"], "alt": df["alt"]}, index=df.index)
    return variant_windows(snvs, genome, window).windows
