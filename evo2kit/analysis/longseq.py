"""Long sequences: measuring a forward's time and peak memory, and sliding-window embeddings.

``measure_forward`` runs each measurement in a fresh Python process, so the peak memory it
reports (CPU: the process's peak resident set size during the forward, reset just before it
on Linux, minus the resident size at that moment; CUDA: peak allocated bytes minus those
allocated before) belongs to that one forward and not to whatever ran before it.

    python -m evo2kit.analysis.longseq --model evo2kit-tiny --length 65536 --mode whole    # one JSON line
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch

MODES = ("whole", "chunked", "embed_long")


def random_ids(length: int, seed: int = 0) -> torch.Tensor:
    """(1, length) token ids of uniformly random A/C/G/T: a test input whose cost depends on its length alone."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.choice(np.frombuffer(b"ACGT", np.uint8), length).astype(np.int64))[None]


def _status_bytes(field: str) -> int | None:
    """A ``/proc/self/status`` field in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_cpu_peak() -> int:
    """Reset the process's peak resident set size where Linux allows it (``clear_refs`` 5) and
    return the baseline to subtract: the current RSS after a reset, else the peak so far (so
    that a forward needing less than model loading did reads as 0 rather than as a wrong number)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        rss = _status_bytes("VmRSS")
        if rss is not None and _status_bytes("VmHWM") is not None:
            return rss
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _cpu_peak() -> int:
    hwm = _status_bytes("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure_here(model_name: str, length: int, mode: str, chunk_size: int, device: str,
                  local_path: str | None = None, dtype: str = "auto") -> dict:
    """Time and peak memory of one forward of ``length`` random bases in this process.

    mode: 'whole' (one forward, logits (1, L, vocab)), 'chunked' (exact stateful forward in
    chunks, all logits kept) or 'embed_long' (chunks, only a mean-pooled embedding kept)."""
    from evo2kit.api import load_model

    model = load_model(model_name, local_path=local_path or None, device=device, dtype=dtype)
    ids = random_ids(length)
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        gc.collect()
        base = _reset_cpu_peak()
    t0 = time.perf_counter()
    if mode == "whole":
        model(ids)
    elif mode == "chunked":
        model(ids, chunk_size=chunk_size)
    else:
        model.embed_long(model.tokenizer.detokenize(ids[0]), model.layer_names[-1:], chunk_size, "mean")
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else _cpu_peak()) - base
    return {"length": length, "mode": mode, "chunk_size": chunk_size if mode != "whole" else None,
            "seconds": seconds, "peak_mb": peak / 1e6, "error": ""}


def measure_forward(model_name: str, lengths: list[int], mode: str = "whole", chunk_size: int = 8192,
                    device: str | torch.device = "cpu", local_path: str | None = None, timeout_s: float = 1800,
                    dtype: str | torch.dtype | None = "auto") -> pd.DataFrame:
    """One row per length, each measured in a fresh process: length, mode, chunk_size, seconds,
    peak_mb, error (the last line of the child's stderr when it failed, e.g. out of memory;
    seconds/peak_mb are then NaN). dtype: a name, a torch dtype, or None / "auto" for the loader's choice."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    device = str(device)
    dtype = "auto" if dtype is None else str(dtype).removeprefix("torch.")
    rows = []
    for length in lengths:
        cmd = [sys.executable, "-m", "evo2kit.analysis.longseq", "--model", model_name, "--length", str(length),
               "--mode", mode, "--chunk-size", str(chunk_size), "--device", device, "--dtype", dtype]
        if local_path:
            cmd += ["--local-path", str(local_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode == 0:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            rows.append({"length": length, "mode": mode, "chunk_size": chunk_size, "seconds": np.nan,
                         "peak_mb": np.nan, "error": err})
    return pd.DataFrame(rows)


@torch.no_grad()
def sliding_window_embeddings(model, seq: str, layer_name: str, window: int, overlap: int,
                              batch_size: int = 4) -> np.ndarray:
    """Per-position embeddings (L, d) float32 from independent overlapping windows.

    Windows start every ``window - overlap`` bases; the first window gives its positions, each
    later one gives all but its first ``overlap`` positions (which only serve as context). Each
    position therefore sees between ``overlap`` and ``window`` bases of context, unlike the
    exact chunked forward, where it sees everything before it.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"need 0 <= overlap < window, got overlap={overlap}, window={window}")
    step, L = window - overlap, len(seq)
    starts = list(range(0, max(L - overlap, 1), step))
    out: np.ndarray | None = None
    for i in range(0, len(starts), batch_size):
        batch = [seq[s:s + window] for s in starts[i:i + batch_size]]
        ids, lengths = model.tokenizer.encode_batch(batch)
        _, emb = model(ids, return_embeddings=True, layer_names=[layer_name])
        emb = emb[layer_name].float().cpu().numpy()
        if out is None:
            out = np.empty((L, emb.shape[-1]), np.float32)
        for s, e, n in zip(starts[i:i + batch_size], emb, lengths.tolist()):
            keep = 0 if s == 0 else overlap
            out[s + keep:s + n] = e[keep:n]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="time and peak memory of one forward (prints one JSON line)")
    ap.add_argument("--model", default="evo2kit-tiny")
    ap.add_argument("--length", type=int, required=True)
    ap.add_argument("--mode", choices=MODES, default="whole")
    ap.add_argument("--chunk-size", type=int, default=8192)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--local-path", help="official checkpoint (.pt) for a published model")
    ap.add_argument("--dtype", default="auto", help="auto (load_model's default), float32 or bfloat16")
    a = ap.parse_args(argv)
    print(json.dumps(_measure_here(a.model, a.length, a.mode, a.chunk_size, a.device, a.local_path, a.dtype)))


if __name__ == "__main__":
    main()
