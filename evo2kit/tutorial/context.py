"""A notebook's context: what a run decides outside the lesson.

    run = context(model_name)           # in a notebook, right after its parameters cell
    model = run.load_model()
    folder = run.output_dir("zero_shot")

A notebook's ``parameters`` cell holds the lesson's settings (model, window, subset size, seed, ...).
The run's own settings come from here: which weights file, device, dtype and backend the model is
loaded with, the data folder, and where outputs go. Each is taken from a keyword argument of
:func:`context`, else from the environment (the runner sets these from a profile or ``--set``),
else its default:

    model_weights  EVO2KIT_MODEL_WEIGHTS  None: the bundled weights, or the Hub cache for a published name
    device         EVO2KIT_DEVICE         "auto": CUDA when present, else CPU
    dtype          EVO2KIT_DTYPE          "auto": float32 on CPU, bfloat16 for published models on CUDA
    backend        EVO2KIT_BACKEND        "torch" (evo2kit), "vortex" (the official evo2 package, CUDA) or
                                          "nim" (EXPERIMENTAL: NVIDIA's Evo 2 service; docs/nim.md)
    nim_url        EVO2KIT_NIM_URL        None: the hosted endpoint of the model; else a NIM's URL (backend nim)
    data_dir       EVO2KIT_DATA_DIR       None: the cache, then a download (evo2kit.data.registry)
    output_root    EVO2KIT_OUTPUT_DIR     None: the cache folder; the runner's build/<profile>

``context`` resolves them once (a bad value fails here, with the setting named) and points the data
layer at ``data_dir`` for this process.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from evo2kit.api import load_model, resolve_device, resolve_dtype
from evo2kit.data.registry import data_dir as configured_data_dir
from evo2kit.data.registry import use_data_dir
from evo2kit.files import output_dir

SETTINGS = {"model_weights": None, "device": "auto", "dtype": "auto", "backend": "torch", "data_dir": None,
            "nim_url": None}
"""The run's settings and their defaults; each is read from ``EVO2KIT_<NAME>`` when not given."""
BACKENDS = ("torch", "vortex", "nim")


def environment_name(setting: str) -> str:
    return f"EVO2KIT_{setting.upper()}"


def check_setting(name: str, value) -> None:
    """Raise ValueError naming ``name`` when ``value`` is not one it takes (the runner checks
    ``--set`` values with this before any notebook runs)."""
    if name not in SETTINGS:
        raise ValueError(f"{name!r} is not a run setting; they are {', '.join(SETTINGS)}")
    if value is None:
        return
    if name == "device":
        resolve_device(value)
    elif name == "dtype":
        resolve_dtype(value)
    elif name == "backend" and value not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {value!r}")
    elif name in ("model_weights", "data_dir", "nim_url") and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path, not {value!r}")


@dataclass(frozen=True)
class Context:
    """model_name: as the notebook's parameters cell says; model_weights: a checkpoint path or None;
    device, dtype (None: the loader's choice), backend: how the model is loaded; data_dir: the
    folder ``evo2kit.data.registry.fetch`` looks in first (None: the cache, then a download);
    output_root: where notebooks leave files for later ones; nim_url: the NIM endpoint of backend "nim"."""

    model_name: str
    model_weights: str | None
    device: torch.device
    dtype: torch.dtype | None
    backend: str
    data_dir: Path | None
    output_root: Path
    nim_url: str | None = None

    def load_model(self, **kwargs):
        """``evo2kit.load_model`` with this run's weights, device, dtype and backend (the official
        ``evo2.Evo2`` for backend 'vortex', which places itself); ``kwargs`` go to it."""
        if self.backend == "vortex":
            return load_model(self.model_name, local_path=self.model_weights, backend="vortex", **kwargs)
        if self.backend == "nim":  # the key comes from $NVIDIA_API_KEY
            return load_model(self.model_name, backend="nim", url=self.nim_url, **kwargs)
        return load_model(self.model_name, local_path=self.model_weights, device=self.device, dtype=self.dtype,
                          **kwargs)

    def parameters_of(self, notebook: str, *names: str) -> dict:
        """The parameters another notebook of this run runs with (``notebook``: its stem, e.g.
        "02_embeddings"; ``names``: only these), so that notebooks which build on each other share
        them by name: what the runner recorded for this run in ``output_root/parameters/<stem>.json``,
        else (a notebook opened on its own) the defaults of that notebook's parameters cell."""
        params = parameters_of(notebook, self.output_root)
        missing = [n for n in names if n not in params]
        if missing:
            raise KeyError(f"{notebook} has no parameter(s) {missing}; it has {sorted(params)}")
        return {n: params[n] for n in names} if names else params

    def output_dir(self, name: str) -> Path:
        """``output_root/name``, created: a folder that later notebooks of the run find by the same name."""
        folder = self.output_root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


PARAMETERS = "parameters"
"""Folder of the run's outputs where the runner records each notebook's parameters (one JSON each)."""


def parameters_of(notebook: str, output_root: Path, notebooks_dir: Path | None = None) -> dict:
    """See :meth:`Context.parameters_of`; ``notebooks_dir`` holds the notebooks' ``.py`` files
    (default: the current folder, where Jupyter and the runner run a notebook)."""
    recorded = output_root / PARAMETERS / f"{notebook}.json"
    if recorded.is_file():
        return json.loads(recorded.read_text())
    source = Path(notebooks_dir or ".") / f"{notebook}.py"
    if not source.is_file():
        raise FileNotFoundError(f"no parameters recorded for {notebook} in {recorded.parent}, and no "
                                f"{source} to read its defaults from")
    import jupytext  # noqa: PLC0415 (only for a notebook run outside the runner)

    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    defaults = {}
    for node in ast.parse(cells[0].source if cells else "").body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name = node.target.id  # `layer_ids: list = None`: a default with a declared type
        else:
            continue
        with contextlib.suppress(ValueError, SyntaxError):  # a default written as an expression is left out
            defaults[name] = ast.literal_eval(node.value)
    return defaults


def context(model_name: str = "evo2kit-tiny", **settings) -> Context:
    """The run's context for a notebook on ``model_name``; ``settings`` (any of :data:`SETTINGS`)
    override the environment's values. A given ``data_dir`` is used by the data layer from now on
    in this process, ahead of ``$EVO2KIT_DATA_DIR``."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise TypeError(f"context() got unknown setting(s) {unknown}; it takes {', '.join(SETTINGS)}")
    values = {}
    for name, default in SETTINGS.items():
        value = settings[name] if name in settings else os.environ.get(environment_name(name)) or default
        try:
            check_setting(name, value)
        except ValueError as e:
            where = "" if name in settings else f" (from ${environment_name(name)})"
            raise ValueError(f"run setting {name}{where}: {e}") from None
        values[name] = value
    if "data_dir" in settings:
        use_data_dir(values["data_dir"])
    return Context(model_name=str(model_name), model_weights=values["model_weights"] or None,
                   device=resolve_device(values["device"]), dtype=resolve_dtype(values["dtype"]),
                   backend=values["backend"], data_dir=configured_data_dir(), output_root=output_dir(),
                   nim_url=values["nim_url"] or None)
