"""Shared fixtures: the real data under $EVO2KIT_DATA_DIR (required, never skipped, when CI is set),
and the smoke runs that test_notebooks.py checks and test_docs.py publishes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evo2kit.data.registry import DATASETS
from evo2kit.tutorial import runner


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


# Two trajectories: what a user gets by default (seed 0, the machine's thread count), and a seed
# that none of the smoke ranges' own runs used, on one thread (another summation order). A range
# that holds for only one trajectory fails here, not on a user's machine.
SMOKE_RUNS = {"seed 0, default threads": ({}, None), "seed 5, 1 thread": ({"seed": 5}, 1)}
# A finished runner folder (e.g. build/smoke) to check instead, when working on the checks themselves.
REUSED_RUN = os.environ.get("EVO2KIT_SMOKE_RUN", "")


def finished_run_status(outdir: Path) -> int:
    """The runner's exit status for a run it wrote earlier: 1 a notebook failed, 2 a metric out of range or missing."""
    summary = json.loads((outdir / "metrics.json").read_text())
    if any(t["status"] != "ok" for t in summary["timings"]):
        return 1
    return 2 if any(r["status"] in ("FAIL", "MISSING") for r in summary["metrics"]) else 0


# Session scope: the smoke profile runs once per trajectory for the whole suite (pytest groups the
# tests of every module by parameter), however many modules check the run.
@pytest.fixture(scope="session", params=[f"reused {REUSED_RUN}"] if REUSED_RUN else list(SMOKE_RUNS))
def smoke_run(request, tmp_path_factory) -> tuple[int, Path]:
    """(runner exit status, the run's folder ``<out>/smoke``) of a smoke run."""
    if REUSED_RUN:
        return finished_run_status(Path(REUSED_RUN)), Path(REUSED_RUN)
    overrides, threads = SMOKE_RUNS[request.param]
    out = tmp_path_factory.mktemp("build")
    status = runner.run("smoke", out=out, overrides=overrides, threads=threads)
    return status, out / "smoke"
