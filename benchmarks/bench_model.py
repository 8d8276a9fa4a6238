"""Forward throughput (tokens/s) of evo2kit's StripedHyena2 against the official Evo 2 code
(vortex, run on CPU by evo2kit/model/vortex_reference.py), side by side in one run.

Both models get the same random weights in the official checkpoint layout and the same
input (batch 1, float32, ``torch.inference_mode``). Each timed round runs evo2kit then
vortex (alternating which goes first), so background load hits both alike; the table gives
the median over rounds, after one untimed-for-the-median first call ("first s" column: the
first call pays one-off costs such as evo2kit's cached HCL filter of that length). The
"max rel diff" column checks both computed the same logits: max|ours - ref| / max|ref|.
Goal: ratio (evo2kit tokens/s / vortex tokens/s) >= 1.

Configs: the small all-kinds config (``vortex_ref.official_config``: HCS, HCM, HCL,
attention, HCS; hidden 64), the real 7B layer shapes cut to 4 blocks (hidden 4096;
HCS, HCM, HCL, attention) and the bundled model (evo2kit alone: vortex cannot load our
safetensors). The 7B shape stops at 2,048 tokens by default: one 8,192-token forward takes
about a minute per model on 2 cores (``--lengths-7b 1024 4096 8192`` to run it anyway).

    nice -n 10 .venv/bin/python benchmarks/bench_model.py               # ~8 min on 2 idle cores
    nice -n 10 .venv/bin/python benchmarks/bench_model.py --rounds 5 --lengths-7b 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # vortex's progress bar while it builds blocks

import conditions  # noqa: E402
import torch  # noqa: E402 (tqdm, imported by torch, reads TQDM_DISABLE once)

import evo2kit  # noqa: E402
from evo2kit.checkpoints.official import load_official_state_dict  # noqa: E402
from evo2kit.model import vortex_reference as vr
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2  # noqa: E402


@torch.inference_mode()
def timed(fn, ids: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(seconds, logits) of one forward. Models are built outside inference mode: evo2kit's
    HCL filter cache reads parameter version counters, which inference tensors lack."""
    t0 = time.perf_counter()
    out = fn(ids)
    return time.perf_counter() - t0, out


def pair_rows(label: str, cfg: dict, lengths: list[int], rounds: int) -> list[dict]:
    """Build both models on one random official state dict; time them at each length."""
    sd = vr.random_official_state_dict(cfg, seed=0)
    ref = vr.build_reference(cfg, sd)
    ours = StripedHyena2(Evo2Config.from_dict(cfg)).eval()
    load_official_state_dict(ours, sd)
    del sd
    fns = {"ours": ours, "ref": lambda ids: ref(ids)[0]}
    rows = []
    for L in lengths:
        ids = vr.dna_token_ids(L, seed=L)
        first, logits = {}, {}
        for name, fn in fns.items():
            first[name], logits[name] = timed(fn, ids)
        diff = float((logits["ours"] - logits["ref"]).abs().max() / logits["ref"].abs().max())
        del logits
        times = {"ours": [], "ref": []}
        for r in range(rounds):
            for name in (("ours", "ref") if r % 2 == 0 else ("ref", "ours")):
                times[name].append(timed(fns[name], ids)[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(dict(config=label, L=L, ours=L / med["ours"], ref=L / med["ref"],
                         ratio=med["ref"] / med["ours"], first=f"{first['ours']:.2f}/{first['ref']:.2f}",
                         diff=f"{diff:.1e}"))
        print(f"  done: {label} L={L}", file=sys.stderr, flush=True)
    return rows


def bundled_rows(lengths: list[int], rounds: int) -> tuple[list[dict], str]:
    """evo2kit alone on the bundled model, or on its config with random weights if absent."""
    try:
        model, label = evo2kit.load_model(device="cpu").model, "bundled evo2kit-tiny"
    except FileNotFoundError as e:
        from evo2kit.training.train import TINY_CONFIG

        model, label = StripedHyena2(TINY_CONFIG).init_weights(0).eval(), "evo2kit-tiny config, RANDOM weights"
        print(f"note: bundled weights not found ({e}); timing TINY_CONFIG with random weights", flush=True)
    rows = []
    for L in lengths:
        ids = vr.dna_token_ids(L, seed=L)
        first, _ = timed(model, ids)
        med = statistics.median(timed(model, ids)[0] for _ in range(rounds))
        rows.append(dict(config=label, L=L, ours=L / med, ref=None, ratio=None, first=f"{first:.2f}/-", diff="-"))
        print(f"  done: {label} L={L}", file=sys.stderr, flush=True)
    return rows, label


def print_table(rows: list[dict]) -> None:
    head = (f"{'config':<36} {'L':>6} {'evo2kit tok/s':>14} {'vortex tok/s':>13} {'ratio':>6} "
            f"{'first s (ours/ref)':>19} {'max rel diff':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ref = f"{r['ref']:13,.0f}" if r["ref"] is not None else f"{'-':>13}"
        ratio = f"{r['ratio']:6.2f}" if r["ratio"] is not None else f"{'-':>6}"
        print(f"{r['config']:<36} {r['L']:>6,} {r['ours']:14,.0f} {ref} {ratio} {r['first']:>19} {r['diff']:>12}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per length (median)")
    p.add_argument("--lengths-small", type=int, nargs="+", default=[1024, 4096, 8192])
    p.add_argument("--lengths-7b", type=int, nargs="*", default=[1024, 2048], help="none: skip the 7B shape")
    p.add_argument("--lengths-bundled", type=int, nargs="+", default=[1024, 2048, 8192])
    args = p.parse_args(argv)

    conditions.start(settings=f"float32, batch 1, median of {args.rounds} interleaved rounds")
    rows = pair_rows("small all-kinds (d=64, 5 blocks)", vr.official_config(), args.lengths_small, args.rounds)
    if args.lengths_7b:
        cfg = vr.load_yaml_config("evo2-7b-8k", num_layers=4)
        rows += pair_rows("7B shape, 4 blocks (d=4096)", cfg, args.lengths_7b, args.rounds)
    rows += bundled_rows(args.lengths_bundled, args.rounds)[0]
    print_table(rows)
    paired = [r["ratio"] for r in rows if r["ratio"] is not None]
    print(f"\nratio = evo2kit tok/s / vortex tok/s (goal >= 1): min {min(paired):.2f}, "
          f"median {statistics.median(paired):.2f}; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
