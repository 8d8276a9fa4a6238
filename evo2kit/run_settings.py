"""A notebook's run settings, resolved once: ``run = evo2kit.settings(device=..., dtype=..., data_dir=...)``.

A notebook's ``parameters`` cell holds strings ("auto", "bfloat16", a folder) or None; this call
turns them into what the library takes (a torch device, a torch dtype, a folder) with the
resolution ``load_model`` uses, and points the data layer at ``data_dir`` for this process,
without writing the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .api import resolve_device, resolve_dtype


@dataclass(frozen=True)
class RunSettings:
    """device: where the model runs; dtype: its dtype, None for the loader's choice (float32 on
    CPU, bfloat16 for published models on CUDA); data_dir: the folder ``evo2kit.data.fetch``
    looks in first (None: none, the cache, then a download)."""

    device: torch.device
    dtype: torch.dtype | None
    data_dir: Path | None


def settings(device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = "auto",
             data_dir: str | Path | None = None) -> RunSettings:
    """Resolve a notebook's ``device`` ("auto" or None: CUDA when present, else CPU; or "cpu",
    "cuda:1", ...), ``dtype`` ("auto" or None, "float32", "bfloat16", "float16") and
    ``data_dir`` (a folder of the datasets; None: ``$EVO2KIT_DATA_DIR`` if set). A given
    ``data_dir`` is used by the data layer from now on in this process, ahead of
    ``$EVO2KIT_DATA_DIR``; None clears an earlier call's."""
    from . import data  # noqa: PLC0415 (here, not at import: `import evo2kit` stays free of pandas and Bio)

    resolved = resolve_device(device), resolve_dtype(dtype)
    data.use_data_dir(data_dir)
    return RunSettings(*resolved, data.data_dir())
