"""Measure metric ranges for notebooks/expected_results.yml from many runs of a profile.

    python -m evo2kit.tutorial.expected_ranges --profile smoke --seeds 5 --threads 1,2
    python -m evo2kit.tutorial.expected_ranges --profile cpu --notebooks 01,02,04 --seeds 5 --threads 1,2 --jobs 2
    python -m evo2kit.tutorial.expected_ranges --profile cpu --reuse build/cpu build/ranges/cpu/*/ --write

Each new run is ``python -m evo2kit.tutorial.runner --profile P --set seed=K --threads T`` for every seed K
(FIRST..FIRST+N-1) and thread count T, in its own folder ``OUT/<profile>/seedK-tT``; ``--jobs``
runs that many at once (two one-thread runs fill two cores). The seed drives variant subsets,
bootstrap resamples, generation and probe training; the thread count changes the order in which
PyTorch and BLAS sum, which is what differs between machines. ``--reuse`` counts finished runs
too (any runner output folder: its ``run.json`` says its seed and threads).

The range of a metric is [min - w, max + w] over the runs, widened by w = max(margin * (max - min),
rel_floor * max(|min|, |max|)), AUROCs, their differences and rank correlations (``rho_*``, interval
bounds included) at least ``auroc_floor``, memory figures (``_mb``) 50%. Fixed facts (counts,
parameter totals: ``FACTS``) that agree across all runs are checked exactly (a count that depends on
the seed, such as the distinct windows of a random subset, gets a range like any other metric);
numerical-equality checks are tolerances, not spreads (``BOUNDS``); the self-test of a model with
reference values is judged to the self-test's own tolerance around what the runs gave (``AROUND``).
Timing metrics (names with 'seconds', 'per_s', ending in '_s', speed-ups) depend on the machine, and
``best_layer`` and the figures read at it (``best_layer_*``) on one argmax among near-tied layers:
all are reported, not judged. A lesson's gap (``LESSONS``) keeps its sign. Prints the YAML;
``--write`` puts it into notebooks/expected_results.yml for the notebooks measured, replacing that
profile's ranges and keeping everything else. """

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import yaml

from evo2kit.api import load_model
from evo2kit.checkpoints.self_test import ACCURACY_TOLERANCE, LOSS_TOLERANCE, reference_for
from evo2kit.tutorial import runner
from evo2kit.tutorial.metrics import read_metrics

TIMING = ("seconds", "per_s", "speedup")
UNJUDGED = ("best_layer",)  # the chosen layer and every figure read at it hinge on one argmax among near-ties
FACTS = {  # metric -> what it is: the same in every run, so checked exactly
    "datasets_total": "a count", "datasets_verified": "a count", "tiny_params_millions": "a parameter total",
    "evo2_7b_params_billions": "a parameter total", "evo2_40b_params_billions": "a parameter total",
    "generated_bases": "a count", "n_variants": "a count", "n_layers": "a count", "n_reference_windows": "a count",
    "n_unique_ref_windows": "a count", "n_probe_seeds": "a count", "forwards_ratio": "a ratio of counts",
    "embed_long_longest_ok_bp": "a length", "n_scored": "a count", "n_ref_mismatch_hg19": "a count",
    "n_ref_mismatch_grch38": "a count", "n_bases_differing_hg19_grch38": "a count of bases of the two FASTAs",
    "n_windows_with_build_difference": "a count", "n_train": "a count", "n_test": "a count",
    "n_val": "a count", "n_brca1": "a count", "n_brca1_exonic": "a count", "n_arc": "a count",
    "frozen_trainable_params": "a parameter count", "lora_trainable_params": "a parameter count",
    "full_trainable_params": "a parameter count",
    "n_genes_scored": "a count", "eukaryote_truth_scorable": "a count",
    "n_measured": "a count", "sae_features": "a count", "ecoli_genes": "a count",
}
BOUNDS = {  # metric -> (min, max, why): tolerances and invariants rather than observed spreads
    "chunked_max_abs_diff": (0.0, 1e-4, "a tolerance, not a spread: the exact chunked forward equals the whole one "
                             "to float32 rounding (tests/test_model.py)"),
    "padding_max_abs_diff": (0.0, 1e-4, "a tolerance: padding with masks must not change a sequence's outputs beyond "
                             "float32 rounding"),
    "recipe_max_abs_diff": (0.0, 1e-4, "a tolerance: one pass with hooks equals the per-layer recipe up to float32 "
                            "rounding "
                            "(the two batch the windows differently)"),
    "max_abs_delta_diff_vs_03": (0.0, 1e-6, "a tolerance, not a spread: the reader cuts notebook 03's windows and vep "
                                 "scores them with 03's engine; parts batch some windows with other neighbours, so "
                                 "float32 rounding at most"),
    "max_abs_delta_diff_grch38_same_sequence": (0.0, 1e-6, "a tolerance: windows of the same sequence on GRCh38 and "
                                                "hg19 score the same, float32 rounding at most"),
    **{f"{mode}_adapter_reload_max_diff": (0.0, 1e-6, "a tolerance, not a spread: the adapter file loaded back onto "
                                           "the base model gives the trained classifier's predictions, float32 "
                                           "rounding at most") for mode in ("frozen", "lora", "full")},
    "clip_before_backward_max_change": (0.0, 0.0, "by construction: clip_grad_norm_ before backward() finds no "
                                        "gradient to clip, so the step's gradients are the unclipped ones"),
    "clip_after_backward_norm": (0.9999, 1.0, "by construction: clipped after backward(), the gradient norm is "
                                 "max_norm (1.0), up to float rounding"),
    "stability_max_log_pole_recipe": (-1.0, -9.9e-05, "an invariant: evo2kit's recipe clamps every log-pole at -1e-4 "
                                      "after each step, so the poles stay inside the unit circle"),
    "grouped_test_positions_in_train": (0, 0, "by construction: the grouped split shares no position between train "
                                        "and test"),
}
AROUND = {  # metric -> (half-width, why): where the model has self-test reference values, the self-test's own tolerance
    "self_test_loss": (LOSS_TOLERANCE, "the self-test's tolerance on the mean loss (ArcInstitute/evo2's 1e-3) around "
                       "the values observed, as the model's reference is checked"),
    "self_test_accuracy": (ACCURACY_TOLERANCE, "the self-test's tolerance on the mean accuracy (0.5 points) around the "
                           "values observed, as the model's reference is checked"),
}
LESSONS = {  # metric name prefix -> the sign a notebook's lesson claims: a widened range never crosses zero
    "random_minus_grouped_": "a random split scores above a grouped one (notebook 04's lesson), so the range stays "
                             "above zero whatever the widening",
    **{f"stability_max_log_pole_{r}": "without the clamp the largest log-pole crosses 0, the unit circle (notebook "
                                      "06's lesson), so the range is [0, max]: its size is not the lesson"
       for r in ("none", "global")},
    **{f"emb_minus_{b}_": f"the embeddings' probe scores above the {b} baseline on this test set (notebook 08's "
                          "lesson), so the range stays above zero whatever the widening" for b in ("kmer", "onehot")},
}
EXPECTED = runner.NOTEBOOKS / "expected_results.yml"


def judged(name: str) -> bool:
    return not any(t in name for t in TIMING) and not name.endswith("_s") and not name.startswith(UNJUDGED)


def suggest(values: list[float], name: str, margin: float, rel_floor: float,
            auroc_floor: float) -> tuple[float, float, float]:
    """(min, max, w) for a metric observed as ``values`` over the runs."""
    lo, hi = min(values), max(values)
    floor = 0.5 if "_mb" in name else rel_floor
    w = max(margin * (hi - lo), floor * max(abs(lo), abs(hi)))
    if "auroc" in name or "minus" in name or name.startswith("rho"):  # bootstrap-noisy, on a [-1, 1] scale
        w = max(w, auroc_floor)
    return round(lo - w, 6), round(hi + w, 6), w


def run_info(run_dir: Path) -> dict:
    """Seed and threads of a finished runner output folder (``run.json``; older runs: the seed
    papermill injected, threads unknown)."""
    info = run_dir / "run.json"
    if info.is_file():
        return json.loads(info.read_text())
    seeds = {nbformat.read(p, as_version=4).metadata.get("papermill", {}).get("parameters", {}).get("seed")
             for p in sorted(run_dir.glob("*.ipynb"))}
    seeds.discard(None)
    if len(seeds) != 1:
        raise SystemExit(f"{run_dir}: no run.json, and its notebooks were not all run with one seed ({sorted(seeds)})")
    return {"seed": int(seeds.pop()), "threads": None, "cpu": "unknown"}


def new_run(profile: str, notebooks: str, seed: int, threads: int, out: Path, shared: dict) -> Path:
    """One runner subprocess (its own environment, so runs can go in parallel); returns its output folder."""
    cmd = [sys.executable, "-m", "evo2kit.tutorial.runner", "--profile", profile, "--out", str(out),
           "--set", f"seed={seed}", "--threads", str(threads)] + (["--notebooks", notebooks] if notebooks else [])
    for key, value in shared.items():
        cmd += ["--set", f"{key}={value}"]
    log = out / "runner.log"
    out.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        status = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=os.environ.copy()).returncode
    if status not in (0, 2):  # 2 (out of the current ranges) is what re-measuring them is for
        raise SystemExit(f"seed {seed}, {threads} thread(s): the runner failed (status {status}); see {log}")
    print(f"seed {seed}, {threads} thread(s): done (runner status {status})", file=sys.stderr, flush=True)
    return out / profile


def lane(profile: str, notebooks: str, seeds: list[int], threads: int, root: Path, share: bool) -> list[Path]:
    """The runs of one thread count, one after another. With ``share``, they keep their
    seed-independent results (embedding stores, zero-shot deltas) in one folder per thread count,
    so only the first run computes them; runs of different thread counts never share, and no two
    runs write one store at once."""
    sources = runner.notebook_sources()
    selected = [s for s in sources if not notebooks or any(s.startswith(n) for n in notebooks.split(","))]
    declared = {name for s in selected for name in runner.declared_parameters(runner.read_py_notebook(sources[s]))}
    shared = {k: v for k, v in {"store_root": (root / f"stores-t{threads}").resolve(),
                                "score_cache": (root / f"scores-t{threads}").resolve()}.items()
              if share and k in declared}
    return [new_run(profile, notebooks, seed, threads, root / f"seed{seed}-t{threads}", shared) for seed in seeds]


def describe(infos: list[dict]) -> str:
    seeds = sorted({i["seed"] for i in infos})
    threads = sorted({i["threads"] for i in infos if i["threads"] is not None})
    cpus = sorted({i.get("cpu", "unknown") for i in infos})
    pairs = sorted({(i["seed"], i["threads"]) for i in infos}, key=str)
    if len(pairs) == len(seeds) * max(1, len(threads)):  # every seed with every thread count
        runs = f"seeds {', '.join(map(str, seeds))} x {', '.join(map(str, threads)) or '?'} thread(s)"
    else:
        by_threads = {t: [s for s, u in pairs if u == t] for t in sorted({u for _, u in pairs}, key=str)}
        runs = "; ".join(f"seed(s) {', '.join(map(str, s))} at {t if t is not None else '?'} thread(s)"
                         for t, s in by_threads.items())
    return f"{len(infos)} runs here: {runs}, on {'; '.join(cpus)}"


def ranges(runs: list[dict], infos: list[dict], profile: str, model: str, args) -> dict:
    """{stem: {profile: {model: {metric: {min, max, provenance}}}}} from the runs' metrics."""
    sha = load_model().weights_sha256[:12] if model == runner.DEFAULT_MODEL else None
    out: dict = {}
    for stem in sorted({s for r in runs for s in r}):
        found = [i for i, r in enumerate(runs) if stem in r]
        where = describe([infos[i] for i in found]) + (f", {model} sha256 {sha}..." if sha else "")
        if args.seeds and not args.no_share:
            where += " (embeddings and zero-shot deltas, which no seed changes, computed once per thread count)"
        for name in sorted({m for i in found for m in runs[i][stem] if judged(m)}):
            values = [runs[i][stem][name] for i in found if name in runs[i][stem]]
            if len(values) < len(found):
                raise SystemExit(f"{stem}:{name} was recorded by {len(values)} of {len(found)} runs")
            spread = f"observed [{min(values):.4g}, {max(values):.4g}], mean {statistics.mean(values):.4g}" + (
                f", sd {statistics.stdev(values):.2g}" if len(values) > 1 else "")
            if name in BOUNDS:
                lo, hi, why = BOUNDS[name]
                prov = f"{why}; {spread} in {where}"
            elif name in AROUND and reference_for(model) is not None:
                w, why = AROUND[name]
                lo, hi = round(min(values) - w, 6), round(max(values) + w, 6)
                prov = f"{why}; {spread} in {where}"
            elif name in FACTS and len(set(values)) == 1:
                lo = hi = values[0]
                prov = f"{FACTS[name]}, checked exactly; the same in all {where}"
            else:
                lo, hi, w = suggest(values, name, args.margin, args.rel_floor, args.auroc_floor)
                prov = f"{where}; {spread}; widened by {w:.3g}"
                lesson = next((why for prefix, why in LESSONS.items() if name.startswith(prefix)), None)
                if lesson and min(values) > 0:  # the lesson is the sign: judged within [0, widened max]
                    lo = 0.0
                    prov += f"; {lesson}"
                elif lesson:  # recorded as the spread it had; its sign is not the notebook's to claim
                    prov += "; a lesson's gap whose sign did not hold in every run: its spread, not its sign, is judged"
            prov += f"; {args.note}" if args.note else ""
            entry = {"min": lo, "max": hi, "provenance": prov}
            out.setdefault(stem, {profile: {model: {}}})[profile][model][name] = entry
    return out


def write_expected(suggested: dict, profile: str, model: str, path: Path = EXPECTED) -> None:
    """Replace ``profile``/``model`` ranges of the measured notebooks in ``path``, keeping the file's
    header comment and everything else."""
    text = path.read_text()
    lines = text.splitlines()
    header = "\n".join(lines[:next(i for i, line in enumerate(lines + [""]) if not line.startswith("#"))])
    doc = yaml.safe_load(text) or {}
    for stem, by_profile in suggested.items():
        doc.setdefault(stem, {}).setdefault(profile, {})[model] = by_profile[profile][model]
    body = yaml.safe_dump(dict(sorted(doc.items())), sort_keys=False, width=120)
    path.write_text(header.rstrip("\n") + "\n\n" + body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--notebooks", default="", help="comma-separated prefixes (default: all)")
    ap.add_argument("--seeds", type=int, default=5, help="number of seeds for new runs: FIRST..FIRST+N-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--threads", default="1,2", help="thread counts; every seed runs with each")
    ap.add_argument("--jobs", type=int, default=1, help="thread counts run at once, each in its own lane of runs")
    ap.add_argument("--no-share", action="store_true",
                    help="recompute embeddings and zero-shot deltas in every run (default: once per thread count)")
    ap.add_argument("--reuse", nargs="*", default=[], metavar="DIR",
                    help="finished runner output folders of the profile to count as well (e.g. build/cpu); "
                    "with --notebooks, only those notebooks' metrics are read from them")
    ap.add_argument("--margin", type=float, default=0.5, help="widen by this fraction of the spread")
    ap.add_argument("--rel-floor", type=float, default=0.05, help="widen at least by this fraction of |value|")
    ap.add_argument("--auroc-floor", type=float, default=0.1, help="widen AUROCs at least by this much")
    ap.add_argument("--out", default="build/ranges")
    ap.add_argument("--note", default="", help="appended to each provenance")
    ap.add_argument("--write", action="store_true", help="write the ranges into notebooks/expected_results.yml")
    args = ap.parse_args()

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    threads = [int(t) for t in args.threads.split(",") if t] if seeds else []
    root = Path(args.out) / args.profile
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        lanes = pool.map(lambda t: lane(args.profile, args.notebooks, seeds, t, root, not args.no_share), threads)
        dirs = list(map(Path, args.reuse)) + [d for done in lanes for d in done]
    infos = [run_info(d) for d in dirs]
    runs = [read_metrics(d / "metrics") for d in dirs]
    if args.notebooks:  # a reused run may hold other notebooks too: keep the ones asked for
        prefixes = tuple(args.notebooks.split(","))
        runs = [{nb: m for nb, m in run.items() if nb.startswith(prefixes)} for run in runs]
    # metrics.json is written when a run ends; a run stopped after its last notebook needed here has none
    models = {row["model"] for d in dirs if (d / "metrics.json").exists()
              for row in json.loads((d / "metrics.json").read_text())["metrics"]}
    if {i.get("profile", args.profile) for i in infos} != {args.profile}:
        found = sorted({str(i.get("profile")) for i in infos})
        raise SystemExit(f"the runs are not all of profile {args.profile}: {found}")
    if len(models) != 1:
        raise SystemExit(f"the runs used different models: {sorted(models)}")
    model = models.pop()
    suggested = ranges(runs, infos, args.profile, model, args)
    print(yaml.safe_dump(suggested, sort_keys=False, width=120))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"{args.profile}.json").write_text(json.dumps({"runs": [str(d) for d in dirs], "infos": infos,
                                                                   "ranges": suggested}, indent=2))
    if args.write:
        write_expected(suggested, args.profile, model)
        print(f"wrote {len(suggested)} notebook(s) of profile {args.profile} into {EXPECTED}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
