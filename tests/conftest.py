"""Shared fixtures: the real data under $EVO2KIT_DATA_DIR (required, never skipped, when CI is set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evo2kit.data import DATASETS


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The directory of the real data files; skips locally, fails under CI, when any is missing."""
    root = os.environ.get("EVO2KIT_DATA_DIR")
    missing = ([] if root else ["(EVO2KIT_DATA_DIR is not set)"]) + [
        ds.filename for ds in DATASETS.values() if root and not (Path(root) / ds.filename).is_file()
    ]
    if missing:
        msg = f"real data missing under EVO2KIT_DATA_DIR={root!r}: {missing}"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(msg + " (required when CI is set)")
        pytest.skip(msg)
    return Path(root)
