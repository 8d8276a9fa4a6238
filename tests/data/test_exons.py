"""Tests for evo2kit.data.exons: the label rule, Arc's two-sided windows, sampling, and the real tables.

Synthetic chromosomes and exon tables check the rules exactly; the real-data tests (skipped locally and
failing under CI when $EVO2KIT_DATA_DIR lacks a file, see conftest.real_dir) check the conventions the
module relies on: SAF coordinates, the chr22 block headers, and Arc's window orientation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evo2kit.data import annotation
from evo2kit.data import exons as ex
from evo2kit.data.registry import DATASETS
from evo2kit.model.tokenizer import reverse_complement

# ----------------------------------------------------------------------------- synthetic


def _table(rows) -> pd.DataFrame:
    """An exon table as load_refseq_exons returns it: (gene_id, start 0-based, end exclusive, strand) on chrT."""
    return pd.DataFrame([{"gene_id": g, "chrom": "chrT", "start": s, "end": e, "strand": st} for g, s, e, st in rows])


# gene a (+): exons [100, 120) [200, 230); gene b (-): exons [400, 410) [500, 520);
# gene c (-): exons [210, 215) [260, 270) overlaps a's span [100, 230) on the other strand
GENES = ex.load_genes("chrT", _table([("a", 100, 120, "+"), ("a", 200, 230, "+"), ("b", 400, 410, "-"),
                                      ("b", 500, 520, "-"), ("c", 210, 215, "-"), ("c", 260, 270, "-")]))


def test_label_rule_exonic_intronic_and_no_label():
    pos = [99, 100, 119, 120, 150, 199, 209, 229, 230, 265, 300, 405, 450, 519, 520]
    labels, strands = GENES.label(pos)
    want = {99: (-1, ""),        # intergenic, before a
            100: (1, "+"), 119: (1, "+"), 120: (0, "+"), 150: (0, "+"), 199: (0, "+"),
            209: (1, "+"), 229: (-1, ""),  # 229: inside a (+) and c (-), no reading direction
            230: (0, "-"),       # past a's span, inside c's [210, 270), between c's exons
            265: (1, "-"), 300: (-1, ""), 405: (1, "-"), 450: (0, "-"), 519: (1, "-"), 520: (-1, "")}
    assert {p: (int(lab), str(s)) for p, lab, s in zip(pos, labels, strands)} == want


def test_merge_joins_overlapping_and_touching_intervals():
    s, e = ex._merge(np.array([5, 0, 3, 20, 10]), np.array([8, 4, 6, 25, 12]))
    assert s.tolist() == [0, 10, 20] and e.tolist() == [8, 12, 25]
    assert [a.tolist() for a in ex._merge(np.zeros(0, np.int64), np.zeros(0, np.int64))] == [[], []]


def _chrom(length=2000, seed=0, start=0) -> ex.Chromosome:
    rng = np.random.default_rng(seed)
    return ex.Chromosome("chrT", np.array([start]), ["".join(rng.choice(list("ACGT"), length))])


def test_two_sided_windows_follow_the_gene_strand():
    chrom, w = _chrom(), 7
    seq = chrom.seqs[0]
    positions = pd.DataFrame({"pos": [150, 150], "strand": ["+", "-"]})
    (fp, fm), (rp, rm) = ex.two_sided_windows(chrom, positions, w)
    assert fp == seq[144:151] and rp == reverse_complement(seq[150:157])   # plus: read left to right
    assert fm == reverse_complement(seq[150:157]) and rm == seq[144:151]   # minus: the same two, swapped
    for f, r in ((fp, rp), (fm, rm)):  # Arc's convention: both end at the position
        assert len(f) == len(r) == w and reverse_complement(r)[0] == f[-1]
    assert fp[-1] == seq[150] and fm[-1] == reverse_complement(seq[150])


def test_two_sided_windows_refuse_unknown_sequence_and_bad_strand():
    chrom = ex.Chromosome("chrT", np.array([0, 100]), ["ACGT" * 20, "ACGTN" + "ACGT" * 20])
    assert chrom.slice(0, 80) and chrom.slice(70, 90) is None and chrom.slice(100, 110) is None
    assert chrom.slice(105, 115) == "ACGTACGTAC"
    with pytest.raises(ValueError, match="chrT:5: a 8-bp window leaves the known sequence"):
        ex.two_sided_windows(chrom, pd.DataFrame({"pos": [5], "strand": ["+"]}), 8)
    with pytest.raises(ValueError, match="strand must be"):
        ex.two_sided_windows(chrom, pd.DataFrame({"pos": [40], "strand": ["."]}), 8)


def test_sample_positions_balanced_labelled_by_the_rule_and_inside_known_sequence():
    chrom = _chrom(600)
    t = ex.sample_positions(chrom, GENES, 40, window=20, rng=np.random.default_rng(1))
    assert len(t) == 40 and t["label"].sum() == 20 and t["pos"].is_unique and t["pos"].is_monotonic_increasing
    labels, strands = GENES.label(t["pos"])
    assert (labels == t["label"]).all() and (strands == t["strand"]).all() and (labels >= 0).all()
    fwd, rev = ex.two_sided_windows(chrom, t, 20)  # raises if any window left the sequence
    assert {len(s) for s in fwd + rev} == {20}
    again = ex.sample_positions(chrom, GENES, 40, window=20, rng=np.random.default_rng(1))
    pd.testing.assert_frame_equal(t, again)  # a seed gives one sample
    inside = ex.sample_positions(chrom, GENES, 10, window=20, rng=np.random.default_rng(2), region=(380, 600))
    assert inside["pos"].between(380, 599).all() and set(inside["strand"]) == {"-"}
    with pytest.raises(ValueError, match="30 exonic or genic bases .* fewer than the 100 exonic positions"):
        ex.sample_positions(chrom, GENES, 200, window=20, rng=np.random.default_rng(0), region=(380, 600))


def test_known_positions_keep_both_windows_in_one_stretch_of_acgt():
    chrom = ex.Chromosome("chrT", np.array([0, 100]), ["ACGT" * 10, "ACGTN" + "ACGT" * 5])
    starts, ends = ex.known_positions(chrom, 5)
    # stretch 1: bases 0-39, positions 4..35; stretch 2: N at 104, A/C/G/T at 100-103 and 105-124
    assert starts.tolist() == [4, 109] and ends.tolist() == [36, 121]
    for p in range(0, 130):
        a, b = ex.window_bounds(p, 5)
        inside = any(s <= p < e for s, e in zip(starts, ends))
        assert inside == (chrom.slice(int(a), int(b)) is not None), p
    got = ex._intersect((np.array([0, 10, 30]), np.array([5, 20, 40])), (np.array([3, 15]), np.array([12, 35])))
    assert [x.tolist() for x in got] == [[3, 10, 15, 30], [5, 12, 20, 35]]


def test_grid_positions_keep_only_the_given_strand_labelled():
    g = ex.grid_positions(_chrom(600), GENES, 100, 300, 10, 20, "+")
    assert g["pos"].tolist() == list(range(100, 300, 10)) and set(g["strand"]) == {"+"}
    assert dict(zip(g["pos"], g["label"]))[110] == 1 and dict(zip(g["pos"], g["label"]))[150] == 0
    assert dict(zip(g["pos"], g["label"]))[210] == -1 and dict(zip(g["pos"], g["label"]))[260] == -1


def test_overlapping_windows_only_on_the_same_chromosome():
    a = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2"], "pos": [100, 200, 100]})
    b = pd.DataFrame({"chrom": ["chr1", "chr3"], "pos": [118, 100]})
    # windows of width 10 read pos-9 .. pos+9: 100 and 118 share base 109; 200 and 118 share nothing
    assert ex.overlapping(a, b, 10).tolist() == [True, False, False]
    assert ex.overlapping(a, b, 9).tolist() == [False, False, False]


def test_arc_positions_reject_rows_that_break_the_convention(tmp_path):
    good = {"organism": "Homo_sapiens", "sequence_record": "NC_000016.10", "strand": "+", "position": 5.0,
            "label": 1.0, "forward_seq": "aacg", "reverse_seq": "taac"}
    path = tmp_path / "pos.tsv"
    pd.DataFrame([good]).to_csv(path, sep="\t", index=False)
    arc = ex.load_arc_positions(path)
    assert arc["label"].tolist() == [1] and arc["chrom"].tolist() == ["chr16"]
    assert ex.arc_windows(arc, 3) == (["ACG"], ["AAC"])
    with pytest.raises(ValueError, match="window must lie in 1..4"):
        ex.arc_windows(arc, 5)
    pd.DataFrame([good, {**good, "reverse_seq": "tgca"}]).to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"1 row\(s\) break the two-sided convention .* rows 1$"):
        ex.load_arc_positions(path)
    pd.DataFrame([{**good, "label": 2}]).to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match="label must be 0 or 1; it is not in rows 0"):
        ex.load_arc_positions(path)


def test_registry_entries_for_notebook_08():
    arc, refseq = DATASETS["exon_positions"], DATASETS["hg19_refseq_exons"]
    assert arc.url == ("https://raw.githubusercontent.com/ArcInstitute/evo2/53f195997257c56c00e5ef8d33a54f5baad143a6"
                       "/notebooks/exon_classifier/samplePositions.tsv")
    assert arc.sha256 == "55b43c5b0ac039c61da6b87875a453aaf5dc4aa4c944935ae1378d3c0bdd6145"
    assert refseq.url is None and "subread-data" in refseq.description and refseq.check == "file_sha256"


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def refseq(real_dir) -> pd.DataFrame:
    return ex.load_refseq_exons()


@pytest.fixture(scope="module")
def arc(real_dir) -> pd.DataFrame:
    return ex.load_arc_positions()


def _splice_pairs(chrom: ex.Chromosome, genes: ex.Genes) -> pd.Series:
    """Counts of (first two, last two) bases of the gaps between consecutive exons of each gene, read
    on the gene's strand: mostly GT..AG when the coordinates are converted right."""
    pairs = []
    for _, g in genes.table.sort_values("start").groupby("gene_id"):
        for end, start, strand in zip(g["end"].to_numpy()[:-1], g["start"].to_numpy()[1:], g["strand"]):
            intron = chrom.slice(int(end), int(start))
            if intron and len(intron) > 4:
                intron = intron if strand == "+" else reverse_complement(intron)
                pairs.append(intron[:2] + ".." + intron[-2:])
    return pd.Series(pairs).value_counts(normalize=True)


def test_real_refseq_exons_of_one_gene_keep_the_tables_1_based_starts(refseq):
    """evo2kit.data.annotation.refseq_exons (notebook 10) reads the one table through load_refseq_exons
    and gives one gene's rows back in the SAF's own convention: 1-based, ends included."""
    brca1 = annotation.refseq_exons(annotation.BRCA1_GENE_ID)
    rows = refseq[refseq["gene_id"] == str(annotation.BRCA1_GENE_ID)].sort_values("start")
    assert len(brca1) == len(rows) == 24 and set(brca1["strand"]) == {"-"}
    assert (brca1["start"].to_numpy() == rows["start"].to_numpy() + 1).all()
    assert (brca1["end"].to_numpy() == rows["end"].to_numpy()).all()
    assert brca1["end"].max() == ex.BRCA1_GENE[1] and brca1["start"].min() == ex.BRCA1_GENE[0] + 1
    with pytest.raises(KeyError, match="no RefSeq exon of gene id 0"):
        annotation.refseq_exons(0)


@pytest.mark.parametrize("name", ["chr20", "chr22", "chr17"])
def test_real_refseq_and_sequence_coordinates_agree(refseq, name):
    """Introns start with GT and end with AG: the SAF table (1-based inclusive) and each sequence's
    coordinates (the chr22 block headers, the BRCA1 region's offset) are read the same way."""
    chrom, genes = ex.load_chromosome(name), ex.load_genes(name, refseq)
    share = _splice_pairs(chrom, genes)
    assert share.index[0] == "GT..AG" and share.iloc[0] > 0.9, share.head()


def test_real_arc_positions(arc):
    assert len(arc) == 122 and arc["label"].sum() == 61
    counts = arc.groupby("organism")["label"].agg(["size", "sum"])
    assert counts["size"].tolist() == [16, 16, 16, 16, 15, 16, 11, 16] and counts.index[1] == "Homo_sapiens"
    assert set(arc["forward_seq"].str.len()) == set(arc["reverse_seq"].str.len()) == {8192}
    human = arc[arc["organism"] == "Homo_sapiens"]
    # no human position of Arc's on a chromosome whose sequence the notebook trains on or tests elsewhere
    assert human["chrom"].notna().sum() == 15 and not set(human["chrom"]) & set(ex.SOURCES)


def test_real_windows_read_in_the_gene_direction_like_arcs(arc, refseq):
    """Introns are T-rich on the gene's strand. Arc's forward windows are T-rich for genes of both
    strands, so they follow the gene, not the plus strand; ours, built the same way on chr20, agree."""
    for strand in "+-":
        assert ex.t_skew(arc.loc[arc["strand"] == strand, "forward_seq"]).mean() > 0.01
        assert ex.t_skew(arc.loc[arc["strand"] == strand, "reverse_seq"]).mean() < -0.01
    chrom, genes = ex.load_chromosome("chr20"), ex.load_genes("chr20", refseq)
    t = ex.sample_positions(chrom, genes, 400, 2048, np.random.default_rng(0))
    intronic = t[t["label"] == 0]
    fwd, rev = ex.two_sided_windows(chrom, intronic, 2048)
    skew = ex.t_skew(fwd)
    for strand in "+-":
        assert skew[(intronic["strand"] == strand).to_numpy()].mean() > 0.01, strand
    plus_strand_view = np.where(intronic["strand"] == "+", skew, ex.t_skew(rev))  # the plus strand's reading
    assert plus_strand_view[(intronic["strand"] == "-").to_numpy()].mean() < -0.01


def test_t_skew():
    np.testing.assert_allclose(ex.t_skew(["TTTA", "acgt", "GGCC", "aaat"]), [0.5, 0.0, 0.0, -0.5])


def test_real_exon_sets_of_notebook_08(refseq):
    sets = ex.exon_sets(window=64, n_train=40, n_val=20, n_test=20, track_step=2000, seed=3)
    p = sets.positions
    assert p.groupby("set", sort=False).size().to_dict() == {"train": 40, "val": 20, "chr22": 20, "brca1": 41,
                                                             "arc": 122}
    assert p.groupby("set")["chrom"].agg(lambda c: set(c.dropna())).to_dict() == {
        "train": {"chr20"}, "val": {"chrX"}, "chr22": {"chr22"}, "brca1": {"chr17"},
        "arc": {"chr1", "chr2", "chr3", "chr7", "chr11", "chr14", "chr15", "chr16", "chr19"}}
    for name in ("train", "val", "chr22"):
        assert sets.labels[sets.rows(name)].tolist().count(1) == len(sets.rows(name)) // 2
    brca1 = p.iloc[sets.rows("brca1")]
    assert set(brca1["strand"]) == {"-"} and brca1["pos"].between(*ex.BRCA1_GENE).all()
    assert brca1["pos"].tolist() == list(range(ex.BRCA1_GENE[0], ex.BRCA1_GENE[1], 2000))
    labels, _ = sets.genes["chr17"].label(brca1["pos"])
    assert (labels == brca1["label"]).all() and 0 < brca1["label"].sum() < len(brca1)
    ours = p[p["set"] != "arc"]
    fitted = ours[ours["set"].isin(["train", "val"])]
    assert not ex.overlapping(fitted, ours[~ours["set"].isin(["train", "val"])], 64).any()
    assert len(sets.forward) == len(sets.reverse) == len(p) and {len(s) for s in sets.forward + sets.reverse} == {64}
    arc = ex.load_arc_positions()
    assert sets.forward[sets.rows("arc")[0]] == arc["forward_seq"].iloc[0][-64:].upper()
    chrom = ex.load_chromosome("chr20")  # each window is the sequence at its position
    row = p.iloc[sets.rows("train")[0]]
    f, r = ex.two_sided_windows(chrom, p.iloc[[sets.rows("train")[0]]], 64)
    assert (sets.forward[sets.rows("train")[0]], sets.reverse[sets.rows("train")[0]]) == (f[0], r[0])
    assert chrom.slice(row["pos"], row["pos"] + 1) in (f[0][-1], reverse_complement(f[0][-1]))
