"""Sampling speed and memory: batched cached decoding against one sample at a time and against
recomputing the whole prefix at every step, in one run.

For each prompt length (random bases), all through ``evo2kit.model.sampling.sample_tokens``:

- batched: ONE prefill, the state expanded to --samples rows (prompt K/V shared), then
  --tokens steps decoding every row at once;
- one at a time: a prefill and --tokens cached steps for a single sample, --loops times in a row
  (N such loops run one after another, so their tokens/s is that of one loop, whatever N);
- recomputed: --samples rows in one batch, each step a forward over prompt + generated so far,
  timed over its first --recompute-steps steps (the cheapest: the prefix only grows), so its
  tokens/s is an upper bound for the whole run.

Columns: wall and CPU seconds, tokens generated, tokens/s by wall and by CPU time (the CPU figure
is steadier on a shared machine when --threads 1), and each mode's tokens/s over one-at-a-time's.
The goal: batched >= 20x one-at-a-time on CPU. Then memory against generated length for the
batched rows: the Hyena state stays flat, the attention K/V grows by a fixed amount per token
(prompt K/V counted once, shared by all rows).

    nice -n 10 .venv/bin/python benchmarks/bench_generate.py --threads 1
    nice -n 10 .venv/bin/python benchmarks/bench_generate.py --lengths 1024 --tokens 50 --loops 1   # quick
"""

from __future__ import annotations

import argparse
import time

import conditions
import numpy as np
import torch

from evo2kit import load_model
from evo2kit.model.sampling import BASE_IDS, SamplingSettings, base_probabilities, draw, last_logits, sample_tokens

MB = 2**20


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def speed_rows(model, length: int, args) -> list[dict]:
    prompt = [BASE_IDS[b] for b in np.random.default_rng(length).integers(0, 4, length)]
    settings = SamplingSettings(args.temperature, 4, 1.0)
    run = lambda **kw: lambda: sample_tokens(model, [prompt], seed=0, settings=settings, **kw)  # noqa: E731
    rows = []
    wall, cpu = timed(run(n_tokens=args.tokens, n_samples=1))  # warm-up: one-off costs (cached filters)
    wall, cpu = 0.0, 0.0
    for _ in range(args.loops):
        w, c = timed(run(n_tokens=args.tokens, n_samples=1))
        wall, cpu = wall + w, cpu + c
    rows.append(("one at a time", f"{args.loops} loop(s) x 1 sample", args.loops * args.tokens, wall, cpu))
    w, c = timed(run(n_tokens=args.tokens, n_samples=args.samples))
    rows.append(("batched cached", f"1 prefill, {args.samples} samples", args.samples * args.tokens, w, c))
    w, c = timed(run(n_tokens=args.recompute_steps, n_samples=args.samples, cached=False))
    rows.append(("recomputed", f"{args.samples} samples, first {args.recompute_steps} steps",
                 args.samples * args.recompute_steps, w, c))
    base_wall, base_cpu = rows[0][2] / rows[0][3], rows[0][2] / max(rows[0][4], 1e-9)
    return [{"prompt bp": length, "mode": mode, "what": what, "tokens": n, "wall s": w, "cpu s": c,
             "tok/s": n / w, "tok/s cpu": n / max(c, 1e-9), "x one-at-a-time": n / w / base_wall,
             "x (cpu)": n / max(c, 1e-9) / base_cpu} for mode, what, n, w, c in rows]


@torch.no_grad()
def memory_rows(model, length: int, samples: int, marks: list[int]) -> list[dict]:
    """State bytes of ``samples`` rows decoding after a ``length``-bp prompt, at each generated length of ``marks``."""
    prompt = torch.tensor([[BASE_IDS[b] for b in np.random.default_rng(1).integers(0, 4, length)]])
    state = model.new_state()
    logits = last_logits(model, prompt, state).repeat(samples, 1)
    state = state.expand(samples)
    bases, rng = torch.tensor(BASE_IDS), np.random.default_rng(0)
    rows = []
    for t in range(max(marks) + 1):
        if t in marks:
            kinds = state.nbytes_by_kind()
            rows.append({"generated": t, "Hyena state MB": kinds["hyena"] / MB,
                         "attention K/V MB": kinds["attention"] / MB})
        probs = base_probabilities(logits[:, bases], SamplingSettings())
        choice = bases[draw(probs, torch.from_numpy(rng.random(samples)))]
        logits = last_logits(model, choice[:, None], state)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="evo2kit-tiny", help="a load_model name or config (default: the bundled model)")
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192], help="prompt lengths, bp")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--tokens", type=int, default=200, help="bases generated per sample")
    p.add_argument("--loops", type=int, default=2, help="one-at-a-time loops timed")
    p.add_argument("--recompute-steps", type=int, default=2)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--memory-marks", type=int, nargs="+", default=[0, 250, 500, 1000])
    conditions.add_threads_option(p)
    args = p.parse_args()
    conditions.start(args, f"model {args.model}, CPU float32, {args.samples} samples x {args.tokens} bases, "
                           "temperature 1, top_k 4")
    model = load_model(args.model, device="cpu", dtype="float32").model
    import pandas as pd

    rows = [r for L in args.lengths for r in speed_rows(model, L, args)]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:,.2f}"), "\n", flush=True)
    for L in args.lengths:
        mem = pd.DataFrame(memory_rows(model, L, args.samples, args.memory_marks))
        print(f"memory of {args.samples} rows after a {L:,}-bp prompt (prompt K/V shared):")
        print(mem.to_string(index=False, float_format=lambda x: f"{x:,.2f}"), "\n", flush=True)


if __name__ == "__main__":
    main()
