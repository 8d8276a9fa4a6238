"""Chunked (stateful) against whole-sequence forward on CPU: time and peak memory, 8 kb to 1 Mbp.

Whole: ``model(ids)``. Chunked: ``state = model.new_state()``, then ``model(chunk, state)`` for
each 8,192-token chunk, as ``Evo2Model.embed_long`` does (each chunk's logits are dropped once
sampled). The whole forward's memory grows with the length (activations, the HCL filter and
FFT buffers, its (L, 512) float32 logits: 2 KB a token); the chunked one stays flat apart
from the attention K/V cache ("state MB"). Two small random configs (hidden 64, evo2kit's own
init): Hyena + attention (HCS, HCM, HCL, attention) and Hyena only (HCS, HCM, HCL), the
latter to show the Hyena state flat to 1 Mbp.

Each case runs in a fresh subprocess, so peak memory (``ru_maxrss``) is its own; "forward MB"
is the peak minus the process's resident memory just before the forward. A case is skipped
when a linear fit through the two previous lengths of its (config, mode) predicts more peak
memory than the budget (half the memory available at start: "OOM-risk"), or when its time,
extrapolated from the previous length as L (Hyena only) or L^2 (with attention), exceeds
``--max-case-s`` ("slow"). Where both modes ran, the logits at every chunk boundary and every
1,021st position are compared: max|chunked - whole| / max|whole|.

    nice -n 10 .venv/bin/python benchmarks/bench_chunked.py              # ~10 min on 2 cores
    nice -n 10 .venv/bin/python benchmarks/bench_chunked.py --max-len 131072
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import conditions
import numpy as np
import psutil
import torch

from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2

CONFIGS = {"hyena+attn": ["hcs", "hcm", "hcl", "attn"], "hyena only": ["hcs", "hcm", "hcl"]}
LENGTHS = [8192, 32768, 131072, 524288, 1048576]
MODES = ("whole", "chunked")
MB = 2**20


def build(pattern: list[str], hidden: int) -> StripedHyena2:
    kinds = {f"{k}_layer_idxs": [i for i, p in enumerate(pattern) if p == k] for k in ("hcs", "hcm", "hcl", "attn")}
    cfg = Evo2Config(model_name="bench-" + "-".join(pattern), hidden_size=hidden, num_layers=len(pattern),
                     num_attention_heads=hidden // 16, inner_mlp_size=2 * hidden, hcs_filter_groups=16,
                     hcm_filter_groups=16, **kinds)
    return StripedHyena2(cfg).init_weights(0).eval()


def sample_positions(L: int, chunk: int) -> np.ndarray:
    """Every chunk's first and last position and every 1,021st position."""
    starts = np.arange(0, L, chunk)
    return np.unique(np.concatenate([starts, np.minimum(starts + chunk, L) - 1, np.arange(0, L, 1021)]))


def npy(tmp: str, config: str, mode: str, L: int) -> Path:
    return Path(tmp, f"{config}-{mode}-{L}.npy".replace(" ", "_"))


def run_case(config: str, mode: str, L: int, chunk: int, hidden: int, out: Path) -> dict:
    """One case in this process: time and memory of the forward; sampled logits -> ``out``."""
    model = build(CONFIGS[config], hidden)
    ids = torch.randint(0, 4, (1, L), generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([ord(c) for c in "ACGT"])[ids]
    pos = torch.from_numpy(sample_positions(L, chunk))
    rows, state_mb = [], 0.0
    base = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    with torch.inference_mode():
        if mode == "whole":
            rows.append(model(ids)[0, pos])
        else:
            state = model.new_state()
            for start in range(0, L, chunk):
                logits = model(ids[:, start:start + chunk], state)[0]
                keep = pos[(pos >= start) & (pos < start + chunk)]
                rows.append(logits[keep - start])
            state_mb = state.nbytes / MB
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    np.save(out, torch.cat(rows).numpy())
    return dict(seconds=seconds, peak_mb=peak / MB, forward_mb=(peak - base) / MB, state_mb=state_mb)


def predict(done: list[tuple[int, dict]], L: int, attention: bool) -> tuple[float, float]:
    """(peak MB, seconds) expected at L from the previous lengths of the same (config, mode)."""
    (l1, r1), (l2, r2) = (done[-2] if len(done) > 1 else done[-1]), done[-1]
    slope = (r2["peak_mb"] - r1["peak_mb"]) / (l2 - l1) if l2 > l1 else 0.0
    return r2["peak_mb"] + slope * (L - l2), r2["seconds"] * (L / l2) ** (2 if attention else 1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--max-len", type=int, default=LENGTHS[-1])
    p.add_argument("--max-case-s", type=float, default=240.0, help="skip a case predicted to take longer")
    p.add_argument("--case", nargs=3, metavar=("CONFIG", "MODE", "L"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:  # child process: one case, one JSON line
        config, mode, L = args.case
        print(json.dumps(run_case(config, mode, int(L), args.chunk, args.hidden, args.out)))
        return

    budget_mb = psutil.virtual_memory().available / MB / 2
    conditions.start(settings=f"float32, hidden {args.hidden}, chunk {args.chunk:,}; "
                       f"memory budget {budget_mb / 1024:.1f} GB (half of available)")
    lengths = [L for L in LENGTHS if L <= args.max_len]
    results: dict[tuple[str, str, int], dict | str] = {}
    with tempfile.TemporaryDirectory(prefix="bench_chunked_") as tmp:
        for config in CONFIGS:
            for mode in MODES:
                done: list[tuple[int, dict]] = []
                for L in lengths:
                    if done:
                        mb, s = predict(done, L, "attn" in CONFIGS[config])
                        if mb > budget_mb or s > args.max_case_s:
                            why = f"OOM-risk (~{mb / 1024:.1f} GB)" if mb > budget_mb else f"slow (~{s:.0f} s)"
                            results.update({(config, mode, n): why for n in lengths if n >= L})
                            break
                    cmd = [sys.executable, __file__, "--case", config, mode, str(L), "--chunk", str(args.chunk),
                           "--hidden", str(args.hidden), "--out", str(npy(tmp, config, mode, L))]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode:
                        raise RuntimeError(f"case {config} {mode} L={L} failed:\n{proc.stderr[-2000:]}")
                    results[(config, mode, L)] = r = json.loads(proc.stdout.splitlines()[-1])
                    done.append((L, r))
                    print(f"  done: {config:<10} {mode:<7} L={L:>9,}  {r['seconds']:7.1f} s  "
                          f"{r['peak_mb']:8.0f} MB", file=sys.stderr, flush=True)
            for L in lengths:  # chunked vs whole logits where both ran
                files = [npy(tmp, config, m, L) for m in MODES]
                if all(f.is_file() for f in files):
                    whole, chunked = (np.load(f) for f in files)
                    results[(config, "diff", L)] = float(np.abs(chunked - whole).max() / np.abs(whole).max())
    print_table(results, lengths)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (wall times stretch under background load)")


def cell(r: dict | str | None, mode: str) -> str:
    """Table cell of one case: seconds, peak MB, forward MB (+ state MB), or why it was skipped."""
    if not isinstance(r, dict):
        return f"{r or '-':>{26 if mode == 'whole' else 35}}"
    text = f"{r['seconds']:{8 if mode == 'whole' else 9}.1f} {r['peak_mb']:8.0f} {r['forward_mb']:8.0f}"
    return text + (f" {r['state_mb']:8.2f}" if mode == "chunked" else "")


def print_table(results: dict, lengths: list[int]) -> None:
    head = (f"{'config':<11} {'L':>9} | {'whole s':>8} {'peak MB':>8} {'fwd MB':>8} | "
            f"{'chunked s':>9} {'peak MB':>8} {'fwd MB':>8} {'state MB':>8} | {'max rel diff':>12}")
    print(head)
    print("-" * len(head))
    for config in CONFIGS:
        for L in lengths:
            diff = results.get((config, "diff", L))
            diff = f"{diff:.1e}" if diff is not None else "-"
            print(f"{config:<11} {L:>9,} | {cell(results.get((config, 'whole', L)), 'whole')} | "
                  f"{cell(results.get((config, 'chunked', L)), 'chunked')} | {diff:>12}")

if __name__ == "__main__":
    main()
