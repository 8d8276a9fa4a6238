"""Whole-window against prefix-shared variant passes (``evo2kit.analysis.prefix``), side by side: zero-shot
deltas (``zero_shot.delta_likelihood``) and all-layer embeddings (``embed.variant_features``)
of the same BRCA1 variants.

The subset is every variant at ``--n-positions`` randomly drawn variant positions, so that, as in
the whole table, up to three SNVs share each reference window. Each case runs once per round,
the order rotating round by round so that background load hits them alike; the table gives
tokens forwarded (counted by a hook on the model, padding included), the median wall and CPU
time over rounds, and the largest difference between the two methods' results. Goals:
tokens ratio <= 0.65, wall ratio <= 0.70, difference <= 1e-5.

    EVO2KIT_DATA_DIR=/path/to/data nice -n 10 .venv/bin/python benchmarks/bench_variants.py  # ~3 min, 2 idle cores
    ... --n-positions 100 --zero-shot-window 8192 --embed-window 2048 --rounds 5               # more
"""

from __future__ import annotations

import argparse
import statistics
import time

import conditions
import numpy as np
import torch

import evo2kit
from evo2kit.analysis import prefix
from evo2kit.analysis.embeddings import variant_features
from evo2kit.analysis.zero_shot import delta_likelihood
from evo2kit.data.brca1 import brca1_windows, load_brca1


def load() -> tuple[evo2kit.Evo2Model, str]:
    """The bundled model, or (weights absent) the same config with random weights."""
    try:
        return evo2kit.load_model(device="cpu"), "bundled evo2kit-tiny (trained weights)"
    except FileNotFoundError as e:
        from evo2kit.training.train import TINY_CONFIG

        config = dict(TINY_CONFIG.to_dict(), model_name="evo2kit-tiny-random")
        return evo2kit.load_model(config, device="cpu"), f"evo2kit-tiny config with RANDOM weights ({e})"


def max_difference(a, b) -> float:
    """Largest |a - b| over deltas (arrays) or features ({layer: {"ref", "var"}})."""
    if isinstance(a, dict):
        return max(max_difference(a[k][s], b[k][s]) for k in a for s in ("ref", "var"))
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-positions", type=int, default=30, help="variant positions drawn (all their SNVs kept)")
    p.add_argument("--zero-shot-window", type=int, default=2048, help="bp (notebook 03's cpu profile: 2,048)")
    p.add_argument("--embed-window", type=int, default=512, help="bp (notebooks 02/04's cpu profile: 512)")
    p.add_argument("--pooling", default="mean", help="embedding pooling (the tutorial store's: mean)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--seed", type=int, default=0)
    conditions.add_threads_option(p)
    args = p.parse_args()
    conditions.start(args)

    model, which = load()
    table = load_brca1()
    rng = np.random.default_rng(args.seed)
    positions = rng.choice(table["pos"].unique(), size=min(args.n_positions, table["pos"].nunique()), replace=False)
    df = table[table["pos"].isin(positions)]
    zw, ew = brca1_windows(df, args.zero_shot_window), brca1_windows(df, args.embed_window)
    layers = model.layer_names
    bs = args.batch_size
    print(f"model: {which}; {len(df)} BRCA1 SNVs at {len(positions)} positions: {len(zw.ref_seqs)} reference windows "
          f"of {args.zero_shot_window:,} bp (zero-shot), {len(ew.ref_seqs)} of {args.embed_window:,} bp "
          f"({len(layers)} layers, {args.pooling} pooling); batch size {bs}")

    cases = {
        ("zero-shot", "whole"): lambda: delta_likelihood(model, *zw, bs, shared_prefix=False),
        ("zero-shot", "shared"): lambda: delta_likelihood(model, *zw, bs),
        ("embeddings", "whole"): lambda: variant_features(model, ew, layers, args.pooling, batch_size=bs,
                                                           shared_prefix=False),
        ("embeddings", "shared"): lambda: variant_features(model, ew, layers, args.pooling, batch_size=bs),
    }
    names = list(cases)
    tokens, wall, cpu, results = {}, {c: [] for c in names}, {c: [] for c in names}, {}
    with torch.no_grad():
        model.model(torch.tensor([model.tokenizer.tokenize("ACGT" * 64)]))  # warm-up
    for r in range(args.rounds):
        for c in names[r % len(names):] + names[:r % len(names)]:
            with prefix.counting_tokens(model) as seen:
                t, t_cpu = time.perf_counter(), time.process_time()
                results[c] = cases[c]()
                wall[c].append(time.perf_counter() - t)
                cpu[c].append(time.process_time() - t_cpu)
            tokens[c] = seen["tokens"]
            print(f"  round {r + 1}/{args.rounds}  {c[0]:<10} {c[1]:<6} wall {wall[c][-1]:8.2f} s  "
                  f"cpu {cpu[c][-1]:8.2f} s  tokens {tokens[c]:>10,}", flush=True)

    print(f"\nmedians over {args.rounds} round(s); cpu = this process's CPU time, which background load "
          "disturbs less than wall time")
    print(f"{'task':<11} {'tokens whole':>13} {'shared':>11} {'ratio':>6} {'wall whole':>11} {'shared':>8} "
          f"{'ratio':>6} {'cpu ratio':>9} {'max diff':>9}")
    verdicts = []
    for task in ("zero-shot", "embeddings"):
        w, s = (task, "whole"), (task, "shared")
        t_ratio = tokens[s] / tokens[w]
        wall_w, wall_s = statistics.median(wall[w]), statistics.median(wall[s])
        cpu_ratio = statistics.median(cpu[s]) / statistics.median(cpu[w])
        diff = max_difference(results[s], results[w])
        print(f"{task:<11} {tokens[w]:>13,} {tokens[s]:>11,} {t_ratio:>6.3f} {wall_w:>10.2f}s {wall_s:>7.2f}s "
              f"{wall_s / wall_w:>6.3f} {cpu_ratio:>9.3f} {diff:>9.1e}")
        verdicts += [(f"{task} tokens ratio", t_ratio, 0.65), (f"{task} wall ratio", wall_s / wall_w, 0.70),
                     (f"{task} max difference", diff, 1e-5)]
    for what, value, goal in verdicts:
        print(f"{what:<26} {value:9.3g}  (goal <= {goal:g}: {'met' if value <= goal else 'NOT met'})")


if __name__ == "__main__":
    main()
