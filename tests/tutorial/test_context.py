"""evo2kit.tutorial.context: a notebook's run settings from arguments or the environment, checked at once,
and the parameters of the run's other notebooks, by name."""

from __future__ import annotations

import json
import os

import pytest
import torch

from evo2kit.data import registry
from evo2kit.data.registry import Dataset, fetch
from evo2kit.tutorial import runner
from evo2kit.tutorial.context import SETTINGS, Context, context, environment_name, parameters_of


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch, tmp_path):
    for name in SETTINGS:
        monkeypatch.delenv(environment_name(name), raising=False)
    monkeypatch.setenv("EVO2KIT_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "_configured_data_dir", None)


def test_arguments_then_environment_then_defaults(monkeypatch, tmp_path):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("EVO2KIT_DTYPE", "bfloat16")
    monkeypatch.setenv("EVO2KIT_MODEL_WEIGHTS", "/weights/x.pt")
    env = dict(os.environ)
    run = context("evo2kit-tiny", device="cpu", data_dir=str(tmp_path / "data"))
    assert run == Context("evo2kit-tiny", "/weights/x.pt", torch.device("cpu"), torch.bfloat16, "torch",
                          tmp_path / "data", tmp_path / "out")
    assert dict(os.environ) == env, "context() must not write the environment"
    assert registry.data_dir() == tmp_path / "data", "a given data_dir is the data layer's from now on"
    auto = context()
    assert auto.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert auto.model_weights == "/weights/x.pt"


def test_the_folder_given_comes_before_the_environments(monkeypatch, tmp_path):
    ddir = tmp_path / "data"
    ddir.mkdir()
    (ddir / "toy.txt").write_text("x")
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(tmp_path / "elsewhere"))
    sha = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"  # of the one byte "x"
    ds = Dataset("toy", "toy.txt", None, "file_sha256", sha, "a toy")
    context(data_dir=ddir)
    assert fetch(ds, download=False) == ddir / "toy.txt"


@pytest.mark.parametrize("setting, value, message", [
    ("dtype", "float64", "dtype 'float64' is not supported"), ("device", "gpu", "device 'gpu' is not a device"),
    ("backend", "jax", "backend must be one of torch, vortex"), ("data_dir", "missing", "is not a folder")])
def test_a_bad_setting_fails_at_once_naming_it(monkeypatch, tmp_path, setting, value, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        context(**{setting: str(tmp_path / value) if setting == "data_dir" else value})
    if setting != "data_dir":
        monkeypatch.setenv(environment_name(setting), value)
        with pytest.raises(ValueError, match=f"run setting {setting} \\(from \\${environment_name(setting)}\\)"):
            context()
    assert registry.data_dir() is None, "a refused call changes nothing"
    with pytest.raises(TypeError, match="unknown setting"):
        context(weights="x.pt")


def test_load_model_and_output_dir(tmp_path):
    run = context(device="cpu", dtype="float32")
    model = run.load_model()
    assert model.name == "evo2kit-tiny" and model.device == torch.device("cpu")
    folder = run.output_dir("zero_shot")
    assert folder == tmp_path / "out" / "zero_shot" and folder.is_dir()


def test_parameters_of_another_notebook_recorded_by_the_runner_else_its_defaults(tmp_path, monkeypatch):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    import jupytext

    nb = jupytext.reads('# %% tags=["parameters"]\nwindow = 1024\nlayers = [1, 2]\nscale = 2 * 3\n\n# %%\nx = 1\n',
                        fmt="py:percent")
    jupytext.write(nb, nbdir / "02_x.py", fmt="py:percent")
    jupytext.write(nb, nbdir / "02_x.ipynb")
    monkeypatch.chdir(nbdir)
    run = context()
    assert run.parameters_of("02_x") == {"window": 1024, "layers": [1, 2]}, "defaults; an expression is left out"
    assert run.parameters_of("02_x", "window") == {"window": 1024}
    with pytest.raises(KeyError, match="no parameter"):
        run.parameters_of("02_x", "stride")
    (nbdir / "profiles.yml").write_text("profiles:\n  p:\n    02_x: {window: 512}\n")
    runner.record_parameters(runner.load_profiles(nbdir / "profiles.yml"), "p", {"layers": [3]},
                             tmp_path / "out" / "parameters", nbdir)
    assert json.loads((tmp_path / "out" / "parameters" / "02_x.json").read_text()) == {"window": 512, "layers": [3]}
    assert run.parameters_of("02_x") == {"window": 512, "layers": [3]}, "what the runner recorded for this run"
    with pytest.raises(FileNotFoundError, match="no parameters recorded for 03_y"):
        parameters_of("03_y", tmp_path / "out")
