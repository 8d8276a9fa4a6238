"""Shared fixtures: the real data under $EVO2KIT_DATA_DIR (required, never skipped, when CI is set),
and the smoke runs that test_notebooks.py checks and test_docs.py publishes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evo2kit.data.registry import DATASETS


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


# Two trajectories: what a user gets by default (seed 0), and a seed that none of the smoke ranges' own runs
# used (another summation order as well: see below). A range that holds for only one trajectory fails here,
# not on a user's machine. Both run at once, one thread each, in their own runner processes: on 2 cores that
# takes about the time of one run at two threads, and the ranges were measured at both thread counts.
SMOKE_RUNS = {"seed 0": {}, "seed 5": {"seed": 5}}
# A finished runner folder (e.g. build/smoke) to check instead, when working on the checks themselves.
REUSED_RUN = os.environ.get("EVO2KIT_SMOKE_RUN", "")
ROOT = Path(__file__).resolve().parents[1]


def finished_run_status(outdir: Path) -> int:
    """The runner's exit status for a run it wrote earlier: 1 a notebook failed, 2 a metric out of range or missing."""
    summary = json.loads((outdir / "metrics.json").read_text())
    if any(t["status"] != "ok" for t in summary["timings"]):
        return 1
    return 2 if any(r["status"] in ("FAIL", "MISSING") for r in summary["metrics"]) else 0


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> dict[str, tuple[int, Path]]:
    """{trajectory: (runner exit status, the run's folder ``<out>/smoke``)}: every trajectory of
    :data:`SMOKE_RUNS` started at once, each a ``python -m evo2kit.tutorial.runner`` process on one
    thread (its output in ``<out>/runner.log``)."""
    started = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    for name, overrides in SMOKE_RUNS.items():
        out = tmp_path_factory.mktemp("build")
        cmd = [sys.executable, "-m", "evo2kit.tutorial.runner", "--profile", "smoke", "--out", str(out),
               "--threads", "1", *[a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]]
        log = (out / "runner.log").open("w")
        started[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), out, log)
    done = {}
    for name, (proc, out, log) in started.items():
        done[name] = (proc.wait(), out / "smoke")
        log.close()
    return done


# Session scope: the smoke runs happen once for the whole suite (pytest groups the tests of every module
# by parameter), however many modules check them.
@pytest.fixture(scope="session", params=[f"reused {REUSED_RUN}"] if REUSED_RUN else list(SMOKE_RUNS))
def smoke_run(request) -> tuple[int, Path]:
    """(runner exit status, the run's folder ``<out>/smoke``) of a smoke run."""
    if REUSED_RUN:
        return finished_run_status(Path(REUSED_RUN)), Path(REUSED_RUN)
    return request.getfixturevalue("smoke_runs")[request.param]
