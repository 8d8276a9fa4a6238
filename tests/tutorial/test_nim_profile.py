"""The profile nim-evo2_40b: notebooks 01 and 03 through the real runner (papermill) with backend nim, against
the stand-in service on 127.0.0.1 serving evo2kit-tiny's numbers (tests/nim_standin.py; the model name is set
to evo2kit-tiny, as that is what the stand-in serves, and the url through the run setting nim_url). Its
numbers must be those of evo2kit-tiny scored here directly: the service path changes nothing."""

from __future__ import annotations

import json

import pytest
from nim_standin import StandIn

import evo2kit
from evo2kit.analysis.stats import auroc_ci
from evo2kit.analysis.zero_shot import delta_likelihood
from evo2kit.checkpoints.self_test import self_test
from evo2kit.data.brca1 import brca1_windows, load_brca1, stratified_subset
from evo2kit.tutorial import runner
from evo2kit.tutorial.metrics import read_metrics


@pytest.mark.slow  # papermill runs 01 and 03 (~330 calls to the stand-in): a few minutes on 2 cores
def test_nim_profile_runs_notebooks_01_and_03_through_the_runner(tmp_path, monkeypatch):
    tiny = evo2kit.load_model()
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))  # the kernels' NIM answers land here
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)  # a self-hosted URL needs none
    with StandIn(model=tiny) as s:
        status = runner.run("nim-evo2_40b", ["01", "03"], tmp_path / "build",
                            overrides={"model_name": "evo2kit-tiny", "nim_url": s.url}, threads=1)
        calls = dict(s.counts)
    assert status == 0
    out = tmp_path / "build" / "nim-evo2_40b"
    metrics = read_metrics(out / "metrics")
    params = runner.profile_parameters(runner.load_profiles(), "nim-evo2_40b", "03_zero_shot")
    assert calls["forward"] > params["n_variants"] and calls["generate"] == 1

    variants = stratified_subset(load_brca1(), params["n_variants"], seed=0)
    refs, alts, index = brca1_windows(variants, params["window"])
    delta = delta_likelihood(tiny, refs, alts, index, batch_size=1, shared_prefix=False)
    zero_shot = metrics["03_zero_shot"]
    assert zero_shot["auroc"] == auroc_ci((variants["class"] == "LOF").to_numpy(), -delta, n_boot=10)[0]
    assert (zero_shot["n_variants"], zero_shot["n_unique_ref_windows"]) == (len(alts), len(refs))

    loading = metrics["01_loading"]
    assert loading["self_test_loss"] == self_test(tiny).loss  # tiny's own numbers, through HTTP
    assert loading["padding_max_abs_diff"] == 0.0 and "packing_max_abs_diff" not in loading
    assert loading["generated_bases"] == 100
    text = json.dumps(json.loads((out / "03_zero_shot.ipynb").read_text())["cells"])
    assert "call(s)" in text and "MiB to download" in text  # the cost, printed before the first call
