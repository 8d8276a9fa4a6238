"""evo2kit.tutorial.expected_ranges: how measured runs become the ranges in notebooks/expected_results.yml."""

import argparse
import json

import pytest
import yaml

from evo2kit.tutorial import expected_ranges as er

ARGS = argparse.Namespace(margin=0.5, rel_floor=0.05, auroc_floor=0.1, note="", seeds=0, no_share=True)


def infos(n):
    return [{"seed": i // 2, "threads": 1 + i % 2, "cpu": "test cpu"} for i in range(n)]


def test_ranges_from_runs():
    runs = [{"04_dnn_probes": {"n_variants": 3893, "n_reference_windows": 100 + i,
                               "dnn_auroc_random_layer_mean": 0.6 + 0.01 * i, "pooling_rel_change_mean": 1.0 + 0.1 * i,
                               "recipe_max_abs_diff": 1e-6, "one_pass_s": 3.0 + i, "best_layer": i,
                               "best_layer_dnn_auroc_random": 0.6, "speedup_one_pass": 10.0}} for i in range(4)]
    got = er.ranges(runs, infos(4), "smoke", "evo2kit-tiny", ARGS)["04_dnn_probes"]["smoke"]["evo2kit-tiny"]
    assert set(got) == {"n_variants", "n_reference_windows", "dnn_auroc_random_layer_mean", "pooling_rel_change_mean",
                        "recipe_max_abs_diff"}  # timings, speed-ups and best_layer(_*) are reported, not judged
    assert got["n_variants"]["min"] == got["n_variants"]["max"] == 3893  # a fact: exact
    assert "checked exactly" in got["n_variants"]["provenance"] and "4 runs here: seeds 0, 1 x 1, 2 thread(s)" in got[
        "n_variants"]["provenance"]
    assert got["n_reference_windows"]["min"] < 100 and got["n_reference_windows"]["max"] > 103  # varies: a range
    auroc = got["dnn_auroc_random_layer_mean"]
    assert auroc["min"] == pytest.approx(0.5) and auroc["max"] == pytest.approx(0.73)  # AUROC floor 0.1
    rel = got["pooling_rel_change_mean"]
    assert rel["min"] == pytest.approx(1.0 - 0.15) and rel["max"] == pytest.approx(1.3 + 0.15)  # half the spread
    assert (got["recipe_max_abs_diff"]["min"], got["recipe_max_abs_diff"]["max"]) == (0.0, 1e-4)  # a tolerance


def test_a_metric_missing_from_some_runs_is_an_error():
    runs = [{"01_loading": {"generated_gc": 0.4}}, {"01_loading": {}}]
    with pytest.raises(SystemExit, match="recorded by 1 of 2 runs"):
        er.ranges(runs, infos(2), "smoke", "evo2kit-tiny", ARGS)


def test_write_expected_replaces_one_profile_and_keeps_the_rest(tmp_path):
    path = tmp_path / "expected_results.yml"
    path.write_text("# header line\n#\n# second header line\n\n"
                    "03_zero_shot:\n  smoke:\n    evo2kit-tiny:\n      old: {min: 0, max: 1, provenance: old}\n"
                    "  gpu-evo2_7b:\n    evo2_7b:\n      auroc: {min: 0.8, max: 0.95, provenance: published}\n")
    new = {"03_zero_shot": {"smoke": {"evo2kit-tiny": {"auroc": {"min": 0.3, "max": 0.6, "provenance": "runs"}}}}}
    er.write_expected(new, "smoke", "evo2kit-tiny", path)
    text = path.read_text()
    assert text.startswith("# header line\n#\n# second header line\n\n")
    doc = yaml.safe_load(text)
    assert doc["03_zero_shot"]["smoke"]["evo2kit-tiny"] == new["03_zero_shot"]["smoke"]["evo2kit-tiny"]
    assert doc["03_zero_shot"]["gpu-evo2_7b"]["evo2_7b"]["auroc"]["provenance"] == "published"


def test_a_lesson_range_never_crosses_zero_and_uneven_runs_are_described_as_they_were():
    runs = [{"04_dnn_probes": {"random_minus_grouped_dnn_layer_mean": g, "dnn_auroc_grouped_layer_mean": 0.6}}
            for g in (0.09, 0.11, 0.10)]
    uneven = [{"seed": s, "threads": t, "cpu": "c"} for s, t in ((0, 1), (1, 1), (2, 2))]
    got = er.ranges(runs, uneven, "cpu", "evo2kit-tiny", ARGS)["04_dnn_probes"]["cpu"]["evo2kit-tiny"]
    gap = got["random_minus_grouped_dnn_layer_mean"]
    assert gap["min"] == 0.0 and gap["max"] == pytest.approx(0.21)  # the 0.1 AUROC floor would reach -0.01
    assert "lesson" in gap["provenance"]
    assert got["dnn_auroc_grouped_layer_mean"]["min"] == pytest.approx(0.5)  # other metrics keep their widening
    assert "3 runs here: seed(s) 0, 1 at 1 thread(s); seed(s) 2 at 2 thread(s)" in gap["provenance"]
    negative = [{"04_dnn_probes": {"random_minus_grouped_dnn_layer_mean": g}} for g in (-0.02, 0.03)]
    got = er.ranges(negative, uneven[:2], "cpu", "evo2kit-tiny", ARGS)["04_dnn_probes"]["cpu"]["evo2kit-tiny"]
    assert got["random_minus_grouped_dnn_layer_mean"]["min"] < 0  # a run without the lesson is not hidden by the floor
    assert "did not hold in every run" in got["random_minus_grouped_dnn_layer_mean"]["provenance"]
    exon = [{"08_exon_classifier": {"emb_minus_kmer_chr22": g, "emb_minus_onehot_chr22": g - 0.05}}
            for g in (0.03, 0.06)]
    got = er.ranges(exon, uneven[:2], "cpu", "evo2kit-tiny", ARGS)["08_exon_classifier"]["cpu"]["evo2kit-tiny"]
    assert got["emb_minus_kmer_chr22"]["min"] == 0.0 and got["emb_minus_onehot_chr22"]["min"] < -0.02
    poles = [{"06_fine_tuning": {"stability_max_log_pole_none": p}} for p in (0.016, 0.018)]
    got = er.ranges(poles, uneven[:2], "cpu", "evo2kit-tiny", ARGS)["06_fine_tuning"]["cpu"]["evo2kit-tiny"]
    assert got["stability_max_log_pole_none"]["min"] == 0.0  # the sign is the lesson, not the size


def test_reused_runs_give_only_the_notebooks_asked_for(tmp_path, monkeypatch, capsys):
    dirs = []
    for seed in (0, 1):
        d = tmp_path / f"run{seed}"
        (d / "metrics").mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"profile": "smoke", "seed": seed, "threads": 1, "cpu": "test cpu"}))
        (d / "metrics.json").write_text(json.dumps({"metrics": [{"model": "evo2kit-tiny"}]}))
        for nb, value in (("01_loading", 0.4 + seed / 10), ("07_your_variants", 0.5 + seed / 10)):
            (d / "metrics" / f"{nb}.json").write_text(json.dumps({"notebook": nb, "metrics": {"auroc": value}}))
        dirs.append(str(d))
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", ["expected_ranges.py", "--profile", "smoke", "--notebooks", "07", "--seeds", "0",
                                     "--reuse", *dirs, "--out", str(out)])
    assert er.main() == 0
    assert list(json.loads((out / "smoke.json").read_text())["ranges"]) == ["07_your_variants"]
    assert "01_loading" not in capsys.readouterr().out


def test_the_self_test_of_a_model_with_reference_values_is_judged_to_the_self_tests_tolerance():
    """evo2kit-tiny has recorded self-test values: its range is the self-test's own tolerance around
    what the runs gave (1e-3 on the loss, 0.5 points on the accuracy); a model without any (the
    random-weight rehearsal) gets the usual widened range."""
    runs = [{"01_loading": {"self_test_loss": 1.358722, "self_test_accuracy": 0.326658}} for _ in range(2)]
    got = er.ranges(runs, infos(2), "smoke", "evo2kit-tiny", ARGS)["01_loading"]["smoke"]["evo2kit-tiny"]
    assert (got["self_test_loss"]["min"], got["self_test_loss"]["max"]) == (1.357722, 1.359722)
    assert (got["self_test_accuracy"]["min"], got["self_test_accuracy"]["max"]) == (0.321658, 0.331658)
    assert "the self-test's tolerance" in got["self_test_loss"]["provenance"]
    got = er.ranges(runs, infos(2), "official-format", "evo2_rehearsal", ARGS)["01_loading"]["official-format"]
    assert got["evo2_rehearsal"]["self_test_loss"]["min"] == pytest.approx(1.358722 * 0.95, abs=1e-6)  # 5% floor


def test_rank_correlations_and_their_bounds_get_the_auroc_floor():
    """A bootstrap bound of a Spearman rho moves by a few hundredths with the resampling seed
    (notebook 10's ``rho_all_high``: 0.007-0.055 over 16 seeds): rho_* get the AUROC floor, other
    metrics of that size do not."""
    lo, hi, w = er.suggest([0.02, 0.03], "rho_all_high", 0.5, 0.05, 0.1)
    assert w == 0.1 and (lo, hi) == (pytest.approx(-0.08), pytest.approx(0.13))
    assert er.suggest([0.02, 0.03], "sae_dead_fraction", 0.5, 0.05, 0.1)[2] == pytest.approx(0.005)
