"""evo2kit.genome_windows: uniform and exon-rich training windows, repeat weights; train.py's use of them."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from evo2kit import Evo2Config
from evo2kit.data.genome_windows import (
    Annotation,
    GenicSampler,
    MixedSampler,
    WindowSampler,
    load_annotation,
    load_genome,
    n_free_starts,
)
from evo2kit.training import train


def synthetic(length: int = 20_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, length)].copy()
    seq[5_000:5_100] = ord("N")
    starts, ends = np.array([2_000, 9_000, 15_000]), np.array([2_150, 9_120, 15_200])
    repeats = np.zeros(length, bool)
    repeats[8_000:8_900] = repeats[14_000:15_100] = True
    return {"s": seq}, Annotation({"s": (starts, ends)}, {"s": repeats})


def test_n_free_starts_marks_exactly_the_windows_without_n_inside_the_sequence():
    seq = np.frombuffer(b"ACGTNACGTA", np.uint8)
    ok = n_free_starts(seq, 3)
    assert ok.tolist() == [True, True, False, False, False, True, True, True, False, False]


def test_exon_windows_are_centred_within_the_jitter_and_weights_follow_the_repeats():
    seqs, ann = synthetic()
    length, jitter = 513, 100
    sampler = GenicSampler(seqs, length, ann, exon_fraction=1.0, jitter=jitter, repeat_weight=0.1)
    centres = (ann.cds["s"][0] + ann.cds["s"][1]) // 2
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        k, start, reverse = sampler.draw(rng)
        offset = start + length // 2 - centres
        assert np.abs(offset).min() <= jitter
        seen.add(int(np.argmin(np.abs(offset))))
        assert n_free_starts(seqs["s"], length)[start]
    assert seen == {0, 1, 2}
    ids, weights = sampler.batch(np.random.default_rng(2), 64)
    assert ids.shape == (64, length) and weights.shape == (64, length - 1) and weights.dtype == torch.float32
    assert set(np.unique(weights.numpy())) <= {np.float32(0.1), np.float32(1.0)}
    # each row's weights are the repeat mask of its window (reversed on the minus strand), from base 1 on
    rng = np.random.default_rng(2)
    for row in range(64):
        k, start, reverse = sampler.draw(rng)
        mask = ann.repeats["s"][start:start + length]
        want = np.where(mask[::-1] if reverse else mask, 0.1, 1.0)[1:]
        np.testing.assert_array_equal(weights[row].numpy(), want.astype(np.float32))
        window = seqs["s"][start:start + length]
        if reverse:
            window = np.frombuffer(bytes(window[::-1]).translate(bytes.maketrans(b"ACGT", b"TGCA")), np.uint8)
        np.testing.assert_array_equal(ids[row].numpy(), window)


def test_the_mix_and_the_uniform_sampler_agree_where_they_should():
    seqs, ann = synthetic()
    uniform = WindowSampler(seqs, 257)
    none = GenicSampler(seqs, 257, ann, exon_fraction=0.0, repeat_weight=1.0)
    ids, weights = none.batch(np.random.default_rng(3), 8)
    assert torch.equal(ids, uniform.batch(np.random.default_rng(3), 8))  # the same draws as evo2kit-tiny's recipe
    assert bool((weights == 1).all())
    half = GenicSampler(seqs, 257, ann, exon_fraction=0.5, jitter=0)
    assert half.coding_share(np.random.default_rng(4), 400) > 3 * none.coding_share(np.random.default_rng(4), 400)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        GenicSampler(seqs, 257, ann, exon_fraction=1.5)
    with pytest.raises(ValueError, match="no coding exon"):
        GenicSampler(seqs, 257, Annotation({"s": (np.array([], int), np.array([], int))}, ann.repeats))


def test_mixed_sampler_draws_its_share_from_the_other_genomes_with_full_weight():
    seqs, ann = synthetic()
    genic = GenicSampler(seqs, 257, ann, exon_fraction=0.5, repeat_weight=0.1)
    other_seq = np.frombuffer(b"G" * 5_000, np.uint8)  # told apart from the human-like windows by its letters
    mixed = MixedSampler(genic, WindowSampler({"b": other_seq}, 257), fraction=0.25)
    ids, weights = mixed.batch(np.random.default_rng(5), 400)
    assert ids.shape == (400, 257) and weights.shape == (400, 256)
    from_other = (ids == ord("G")).all(1) | (ids == ord("C")).all(1)
    assert 0.18 < from_other.float().mean() < 0.32
    assert bool((weights[from_other] == 1).all()) and bool((weights[~from_other] == 0.1).any())
    none = MixedSampler(genic, WindowSampler({"b": other_seq}, 257), fraction=0.0)
    assert not (none.batch(np.random.default_rng(6), 50)[0] == ord("G")).all(1).any()
    with pytest.raises(ValueError, match="one length"):
        MixedSampler(genic, WindowSampler({"b": other_seq}, 129), fraction=0.5)


@pytest.mark.slow
def test_annotation_of_the_training_chromosomes_is_read_from_the_registered_tables():
    seqs, _ = load_genome()
    ann = load_annotation(seqs)
    assert set(ann.cds) == set(ann.repeats) == set(seqs)
    for name, seq in seqs.items():
        starts, ends = ann.cds[name]
        assert len(starts) > 1000 and (ends <= len(seq)).all() and (starts < ends).all()
        assert ann.repeats[name].shape == seq.shape
    # the data README: repeats cover 48% of chr20 and 55% of the chrX part
    assert 0.46 < ann.repeats["hg19_chr20"].mean() < 0.50
    assert 0.53 < ann.repeats["hg19_chrX_part"].mean() < 0.57


@pytest.mark.slow
def test_continued_exon_rich_training_resumes_and_checks_brca1(tmp_path):
    args = ["--out", str(tmp_path), "--seq-len", "64", "--batch-size", "2", "--init", "evo2kit-tiny",
            "--exon-fraction", "0.5", "--repeat-weight", "0.1", "--eval-every", "2", "--val-windows", "2",
            "--brca1-every", "2", "--brca1-window", "64", "--brca1-variants", "30", "--warmup", "1"]
    assert train.main(args + ["--steps", "3", "--stop-at", "2"]) == 0  # a session that ends at step 2
    first = json.loads((tmp_path / "summary.json").read_text())
    assert first["steps"] == 2 and first["tokens"] == 2 * 2 * 64
    with open(tmp_path / "log.csv", "a") as f:  # a step logged after the last checkpoint, then cut short
        f.write("3" + ",0" * 13 + "\n")
    assert train.main(args + ["--steps", "3"]) == 0  # resumes from the checkpoint at step 2
    log = pd.read_csv(tmp_path / "log.csv")
    assert log["step"].tolist() == [1, 2, 3] and log["tokens"].iloc[-1] == 3 * 2 * 64
    checks = pd.read_csv(tmp_path / "brca1.csv")
    assert checks["step"].tolist() == [0, 2] and ((0 <= checks["auroc"]) & (checks["auroc"] <= 1)).all()
    assert {"delta_nonsense", "delta_synonymous", "delta_intronic", "gap", "gap_low", "gap_high"} <= set(checks.columns)
    assert (checks["gap_low"] <= checks["gap"]).all() and (checks["gap"] <= checks["gap_high"]).all()
    with pytest.raises(ValueError, match="does not fit the training config"):
        train.initial_weights("evo2kit-tiny", Evo2Config.from_dict({**train.TINY_CONFIG.to_dict(), "hidden_size": 64}))
