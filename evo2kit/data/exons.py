"""Exon / intron labels for positions of the human genome, and the two-sided windows of the
Evo 2 repository's exon classifier (notebooks/exon_classifier).

    arc = load_arc_positions()                               # Arc's 122 positions of 8 eukaryotes
    chrom, genes = load_chromosome("chr20"), load_genes("chr20")
    train = sample_positions(chrom, genes, 600, window=512, rng=np.random.default_rng(0))
    fwd, rev = two_sided_windows(chrom, train, window=512)   # lists of strings, both ending at the position

**Label rule** (RefSeq exons of hg19, ``hg19_RefSeq_exon.txt.gz``: one row per exon, exons of a gene's
transcripts merged). A gene spans its first to its last exon. A position inside the span of genes of
one strand only is *exonic* (label 1) when it lies in any exon, *intronic* (label 0) otherwise. Positions
outside every gene span (intergenic) and positions inside genes of both strands (whose reading direction
is ambiguous) get no label (-1) and are never sampled: the task is "where in a gene is this base?", as in
Arc's 122 positions, every one of which lies in a named gene.

**Windows** (Arc's convention, read off ``samplePositions.tsv``): both windows end at the position and
are read in the gene's direction. ``forward`` holds the ``window`` bases of the gene's strand up to and
including the position; ``reverse`` the ``window`` bases of the opposite strand up to and including it
(the reverse complement of the gene-strand bases from the position on). So the position is the last base
of both, and ``reverse_complement(reverse)[0] == forward[-1]``. For a gene on the minus strand, forward is
read from the reverse complement of the plus strand. That Arc's windows follow the gene (not the plus
strand) shows in their base composition: introns are T-rich on the gene's strand, and Arc's forward
windows are T-rich (T-A skew about +0.03) for plus- and minus-strand genes alike.

Positions are 0-based on the hg19 chromosome; a window must lie inside one stretch of known sequence (the
chr22 blocks are pieces of an alignment) and hold only A/C/G/T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evo2kit.cli import few
from evo2kit.data.brca1 import BRCA1_REGION_START
from evo2kit.data.fasta import read_fasta, read_fasta_first
from evo2kit.data.registry import fetch
from evo2kit.model.tokenizer import reverse_complement

ARC_POSITIONS = "exon_positions"
REFSEQ_EXONS = "hg19_refseq_exons"
ARC_LAYER = "blocks.26"
"""The layer whose last-token output Arc's exon notebook reads (of ``evo2_7b_base``, 32 blocks)."""

SOURCES = {"chr20": "hg19_chr20", "chrX": "hg19_chrX_part", "chr22": "chr22_heldout", "chr17": "brca1_hg19_region"}
"""The human sequence at hand, by hg19 chromosome (registry names): chr20 whole, chrX 1-70 Mbp, chr22 as
the blocks of an alignment, chr17 as the BRCA1 region only."""

BRCA1_GENE = (41_196_311, 41_277_500)
"""BRCA1 in hg19, 0-based half-open: its first to its last RefSeq exon (Entrez GeneID 672, minus strand)."""

REFSEQ_CHROMOSOMES = {"NC_0000{:02d}".format(i): f"chr{i}" for i in range(1, 23)} | {"NC_000023": "chrX",
                                                                                   "NC_000024": "chrY"}
"""RefSeq accessions of the human chromosomes (any version) and their names."""

COMMON_NAMES = {"Homo_sapiens": "human", "Mus_musculus": "mouse", "Danio_rerio": "zebrafish",
                "Hordeum_vulgare_subsp._vulgare": "barley", "Selaginella_moellendorffii": "spikemoss",
                "Spinacia_oleracea": "spinach", "Theobroma_cacao": "cacao", "Vitis_vinifera": "grapevine"}
"""The species of Arc's positions by their common names."""

_ACGT = np.zeros(256, bool)
_ACGT[np.frombuffer(b"ACGT", np.uint8)] = True


# --------------------------------------------------------------------------- Arc's positions


def load_arc_positions(path=None) -> pd.DataFrame:
    """Arc's ``samplePositions.tsv`` (dataset ``exon_positions``): 122 rows, columns organism, assembly,
    gene_name, sequence_record, strand, position, label (int 0/1), forward_seq, reverse_seq (as published,
    lower case), chrom (hg-style chromosome name for human rows, else None).

    Raises ValueError naming the rows whose windows break Arc's convention (different lengths, or the
    first base of ``reverse_seq``'s reverse complement is not the last base of ``forward_seq``)."""
    path = path or fetch(ARC_POSITIONS)
    df = pd.read_csv(path, sep="\t")
    need = {"organism", "strand", "position", "label", "forward_seq", "reverse_seq"}
    if need - set(df.columns):
        raise ValueError(f"{path}: lacks column(s) {sorted(need - set(df.columns))}")
    odd = [str(i) for i in df.index[~df["label"].isin([0, 1])]]
    if odd:
        raise ValueError(f"{path}: label must be 0 or 1; it is not in rows {few(odd)}")
    df["label"] = df["label"].astype(np.int64)
    bad = [i for i, f, r in zip(df.index, df["forward_seq"], df["reverse_seq"])
           if len(f) != len(r) or reverse_complement(r)[0].upper() != f[-1].upper()]
    if bad:
        raise ValueError(f"{path}: {len(bad)} row(s) break the two-sided convention (equal lengths, "
                         f"reverse_complement(reverse_seq)[0] == forward_seq[-1]): rows {few([str(i) for i in bad])}")
    human = df["organism"] == "Homo_sapiens"
    df["chrom"] = [REFSEQ_CHROMOSOMES.get(str(rec).split(".")[0]) if h else None
                   for rec, h in zip(df.get("sequence_record", [None] * len(df)), human)]
    return df


def arc_windows(df: pd.DataFrame, window: int) -> tuple[list[str], list[str]]:
    """The last ``window`` bases of each row's forward_seq and reverse_seq (both end at the position),
    upper-cased: (forward, reverse) lists."""
    longest = int(df["forward_seq"].str.len().min())
    if not 1 <= window <= longest:
        raise ValueError(f"window must lie in 1..{longest} (the length of Arc's windows), got {window}")
    return ([s[-window:].upper() for s in df["forward_seq"]], [s[-window:].upper() for s in df["reverse_seq"]])


def t_skew(seqs) -> np.ndarray:
    """(T - A) / (T + A) of each sequence (N,): above 0 on the sense strand of most genes' introns, so it
    tells which way a set of windows was read."""
    out = []
    for s in seqs:
        s = s.upper()
        t, a = s.count("T"), s.count("A")
        out.append((t - a) / max(1, t + a))
    return np.array(out)


# --------------------------------------------------------------------------- sequence


@dataclass(frozen=True)
class Chromosome:
    """Known stretches of one hg19 chromosome: ``seqs[i]`` (upper case) starts at 0-based ``starts[i]``."""

    name: str
    starts: np.ndarray
    seqs: list[str]

    def slice(self, start: int, end: int) -> str | None:
        """Bases [start, end) when they lie inside one stretch and are all A/C/G/T, else None."""
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        if i < 0 or start < self.starts[i] or end - self.starts[i] > len(self.seqs[i]):
            return None
        s = self.seqs[i][start - self.starts[i]:end - self.starts[i]]
        return s if _ACGT[np.frombuffer(s.encode("ascii"), np.uint8)].all() else None

    @property
    def span(self) -> tuple[int, int]:
        """(first, one past the last) 0-based position with known sequence."""
        return int(self.starts[0]), int(self.starts[-1]) + len(self.seqs[-1])


def load_chromosome(name: str) -> Chromosome:
    """The sequence at hand for chromosome ``name`` (a key of :data:`SOURCES`)."""
    if name not in SOURCES:
        raise ValueError(f"no sequence for {name!r}; there is {', '.join(SOURCES)}")
    path = fetch(SOURCES[name])
    if name == "chr22":  # headers hg19_chr22:start-end, 1-based inclusive
        blocks = sorted((int(k.split(":")[1].split("-")[0]) - 1, s) for k, s in read_fasta(path).items())
        return Chromosome(name, np.array([b for b, _ in blocks], np.int64), [s for _, s in blocks])
    _, seq = read_fasta_first(path)
    start = BRCA1_REGION_START - 1 if name == "chr17" else 0
    return Chromosome(name, np.array([start], np.int64), [seq])


# --------------------------------------------------------------------------- genes and labels


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of half-open intervals -> sorted, disjoint (starts, ends)."""
    if not len(starts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    new = np.r_[True, s[1:] > e[:-1]]
    idx = np.flatnonzero(new)
    return s[idx], np.r_[e[idx[1:] - 1], e[-1]]


def _inside(intervals: tuple[np.ndarray, np.ndarray], pos: np.ndarray) -> np.ndarray:
    starts, ends = intervals
    i = np.searchsorted(starts, pos, side="right") - 1
    return (i >= 0) & (pos < ends[np.clip(i, 0, None)]) if len(starts) else np.zeros(len(pos), bool)


@dataclass(frozen=True)
class Genes:
    """RefSeq genes of one chromosome, as disjoint sorted half-open intervals: exons (any strand) and the
    gene spans of each strand. ``table``: the exon rows (gene_id, chrom, start 0-based, end, strand)."""

    chrom: str
    exons: tuple[np.ndarray, np.ndarray]
    plus: tuple[np.ndarray, np.ndarray]
    minus: tuple[np.ndarray, np.ndarray]
    table: pd.DataFrame

    def label(self, pos) -> tuple[np.ndarray, np.ndarray]:
        """The label rule (module docstring) at 0-based ``pos`` (N,): (labels int64: 1 exonic, 0 intronic,
        -1 none; strands '+' / '-' / '' (none))."""
        pos = np.asarray(pos, np.int64)
        plus, minus = _inside(self.plus, pos), _inside(self.minus, pos)
        one = plus ^ minus
        labels = np.where(one, _inside(self.exons, pos).astype(np.int64), -1)
        return labels, np.where(one, np.where(plus, "+", "-"), "")


def load_refseq_exons(path=None) -> pd.DataFrame:
    """RefSeq exons of hg19 (dataset ``hg19_refseq_exons``, SAF: GeneID Chr Start End Strand, 1-based
    inclusive) as gene_id, chrom, start (0-based), end (exclusive), strand."""
    t = pd.read_csv(path or fetch(REFSEQ_EXONS), sep="\t", dtype={"GeneID": str, "Chr": str})
    if list(t.columns) != ["GeneID", "Chr", "Start", "End", "Strand"]:
        raise ValueError(f"{path}: expected the SAF columns GeneID Chr Start End Strand, got {list(t.columns)}")
    return pd.DataFrame({"gene_id": t["GeneID"], "chrom": t["Chr"], "start": t["Start"].astype(np.int64) - 1,
                         "end": t["End"].astype(np.int64), "strand": t["Strand"]})


def load_genes(chrom: str, exons: pd.DataFrame | None = None) -> Genes:
    """:class:`Genes` of ``chrom`` from :func:`load_refseq_exons` (or the given table)."""
    t = load_refseq_exons() if exons is None else exons
    t = t[t["chrom"] == chrom]
    if t.empty:
        raise ValueError(f"no RefSeq exon on {chrom!r}")
    spans = t.groupby(["gene_id", "strand"]).agg(start=("start", "min"), end=("end", "max")).reset_index()
    strand = {s: _merge(*(spans.loc[spans["strand"] == s, c].to_numpy(np.int64) for c in ("start", "end")))
              for s in "+-"}
    exon = _merge(t["start"].to_numpy(np.int64), t["end"].to_numpy(np.int64))
    return Genes(chrom, exon, strand["+"], strand["-"], t.reset_index(drop=True))


# --------------------------------------------------------------------------- positions and windows


def window_bounds(pos, window: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based [start, end) of the bases the two windows of each position read: pos-window+1 .. pos+window-1."""
    pos = np.asarray(pos, np.int64)
    return pos - window + 1, pos + window


def _intersect(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of two sets of sorted disjoint half-open intervals."""
    starts, ends = [], []
    i = j = 0
    while i < len(a[0]) and j < len(b[0]):
        lo, hi = max(a[0][i], b[0][j]), min(a[1][i], b[1][j])
        if lo < hi:
            starts.append(lo)
            ends.append(hi)
        if a[1][i] < b[1][j]:
            i += 1
        else:
            j += 1
    return np.array(starts, np.int64), np.array(ends, np.int64)


def known_positions(chrom: Chromosome, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions whose two ``window``-bp windows (pos-window+1 .. pos+window-1) lie inside one stretch of
    A/C/G/T: sorted disjoint half-open intervals (starts, ends)."""
    starts, ends = [], []
    for offset, seq in zip(chrom.starts, chrom.seqs):
        ok = np.r_[False, _ACGT[np.frombuffer(seq.encode("ascii"), np.uint8)], False]
        edges = np.flatnonzero(np.diff(ok.astype(np.int8)))  # run starts and ends, alternating
        a, b = edges[0::2] + offset + window - 1, edges[1::2] + offset - window + 1
        starts.append(a[a < b])
        ends.append(b[a < b])
    return np.concatenate(starts), np.concatenate(ends)


def sample_positions(chrom: Chromosome, genes: Genes, n: int, window: int, rng: np.random.Generator,
                     region: tuple[int, int] | None = None) -> pd.DataFrame:
    """``n`` labelled positions of ``chrom`` (``n // 2`` intronic, the rest exonic), each drawn uniformly
    among the bases of its class inside ``region`` (0-based half-open; default: all the chromosome's
    sequence) whose two windows lie in known A/C/G/T sequence (:func:`known_positions`). Columns: chrom,
    pos, strand, label, sorted by position; no position twice.

    Raises ValueError when the region holds too few such positions."""
    lo, hi = region or chrom.span
    known = _intersect(known_positions(chrom, window), (np.array([lo]), np.array([hi])))
    genic = _merge(*(np.r_[genes.plus[k], genes.minus[k]] for k in range(2)))
    pools = {1: _intersect(genes.exons, known), 0: _intersect(genic, known)}  # introns: exons rejected below
    want = {0: n // 2, 1: n - n // 2}
    picked: dict[int, set] = {0: set(), 1: set()}
    for label, (s, e) in pools.items():
        sizes = (e - s).astype(np.float64)
        kind = "exonic" if label else "intronic"
        if want[label] > sizes.sum():
            raise ValueError(f"{chrom.name} {lo:,}-{hi:,}: {int(sizes.sum()):,} {kind} or genic bases have both "
                             f"{window}-bp windows in known sequence, fewer than the {want[label]} {kind} "
                             "positions asked for; ask for fewer positions or shorter windows")
        tries = 0
        while len(picked[label]) < want[label]:
            tries += 1
            if tries > 50 * want[label]:
                raise ValueError(f"{chrom.name} {lo:,}-{hi:,}: found only {len(picked[label])} of {want[label]} "
                                 f"{kind} positions with both {window}-bp windows in known sequence; ask for fewer "
                                 "positions or shorter windows")
            k = rng.choice(len(s), p=sizes / sizes.sum())
            p = int(s[k] + rng.integers(e[k] - s[k]))
            got, _ = genes.label([p])
            if got[0] == label:
                picked[label].add(p)
    pos = np.array(sorted(picked[0] | picked[1]), np.int64)
    labels, strands = genes.label(pos)
    return pd.DataFrame({"chrom": chrom.name, "pos": pos, "strand": strands, "label": labels})


def grid_positions(chrom: Chromosome, genes: Genes, start: int, end: int, step: int, window: int,
                   strand: str) -> pd.DataFrame:
    """Every ``step``-th position of [start, end) whose windows lie in known sequence, read on ``strand``
    (e.g. a gene's, for a track along it); columns chrom, pos, strand, label (the label rule's; -1 where it
    gives none, e.g. in a stretch shared with a gene of the other strand)."""
    if strand not in ("+", "-") or step < 1:
        raise ValueError(f"strand must be '+' or '-' and step >= 1, got {strand!r} and {step}")
    pos = np.arange(start, end, step, dtype=np.int64)
    a, b = window_bounds(pos, window)
    pos = pos[[chrom.slice(int(x), int(y)) is not None for x, y in zip(a, b)]]
    labels, strands = genes.label(pos)
    labels = np.where(strands == strand, labels, -1)
    return pd.DataFrame({"chrom": chrom.name, "pos": pos, "strand": strand, "label": labels})


def two_sided_windows(chrom: Chromosome, positions: pd.DataFrame, window: int) -> tuple[list[str], list[str]]:
    """Arc's two windows of each position (module docstring): (forward, reverse) lists of ``window``-bp
    strings, both ending at the position, read in the direction of its ``strand``."""
    forward, reverse = [], []
    for p, strand in zip(positions["pos"], positions["strand"]):
        up, down = chrom.slice(p - window + 1, p + 1), chrom.slice(p, p + window)
        if up is None or down is None:
            raise ValueError(f"{chrom.name}:{p}: a {window}-bp window leaves the known sequence or holds "
                             "a base other than A/C/G/T")
        if strand == "+":
            forward.append(up)
            reverse.append(reverse_complement(down))
        elif strand == "-":
            forward.append(reverse_complement(down))
            reverse.append(up)
        else:
            raise ValueError(f"{chrom.name}:{p}: strand must be '+' or '-', not {strand!r}")
    return forward, reverse


def overlapping(a: pd.DataFrame, b: pd.DataFrame, window: int) -> np.ndarray:
    """Rows of ``a`` (chrom, pos) whose windows share a base with a window of a row of ``b`` on the
    same chromosome: (len(a),) bool."""
    out = np.zeros(len(a), bool)
    for chrom, rows in a.groupby("chrom").groups.items():
        other = np.sort(b.loc[b["chrom"] == chrom, "pos"].to_numpy(np.int64))
        if not len(other):
            continue
        p = a.loc[rows, "pos"].to_numpy(np.int64)
        # two windows [p-w+1, p+w) overlap when the positions lie less than 2w-1 apart
        i = np.searchsorted(other, p)
        near = np.minimum(np.abs(p - other[np.clip(i, 0, len(other) - 1)]), np.abs(p - other[np.clip(i - 1, 0, None)]))
        out[a.index.get_indexer(rows)] = near < 2 * window - 1
    return out


# --------------------------------------------------------------------------- notebook 08's sets

SETS = {"train": "chr20", "val": "chrX", "chr22": "chr22", "brca1": "chr17", "arc": None}
"""Notebook 08's sets of positions and where they come from: training on chr20, validation (choosing the
probe's penalty and the layer) on the chrX part, tests on the chr22 blocks, along BRCA1, and Arc's 122."""


@dataclass
class ExonSets:
    """Every position of notebook 08 with its two windows. ``positions``: one row per position (set, chrom,
    pos, strand, label, organism: 'Homo_sapiens' for ours, the species for Arc's); ``forward[i]`` and
    ``reverse[i]`` are row i's windows."""

    positions: pd.DataFrame
    forward: list[str]
    reverse: list[str]
    window: int
    genes: dict[str, Genes]  # the RefSeq genes of each chromosome used, by name

    def rows(self, name: str) -> np.ndarray:
        """Row indices of set ``name`` (a key of :data:`SETS`)."""
        return np.flatnonzero((self.positions["set"] == name).to_numpy())

    @property
    def labels(self) -> np.ndarray:
        return self.positions["label"].to_numpy(np.int64)


def exon_sets(window: int, n_train: int, n_val: int, n_test: int, track_step: int, seed: int = 0) -> ExonSets:
    """Notebook 08's positions (:data:`SETS`): ``n_train`` on chr20, ``n_val`` on the chrX part and ``n_test``
    on the chr22 blocks, half exonic, drawn with ``seed`` (:func:`sample_positions`); every ``track_step``-th
    base of BRCA1 read on its (minus) strand, those the label rule labels; Arc's 122 with their windows cut
    to the last ``window`` bases.

    Raises ValueError if a training or validation window shares a base with a test window, or one of
    Arc's human positions lies on a chromosome used here (their GRCh38 coordinates are not compared)."""
    rng = np.random.default_rng(seed)
    table = load_refseq_exons()
    frames, forward, reverse, used = [], [], [], {}
    for name, n in (("train", n_train), ("val", n_val), ("chr22", n_test), ("brca1", None)):
        chrom, genes = load_chromosome(SETS[name]), load_genes(SETS[name], table)
        used[chrom.name] = genes
        if n is None:
            t = grid_positions(chrom, genes, *BRCA1_GENE, track_step, window, "-")
            t = t[t["label"] >= 0]
        else:
            t = sample_positions(chrom, genes, n, window, rng)
        f, r = two_sided_windows(chrom, t, window)
        frames.append(t.assign(set=name, organism="Homo_sapiens"))
        forward += f
        reverse += r
    arc = load_arc_positions()
    f, r = arc_windows(arc, window)
    frames.append(pd.DataFrame({"set": "arc", "chrom": arc["chrom"], "pos": arc["position"].astype(np.int64),
                                "strand": arc["strand"], "label": arc["label"], "organism": arc["organism"]}))
    positions = pd.concat(frames, ignore_index=True)[["set", "chrom", "pos", "strand", "label", "organism"]]
    ours = positions[positions["set"] != "arc"]
    fitted, tests = ours[ours["set"].isin(["train", "val"])], ours[~ours["set"].isin(["train", "val"])]
    clash = overlapping(fitted, tests, window)
    if clash.any():
        raise ValueError(f"{int(clash.sum())} training/validation window(s) overlap a test window")
    shared = set(positions.loc[positions["set"] == "arc", "chrom"].dropna()) & set(ours["chrom"])
    if shared:
        raise ValueError(f"Arc's human positions lie on {sorted(shared)}, a chromosome used here")
    return ExonSets(positions, forward + f, reverse + r, window, used)
