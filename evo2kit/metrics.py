"""Recording a notebook's metrics so that tests and the runner can read them back.

Each notebook ends with ``record_metrics("03_zero_shot", {"auroc_w2048": 0.71, ...})``.
The file lands in ``$EVO2KIT_METRICS_DIR`` (the runner sets it to ``build/<profile>/metrics``)
or ``build/metrics``: one JSON per notebook, ``{"notebook": ..., "metrics": {name: number}}``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .files import atomic_write


def metrics_dir() -> Path:
    return Path(os.environ.get("EVO2KIT_METRICS_DIR", "build/metrics"))


def record_metrics(notebook: str, metrics: dict[str, float], out_dir: str | os.PathLike | None = None) -> Path:
    """Merge ``metrics`` (name -> finite number) into ``<out_dir>/<notebook>.json``; returns the path."""
    clean = {}
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} of {notebook} is not a finite number: {value}")
        clean[name] = value
    path = Path(out_dir) if out_dir is not None else metrics_dir()
    path.mkdir(parents=True, exist_ok=True)
    path = path / f"{notebook}.json"
    old = json.loads(path.read_text())["metrics"] if path.is_file() else {}
    doc = {"notebook": notebook, "metrics": old | clean}
    atomic_write(path, lambda f: f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n"))
    return path


def read_metrics(directory: str | os.PathLike) -> dict[str, dict[str, float]]:
    """{notebook: {metric: value}} from every JSON file in ``directory``."""
    out = {}
    for p in sorted(Path(directory).glob("*.json")):
        doc = json.loads(p.read_text())
        out[doc["notebook"]] = doc["metrics"]
    return out
