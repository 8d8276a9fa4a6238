"""python -m evo2kit.training against bad input (issue 30): every bad option is one line before
anything is loaded, ``--init`` weights are checked (shape, finite values), a rerun of an ``--out``
folder with other settings is refused unless asked for and recorded, and ``--val-bp`` must leave
part of chr20 for training. Exit codes as evo2kit.cli documents them."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evo2kit.checkpoints.official import save_official_checkpoint, save_pretrained
from evo2kit.data import genome_windows
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2
from evo2kit.training import train

ROOT = Path(__file__).resolve().parents[2]
PROG = "python -m evo2kit.training: error: "
SMALL = ["--steps", "2", "--batch-size", "2", "--seq-len", "64", "--val-bp", "5000", "--val-windows", "2",
         "--eval-every", "1", "--warmup", "1"]


def run(argv, capsys) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of ``train.main(argv)``."""
    try:
        status = train.main(argv) or 0
    except SystemExit as e:
        status = e.code
    return status, capsys.readouterr().err.strip().splitlines()


BAD_OPTIONS = [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--eval-every", "0"], "--eval-every must be >= 1, got 0"),
    (["--lr", "-1"], "--lr must be a number > 0, got -1.0"),
    (["--lr", "nan"], "--lr must be a number > 0, got nan"),
    (["--exon-fraction", "1.5"], "--exon-fraction must lie in [0, 1], got 1.5"),
    (["--seq-len", "2048", "--val-bp", "100"], "--val-bp (100) must exceed --seq-len (2048): validation windows come "
                                               "from it"),
    (["--device", "tpu"], "--device 'tpu' is not a device: use cpu, cuda or cuda:N"),
] + ([] if torch.cuda.is_available() else
     [(["--device", "cuda"], "--device cuda: this machine has no CUDA device (use --device cpu, or leave it out)")])


@pytest.mark.parametrize("argv, message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_options_are_one_line_before_anything_is_loaded(argv, message, tmp_path, capsys):
    status, err = run([*argv, "--out", str(tmp_path / "run")], capsys)
    assert status == 64 and err[-1] == PROG + message, err
    assert not (tmp_path / "run").exists()


def tiny_config() -> Evo2Config:
    return train.TINY_CONFIG


def test_config_and_init_problems_are_named(tmp_path, capsys):
    out = ["--out", str(tmp_path / "run"), *SMALL]
    status, err = run([*out, "--config", str(tmp_path / "none.json")], capsys)
    assert (status, err) == (66, [f"{PROG}--config {tmp_path / 'none.json'}: no such file"])

    other = StripedHyena2(Evo2Config.from_dict(train.TINY_CONFIG.to_dict() | {"hidden_size": 32})).init_weights(0)
    small = save_pretrained(other, tmp_path / "other", "other")
    status, err = run([*out, "--init", str(small)], capsys)
    assert status == 64 and len(err) == 1, err
    assert re.fullmatch(rf"{re.escape(PROG)}--init {re.escape(str(small))} does not fit the training config "
                        r"\(evo2kit-tiny\): \d+ tensor\(s\) missing or of another shape, e.g. embedding_layer.weight; "
                        "pass the --config it was trained with", err[0]), err

    broken = StripedHyena2(train.TINY_CONFIG).init_weights(0)
    with torch.no_grad():
        broken.blocks[2].mlp.l1.weight[0, 0] = math.nan
    nan = save_pretrained(broken, tmp_path / "nan", "evo2kit-tiny")
    status, err = run([*out, "--init", str(nan)], capsys)
    assert status == 65 and err == [f"{PROG}--init {nan}: 1 tensor(s) hold NaN or infinite values "
                                    "(blocks.2.mlp.l1.weight): the weights are damaged; copy or download them "
                                    "again"], err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

    status, err = run([*out, "--init", "no-such-model"], capsys)
    assert status == 66 and err[0].startswith(f"{PROG}--init no-such-model: no such file, nor a model name")


def test_init_reads_both_checkpoint_layouts(tmp_path):
    model = StripedHyena2(train.TINY_CONFIG).init_weights(3)
    want = model.state_dict()
    own = tmp_path / "own.pt"
    torch.save(want, own)
    official = save_official_checkpoint(model, tmp_path / "official.pt", dtype=torch.float32)[0]
    for path in (own, official, save_pretrained(model, tmp_path, "evo2kit-tiny")):
        got = train.initial_weights(str(path), train.TINY_CONFIG)
        assert all(torch.equal(got[k], want[k]) for k in want), path


def test_a_published_init_offline_is_one_line_from_python_m(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
                        "EVO2KIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "evo2kit.training", "--init", "evo2_7b", "--out",
                           str(tmp_path / "run"), *SMALL], capture_output=True, text=True, env=env, timeout=600)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 66 and len(err) == 1, proc.stderr
    assert err[0].startswith(f"{PROG}evo2_7b needs evo2_7b.pt from the Hugging Face Hub repository "
                             "arcinstitute/evo2_7b, which is not reachable"), err


def test_val_bp_must_leave_part_of_chr20_for_training(real_dir, tmp_path, capsys):
    status, err = run(["--out", str(tmp_path / "run"), "--val-bp", "70000000", "--steps", "1"], capsys)
    assert status == 64 and err == [f"{PROG}val_bp (--val-bp) must hold out fewer bases than hg19_chr20 has "
                                    "(63,025,520 bp) and at least 1, got 70,000,000"], err


@pytest.fixture
def small_genome(real_dir, monkeypatch):
    """Training on the BRCA1 region instead of chr20 and chrX: the same code on real DNA, read in a
    moment rather than in the half minute the two chromosomes take (the checks under test come
    before any DNA is read or do not depend on which DNA it is)."""
    real = genome_windows.load_genome
    monkeypatch.setattr(train, "load_genome", lambda val_bp: real(("brca1_hg19_region",), val_bp))


def test_rerunning_a_run_with_other_settings_is_refused_unless_allowed(small_genome, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["--out", str(out), *SMALL], capsys)[0] == 0
    recorded = (out / "args.json").read_text()
    checkpoint = (out / "checkpoint.pt").read_bytes()
    status, err = run(["--out", str(out), *SMALL, "--seed", "1", "--lr", "0.001"], capsys)
    assert status == 64 and err == [f"{PROG}--out {out} holds a run started with other settings (--lr 0.002 there, "
                                    "0.001 here; --seed 0 there, 1 here): rerun with its settings to resume it, use "
                                    "another --out to start anew, or pass --allow-changes to resume with these "
                                    "(recorded in args.json)"], err
    assert (out / "args.json").read_text() == recorded and (out / "checkpoint.pt").read_bytes() == checkpoint
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps(train.TINY_CONFIG.to_dict() | {"hidden_size": 32}))
    status, err = run(["--out", str(out), *SMALL, "--config", str(wider), "--allow-changes"], capsys)
    assert status == 64 and err[0].startswith(f"{PROG}--out {out} holds a run of another model config "
                                              "(evo2kit-tiny, hidden_size 96)"), err

    more = [*SMALL[:1], "3", *SMALL[2:]]  # --steps 3
    assert run(["--out", str(out), *more, "--seed", "1", "--allow-changes"], capsys)[0] == 0
    args = json.loads((out / "args.json").read_text())
    assert args["seed"] == 1 and args["steps"] == 3
    assert args["resumed_with_changes"] == [{"step": 2, "changed": {"steps": [2, 3], "seed": [0, 1]}}]
    assert run(["--out", str(out), *more, "--seed", "1", "--stop-at", "3", "--checkpoint-minutes", "9"],
               capsys)[0] == 0, "options that only say how long a session runs may differ"
    assert json.loads((out / "args.json").read_text())["resumed_with_changes"] == args["resumed_with_changes"]


def test_weights_that_make_the_loss_nan_stop_the_run(small_genome, tmp_path, capsys):
    huge = StripedHyena2(train.TINY_CONFIG).init_weights(0)
    with torch.no_grad():
        huge.blocks[1].mlp.l1.weight[0, 0] = 3e38  # finite, so --init takes it; the loss is not
    init = save_pretrained(huge, tmp_path / "huge", "evo2kit-tiny")
    status, err = run(["--out", str(tmp_path / "run"), *SMALL, "--init", str(init)], capsys)
    assert status == 64 and err[-1].startswith(f"{PROG}step 1: the loss is nan, not a finite number: training "
                                               "diverged"), err
    assert not (tmp_path / "run" / "evo2kit-tiny.safetensors").exists(), "no NaN model is saved"
