"""Plain references for the fast paths of :mod:`evo2kit.model`, written for reading, not speed.

Everything here computes in float64 with explicit loops, so each line says what the model
means; ``tests/test_reference.py`` checks the fast code (grouped ``conv1d``, FFT convolutions,
the closed-form modal state, fused or blocked attention over a cache) against it.

1. :func:`causal_conv` and :func:`impulse_conv` - a causal depthwise convolution as a sum over
   filter taps, in the two orders Evo 2 stores filters in: as ``conv1d`` weights (the short FIRs
   and HCS: the last tap multiplies the current input) and as impulse responses (HCM and HCL,
   applied by FFT: the first tap multiplies the current input).
2. :func:`hyena_filter` - one Hyena mixer (short FIR, then HCS / HCM / HCL, gated): the HCL filter
   as its modal recurrence, one step a position (:func:`modal_filter_scan`).
3. :func:`attention` - causal attention of a chunk to a key/value cache, with the mask and the
   softmax written out.
"""

from __future__ import annotations

import math

import torch

from evo2kit.model.striped_hyena import HyenaFilter


def causal_conv(x: torch.Tensor, w: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
    """y[b, c, t] = sum_j w[c, j] * x[b, c, t - (K - 1) + j], inputs before the start taken from
    ``past`` (B, C, P) when given, else zero.

    x: (B, C, L); w: (C, 1, K) or (C, K). Returns (B, C, L) float64.
    """
    x, w = x.double(), w.double().reshape(w.shape[0], -1)
    K, L = w.shape[-1], x.shape[-1]
    before = x.new_zeros(*x.shape[:-1], K - 1) if past is None else past.double()[..., -(K - 1):]
    if before.shape[-1] < K - 1:  # a past shorter than the filter: zeros before it
        before = torch.cat([x.new_zeros(*x.shape[:-1], K - 1 - before.shape[-1]), before], -1)
    padded = torch.cat([before, x], -1)  # padded[..., t + K - 1] is x[..., t]
    y = torch.zeros_like(x)
    for j in range(K):  # tap j reaches back K - 1 - j positions
        y += w[:, j, None] * padded[..., j:j + L]
    return y


def impulse_conv(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """y[b, c, t] = sum_{i <= t} h[c, i] * x[b, c, t - i]: x filtered by the impulse response h
    (taps beyond the input's length never reach it).

    x: (B, C, L); h: (C, 1, K) or (C, K). Returns (B, C, L) float64.
    """
    x, h = x.double(), h.double().reshape(h.shape[0], -1)
    L = x.shape[-1]
    y = torch.zeros_like(x)
    for i in range(min(h.shape[-1], L)):  # tap i: the input i positions back
        y[..., i:] += h[:, i, None] * x[..., :L - i]
    return y


def modal_filter_scan(u: torch.Tensor, log_poles: torch.Tensor, residues: torch.Tensor,
                      state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The HCL long convolution y = h * u with h[d, t] = sum_s residues[d, s] * p[d, s]^t,
    p = exp(log_poles), as the recurrence it stands for:

        x[s] <- p[s] * x[s] + u[t]          (x: the modal state, one number per pole)
        y[t]  = sum_s residues[s] * x[s]

    u: (B, D, L); log_poles: (D, S, 1) or (D, S); residues: (D, S); state: (B, D, S) carried
    from earlier positions (None: zeros). Returns (y (B, D, L), state after the last position),
    float64. The state after position t is sum_{i <= t} p^(t - i) u[i].
    """
    p = log_poles.double().reshape(residues.shape).exp()  # (D, S)
    r = residues.double()
    x = u.new_zeros(u.shape[0], *r.shape, dtype=torch.float64) if state is None else state.double().clone()
    y = torch.empty(u.shape, dtype=torch.float64, device=u.device)
    for t in range(u.shape[-1]):
        x = p * x + u[..., t, None].double()
        y[..., t] = (r * x).sum(-1)
    return y, x


def hyena_filter(f: HyenaFilter, z: torch.Tensor) -> torch.Tensor:
    """What ``f(z)`` computes, whole sequence at once. z: (B, L, 3D) -> (B, L, D) float64.

    The short FIR runs on all 3D projected channels; they are interleaved (x2, x1, v); the
    inner filter runs on u = x1 * v and its output is gated by x2. HCS and HCM share one filter
    per group of channels (``h`` repeated; HCS's in conv1d order, HCM's an impulse response);
    HCM and HCL add the skip term D * u.
    """
    z = causal_conv(z.permute(0, 2, 1), f.short_filter_weight)  # (B, 3D, L)
    x2, x1, v = z[:, 0::3], z[:, 1::3], z[:, 2::3]
    u = x1 * v
    if f.kind == "hcl":
        y, _ = modal_filter_scan(u, f.log_poles, f.residues)
    else:
        h = f.h.repeat_interleave(f.hidden_size // f.h.shape[0], 0)  # (D, 1, K)
        y = causal_conv(u, h) if f.kind == "hcs" else impulse_conv(u, h)
    if f.D is not None:
        y = y + u * f.D.double()[:, None]
    return (x2 * y).permute(0, 2, 1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int) -> torch.Tensor:
    """Causal attention of queries at positions offset .. offset+L-1 to keys 0 .. offset+L-1.

    q: (B, H, L, hd); k, v: (B, H, offset+L, hd) (the cache, then this chunk). Returns
    (B, H, L, hd) float64: softmax(q k^T / sqrt(hd), keys after the query masked out) v.
    """
    q, k, v = q.double(), k.double(), v.double()
    L, S = q.shape[2], k.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, L, S)
    query_pos = torch.arange(offset, offset + L)[:, None]
    key_pos = torch.arange(S)[None, :]
    scores = scores.masked_fill(key_pos > query_pos, -math.inf)  # a query never sees a later key
    return torch.softmax(scores, dim=-1) @ v
