"""Prefix-shared passes (evo2kit.analysis.prefix) against whole windows: zero-shot deltas and embeddings
of BRCA1 variants on the bundled model, indels and fallbacks on a small random model, the
resumable store and torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evo2kit import load_model
from evo2kit.analysis import prefix, zero_shot
from evo2kit.analysis.embeddings import extract, variant_features
from evo2kit.analysis.store import StoreError
from evo2kit.data.brca1 import brca1_windows, load_brca1

ROOT = Path(__file__).resolve().parents[2]
CFG = dict(model_name="prefix-test", hidden_size=32, num_layers=4, hcs_layer_idxs=[0], hcm_layer_idxs=[1],
           hcl_layer_idxs=[2], attn_layer_idxs=[3], num_attention_heads=4, inner_mlp_size=64, state_size=8,
           hcs_filter_groups=16, hcm_filter_groups=16, max_seqlen=1024)
TOL = 1e-5  # the bound, float32
BRCA1_ROWS = [0, 1, 2, 3, 4, 40, 41, 100, 101, 102]  # variants sharing reference windows, and alone


@pytest.fixture(scope="module")
def small():
    return load_model(CFG, device="cpu")


@pytest.fixture(scope="module")
def bundled():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def brca1(real_dir):
    return brca1_windows(load_brca1().iloc[BRCA1_ROWS], 256)


def random_seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), n)) for n in lengths]


# --------------------------------------------------------------------------- the model's part

@pytest.mark.slow
def test_forward_from_returns_the_states_a_chunked_forward_reaches(small):
    ids = torch.tensor([small.tokenizer.tokenize(s) for s in random_seqs([130, 130, 130], seed=1)])
    net = small.model
    with torch.no_grad():
        whole = net(ids)
        pieces = []
        kept = net.forward_from(ids, keep_at=[37, 80, 500], chunk_size=50,
                                on_logits=lambda start, logits: pieces.append((start, logits)))
        assert sorted(kept) == [37, 80], "offsets past the input are not reached"
        assert [s for s, _ in pieces] == [0, 37, 50, 80, 100], "cut at the kept offsets and every chunk_size tokens"
        torch.testing.assert_close(torch.cat([lg for _, lg in pieces], 1), whole, rtol=0, atol=1e-4)

        frozen = {k: t.clone() for k, t in kept[37].blocks[3].tensors().items()}
        rows = [2, 0, 0]
        suffix = net(ids[rows, 37:], kept[37].select(rows))
        torch.testing.assert_close(suffix, whole[rows, 37:], rtol=0, atol=1e-4)
        for k, t in kept[37].blocks[3].tensors().items():
            assert torch.equal(t, frozen[k]), "a kept state must not change when a forward continues it"
        assert kept[37].offset == 37 and kept[37].select([1]).blocks[3].k.shape[0] == 1


def test_schedule_runs_children_after_their_references():
    # references 0, 1 (two children each at offsets 5 and 7), 2 alone; child 6 falls back
    lengths = [20, 20, 20, 20, 20, 20, 20]
    parent = [-1, -1, -1, 0, 1, 1, -1]
    shared = [0, 0, 0, 5, 5, 7, 0]
    units = prefix.schedule(lengths, parent, shared, batch_size=2)
    first = units[0]
    assert first[0].seqs == [0, 1] and first[0].keep == [5, 7]
    assert [(p.seqs, p.start, p.source) for p in first[1:]] == [([3, 4], 5, [0, 1]), ([5], 7, [1])]
    assert [u[0].seqs for u in units[1:]] == [[2, 6]]
    assert prefix.sharing([20, 20, 20], [-1, 0, 0], [0, 3, 20], min_shared=2) == [-1, 0, -1], \
        "a variant equal to its reference over its whole length has nothing left to run"


# --------------------------------------------------------------------------- zero-shot

@pytest.mark.parametrize("batch_size, chunk_size, rc", [(8, None, False), (3, None, False), (1, 100, False),
                                                        (4, None, True)])
@pytest.mark.slow
def test_zero_shot_deltas_equal_whole_windows(bundled, brca1, batch_size, chunk_size, rc):
    ref_seqs, var_seqs, ref_index = brca1
    with prefix.counting_tokens(bundled) as seen:
        got = zero_shot.delta_likelihood(bundled, ref_seqs, var_seqs, ref_index, batch_size, rc, chunk_size=chunk_size)
    want = zero_shot.delta_likelihood(bundled, ref_seqs, var_seqs, ref_index, batch_size, rc, shared_prefix=False)
    assert np.abs(got - want).max() <= TOL, np.abs(got - want).max()
    assert np.abs(want).max() > 100 * TOL, "deltas this small would not test anything"
    snv = 255 - brca1.var_pos_in_window if rc else brca1.var_pos_in_window  # every SNV >= MIN_SHARED bases in
    assert seen["tokens"] == 256 * len(ref_seqs) + sum(256 - snv), "each variant runs from its SNV on"


def test_variant_deltas_default_is_shared_and_cached_per_method(bundled, real_dir, tmp_path):
    df = load_brca1().iloc[BRCA1_ROWS]
    shared = zero_shot.variant_deltas(bundled, df, 256, cache=tmp_path)
    whole = zero_shot.variant_deltas(bundled, df, 256, cache=tmp_path, shared_prefix=False)
    assert len(list(tmp_path.glob("deltas-*.npy"))) == 2, "each method keeps its own entry"
    assert np.abs(shared["delta"] - whole["delta"]).max() <= TOL
    with prefix.counting_tokens(bundled) as seen:
        again = zero_shot.variant_deltas(bundled, df, 256, cache=tmp_path)
    assert seen["tokens"] == 0, "a second call with the same settings reads the stored deltas"
    np.testing.assert_array_equal(again["delta"], shared["delta"])


def test_indels_share_their_prefix_and_the_rest_fall_back(small):
    ref = random_seqs([300], seed=3)[0]
    other = "ACGT".replace(ref[150], "")[0]
    var_seqs = [ref[:150] + other + ref[151:],  # SNV at 150: continues the reference at 150
                ref[:150] + ref[153:] + "ACG",  # deletion of 3 bases, the window keeps its start
                ref[:200] + "TTTT" + ref[200:296],  # insertion after 200 (unless ref[200] is T)
                ref[:10] + other + ref[11:],  # SNV near the window start: runs whole
                ref[4:] + "ACGT"]  # a window re-centred: shares nothing, runs whole
    ref_index = np.zeros(len(var_seqs), np.int64)
    with prefix.counting_tokens(small) as seen:
        got = zero_shot.delta_likelihood(small, [ref], var_seqs, ref_index, batch_size=2)
    want = zero_shot.delta_likelihood(small, [ref], var_seqs, ref_index, batch_size=2, shared_prefix=False)
    assert np.abs(got - want).max() <= TOL
    shared = [prefix.shared_length(ref, v) for v in var_seqs]
    assert shared[0] == 150 and shared[1] >= 150 and shared[2] >= 200 and shared[3] == 10 and shared[4] < 64
    run = 300 + sum(len(v) - s if s >= prefix.MIN_SHARED else len(v) for v, s in zip(var_seqs, shared))
    assert seen["tokens"] == run, "the three sharing variants run from their first differing base, two whole"

    layers = ["blocks.1.mlp.l3", "blocks.3.mlp.l3"]
    seqs = [ref] * len(var_seqs) + var_seqs
    continues = [-1] * len(var_seqs) + list(range(len(var_seqs)))
    for pooling in ["mean", None]:
        a = extract(small, seqs, layers, pooling, batch_size=2, continues=continues)
        b = extract(small, seqs, layers, pooling, batch_size=2)
        for layer in layers:
            assert np.abs(a[layer] - b[layer]).max() <= TOL


# --------------------------------------------------------------------------- embeddings

@pytest.mark.parametrize("pooling, batch_size, chunk_size", [
    ("mean", 8, 8192), ("mean", 3, 100), ("window:8", 2, 8192), ("position", 5, 64), ("last", 1, 8192),
    (None, 4, 8192), (None, 3, 90)])
@pytest.mark.slow
def test_embeddings_equal_whole_windows(bundled, brca1, pooling, batch_size, chunk_size):
    layers = bundled.layer_names
    kwargs = dict(pooling=pooling, batch_size=batch_size, chunk_size=chunk_size)
    with prefix.counting_tokens(bundled) as seen:
        got = variant_features(bundled, brca1, layers, **kwargs)
    want = variant_features(bundled, brca1, layers, shared_prefix=False, **kwargs)
    for layer in layers:
        for side in ("ref", "var"):
            diff = np.abs(got[layer][side] - want[layer][side]).max()
            # pooled: absolute; per token (None), the values reach ~80 in the deep blocks, where
            # float32 rounding alone (a few ulp) is 1e-5: relative to the layer's largest value
            scale = 1.0 if pooling else max(1.0, float(np.abs(want[layer][side]).max()))
            assert diff <= TOL * scale, f"{layer} {side}: {diff} (largest value {scale})"
    assert seen["tokens"] == 1 + 256 * len(brca1.ref_seqs) + sum(256 - brca1.var_pos_in_window), \
        "each variant runs from its SNV on (and one token finds the layers' widths)"


@pytest.mark.slow
def test_several_poolings_come_from_one_pass(bundled, brca1):
    poolings = ["mean", "last", "position", "window:8"]
    layers = bundled.layer_names[5:7]
    with prefix.counting_tokens(bundled) as seen_four:
        four = variant_features(bundled, brca1, layers, poolings, batch_size=4)
    for i, pooling in enumerate(poolings):
        with prefix.counting_tokens(bundled) as seen_one:
            one = variant_features(bundled, brca1, layers, pooling, batch_size=4)
        assert seen_four == seen_one, "four poolings cost the passes of one"
        for layer in layers:
            assert four[layer]["var"].shape == (len(brca1.var_seqs), 4, bundled.config.hidden_size)
            for side in ("ref", "var"):
                np.testing.assert_allclose(four[layer][side][:, i], one[layer][side], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_shared_store_resumes_and_is_not_mixed_with_a_whole_window_store(bundled, brca1, tmp_path):
    layers = bundled.layer_names[::4]
    out = tmp_path / "store"
    with prefix.counting_tokens(bundled) as fresh:
        feats = variant_features(bundled, brca1, layers, "window:8", out=out, batch_size=2)
    first = {k: {s: np.array(v) for s, v in f.items()} for k, f in feats.items()}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shared_prefix"] is not None and manifest["complete"]
    undone = sorted(manifest["checksums"])[1]
    manifest["checksums"].pop(undone)  # as if killed before that unit was recorded
    (out / "manifest.json").write_text(json.dumps(manifest))
    rows = np.flatnonzero(np.load(out / "batches.npy") == int(undone))
    for layer in layers:
        arr = np.load(out / f"{layer}.npy", mmap_mode="r+")
        arr[rows] = np.nan
        arr.flush()
        del arr
    with prefix.counting_tokens(bundled) as seen:
        again = variant_features(bundled, brca1, layers, "window:8", out=out, batch_size=2)
    assert 0 < seen["tokens"] < fresh["tokens"], "only the unfinished unit is computed again"
    for layer in layers:
        for side in ("ref", "var"):
            np.testing.assert_array_equal(again[layer][side], first[layer][side])
    with pytest.raises(StoreError, match="shared_prefix"):
        variant_features(bundled, brca1, layers, "window:8", out=out, batch_size=2, shared_prefix=False)


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_with_shared_prefixes(real_dir, tmp_path):
    args = ["--brca1", "--window", "256", "--limit", "12", "--layers", "all", "--pooling", "mean",
            "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    runs = {}
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for name, launcher in [("one", []), ("two", torchrun)]:
        cmd = [sys.executable, *launcher, "-m", "evo2kit.analysis.embed_cli", *args, "--out", str(tmp_path / name)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = tmp_path / name
    manifest = json.loads((runs["one"] / "manifest.json").read_text())
    assert manifest["complete"] and manifest["shared_prefix"] is not None
    for f in sorted(p.name for p in runs["one"].glob("*.npy")):
        np.testing.assert_array_equal(np.load(runs["two"] / f), np.load(runs["one"] / f), err_msg=f)
