"""Training windows of human DNA: uniform over the genome, or rich in coding exons with repeats
down-weighted in the loss, optionally mixed with windows of bacterial genomes.

    seqs, val = load_genome()                                   # hg19 chr20 (minus its tail) and the chrX part
    uniform = WindowSampler(seqs, 2049)                         # how evo2kit-tiny was trained
    genic = GenicSampler(seqs, 2049, load_annotation(seqs), exon_fraction=0.5, repeat_weight=0.1)
    ids, weights = genic.batch(np.random.default_rng([seed, step]), 4)   # (4, 2049) int64, (4, 2048) float32
    mixed = MixedSampler(genic, WindowSampler(load_bacteria(), 2049), fraction=0.5)   # the same interface

Why exons: a model trained on uniform windows sees coding sequence in ~1% of its tokens, too
few to learn codons, reading frame and splice sites, which is what ranks nonsense and splice
variants as damaging. Evo 2 enriched its eukaryotic data for genic windows; GPN (Benegas et al.
2023, PNAS) samples exon-centred windows beside random ones and weights repeats 0.1 in its
loss. The annotation (``hg19_cds``, ``hg19_repeats`` in :mod:`evo2kit.data`) only chooses and
weights windows; chr17 (BRCA1) and the chr22 test blocks are never read for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from evo2kit.data.fasta import read_deb_fastas, read_fasta_first
from evo2kit.data.registry import fetch

CHROMOSOMES = {"hg19_chr20": "chr20", "hg19_chrX_part": "chrX"}
"""Training sequences (registry names) and their chromosome names in the annotation tables."""

_COMPLEMENT = np.zeros(256, np.uint8)
for _a, _b in zip(b"ACGTN", b"TGCAN"):
    _COMPLEMENT[_a] = _b


def load_genome(names=tuple(CHROMOSOMES), val_bp: int = 2_000_000) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{name: uint8 array} training sequences and one validation array (the last ``val_bp``
    bases of the first, cut from its training sequence). ``val_bp`` must leave some of the first
    sequence for training (a ValueError says how long it is)."""
    train, val = {}, None
    for i, name in enumerate(names):
        _, seq = read_fasta_first(fetch(name))
        arr = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
        if i == 0:
            if not 0 < val_bp < len(arr):
                raise ValueError(f"val_bp (--val-bp) must hold out fewer bases than {name} has ({len(arr):,} bp) "
                                 f"and at least 1, got {val_bp:,}")
            arr, val = arr[:-val_bp], arr[-val_bp:]
        train[name] = arr
    return train, val


def n_free_starts(seq: np.ndarray, length: int) -> np.ndarray:
    """(L,) bool: whether the window [i, i + length) lies inside ``seq`` and holds only A/C/G/T."""
    bad = np.concatenate([[0], np.cumsum(~np.isin(seq, np.frombuffer(b"ACGT", np.uint8)))])
    ok = np.zeros(len(seq), bool)
    ok[:max(0, len(seq) - length + 1)] = bad[length:] - bad[:-length] == 0
    return ok


class WindowSampler:
    """Uniform random N-free windows over several sequences, both strands."""

    def __init__(self, seqs: dict[str, np.ndarray], length: int):
        self.length = length
        self.seqs = list(seqs.values())
        self.starts = [np.flatnonzero(n_free_starts(s, length)) for s in self.seqs]
        sizes = np.array([len(o) for o in self.starts], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def draw(self, rng: np.random.Generator) -> tuple[int, int, bool]:
        """(sequence, start, reverse complement?) of one uniform window."""
        k = rng.choice(len(self.seqs), p=self.weights)
        return k, int(self.starts[k][rng.integers(len(self.starts[k]))]), bool(rng.random() < 0.5)

    def batch(self, rng: np.random.Generator, batch_size: int) -> torch.Tensor:
        """(batch_size, length) int64 token ids."""
        return torch.from_numpy(np.stack([self.window(*self.draw(rng)) for _ in range(batch_size)]))

    def window(self, k: int, start: int, reverse: bool) -> np.ndarray:
        w = self.seqs[k][start:start + self.length]
        return (_COMPLEMENT[w[::-1]] if reverse else w).astype(np.int64)


@dataclass
class Annotation:
    """Per training sequence: CDS intervals (starts, ends) and a per-base repeat mask."""

    cds: dict[str, tuple[np.ndarray, np.ndarray]]
    repeats: dict[str, np.ndarray]


def load_annotation(seqs: dict[str, np.ndarray]) -> Annotation:
    """The CDS intervals and repeat masks of the training sequences ``seqs`` ({registry name:
    array}; each read from position 0, so a validation tail cut off the end is left out); CDS
    intervals as 0-based [start, end)."""
    cds_table = pd.read_parquet(fetch("hg19_cds"), columns=["_labels", "_starts", "_ends"])
    rep_table = pd.read_parquet(fetch("hg19_repeats"), columns=["_labels", "_starts", "_ends"])
    cds, repeats = {}, {}
    for name, seq in seqs.items():
        chrom = CHROMOSOMES[name]
        c = cds_table[(cds_table["_labels"] == chrom) & (cds_table["_ends"] <= len(seq))]
        c = c.drop_duplicates(["_starts", "_ends"])
        # the CDS table counts from 1, ends included (OR4F5: 69,091-70,008, 918 bp = 306 codons);
        # the repeat table from 0, ends excluded (as UCSC's rmsk)
        cds[name] = (c["_starts"].to_numpy(np.int64) - 1, c["_ends"].to_numpy(np.int64))
        r = rep_table[rep_table["_labels"] == chrom]
        edges = np.zeros(len(seq) + 1, np.int32)  # +1 at each start, -1 at each end, then a running sum
        np.add.at(edges, np.clip(r["_starts"].to_numpy(), 0, len(seq)), 1)
        np.add.at(edges, np.clip(r["_ends"].to_numpy(), 0, len(seq)), -1)
        repeats[name] = np.cumsum(edges[:-1]) > 0
    return Annotation(cds, repeats)


class GenicSampler:
    """Windows of ``length`` bases, ``exon_fraction`` of them centred on a coding exon, with a loss
    weight per predicted base.

    An exon-centred window picks a CDS interval of the training sequences (each equally likely),
    moves its centre by a uniform offset in [-jitter, jitter] and redraws until the window is
    N-free and inside the sequence; the others are :class:`WindowSampler`'s. Either strand (1/2).
    ``weights`` (B, length - 1) float32, for the bases at 1 .. length-1 (the ones predicted):
    ``repeat_weight`` inside a repeat, 1 elsewhere.
    """

    def __init__(self, seqs: dict[str, np.ndarray], length: int, annotation: Annotation,
                 exon_fraction: float = 0.5, jitter: int | None = None, repeat_weight: float = 0.1):
        if not 0 <= exon_fraction <= 1 or not 0 <= repeat_weight <= 1:
            raise ValueError(f"exon_fraction and repeat_weight must lie in [0, 1], "
                             f"got {exon_fraction} and {repeat_weight}")
        self.uniform = WindowSampler(seqs, length)
        self.length, self.exon_fraction, self.repeat_weight = length, exon_fraction, repeat_weight
        self.jitter = length // 4 if jitter is None else jitter
        self.ok = [n_free_starts(s, length) for s in self.uniform.seqs]
        self.masks = [annotation.repeats[name] for name in seqs]
        self.cds = [annotation.cds[name] for name in seqs]
        self.exons = [(k, int(c)) for k, (s, e) in enumerate(self.cds) for c in (s + e) // 2]
        if exon_fraction > 0 and not self.exons:
            raise ValueError("no coding exon in the training sequences: cannot centre windows on exons")

    def draw(self, rng: np.random.Generator) -> tuple[int, int, bool]:
        """(sequence, start, reverse complement?) of one window."""
        if self.exon_fraction == 0 or rng.random() >= self.exon_fraction:
            return self.uniform.draw(rng)
        for _ in range(10_000):
            k, centre = self.exons[rng.integers(len(self.exons))]
            start = centre + int(rng.integers(-self.jitter, self.jitter + 1)) - self.length // 2
            if 0 <= start < len(self.ok[k]) and self.ok[k][start]:
                return k, start, bool(rng.random() < 0.5)
        raise ValueError(f"no N-free {self.length}-bp window found around the coding exons in 10,000 tries")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One window: (length,) int64 token ids and (length - 1,) float32 loss weights."""
        k, start, reverse = self.draw(rng)
        mask = self.masks[k][start:start + self.length]
        weights = np.where(mask[::-1] if reverse else mask, self.repeat_weight, 1.0).astype(np.float32)
        return self.uniform.window(k, start, reverse), weights[1:]

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch_size, length) int64 token ids and (batch_size, length - 1) float32 loss weights."""
        ids, weights = zip(*(self.sample(rng) for _ in range(batch_size)))
        return torch.from_numpy(np.stack(ids)), torch.from_numpy(np.stack(weights))

    def coding_share(self, rng: np.random.Generator, n: int = 1000) -> float:
        """Share of the bases of ``n`` drawn windows that lie in a CDS interval: what the mix
        gives the model to read (uniform windows of chr20 and the chrX part: about 1%)."""
        inside = [np.zeros(len(s), bool) for s in self.uniform.seqs]
        for k, (starts, ends) in enumerate(self.cds):
            for a, b in zip(starts, ends):
                inside[k][a:b] = True
        return float(np.mean([inside[k][start:start + self.length].mean()
                              for k, start, _ in (self.draw(rng) for _ in range(n))]))


def load_bacteria() -> dict[str, np.ndarray]:
    """{assembly[:record]: uint8 array}: the 16 complete reference assemblies of ragout-examples
    (E. coli 2, H. pylori 5, S. aureus 5, V. cholerae 4 with 2 chromosomes each; 48.2 Mbp)."""
    seqs = read_deb_fastas(fetch("bacteria_ragout"), "*/references/*.fasta.gz")
    return {name.split("examples/", 1)[-1]: np.frombuffer(seq.encode("ascii"), np.uint8) for name, seq in seqs.items()}


class MixedSampler:
    """``fraction`` of the windows uniform over ``other`` (e.g. bacterial genomes, mostly protein-coding;
    every base weighted 1), the rest from ``genic``; the same interface as :class:`GenicSampler`."""

    def __init__(self, genic: GenicSampler, other: WindowSampler, fraction: float):
        if not 0 <= fraction <= 1 or other.length != genic.length:
            raise ValueError(f"fraction must lie in [0, 1] (got {fraction}) and both samplers draw windows of "
                             f"one length (got {genic.length} and {other.length})")
        self.genic, self.other, self.fraction = genic, other, fraction

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() < self.fraction:
            return self.other.window(*self.other.draw(rng)), np.ones(self.other.length - 1, np.float32)
        return self.genic.sample(rng)

    batch = GenicSampler.batch
