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

Two implementations of the same math:
  * ``fp8_linear_emulated``: exact casts, fp32 products and fp32 accumulation, on any device.
    This is the "exact accumulation" setting (what BioNeMo measured as recovering the 1B).
  * ``fp8_linear_scaled_mm``: ``torch._scaled_mm(..., use_fast_accum=True)`` on CUDA GPUs of
    compute capability >= 8.9, the cuBLASLt FP8 GEMM with the reduced-precision accumulation TE's
    forward GEMM uses on Hopper (``_2X_ACC_FPROP = False`` in TE ``module/base.py``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

E4M3_MAX = 448.0  # largest finite float8 E4M3 ("fn" variant: no infinities) value
FP8_BACKENDS = ("emulate", "scaled_mm")


def cast_e4m3(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x * scale rounded to float8 E4M3 as TE does: product in fp32, round to nearest even,
    saturate to +-448 (inf included), NaN kept. Any shape -> same shape, torch.float8_e4m3fn.

    The clamp is needed because PyTorch's float -> float8_e4m3fn conversion turns values
    beyond the finite range into NaN instead of saturating."""
    return (x.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def fp32_reciprocal(scale: float) -> float:
    """1 / scale rounded to fp32, as TE computes a scale inverse."""
    return (1.0 / torch.tensor(scale, dtype=torch.float32)).item()


def fp8_linear_emulated(x: torch.Tensor, weight: torch.Tensor, input_scale: float, weight_scale: float,
                        bias: torch.Tensor | None = None) -> torch.Tensor:
    """The reference: x (..., K), weight (N, K) -> (..., N) in x's dtype. The E4M3 values are
    multiplied and summed in fp32 (exact products; fp32 accumulation), then rescaled."""
    xq = cast_e4m3(x, input_scale).float()
    wq = cast_e4m3(weight, weight_scale).float()
    y = (xq @ wq.T) * fp32_reciprocal(input_scale) * fp32_reciprocal(weight_scale)
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def scaled_mm_available(device: torch.device | str) -> bool:
    """True on CUDA devices with FP8 tensor cores (compute capability >= 8.9: Ada, Hopper, later)."""
    device = torch.device(device)
    return (device.type == "cuda" and torch.cuda.is_available() and hasattr(torch, "_scaled_mm")
            and torch.cuda.get_device_capability(device) >= (8, 9))


def fp8_linear_scaled_mm(x: torch.Tensor, weight: torch.Tensor, input_scale: float, weight_scale: float,
                         bias: torch.Tensor | None = None) -> torch.Tensor:
    """The fast path on CUDA (cc >= 8.9): same arguments and result as ``fp8_linear_emulated``
    up to the GEMM's accumulation order and precision.

    ``torch._scaled_mm`` is a private PyTorch op (its signature changed across 2.x releases), but
    it is the only way to reach cuBLASLt's FP8 GEMM without Transformer Engine; it needs both
    dimensions of the first operand to be multiples of 16 (rows are zero-padded here, as vortex
    pads the sequence to a multiple of 16), the second operand column-major, and fp32 scale
    tensors, which it applies to the fp32 accumulator: out = scale_a * scale_b * (A @ B)."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    pad = (-x2.shape[0]) % 16
    if pad:
        x2 = F.pad(x2, (0, 0, 0, pad))
    xq, wq = cast_e4m3(x2, input_scale), cast_e4m3(weight, weight_scale)
    scale_a, scale_b = (torch.tensor(fp32_reciprocal(s), device=x.device) for s in (input_scale, weight_scale))
    y = torch._scaled_mm(xq, wq.t(), scale_a=scale_a, scale_b=scale_b, out_dtype=x.dtype, use_fast_accum=True)
    y = y[: x2.shape[0] - pad] if pad else y
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.to(x.dtype).reshape(*shape[:-1], weight.shape[0])


class FP8Linear(nn.Linear):
    """``nn.Linear`` whose forward is TE's FP8 forward GEMM with constant scales.

    State-dict names are those of ``nn.Linear`` (``weight``, ``bias``), so official checkpoints
    load unchanged; the scales are plain floats set by the checkpoint loader (unit scales for a
    model built without a checkpoint). ``backend``: 'emulate' (any device) or 'scaled_mm'
    (CUDA, cc >= 8.9)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, backend: str = "emulate"):
        super().__init__(in_features, out_features, bias=bias)
        self.input_scale, self.weight_scale = 1.0, 1.0
        self.backend = backend

    def set_scales(self, input_scale: float, weight_scale: float) -> None:
        self.input_scale, self.weight_scale = float(input_scale), float(weight_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend not in FP8_BACKENDS:
            raise ValueError(f"FP8Linear.backend must be one of {FP8_BACKENDS}, not {self.backend!r}")
        fn = fp8_linear_scaled_mm if self.backend == "scaled_mm" else fp8_linear_emulated
        return fn(x, self.weight, self.input_scale, self.weight_scale, self.bias)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, backend={self.backend}, "
                f"input_scale={self.input_scale:.6g}, weight_scale={self.weight_scale:.6g}")
