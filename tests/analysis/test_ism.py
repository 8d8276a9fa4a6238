"""evo2kit.analysis.ism: saturation mutagenesis against windows cut and scored by hand, its layout, the
model's base probabilities, per-group correlations; and the BRCA1 exon layout it is drawn on."""

import numpy as np
import pandas as pd
import pytest
import torch

from evo2kit import load_model
from evo2kit.analysis import ism, stats


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def region():
    return "".join(np.random.default_rng(1).choice(list("ACGT"), 700))


@pytest.mark.parametrize("window", [40, 200])  # SNV 20 bases in: whole windows; 100 in: prefix-shared passes
def test_deltas_equal_hand_cut_windows_scored_with_score_sequences(model, region, window):
    start0 = 1_000  # coordinates of region[0]
    table = ism.saturation_mutagenesis(model, region, start0 + 300, start0 + 304, window, region_start=start0,
                                       batch_size=3)
    assert len(table) == 15
    for row in table.itertuples():
        p = row.pos - start0
        ref = region[p - window // 2:p + window // 2]
        var = ref[:window // 2] + row.alt + ref[window // 2 + 1:]
        assert ref[window // 2] == row.ref != row.alt
        want = np.subtract(*model.score_sequences([var, ref], batch_size=2))
        assert row.delta == pytest.approx(want, abs=2e-6), (row.pos, row.alt)


def test_every_position_gets_its_three_changes_in_one_grid(model, region):
    variants = ism.saturation_variants(region, 11, 20, region_start=1)
    assert len(variants) == 30 and variants.groupby("pos").size().eq(3).all()
    assert (variants["ref"] == [region[p - 1] for p in variants["pos"]]).all() and (variants["ref"] != variants[
        "alt"]).all()
    grid = ism.ism_matrix(variants.assign(delta=np.arange(30.0)))
    assert list(grid.columns) == list("ACGT") and list(grid.index) == list(range(11, 21))
    for pos, row in grid.iterrows():  # NaN exactly at the reference base
        assert row.isna().tolist() == [b == region[pos - 1] for b in "ACGT"]
    # a measured table with gaps: missing SNVs and whole positions are NaN, the layout stays
    sparse_grid = ism.ism_matrix(variants.iloc[[0, 1, 27]].assign(delta=1.0))
    assert list(sparse_grid.index) == list(range(11, 21)) and int(sparse_grid.notna().sum().sum()) == 3
    assert ism.per_position(grid, "min").tolist() == grid.min(axis=1).tolist()
    with pytest.raises(ValueError, match="more than once"):
        ism.ism_matrix(pd.concat([variants, variants]).assign(delta=0.0))
    with pytest.raises(ValueError, match="inside the region"):
        ism.saturation_variants(region, 695, 705, region_start=1)
    with pytest.raises(ValueError, match="no A/C/G/T"):
        ism.saturation_variants("ACGNT", 1, 5)
    with pytest.raises(ValueError, match="'mean' or 'min'"):
        ism.per_position(grid, "max")


def test_base_probabilities_are_the_forward_pass_renormalised_over_acgt(model, region):
    probs = ism.base_probabilities(model, region, 101, 140, context=60, region_start=1)
    assert list(probs.index) == list(range(101, 141)) and np.allclose(probs.sum(axis=1), 1)
    ids = torch.tensor([model.tokenizer.tokenize(region[40:140])])
    logits = model(ids)[0][0][0]
    # the base at position 101 (index 100 of the region, 60 into the pass) is predicted from index 59
    want = torch.softmax(logits[59, [65, 67, 71, 84]], -1).numpy()
    np.testing.assert_allclose(probs.loc[101].to_numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError, match="context"):
        ism.base_probabilities(model, region, 30, 40, context=60, region_start=1)


def test_correlations_per_group_resample_whole_positions():
    rng = np.random.default_rng(0)
    pos = np.repeat(np.arange(60), 3)
    x = rng.normal(size=180) + np.repeat(rng.normal(size=60), 3)
    table = pd.DataFrame({"pos": pos, "exon": pos // 30, "delta": x, "score": x + rng.normal(size=180)})
    table.loc[5, "score"] = np.nan  # an SNV not measured is left out
    out = ism.correlations(table, "exon", n_boot=300)
    assert list(out.index) == [0, 1, "all"] and out.loc["all", "n"] == 179 and out.loc[0, "positions"] == 30
    assert ((out["low"] <= out["rho"]) & (out["rho"] <= out["high"])).all() and (out["rho"] > 0.4).all()
    np.testing.assert_allclose(out.loc[0, ["rho", "low", "high"]].to_numpy(float), stats.spearman_ci(
        table["delta"][:90].drop(5), table["score"][:90].drop(5), groups=pos[:90][np.arange(90) != 5], n_boot=300))


def test_brca1_exon_layout_numbers_the_coding_bases(real_dir):
    from evo2kit.data.brca1 import BRCA1_REGION_START, exon_layout, load_brca1
    from evo2kit.data.fasta import read_fasta_first
    from evo2kit.data.registry import fetch

    brca1 = load_brca1()
    assert sorted(brca1["exon"].unique()) == [2, 3, 4, 5, 15, 16, 17, 18, 19, 20, 21, 22, 23]
    layout = exon_layout(brca1)
    assert len(layout) == sum(g["pos"].max() - g["pos"].min() + 1 for _, g in brca1.groupby("exon"))
    _, region = read_fasta_first(fetch("brca1_hg19_region"))
    at = layout.set_index("pos")
    c1 = int(at.index[at["coding"] == 1][0])  # c.1, the A of the start codon, read on the minus strand
    assert region[c1 - 2 - BRCA1_REGION_START:c1 + 1 - BRCA1_REGION_START] == "CAT"  # ATG reverse-complemented
    assert at.loc[c1, "codon_position"] == 1 and at.loc[c1 - 1, "codon_position"] == 2
    exon18 = layout[(layout["exon"] == 18) & layout["coding"].notna()]
    assert len(exon18) == 41  # c.5153-c.5193
    measured = brca1.drop_duplicates("pos").set_index("pos")["hgvs_c"]
    coding = measured[measured.str.fullmatch(r"\d+")].astype(int)
    assert (at.loc[coding.index, "coding"].astype(int) == coding).all()  # every measured number kept
