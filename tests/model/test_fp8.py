"""FP8 projections without Transformer Engine (evo2kit.model.fp8), against a plain per-element E4M3
rounding written out in Python (tests/support.py: e4m3, reference_fp8_linear)."""

from __future__ import annotations

import math

import numpy as np
import torch
from support import e4m3, reference_fp8_linear

from evo2kit.model.fp8 import FP8Linear, cast_e4m3, fp8_linear_emulated, round_e4m3


def test_e4m3_cast_saturates_and_keeps_nan():
    x = torch.tensor([0.0, 1e-9, 0.0013, 0.1, 1.0625, 1.1875, 447.0, 449.0, 465.0, 1e6,
                      math.inf, -math.inf, -500.0, math.nan])
    got = cast_e4m3(x, 1.0).float()
    want = torch.tensor([e4m3(float(v)) for v in x])
    assert torch.equal(got.isnan(), want.isnan()) and got[-1].isnan()
    assert torch.equal(got[:-1], want[:-1]), (got, want)
    assert got[9] == 448.0 and got[10] == 448.0 and got[11] == -448.0 and got[12] == -448.0
    assert got[4] == 1.0 and got[5] == 1.25  # ties to even: 1.0625 -> 1.0, 1.1875 -> 1.25


def test_emulated_projection_equals_plain_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 64, generator=g) * torch.logspace(-3, 1, 64)  # many binades, some saturate
    w = torch.randn(192, 64, generator=g) * 0.1
    sx, sw = 40.0, 1500.0  # |x| * sx beyond 448 for the largest inputs: saturation is exercised
    assert (x.abs() * sx > 448).any()
    lin = FP8Linear(64, 192, bias=False)
    lin.weight.data.copy_(w)
    lin.set_scales(sx, sw)
    with torch.no_grad():
        got = lin(x).double().numpy()
    ref = reference_fp8_linear(x, w, sx, sw)
    bound = 1e-6 * np.abs(ref).max()  # float32 accumulation over 64 terms
    assert np.abs(got - ref).max() <= bound
    # the comparison can fail: swapped scales or no FP8 at all are far outside the bound
    assert np.abs(got - reference_fp8_linear(x, w, sw, sx)).max() > 100 * bound
    assert np.abs(got - (x.double() @ w.double().T).numpy()).max() > 100 * bound


def test_fast_rounding_equals_the_float8_cast():
    """round_e4m3 (fp32 arithmetic) against PyTorch's float8 cast on every bf16 value times
    scales that move them across E4M3's subnormals, normals and saturation, and against the
    plain per-element rounding above on a sample."""
    every_bf16 = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    wide_fp32 = torch.randn(1 << 16, generator=torch.Generator().manual_seed(3)) * torch.logspace(-14, 4, 1 << 16)
    for x in (every_bf16, wide_fp32):
        for scale in (1.0, 3.7, 1000.0, 2.0 ** -10):
            got, want = round_e4m3(x, scale), cast_e4m3(x, scale).float()
            assert torch.equal(got.isnan(), want.isnan()), scale
            assert torch.equal(got[~got.isnan()], want[~want.isnan()]), scale
            in_bf16 = round_e4m3(x, scale, torch.bfloat16).float()
            assert torch.equal(in_bf16.isnan(), got.isnan()) and torch.equal(in_bf16.nan_to_num(), got.nan_to_num())
    sample = wide_fp32[::64]
    plain = torch.tensor([e4m3(float(v)) for v in sample * 37.0])  # the fp32 product, rounded
    assert torch.equal(round_e4m3(sample, 37.0), plain)
    assert (round_e4m3(wide_fp32, 1.0) != wide_fp32).float().mean() > 0.9  # it does round


def test_emulated_projection_in_bf16_rounds_once():
    """In a bf16 model the GEMM accumulates in fp32 and rounds once to bf16: each output is the
    bf16 rounding of a value within fp32 rounding of the reference. Multiplying a bf16 product
    by the scales afterwards (two roundings) misses this on about a quarter of the outputs."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 29, 96, generator=g).bfloat16()
    for bias in (False, True):
        lin = FP8Linear(96, 288, bias=bias)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(288, 96, generator=g) * 0.05)
            if bias:
                lin.bias.copy_(torch.randn(288, generator=g))
        lin = lin.bfloat16()
        lin.set_scales(60.0, 2500.0)
        with torch.no_grad():
            got = lin(x)
        assert got.dtype == torch.bfloat16
        ref = torch.from_numpy(reference_fp8_linear(x.float().reshape(-1, 96), lin.weight.detach().float(),
                                                    60.0, 2500.0))
        if bias:
            ref = ref + lin.bias.detach().double()
        tol = 1e-6 * ref.abs().max()
        lo, hi = (ref - tol).float().bfloat16().double(), (ref + tol).float().bfloat16().double()
        got = got.reshape(-1, 288).double()
        assert ((got >= lo) & (got <= hi)).all(), float((got - ref).abs().max())
    product = cast_e4m3(x, 60.0).double().reshape(-1, 96) @ cast_e4m3(lin.weight.detach(), 2500.0).double().T
    twice = (product.float().bfloat16().float() * (1 / 60.0) * (1 / 2500.0)).bfloat16().double() + lin.bias.double()
    assert ((twice < lo) | (twice > hi)).float().mean() > 0.05  # the check can fail


def test_rounded_weight_is_kept_until_the_weight_changes():
    g = torch.Generator().manual_seed(5)
    lin = FP8Linear(32, 96, bias=False)
    lin.set_scales(20.0, 300.0)
    x = torch.randn(5, 32, generator=g)
    with torch.no_grad():
        first = lin(x)
        kept = lin.quantised_weight(torch.float32)
        assert lin(x).equal(first) and lin.quantised_weight(torch.float32) is kept  # rounded once
        lin.weight.mul_(2.0)  # an in-place change
        assert lin(x).equal(fp8_linear_emulated(x, lin.weight, 20.0, 300.0)) and not lin(x).equal(first)
        lin.set_scales(20.0, 100.0)
        assert lin(x).equal(fp8_linear_emulated(x, lin.weight, 20.0, 100.0))
        lin.weight.data.copy_(torch.randn(96, 32, generator=g))  # behind autograd's back: stale ...
        stale = lin(x)
        lin.clear_cache()  # ... until the cache is cleared
        fresh = lin(x)
        assert fresh.equal(fp8_linear_emulated(x, lin.weight, 20.0, 100.0)) and not fresh.equal(stale)
        assert lin.bfloat16()(x.bfloat16()).equal(fp8_linear_emulated(x.bfloat16(), lin.weight, 20.0, 100.0))
    y = lin.float()(x.requires_grad_())  # with gradients: nothing kept, the rounding passes them through
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_nonfinite_inputs_saturate_or_propagate():
    lin = FP8Linear(8, 6, bias=False)
    torch.nn.init.normal_(lin.weight)
    lin.set_scales(4.0, 16.0)
    x = torch.randn(3, 8)
    x[0, 2], x[1, 5] = math.inf, math.nan
    with torch.no_grad():
        y = lin(x)
    assert torch.isfinite(y[0]).all() and torch.isnan(y[1]).all() and torch.isfinite(y[2]).all()
    ref = reference_fp8_linear(x, lin.weight.detach(), 4.0, 16.0)
    np.testing.assert_allclose(y[0].numpy(), ref[0], rtol=1e-5, atol=1e-6)  # inf -> 448 / 4
