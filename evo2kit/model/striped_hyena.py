"""StripedHyena 2, the Evo 2 architecture, in plain PyTorch.

One file tells the whole model. Module names and parameter shapes are exactly those of the
official checkpoints (vortex 1.1.0), and in float32 the forward pass reproduces the reference
bit for bit on CPU. A block is one of four kinds:

    HCS  Hyena, short explicit filter (length 7)      } gated convolutions:
    HCM  Hyena, medium explicit filter (length 128)    }   y = x2 * (h * (x1 * v))
    HCL  Hyena, long implicit filter (modal: poles and residues, as long as the input)
    ATTN multi-head attention with rotary embeddings

each followed by a gated MLP, both pre-normed with RMSNorm and residual.

The forward pass is *stateful*: given an ``InferenceState`` it consumes a chunk of the input
and carries forward everything later positions need (the tails of the short convolutions,
the modal state of the long filters, the attention keys and values), so a sequence fed chunk
by chunk gives the logits of one whole forward pass, in memory bounded by the chunk size
plus the attention cache.

Shapes: B batch, L length, D hidden size, H heads, S state size (poles per channel).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from evo2kit.model.fp8 import FP8Linear
from evo2kit.model.state import HyenaState, InferenceState, KVCache, ModalState

CONFIG_DIR = Path(__file__).with_name("configs")
_FILTER_CACHE_MAX = 1 << 26  # elements of a cached HCL filter (D * L), 256 MB in float32

# published model name -> official YAML shipped in evo2kit/configs (copied verbatim from evo2
# 0.6.0; names and configs as in ArcInstitute/evo2 evo2/utils.py, CONFIG_MAP).
PUBLISHED_CONFIGS = {
    "evo2_1b_base": "evo2-1b-8k",
    "evo2_7b_base": "evo2-7b-8k",
    "evo2_7b": "evo2-7b-1m",
    "evo2_7b_262k": "evo2-7b-262k",
    "evo2_7b_microviridae": "evo2-7b-8k",
    "evo2_40b_base": "evo2-40b-8k",
    "evo2_40b": "evo2-40b-1m",
    "evo2_20b": "evo2-20b-1m",
    # NVIDIA's bf16-robust fine-tunes (NGC evo2/1b-8k-bf16, evo2/40b-1m-fp8-bf16): the same
    # architectures, trained to run without FP8, exported to the vortex layout without FP8 metadata
    "1b-8k-bf16": "evo2-1b-8k",
    "40b-1m-fp8-bf16": "evo2-40b-1m",
}
_BF16_FINETUNES = ("1b-8k-bf16", "40b-1m-fp8-bf16")

# YAML keys that select alternatives we implement only one of: the value Evo 2 uses.
_FIXED_KEYS = {
    "interleave": True,
    "column_split_hyena": False,
    "hyena_flip_x1x2": False,
    "proj_groups": 1,
    "tie_embeddings": True,
    "short_filter_bias": False,
}


@dataclass
class Evo2Config:
    """StripedHyena 2 hyper-parameters, named as in the Evo 2 YAML files."""

    model_name: str = "evo2kit"
    vocab_size: int = 512
    hidden_size: int = 1920
    num_layers: int = 25
    attn_layer_idxs: list[int] = field(default_factory=list)
    hcl_layer_idxs: list[int] = field(default_factory=list)
    hcm_layer_idxs: list[int] = field(default_factory=list)
    hcs_layer_idxs: list[int] = field(default_factory=list)
    num_attention_heads: int = 15
    inner_mlp_size: int | None = None  # None: vortex's rule from hidden_size
    inner_size_multiple_of: int = 64
    state_size: int = 16
    short_filter_length: int = 3
    hcs_filter_length: int = 7
    hcs_filter_groups: int = 128
    hcm_filter_length: int = 128
    hcm_filter_groups: int = 128
    eps: float = 1e-6
    rotary_emb_base: float = 1_000_000
    use_interpolated_rotary_pos_emb: bool = False
    rotary_emb_scaling_factor: float = 1.0
    mlp_activation: str = "gelu"
    evo2_style_activations: bool = True  # activation only in block 0's MLP
    qkv_proj_bias: bool = True
    mha_out_proj_bias: bool = True
    hyena_out_proj_bias: bool = True
    final_norm: bool = True
    column_split: bool = True  # checkpoint Wqkv rows are per head [q, k, v]
    use_fp8_input_projections: bool = False
    max_seqlen: int = 8192

    def __post_init__(self):
        if self.inner_mlp_size is None:
            inner = int(2 * self.hidden_size * 4 / 3)
            m = self.inner_size_multiple_of
            self.inner_mlp_size = m * ((inner + m - 1) // m)
        kinds = [self.block_kind(i) for i in range(self.num_layers)]  # validates the idx lists
        if self.hidden_size % self.num_attention_heads and "attn" in kinds:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        for kind in ("hcs", "hcm"):
            if self.hidden_size % getattr(self, f"{kind}_filter_groups"):
                raise ValueError(f"hidden_size must be divisible by {kind}_filter_groups")

    def block_kind(self, i: int) -> str:
        """'attn', 'hcl', 'hcm' or 'hcs' (vortex's precedence when lists overlap)."""
        for kind in ("attn", "hcl", "hcm", "hcs"):
            if i in getattr(self, f"{kind}_layer_idxs"):
                return kind
        raise ValueError(f"block {i} is in none of attn/hcl/hcm/hcs_layer_idxs")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Evo2Config":
        """From an Evo 2 YAML-style dict; run-time keys (flash attention, kernels...) are ignored."""
        for key, value in _FIXED_KEYS.items():
            if key in d and d[key] != value:
                raise ValueError(f"config {key}={d[key]!r} is not supported (Evo 2 uses {value!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        for k in ("attn_layer_idxs", "hcl_layer_idxs", "hcm_layer_idxs", "hcs_layer_idxs"):
            kwargs[k] = [int(i) for i in kwargs.get(k, [])]
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Evo2Config":
        import yaml

        try:
            d = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(d, dict) or not d:  # an empty file would silently give the default config
            raise ValueError(f"{path}: expected an Evo 2 config (a mapping with keys such as hidden_size, "
                             f"num_layers), found {'nothing' if d is None else type(d).__name__ + ' ' + repr(d)[:40]}")
        return cls.from_dict(d)

    @classmethod
    def published(cls, name: str) -> "Evo2Config":
        """Config of a published Evo 2 model, e.g. 'evo2_7b' or 'evo2-7b-1m'."""
        stem = PUBLISHED_CONFIGS.get(name, name)
        path = CONFIG_DIR / f"{stem}.yml"
        if not path.is_file():
            raise KeyError(f"unknown Evo 2 model {name!r}; known: {sorted(PUBLISHED_CONFIGS)}")
        config = cls.from_yaml(path)
        if name in _BF16_FINETUNES:
            config = dataclasses.replace(config, use_fp8_input_projections=False)
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x / (x.norm(2, dim=-1, keepdim=True) * self.dim ** (-1.0 / 2) + self.eps))


class GatedMLP(nn.Module):
    """l3(act(l1 z) * l2 z); with evo2_style_activations the activation is the identity
    after block 0."""

    def __init__(self, cfg: Evo2Config, layer_idx: int):
        super().__init__()
        d, inner = cfg.hidden_size, cfg.inner_mlp_size
        self.l1 = nn.Linear(d, inner, bias=False)
        self.l2 = nn.Linear(d, inner, bias=False)
        self.l3 = nn.Linear(inner, d, bias=False)
        if layer_idx > 0 and cfg.evo2_style_activations:
            self.act = nn.Identity()
        else:
            self.act = {"gelu": nn.GELU(), "silu": nn.SiLU()}[cfg.mlp_activation]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.l3(self.act(self.l1(z)) * self.l2(z))


def causal_depthwise_conv(x: torch.Tensor, w: torch.Tensor, tail: torch.Tensor | None) -> torch.Tensor:
    """Causal depthwise convolution in float32: y[t] = sum_j w[j] x[t + j - K + 1].

    x: (B, C, L); w: (C, 1, K); tail: (B, C, K-1) inputs preceding x, or None for zeros.
    Returns (B, C, L) float32.
    """
    K = w.shape[-1]
    if tail is None:
        return F.conv1d(x.float(), w.float(), padding=K - 1, groups=x.shape[1])[..., : x.shape[-1]]
    return F.conv1d(torch.cat([tail, x], dim=-1).float(), w.float(), groups=x.shape[1])


def conv_step(x: torch.Tensor, w: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``causal_depthwise_conv`` for one new position (a decoding step), with the tail it leaves:
    x (B, C, 1), w (C, 1, K), tail (B, C, K-1) -> (y (B, C, 1) float32, the next tail (B, C, K-1)).
    One contraction over the taps: a grouped conv1d costs far more per call at this size."""
    window = torch.cat([tail, x], -1)
    return torch.einsum("bck,ck->bc", window.float(), w.float()[:, 0])[..., None], window[..., 1:]


def fft_causal_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal convolution by FFT, vortex's ``fftconv_func`` without its bias term.

    u: (B, D, L) float32; k: (D, 1, Lk) float32 (cut or zero-padded to L). Returns (B, D, L).
    """
    L = u.shape[-1]
    n = 2 * L
    k_f = (torch.fft.rfft(k[..., :L], n=n) / n)[:, 0][None]  # (1, D, L+1)
    u_f = torch.fft.rfft(u, n=n)
    return torch.fft.irfft(u_f * k_f, n=n, norm="forward")[..., :L]


def _new_tail(tail: torch.Tensor | None, x: torch.Tensor, n: int) -> torch.Tensor:
    """The last n steps of [tail, x] along the last axis (zeros before the start)."""
    if x.shape[-1] >= n:  # copy only the n steps kept, not the whole chunk (and not a view that pins it)
        return x[..., x.shape[-1] - n:].detach().clone()
    if tail is None:
        tail = x.new_zeros(*x.shape[:-1], n)
    return torch.cat([tail, x], dim=-1)[..., -n:].detach()


class HyenaFilter(nn.Module):
    """The short FIR on the projections, then one of the three Hyena convolutions, gated."""

    def __init__(self, cfg: Evo2Config, kind: str):
        super().__init__()
        d = cfg.hidden_size
        self.kind, self.hidden_size = kind, d
        self.short_filter_weight = nn.Parameter(torch.empty(3 * d, 1, cfg.short_filter_length))
        if kind == "hcl":
            # h[d, t] = sum_s residues[d, s] * exp(log_poles[d, s] * t)
            self.log_poles = nn.Parameter(torch.empty(d, cfg.state_size, 1))
            self.residues = nn.Parameter(torch.empty(d, cfg.state_size))
            self.D = nn.Parameter(torch.empty(d))
        else:
            groups, length = getattr(cfg, f"{kind}_filter_groups"), getattr(cfg, f"{kind}_filter_length")
            self.h = nn.Parameter(torch.empty(groups, 1, length))
            self.D = nn.Parameter(torch.empty(d)) if length >= 128 else None

    def long_filter(self, t: torch.Tensor) -> torch.Tensor:
        """HCL impulse response at integer times t (1, 1, L): (1, D, L) float32."""
        return (self.residues.float()[..., None] * (self.log_poles.float() * t).exp()).sum(1)[None]

    def cached_long_filter(self, t: torch.Tensor) -> torch.Tensor:
        """``long_filter(t)``, reused while the poles and residues are unchanged and no
        gradient is wanted (its (D, S, L) exponentials dominate small models' inference)."""
        return self._cached("filter", t, self.hidden_size, self.long_filter)

    def _cached(self, name: str, t: torch.Tensor, size: int, compute) -> torch.Tensor:
        """``compute(t)`` for times ``t`` (1, 1, L), kept per (name, L, device) while the poles and
        residues are unchanged, no gradient is wanted and ``size`` x L stays under the cache limit.
        Chunked and prefix-shared passes repeat the same few lengths, so their exponentials repeat."""
        if torch.is_grad_enabled() or t.shape[-1] * size > _FILTER_CACHE_MAX:
            return compute(t)
        params = (self.log_poles.data_ptr(), self.log_poles._version, self.residues.data_ptr(), self.residues._version)
        cache = getattr(self, "_time_cache", None)
        if cache is None or cache[0] != params:
            cache = self._time_cache = (params, {})
        key = (name, t.shape[-1], t.device)
        if key not in cache[1]:
            if len(cache[1]) >= 8:  # a few lengths at a time: drop the oldest
                cache[1].pop(next(iter(cache[1])))
            cache[1][key] = compute(t)
        return cache[1][key]

    def new_state(self) -> HyenaState | ModalState:
        return ModalState() if self.kind == "hcl" else HyenaState()

    def forward(self, z: torch.Tensor, state: HyenaState | ModalState | None = None) -> torch.Tensor:
        """z: (B, L, 3D) projected input -> (B, L, D) (a transposed view, as in vortex).
        ``state`` (from ``new_state``, advanced in place) carries the tails and the modal state
        across chunks."""
        dtype, L = z.dtype, z.shape[1]
        z = z.permute(0, 2, 1)  # (B, 3D, L)
        step = state is not None and state.fir is not None and L == 1  # decoding: one position
        if step:
            z, state.fir = conv_step(z, self.short_filter_weight, state.fir)
        else:
            tail = None if state is None else state.fir
            if state is not None:
                state.fir = _new_tail(tail, z, self.short_filter_weight.shape[-1] - 1)
            z = causal_depthwise_conv(z, self.short_filter_weight, tail)
        z = z.to(dtype)
        x2, x1, v = z[:, 0::3], z[:, 1::3], z[:, 2::3]  # channels are interleaved (x2, x1, v)
        u = x1 * v

        if self.kind == "hcl":
            return self._long_conv(u, x2, state).permute(0, 2, 1)

        h = self.h.repeat_interleave(self.hidden_size // self.h.shape[0], 0)  # (D, 1, K)
        if step:  # HCS: conv1d taps; HCM: an impulse response, its first tap on the newest input
            y, state.inner = conv_step(u, h if self.kind == "hcs" else h.flip(-1), state.inner)
            if self.kind == "hcm":
                y = y + u.float() * self.D.unsqueeze(-1)
            return (x2 * y.to(dtype)).permute(0, 2, 1)
        tail = None if state is None else state.inner
        if state is not None:
            state.inner = _new_tail(tail, u, h.shape[-1] - 1)
        if self.kind == "hcs":
            y = causal_depthwise_conv(u, h, tail).to(dtype)
        else:  # hcm: FFT convolution plus the skip term D * u, in float32
            uf = u.float()
            if tail is None:
                y = fft_causal_conv(uf, h.float())
            else:
                y = fft_causal_conv(torch.cat([tail.float(), uf], -1), h.float())[..., -L:]
            y = (y + uf * self.D.unsqueeze(-1)).to(dtype)
        return (x2 * y).permute(0, 2, 1)

    def _long_conv(self, u: torch.Tensor, x2: torch.Tensor, state: ModalState | None) -> torch.Tensor:
        """HCL: y = (h * u + D u) x2 with h as long as the input. u, x2: (B, D, L) -> (B, D, L).

        With a state, the past enters through the modal state s (B, D, S) float32,
        s[s_i] = sum_{i < now} p^(now-1-i) u[i], p = exp(log_poles), so that
        y_past[t] = sum_s residues * p^(t+1) * s.
        """
        L = u.shape[-1]
        if state is not None and state.modal is not None and L == 1:
            return self._long_step(u, x2, state)
        n = 2 * L
        t = torch.arange(L, device=u.device)[None, None]
        H = torch.fft.rfft(self.cached_long_filter(t), n=n) / n
        X = torch.fft.fft(u.float(), n=n)[..., : H.shape[-1]]
        y = torch.fft.irfft(X * H, n=n, norm="forward")[..., :L]
        if state is not None:
            log_p = self.log_poles.float()  # (D, S, 1)
            size = self.hidden_size * log_p.shape[1]
            s = state.modal
            if s is not None:
                decay = self._cached("decay", t, size,
                                     lambda t: self.residues.float()[..., None] * (log_p * (t + 1)).exp())
                y = y + torch.einsum("bds,dsl->bdl", s, decay)  # decay: (D, S, L)
                s = s * (log_p[..., 0] * L).exp()
            else:
                s = 0.0
            carry = self._cached("carry", t, size, lambda t: (log_p * (t.shape[-1] - 1 - t)).exp())  # (D, S, L)
            state.modal = (s + torch.einsum("bdl,dsl->bds", u.float(), carry)).detach()
        y = y.to(u.dtype)
        return (y + u * self.D.unsqueeze(-1)) * x2

    def _long_step(self, u: torch.Tensor, x2: torch.Tensor, state: ModalState) -> torch.Tensor:
        """``_long_conv`` for one position (a decoding step) as the modal recurrence itself:
        y = sum_s R (p s) + h[0] u and s' = p s + u, with h[0] = sum_s R. u, x2: (B, D, 1)."""
        p = self.log_poles.float()[..., 0].exp()  # (D, S)
        residues = self.residues.float()
        uf = u.float()  # (B, D, 1)
        y = (state.modal * (residues * p)).sum(-1, keepdim=True) + uf * residues.sum(-1, keepdim=True)
        state.modal = (state.modal * p + uf).detach()
        return (y.to(u.dtype) + u * self.D.unsqueeze(-1)) * x2


class HyenaBlock(nn.Module):
    def __init__(self, cfg: Evo2Config, layer_idx: int):
        super().__init__()
        d = cfg.hidden_size
        self.pre_norm, self.post_norm = RMSNorm(d, cfg.eps), RMSNorm(d, cfg.eps)
        self.filter = HyenaFilter(cfg, cfg.block_kind(layer_idx))
        # the one FP8 layer of Evo 2 (a Transformer Engine Linear in vortex); unit scales until
        # a checkpoint's are loaded (evo2kit.checkpoints.official)
        linear = FP8Linear if cfg.use_fp8_input_projections else nn.Linear
        self.projections = linear(d, 3 * d, bias=cfg.qkv_proj_bias)
        self.out_filter_dense = nn.Linear(d, d, bias=cfg.hyena_out_proj_bias)
        self.mlp = GatedMLP(cfg, layer_idx)

    def new_state(self) -> HyenaState | ModalState:
        return self.filter.new_state()

    def forward(self, u: torch.Tensor, state: HyenaState | ModalState | None = None) -> torch.Tensor:
        """u: (B, L, D) -> (B, L, D)."""
        z = self.filter(self.projections(self.pre_norm(u)), state)
        u = self.out_filter_dense(z) + u
        return self.mlp(self.post_norm(u)) + u


class RotaryEmbedding(nn.Module):
    """NeoX-style rotary position embedding (rotate halves), positions optionally divided by a
    linear scaling factor (the 262k / 1M context-extended models)."""

    def __init__(self, head_dim: int, base: float, scaling_factor: float = 1.0):
        super().__init__()
        self.scaling_factor = scaling_factor
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        """x: (B, L, H, hd) at positions offset.. offset+L-1 -> rotated, same dtype (math in fp32)."""
        L = x.shape[1]
        t = torch.arange(offset, offset + L, device=x.device, dtype=torch.float32) / self.scaling_factor
        freqs = torch.outer(t, self.inv_freq.float())
        cos, sin = torch.cos(freqs).to(x.dtype), torch.sin(freqs).to(x.dtype)
        cos = torch.cat([cos, cos], -1).float()[None, :, None]
        sin = torch.cat([sin, sin], -1).float()[None, :, None]
        xf = x.float()
        x1, x2 = xf.chunk(2, dim=-1)
        return (xf * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)


# The kernel F.scaled_dot_product_attention runs on CPU, reached by its private aten name because only
# that entry point also returns the log-sum-exp; absent from some builds (then None, see below).
_FLASH_CPU_OP = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def flash_attention_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's fused CPU flash attention: q (B, H, L, hd), k, v (B, H, S, hd) -> (out (B, H, L, hd),
    log-sum-exp of each query's scaled scores (B, H, L) float32).

    Why the private op ``torch.ops.aten._scaled_dot_product_flash_attention_for_cpu``: the public
    ``F.scaled_dot_product_attention`` runs this same kernel but drops the log-sum-exp, and merging
    attention to the cache with attention within the chunk needs it. When a PyTorch build lacks the op,
    ``attend_with_cache`` does not call this and runs its own key-blocked softmax (same result to float
    rounding, slower); asking for the fused path there is a RuntimeError saying so."""
    if _FLASH_CPU_OP is None:
        raise RuntimeError(f"this PyTorch ({torch.__version__}) has no "
                           "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu; use fused=False")
    out, lse = _FLASH_CPU_OP(q, k, v, is_causal=is_causal)[:2]
    return out, lse


def attention_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                  block: int = 4096, fused: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention with each query's log-sum-exp, so that attention over separate key sets
    can be merged (:func:`merge_attention`).

    q: (B, H, L, hd); k, v: (B, H, S, hd) -> (out (B, H, L, hd) float32, lse (B, H, L) float32).
    causal: query i sees keys 0..i (a chunk attending to itself, L == S). On CPU (``fused`` None or
    True) PyTorch's fused flash kernel; otherwise the softmax merged across key blocks with a running
    maximum and sum (the flash-attention recurrence) in fp32, L x block scores per head at a time."""
    if fused or (fused is None and q.device.type == "cpu" and _FLASH_CPU_OP is not None):
        y, lse = flash_attention_cpu(q, k, v, is_causal=causal)
        return y.float(), lse
    S, L = k.shape[2], q.shape[2]
    qf = q.float() * q.shape[-1] ** -0.5
    q_pos = torch.arange(L, device=q.device)[:, None]
    m = torch.full((*q.shape[:3], 1), -torch.inf, device=q.device)
    total = torch.zeros_like(m)
    acc = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    for j in range(0, S, block):
        scores = qf @ k[:, :, j:j + block].float().transpose(-1, -2)  # (B, H, L, b)
        if causal and j + block > 1:
            k_pos = torch.arange(j, min(j + block, S), device=q.device)[None, :]
            scores.masked_fill_(k_pos > q_pos, -torch.inf)
        m_new = torch.maximum(m, scores.amax(-1, keepdim=True))  # finite: key 0 is seen by all
        p, rescale = torch.exp(scores - m_new), torch.exp(m - m_new)
        total = total * rescale + p.sum(-1, keepdim=True)
        acc = acc * rescale + p @ v[:, :, j:j + block].float()
        m = m_new
    return acc / total, (m + total.log())[..., 0]


def merge_attention(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """One softmax over the union of disjoint key sets from ``(out, lse)`` pairs of
    :func:`attention_lse`: each part weighted by its share of the softmax mass. -> float32."""
    y, lse = parts[0]
    for y_next, lse_next in parts[1:]:
        w = torch.sigmoid(lse - lse_next)[..., None]  # share of the mass on the keys so far
        y, lse = y * w + y_next * (1 - w), torch.logaddexp(lse, lse_next)
    return y


def attend_with_cache(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int,
                      block: int = 4096, fused: bool | None = None) -> torch.Tensor:
    """Causal attention of a chunk to the cache and itself.

    q: (B, H, L, hd) at positions offset .. offset+L-1; k, v: (B, H, offset+L, hd) -> (B, H, L, hd):
    the cache without a mask and the chunk causally (:func:`attention_lse`), merged by their
    log-sum-exp, so memory is L x block scores per head instead of L x (offset+L)."""
    past = attention_lse(q, k[:, :, :offset], v[:, :, :offset], block=block, fused=fused)
    new = attention_lse(q, k[:, :, offset:], v[:, :, offset:], causal=True, block=block, fused=fused)
    return merge_attention([past, new]).to(q.dtype)


def attend_to_shared_prefix(q: torch.Tensor, prefix_k: torch.Tensor,
                            prefix_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every row's queries to the prefix its group shares (``KVCache.prefix_k``):
    q (B, H, L, hd), prefix (G, H, P, hd), row b in group b // (B / G) -> ``attention_lse``'s pair
    for q. The rows of a group are one batch of queries, so the prefix is read once per group."""
    B, H, L, hd = q.shape
    G = prefix_k.shape[0]
    grouped = q.reshape(G, B // G, H, L, hd).transpose(1, 2).reshape(G, H, B // G * L, hd)
    y, lse = attention_lse(grouped, prefix_k, prefix_v)
    y = y.reshape(G, H, B // G, L, hd).transpose(1, 2).reshape(B, H, L, hd)
    return y, lse.reshape(G, H, B // G, L).transpose(1, 2).reshape(B, H, L)


class MHA(nn.Module):
    """Causal multi-head attention; with a state, keys and values of earlier chunks are cached."""

    def __init__(self, cfg: Evo2Config):
        super().__init__()
        d, self.num_heads = cfg.hidden_size, cfg.num_attention_heads
        self.head_dim = d // self.num_heads
        self.Wqkv = nn.Linear(d, 3 * d, bias=cfg.qkv_proj_bias)
        self.out_proj = nn.Linear(d, d, bias=cfg.mha_out_proj_bias)
        scaling = cfg.rotary_emb_scaling_factor if cfg.use_interpolated_rotary_pos_emb else 1.0
        self.rotary_emb = RotaryEmbedding(self.head_dim, cfg.rotary_emb_base, scaling)

    def forward(self, x: torch.Tensor, state: KVCache | None = None) -> torch.Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        B, L, _ = x.shape
        qkv = self.Wqkv(x).view(B, L, 3, self.num_heads, self.head_dim)
        offset = 0 if state is None else state.length
        q = self.rotary_emb(qkv[:, :, 0], offset).permute(0, 2, 1, 3)  # (B, H, L, hd)
        k = self.rotary_emb(qkv[:, :, 1], offset).permute(0, 2, 1, 3)
        v = qkv[:, :, 2].permute(0, 2, 1, 3)
        if offset == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            if state is not None:
                state.append(k.detach(), v.detach())
        else:  # the shared prefix, this row's cached keys, the chunk itself: one softmax over all three
            parts = [attend_to_shared_prefix(q, state.prefix_k, state.prefix_v)] if state.prefix_k is not None else []
            if L == 1:  # a decoding step sees every key of its row, its own included: no mask, one call
                state.append(k.detach(), v.detach())
                parts.append(attention_lse(q, state.k, state.v))
            else:
                if state.own_length:
                    parts.append(attention_lse(q, state.k, state.v))
                parts.append(attention_lse(q, k, v, causal=True))
                state.append(k.detach(), v.detach())
            y = merge_attention(parts).to(q.dtype)
        return self.out_proj(y.permute(0, 2, 1, 3).reshape(B, L, -1))


class AttentionBlock(nn.Module):
    def __init__(self, cfg: Evo2Config, layer_idx: int):
        super().__init__()
        d = cfg.hidden_size
        self.pre_norm, self.post_norm = RMSNorm(d, cfg.eps), RMSNorm(d, cfg.eps)
        self.inner_mha_cls = MHA(cfg)
        self.mlp = GatedMLP(cfg, layer_idx)

    def new_state(self) -> KVCache:
        return KVCache()

    def forward(self, u: torch.Tensor, state: KVCache | None = None) -> torch.Tensor:
        """u: (B, L, D) -> (B, L, D)."""
        u = self.inner_mha_cls(self.pre_norm(u), state) + u
        return self.mlp(self.post_norm(u)) + u


def plan_block_devices(num_layers: int, device_map) -> list[torch.device]:
    """One device per block from ``device_map``: a list of devices, over which the blocks are
    split into contiguous runs of ceil(num_layers / len(list)) as vortex does (StripedHyena
    ``__init__``: ``layer_idx // layers_per_gpu``), or a dict {block index: device} naming
    every block."""
    if isinstance(device_map, Mapping):
        keys = set(device_map)
        missing, extra = sorted(set(range(num_layers)) - keys), sorted(keys - set(range(num_layers)), key=str)
        if missing or extra:
            raise ValueError(f"device_map must map every block index 0..{num_layers - 1} to a device: "
                             f"missing {missing}, not blocks {extra}")
        return [torch.device(device_map[i]) for i in range(num_layers)]
    devices = [torch.device(d) for d in device_map]
    if not devices:
        raise ValueError("device_map is an empty list; give at least one device")
    per_device = math.ceil(num_layers / len(devices))
    return [devices[min(i // per_device, len(devices) - 1)] for i in range(num_layers)]


def keeps_float32(name: str) -> bool:
    """Tensors Evo 2 keeps in float32 whatever the inference dtype: HCL poles and residues and the
    rotary frequencies (vortex ``to_bfloat16_except_pr_lc``)."""
    return name.endswith(("log_poles", "residues", "inv_freq"))


class StripedHyena2(nn.Module):
    """The Evo 2 language model: token ids (B, L) -> next-token logits (B, L, vocab)."""

    def __init__(self, config: Evo2Config):
        super().__init__()
        self.config = config
        self.embedding_layer = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(
            AttentionBlock(config, i) if config.block_kind(i) == "attn" else HyenaBlock(config, i)
            for i in range(config.num_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.eps) if config.final_norm else nn.Identity()

    def forward(self, input_ids: torch.Tensor, state: InferenceState | None = None) -> torch.Tensor:
        """input_ids: (B, L) int -> logits (B, L, vocab) on the embedding's device. With
        ``state``, the ids continue the sequence the state has seen, and the state is advanced
        past them."""
        return self.unembed(self.hidden_states(input_ids, state))

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """The last block's output (B, L, D) -> logits (B, L, vocab) on the embedding's device:
        the final norm, then the tied embedding."""
        return self.norm(hidden.to(self.embedding_layer.weight.device)) @ self.embedding_layer.weight.T

    def hidden_states(self, input_ids: torch.Tensor, state: InferenceState | None = None) -> torch.Tensor:
        """The last block's output (B, L, D), on the last block's device. Blocks may sit on
        different devices (``place_blocks``): each one's input is moved to it, so each block's
        part of ``state`` stays on that block's device."""
        x = self.embedding_layer(input_ids)
        for i, block in enumerate(self.blocks):
            x = block(x.to(next(block.parameters()).device), None if state is None else state.blocks[i])
        if state is not None:
            state.offset += input_ids.shape[1]
        return x

    def place_blocks(self, block_devices: list[torch.device | str]) -> "StripedHyena2":
        """Move block i to ``block_devices[i]``, and the embedding and final norm to block 0's
        device (where ``forward`` returns the logits), as vortex places the 40B on two GPUs."""
        if len(block_devices) != len(self.blocks):
            raise ValueError(f"block_devices lists {len(block_devices)} devices for {len(self.blocks)} blocks")
        for block, device in zip(self.blocks, block_devices):
            block.to(device)
        self.embedding_layer.to(block_devices[0])
        self.norm.to(block_devices[0])
        return self

    def new_state(self) -> InferenceState:
        """The state before the first token: each block's empty state (``evo2kit.state``)."""
        return InferenceState([block.new_state() for block in self.blocks])

    def forward_from(self, input_ids: torch.Tensor, state: InferenceState | None = None, keep_at=(),
                     chunk_size: int | None = None, on_logits=None) -> dict[int, InferenceState]:
        """Run ``input_ids`` (B, L), which continue the sequence ``state`` has seen (None: from
        its start), and return the state at each absolute offset of ``keep_at`` reached on the
        way: {offset: state after that many tokens} (snapshots, see ``InferenceState.snapshot``).

        The ids go in pieces cut at those offsets and at most ``chunk_size`` tokens long;
        ``on_logits(start, logits)`` receives each piece's logits (B, n, vocab), ``start`` its
        absolute offset. Without a state, cuts or chunks it is one plain forward. This is the
        one chunk loop: ``Evo2Model.forward(chunk_size=)``, ``embed_long`` and the prefix-shared
        passes (``evo2kit.analysis.prefix``) all run through it, layer hooks firing once per piece."""
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral)
                                       or chunk_size < 1):
            raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
        L, start = input_ids.shape[1], 0 if state is None else state.offset
        keep = {p for p in keep_at if start < p <= start + L}
        step = L if chunk_size is None else chunk_size
        ends = sorted({*(p - start for p in keep), *range(step, L, step), L})
        if state is None and len(ends) == 1 and not keep:
            logits = self(input_ids)
            if on_logits is not None:
                on_logits(0, logits)
            return {}
        state = self.new_state() if state is None else state
        kept, a = {}, 0
        for b in ends:
            logits = self(input_ids[:, a:b], state)
            if on_logits is not None:
                on_logits(start + a, logits)
            if start + b in keep:
                kept[start + b] = state.snapshot()
            a = b
        return kept

    def to_inference_dtype(self, dtype: torch.dtype) -> "StripedHyena2":
        """Cast to ``dtype`` keeping poles, residues and rotary frequencies in float32, as Evo 2
        (``keeps_float32``); those are never rounded through ``dtype``."""
        for name, t in [*self.named_parameters(), *self.named_buffers()]:
            if t.is_floating_point():
                t.data = t.data.to(torch.float32 if keeps_float32(name) else dtype)
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> "StripedHyena2":
        """Initial weights for training from scratch (Evo 2 style: small normal projections,
        identity norms, decaying stable poles, short filters near identity)."""
        g = torch.Generator().manual_seed(seed)
        cfg = self.config
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("scale"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith("log_poles"):
                # poles spread over decay lengths 2 .. 4096 steps
                span = torch.logspace(math.log10(2.0), math.log10(4096.0), cfg.state_size)
                rand = torch.rand(p.shape, generator=g) * 0.5 + 0.75
                p.copy_((-1.0 / (span[None, :, None] * rand)).to(p.dtype))
            elif name.endswith("residues"):
                p.copy_(torch.randn(p.shape, generator=g) / cfg.state_size)
            elif name.endswith(".D"):
                p.fill_(1.0)
            elif name.endswith("short_filter_weight") or name.endswith("filter.h"):
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / p.shape[-1]))
                p[..., -1] += 1.0  # start close to the identity (tap at lag 0)
            elif name.endswith("inv_freq"):
                continue
            else:
                into_residual = name.endswith(("l3.weight", "out_proj.weight", "out_filter_dense.weight"))
                out_std = std / math.sqrt(2 * cfg.num_layers) if into_residual else std
                p.copy_(torch.randn(p.shape, generator=g) * out_std)
        return self
