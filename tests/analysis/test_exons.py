"""Tests for evo2kit.analysis.exons: window features (Arc's embeddings, k-mers, the nearest bases) and
the probe's evaluation on held-out sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evo2kit
from evo2kit.analysis import exons as ax
from evo2kit.analysis.embeddings import extract
from evo2kit.data import exons as ex
from evo2kit.model.tokenizer import reverse_complement


@pytest.fixture(scope="module")
def tiny():
    return evo2kit.load_model("evo2kit-tiny", device="cpu")


def _chrom(length=400, seed=0) -> ex.Chromosome:
    rng = np.random.default_rng(seed)
    return ex.Chromosome("chrT", np.array([0]), ["".join(rng.choice(list("ACGT"), length))])


def test_kmer_counts_are_overlapping_frequencies_that_skip_other_letters():
    one = ax.kmer_counts(["AACGT", "NNNN", ""], 1)
    assert one.shape == (3, 4) and not one[1:].any()
    np.testing.assert_allclose(one[0], [0.4, 0.2, 0.2, 0.2], rtol=1e-6)
    two = ax.kmer_counts(["AACNGT"], 2)  # AA AC (CN NG skipped) GT
    expect = np.zeros(16, np.float32)
    expect[[0, 1, 11]] = 1 / 3  # AA = 0, AC = 1, GT = 2 * 4 + 3
    np.testing.assert_allclose(two[0], expect)
    assert ax.kmer_counts(["acgt"], 4)[0, 0b00011011] == 1.0  # ACGT, case ignored
    with pytest.raises(ValueError, match="k must be >= 1"):
        ax.kmer_counts(["ACGT"], 0)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_nearest_bases_are_centred_on_the_position_in_the_gene_direction(strand):
    chrom, flank = _chrom(), 3
    seq = chrom.seqs[0]
    fwd, rev = ex.two_sided_windows(chrom, pd.DataFrame({"pos": [100], "strand": [strand]}), 8)
    onehot = ax.nearest_bases(fwd, rev, flank).reshape(2 * flank + 1, 4)
    read = "".join("ACGT"[i] for i in onehot.argmax(1))
    local = seq[97:104]
    assert read == (local if strand == "+" else reverse_complement(local))
    with pytest.raises(ValueError, match="shorter than flank"):
        ax.nearest_bases(fwd, rev, 8)


def test_baseline_features_shapes():
    chrom = _chrom()
    fwd, rev = ex.two_sided_windows(chrom, pd.DataFrame({"pos": [50, 60, 70], "strand": ["+", "-", "+"]}), 16)
    base = ax.baseline_features(fwd, rev, k=3, flank=5)
    assert {k: v.shape for k, v in base.items()} == {"GC content": (3, 2), "3-mer counts": (3, 128),
                                                     "one-hot ±5 bp": (3, 44)}
    np.testing.assert_allclose(base["3-mer counts"][:, :64].sum(1), 1.0, rtol=1e-6)
    gc = [sum(b in "GC" for b in s) / len(s) for s in fwd]
    np.testing.assert_allclose(base["GC content"][:, 0], gc, rtol=1e-6)
    np.testing.assert_allclose(ax.gc_content(["GGAT", "NNCA", "TTTT"]), [0.5, 0.5, 0.0])


def test_window_embeddings_concatenate_the_last_token_of_both_windows_at_every_layer(tiny):
    chrom = _chrom(600)
    positions = pd.DataFrame({"pos": [100, 200, 300], "strand": ["+", "-", "+"]})
    fwd, rev = ex.two_sided_windows(chrom, positions, 64)
    layers = ["blocks.0", "blocks.5", "blocks.11"]
    emb = ax.window_embeddings(tiny, fwd, rev, layers, batch_size=2)
    d = tiny.config.hidden_size
    assert list(emb) == layers and {a.shape for a in emb.values()} == {(3, 2 * d)}
    for layer in layers:  # [forward | reverse], each the window's last token, whatever else is in the batch
        alone_f = extract(tiny, fwd[1:2], [layer], pooling="last")[layer][0]
        alone_r = extract(tiny, rev[1:2], [layer], pooling="last")[layer][0]
        np.testing.assert_allclose(emb[layer][1], np.concatenate([alone_f, alone_r]), rtol=1e-4, atol=1e-5)
    assert not np.allclose(emb["blocks.11"][:, :d], emb["blocks.11"][:, d:])
    with pytest.raises(ValueError, match="3 forward windows but 2 reverse"):
        ax.window_embeddings(tiny, fwd, rev[:2], layers)


def _toy(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n // 2)
    signal = y + rng.normal(0, 0.7, n)
    X = {"informative": np.c_[signal, rng.normal(size=(n, 3))], "noise": rng.normal(size=(n, 4))}
    return X, y


def test_evaluate_trains_on_train_rows_only_and_scores_every_test_set():
    X, y = _toy()
    idx = np.arange(len(y))
    train, val, a, b = idx[:120], idx[120:160], idx[160:200], idx[200:]
    table, scores = ax.evaluate(X, y, train, val, {"a": a, "b": b}, n_boot=200)
    assert table[["features", "test"]].values.tolist() == [["informative", "a"], ["informative", "b"],
                                                           ["noise", "a"], ["noise", "b"]]
    good, noise = table[table.features == "informative"], table[table.features == "noise"]
    assert (good["auroc"] > 0.8).all() and (noise["ci_low"] < 0.5).all() and (noise["ci_high"] > 0.5).all()
    assert (table["ci_low"] <= table["auroc"]).all() and (table["auroc"] <= table["ci_high"]).all()
    assert table["n"].tolist() == [40, 40, 40, 40] and table["n_exonic"].tolist() == [20, 20, 20, 20]
    assert scores["informative"].shape == (240,)
    # the test rows never reach the probe: changing their features does not change the training rows' scores
    X2 = {k: v.copy() for k, v in X.items()}
    X2["informative"][200:] = 0
    _, again = ax.evaluate(X2, y, train, val, {"a": a}, n_boot=50)
    np.testing.assert_array_equal(again["informative"][:200], scores["informative"][:200])
    with pytest.raises(ValueError, match="set 'b' must hold exonic .* and intronic"):
        ax.evaluate(X, y, train, val, {"b": idx[y == 1]})


def test_auroc_by_group():
    X, y = _toy()
    groups = pd.Series(np.repeat(["p", "q"], 120))
    out = ax.auroc_by_group(y, {"s": X["informative"][:, 0]}, groups, n_boot=100)
    assert out["group"].tolist() == ["p", "q"] and out["n"].tolist() == [120, 120]
    assert (out["auroc"] > 0.8).all() and (out["ci_low"] < out["auroc"]).all()


def test_auroc_table_reads_each_row_as_auroc_with_its_interval_in_order_of_appearance():
    table = pd.DataFrame({"features": ["emb", "emb", "kmer", "kmer"], "test": ["chr22", "arc", "chr22", "arc"],
                          "auroc": [0.7, 0.6, 0.75, 0.55], "ci_low": [0.65, 0.5, 0.7, 0.45],
                          "ci_high": [0.75, 0.7, 0.8, 0.65]})
    got = ax.auroc_table(table, index="features", columns="test")
    assert list(got.index) == ["emb", "kmer"] and list(got.columns) == ["chr22", "arc"]
    assert got.loc["kmer", "arc"] == "0.550 [0.450, 0.650]" and got.loc["emb", "chr22"] == "0.700 [0.650, 0.750]"
