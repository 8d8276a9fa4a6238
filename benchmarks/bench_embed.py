"""All-layer embedding sweep: the one-pass engine (``evo2kit.analysis.embeddings.extract``) against the per-layer
loop (one full forward per layer, hooking that layer) and the bare forward (no hooks).

All three run on the same BRCA1 variant windows, in the same length-sorted, padded batches,
interleaved round by round (the order rotating) so that background load hits them alike; the
table gives the median over rounds. Goals: speed-up over the loop >= 0.6 x number of layers,
engine throughput >= 90% of the bare forward's.

    EVO2KIT_DATA_DIR=/path/to/data nice -n 10 .venv/bin/python benchmarks/bench_embed.py  # ~2 min, 2 idle cores
    ... --n-windows 200 --window 8192 --batch-size 8 --rounds 5 --layers pre_norm           # more
"""

from __future__ import annotations

import argparse
import statistics
import time

import conditions
import numpy as np
import torch

import evo2kit
from evo2kit.analysis.embeddings import extract, make_plan
from evo2kit.data.brca1 import brca1_windows, load_brca1


def load() -> tuple[evo2kit.Evo2Model, str]:
    """The bundled model, or (weights absent) the same config with random weights."""
    try:
        return evo2kit.load_model(), "bundled evo2kit-tiny (trained weights)"
    except FileNotFoundError as e:
        from evo2kit.training.train import TINY_CONFIG

        config = dict(TINY_CONFIG.to_dict(), model_name="evo2kit-tiny-random")
        return evo2kit.load_model(config), f"evo2kit-tiny config with RANDOM weights ({e})"


@torch.no_grad()
def bare_forward(model, batches) -> None:
    for ids, _ in batches:
        model.model(ids)


@torch.no_grad()
def per_layer_loop(model, batches, layers) -> dict[str, np.ndarray]:
    """The usual recipe: for each layer, a full forward of every batch returning that layer."""
    out = {}
    for layer in layers:
        rows = []
        for ids, lengths in batches:
            _, emb = model(ids, return_embeddings=True, layer_names=[layer])
            mask = model.tokenizer.attention_mask(lengths, ids.shape[1])[..., None]
            rows.append((emb[layer] * mask).sum(1) / lengths[:, None])
        out[layer] = torch.cat(rows).numpy()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-windows", type=int, default=8, help="distinct variant windows")
    p.add_argument("--window", type=int, default=2048, help="window length (bp)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--layers", choices=["mlp", "pre_norm"], default="mlp",
                   help="blocks.{i}.mlp.l3 or blocks.{i}.pre_norm, every block")
    conditions.add_threads_option(p)
    args = p.parse_args()
    conditions.start(args)

    model, which = load()
    print(f"model: {which}")
    n_blocks = model.config.num_layers
    layers = [f"blocks.{i}.{'mlp.l3' if args.layers == 'mlp' else 'pre_norm'}" for i in range(n_blocks)]
    seqs = brca1_windows(load_brca1(), args.window).var_seqs[: args.n_windows]
    plan = make_plan(seqs, seqs, None, args.batch_size)
    batches = [model.tokenizer.encode_batch([plan.uniq[u] for u in b]) for b in plan.batches]
    order = [plan.rows[u][0] for b in plan.batches for u in b]  # loop rows -> input rows
    n_bp = sum(map(len, seqs))
    print(f"data: {len(seqs)} BRCA1 variant windows of {args.window} bp ({n_bp:,} bp), "
          f"{len(batches)} batches of {args.batch_size}; {len(layers)} layers {layers[0]} .. {layers[-1]}")

    methods = {
        "bare forward (no hooks)": lambda: bare_forward(model, batches),
        "one-pass engine": lambda: extract(model, seqs, layers, "mean", args.batch_size),
        "per-layer loop": lambda: per_layer_loop(model, batches, layers),
    }
    forwards = {"bare forward (no hooks)": 1, "one-pass engine": 1, "per-layer loop": len(layers)}
    bare_forward(model, batches[:1])  # warm-up

    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    results, names = {}, list(methods)
    for r in range(args.rounds):
        for m in names[r % 3:] + names[: r % 3]:
            t, c = time.perf_counter(), time.process_time()
            results[m] = methods[m]()
            wall[m].append(time.perf_counter() - t)
            cpu[m].append(time.process_time() - c)
            print(f"  round {r + 1}/{args.rounds}  {m:<24} wall {wall[m][-1]:8.2f} s  cpu {cpu[m][-1]:8.2f} s",
                  flush=True)
    engine, loop = results["one-pass engine"], results["per-layer loop"]
    err = max(float(np.abs(engine[n][order] - loop[n]).max() / np.abs(loop[n]).max()) for n in layers)
    print(f"engine vs loop features: max difference {err:.1e} (relative to the largest value)")

    print(f"\nmedians over {args.rounds} round(s); cpu = this process's CPU time, which background load "
          "disturbs less than wall time")
    print(f"{'method':<24} {'forwards':>8} {'wall s':>8} {'cpu s':>8} {'kbp/s wall':>11} {'kbp/s cpu':>10}")
    med = {}
    for m in names:
        med[m] = statistics.median(wall[m]), statistics.median(cpu[m])
        print(f"{m:<24} {forwards[m]:>8} {med[m][0]:>8.2f} {med[m][1]:>8.2f} "
              f"{n_bp / med[m][0] / 1e3:>11.1f} {n_bp / med[m][1] / 1e3:>10.1f}")
    goal = 0.6 * len(layers)
    for k, clock in enumerate(["wall", "cpu"]):
        speedup = med["per-layer loop"][k] / med["one-pass engine"][k]
        relative = med["bare forward (no hooks)"][k] / med["one-pass engine"][k]
        print(f"{clock:>4}: speed-up over the per-layer loop {speedup:6.2f}x (goal >= 0.6 x {len(layers)} = "
              f"{goal:.1f}x: {'met' if speedup >= goal else 'NOT met'}); engine throughput / bare forward "
              f"{relative:.3f} (goal >= 0.90: {'met' if relative >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
