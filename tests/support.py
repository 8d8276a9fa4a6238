"""Helpers shared by test modules (fixtures live in conftest.py); tests import it as ``support``
(pyproject.toml puts tests/ on the path)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time

import numpy as np
import torch


def sigkill_when(proc: subprocess.Popen, ready, seconds: float) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polled every 50 ms): the way the resumption
    tests cut a run in the middle. Fails if the process ends first or makes no progress in ``seconds``."""
    deadline = time.time() + seconds
    try:
        while not ready():
            assert proc.poll() is None, "the slow run ended before it could be killed"
            assert time.time() < deadline, f"the slow run made no progress in {seconds:.0f} s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def e4m3(v: float) -> float:
    """One value rounded to float8 E4M3 (3 mantissa bits, min normal 2^-6, max 448), ties to
    even, saturating; NaN stays NaN."""
    if math.isnan(v):
        return math.nan
    a = min(abs(v), 448.0)
    if a == 0.0:
        return math.copysign(0.0, v)
    _, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
    quantum = 2.0 ** (max(e - 1, -6) - 3)  # subnormals share the quantum of the first binade
    return math.copysign(min(round(a / quantum) * quantum, 448.0), v)  # round(): half to even


def reference_fp8_linear(x: torch.Tensor, w: torch.Tensor, sx: float, sw: float) -> np.ndarray:
    """TE's inference GEMM written out: products x * s in fp32, E4M3 rounding per element,
    a float64 matrix product, rescaled by the fp32 scale inverses."""
    f32 = np.float32
    xq = np.vectorize(e4m3)(x.numpy().astype(f32) * f32(sx)).astype(np.float64)
    wq = np.vectorize(e4m3)(w.numpy().astype(f32) * f32(sw)).astype(np.float64)
    return (xq @ wq.T) * float(f32(1) / f32(sx)) * float(f32(1) / f32(sw))


def token_ids(length: int, seed: int) -> torch.Tensor:
    """(1, length) random DNA token ids (A, C, G, T) from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.tensor([65, 67, 71, 84])[torch.randint(0, 4, (1, length), generator=g)]
