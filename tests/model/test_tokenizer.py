"""Unit tests for evo2kit.tokenizer (no data, no network)."""

import numpy as np
import pytest
import torch

from evo2kit.model.tokenizer import CharLevelTokenizer, reverse_complement, validate_sequence


@pytest.fixture
def tok():
    return CharLevelTokenizer()


def test_special_ids_and_vocab(tok):
    assert tok.vocab_size == 512
    assert tok.eod_id == 0 and tok.eos_id == 0
    assert tok.pad_id == 1


def test_ids_are_byte_values(tok):
    assert tok.tokenize("ACGTN") == [65, 67, 71, 84, 78]
    assert tok.tokenize("") == []
    assert all(isinstance(i, int) for i in tok.tokenize("ACGT"))


def test_soft_masked_input_is_uppercased_by_default(tok):
    assert tok.tokenize("acgtn") == tok.tokenize("ACGTN")
    keep = CharLevelTokenizer(uppercase=False)
    assert keep.tokenize("acgt") == [97, 99, 103, 116]


def test_all_iupac_letters_accepted(tok):
    letters = "ACGTNRYSWKMBDHV"
    assert tok.tokenize(letters) == [ord(c) for c in letters]
    assert tok.tokenize(letters.lower()) == [ord(c) for c in letters]


@pytest.mark.parametrize("seq,char,pos", [
    ("ACGTACGTACGTX", "X", 12),
    ("U", "U", 0),
    ("ACG T", " ", 3),
    ("ACGT\n", "\n", 4),
    ("AC-GT", "-", 2),
    ("ACGé", "é", 3),
])
def test_invalid_character_named_with_position(tok, seq, char, pos):
    with pytest.raises(ValueError) as e:
        tok.tokenize(seq)
    msg = str(e.value)
    assert f"invalid character {char!r} at position {pos}" in msg
    assert "IUPAC" in msg


def test_invalid_character_message_names_sequence(tok):
    with pytest.raises(ValueError, match=r"invalid character 'X' at position 2 in sequence 'chr1'"):
        tok.tokenize("ACX", name="chr1")
    with pytest.raises(ValueError, match=r"at position 1 in sequence '#1'"):
        tok.encode_batch(["ACGT", "AZ"])
    with pytest.raises(ValueError, match=r"in sequence 'b'"):
        tok.encode_batch(["ACGT", "AZ"], names=["a", "b"])


def test_non_str_rejected(tok):
    with pytest.raises(TypeError):
        tok.tokenize(b"ACGT")
    with pytest.raises(TypeError):
        tok.encode_batch("ACGT")


def test_detokenize_roundtrip_and_drops_specials(tok):
    ids = tok.tokenize("ACGTNRY")
    assert tok.detokenize(ids) == "ACGTNRY"
    assert tok.detokenize([tok.eod_id] + ids + [tok.pad_id, tok.pad_id]) == "ACGTNRY"
    assert tok.detokenize(torch.tensor(ids)) == "ACGTNRY"
    assert tok.detokenize(np.array(ids)) == "ACGTNRY"
    with pytest.raises(ValueError, match="512"):
        tok.detokenize([65, 512])


def test_encode_batch_pads_right(tok):
    ids, lengths = tok.encode_batch(["ACGT", "AC", ""])
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (3, 4)
    assert lengths.tolist() == [4, 2, 0]
    assert ids[0].tolist() == [65, 67, 71, 84]
    assert ids[1].tolist() == [65, 67, 1, 1]
    assert ids[2].tolist() == [1, 1, 1, 1]
    for row, n in zip(ids, lengths):
        assert tok.detokenize(row) == tok.detokenize(row[:n])


def test_encode_batch_pad_to(tok):
    ids, lengths = tok.encode_batch(["acg", "A"], pad_to=6)
    assert ids.shape == (2, 6)
    assert ids[0].tolist() == [65, 67, 71, 1, 1, 1]
    with pytest.raises(ValueError, match="pad_to=2"):
        tok.encode_batch(["ACG"], pad_to=2)
    with pytest.raises(ValueError, match="names"):
        tok.encode_batch(["ACG"], names=["a", "b"])
    empty, n = tok.encode_batch([], pad_to=5)
    assert empty.shape == (0, 5) and n.shape == (0,)


def test_attention_mask(tok):
    ids, lengths = tok.encode_batch(["ACGT", "AC", ""], pad_to=5)
    mask = tok.attention_mask(lengths, ids.shape[1])
    assert mask.dtype == torch.bool and mask.shape == (3, 5)
    assert mask.tolist() == [
        [True, True, True, True, False],
        [True, True, False, False, False],
        [False] * 5,
    ]
    assert torch.equal(mask, ids != tok.pad_id)
    assert CharLevelTokenizer.attention_mask([2], 3).tolist() == [[True, True, False]]


def test_reverse_complement():
    assert reverse_complement("ACGT") == "ACGT"
    assert reverse_complement("AACG") == "CGTT"
    assert reverse_complement("acgN") == "Ncgt"
    assert reverse_complement("RYSWKMBDHV") == "BDHVKMWSRY"
    assert reverse_complement("") == ""
    s = "ACGTNRYSWKMBDHVacgtnryswkmbdhv"
    assert reverse_complement(reverse_complement(s)) == s
    with pytest.raises(ValueError, match=r"invalid character 'U' at position 2"):
        reverse_complement("ACUG")


def test_validate_sequence():
    validate_sequence("ACGTN")
    with pytest.raises(ValueError, match=r"'\*' at position 0 in sequence 'x'"):
        validate_sequence("*", name="x")


def test_matches_vortex_tokenizer(tok):
    vortex_tok = pytest.importorskip("vortex.model.tokenizer")
    ref = vortex_tok.CharLevelTokenizer(512)
    seq = "ACGTNACGTTTGCA"
    assert [int(i) for i in ref.tokenize(seq)] == tok.tokenize(seq)
    assert (ref.eod_id, ref.pad_id, ref.vocab_size) == (tok.eod_id, tok.pad_id, tok.vocab_size)
