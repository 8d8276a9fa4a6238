"""FP8 input projections, as Transformer Engine runs them at inference, without Transformer Engine.

The 1B, 20B and 40B Evo 2 checkpoints were trained with one FP8 layer per Hyena block: the
input projection ``blocks.{i}.projections`` (hidden -> 3 * hidden, no bias), a TE ``Linear``
under ``fp8_autocast`` with delayed scaling (HYBRID format: E4M3 in the forward pass). With
gradients off, TE does not update its scales (TE ``transformer_engine/pytorch/fp8.py``), so at
inference the forward GEMM is, with constant per-module scales s_x (GEMM input) and s_w (weight)
read from the checkpoint's ``_extra_state``:

    y = (e4m3(x * s_x) @ e4m3(W * s_w)^T) * (1 / s_x) * (1 / s_w)    [+ bias]

where ``e4m3`` rounds to the nearest E4M3 value (ties to even) and saturates to +-448; NaN stays
NaN, +-inf saturates to +-448 (TE casts with ``static_cast<fp8e4m3>`` of the fp32 product x * s,
which is CUDA's ``__NV_SATFINITE`` conversion: TransformerEngine
``transformer_engine/common/util/vectorized_pointwise.h``, ``unary_kernel``). The scale
inverses are ``1 / scale`` in fp32 (the same kernel writes ``reciprocal(scale_inv, scale)``).

Since the scales are constants, ``e4m3(W * s_w)`` is computed once per weight and kept
(``FP8Linear.quantised_weight``); each call rounds only its input. Two ways to run the GEMM:
  * emulation (any device): the E4M3 values held exactly in bf16 (or fp16, or fp32 for a
    float32 model), multiplied with fp32 accumulation, the product of the two scale inverses
    applied to the fp32 accumulator, rounded once to the model dtype. This is the "exact
    accumulation" setting (what BioNeMo measured as recovering the 1B); it equals the
    straightforward computation (PyTorch's float8 casts, an fp32 matrix product, the two scale
    inverses applied in turn) up to fp32 rounding before the final rounding to the model dtype.
  * ``torch._scaled_mm(..., use_fast_accum=True)`` on CUDA GPUs of compute capability >= 8.9,
    the cuBLASLt FP8 GEMM with the reduced-precision accumulation TE's forward GEMM uses on
    Hopper (``_2X_ACC_FPROP = False`` in TE ``module/base.py``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

E4M3_MAX = 448.0  # largest finite float8 E4M3 ("fn" variant: no infinities) value
FP8_BACKENDS = ("emulate", "scaled_mm")

# fp32 bit fields for round_e4m3
_EXPONENT_BITS = 0x7F800000
_MIN_E4M3_BINADE = (127 - 6) << 23  # 2^-6, E4M3's smallest normal; its subnormals share that quantum
_TO_ROUNDING_CONSTANT = (20 << 23) + (1 << 22)  # 2^e -> 1.5 * 2^(e + 20)
_PIECE = 1 << 17  # elements rounded at a time on CPU (0.5 MB of fp32: the passes stay in cache)


def cast_e4m3(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x * scale rounded to float8 E4M3 as TE does: product in fp32, round to nearest even,
    saturate to +-448 (inf included), NaN kept. Any shape -> same shape, torch.float8_e4m3fn.

    The clamp is needed because PyTorch's float -> float8_e4m3fn conversion turns values
    beyond the finite range into NaN instead of saturating."""
    return (x.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def round_e4m3(x: torch.Tensor, scale: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The values of ``cast_e4m3(x, scale)``, returned in ``dtype`` (bf16, fp16 and fp32 hold
    every E4M3 value exactly), computed with fp32 arithmetic. Any shape -> same shape.

    Why not ``cast_e4m3(...).to(dtype)``: PyTorch's CPU conversion out of float8 is scalar code,
    several times slower than the GEMM's share of the work. Rounding to E4M3's 3 mantissa bits:
    for |y| in the binade [2^e, 2^(e+1)) (e >= -6; below, E4M3's subnormals share the quantum of
    2^-6), C = 1.5 * 2^(e+20) puts y + C in [2^(e+20), 2^(e+21)), where the fp32 spacing is
    2^(e-3), E4M3's quantum for y: the fp32 addition rounds y to it (to nearest, ties to even,
    C being an even multiple of it) and the subtraction is exact. Saturation is the clamp; NaN
    passes through. When a gradient is wanted, PyTorch's cast is used instead (its gradient
    passes straight through the rounding)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return cast_e4m3(x, scale).to(dtype)
    flat = x.reshape(-1, x.shape[-1]) if x.dim() else x.reshape(1, 1)
    out = torch.empty(flat.shape, dtype=dtype, device=x.device)
    rows = max(1, _PIECE // max(1, flat.shape[1])) if x.device.type == "cpu" else max(1, flat.shape[0])
    for i in range(0, flat.shape[0], rows):
        y = flat[i:i + rows].to(torch.float32, copy=True)
        y.mul_(scale).clamp_(-E4M3_MAX, E4M3_MAX)
        c = y.view(torch.int32).bitwise_and(_EXPONENT_BITS).clamp_(min=_MIN_E4M3_BINADE)
        c = c.add_(_TO_ROUNDING_CONSTANT).view(torch.float32)
        out[i:i + rows] = y.add_(c).sub_(c)
    return out.reshape(x.shape)


def fp32_reciprocal(scale: float) -> float:
    """1 / scale rounded to fp32, as TE computes a scale inverse."""
    return (1.0 / torch.tensor(scale, dtype=torch.float32)).item()


def gemm_scale(input_scale: float, weight_scale: float) -> float:
    """(1 / s_x) * (1 / s_w) in fp32: the one factor the GEMM applies to its fp32 accumulator, as
    cuBLASLt combines the two scale pointers TE passes (within fp32 rounding of applying them one
    after the other)."""
    return (torch.tensor(fp32_reciprocal(input_scale)) * fp32_reciprocal(weight_scale)).item()


def emulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Where the emulated GEMM holds E4M3 values: the model's 16-bit dtype (fast kernels, fp32
    accumulation) or float32."""
    return dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32


def emulated_gemm(xq: torch.Tensor, wq: torch.Tensor, scale: float, bias: torch.Tensor | None) -> torch.Tensor:
    """xq (..., K), wq (N, K): E4M3 values in one dtype -> scale * (xq @ wq^T) + bias (..., N),
    accumulated in fp32 and rounded once to that dtype (``addmm``'s alpha scales the fp32
    accumulator in oneDNN, MKL and cuBLAS; multiplying a rounded 16-bit product afterwards
    would round twice)."""
    x2 = xq.reshape(-1, xq.shape[-1])
    beta = 0 if bias is None else 1
    bias = xq.new_zeros(()) if bias is None else bias.to(xq.dtype)
    y = torch.addmm(bias, x2, wq.T, beta=beta, alpha=scale)
    return y.reshape(*xq.shape[:-1], wq.shape[0])


def fp8_linear_emulated(x: torch.Tensor, weight: torch.Tensor, input_scale: float, weight_scale: float,
                        bias: torch.Tensor | None = None) -> torch.Tensor:
    """The emulation without a cached weight: x (..., K), weight (N, K) -> (..., N) in x's dtype."""
    dtype = emulation_dtype(x.dtype)
    y = emulated_gemm(round_e4m3(x, input_scale, dtype), round_e4m3(weight, weight_scale, dtype),
                      gemm_scale(input_scale, weight_scale), bias)
    return y.to(x.dtype)


def scaled_mm_available(device: torch.device | str) -> bool:
    """True on CUDA devices with FP8 tensor cores (compute capability >= 8.9: Ada, Hopper, later)."""
    device = torch.device(device)
    return (device.type == "cuda" and torch.cuda.is_available() and hasattr(torch, "_scaled_mm")
            and torch.cuda.get_device_capability(device) >= (8, 9))


def backend_for(mode: str, device: torch.device | str) -> str:
    """The FP8Linear backend for weights on ``device``: 'auto' -> 'scaled_mm' where available,
    else 'emulate'; 'emulate' and 'scaled_mm' as named."""
    if mode == "auto":
        return "scaled_mm" if scaled_mm_available(device) else "emulate"
    if mode not in FP8_BACKENDS:
        raise ValueError(f"FP8 backend must be 'auto' or one of {FP8_BACKENDS}, not {mode!r}")
    return mode


def scaled_mm_gemm(x: torch.Tensor, wq: torch.Tensor, input_scale: float, weight_scale: float,
                   bias: torch.Tensor | None) -> torch.Tensor:
    """x (..., K) in the model dtype, wq (N, K) float8_e4m3fn -> (..., N) in x's dtype.

    ``torch._scaled_mm`` is a private PyTorch op (its signature changed across 2.x releases), but
    it is the only way to reach cuBLASLt's FP8 GEMM without Transformer Engine; it needs both
    dimensions of the first operand to be multiples of 16 (rows are zero-padded here, as vortex
    pads the sequence to a multiple of 16), the second operand column-major, and fp32 scale
    tensors, which it applies to the fp32 accumulator: out = scale_a * scale_b * (A @ B). This is
    its one call; where the op is missing (or the GPU has no FP8) ``scaled_mm_available`` is False,
    so ``backend_for('auto', ...)`` picks the emulation and nothing reaches here."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    pad = (-x2.shape[0]) % 16
    if pad:
        x2 = F.pad(x2, (0, 0, 0, pad))
    scale_a, scale_b = (torch.tensor(fp32_reciprocal(s), device=x.device) for s in (input_scale, weight_scale))
    y = torch._scaled_mm(cast_e4m3(x2, input_scale), wq.t(), scale_a=scale_a, scale_b=scale_b,
                         out_dtype=x.dtype, use_fast_accum=True)
    y = y[: x2.shape[0] - pad] if pad else y
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.to(x.dtype).reshape(*shape[:-1], wq.shape[0])


def fp8_linear_scaled_mm(x: torch.Tensor, weight: torch.Tensor, input_scale: float, weight_scale: float,
                         bias: torch.Tensor | None = None) -> torch.Tensor:
    """The fast path on CUDA (cc >= 8.9) without a cached weight: same arguments and result as
    ``fp8_linear_emulated`` up to the GEMM's accumulation order and precision."""
    return scaled_mm_gemm(x, cast_e4m3(weight, weight_scale), input_scale, weight_scale, bias)


class FP8Linear(nn.Linear):
    """``nn.Linear`` whose forward is TE's FP8 forward GEMM with constant scales.

    State-dict names are those of ``nn.Linear`` (``weight``, ``bias``), so official checkpoints
    load unchanged; the scales are plain floats set by the checkpoint loader (unit scales for a
    model built without a checkpoint). ``backend``: 'emulate' (any device) or 'scaled_mm'
    (CUDA, cc >= 8.9).

    The rounded weight e4m3(W * s_w) is kept after its first use without gradients (in the
    emulation dtype, or float8 for 'scaled_mm': one more copy of the weight, at 2 or 1 bytes per
    value) and recomputed when the weight tensor, its contents (in-place changes bump its
    version; writes through ``.data`` or to inference tensors do not: call ``clear_cache()``),
    the weight scale, the dtype or the device change."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, backend: str = "emulate"):
        super().__init__(in_features, out_features, bias=bias)
        self.input_scale, self.weight_scale = 1.0, 1.0
        self.backend = backend
        self._weight_cache: tuple | None = None

    def set_scales(self, input_scale: float, weight_scale: float) -> None:
        self.input_scale, self.weight_scale = float(input_scale), float(weight_scale)

    def clear_cache(self) -> None:
        self._weight_cache = None

    def quantised_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """e4m3(W * s_w) (N, K) as ``dtype`` (float8_e4m3fn, or a dtype holding E4M3 values)."""
        w = self.weight
        compute = (lambda: cast_e4m3(w.detach(), self.weight_scale)) if dtype == torch.float8_e4m3fn else (
            lambda: round_e4m3(w.detach(), self.weight_scale, dtype))
        if torch.is_grad_enabled() and w.requires_grad:
            return compute()
        version = -1 if w.is_inference() else w._version  # inference tensors keep no version
        key = (dtype, w.device, w.data_ptr(), version, self.weight_scale)
        if self._weight_cache is None or self._weight_cache[0] != key:
            self._weight_cache = None  # free the old copy before making the new one
            self._weight_cache = (key, compute())
        return self._weight_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "scaled_mm":
            wq = self.quantised_weight(torch.float8_e4m3fn)
            return scaled_mm_gemm(x, wq, self.input_scale, self.weight_scale, self.bias)
        if self.backend != "emulate":
            raise ValueError(f"FP8Linear.backend must be one of {FP8_BACKENDS}, not {self.backend!r}")
        dtype = emulation_dtype(x.dtype)
        y = emulated_gemm(round_e4m3(x, self.input_scale, dtype), self.quantised_weight(dtype),
                          gemm_scale(self.input_scale, self.weight_scale), self.bias)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, backend={self.backend}, "
                f"input_scale={self.input_scale:.6g}, weight_scale={self.weight_scale:.6g}")
