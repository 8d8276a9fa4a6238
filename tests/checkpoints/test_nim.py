"""The NIM backend (evo2kit.checkpoints.nim, nim_model) against a stand-in service on 127.0.0.1 that serves
evo2kit-tiny's numbers (tests/nim_standin.py): scores equal evo2kit-tiny's own, bit for bit, in both layer
dialects and through every answer form; the cache makes a rerun free; each failure a user can act on is one
sentence. One live test runs against NVIDIA's hosted service when NVIDIA_API_KEY is set."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from nim_standin import StandIn

import evo2kit
from evo2kit.api import load_nim
from evo2kit.checkpoints.nim import HOSTED_URLS, NimClient, endpoint_url, nim2_name
from evo2kit.checkpoints.self_test import self_test
from evo2kit.cli import EX_TEMPFAIL, EX_USAGE, BusyError, DataError, UsageError, run_main


@pytest.fixture(scope="module")
def tiny():
    return evo2kit.load_model()


@pytest.fixture(scope="module")
def seqs() -> list[str]:
    g = np.random.default_rng(0)
    return ["".join(g.choice(list("ACGT"), n)) for n in (300, 517, 64, 1000)]


def served(standin: StandIn, tmp_path, **options):
    """evo2kit-tiny as the stand-in serves it, through load_model(backend='nim'), retrying without waiting."""
    options = {"cache_dir": tmp_path / "nim", "backoff_s": 0.01, "poll_s": 0.01, "dialect": standin.dialect} | options
    return load_nim("evo2kit-tiny", url=standin.url, **options)


def test_load_model_dispatches_and_names_the_served_model(tiny, tmp_path):
    with StandIn(model=tiny) as s:
        model = evo2kit.load_model("evo2kit-tiny", backend="nim", url=s.url)
        assert type(model).__name__ == "NimModel" and model.name == "evo2kit-tiny"
        assert model.model.num_params() == tiny.model.num_params()
        assert model.layer_names == tiny.layer_names
        assert s.counts == {}  # loading costs no call
    with pytest.raises(ValueError, match="no hosted NIM endpoint is known for 'evo2kit-tiny'"):
        evo2kit.load_model("evo2kit-tiny", backend="nim")
    assert endpoint_url("http://gpu-box:8000") == "http://gpu-box:8000/biology/arc/evo2"
    assert endpoint_url(HOSTED_URLS["evo2_40b"] + "/forward") == HOSTED_URLS["evo2_40b"]
    assert nim2_name("unembed") == "output_layer" and nim2_name("blocks.20") == "decoder.layers.20"


@pytest.mark.parametrize("dialect", ["vortex", "nim2"])
def test_scores_equal_tiny_exactly_and_the_dialect_switches_once(tiny, seqs, tmp_path, dialect):
    """The client starts in the other dialect: one 422 'has no attribute', then it keeps the right one."""
    with StandIn(dialect=dialect, model=tiny) as s:
        other = "nim2" if dialect == "vortex" else "vortex"
        model = served(s, tmp_path, dialect=other)
        got = model.score_sequences(seqs + seqs[:1])
        assert model.client.dialect == dialect
        assert got == tiny.score_sequences(seqs + seqs[:1])  # exact, not close
        assert s.counts["forward"] == len(seqs) + 1  # each distinct sequence once, plus the one refused
        assert model.score_sequences(seqs[:2], reduce_method="sum") == tiny.score_sequences(seqs[:2],
                                                                                          reduce_method="sum")
        rc = model.score_sequences(seqs[:2], average_reverse_complement=True)
        assert rc == tiny.score_sequences(seqs[:2], average_reverse_complement=True)


@pytest.mark.parametrize("form", ["zip", "npz-zip", "redirect", "accepted", "busy", "500", "429"])
def test_every_answer_form_gives_the_same_scores(tiny, seqs, tmp_path, form):
    with StandIn(model=tiny, retry_after="1") as s:
        model = served(s, tmp_path, dialect="vortex", concurrency=1)
        s.script = [form]
        t0 = time.monotonic()
        assert model.score_sequences(seqs[:1]) == tiny.score_sequences(seqs[:1])
        if form == "429":
            assert time.monotonic() - t0 >= 1.0  # Retry-After honoured over the 0.01-s backoff
        retried = form in ("busy", "500", "429")
        assert s.counts["forward"] == 1 + retried
        assert s.counts["status"] == (2 if form == "accepted" else 0)
        assert s.counts["presigned"] == (form == "redirect") and s.presigned_with_key == 0


def test_a_rerun_costs_no_call_and_says_so_before_the_first(tiny, seqs, tmp_path, capsys):
    with StandIn(model=tiny) as s:
        first = served(s, tmp_path, dialect="vortex").score_sequences(seqs)
        out = capsys.readouterr().out
        assert f"{len(seqs)} call(s), 0 answer(s) from the cache" in out and "MiB to download" in out
        calls = sum(s.counts.values())
        again = served(s, tmp_path, dialect="vortex")  # a new client, the same cache folder
        assert again.score_sequences(seqs) == first
        ids, _ = tiny.tokenizer.encode_batch(seqs[:2])
        again(ids, return_embeddings=True, layer_names=["blocks.3.mlp.l3"])
        assert "forward of 2 sequence(s): 2 call(s)" in capsys.readouterr().out
        calls_after_forward = sum(s.counts.values())
        again(ids, return_embeddings=True, layer_names=["blocks.3.mlp.l3"])
        assert sum(s.counts.values()) == calls_after_forward == calls + 2
        assert capsys.readouterr().out == ""  # nothing to announce: no call


def test_forward_gives_tiny_logits_and_layers_padding_nan_and_refuses_special_ids(tiny, seqs, tmp_path):
    with StandIn(dialect="nim2", model=tiny) as s:
        model = served(s, tmp_path)
        ids, lengths = tiny.tokenizer.encode_batch(seqs[:3])
        layers = ["blocks.5.mlp.l3", "blocks.2", "norm", "embedding_layer"]
        (logits,), emb = model(ids, return_embeddings=True, layer_names=layers)
        for b, n in enumerate(lengths.tolist()):
            want, want_emb = tiny(ids[b:b + 1, :n], return_embeddings=True, layer_names=layers)
            assert torch.equal(logits[b, :n], want[0][0].float())
            for layer in layers:
                assert torch.equal(emb[layer][b, :n], want_emb[layer][0].float())
            assert torch.isnan(logits[b, n:]).all() and torch.isnan(emb[layers[0]][b, n:]).all()
        packed = torch.tensor([[*tiny.tokenizer.tokenize(seqs[0]), tiny.tokenizer.eod_id, 65, 67]])
        with pytest.raises(ValueError, match="token id 0 at position 300: the NIM service takes DNA letters only"):
            model(packed)


def test_generate_through_the_service(tiny, tmp_path):
    with StandIn(model=tiny) as s:
        model = served(s, tmp_path)
        out = model.generate(["ACGTTGCA" * 20], n_tokens=30, temperature=1.0, top_k=4, seed=3)
        assert len(out.sequences[0]) == 30 and set(out.sequences[0]) <= set("ACGT")
        assert out.logprobs_mean[0] < 0
        assert model.generate(["ACGTTGCA" * 20], n_tokens=30, temperature=1.0, top_k=4, seed=3) == out
        assert s.counts["generate"] == 1  # a seeded answer is kept


@pytest.mark.slow  # ~40 s: 4 x 6-8 kb of float64 logits through HTTP, and tiny's own self-test
def test_self_test_through_the_service_matches_tiny_recorded_values(tiny, tmp_path):
    """Evo 2's self-test (4 forwards of 6-8 kb) through the stand-in: tiny's own recorded reference."""
    with StandIn(model=tiny) as s:
        result = self_test(served(s, tmp_path))
    assert result.matches is True, result.verdict
    assert result.losses == pytest.approx(self_test(tiny).losses, abs=0)


def test_a_truncated_array_stops_the_run(tiny, seqs, tmp_path):
    with StandIn(model=tiny) as s:
        model = served(s, tmp_path)
        s.script = ["truncate"]
        with pytest.raises(DataError, match=r"for a sequence of 300 bases \(expected 300 positions\): refusing to "
                                            "misalign"):
            model.score_sequences(seqs[:1])
        assert not list((tmp_path / "nim").glob("*.npy"))  # nothing kept


def test_a_changed_interface_is_one_sentence(tiny, seqs, tmp_path):
    with StandIn(model=tiny) as s:
        model = served(s, tmp_path)
        s.script = ["nodata"]
        with pytest.raises(DataError, match=r"has no base64 'data' \(keys \['elapsed_ms', 'output'\]\): its "
                                            "interface has changed"):
            model.score_sequences(seqs[:1])
        with pytest.raises(DataError, match="knows neither the vortex nor the NIM 2.x name"):
            model.client.forward(seqs[0], ["blocks.40.mlp.l3"])  # tiny has 12 blocks: refused in both


def test_key_missing_refused_and_rate_exhausted_are_one_line(tiny, seqs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    with pytest.raises(UsageError, match="needs an API key: set NVIDIA_API_KEY"):
        evo2kit.load_model("evo2_40b", backend="nim")  # the hosted endpoint, no call made
    with StandIn(model=tiny, api_key="right", retry_after="0") as s:
        wrong = served(s, tmp_path, api_key="wrong")
        assert run_main("prog", lambda: wrong.score_sequences(seqs[:1]), debug=False) == EX_USAGE
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "refused the API key (HTTP 401): check NVIDIA_API_KEY" in err
        right = served(s, tmp_path, api_key="right", max_retries=2)
        s.script = ["429"] * 3
        with pytest.raises(BusyError, match="still limits the rate after 2 retries"):
            right.score_sequences(seqs[:1])
        s.script = ["429"] * 3
        assert run_main("prog", lambda: right.score_sequences(seqs[:1]), debug=False) == EX_TEMPFAIL
        assert right.score_sequences(seqs[:1]) == tiny.score_sequences(seqs[:1])


def test_an_over_long_sequence_is_refused_before_any_call(tiny, seqs, tmp_path):
    with StandIn(model=tiny) as s:
        model = served(s, tmp_path, max_length=500)
        with pytest.raises(UsageError, match="a sequence of 1,000 bases is longer than the 500 the NIM service"):
            model.score_sequences(seqs[3:])
        assert s.counts == {}


def test_requests_are_spaced_by_the_rate_limit(tiny, seqs, tmp_path):
    with StandIn(model=tiny) as s:
        model = served(s, tmp_path, requests_per_minute=600, concurrency=2)  # one every 0.1 s
        t0 = time.monotonic()
        model.score_sequences(seqs)
        assert time.monotonic() - t0 >= 0.1 * (len(seqs) - 1)


@pytest.mark.skipif(not os.environ.get("NVIDIA_API_KEY"), reason="live: needs NVIDIA_API_KEY (NVIDIA's hosted Evo 2)")
def test_live_hosted_service_scores_two_short_sequences(tmp_path):
    """The real hosted service: two short sequences scored, the logits' shape checked."""
    model = evo2kit.load_model("evo2_40b", backend="nim", cache_dir=tmp_path)
    a, b = "ATGGATTTATCTGCTCTTCGCGTTGAAGAAGTACAAAATG" * 3, "GGCCTTAAGGCCTTAAGGTT" * 6
    scores = model.score_sequences([a, b])
    assert all(-3 < x < 0 for x in scores)
    logits = NimClient(HOSTED_URLS["evo2_40b"], os.environ["NVIDIA_API_KEY"],
                       cache_dir=tmp_path).forward(a, ["unembed"])["unembed"]
    assert logits.shape == (len(a), 512)
