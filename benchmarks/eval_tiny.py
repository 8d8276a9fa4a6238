"""Evaluate the bundled evo2kit-tiny model; prints the figures of its model card.

    EVO2KIT_DATA_DIR=/path/to/data python benchmarks/eval_tiny.py [--positions 1000000] [--out build/eval_tiny.json]

1. Held-out cross-entropy (bits per base) on the human chr22 blocks (never trained on),
   against order-k Markov chains (k = 0..12) fit on the training chromosomes (hg19 chr20
   without its validation tail, chrX part), on the same positions: every position of the
   chosen blocks that has 12 preceding A/C/G/T bases inside its block. The model reads each
   block (up to 8,192 bases) from its start; next-base accuracy is the argmax over A/C/G/T.
2. Zero-shot BRCA1 (Findlay 2018): delta mean log-likelihood AUROC, LOF vs FUNC/INT, with a
   bootstrap 95% interval, at windows 1,024, 2,048 (all SNVs) and 8,192 (all, or a stratified
   subset with --subset-8192).
3. CPU forward throughput at lengths 1,024 / 2,048 / 8,192 (batch 1, float32, median of 3).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import evo2kit
from evo2kit.analysis.stats import auroc_ci
from evo2kit.analysis.zero_shot import variant_deltas
from evo2kit.data import brca1, fasta, registry
from evo2kit.data.brca1 import stratified_subset
from evo2kit.data.genome_windows import load_genome

K_MAX = 12
_CODE = np.full(256, 4, np.int64)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def kmer_codes(seq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each position t >= k: the base-4 code of seq[t-k .. t] (k context bases + the base)
    and whether those k+1 bases are all A/C/G/T. seq: uint8 (L,) -> (L-k,) int64, (L-k,) bool."""
    c = _CODE[seq]
    ok = c < 4
    code = np.zeros(len(seq) - k, np.int64)
    valid = np.ones(len(seq) - k, bool)
    for j in range(k + 1):
        code = code * 4 + np.where(ok, c, 0)[j:len(seq) - k + j]
        valid &= ok[j:len(seq) - k + j]
    return code, valid


def markov_counts(train: list[np.ndarray], k: int) -> np.ndarray:
    """(4**k, 4) counts of each next base after each k-mer context."""
    counts = np.zeros(4 ** (k + 1), np.int64)
    for seq in train:
        code, valid = kmer_codes(seq, k)
        counts += np.bincount(code[valid], minlength=4 ** (k + 1))
    return counts.reshape(4 ** k, 4)


def markov_bits(counts: np.ndarray, code: np.ndarray, alpha: float) -> tuple[float, float]:
    """Mean bits per base and accuracy of the additive-smoothed chain on (k+1)-mer codes."""
    ctx, nxt = code // 4, code % 4
    c = counts[ctx].astype(np.float64) + alpha
    p = c[np.arange(len(code)), nxt] / c.sum(1)
    return float(-np.log2(p).mean()), float((c.argmax(1) == nxt).mean())


def held_out_blocks(n_positions: int, seed: int = 0, max_len: int = 8192) -> list[np.ndarray]:
    """Randomly chosen chr22 blocks (upper-cased, each cut to max_len) until they hold
    n_positions scored positions."""
    blocks = list(fasta.read_fasta(registry.fetch("chr22_heldout")).values())
    rng = np.random.default_rng(seed)
    chosen, total = [], 0
    for i in rng.permutation(len(blocks)):
        b = np.frombuffer(blocks[i][:max_len].encode("ascii"), np.uint8)
        if len(b) <= K_MAX:
            continue
        chosen.append(b)
        total += int(kmer_codes(b, K_MAX)[1].sum())
        if total >= n_positions:
            break
    return chosen


@torch.no_grad()
def model_bits(model, blocks: list[np.ndarray]) -> tuple[float, float, int]:
    """Model bits per base and A/C/G/T argmax accuracy on the scored positions of each block."""
    acgt = torch.tensor(list(b"ACGT"))
    bits, hits, n = 0.0, 0, 0
    for b in blocks:
        ids = torch.from_numpy(b.astype(np.int64))[None]
        logp = torch.log_softmax(model.model(ids)[0].double(), -1)  # (L, vocab): predicts t+1
        _, valid = kmer_codes(b, K_MAX)
        t = np.flatnonzero(valid) + K_MAX  # scored positions (the predicted base's index)
        target = ids[0, t]
        bits += float(-logp[t - 1, target].sum()) / math.log(2)
        hits += int((acgt[logp[t - 1][:, acgt].argmax(1)] == target).sum())
        n += len(t)
    return bits / n, hits / n, n


def throughput(model, lengths=(1024, 2048, 8192), repeats: int = 3) -> dict[int, float]:
    out = {}
    with torch.inference_mode():
        for L in lengths:
            ids = torch.randint(0, 4, (1, L)).mul_(0).add_(torch.tensor(list(b"ACGT"))[torch.randint(0, 4, (L,))])
            model.model(ids)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.model(ids)
                times.append(time.perf_counter() - t0)
            out[L] = L / float(np.median(times))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--positions", type=int, default=1_000_000, help="held-out chr22 positions to score")
    p.add_argument("--windows", default="1024,2048,8192")
    p.add_argument("--subset-8192", type=int, default=0, help="SNVs at 8,192 bp (0: all 3,893)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", default="build/eval_tiny.json")
    p.add_argument("--weights", help="a .safetensors file of the same config to evaluate instead of the bundled "
                   "weights (a training run's export, e.g. runs/genic/evo2kit-tiny.safetensors)")
    args = p.parse_args(argv)
    print("command:", " ".join(["python", "benchmarks/eval_tiny.py", *sys.argv[1:]]))
    model = evo2kit.load_model(local_path=args.weights)
    report: dict = {"model": model.name, "weights_sha256": model.weights_sha256, "params": model.model.num_params()}

    t0 = time.time()
    blocks = held_out_blocks(args.positions)
    bits, acc, n = model_bits(model, blocks)
    report["heldout"] = {"blocks": len(blocks), "positions": n, "model_bits": bits, "model_acc": acc, "markov": {}}
    print(f"held-out chr22: {len(blocks)} blocks, {n:,} positions; model {bits:.4f} bits/base, accuracy {acc:.4f} "
          f"({time.time() - t0:.0f} s)")
    train, _ = load_genome()
    test_codes = {k: np.concatenate([kmer_codes(b, K_MAX)[0][kmer_codes(b, K_MAX)[1]] % 4 ** (k + 1) for b in blocks])
                  for k in range(K_MAX + 1)}
    for k in range(K_MAX + 1):
        counts = markov_counts(list(train.values()), k)
        best = min((markov_bits(counts, test_codes[k], a) + (a,) for a in (0.01, 0.1, 0.5, 1.0)), key=lambda r: r[0])
        report["heldout"]["markov"][k] = {"bits": best[0], "acc": best[1], "alpha": best[2]}
        print(f"  Markov k={k:2d}: {best[0]:.4f} bits/base, accuracy {best[1]:.4f} (alpha {best[2]})")
    k_best = min(report["heldout"]["markov"], key=lambda k: report["heldout"]["markov"][k]["bits"])
    margin = report["heldout"]["markov"][k_best]["bits"] - bits
    report["heldout"].update(best_markov_k=k_best, margin_bits=margin)
    print(f"best Markov chain: k={k_best}; model better by {margin:.4f} bits/base")

    df = brca1.load_brca1()
    report["zero_shot"] = {}
    for w in (int(x) for x in args.windows.split(",")):
        sub = df
        if w == 8192 and args.subset_8192:
            sub = stratified_subset(df, args.subset_8192, seed=0)
        t0 = time.time()
        table = variant_deltas(model, sub, window=w, batch_size=args.batch_size)
        auc, lo, hi = auroc_ci(table["class"] == "LOF", -table["delta"])
        report["zero_shot"][w] = {"n_snvs": len(table), "auroc": auc, "ci95": [lo, hi], "seconds": time.time() - t0}
        print(f"zero-shot BRCA1 window {w}: {len(table)} SNVs, AUROC {auc:.3f} [{lo:.3f}, {hi:.3f}] "
              f"({time.time() - t0:.0f} s)")

    report["throughput_tok_s"] = throughput(model)
    for L, v in report["throughput_tok_s"].items():
        print(f"forward throughput L={L}: {v:,.0f} tokens/s (CPU, {torch.get_num_threads()} threads, fp32, batch 1)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
