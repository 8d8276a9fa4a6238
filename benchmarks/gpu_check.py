"""GPU check, prepared to run in under 8 minutes on one H200 with the machine's own PyTorch (no
Transformer Engine, no flash-attn). Writes one JSON file.

1. FP8 projections: ``torch._scaled_mm`` (fast accumulation) against evo2kit's exact CPU
   emulation, on the same random 1B- and 7B-width weights and TE-style scales (448 / amax):
   max |difference| / max |emulation| and time per call.
   Also ``FP8Linear`` itself (the rounded weight kept) through both backends on the GPU.
2. Forward throughput of the torch backend in bf16 at 7B width (the 7B's first 4 blocks: HCS,
   HCM, HCL, attention; random weights), whole and chunked (8,192-token chunks), at 8k, 32k
   and 131k tokens; a length that runs out of memory is recorded as such.
3. Blocks on two devices (``load_model(device_map=...)``): a small FP8 config with its first
   blocks on the GPU and the rest on the CPU against the whole model on the GPU (logits and
   embeddings, whole and chunked), so the hidden state really crosses devices.
4. With ``--checkpoint``, first: Evo 2's own self-test (``evo2kit.self_test``) on that published
   checkpoint, loaded with ``load_model(name, local_path=..., fp8=...)``: the mean next-token loss
   and accuracy on ArcInstitute/evo2's 4 test sequences against the published values (1e-3 on the
   loss), and the verdict; a wrong model shows before anything is timed.
5. Sampling (``evo2kit.model.sampling``) on the same 7B-width 4 blocks in bf16: tokens/s of batched
   cached decoding of 50 samples from one prefill against one sample at a time (prefill and decode
   per sample) and against recomputing the whole prefix each step (its first 2 steps), at 1k and 8k
   prompts, with peak memory; and the state's bytes (Hyena, attention) after the prefill.

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --lengths 8192 --out quick.json
    python benchmarks/gpu_check.py --checkpoint evo2_1b_base.pt --out gpu_check_1b.json   # needs EVO2KIT_DATA_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from evo2kit.model.fp8 import E4M3_MAX, FP8Linear, fp8_linear_emulated, fp8_linear_scaled_mm, scaled_mm_available


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
        for backend in ("scaled_mm", "emulate"):  # the module, its rounded weight kept
            lin = FP8Linear(hidden, 3 * hidden, bias=False, backend=backend).cuda().bfloat16()
            lin.weight.data = wc
            lin.set_scales(sx, sw)
            with torch.no_grad():
                y = lin(xc).float().cpu()
                diff = float((y - emulated).abs().max() / emulated.abs().max())
                rows[-1][f"fp8linear_{backend}_max_rel_diff_vs_cpu_emulation"] = diff
                rows[-1][f"fp8linear_{backend}_s"] = cuda_time(lambda lin=lin, xc=xc: lin(xc))
    return rows


@torch.no_grad()
def device_map_rows() -> dict:
    import evo2kit
    from evo2kit.model import vortex_reference as vr

    cfg = vr.official_config(use_fp8_input_projections=True)  # HCS, HCM, HCL, attention, HCS; hidden 64
    ids = torch.randint(0, 4, (1, 300), generator=torch.Generator().manual_seed(0)) + 65
    names = ["blocks.1.mlp.l3", "blocks.4.mlp.l3"]
    one = evo2kit.load_model(cfg, device="cuda", dtype="float32", fp8="emulate")
    split = evo2kit.load_model(cfg, device_map=["cuda", "cpu"], dtype="float32", fp8="emulate")
    out = {"block_devices": [str(next(b.parameters()).device) for b in split.model.blocks]}
    for chunk_size in (None, 128):
        (a, _), ea = one(ids, return_embeddings=True, layer_names=names, chunk_size=chunk_size)
        (b, _), eb = split(ids, return_embeddings=True, layer_names=names, chunk_size=chunk_size)
        key = "whole" if chunk_size is None else f"chunked_{chunk_size}"
        out[key] = {"logits_device": str(b.device),
                    "max_rel_diff_logits": float((a - b).abs().max() / a.abs().max()),
                    "max_rel_diff_embeddings": max(float((ea[n] - eb[n]).abs().max() / ea[n].abs().max())
                                                   for n in names)}
    return out


@torch.inference_mode()
def throughput_rows(lengths: list[int], chunk: int) -> list[dict]:
    from evo2kit.model import vortex_reference as vr
    from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2

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


def checkpoint_name(checkpoint: str) -> str | None:
    """The published name a checkpoint file is called by (``evo2_40b.pt.part0`` -> ``evo2_40b``), or None."""
    from evo2kit.checkpoints.official import PUBLISHED_CHECKPOINTS, checkpoint_files

    stem = checkpoint_files(checkpoint)[0].name.split(".pt")[0]
    return stem if stem in PUBLISHED_CHECKPOINTS else None


def self_test_row(checkpoint: str, name: str, fp8: str) -> dict:
    """Evo 2's self-test of a published checkpoint on the GPU, with what the loader did."""
    import evo2kit

    model = evo2kit.load_model(name, local_path=checkpoint, device="cuda", fp8=fp8)
    result = evo2kit.self_test(model)
    row = {"model": name, "checkpoint": str(checkpoint), "fp8": fp8, "load_report": str(model.load_report),
           "logits_dtype": result.dtype, "sequences": result.names, "losses": result.losses,
           "accuracies": result.accuracies, "loss": result.loss, "accuracy": result.accuracy,
           "reference": None if result.reference is None else vars(result.reference),
           "matches": result.matches, "verdict": result.verdict, "seconds": result.seconds,
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    del model
    torch.cuda.empty_cache()
    return row


@torch.inference_mode()
def generation_rows(lengths: list[int], samples: int, tokens: int, device: str = "cuda",
                    num_layers: int = 4) -> list[dict]:
    """Tokens/s and peak memory of the three ways to sample (see the module docstring, part 5)."""
    from evo2kit.model import vortex_reference as vr
    from evo2kit.model.sampling import BASE_IDS, SamplingSettings, last_logits, sample_tokens
    from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2

    cfg = Evo2Config.from_dict(vr.load_yaml_config("evo2-7b-8k", num_layers=num_layers))
    with torch.inference_mode(False):
        model = StripedHyena2(cfg).init_weights(0).to_inference_dtype(torch.bfloat16).to(device).eval()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for L in lengths:
        prompt = [BASE_IDS[i % 4] for i in range(L)]
        cases = {"one_at_a_time": dict(n_tokens=tokens, n_samples=1), "batched_cached": dict(n_tokens=tokens,
                 n_samples=samples), "recomputed_first_2_steps": dict(n_tokens=2, n_samples=samples, cached=False)}
        for mode, kw in cases.items():
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                sample_tokens(model, [prompt], settings=SamplingSettings(), seed=0, **{**kw, "n_tokens": 2})  # warm-up
                sync()
                t0 = time.perf_counter()
                sample_tokens(model, [prompt], settings=SamplingSettings(), seed=0, **kw)
                sync()
                s = time.perf_counter() - t0
                n = kw["n_tokens"] * kw["n_samples"]
                rows.append({"prompt": L, "mode": mode, "tokens": n, "seconds": s, "tokens_per_s": n / s,
                             "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None})
            except torch.OutOfMemoryError:
                rows.append({"prompt": L, "mode": mode, "error": "out of memory"})
            if device == "cuda":
                torch.cuda.empty_cache()
        one = next((r["tokens_per_s"] for r in rows if r["prompt"] == L and r["mode"] == "one_at_a_time"
                    and "tokens_per_s" in r), None)
        for r in rows:
            if r["prompt"] == L and one and "tokens_per_s" in r:
                r["x_one_at_a_time"] = r["tokens_per_s"] / one
        state = model.new_state()
        last_logits(model, torch.tensor([prompt], device=device), state)
        expanded = state.expand(samples)
        rows.append({"prompt": L, "mode": f"state_after_prefill_{samples}_rows",
                     "mib": {k: v / 2**20 for k, v in expanded.nbytes_by_kind().items()}})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--fp8-tokens", type=int, default=8192)
    p.add_argument("--lengths", type=int, nargs="*", default=[8192, 32768, 131072])
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--checkpoint", help="an official Evo 2 checkpoint (.pt, the first part of a 40B, or their "
                   "folder): run Evo 2's self-test on it first")
    p.add_argument("--model", help="its published name (default: from the file name, e.g. evo2_1b_base.pt)")
    p.add_argument("--fp8", default="auto", choices=("auto", "emulate", "off"), help="how its FP8 projections run")
    p.add_argument("--gen-lengths", type=int, nargs="*", default=[1024, 8192], help="prompt lengths for part 5")
    p.add_argument("--gen-samples", type=int, default=50)
    p.add_argument("--gen-tokens", type=int, default=200)
    args = p.parse_args()
    if args.checkpoint and not Path(args.checkpoint).exists() and not Path(f"{args.checkpoint}.part0").exists():
        sys.exit(f"gpu_check.py: checkpoint {args.checkpoint} does not exist")
    name = args.model or (checkpoint_name(args.checkpoint) if args.checkpoint else None)
    if args.checkpoint and not name:
        sys.exit(f"gpu_check.py: cannot tell which published model {args.checkpoint} is; pass --model, e.g. "
                 "--model evo2_7b")
    if not torch.cuda.is_available():
        sys.exit("gpu_check.py needs a CUDA GPU")
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
              "capability": list(torch.cuda.get_device_capability()),
              "scaled_mm_available": scaled_mm_available("cuda")}
    if args.checkpoint:
        result["self_test"] = self_test_row(args.checkpoint, name, args.fp8)
        print(result["self_test"]["verdict"], flush=True)
    if result["scaled_mm_available"]:
        result["fp8"] = fp8_rows(args.fp8_tokens)
    result["device_map_cuda_cpu"] = device_map_rows()
    result["throughput_bf16_7b_width_4_blocks"] = throughput_rows(args.lengths, args.chunk)
    result["generation_bf16_7b_width_4_blocks"] = generation_rows(args.gen_lengths, args.gen_samples, args.gen_tokens)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
