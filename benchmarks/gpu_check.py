"""GPU check, prepared to run in under 8 minutes on one H200 with the machine's own PyTorch (no
Transformer Engine, no flash-attn). Writes one JSON file.

1. FP8 projections: ``torch._scaled_mm`` (fast accumulation) against evo2kit's exact CPU
   emulation, on the same random 1B- and 7B-width weights and TE-style scales (448 / amax):
   max |difference| / max |emulation| and time per call.
2. Forward throughput of the torch backend in bf16 at 7B width (the 7B's first 4 blocks: HCS,
   HCM, HCL, attention; random weights), whole and chunked (8,192-token chunks), at 8k, 32k
   and 131k tokens; a length that runs out of memory is recorded as such.

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --lengths 8192 --out quick.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from evo2kit.fp8 import E4M3_MAX, fp8_linear_emulated, fp8_linear_scaled_mm, scaled_mm_available

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def cuda_time(fn, repeat: int = 3) -> float:
    """Median seconds of ``fn()`` on the current CUDA device."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def fp8_rows(tokens: int) -> list[dict]:
    rows = []
    for hidden in (1920, 4096):
        g = torch.Generator().manual_seed(hidden)
        x = torch.randn(tokens, hidden, generator=g).bfloat16()
        w = (torch.randn(3 * hidden, hidden, generator=g) / hidden ** 0.5).bfloat16()
        sx, sw = E4M3_MAX / float(x.float().abs().max()), E4M3_MAX / float(w.float().abs().max())
        emulated = fp8_linear_emulated(x, w, sx, sw).float()
        xc, wc = x.cuda(), w.cuda()
        fast = fp8_linear_scaled_mm(xc, wc, sx, sw)
        emulated_gpu = fp8_linear_emulated(xc, wc, sx, sw)
        rows.append({
            "hidden": hidden, "tokens": tokens,
            "max_rel_diff_scaled_mm_vs_cpu_emulation":
                float((fast.float().cpu() - emulated).abs().max() / emulated.abs().max()),
            "max_rel_diff_gpu_vs_cpu_emulation":
                float((emulated_gpu.float().cpu() - emulated).abs().max() / emulated.abs().max()),
            "scaled_mm_s": cuda_time(lambda xc=xc, wc=wc, sx=sx, sw=sw: fp8_linear_scaled_mm(xc, wc, sx, sw)),
            "emulated_gpu_s": cuda_time(lambda xc=xc, wc=wc, sx=sx, sw=sw: fp8_linear_emulated(xc, wc, sx, sw)),
            "bf16_linear_s": cuda_time(lambda xc=xc, wc=wc: torch.nn.functional.linear(xc, wc)),
        })
    return rows


@torch.inference_mode()
def throughput_rows(lengths: list[int], chunk: int) -> list[dict]:
    import vortex_ref as vr  # noqa: PLC0415 (config helpers, tests/vortex_ref.py)

    from evo2kit.model import Evo2Config, StripedHyena2

    cfg = Evo2Config.from_dict(vr.load_yaml_config("evo2-7b-8k", num_layers=4))
    with torch.inference_mode(False):
        model = StripedHyena2(cfg).init_weights(0).to_inference_dtype(torch.bfloat16).cuda().eval()
    rows = []
    for L in lengths:
        ids = torch.randint(0, 4, (1, L), device="cuda")
        for mode in ("whole", "chunked"):
            def run(mode=mode, ids=ids):
                if mode == "whole":
                    return model(ids)
                state = model.new_state()
                return [model(c, state)[:, -1:] for c in ids.split(chunk, 1)]
            torch.cuda.reset_peak_memory_stats()
            try:
                s = cuda_time(run, repeat=1)
                rows.append({"tokens": L, "mode": mode, "seconds": s, "tokens_per_s": L / s,
                             "peak_gib": torch.cuda.max_memory_allocated() / 2**30})
            except torch.OutOfMemoryError:
                rows.append({"tokens": L, "mode": mode, "error": "out of memory"})
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--fp8-tokens", type=int, default=8192)
    p.add_argument("--lengths", type=int, nargs="*", default=[8192, 32768, 131072])
    p.add_argument("--chunk", type=int, default=8192)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check.py needs a CUDA GPU")
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
              "capability": list(torch.cuda.get_device_capability()),
              "scaled_mm_available": scaled_mm_available("cuda")}
    if result["scaled_mm_available"]:
        result["fp8"] = fp8_rows(args.fp8_tokens)
    result["throughput_bf16_7b_width_4_blocks"] = throughput_rows(args.lengths, args.chunk)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
