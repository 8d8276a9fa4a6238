"""The fast paths of evo2kit.model against the plain references of evo2kit.reference (float32 fast
code against float64 loops: agreement to float32 rounding, relative to the output's size)."""

from __future__ import annotations

import pytest
import torch

from evo2kit.model import reference
from evo2kit.model.striped_hyena import (
    Evo2Config,
    StripedHyena2,
    attend_with_cache,
    causal_depthwise_conv,
    fft_causal_conv,
)

CFG = Evo2Config(model_name="reference-test", hidden_size=32, num_layers=4, hcs_layer_idxs=[0], hcm_layer_idxs=[1],
                 hcl_layer_idxs=[2], attn_layer_idxs=[3], num_attention_heads=4, inner_mlp_size=64, state_size=8,
                 hcs_filter_groups=16, hcm_filter_groups=16, max_seqlen=1024)


def assert_close(fast: torch.Tensor, ref: torch.Tensor, tol: float = 2e-5):
    scale = float(ref.abs().max())
    assert scale > 0
    err = float((fast.double() - ref).abs().max())
    assert err <= tol * scale, f"max |fast - reference| = {err:.3g}, {err / scale:.3g} of the largest value"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = StripedHyena2(CFG).init_weights(0)
    with torch.no_grad():  # poles spread so that some decay within the test lengths and some do not
        f = m.blocks[2].filter
        f.log_poles.copy_(-torch.rand_like(f.log_poles) * 0.5)
    return m.eval().requires_grad_(False)


def test_causal_conv_against_grouped_conv1d_and_fft():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 6, 40, generator=g), torch.randn(6, 1, 5, generator=g)
    assert_close(causal_depthwise_conv(x, w, None), reference.causal_conv(x, w))
    past = torch.randn(2, 6, 4, generator=g)
    assert_close(causal_depthwise_conv(x, w, past), reference.causal_conv(x, w, past))
    h = torch.randn(6, 1, 64, generator=g)  # an impulse response longer than x: cut to L by the FFT path
    assert_close(fft_causal_conv(x, h), reference.impulse_conv(x, h))
    # one filter in the two orders
    assert_close(reference.impulse_conv(x, w), reference.causal_conv(x, w.flip(-1)), tol=1e-12)


@pytest.mark.parametrize("block", [0, 1, 2], ids=["hcs", "hcm", "hcl"])
def test_hyena_filter_whole_and_in_chunks(model, block):
    """The fast filter, whole and in three chunks with its carried state, equals the reference
    on the whole sequence; for HCL the carried modal state equals the recurrence's."""
    f = model.blocks[block].filter
    z = torch.randn(2, 150, 3 * CFG.hidden_size, generator=torch.Generator().manual_seed(block))
    want = reference.hyena_filter(f, z)
    with torch.no_grad():
        assert_close(f(z), want)
        state, parts = f.new_state(), []
        for piece in z.split([64, 50, 36], dim=1):
            parts.append(f(piece, state))
    assert_close(torch.cat(parts, 1), want)
    if f.kind == "hcl":
        zc = reference.causal_conv(z.permute(0, 2, 1), f.short_filter_weight)
        _, modal = reference.modal_filter_scan(zc[:, 1::3] * zc[:, 2::3], f.log_poles, f.residues)
        assert_close(state.modal, modal)


def test_modal_scan_equals_the_impulse_response_convolution(model):
    """The recurrence and the convolution with h[t] = sum_s R p^t are one filter written twice."""
    f = model.blocks[2].filter
    u = torch.randn(1, CFG.hidden_size, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.arange(30, dtype=torch.float64)
    h = (f.residues.double()[..., None] * (f.log_poles.double() * t).exp()).sum(1)  # (D, L)
    y, _ = reference.modal_filter_scan(u, f.log_poles, f.residues)
    assert_close(y, reference.impulse_conv(u, h), tol=1e-12)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-flash", "key-blocks"])
def test_attention_over_a_cache(fused):
    g = torch.Generator().manual_seed(4)
    offset, L = 37, 11
    q = torch.randn(2, 4, L, 8, generator=g)
    k, v = torch.randn(2, 4, offset + L, 8, generator=g), torch.randn(2, 4, offset + L, 8, generator=g)
    want = reference.attention(q, k, v, offset)
    assert_close(attend_with_cache(q, k, v, offset, block=16, fused=fused), want)
    # no cache: the chunk attends causally to itself, as scaled_dot_product_attention does
    first = torch.nn.functional.scaled_dot_product_attention(q, k[:, :, :L], v[:, :, :L], is_causal=True)
    assert_close(first, reference.attention(q, k[:, :, :L], v[:, :, :L], 0))
