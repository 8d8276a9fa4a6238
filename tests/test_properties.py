"""Property-based tests (hypothesis): the tokenizer, and the pooling weights of evo2kit.analysis.embeddings.

Small ``max_examples`` and no deadline: fast on a busy CPU, and still many shapes beyond the
hand-written cases.
"""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evo2kit.analysis.embeddings import pool_weights
from evo2kit.model.tokenizer import IUPAC_DNA, CharLevelTokenizer, reverse_complement

FAST = settings(max_examples=60, deadline=None)
dna = st.text(alphabet=IUPAC_DNA + IUPAC_DNA.lower(), max_size=200)


@FAST
@given(dna)
def test_tokenize_detokenize_round_trip(seq):
    ids = CharLevelTokenizer().tokenize(seq)
    assert len(ids) == len(seq) and all(i >= 65 for i in ids)  # never a special id (0 eod, 1 pad)
    assert CharLevelTokenizer().detokenize(ids) == seq.upper()
    assert CharLevelTokenizer(uppercase=False).detokenize(CharLevelTokenizer(uppercase=False).tokenize(seq)) == seq


@FAST
@given(dna)
def test_reverse_complement_is_an_involution_that_keeps_length_and_case(seq):
    rc = reverse_complement(seq)
    assert reverse_complement(rc) == seq
    assert len(rc) == len(seq) and [c.isupper() for c in rc] == [c.isupper() for c in reversed(seq)]
    pairs = dict(zip("ACGT", "TGCA"))
    assert all(pairs[b] == c for b, c in zip(seq.upper(), reversed(rc.upper())) if b in pairs)


@FAST
@given(dna, st.characters(blacklist_characters=IUPAC_DNA + IUPAC_DNA.lower(), blacklist_categories=("Cs",)),
       dna)
def test_validation_names_the_first_bad_character_and_its_position(prefix, bad, suffix):
    seq = prefix + bad + suffix
    first = next(i for i, c in enumerate(seq) if c not in IUPAC_DNA + IUPAC_DNA.lower())
    message = f"invalid character {seq[first]!r} at position {first} in sequence 'x'"
    with pytest.raises(ValueError, match=re.escape(message)):
        CharLevelTokenizer().tokenize(seq, name="x")


@FAST
@given(st.lists(dna, min_size=1, max_size=6))
def test_encode_batch_pads_on_the_right_with_pad_id_only(seqs):
    tok = CharLevelTokenizer()
    ids, lengths = tok.encode_batch(seqs)
    assert lengths.tolist() == [len(s) for s in seqs] and ids.shape == (len(seqs), max(map(len, seqs)))
    mask = tok.attention_mask(lengths, ids.shape[1])
    assert (ids[~mask] == tok.pad_id).all() and (ids[mask] != tok.pad_id).all()
    assert [tok.detokenize(row) for row in ids] == [s.upper() for s in seqs]


# --------------------------------------------------------------------------- pooling arithmetic

lengths_strategy = st.lists(st.integers(1, 40), min_size=1, max_size=5)


def padded_batch(lengths, d, seed):
    """(B, L, d) float64 activations with garbage (large numbers) at the padded positions."""
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    y = torch.randn(len(lengths), L, d, generator=g, dtype=torch.float64)
    for b, n in enumerate(lengths):
        y[b, n:] = 1e6
    return y


@FAST
@given(lengths_strategy, st.integers(1, 8), st.integers(0, 2**16), st.integers(1, 50))
def test_masked_mean_over_a_padded_batch_equals_each_unpadded_mean(lengths, d, seed, chunk):
    y = padded_batch(lengths, d, seed)
    W = pool_weights("mean", 0, lengths, [[None]] * len(lengths), y.shape[1]).double()
    pooled = torch.bmm(W, y)[:, 0]
    # the chunked forward accumulates W[..., chunk] @ y[chunk]: the same sum
    chunked = sum(torch.bmm(W[:, :, i:i + chunk], y[:, i:i + chunk]) for i in range(0, y.shape[1], chunk))[:, 0]
    for b, n in enumerate(lengths):  # W holds 1/n in float32; padding (1e6) leaking in would be far off
        torch.testing.assert_close(pooled[b], y[b, :n].mean(0), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(chunked[b], y[b, :n].mean(0), rtol=1e-6, atol=1e-6)


@FAST
@given(lengths_strategy, st.integers(0, 50), st.data())
def test_window_weights_are_clipped_to_the_sequence_and_sum_to_one(lengths, k, data):
    slots = [data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True)) for n in lengths]
    L = max(lengths) + data.draw(st.integers(0, 5))  # extra padding beyond the longest
    W = pool_weights("window", k, lengths, slots, L)
    for b, (n, row_slots) in enumerate(zip(lengths, slots)):
        for m, p in enumerate(row_slots):
            lo, hi = max(0, p - k), min(n, p + k + 1)
            expected = torch.zeros(L)
            expected[lo:hi] = 1.0 / (hi - lo)
            torch.testing.assert_close(W[b, m], expected)
            assert W[b, m, n:].sum() == 0 and abs(float(W[b, m].sum()) - 1) < 1e-6
        assert not W[b, len(row_slots):].any(), "unused slots pool nothing"


@FAST
@given(lengths_strategy, st.data())
def test_last_and_position_weights_pick_one_real_token(lengths, data):
    slots = [data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True)) for n in lengths]
    L = max(lengths)
    last = pool_weights("last", 0, lengths, [[None]] * len(lengths), L)
    position = pool_weights("position", 0, lengths, slots, L)
    for b, n in enumerate(lengths):
        assert last[b, 0].nonzero().flatten().tolist() == [n - 1] and last[b, 0, n - 1] == 1
        for m, p in enumerate(slots[b]):
            assert position[b, m].nonzero().flatten().tolist() == [p] and position[b, m, p] == 1
