"""evo2kit's StripedHyena 2 against the official reference, and against itself in chunks.

Parity: vortex (vtx 1.1.0) built on CPU by evo2kit/model/vortex_reference.py with random weights in the
official checkpoint layout (per-head Wqkv rows, ``unembed.weight``, TE ``_extra_state``);
evo2kit loads the same state dict through its official-checkpoint loader. In float32 the
logits and the hooked activations must be equal bit for bit; in bfloat16 the difference is
reported and bounded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import evo2kit
from evo2kit.checkpoints.official import CheckpointError, load_official_state_dict, load_pretrained, save_pretrained
from evo2kit.model import vortex_reference as vr
from evo2kit.model.state import HyenaState, KVCache, ModalState
from evo2kit.model.striped_hyena import PUBLISHED_CONFIGS, Evo2Config, StripedHyena2, attend_with_cache
from evo2kit.model.tokenizer import reverse_complement

PARITY = vr.PARITY_CONFIGS  # the configs of tests/test_vortex_ref.py


def hook_names(n_layers: int) -> list[str]:
    return [f"blocks.{i}.{m}" for i in range(n_layers) for m in ("mlp.l3", "pre_norm")] + \
        [f"blocks.{i}" for i in range(n_layers)]


def run_hooked(model: StripedHyena2, ids: torch.Tensor, names: list[str], state=None):
    acts, handles = {}, []
    for n in names:
        handles.append(model.get_submodule(n).register_forward_hook(
            lambda _m, _i, out, n=n: acts.setdefault(n, []).append(out.detach())))
    try:
        with torch.no_grad():
            logits = model(ids, state)
    finally:
        for h in handles:
            h.remove()
    return logits, {n: torch.cat(v, 1) for n, v in acts.items()}


def ours(cfg: dict, sd: dict) -> StripedHyena2:
    model = StripedHyena2(Evo2Config.from_dict(cfg))
    report = load_official_state_dict(model, sd)
    assert sorted(report.dropped) == sorted(vr.extra_checkpoint_keys(cfg))
    assert len(report.permuted_wqkv) == len(cfg["attn_layer_idxs"]) * (1 + bool(cfg.get("qkv_proj_bias")))
    return model.eval()


def token_ids(batch: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    acgtn = torch.tensor([65, 67, 71, 84, 78])
    return acgtn[torch.randint(0, 5, (batch, length), generator=g)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PARITY))
def test_fp32_bit_parity_with_vortex(name):
    make, length = PARITY[name]
    cfg = make()
    sd = vr.random_official_state_dict(cfg, seed=1)
    ref = vr.build_reference(cfg, sd)
    model = ours(cfg, sd)
    ids = token_ids(2, length, seed=2)
    names = hook_names(cfg["num_layers"])
    ref_logits, ref_acts = ref.forward(ids, names)
    logits, acts = run_hooked(model, ids, names)
    assert torch.equal(logits, ref_logits), (logits - ref_logits).abs().max()
    for n in names:
        assert torch.equal(acts[n], ref_acts[n]), f"{n}: max diff {(acts[n] - ref_acts[n]).abs().max()}"


def test_bf16_difference_is_bounded():
    cfg = vr.official_config()
    sd = vr.random_official_state_dict(cfg, seed=1, dtype=torch.bfloat16)
    ref = vr.build_reference(cfg, sd, dtype=torch.bfloat16)
    model = ours(cfg, sd).to_inference_dtype(torch.bfloat16)
    assert model.blocks[2].filter.log_poles.dtype == torch.float32
    assert model.blocks[0].mlp.l1.weight.dtype == torch.bfloat16
    ids = token_ids(1, 150, seed=3)
    ref_logits, _ = ref.forward(ids)
    logits, _ = run_hooked(model, ids, [])
    rel = float((logits.float() - ref_logits.float()).abs().max() / ref_logits.float().abs().max())
    print(f"bf16 max |ours - vortex| / max |vortex| = {rel:.2e}")
    assert rel <= 2e-2


def test_load_model_from_yaml_and_official_pt_matches_reference(tmp_path):
    cfg = vr.official_config()
    sd = vr.random_official_state_dict(cfg, seed=5)
    ckpt, yml = tmp_path / "random_official.pt", tmp_path / "small.yml"
    torch.save(sd, ckpt)
    yml.write_text(yaml.safe_dump(cfg))
    model = evo2kit.load_model(str(yml), local_path=ckpt, device="cpu")
    ids = token_ids(1, 77, seed=6)
    (logits, _), emb = model(ids, return_embeddings=True, layer_names=["blocks.3.mlp.l3"])
    ref_logits, ref_acts = vr.build_reference(cfg, sd).forward(ids, ["blocks.3.mlp.l3"])
    assert torch.equal(logits, ref_logits)
    assert torch.equal(emb["blocks.3.mlp.l3"], ref_acts["blocks.3.mlp.l3"])


# --------------------------------------------------------------------------- chunked == whole


def small_model(seed: int = 1, **overrides) -> StripedHyena2:
    cfg = vr.official_config(**overrides)
    return ours(cfg, vr.random_official_state_dict(cfg, seed=seed))


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def random_chunking(length: int, rng: np.random.Generator) -> list[int]:
    sizes, left = [], length
    while left:
        s = int(min(left, rng.choice([1, 2, 3, 6, 7, 8, 127, 128, 129, int(rng.integers(1, 600))])))
        sizes.append(s)
        left -= s
    return sizes


CHUNKINGS = {
    "one-token chunks then the rest": lambda L, rng: [1] * 40 + [L - 40],
    "boundaries at every filter length": lambda L, rng: [2, 1, 4, 6, 1, 127, 128, 3, 7] + [L - 279],
    "uneven random": random_chunking,
    "two halves": lambda L, rng: [L // 2, L - L // 2],
}


@pytest.mark.slow
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_chunked_forward_equals_whole_forward(chunking):
    model = small_model()
    L, rng = 1500, np.random.default_rng(0)
    ids = token_ids(3, L, seed=7)
    names = hook_names(model.config.num_layers)
    whole, whole_acts = run_hooked(model, ids, names)
    sizes = CHUNKINGS[chunking](L, rng)
    assert sum(sizes) == L
    state, pos, outs, acts = model.new_state(), 0, [], {}
    for s in sizes:
        logits, a = run_hooked(model, ids[:, pos:pos + s], names, state)
        outs.append(logits)
        for n, v in a.items():
            acts.setdefault(n, []).append(v)
        pos += s
    assert state.offset == L
    assert max_rel(torch.cat(outs, 1), whole) <= 1e-5
    for n in names:
        assert max_rel(torch.cat(acts[n], 1), whole_acts[n]) <= 1e-5, n


def test_chunked_forward_at_4096_with_scaled_rope():
    model = small_model(seed=2, use_interpolated_rotary_pos_emb=True, rotary_emb_scaling_factor=32)
    ids = token_ids(2, 4096, seed=8)
    with torch.no_grad():
        whole = model(ids)
    api = evo2kit.Evo2Model(model, "small")
    (chunked, _), _ = api(ids, chunk_size=1000)
    assert max_rel(chunked, whole) <= 1e-5


def test_embed_long_equals_whole_forward():
    model = evo2kit.Evo2Model(small_model(), "small")
    seq = "".join(np.random.default_rng(3).choice(list("ACGT"), 3000))
    ids = torch.tensor([model.tokenizer.tokenize(seq)])
    (_, _), emb = model(ids, return_embeddings=True, layer_names=["blocks.2.mlp.l3"])
    per_pos = model.embed_long(seq, ["blocks.2.mlp.l3"], chunk_size=512, pooling=None)["blocks.2.mlp.l3"]
    mean = model.embed_long(seq, ["blocks.2.mlp.l3"], chunk_size=700)["blocks.2.mlp.l3"]
    whole = emb["blocks.2.mlp.l3"][0].numpy()
    assert per_pos.shape == whole.shape
    assert np.abs(per_pos - whole).max() / np.abs(whole).max() <= 1e-5
    np.testing.assert_allclose(mean, whole.mean(0), rtol=1e-4, atol=1e-6)


def test_training_gradients_flow_to_every_parameter():
    model = small_model().train()
    ids = token_ids(2, 64, seed=9)
    loss = torch.nn.functional.cross_entropy(model(ids[:, :-1]).reshape(-1, 512), ids[:, 1:].reshape(-1))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad


# ------------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def scorer():
    return evo2kit.Evo2Model(small_model(seed=4), "small")


def direct_loglik(model, seq: str, prepend_bos: bool = False) -> np.ndarray:
    ids = model.tokenizer.tokenize(seq)
    if prepend_bos:
        ids = [model.tokenizer.eod_id] + ids
    ids = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(model.model(ids)[0].double(), -1)
    return np.array([float(logp[t, ids[0, t + 1]]) for t in range(ids.shape[1] - 1)])


def test_score_equals_direct_log_likelihood(scorer):
    seqs = ["ACGTTGCAAGT", "GGGATTACA", "TTTTACGTACGTAGCTAGCATGCATCG"]
    mean = scorer.score_sequences(seqs)
    total = scorer.score_sequences(seqs, reduce_method="sum")
    bos = scorer.score_sequences(seqs, prepend_bos=True)
    for s, m, t, b in zip(seqs, mean, total, bos):
        assert m == pytest.approx(direct_loglik(scorer, s).mean(), rel=1e-5)
        assert t == pytest.approx(direct_loglik(scorer, s).sum(), rel=1e-5)
        assert b == pytest.approx(direct_loglik(scorer, s, prepend_bos=True).mean(), rel=1e-5)


def test_padding_in_a_batch_does_not_change_a_score(scorer):
    seqs = ["ACGTTGCAAGTAGGA", "GGGATTACA", "TTTTACGTACGTAGCTAGCATGCATCGAAT", "AC"]
    alone = scorer.score_sequences(seqs, batch_size=1)
    batched = scorer.score_sequences(seqs, batch_size=4)
    np.testing.assert_allclose(batched, alone, rtol=1e-5)


def test_reverse_complement_averaging(scorer):
    seqs = ["ACGTTGCAAGTAGGA", "GGGATTACAAC"]
    rc = [reverse_complement(s) for s in seqs]
    fwd, rev = scorer.score_sequences(seqs), scorer.score_sequences(rc)
    avg = scorer.score_sequences(seqs, average_reverse_complement=True)
    np.testing.assert_allclose(avg, (np.array(fwd) + np.array(rev)) / 2, rtol=1e-6)
    assert not np.allclose(fwd, rev)


# -------------------------------------------------------------------------------- errors


def test_unknown_model_name():
    with pytest.raises(KeyError, match="unknown model 'evo3_7b'"):
        evo2kit.load_model("evo3_7b")


def test_checkpoint_errors_list_every_bad_key():
    cfg = vr.official_config()
    sd = vr.random_official_state_dict(cfg, seed=0)
    del sd["blocks.1.filter.h"], sd["norm.scale"]
    sd["blocks.0.mlp.l1.weight"] = torch.zeros(3, 3)
    sd["blocks.9.mystery"] = torch.zeros(1)
    model = StripedHyena2(Evo2Config.from_dict(cfg))
    with pytest.raises(CheckpointError) as err:
        load_official_state_dict(model, sd)
    msg = str(err.value)
    for key in ("blocks.1.filter.h", "norm.scale", "blocks.9.mystery",
                "blocks.0.mlp.l1.weight: checkpoint (3, 3) vs model (128, 64)"):
        assert key in msg
    assert "missing (2)" in msg and "unexpected (1)" in msg and "wrong shape (1)" in msg


def test_fp8_checkpoint_without_fp8_metadata_names_the_key(tmp_path):
    """An FP8 config whose checkpoint lacks Transformer Engine metadata is refused, naming the key
    (the FP8 paths themselves are tested in test_checkpoint.py)."""
    cfg = vr.official_config(use_fp8_input_projections=True)
    yml = tmp_path / "small-fp8.yml"
    yml.write_text(yaml.safe_dump(cfg))
    sd = {k: v for k, v in vr.random_official_state_dict(cfg, seed=0).items() if not k.endswith("_extra_state")}
    torch.save(sd, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"blocks\.0\.projections\._extra_state: missing"):
        evo2kit.load_model(str(yml), local_path=tmp_path / "ckpt.pt", device="cpu")


def test_non_dna_input_names_character_and_position(scorer):
    with pytest.raises(ValueError, match=r"'X'.*position 4|position 4.*'X'"):
        scorer.score_sequences(["ACGTXACGT"])


def test_unsupported_config_is_refused():
    with pytest.raises(ValueError, match="column_split_hyena"):
        Evo2Config.from_dict(vr.official_config(column_split_hyena=True))


def test_published_configs_build_shapes():
    for name in ("evo2_1b_base", "evo2_7b", "evo2_40b"):
        cfg = Evo2Config.published(name)
        with torch.device("meta"):
            model = StripedHyena2(cfg)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        official = vr.official_param_shapes(vr.load_yaml_config(PUBLISHED_CONFIGS[name]))
        assert shapes == official, name


def test_safetensors_round_trip(tmp_path):
    model = small_model()
    path = save_pretrained(model, tmp_path, "small")
    again = load_pretrained(path)
    ids = token_ids(1, 40, seed=1)
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("offset,L,block", [(1, 1, 1), (7, 5, 3), (300, 64, 128), (1000, 200, 256)])
def test_blockwise_cache_attention_equals_masked_softmax(offset, L, block, fused):
    """Attention of a chunk to its cache, key-blocked (plain) or as two fused flash calls merged by
    their log-sum-exp, equals one masked softmax over all keys."""
    g = torch.Generator().manual_seed(offset)
    q = torch.randn(2, 3, L, 8, generator=g)
    k, v = torch.randn(2, 3, offset + L, 8, generator=g), torch.randn(2, 3, offset + L, 8, generator=g)
    mask = torch.ones(L, offset + L, dtype=torch.bool).tril(offset)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = attend_with_cache(q, k, v, offset, block=block, fused=fused)
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_state_is_one_typed_object_per_block():
    """new_state gives each block its kind's state; a chunk fills it with the shapes the next
    chunk needs; snapshot, select, to and nbytes act on every block."""
    model = small_model()
    cfg = model.config
    state = model.new_state()
    kinds = {"hcs": HyenaState, "hcm": HyenaState, "hcl": ModalState, "attn": KVCache}
    assert [type(b) for b in state.blocks] == [kinds[cfg.block_kind(i)] for i in range(cfg.num_layers)]
    assert state.nbytes == 0 and not any(b.tensors() for b in state.blocks)
    with torch.no_grad():
        model(token_ids(2, 40, seed=3), state)
    d, hd = cfg.hidden_size, cfg.hidden_size // cfg.num_attention_heads
    for i, b in enumerate(state.blocks):
        kind = cfg.block_kind(i)
        if kind == "attn":
            assert b.k.shape == b.v.shape == (2, cfg.num_attention_heads, 40, hd) and b.length == 40
        else:
            assert b.fir.shape == (2, 3 * d, cfg.short_filter_length - 1)
        if kind == "hcl":
            assert b.modal.shape == (2, d, cfg.state_size) and b.modal.dtype == torch.float32
        if kind in ("hcs", "hcm"):
            assert b.inner.shape == (2, d, getattr(cfg, f"{kind}_filter_length") - 1)
    expected = sum(t.numel() * t.element_size() for b in state.blocks for t in b.tensors().values())
    assert state.nbytes == expected > 0
    snap, picked, moved = state.snapshot(), state.select([1, 1, 0]), state.to("meta")
    with torch.no_grad():
        model(token_ids(2, 5, seed=4), state)
    assert snap.offset == 40 and state.offset == 45
    attn = next(i for i in range(cfg.num_layers) if cfg.block_kind(i) == "attn")
    assert snap.blocks[attn].length == 40 and state.blocks[attn].length == 45
    assert torch.equal(picked.blocks[attn].k[2], snap.blocks[attn].k[0]) and picked.blocks[attn].k.shape[0] == 3
    assert all(t.device.type == "meta" for b in moved.blocks for t in b.tensors().values())
