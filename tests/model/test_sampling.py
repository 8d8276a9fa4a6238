"""Sampling (evo2kit.model.sampling): batched cached decoding against a plain reference that
recomputes the whole prefix at every step with the same draws; batch size never changes a sample;
greedy is the argmax; the filters are vortex's own; the shared prompt cache behaves as a copied one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import evo2kit
from evo2kit.model.sampling import (
    BASE_IDS,
    SamplingSettings,
    base_probabilities,
    draw,
    sample_tokens,
    uniform_streams,
)
from evo2kit.model.state import KVCache

SMALL = dict(model_name="sampling-test", hidden_size=32, num_layers=5, hcs_layer_idxs=[0, 4], hcm_layer_idxs=[1],
             hcl_layer_idxs=[2], attn_layer_idxs=[3], num_attention_heads=4, inner_mlp_size=64, state_size=8,
             hcs_filter_groups=16, hcm_filter_groups=16)


@pytest.fixture(scope="module")
def tiny():
    """The bundled model: a trained distribution over the bases, so draws are not all near-uniform."""
    return evo2kit.load_model("evo2kit-tiny", device="cpu")


@pytest.fixture(scope="module")
def small():
    """A small random model with every block kind: fast enough for many decodes."""
    return evo2kit.load_model(SMALL, device="cpu")


def prompts(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [[BASE_IDS[b] for b in rng.integers(0, 4, n)] for n in lengths]


@torch.no_grad()
def reference(model, prompt, n_tokens, settings, seed, i, j):
    """Sample j of prompt i the slow, obvious way: the whole sequence through the model at every step."""
    u = uniform_streams(seed, [(i, j)], n_tokens)[0]
    ids, lps = list(prompt), []
    for t in range(n_tokens):
        logits = model(torch.tensor([ids]))[0, -1]
        base = int(draw(base_probabilities(logits[BASE_IDS][None], settings), torch.tensor([u[t]]))[0])
        ids.append(BASE_IDS[base])
        lps.append(float(torch.log_softmax(logits, -1)[BASE_IDS[base]]))
    return ids[len(prompt):], lps


@pytest.mark.parametrize("name, settings", [("tiny", SamplingSettings(1.0, 4, 1.0)),
                                            ("small", SamplingSettings(0.7, 3, 0.9)),
                                            ("small", SamplingSettings(0, 4, 1.0))], ids=["tiny-t1-k4", "t0.7-k3-p0.9",
                                                                                          "greedy"])
def test_cached_batched_decoding_equals_recomputing_the_prefix(name, settings, request):
    """Three prompts (two of one length, decoded in one batch, and a shorter one), two samples each."""
    model = request.getfixturevalue(name)
    ps = prompts([120, 120, 70])
    tokens, logprobs = sample_tokens(model.model, ps, 24, settings, seed=11, n_samples=2)
    assert tokens.shape == logprobs.shape == (6, 24)
    for i, p in enumerate(ps):
        for j in range(2):
            want, want_lp = reference(model.model, p, 24, settings, 11, i, j)
            assert tokens[i * 2 + j].tolist() == want, (i, j)
            np.testing.assert_allclose(logprobs[i * 2 + j].numpy(), want_lp, atol=2e-5)


def test_recomputed_path_equals_cached_path(small):
    ps = prompts([150, 90])
    settings = SamplingSettings(1.0, 4, 1.0)
    cached, _ = sample_tokens(small.model, ps, 30, settings, seed=3, n_samples=3)
    plain, _ = sample_tokens(small.model, ps, 30, settings, seed=3, n_samples=3, cached=False)
    assert torch.equal(cached, plain)


def test_batch_size_and_company_do_not_change_a_sample(small):
    """The same rows decoded all at once, one at a time, in blocks of 4, and with prompt 0 alone."""
    ps = prompts([100, 100, 100])
    settings = SamplingSettings(1.0, 4, 1.0)
    whole, _ = sample_tokens(small.model, ps, 20, settings, seed=5, n_samples=3)
    for batch_size in (1, 4):
        again, _ = sample_tokens(small.model, ps, 20, settings, seed=5, n_samples=3, batch_size=batch_size)
        assert torch.equal(again, whole), batch_size
    alone, _ = sample_tokens(small.model, ps[:1], 20, settings, seed=5, n_samples=3)
    assert torch.equal(alone, whole[:3])
    other_seed, _ = sample_tokens(small.model, ps, 20, settings, seed=6, n_samples=3)
    assert not torch.equal(other_seed, whole)
    assert len({tuple(r) for r in whole.tolist()}) == 9  # the samples of one prompt differ from each other


def test_greedy_is_the_argmax_and_needs_no_draws(tiny):
    p = prompts([40])[0]
    for settings in (SamplingSettings(0, 4, 1.0), SamplingSettings(1.3, 1, 1.0)):
        tokens, _ = sample_tokens(tiny.model, [p], 12, settings, seed=0, n_samples=3)
        assert (tokens == tokens[0]).all()  # every sample the same: nothing was drawn
        ids = list(p)
        with torch.no_grad():
            for t in range(12):
                logits = tiny.model(torch.tensor([ids]))[0, -1]
                ids.append(BASE_IDS[int(logits[BASE_IDS].argmax())])
        assert tokens[0].tolist() == ids[len(p):]


def test_filters_are_vortex_sample_filters():
    """top-k, then temperature, then top-p: the distribution vortex's sampler draws from (vortex.model.sample,
    run on the 4 base logits), for random logits and every setting. Exactly tied logits (vortex keeps
    whichever its sort puts first) are kept together here, checked apart."""
    from vortex.model.sample import modify_logits_for_top_p_filtering

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 4, generator=g) * 2
    for top_k in (2, 3, 4):
        for temperature in (0.5, 1.0, 1.7):
            for top_p in (0.3, 0.8, 0.95, 1.0):
                ours = base_probabilities(logits, SamplingSettings(temperature, top_k, top_p))
                top, idx = torch.topk(logits.clone(), top_k, dim=-1)
                top /= temperature
                modify_logits_for_top_p_filtering(top, top_p)
                theirs = torch.zeros(200, 4, dtype=torch.float64).scatter(1, idx, top.softmax(-1).double())
                torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    one_hot = base_probabilities(logits, SamplingSettings(0.0, 4, 1.0))
    assert torch.equal(one_hot.argmax(-1), logits.argmax(-1)) and torch.equal(one_hot.sum(-1), torch.ones(200).double())
    tied = torch.tensor([[1.0, 2.0, 2.0, 0.5]])
    assert (base_probabilities(tied, SamplingSettings(1.0, 1, 1.0)) == torch.tensor([[0.0, 1, 0, 0]])).all()
    assert (base_probabilities(tied, SamplingSettings(1.0, 2, 1.0))[0, [1, 2]] > 0).all()  # both tied bases kept


def test_draws_follow_the_probabilities_and_never_pick_a_removed_base():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.5, 0.0]], dtype=torch.float64)
    u = torch.from_numpy(np.random.default_rng(0).random(40_000))
    counts = torch.stack([torch.bincount(draw(probs[r].expand(len(u), 4), u), minlength=4) for r in range(3)])
    assert (counts[probs == 0] == 0).all()
    freq = counts / len(u)
    assert (freq - probs).abs().max() < 0.01  # 40,000 draws: sd of a frequency <= 0.0025
    edge = torch.tensor([0.0, 1 - 2 ** -53, 0.5, 0.8])  # the ends of [0, 1) and exact CDF steps
    assert draw(probs[[0, 0, 0, 0]], edge).tolist() == [0, 3, 2, 3]


@torch.no_grad()
def test_expanded_state_shares_the_prompt_keys_and_decodes_as_copies_do():
    """expand(n) keeps the prompt's K/V once (attention bytes unchanged) while select copies them;
    decoding from either gives the same logits; reserved room writes in place and leaves a snapshot
    taken before as it was."""
    model = evo2kit.load_model(SMALL, device="cpu").model
    ids = torch.tensor(prompts([60, 60])).long()
    state = model.new_state()
    model(ids, state)
    before = state.nbytes_by_kind()
    shared, copied = state.expand(3), state.select([0, 0, 0, 1, 1, 1])
    assert shared.nbytes_by_kind()["attention"] == before["attention"]
    assert copied.nbytes_by_kind()["attention"] == 3 * before["attention"]
    assert shared.nbytes_by_kind()["hyena"] == copied.nbytes_by_kind()["hyena"] == 3 * before["hyena"]
    shared.reserve(8)
    attn = next(b for b in shared.blocks if isinstance(b, KVCache))
    room = attn._room[0].data_ptr()
    steps = torch.tensor(prompts([6] * 6, seed=1)).long()
    snapshot = None
    for t in range(6):
        a, b = model(steps[:, t:t + 1], shared), model(steps[:, t:t + 1], copied)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        if t == 2:
            snapshot = shared.snapshot()
            kept = {i: blk.k.clone() for i, blk in enumerate(snapshot.blocks) if isinstance(blk, KVCache)}
    assert attn.k.data_ptr() == room and attn.own_length == 6 and attn.length == 66  # written in place
    assert all(torch.equal(snapshot.blocks[i].k, k) for i, k in kept.items())
    assert shared.offset == copied.offset == 66
    # a snapshot continued on its own copies instead of writing into the room it came from
    after = attn._room[0].clone()
    model(steps[:, :1], snapshot)
    assert torch.equal(attn._room[0], after)
    assert snapshot.blocks[3].own_length == 4 and snapshot.blocks[3].k.data_ptr() != room


def test_kv_cache_select_after_expand_materialises_the_prefix():
    g = torch.Generator().manual_seed(0)
    k, v = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 4, generator=g)
    cache = KVCache(k, v).expand(2)
    cache.append(torch.randn(4, 3, 1, 4, generator=g), torch.randn(4, 3, 1, 4, generator=g))
    picked = cache.select(torch.tensor([3, 0]))
    assert picked.prefix_k is None and picked.k.shape == (2, 3, 6, 4)
    assert torch.equal(picked.k[0, :, :5], k[1]) and torch.equal(picked.k[1, :, :5], k[0])
    assert torch.equal(picked.k[:, :, 5], cache.k[[3, 0], :, 0])
