"""FP8 input projections emulated on CPU against the same projections in bf16 and fp32, and host
memory when loading an official-layout checkpoint.

Part 1, speed and accuracy: the 1B's input projections (hidden 1,920 -> 5,760, no bias) of a
few blocks, each applied to the same normalised input of a few thousand tokens. Three ways:
``fp32`` (nn.Linear, float32 weights and input), ``bf16`` (nn.Linear, bfloat16) and ``fp8``
(evo2kit's ``FP8Linear``, exact emulation, bfloat16 weights and input as in a bf16 model; scales
as Transformer Engine's delayed scaling sets them: 448 / amax). Each round times the three in a
rotating order; the table gives the median. ``max rel diff`` = max|y - y_fp32| / max|y_fp32|.
The first call (FP8: it also rounds and keeps the weights) is shown apart; wall and CPU
seconds both (CPU seconds are the fairer figure on a machine shared with other work).
Goal: fp8 / bf16 time ratio <= 1.5.

Part 2, memory: a 1B-shaped checkpoint cut to its first blocks, written in bf16 in the official
layout (with TE FP8 metadata), loaded by ``evo2kit.load_model(..., dtype=bfloat16)`` in a fresh
process, every weight touched; peak RSS (VmHWM) minus the RSS after ``import torch, evo2kit``,
over the file size. Goal <= 1.2. The memory-mapped checkpoint's pages count in RSS once; the
rest is anonymous memory, of which the cost of loading any checkpoint (measured on a tiny one)
is printed apart, as tests/checkpoints/test_official.py sets it apart for its 7B-shaped cut.

    nice -n 10 .venv/bin/python benchmarks/bench_fp8.py            # ~1-2 min on 2 idle cores
    nice -n 10 .venv/bin/python benchmarks/bench_fp8.py --tokens 2048 --blocks 2 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

import conditions
import torch

from evo2kit.model import vortex_reference as vr
from evo2kit.model.fp8 import E4M3_MAX, FP8Linear
from evo2kit.tutorial.resources import load_peak_bytes

HIDDEN = 1920  # the 1B's width



def projections(n: int, seed: int = 0) -> dict[str, list[torch.nn.Module]]:
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(3 * HIDDEN, HIDDEN, generator=g) / HIDDEN ** 0.5 for _ in range(n)]
    out: dict[str, list[torch.nn.Module]] = {"fp32": [], "bf16": [], "fp8": []}
    for w in weights:
        for name, cls, dtype in (("fp32", torch.nn.Linear, torch.float32), ("bf16", torch.nn.Linear, torch.bfloat16),
                                 ("fp8", FP8Linear, torch.bfloat16)):
            lin = cls(HIDDEN, 3 * HIDDEN, bias=False)
            lin.weight.data = w.to(dtype)
            out[name].append(lin.eval())
    return out


@torch.inference_mode()
def speed_rows(tokens: int, blocks: int, rounds: int) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    x32 = torch.randn(1, tokens, HIDDEN, generator=g)  # an RMS-normalised input: unit scale
    mods = projections(blocks)
    for lin in mods["fp8"]:  # TE delayed scaling: scale = fp8_max / amax (margin 0)
        lin.set_scales(E4M3_MAX / float(x32.abs().max()), E4M3_MAX / float(lin.weight.float().abs().max()))
    inputs = {"fp32": x32, "bf16": x32.bfloat16(), "fp8": x32.bfloat16()}
    run = lambda name: [lin(inputs[name]) for lin in mods[name]]  # noqa: E731
    wall: dict[str, list[float]] = {k: [] for k in mods}
    cpu: dict[str, list[float]] = {k: [] for k in mods}
    first = {}
    outs = {}
    for name in mods:  # the first call (FP8: rounds and keeps the weights) is timed apart
        t0 = time.perf_counter()
        outs[name] = run(name)
        first[name] = time.perf_counter() - t0
    order = list(mods)
    for r in range(rounds):
        for name in order[r % 3:] + order[:r % 3]:
            t0, c0 = time.perf_counter(), time.process_time()
            run(name)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ref = torch.cat([y.float() for y in outs["fp32"]])
    rows = []
    for name in mods:
        diff = float((torch.cat([y.float() for y in outs[name]]) - ref).abs().max() / ref.abs().max())
        rows.append({"mode": name, "first s": first[name], "median s": statistics.median(wall[name]),
                     "median cpu s": statistics.median(cpu[name]), "max rel diff": diff})
    for row in rows:
        row["x bf16 time"] = row["median s"] / rows[1]["median s"]
        row["x bf16 cpu"] = row["median cpu s"] / rows[1]["median cpu s"]
    return rows


def te_blob(scales: list[float]) -> io.BytesIO:
    """FP8 metadata as Transformer Engine 1.x writes it (``get_extra_state``)."""
    buf = io.BytesIO()
    torch.save({"scale_fwd": torch.tensor(scales), "scale_inv_fwd": 1 / torch.tensor(scales),
                "amax_history_fwd": torch.ones(16, 3), "extra_fp8_variables": {"num_gemms": 1}}, buf)
    buf.seek(0)
    return buf


def memory_row(blocks: int) -> dict:
    import yaml

    cfg = vr.load_yaml_config("evo2-1b-8k", num_layers=blocks, use_fp8_input_projections=True)
    sd = vr.random_official_state_dict(cfg, seed=0, dtype=torch.bfloat16)
    for k in sd:
        if k.endswith("projections._extra_state"):
            sd[k] = te_blob([100.0, 1000.0, 1.0])
    small_cfg = vr.official_config()  # hidden 64: what loading costs whatever the file
    small_sd = vr.random_official_state_dict(small_cfg, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        sizes, loads = {}, {}
        for name, c, d in (("small", small_cfg, small_sd), ("cut", cfg, sd)):
            yml, pt = os.path.join(tmp, f"{name}.yml"), os.path.join(tmp, f"{name}.pt")
            with open(yml, "w") as f:
                yaml.safe_dump(c, f)
            torch.save(d, pt)
            sizes[name] = os.path.getsize(pt)
            loads[name] = load_peak_bytes(yml, pt, detail=True)
        del sd
    peak, size = loads["cut"]["peak_minus_base"], sizes["cut"]
    return {"blocks": blocks, "file MiB": size / 2**20, "peak - base MiB": peak / 2**20, "peak / file": peak / size,
            "file pages MiB": loads["cut"]["file"] / 2**20, "anonymous MiB": loads["cut"]["anon"] / 2**20,
            "any load MiB": loads["small"]["peak_minus_base"] / 2**20, "small file KiB": sizes["small"] / 2**10}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--blocks", type=int, default=3, help="projection layers timed per round")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (0: skip the speed part)")
    p.add_argument("--memory-blocks", type=int, default=8, help="1B blocks in the memory checkpoint (0: skip)")
    args = p.parse_args()
    conditions.start()
    print(f"\nprojections {HIDDEN} -> {3 * HIDDEN}, {args.blocks} blocks, {args.tokens} tokens, {args.rounds} rounds")
    print(f"{'mode':6} {'first s':>8} {'median s':>9} {'x bf16 time':>12} {'median cpu s':>13} {'x bf16 cpu':>11} "
          f"{'max rel diff':>13}")
    for r in speed_rows(args.tokens, args.blocks, args.rounds) if args.rounds else []:
        print(f"{r['mode']:6} {r['first s']:8.3f} {r['median s']:9.3f} {r['x bf16 time']:12.2f} "
              f"{r['median cpu s']:13.3f} {r['x bf16 cpu']:11.2f} {r['max rel diff']:13.2e}")
    if args.memory_blocks:
        m = memory_row(args.memory_blocks)
        print(f"\nloading a 1B-shaped bf16 checkpoint cut to {m['blocks']} blocks: file {m['file MiB']:.0f} MiB, "
              f"peak - baseline {m['peak - base MiB']:.0f} MiB, peak / file {m['peak / file']:.2f} (goal <= 1.2)")
        print(f"  resident after the load, beyond the baseline: {m['file pages MiB']:.0f} MiB of file pages (the "
              f"memory-mapped checkpoint), {m['anonymous MiB']:.0f} MiB anonymous (copies the loader made, PyTorch)")
        print(f"  loading a {m['small file KiB']:.0f} KiB checkpoint the same way peaks {m['any load MiB']:.0f} MiB "
              f"above baseline: PyTorch's first-use allocations, part of every load, counted above; without them "
              f"{(m['peak - base MiB'] - m['any load MiB']) / m['file MiB']:.2f} x the file")


if __name__ == "__main__":
    main()
