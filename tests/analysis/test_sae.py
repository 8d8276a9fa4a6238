"""evo2kit.analysis.sae: the top-k SAE against its plain reference, training, Goodfire's file format,
ranking features by AUROC; and the held-out annotation the features are ranked against."""

import pickle

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.metrics import roc_auc_score

from evo2kit.analysis import sae as saes


def random_sae(d_in=16, d_sae=96, k=4, seed=0) -> saes.TopKSAE:
    sae = saes.TopKSAE(d_in, d_sae, k).init_weights(seed)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
    return sae


@pytest.mark.parametrize("n,k", [(1, 1), (37, 4), (300, 9)])
def test_batch_topk_equals_the_plain_reference_dense_and_sparse(n, k):
    sae = random_sae(k=k)
    x = torch.randn(n, 16, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        dense, pre = sae.encode(x).numpy(), sae.pre_activations(x).numpy()
    ref = saes.batch_topk_reference(pre, k)
    np.testing.assert_array_equal(dense, ref.astype(np.float32))
    assert (ref > 0).sum() <= k * n  # k per position on average, more at some, fewer at others
    for chunk in (96, 500, 10**6):  # one row per chunk, a few rows, everything at once
        got = saes.encode_sparse(sae, x, chunk_values=chunk).toarray()
        np.testing.assert_array_equal(got > 0, dense > 0)  # the same features kept at the same bases
        np.testing.assert_allclose(got, dense, rtol=1e-6)  # chunked matrix products: float rounding
    x_hat, f = sae(x)
    np.testing.assert_allclose(x_hat.detach().numpy(), dense @ sae.W.detach().numpy().T + sae.b_dec.detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_training_reduces_reconstruction_error_on_sparse_synthetic_data():
    """Data made of 3 of 48 random directions per row: an SAE with k=3 learns to rebuild it far
    better than at initialisation, on rows it never saw."""
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(48, 16))

    def data(n):
        codes = np.zeros((n, 48))
        for row in codes:
            row[rng.choice(48, 3, replace=False)] = rng.uniform(1, 3, 3)
        return (codes @ atoms + 0.5).astype(np.float32)

    train, test = data(8192), torch.from_numpy(data(2048))
    untrained = saes.TopKSAE(16, 96, 3).init_weights(0, mean=torch.from_numpy(train).mean(0))
    sae, log = saes.train_sae(train, d_sae=96, k=3, epochs=20, batch_rows=512, lr=3e-3, seed=0)
    before, after = saes.fraction_unexplained(untrained, test), saes.fraction_unexplained(sae, test)
    assert before > 0.7 and after < 0.25, (before, after)
    assert log["fvu"].iloc[-1] < 0.5 * log["fvu"].iloc[0] and log["step"].iloc[-1] == 320
    with pytest.raises(ValueError, match="batch_rows"):
        saes.train_sae(train[:100], d_sae=96, k=3)


def test_goodfire_format_round_trip_and_what_it_refuses(tmp_path):
    path = saes.write_rehearsal_sae(tmp_path / saes.GOODFIRE_FILE, d_in=16, d_sae=128, k=8, seed=3)
    raw = torch.load(path, weights_only=True)
    assert {k: tuple(v.shape) for k, v in raw.items()} == {"_orig_mod.W": (16, 128), "_orig_mod.b_enc": (128,),
                                                          "_orig_mod.b_dec": (16,)}
    assert all(v.dtype == torch.float32 for v in raw.values())
    sae = saes.load_goodfire_sae(path, k=8)
    assert (sae.d_in, sae.d_sae, sae.k) == (16, 128, 8)
    for name in ("W", "b_enc", "b_dec"):
        assert torch.equal(getattr(sae, name).detach(), raw[f"_orig_mod.{name}"])
    # Arc's loader also strips "module." and takes plain names; a saved SAE loads back to the same encoding
    x = torch.randn(20, 16)
    for prefix in ("module.", ""):
        torch.save({prefix + k.removeprefix("_orig_mod."): v for k, v in raw.items()}, tmp_path / "other.pt")
        again = saes.load_goodfire_sae(tmp_path / "other.pt", k=8)
        assert torch.equal(again.encode(x), sae.encode(x))
    saes.save_goodfire_format(sae, tmp_path / "saved.pt")
    assert torch.equal(saes.load_goodfire_sae(tmp_path / "saved.pt", k=8).encode(x), sae.encode(x))

    torch.save({"W": raw["_orig_mod.W"], "b_enc": raw["_orig_mod.b_enc"][:5], "b_dec": raw["_orig_mod.b_dec"]},
               tmp_path / "shapes.pt")
    with pytest.raises(ValueError, match=r"shapes\.pt: shapes W \(16, 128\), b_enc \(5,\)"):
        saes.load_goodfire_sae(tmp_path / "shapes.pt")
    torch.save({"W": raw["_orig_mod.W"]}, tmp_path / "keys.pt")
    with pytest.raises(ValueError, match=r"keys\.pt: expected the tensors W, b_enc and b_dec .*found \['W'\]"):
        saes.load_goodfire_sae(tmp_path / "keys.pt")
    with open(tmp_path / "code.pt", "wb") as f:  # a pickle that would run code: refused, never executed
        pickle.dump({"W": Exploit()}, f)
    with pytest.raises(ValueError, match=r"code\.pt: not a file of plain tensors"):
        saes.load_goodfire_sae(tmp_path / "code.pt")
    assert not (tmp_path / "pwned").exists()


class Exploit:
    def __reduce__(self):
        import os
        return os.system, ("touch pwned",)


def test_feature_aurocs_are_sklearns_and_ranking_gives_block_intervals():
    rng = np.random.default_rng(0)
    sae = random_sae(d_sae=64, k=6)
    x = torch.randn(600, 16, generator=torch.Generator().manual_seed(1))
    feats = saes.encode_sparse(sae, x)
    dense = feats.toarray()
    y = (x[:, 0] > 0.3).numpy()
    got = saes.feature_aurocs(feats, y)
    np.testing.assert_allclose(got, [roc_auc_score(y, dense[:, j]) for j in range(64)], atol=1e-12)
    groups = np.arange(600) // 50
    ranked = saes.rank_features(feats, {"x0": y, "random": rng.random(600) < 0.5}, groups, top=2, n_boot=100)
    assert list(ranked["label"]) == ["x0", "x0", "random", "random"]
    assert ranked.iloc[0]["feature"] == int(np.argmax(got)) and ranked.iloc[0]["auroc"] == pytest.approx(got.max())
    assert ((ranked["low"] <= ranked["auroc"]) & (ranked["auroc"] <= ranked["high"])).all()
    assert ranked.iloc[0]["active"] == pytest.approx((dense[:, ranked.iloc[0]["feature"]] > 0).mean())
    with pytest.raises(ValueError, match="both classes"):
        saes.feature_aurocs(feats, np.zeros(600, bool))
    assert isinstance(feats, sparse.csr_matrix) and feats.shape == (600, 64)


def test_layer_activations_are_the_hooked_block_outputs():
    from evo2kit import load_model

    model = load_model(device="cpu")
    seqs = ["ACGTTGCA" * 20, "TTGACCAG" * 12]
    acts = saes.layer_activations(model, seqs, "blocks.9", batch_size=2)
    assert [a.shape for a in acts] == [(160, 96), (96, 96)]
    ids = torch.tensor([model.tokenizer.tokenize(seqs[1])])
    _, emb = model(ids, return_embeddings=True, layer_names=["blocks.9"])
    np.testing.assert_allclose(acts[1], emb["blocks.9"][0].numpy(), atol=1e-5)


def test_heldout_windows_lie_in_the_chr22_blocks_with_their_annotation(real_dir):
    from evo2kit.data import annotation
    from evo2kit.data.fasta import read_fasta
    from evo2kit.data.registry import fetch

    held = annotation.heldout_windows(12, 1024, exon_fraction=0.5, seed=4)
    assert len(held.seqs) == 12 and all(len(s) == 1024 for s in held.seqs) and held.centred_on_exon.sum() == 6
    blocks = read_fasta(fetch("chr22_heldout"), uppercase=False)
    spans = [(int(n.split(":")[1].split("-")[0]), n) for n in blocks]
    for name, seq, rep in zip(held.names, held.seqs, held.labels["repeat"]):
        start = int(name.split(":")[1].split("-")[0])
        block_start, block = max((s, n) for s, n in spans if s <= start)
        soft = blocks[block][start - block_start:start - block_start + 1024]
        assert soft.upper() == seq  # the window is the block's sequence at its coordinates
        assert (np.array([c.islower() for c in soft]) == rep).mean() > 0.9  # soft-masking agrees with RepeatMasker
    cds = held.stacked("CDS").reshape(12, 1024)
    assert cds[held.centred_on_exon, 256:768].any(1).all()  # an exon's centre lies within a quarter of the middle
    assert cds[held.centred_on_exon].mean() > 5 * cds[~held.centred_on_exon].mean()


def test_pyrodigal_calls_the_lac_genes_in_evo2s_e_coli_prompt():
    """lacI, lacY and lacA (UniProt P03023, P02920, P07464: their known N-terminal residues) among the
    genes pyrodigal calls in E. coli's lac region of Evo 2's test sequences (in the data folder)."""
    from Bio.Seq import Seq

    from evo2kit.analysis import generation
    from evo2kit.data import annotation

    lac = generation.arc_prompts().set_index("name").sequence["ECOLAC"]
    assert len(lac) == 7056 and set(lac) <= set("ACGT")
    genes = annotation.call_genes(lac)
    proteins = []
    for g in genes.itertuples():
        cds = Seq(lac[g.start:g.end])
        proteins.append(str((cds if g.strand == 1 else cds.reverse_complement()).translate()))
    for start in ("KPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREK", "MYYLKNTNFWMFGLFFFFYFFIMGAYFPFFPIWLHDINHI",
                  "MPMTERIRAGKLFTDMCEGLPEKRLRGKTLMYEFNHSHPS"):
        assert any(start in p for p in proteins), start
    assert all(p.endswith("*") for p, partial in zip(proteins, genes["partial"]) if not partial)
    spans = annotation.gene_spans(genes, offset=100)
    assert set(spans) == {"gene (+)", "gene (-)"}
    assert (int(genes["start"][0]) + 100, int(genes["end"][0]) + 100) in spans["gene (+)" if genes["strand"][0] == 1
                                                                               else "gene (-)"]
    mask = annotation.interval_mask(genes["start"], genes["end"], 0, len(lac))
    assert annotation.mask_intervals(mask)[0][0] == int(genes["start"].min())
