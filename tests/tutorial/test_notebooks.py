"""The tutorial notebooks: pairing, parameters under every profile, and a real smoke run.

The smoke run executes every notebook through ``evo2kit.tutorial.runner`` (papermill, a real python3
kernel) once per session (fixture ``smoke_run`` in conftest.py, shared with
test_docs.py) and fails on any notebook error, any metric outside its range in
notebooks/expected_results.yml, and any expected metric that was not recorded. It needs the
datasets: CI sets EVO2KIT_DATA_DIR.
"""

from __future__ import annotations

import json
import os
import re

import papermill
import pytest
import yaml

from evo2kit.checkpoints.official import PUBLISHED_CHECKPOINTS
from evo2kit.tutorial import runner

SOURCES = runner.notebook_sources()
PROFILES = runner.load_profiles()
EXPECTED = runner.load_expected()


@pytest.mark.parametrize("stem", list(SOURCES))
def test_pair_in_sync_and_output_free(stem):
    runner.check_pair(SOURCES[stem])


@pytest.mark.parametrize("profile", list(PROFILES["profiles"]))
@pytest.mark.parametrize("stem", list(SOURCES))
def test_profile_parameters_exist_in_parameters_cell(stem, profile, tmp_path):
    nb = runner.read_py_notebook(SOURCES[stem])
    declared = runner.declared_parameters(nb)
    assert declared, f"{stem}: no cell tagged 'parameters'"
    params = runner.profile_parameters(PROFILES, profile, stem, declared)  # raises on undeclared names
    src = tmp_path / f"{stem}.ipynb"
    import nbformat

    nbformat.write(nb, src)
    prepared = papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters=params,
                                          prepare_only=True, kernel_name="python3", progress_bar=False)
    injected = [c for c in prepared.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == (1 if params else 0)
    if params:
        names = {line.split("=")[0].strip() for line in injected[0].source.splitlines() if "=" in line}
        assert names == set(params)


def test_profile_parameters_reject_undeclared_names():
    profiles = {"profiles": {"p": {"03_zero_shot": {"no_such_parameter": 1}}}}
    with pytest.raises(KeyError, match="no_such_parameter"):
        runner.profile_parameters(profiles, "p", "03_zero_shot", {"window": "int"})


def test_expected_results_layout():
    """notebook -> profile -> model -> metric -> {min, max, provenance}, min <= max, known profiles."""
    for stem, by_profile in EXPECTED.items():
        for profile, by_model in (by_profile or {}).items():
            assert profile in PROFILES["profiles"], f"{stem}: unknown profile {profile!r}"
            for model, metrics in (by_model or {}).items():
                for name, r in metrics.items():
                    assert set(r) == {"min", "max", "provenance"}, (stem, profile, model, name)
                    assert r["min"] <= r["max"], (stem, profile, model, name)
                    assert r["provenance"].strip(), (stem, profile, model, name)


def test_check_metrics_statuses():
    expected = {"03_zero_shot": {"smoke": {"m": {"a": {"min": 0, "max": 1, "provenance": "x"},
                                                  "b": {"min": 0, "max": 1, "provenance": "x"},
                                                  "c": {"min": 0, "max": 1, "provenance": "x"}}}}}
    rows = runner.check_metrics({"03_zero_shot": {"a": 0.5, "b": 2.0, "d": 7.0}}, expected, "smoke",
                                {"03_zero_shot": "m"})
    assert {r["metric"]: r["status"] for r in rows} == {"a": "pass", "b": "FAIL", "c": "MISSING", "d": "unchecked"}


@pytest.mark.slow
def test_smoke_profile_runs_and_metrics_in_range(smoke_run):
    status, outdir = smoke_run
    summary = json.loads((outdir / "metrics.json").read_text())["metrics"]
    bad = [f"{r['notebook']}:{r['metric']}={r['value']} expected [{r['min']}, {r['max']}] ({r['status']})"
           for r in summary if r["status"] in ("FAIL", "MISSING")]
    assert status == 0, f"runner exit status {status}; see {outdir.parent / 'runner.log'}; " + "; ".join(bad)
    assert not bad
    from evo2kit.tutorial.metrics import notebook_metrics, read_metrics

    side = read_metrics(outdir / "metrics")
    for stem in SOURCES:
        assert (outdir / f"{stem}.ipynb").is_file() and (outdir / f"{stem}.html").is_file()
        assert notebook_metrics(outdir / f"{stem}.ipynb") == {stem: side[stem]}, f"{stem}: notebook and JSON differ"
        checked = [r for r in summary if r["notebook"] == stem and r["status"] == "pass"]
        assert checked, f"{stem}: no metric was checked against notebooks/expected_results.yml"


def test_smoke_profile_expected_metrics_cover_every_notebook():
    for stem in SOURCES:
        ranges = ((EXPECTED.get(stem) or {}).get("smoke") or {}).get(runner.DEFAULT_MODEL) or {}
        assert ranges, f"notebooks/expected_results.yml has no smoke ranges for {stem} ({runner.DEFAULT_MODEL})"


def test_profiles_yaml_is_plain():
    doc = yaml.safe_load(runner.NOTEBOOKS.joinpath("profiles.yml").read_text())
    assert set(doc) == {"profiles"}  # no defaults section: the defaults are the parameters cells'
    assert {"smoke", "cpu"} <= set(doc["profiles"])


def test_profiles_restate_no_default():
    """A profile holds only what it changes: no notebook value equal to that notebook's default
    (unless it undoes the profile's shared value), no shared value equal to the default of every
    notebook that declares it."""
    defaults = {stem: runner.parameter_defaults(runner.read_py_notebook(py)) for stem, py in SOURCES.items()}
    restated = []
    for profile, prof in PROFILES["profiles"].items():
        shared = prof.get(runner.SHARED) or {}
        for key, value in shared.items():
            declaring = [stem for stem in SOURCES if key in defaults[stem]]
            if declaring and all(defaults[stem][key] == value for stem in declaring):
                restated.append(f"{profile}.shared.{key}: {value!r}")
        for stem in SOURCES:
            for key, value in (prof.get(stem) or {}).items():
                if value == shared.get(key, defaults[stem].get(key, object())):
                    restated.append(f"{profile}.{stem}.{key}: {value!r}")
    assert not restated, f"profiles.yml restates defaults or shared values: {restated}"


def test_failing_cell_fails_the_run(tmp_path, capsys):
    """A notebook that raises: exit status 1, its executed copy is written and its path printed;
    the error its cell raised is one line (issue 30: the helpful line of a model that cannot be
    fetched offline came after some 140 lines of traceback), the traceback stays in the notebook."""
    import jupytext

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    py = nbdir / "00_fails.py"
    py.write_text('# %% tags=["parameters"]\nx = 1\n\n# %%\ndef load():\n'
                  '    raise FileNotFoundError(f"model {x} is not in the cache:\\n  fetch it first")\n\n\nload()\n')
    jupytext.write(jupytext.read(py), py.with_suffix(".ipynb"))
    (nbdir / "profiles.yml").write_text("profiles:\n  p:\n    00_fails: {x: 2}\n")
    (nbdir / "expected_results.yml").write_text("{}\n")
    status = runner.run("p", out=tmp_path / "build", notebooks_dir=nbdir)
    executed = tmp_path / "build" / "p" / "00_fails.ipynb"
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and re.fullmatch(r"\[p\] 00_fails FAILED after \d+s: cell \[\d\] raised FileNotFoundError: "
                                          r"model 2 is not in the cache: fetch it first", err[0]), err
    assert err[1] == f"  executed notebook (its traceback): {executed}", err
    assert "model 2 is not in the cache" in executed.read_text() and "load()" in executed.read_text()


def _tiny_notebook_dir(tmp_path, body: str, profiles: str, expected: str):
    """A one-notebook folder (``00_tiny.py`` + its paired .ipynb, profiles.yml, expected_results.yml)."""
    import jupytext

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    py = nbdir / "00_tiny.py"
    py.write_text('# %% tags=["parameters"]\nx = 1\n\n# %%\n' + body)
    jupytext.write(jupytext.read(py), py.with_suffix(".ipynb"))
    (nbdir / "profiles.yml").write_text(profiles)
    (nbdir / "expected_results.yml").write_text(expected)
    return nbdir


def test_metric_out_of_range_or_missing_fails_the_run(tmp_path, capsys):
    """A real kernel records a=x (out of [0, 1]) and never records b (listed): exit status 2, both
    reported; the same notebook with x in range and b no longer listed passes (status 0)."""
    body = 'from evo2kit.tutorial.metrics import record_metrics\nrecord_metrics("00_tiny", {"a": x, "extra": 3.0})\n'
    ranges = ("00_tiny:\n  p:\n    evo2kit-tiny:\n"
              "      a: {min: 0.0, max: 1.0, provenance: test}\n")
    nbdir = _tiny_notebook_dir(tmp_path, body, "profiles:\n  p:\n    00_tiny: {x: 2}\n",
                               ranges + "      b: {min: 0.0, max: 1.0, provenance: test}\n")
    status = runner.run("p", out=tmp_path / "build", notebooks_dir=nbdir)
    rows = {r["metric"]: r["status"] for r in
            json.loads((tmp_path / "build" / "p" / "metrics.json").read_text())["metrics"]}
    assert status == 2
    assert rows == {"a": "FAIL", "b": "MISSING", "extra": "unchecked"}
    err = capsys.readouterr().err
    assert "00_tiny:a=2.0" in err and "00_tiny:b=None" in err

    (nbdir / "profiles.yml").write_text("profiles:\n  p:\n    00_tiny: {x: 0.5}\n")
    (nbdir / "expected_results.yml").write_text(ranges)
    assert runner.run("p", out=tmp_path / "build2", notebooks_dir=nbdir) == 0


def test_executed_notebook_carries_its_metrics_and_a_run_by_hand_writes_no_file(tmp_path, monkeypatch):
    """Through the runner, the executed notebook holds the same metrics as the side JSON; the same
    notebook executed by hand (papermill, cwd = its folder, no runner variables) shows its metrics
    in its output and writes nothing beside itself."""
    from evo2kit.tutorial.metrics import notebook_metrics, read_metrics

    body = 'from evo2kit.tutorial.metrics import record_metrics\nrecord_metrics("00_tiny", {"a": x, "b": 2 * x})\n'
    nbdir = _tiny_notebook_dir(tmp_path, body, "profiles:\n  p:\n    00_tiny: {x: 0.25}\n", "{}\n")
    assert runner.run("p", out=tmp_path / "build", notebooks_dir=nbdir) == 0
    side = read_metrics(tmp_path / "build" / "p" / "metrics")
    assert notebook_metrics(tmp_path / "build" / "p" / "00_tiny.ipynb") == side == {"00_tiny": {"a": 0.25, "b": 0.5}}

    for var in ("EVO2KIT_METRICS_DIR", "EVO2KIT_OUTPUT_DIR"):  # run() set them in this process
        monkeypatch.delenv(var, raising=False)
    before = sorted(p.name for p in nbdir.iterdir())
    out = tmp_path / "by_hand.ipynb"
    papermill.execute_notebook(str(nbdir / "00_tiny.ipynb"), str(out), kernel_name="python3", cwd=str(nbdir),
                               progress_bar=False)
    assert notebook_metrics(out) == {"00_tiny": {"a": 1.0, "b": 2.0}}
    assert sorted(p.name for p in nbdir.iterdir()) == before


def test_unset_environment_variable_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("EVO2KIT_NO_SUCH_WEIGHTS", raising=False)
    nbdir = _tiny_notebook_dir(tmp_path, "print(x)\n",
                               "profiles:\n  p:\n    00_tiny: {x: $EVO2KIT_NO_SUCH_WEIGHTS}\n", "{}\n")
    with pytest.raises(runner.UsageError, match="EVO2KIT_NO_SUCH_WEIGHTS"):
        runner.run("p", out=tmp_path / "build", notebooks_dir=nbdir)
    assert not (tmp_path / "build").exists(), "nothing may be written before every check has passed"


def test_gpu_workflow_runs_gpu_profiles_and_the_same_checks():
    """.github/workflows/gpu-notebooks.yml: a self-hosted GPU job whose profile choices exist in
    profiles.yml (their parameters are papermill-prepared by the test above), which runs the
    runner on the chosen profile and uploads what it wrote, and the site built from it."""
    wf = yaml.safe_load((runner.ROOT / ".github" / "workflows" / "gpu-notebooks.yml").read_text())
    job = wf["jobs"]["notebooks"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    trigger = wf.get("on") or wf.get(True)  # PyYAML reads the key `on` as True
    choices = trigger["workflow_dispatch"]["inputs"]["profile"]["options"]
    gpu_profiles = [p for p in PROFILES["profiles"] if p.startswith("gpu-")]
    assert gpu_profiles and sorted(choices) == sorted(gpu_profiles)
    assert trigger["workflow_dispatch"]["inputs"]["profile"]["default"] in gpu_profiles
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'python -m evo2kit.tutorial.runner --profile "$PROFILE"' in runs
    assert "pytest" in runs and "tests/tutorial/test_notebooks.py" in runs
    assert "evo2kit.checkpoints.hub" in runs
    assert 'python -m evo2kit.tutorial.docs --profile "$PROFILE"' in runs
    uploads = [str(step["with"]["path"]) for step in job["steps"]
               if step.get("uses", "").startswith("actions/upload-artifact")]
    assert any("build/site/${{ env.PROFILE }}" in path for path in uploads)
    assert "HF_HOME" in runs and "download_checkpoint" in runs and "profile_models" in runs  # filled once
    assert all("build/${{ env.PROFILE }}/" + f in str(uploads) for f in ("*.ipynb", "*.html", "metrics.*"))
    for profile in gpu_profiles:  # every notebook on the named model, its checkpoint from the Hub cache
        shared = PROFILES["profiles"][profile].get(runner.SHARED) or {}
        assert shared.get("device") == "cuda" and "model_weights" not in shared, profile  # None: the Hub cache
        assert shared.get("model_name") == profile.removeprefix("gpu-"), profile
        models = runner.profile_models(profile, PROFILES)
        assert models[0] == shared["model_name"] and set(models) <= set(PUBLISHED_CHECKPOINTS), (profile, models)
        for stem in SOURCES:  # a notebook may name another published model; the job downloads it too
            assert (PROFILES["profiles"][profile].get(stem) or {}).get("model_name") in (None, *models)
    assert runner.profile_models("gpu-evo2_7b", PROFILES)[:2] == ["evo2_7b", "evo2_7b_base"]  # 08: Arc's model


REHEARSAL = "official-format"


def test_rehearsal_sets_every_parameter_the_gpu_profiles_set():
    """What the rehearsal runs is what the gpu profiles run: each parameter a gpu profile gives a
    notebook, the rehearsal gives it too (with small values), bar the second-backend comparison of
    notebook 01, which needs CUDA, and notebook 09's eukaryote panel with notebook 00's check for it, which
    need exonerate (a program the GPU workflow installs; CI has none)."""
    def keys(profile, stem):
        prof = PROFILES["profiles"][profile]
        return set(prof.get(runner.SHARED) or {}) | set(prof.get(stem) or {})

    not_rehearsed = {"official_model", "official_weights", "need_exonerate", "panels"}
    for profile in [p for p in PROFILES["profiles"] if p.startswith("gpu-")]:
        for stem in SOURCES:
            missing = keys(profile, stem) - keys(REHEARSAL, stem) - not_rehearsed
            assert not missing, (profile, stem, missing)


@pytest.mark.slow
def test_official_format_rehearsal_runs_every_notebook_through_the_published_loading_path(real_dir, tmp_path):
    """Notebook 00 writes a random-weight checkpoint in the official layout (FP8 metadata,
    column-split Wqkv, unembed.weight, the file in three parts), 01-05 load it as the gpu profiles
    load a published model (load_model(model_name, local_path=model_weights, fp8="auto")); every
    notebook executes and every judged metric (equalities, shapes, counts, the load report) is in
    range. Its AUROCs are reported, not judged: the model has learnt nothing."""
    status = runner.run(REHEARSAL, out=tmp_path)
    outdir = tmp_path / REHEARSAL
    summary = json.loads((outdir / "metrics.json").read_text())["metrics"]
    bad = [f"{r['notebook']}:{r['metric']}={r['value']} expected [{r['min']}, {r['max']}] ({r['status']})"
           for r in summary if r["status"] in ("FAIL", "MISSING")]
    assert status == 0 and not bad, f"runner exit status {status}; see {outdir}; " + "; ".join(bad)
    checkpoint = outdir / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["evo2_rehearsal.pt.part0", "evo2_rehearsal.pt.part1",
                                                            "evo2_rehearsal.pt.part2", "evo2_rehearsal.yml"]
    assert {r["model"] for r in summary} == {"evo2_rehearsal"}
    passed = {(r["notebook"], r["metric"]) for r in summary if r["status"] == "pass"}
    for stem in SOURCES:
        assert (outdir / f"{stem}.ipynb").is_file() and (outdir / f"{stem}.html").is_file()
        assert any(n == stem for n, _ in passed), f"{stem}: no metric was checked"
    for metric in ("load_fp8_blocks", "load_permuted_wqkv", "load_dropped_keys", "load_converted_tensors"):
        assert ("01_loading", metric) in passed  # the official loader ran, FP8 and all


def test_threads_option_sets_the_kernels_thread_count_and_run_json_records_it(tmp_path, monkeypatch):
    body = ('import torch\nfrom evo2kit.tutorial.metrics import record_metrics\n'
            'record_metrics("00_tiny", {"threads": torch.get_num_threads()})\n')
    nbdir = _tiny_notebook_dir(tmp_path, body, "profiles:\n  p:\n    00_tiny: {}\n", "{}\n")
    for var in runner.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    from evo2kit.tutorial.metrics import read_metrics

    for n in (1, 2):
        assert runner.run("p", out=tmp_path / f"t{n}", notebooks_dir=nbdir, threads=n, overrides={"x": 3}) == 0
        assert read_metrics(tmp_path / f"t{n}" / "p" / "metrics")["00_tiny"]["threads"] == n
        info = json.loads((tmp_path / f"t{n}" / "p" / "run.json").read_text())
        assert info["threads"] == n and info["overrides"] == {"x": 3} and info["notebooks"] == ["00_tiny"]
        assert info["cpu"] and info["torch"]
    assert not any(var in os.environ for var in runner.THREAD_VARS)  # the caller's environment is left as it was


def test_parameter_types_come_from_the_defaults_in_the_parameters_cell(tmp_path):
    py = tmp_path / "00_types.py"
    py.write_text('# %% tags=["parameters"]\na = 1\nb = 0.5\nc = "s"\nd = None\ne = [1, 2]\nf = True\ng = 2 * 3\n'
                  'h: int = 4\n\n# %%\nprint(a)\n')
    declared = runner.declared_parameters(runner.read_py_notebook(py))
    assert declared == {"a": "int", "b": "float", "c": "str", "d": "None", "e": "list", "f": "bool", "g": "None",
                        "h": "int"}
    nbs = {"00_types": declared}
    for ok in [{"a": 3}, {"b": 2}, {"b": 0.1}, {"c": "x"}, {"d": "anything"}, {"d": [1]}, {"e": [3]}, {"f": False},
               {"g": "x"}, {"h": 5}]:
        runner.check_overrides(ok, nbs)
    for bad, got in [({"a": "notanumber"}, "str"), ({"a": 1.5}, "float"), ({"a": True}, "bool"), ({"b": "x"}, "str"),
                     ({"c": 3}, "int"), ({"e": 3}, "int"), ({"f": 1}, "int"), ({"h": "x"}, "str")]:
        (name, value), = bad.items()
        with pytest.raises(runner.UsageError, match=rf"--set {name}={re.escape(repr(value))}: the parameters cell of "
                                                    rf"00_types gives {name} a default of type {declared[name]}, this "
                                                    rf"value is of type {got}"):
            runner.check_overrides(bad, nbs)
    with pytest.raises(runner.UsageError, match=r"--set n_variant: no selected notebook declares a parameter "
                                                r"'n_variant'; they declare a, b, c, d, e, f, g, h"):
        runner.check_overrides({"n_variant": 50}, nbs)


def exit_status(main, argv) -> int:
    """What ``sys.exit(main(argv))`` exits with (argparse's own errors raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_command_line_usage_errors_are_one_line_with_exit_status_64(tmp_path, capsys):
    """Unknown profile, notebook, option or parameter, a value of the wrong type, a malformed --set:
    status 64, one line naming the problem, no traceback, nothing written; --debug raises instead."""
    nbdir = _tiny_notebook_dir(tmp_path, "print(x)\n", "profiles:\n  p:\n    00_tiny: {}\n", "{}\n")
    base = ["--notebooks-dir", str(nbdir), "--out", str(tmp_path / "build")]
    for args, message in [
        (["--profile", "nope"], "unknown profile 'nope'; profiles.yml has p"),
        (["--profile", "p", "--notebooks", "07"], "no notebook matches 07; the notebooks are 00_tiny"),
        (["--profile", "p", "--set", "n_variant=50"], "--set n_variant: no selected notebook declares a parameter "
                                                      "'n_variant'; they declare x"),
        (["--profile", "p", "--set", "xx=1"], "(did you mean 'x'?)"),
        (["--profile", "p", "--set", "x=notanumber"], "--set x='notanumber': the parameters cell of 00_tiny gives x "
                                                      "a default of type int, this value is of type str"),
        (["--profile", "p", "--set", "x"], "--set expects KEY=VALUE, got 'x'"),
        (["--profile", "p", "--set", "x=[1,"], "--set 'x=[1,': the value is not valid YAML"),
        (["--profile", "p", "--set", "dtype=fp16"], "--set dtype='fp16': dtype 'fp16' is not supported"),
        (["--profile", "p", "--set", "backend=jax"], "--set backend='jax': backend must be one of torch, vortex"),
        (["--profile", "p", "--threads", "two"], "argument --threads: invalid int value: 'two'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ]:
        assert exit_status(runner.main, base + args) == 64, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
        assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [
            line for line in err.splitlines() if line.startswith("python -m evo2kit.tutorial.runner: error: ")], err
    assert not (tmp_path / "build").exists(), "a refused command must not write anything"
    with pytest.raises(runner.UsageError, match="n_variant"):
        runner.main(base + ["--profile", "p", "--set", "n_variant=50", "--debug"])
    with pytest.raises(runner.UsageError, match="unknown profile"):
        runner.run("nope", out=tmp_path / "build", notebooks_dir=nbdir)
    (nbdir / "profiles.yml").unlink()
    assert runner.main(base + ["--profile", "p"]) == 66
    assert "profiles.yml" in capsys.readouterr().err


def test_a_parameter_whose_default_is_none_is_checked_by_its_declared_type(tmp_path, capsys):
    """``ids: list = None`` (notebook 02's layer_ids): --set ids=5 is refused before
    anything runs (status 64, one line); a list or null is accepted; the context reads the default."""
    import jupytext

    from evo2kit.tutorial.context import parameters_of

    nbdir = _tiny_notebook_dir(tmp_path, "print(x, ids)\n", "profiles:\n  p:\n    00_tiny: {}\n", "{}\n")
    py = nbdir / "00_tiny.py"
    py.write_text(py.read_text().replace("x = 1\n", "x = 1\nids: list = None  # block indices\n"))
    jupytext.write(jupytext.read(py), py.with_suffix(".ipynb"))
    declared = {"00_tiny": runner.declared_parameters(runner.read_py_notebook(py))}
    assert declared["00_tiny"]["ids"] == "Optional[list]"
    base = ["--notebooks-dir", str(nbdir), "--out", str(tmp_path / "build"), "--profile", "p"]
    assert exit_status(runner.main, base + ["--set", "ids=5"]) == 64
    assert ("--set ids=5: the parameters cell of 00_tiny gives ids a default of type Optional[list], this value "
            "is of type int") in capsys.readouterr().err
    assert not (tmp_path / "build").exists()
    runner.check_overrides({"ids": [2, 5]}, declared)
    runner.check_overrides({"ids": None}, declared)
    assert parameters_of("00_tiny", tmp_path / "no-run", notebooks_dir=nbdir) == {"x": 1, "ids": None}


def test_an_out_or_notebooks_dir_that_cannot_serve_is_one_line(tmp_path, capsys):
    """issue 30: an --out that is a file (or under one) ended in a NotADirectoryError traceback, and a
    notebooks folder without notebooks ran nothing and exited 0. Now one line each, nothing written."""
    nbdir = _tiny_notebook_dir(tmp_path, "print(x)\n", "profiles:\n  p:\n    00_tiny: {}\n", "{}\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    for out in (a_file, a_file / "build"):
        args = ["--notebooks-dir", str(nbdir), "--out", str(out), "--profile", "p"]
        assert exit_status(runner.main, args) == 64, out
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"python -m evo2kit.tutorial.runner: error: --out {out}: {a_file} is a file, not a folder: "
                       "name a folder for the run's results"], err
    assert a_file.read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, says in [(tmp_path / "none", "no such folder"), (empty, "holds no notebooks (NN_name.py)")]:
        args = ["--notebooks-dir", str(folder), "--out", str(tmp_path / "build"), "--profile", "p"]
        assert exit_status(runner.main, args) == 66, folder
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"python -m evo2kit.tutorial.runner: error: --notebooks-dir "
                                                   f"{folder.resolve()}") and says in err[0], err
    assert not (tmp_path / "build").exists()


def test_help_lists_profiles_notebooks_an_example_and_the_exit_statuses(capsys):
    assert exit_status(runner.main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert all(p in out for p in PROFILES["profiles"]) and all(stem in out for stem in SOURCES)
    assert "python -m evo2kit.tutorial.runner --profile smoke" in out
    for code in (0, 1, 2, 64, 65, 66):
        assert re.search(rf"^  {code} +\S", out, re.M), code


def test_set_of_a_declared_parameter_runs_with_status_0(tmp_path):
    body = 'from evo2kit.tutorial.metrics import record_metrics\nrecord_metrics("00_tiny", {"x": x})\n'
    nbdir = _tiny_notebook_dir(tmp_path, body, "profiles:\n  p:\n    00_tiny: {}\n", "{}\n")
    assert runner.main(["--notebooks-dir", str(nbdir), "--out", str(tmp_path / "build"), "--profile", "p",
                        "--set", "x=3"]) == 0
    from evo2kit.tutorial.metrics import read_metrics

    assert read_metrics(tmp_path / "build" / "p" / "metrics")["00_tiny"]["x"] == 3


def test_run_settings_reach_the_notebooks_context_and_only_that_notebook(tmp_path, monkeypatch):
    """A profile's run setting (dtype, for one notebook) and a --set one (device) reach the
    kernel's context through its environment, are gone after the notebook, and are not injected as
    parameters (the parameters cell does not declare them)."""
    for name in ("EVO2KIT_DTYPE", "EVO2KIT_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    body = ("import torch\nfrom evo2kit.tutorial.context import context\nfrom evo2kit.tutorial.metrics import "
            "record_metrics\nrun = context()\nrecord_metrics('00_tiny', {'bf16': float(run.dtype == torch.bfloat16), "
            "'cpu': float(run.device.type == 'cpu'), 'x': x})\n")
    nbdir = _tiny_notebook_dir(tmp_path, body, "profiles:\n  p:\n    00_tiny: {dtype: bfloat16, x: 2}\n", "{}\n")
    assert runner.main(["--notebooks-dir", str(nbdir), "--out", str(tmp_path / "build"), "--profile", "p",
                        "--set", "device=cpu"]) == 0
    from evo2kit.tutorial.metrics import read_metrics

    assert read_metrics(tmp_path / "build" / "p" / "metrics")["00_tiny"] == {"bf16": 1.0, "cpu": 1.0, "x": 2}
    assert "EVO2KIT_DTYPE" not in os.environ and "EVO2KIT_DEVICE" not in os.environ
    recorded = json.loads((tmp_path / "build" / "p" / "parameters" / "00_tiny.json").read_text())
    assert recorded == {"x": 2}, "run settings are not parameters"
