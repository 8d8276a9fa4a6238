"""Suggest metric ranges for notebooks/expected_results.yml from N runs of a profile.

    python benchmarks/expected_ranges.py --seeds 3                 # smoke profile, seeds 0, 1, 2
    python benchmarks/expected_ranges.py --seeds 3 --profile cpu --notebooks 03
    python benchmarks/expected_ranges.py --profile cpu --reuse build/cpu --seeds 2 --first-seed 1

``--reuse`` counts finished runs of the profile (e.g. ``make tutorial``'s build/cpu) among the
runs, each with the seed papermill injected into its notebooks, so a long profile is not run
again for seed 0.

Each run is `evo2kit.runner` with `--set seed=K` (the seed drives variant subsets, bootstrap
resamples, generation and probe training), written to build/ranges/seedK. The suggested range
of a metric is [min - w, max + w] over the runs, widened by
w = max(margin * (max - min), rel_floor * max(|min|, |max|)), so that a metric whose runs
happened to agree still gets some room; AUROCs and their differences get at least
``auroc_floor`` (the smoke subsets are 120-200 SNVs), memory figures (``_mb``) 50%.
Numerical-equality checks are tolerances, not spreads (``BOUNDS``). Timing metrics (names
with 'seconds', 'per_s', ending in '_s', speed-ups) depend on the machine and ``best_layer``
on near-ties between layers: both are left out. Prints YAML to paste under each notebook's profile.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
import yaml

from evo2kit import runner
from evo2kit.api import load_model
from evo2kit.metrics import read_metrics

TIMING = ("seconds", "per_s", "speedup")
UNJUDGED = ("best_layer",)
BOUNDS = {  # metric -> (min, max, why): tolerances and invariants rather than observed spreads
    "chunked_max_abs_diff": (0.0, 1e-4, "a tolerance, not a spread: the exact chunked forward equals the whole one "
                             "to float32 rounding (tests/test_model.py)"),
    "padding_max_abs_diff": (0.0, 1e-4, "a tolerance: padding with masks must not change a sequence's outputs beyond "
                             "float32 rounding"),
    "recipe_max_abs_diff": (0.0, 1e-4, "a tolerance: one pass with hooks equals the per-layer recipe up to float32 rounding "
                            "(the two batch the windows differently)"),
    "grouped_test_positions_in_train": (0, 0, "by construction: the grouped split shares no position between train and test"),
}


def suggest(values: list[float], name: str, margin: float, rel_floor: float, auroc_floor: float) -> tuple[float, float, float]:
    """(min, max, w) for a metric observed as ``values`` over the runs."""
    lo, hi = min(values), max(values)
    floor = 0.5 if "_mb" in name else rel_floor
    w = max(margin * (hi - lo), floor * max(abs(lo), abs(hi)))
    if "auroc" in name or "minus" in name:
        w = max(w, auroc_floor)
    return round(lo - w, 6), round(hi + w, 6), w


def injected_seed(run_dir: Path) -> int:
    """The seed papermill injected into the executed notebooks of a finished runner output folder."""
    seeds = {nbformat.read(p, as_version=4).metadata.get("papermill", {}).get("parameters", {}).get("seed")
             for p in sorted(run_dir.glob("*.ipynb"))}
    seeds.discard(None)
    if len(seeds) != 1:
        raise SystemExit(f"{run_dir}: expected executed notebooks all run with one seed, found {sorted(seeds) or 'none'}")
    return int(seeds.pop())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="number of new runs, seeds FIRST..FIRST+N-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--reuse", nargs="*", default=[], metavar="DIR",
                    help="finished runs of the profile to count too (a runner output folder, e.g. build/cpu)")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--notebooks", default="", help="comma-separated prefixes (default: all)")
    ap.add_argument("--margin", type=float, default=0.5, help="widen by this fraction of the spread")
    ap.add_argument("--rel-floor", type=float, default=0.05, help="widen at least by this fraction of |value|")
    ap.add_argument("--auroc-floor", type=float, default=0.1, help="widen AUROCs at least by this much")
    ap.add_argument("--out", default="build/ranges")
    ap.add_argument("--note", default="", help="appended to each provenance, e.g. 'provisional weights, re-measure'")
    args = ap.parse_args()

    sha = load_model().weights_sha256[:12]
    runs, run_seeds = [], []
    for done in map(Path, args.reuse):
        runs.append(read_metrics(done / "metrics"))
        run_seeds.append(injected_seed(done))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        out = Path(args.out) / f"seed{seed}"
        notebooks = [n for n in args.notebooks.split(",") if n] or None
        status = runner.run(args.profile, notebooks, out, {"seed": seed})
        if status == 1:
            print(f"seed {seed}: a notebook failed; see {out / args.profile}", file=sys.stderr)
            return 1
        runs.append(read_metrics(out / args.profile / "metrics"))
        run_seeds.append(seed)

    suggested: dict = {}
    for stem in sorted({s for r in runs for s in r}):
        names = sorted({m for r in runs for m in r.get(stem, {})
                        if not any(t in m for t in TIMING) and not m.endswith("_s") and m not in UNJUDGED})
        for name in names:
            found = [i for i, r in enumerate(runs) if name in r.get(stem, {})]
            values = [runs[i][stem][name] for i in found]
            seeds = [run_seeds[i] for i in found]
            observed = f"{len(values)} {args.profile} run(s) here (seed {', '.join(map(str, seeds))})"
            if name in BOUNDS:
                lo, hi, why = BOUNDS[name]
                prov = f"{why}; observed {', '.join(f'{v:.3g}' for v in values)} in {observed}"
            else:
                lo, hi, w = suggest(values, name, args.margin, args.rel_floor, args.auroc_floor)
                prov = (f"{observed}, evo2kit-tiny sha256 {sha}..., observed [{min(values):.4g}, {max(values):.4g}], "
                        f"widened by {w:.3g}")
            prov += f"; {args.note}" if args.note else ""
            suggested.setdefault(stem, {args.profile: {"evo2kit-tiny": {}}})[args.profile]["evo2kit-tiny"][name] = {
                "min": lo, "max": hi, "provenance": prov}
    print(yaml.safe_dump(suggested, sort_keys=False, width=200))
    Path(args.out, "suggested.json").write_text(json.dumps(suggested, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
