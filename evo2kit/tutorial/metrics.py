"""Recording a notebook's metrics so that tests and the runner can read them back.

Each notebook ends with ``record_metrics("03_zero_shot", {"auroc_w2048": 0.71, ...})``, which

- shows the numbers in the notebook as a cell output whose data carries them under the mimetype
  :data:`MIMETYPE`, so an executed notebook carries its own metrics (the pattern of scrapbook's
  ``glue``); :func:`notebook_metrics` reads them back from the ``.ipynb``;
- merges them into the side file ``<dir>/<notebook>.json`` (``{"notebook": ..., "metrics": {...}}``)
  where ``dir`` is ``out_dir`` or ``$EVO2KIT_METRICS_DIR`` (the runner sets it to
  ``build/<profile>/metrics``). Run by hand (neither set), no file is written: nothing lands in
  the notebook's folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from evo2kit.files import atomic_write

MIMETYPE = "application/vnd.evo2kit.metrics+json"


def metrics_dir() -> Path | None:
    """``$EVO2KIT_METRICS_DIR``, or None outside the runner."""
    d = os.environ.get("EVO2KIT_METRICS_DIR")
    return Path(d) if d else None


def record_metrics(notebook: str, metrics: dict[str, float], out_dir: str | os.PathLike | None = None) -> Path | None:
    """Check that every value is a finite number, show ``metrics`` as a cell output (inside a
    kernel) and merge them into ``<out_dir or $EVO2KIT_METRICS_DIR>/<notebook>.json``; returns
    that path, or None when there is no such folder."""
    clean = {}
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} of {notebook} is not a finite number: {value}")
        clean[name] = value
    _show(notebook, clean)
    folder = Path(out_dir) if out_dir is not None else metrics_dir()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    old = json.loads(path.read_text())["metrics"] if path.is_file() else {}
    doc = {"notebook": notebook, "metrics": old | clean}
    atomic_write(path, lambda f: f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n"))
    return path


def _show(notebook: str, metrics: dict[str, float]) -> None:
    """A display output holding the metrics (text for the reader, JSON under MIMETYPE for the
    tests); nothing outside an IPython kernel."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    width = max(map(len, metrics), default=0)
    text = "\n".join(f"{name:<{width}}  {value:.6g}" for name, value in metrics.items())
    display({MIMETYPE: {"notebook": notebook, "metrics": metrics}, "text/plain": text}, raw=True)


def notebook_metrics(ipynb: str | os.PathLike) -> dict[str, dict[str, float]]:
    """{notebook: {metric: value}} from the outputs of an executed notebook (later outputs of the
    same notebook name merged over earlier ones, as in the side file)."""
    doc = json.loads(Path(ipynb).read_text())
    out: dict[str, dict[str, float]] = {}
    for cell in doc.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get(MIMETYPE)
            if data:
                out[data["notebook"]] = out.get(data["notebook"], {}) | data["metrics"]
    return out


def read_metrics(directory: str | os.PathLike) -> dict[str, dict[str, float]]:
    """{notebook: {metric: value}} from every JSON file in ``directory``."""
    out = {}
    for p in sorted(Path(directory).glob("*.json")):
        doc = json.loads(p.read_text())
        out[doc["notebook"]] = doc["metrics"]
    return out
