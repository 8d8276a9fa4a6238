"""Bad arguments get one clear error naming what is wrong and what is allowed (issue 14), on a tiny
random model (CPU, well under a second each)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from evo2kit import load_model
from evo2kit.analysis.embeddings import extract
from evo2kit.data import brca1

CFG = dict(model_name="bad-input-test", hidden_size=32, num_layers=4, hcs_layer_idxs=[0], hcm_layer_idxs=[1],
           hcl_layer_idxs=[2], attn_layer_idxs=[3], num_attention_heads=4, inner_mlp_size=64, state_size=8,
           hcs_filter_groups=16, hcm_filter_groups=16, max_seqlen=1024)


@pytest.fixture(scope="module")
def model():
    return load_model(CFG, device="cpu")


def test_one_string_where_a_list_of_sequences_is_expected_is_a_type_error(model):
    with pytest.raises(TypeError, match=re.escape("prompt_seqs must be a list of sequences, not one str "
                                                  "(for one sequence pass [prompt_seqs])")):
        model.generate("ACGT", n_tokens=2)
    with pytest.raises(TypeError, match="seqs must be a list of sequences, not one str"):
        extract(model, "ACGTACGT", ["blocks.0.mlp.l3"])
    with pytest.raises(TypeError, match="seqs must be a list of sequences, not one str"):
        model.score_sequences("ACGTACGT")
    assert len(model.generate(("ACGT", "GGA"), n_tokens=1, seed=0).sequences) == 2  # any sequence of str is fine
    assert extract(model, iter(["ACGTACGT"]), ["blocks.0.mlp.l3"])["blocks.0.mlp.l3"].shape == (1, 32)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_tokens": -3}, "n_tokens must be an int >= 1, got -3"),
    ({"n_tokens": 0}, "n_tokens must be an int >= 1, got 0"),
    ({"n_tokens": 2.5}, "n_tokens must be an int >= 1, got 2.5"),
    ({"temperature": -1}, "temperature must be a finite number >= 0 (0: always the likeliest base), got -1"),
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    ({"top_k": -1}, "top_k must be an int from 0 to 4 (0 or None: all four bases), got -1"),
    ({"top_k": 5}, "top_k must be an int from 0 to 4"),
    ({"top_p": 0}, "top_p must be a number in (0, 1] (1: no nucleus filtering), got 0"),
    ({"top_p": 1.5}, "top_p must be a number in (0, 1]"),
    ({"n_samples": 0}, "n_samples must be an int >= 1, got 0"),
    ({"batch_size": 0}, "batch_size must be an int >= 1 (or None: every sample of one prompt length at once), got 0"),
    ({"seed": -1}, "seed must be an int >= 0 (or None: a fresh one), got -1"),
])
def test_generate_refuses_degenerate_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model.generate(["ACGT"], **{"n_tokens": 2, **kwargs})


def test_generate_edge_values_that_are_allowed(model):
    greedy = model.generate(["ACGTAC"], n_tokens=2, temperature=0, seed=1).sequences
    assert greedy == model.generate(["ACGTAC"], n_tokens=2, temperature=0, seed=2).sequences  # no sampling left
    for top_k in (None, 1):
        out = model.generate(["ACGTAC"], n_tokens=1, top_k=top_k, seed=0)
        assert len(out.sequences[0]) == 1 and np.isfinite(out.logprobs_mean[0])
    with pytest.raises(ValueError, match=re.escape("prompt_seqs[1] is empty: a prompt needs at least one base")):
        model.generate(["ACGT", ""], n_tokens=2)
    fresh = model.generate(["ACG", "T"], n_tokens=5, n_samples=3, top_p=0.6)  # no seed: one is drawn and returned
    assert len(fresh.sequences) == 6 and fresh.n_samples == 3
    again = model.generate(["ACG", "T"], n_tokens=5, n_samples=3, top_p=0.6, seed=fresh.seed)
    assert again.sequences == fresh.sequences


def test_score_sequences_refuses_what_has_no_score(model):
    with pytest.raises(ValueError, match=re.escape("seqs[1] has 1 base(s): a score needs at least 2 (the first base "
                                                   "is not predicted; or pass prepend_bos=True)")):
        model.score_sequences(["ACGT", "A"])
    with pytest.raises(ValueError, match=re.escape("seqs[0] has 0 base(s): a score needs at least 1")):
        model.score_sequences([""], prepend_bos=True)
    with pytest.raises(ValueError, match=re.escape("seqs[0] has 0 base(s)")):
        model.score_sequences([""])
    with pytest.raises(ValueError, match=re.escape("batch_size must be an int >= 1, got 0")):
        model.score_sequences(["ACGT"], batch_size=0)
    assert np.isfinite(model.score_sequences(["A"], prepend_bos=True)[0])  # one predicted base: a real score
    assert np.isfinite(model.score_sequences(["AC"])[0])


def test_extract_and_embed_long_refuse_a_zero_size(model):
    with pytest.raises(ValueError, match=re.escape("batch_size and chunk_size must be ints >= 1, got 0 and 8192")):
        extract(model, ["ACGT"], ["blocks.0.mlp.l3"], batch_size=0)
    with pytest.raises(ValueError, match=re.escape("chunk_size must be an int >= 1, got 0")):
        model.embed_long("ACGTACGT", ["blocks.0.mlp.l3"], chunk_size=0)


def test_stratified_subset_refuses_a_size_below_one():
    df = pd.DataFrame({"class": ["LOF", "FUNC/INT"] * 10, "x": range(20)})
    for n in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match=re.escape(f"n must be None (all rows) or an int >= 1, got {n!r}")):
            brca1.stratified_subset(df, n)
    assert len(brca1.stratified_subset(df, 4)) == 4
    assert len(brca1.stratified_subset(df, None)) == 20


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(junk))} is neither a PyTorch checkpoint \(a zip archive\) "
                                         r"nor a safetensors file \(or it is damaged\)$"):
        load_model(CFG, local_path=junk, device="cpu")


def test_dtype_by_name_and_unsupported_dtypes_refused_up_front():
    import torch

    from evo2kit.api import resolve_dtype

    assert load_model(CFG, device="cpu", dtype="bfloat16").model.embedding_layer.weight.dtype == torch.bfloat16
    assert load_model(CFG, device="cpu", dtype="float32").model.embedding_layer.weight.dtype == torch.float32
    assert resolve_dtype("torch.float16") is torch.float16 and resolve_dtype(torch.bfloat16) is torch.bfloat16
    assert resolve_dtype(None) is None
    for bad in ("float8", "int8", torch.int64, torch.float8_e4m3fn, "fp32"):
        with pytest.raises(ValueError, match=rf"dtype {re.escape(repr(bad))} is not supported; use one of float32, "
                                             "bfloat16, float16"):
            load_model("no-such-model", device="cpu", dtype=bad)  # refused before the name is even looked up


@pytest.mark.parametrize("text, found", [("", "found nothing"), ("# only a comment\n", "found nothing"),
                                         ("- 1\n- 2\n", "found list [1, 2]"), ("a: [1\n", None)])
def test_an_empty_or_malformed_yaml_config_is_named(tmp_path, text, found):
    cfg = tmp_path / "model.yml"
    cfg.write_text(text)
    message = (rf"{re.escape(str(cfg))}: expected an Evo 2 config \(a mapping with keys such as hidden_size, "
               rf"num_layers\), {re.escape(found)}" if found else rf"{re.escape(str(cfg))}: not valid YAML")
    with pytest.raises(ValueError, match=message):
        load_model(cfg, device="cpu")


def test_an_fp8_mode_that_does_not_exist_is_refused_for_every_model():
    for name in (CFG, "evo2kit-tiny"):
        with pytest.raises(ValueError, match=re.escape("fp8 must be one of ('auto', 'emulate', 'off'), not 'on'")):
            load_model(name, device="cpu", fp8="on")
