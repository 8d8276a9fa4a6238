"""Suggest metric ranges for notebooks/expected_results.yml from N runs of a profile.

    python benchmarks/expected_ranges.py --seeds 3                 # smoke profile, seeds 0, 1, 2
    python benchmarks/expected_ranges.py --seeds 3 --profile cpu --notebooks 03

Each run is `evo2kit.runner` with `--set seed=K` (the seed drives variant subsets, bootstrap
resamples, generation and probe training), written to build/ranges/seedK. The suggested range
of a metric is [min - w, max + w] over the runs, widened by
w = max(margin * (max - min), rel_floor * max(|min|, |max|)), so that a metric whose runs
happened to agree still gets some room. Timing metrics (names with 'seconds' or 'per_s')
depend on the machine and are left out. Prints YAML to paste under each notebook's profile.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from evo2kit import runner
from evo2kit.api import load_model
from evo2kit.metrics import read_metrics

TIMING = ("seconds", "per_s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="number of runs, seeds 0..N-1")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--notebooks", default="", help="comma-separated prefixes (default: all)")
    ap.add_argument("--margin", type=float, default=0.5, help="widen by this fraction of the spread")
    ap.add_argument("--rel-floor", type=float, default=0.05, help="widen at least by this fraction of |value|")
    ap.add_argument("--out", default="build/ranges")
    ap.add_argument("--note", default="", help="appended to each provenance, e.g. 'provisional weights, re-measure'")
    args = ap.parse_args()

    sha = load_model().weights_sha256[:12]
    runs = []
    for seed in range(args.seeds):
        out = Path(args.out) / f"seed{seed}"
        notebooks = [n for n in args.notebooks.split(",") if n] or None
        status = runner.run(args.profile, notebooks, out, {"seed": seed})
        if status == 1:
            print(f"seed {seed}: a notebook failed; see {out / args.profile}", file=sys.stderr)
            return 1
        runs.append(read_metrics(out / args.profile / "metrics"))

    suggested: dict = {}
    for stem in sorted({s for r in runs for s in r}):
        names = sorted({m for r in runs for m in r.get(stem, {}) if not any(t in m for t in TIMING)})
        for name in names:
            values = [r[stem][name] for r in runs if name in r.get(stem, {})]
            lo, hi = min(values), max(values)
            w = max(args.margin * (hi - lo), args.rel_floor * max(abs(lo), abs(hi)))
            prov = (f"{len(values)} {args.profile} runs (seeds 0-{args.seeds - 1}), evo2kit-tiny weights sha256 {sha}..., "
                    f"observed [{lo:.4g}, {hi:.4g}], widened by {w:.3g}" + (f"; {args.note}" if args.note else ""))
            suggested.setdefault(stem, {args.profile: {"evo2kit-tiny": {}}})[args.profile]["evo2kit-tiny"][name] = {
                "min": round(lo - w, 6), "max": round(hi + w, 6), "provenance": prov}
    print(yaml.safe_dump(suggested, sort_keys=False, width=200))
    Path(args.out, "suggested.json").write_text(json.dumps(suggested, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
