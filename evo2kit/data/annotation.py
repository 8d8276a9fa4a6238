"""What lies where along a region: RefSeq exons, the held-out chr22 blocks with their coding and repeat
masks, and the genes of a bacterial genome called by pyrodigal.

    exons = refseq_exons(BRCA1_GENE_ID)                        # chrom, start, end (1-based, inclusive), strand
    held = heldout_windows(64, 2048, seed=0)                   # chr22 windows, half centred on a coding exon
    train = training_windows(96, 2048, seed=0)                 # the same from chr20 (evo2kit-tiny's training part)
    held.labels["CDS"][0]                                      # (2048,) bool per base of window 0
    genome = ecoli_mg1655()                                    # E. coli K-12 MG1655 (ragout-examples)
    genes = call_genes(genome[4_130_000:4_230_000])            # start, end (0-based, end excluded), strand

Coordinates: the CDS table counts from 1 with ends included, the repeat table from 0 with ends
excluded (as UCSC's rmsk), and a chr22 block named ``hg19_chr22:a-b`` holds positions a..b (1-based,
inclusive: its length is b - a + 1); a mask built here is per base of the sequence it describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from evo2kit.data.exons import load_refseq_exons
from evo2kit.data.fasta import read_deb_fastas, read_fasta, read_fasta_first
from evo2kit.data.registry import fetch

BRCA1_GENE_ID = 672
"""BRCA1's Entrez gene id, the key of the RefSeq exon table."""
HELDOUT_CHROM = "chr22"
ECOLI_MEMBER = "*/E.Coli/references/MG1655-K12.fasta.gz"
"""E. coli K-12 MG1655 in ragout-examples: NC_000913.2 (4,639,675 bp). Arc's SAE notebook reads
NC_000913.3, whose coordinates differ from these by up to ~2 kb (a few insertions since)."""
_BLOCK = re.compile(r"hg19_chr22:(\d+)-(\d+)")


def refseq_exons(gene_id: int) -> pd.DataFrame:
    """The exons of Entrez gene ``gene_id`` (merged over its transcripts, as the SAF table lists
    them): columns chrom, start, end (1-based, inclusive), strand, sorted by start."""
    table = load_refseq_exons()  # 0-based, end excluded: back to the table's own 1-based starts
    rows = table[table["gene_id"] == str(gene_id)]
    if rows.empty:
        raise KeyError(f"no RefSeq exon of gene id {gene_id} in hg19_refseq_exons")
    out = rows.assign(start=rows["start"] + 1)
    return out[["chrom", "start", "end", "strand"]].sort_values("start").reset_index(drop=True)


def interval_mask(starts: np.ndarray, ends: np.ndarray, offset: int, length: int) -> np.ndarray:
    """(length,) bool: whether base i (at 0-based coordinate offset + i) lies in any interval
    [starts, ends) (0-based, end excluded)."""
    edges = np.zeros(length + 1, np.int64)  # +1 at each start, -1 at each end, then a running sum
    np.add.at(edges, np.clip(np.asarray(starts) - offset, 0, length), 1)
    np.add.at(edges, np.clip(np.asarray(ends) - offset, 0, length), -1)
    return np.cumsum(edges[:-1]) > 0


@dataclass
class LabelledWindows:
    """Windows of sequence with a per-base label track each.

    seqs: the windows (upper case); names: where each lies;
    labels: {label name: one (len(seq),) bool array per window}; centred_on_exon: (n,) bool.
    """

    seqs: list[str]
    names: list[str]  # "hg19_<chrom>:start-end", 1-based, inclusive
    labels: dict[str, list[np.ndarray]] = field(default_factory=dict)
    centred_on_exon: np.ndarray | None = None

    def stacked(self, name: str) -> np.ndarray:
        """All windows' labels ``name`` end to end, (sum of lengths,) bool."""
        return np.concatenate(self.labels[name])


def heldout_windows(n_windows: int, length: int, exon_fraction: float = 0.5, seed: int = 0) -> LabelledWindows:
    """``n_windows`` windows of ``length`` bases from the held-out chr22 blocks (``chr22_heldout``),
    each inside one block and overlapping no other; ``exon_fraction`` of them centred on a coding
    exon (GENCODE CDS intervals, the centre moved by up to length/4), the rest uniform over the
    blocks. Labels: "CDS" (``hg19_cds``) and "repeat" (``hg19_repeats``), per base."""
    starts0, seqs = [], []  # each block's 0-based start on chr22, its sequence
    for name, seq in read_fasta(fetch("chr22_heldout")).items():
        m = _BLOCK.fullmatch(name)
        if m is None or int(m[2]) - int(m[1]) + 1 != len(seq):
            raise ValueError(f"chr22_heldout: record {name!r} is not hg19_chr22:start-end with end - start + 1 bases")
        starts0.append(int(m[1]) - 1)
        seqs.append(seq)
    out = _sample_windows(HELDOUT_CHROM, starts0, seqs, n_windows, length, exon_fraction, seed)
    repeats = _chrom_intervals("hg19_repeats", HELDOUT_CHROM, one_based=False)
    out.labels["repeat"] = [interval_mask(*repeats, int(n.split(":")[1].split("-")[0]) - 1, len(w))
                            for n, w in zip(out.names, out.seqs)]
    return out


def training_windows(n_windows: int, length: int, exon_fraction: float = 0.5, seed: int = 0,
                     val_bp: int = 2_000_000) -> LabelledWindows:
    """As :func:`heldout_windows`, from hg19 chr20 without its last ``val_bp`` bases (the training
    part of evo2kit-tiny's data, ``evo2kit.data.genome_windows.load_genome``), N-free; labels "CDS"."""
    _, chr20 = read_fasta_first(fetch("hg19_chr20"))
    return _sample_windows("chr20", [0], [chr20[:-val_bp]], n_windows, length, exon_fraction, seed)


def _sample_windows(chrom: str, starts0: Sequence[int], seqs: Sequence[str], n_windows: int, length: int,
                    exon_fraction: float, seed: int) -> LabelledWindows:
    """Windows of ``length`` from the stretches ``seqs`` of ``chrom`` (stretch b starts at 0-based
    ``starts0[b]``), A/C/G/T only, never overlapping; labels "CDS"."""
    if n_windows < 1 or length < 2 or not 0 <= exon_fraction <= 1:
        raise ValueError(f"need n_windows >= 1, length >= 2 and exon_fraction in [0, 1]; got {n_windows}, {length}, "
                         f"{exon_fraction}")
    keep = [b for b, s in enumerate(seqs) if len(s) >= length]
    if not keep:
        raise ValueError(f"no stretch of {chrom} holds {length} bases")
    starts0 = np.asarray(starts0)[keep]
    seqs = [seqs[b] for b in keep]
    ends0 = starts0 + np.array([len(s) for s in seqs])
    cds = _chrom_intervals("hg19_cds", chrom, one_based=True)
    centres = (cds[0] + cds[1]) // 2
    home = np.searchsorted(starts0, centres, side="right") - 1  # the stretch a CDS centre falls in, if any
    reach = length // 2 + length // 4
    ok = (home >= 0) & (centres - reach >= starts0[home.clip(0)]) & (centres + reach <= ends0[home.clip(0)])
    centres, home = centres[ok], home[ok]
    n_exon = int(round(n_windows * exon_fraction))
    if n_exon and not len(centres):
        raise ValueError(f"no coding exon of {chrom} lies inside a stretch with room for a {length}-bp window")
    usable = (ends0 - starts0 - length + 1).astype(float)
    rng = np.random.default_rng(seed)
    taken: list[tuple[int, int]] = []  # (0-based start, stretch) of the windows so far
    out = LabelledWindows([], [], {"CDS": []}, np.zeros(n_windows, bool))
    for i in range(n_windows):
        for _ in range(10_000):
            if i < n_exon:
                j = rng.integers(len(centres))
                b = int(home[j])
                start = int(centres[j]) - length // 2 + int(rng.integers(-(length // 4), length // 4 + 1))
            else:
                b = int(rng.choice(len(seqs), p=usable / usable.sum()))
                start = int(starts0[b] + rng.integers(usable[b]))
            window = seqs[b][start - starts0[b]:start - starts0[b] + length]
            if all(abs(start - s) >= length or b != k for s, k in taken) and not window.strip("ACGT"):
                break
        else:
            raise ValueError(f"could not place {n_windows} non-overlapping {length}-bp windows of A/C/G/T in {chrom}")
        taken.append((start, b))
        out.seqs.append(window)
        out.names.append(f"hg19_{chrom}:{start + 1}-{start + length}")
        out.labels["CDS"].append(interval_mask(cds[0], cds[1], start, length))
        out.centred_on_exon[i] = i < n_exon
    return out


def _chrom_intervals(dataset: str, chrom: str, one_based: bool) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) 0-based, end excluded, of ``dataset``'s intervals on ``chrom``."""
    t = pd.read_parquet(fetch(dataset), columns=["_labels", "_starts", "_ends"], filters=[("_labels", "==", chrom)])
    return t["_starts"].to_numpy(np.int64) - int(one_based), t["_ends"].to_numpy(np.int64)


def ecoli_mg1655() -> str:
    """The genome of E. coli K-12 MG1655 (NC_000913.2, 4,639,675 bp, upper case) from the Debian
    package ragout-examples (``bacteria_ragout``, downloaded on first use)."""
    seqs = read_deb_fastas(fetch("bacteria_ragout"), ECOLI_MEMBER)
    if len(seqs) != 1:
        raise ValueError(f"bacteria_ragout: expected one E. coli MG1655 record, found {sorted(seqs)}")
    return next(iter(seqs.values()))


def call_genes(seq: str) -> pd.DataFrame:
    """Protein-coding genes of a bacterial sequence called by pyrodigal (Prodigal's metagenomic
    mode, which needs no training on the genome, so any stretch works): columns start, end (0-based,
    end excluded, the stop codon included), strand (+1/-1), partial (a gene running off either end)."""
    import pyrodigal

    genes = pyrodigal.GeneFinder(meta=True).find_genes(seq.encode("ascii"))
    return pd.DataFrame({"start": [g.begin - 1 for g in genes], "end": [g.end for g in genes],
                         "strand": [g.strand for g in genes],
                         "partial": [bool(g.partial_begin or g.partial_end) for g in genes]},
                        columns=["start", "end", "strand", "partial"])


def gc_content(seq: str, width: int = 101) -> np.ndarray:
    """(len(seq),) the share of G and C among the ``width`` bases centred on each base (fewer at
    the ends): the simplest sequence feature, a baseline for anything that marks coding DNA."""
    gc = np.isin(np.frombuffer(seq.upper().encode("ascii"), np.uint8), np.frombuffer(b"GC", np.uint8)).astype(float)
    kernel = np.ones(width)
    return np.convolve(gc, kernel, mode="same") / np.convolve(np.ones(len(gc)), kernel, mode="same")


def mask_intervals(mask: np.ndarray, offset: int = 0) -> list[tuple[int, int]]:
    """The runs of True in a (L,) bool mask as (start, end) pairs, end excluded, shifted by ``offset``."""
    edges = np.flatnonzero(np.diff(np.r_[0, np.asarray(mask, np.int8), 0]))
    return [(offset + int(a), offset + int(b)) for a, b in zip(edges[::2], edges[1::2])]


def gene_spans(genes: pd.DataFrame, offset: int = 0) -> dict[str, list[tuple[int, int]]]:
    """{"gene (+)": [(start, end)], "gene (-)": [...]} of a :func:`call_genes` table, shifted by ``offset``."""
    return {f"gene ({sign})": [(offset + int(a), offset + int(b)) for a, b in
                               genes.loc[genes["strand"] == (1 if sign == "+" else -1), ["start", "end"]].to_numpy()]
            for sign in "+-"}
