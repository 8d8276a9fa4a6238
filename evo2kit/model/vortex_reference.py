"""Reference harness: the official Evo 2 implementation (``vortex``, PyPI ``vtx==1.1.0``) on CPU.

Purpose: compare evo2kit's pure-PyTorch port with the official code bit for bit, on random
weights laid out exactly like an official Evo 2 checkpoint.  Nothing here is used at run time
by the rest of evo2kit: tests, benchmarks and ``benchmarks/gpu_check.py`` use it, with the
``vtx`` package (the ``test`` extra) installed.

Public API
----------
``official_config(**overrides)``
    A small config dict in Evo 2 YAML key style (same keys as ``evo2/configs/evo2-1b-8k.yml``)
    that contains every block type (HCS, HCM, HCL, attention).
``load_yaml_config(name_or_path, num_layers=None, **overrides)``
    A real Evo 2 YAML (read from the installed ``evo2`` wheel, or a path), cut to its first
    ``num_layers`` blocks, with the CUDA-only features (flash attention, FP8 projections, ...)
    switched off.
``random_official_state_dict(config, seed=0, dtype=torch.float32)``
    Random, well-scaled weights with exactly the key names and shapes of an official
    checkpoint (plus the extra keys real checkpoints carry; see its docstring).
``build_reference(config, state_dict, dtype=torch.float32) -> ReferenceModel``
    vortex's ``StripedHyena`` built on CPU, loaded with vortex's own loader, cast the way
    evo2/vortex cast it.  ``ReferenceModel.forward(input_ids, hooks=(...))`` returns
    ``(logits, {hook_name: activation})``.

Example::

    cfg = official_config()                       # or load_yaml_config("evo2-7b-8k", 4)
    sd = random_official_state_dict(cfg, seed=0)  # what a port's loader gets
    ref = build_reference(cfg, sd, dtype=torch.bfloat16)
    logits, acts = ref(dna_token_ids(61), hooks=("blocks.0.mlp.l3", "blocks.3"))

How vortex is made to run on a CPU (all patches are applied at run time; no file in
site-packages is modified)
--------------------------------------------------------------------------------------------
Import time (``_import_vortex``), stubs are placed in ``sys.modules`` only while vortex is being
imported and removed again afterwards (vortex keeps its own references to them):

* ``flash_attn_2_cuda`` (only if not installed): ``vortex/ops/__init__.py`` imports
  ``vortex.ops.attn_interface``, which does ``import flash_attn_2_cuda``.  Importing the
  rotary module ``vortex.ops.embedding.rotary`` imports that package first, so without the
  stub ``import vortex.model.model`` fails.  The stub's functions raise if ever called; with
  ``use_flash_attn: false`` none is called.  (Side effect of importing ``attn_interface``:
  it registers ``flash_attn::*`` custom ops with ``torch.library``, device type cuda only.)
* ``triton`` / ``triton.language`` (only if triton is not installed): the rotary module
  ``vortex.ops.embedding.rotary`` does ``import triton``, decorates its kernel with
  ``@triton.jit`` and uses ``tl.constexpr`` in the kernel's annotations.  The stub provides
  exactly ``triton.jit`` (returns an object that raises when launched), ``triton.cdiv``,
  ``triton.language`` and ``tl.constexpr``; any other attribute raises ImportError, so the
  optional fused HCS/HCM/HCL kernel modules (``vortex.ops.hc*_interface``, which need
  ``triton.autotune``/``triton.Config``) fail their *guarded* imports and vortex sets
  ``hcs_conv = hcm_fft_conv = hcl_fft_conv = _hcl_compute_filter = None``, as on a host
  without triton.  (They are opt-in via ``use_hc*_kernel`` and are off in every config.)
* ``vortex.logging`` (imported by vortex.model.model) calls ``logging.basicConfig(level=INFO,
  handlers=[RichHandler])`` and opens ``logging.FileHandler("activations_debug.log")`` in the
  current directory, attached to the root logger.  The import runs with the current directory
  set to a temporary directory, and the root logger's handlers and level are restored
  afterwards, so no file lands in the work tree and logging is left as it was.

Run time (``cpu_patches()``; active only while building and while running the reference,
restored on exit):

* ``torch.cuda.device`` is replaced by a no-op context manager.  vortex enters
  ``torch.cuda.device(device)`` with ``device="cpu"`` while building blocks
  (``StripedHyena.__init__``) and in every Hyena block forward
  (``ParallelGatedConvBlock.proj_norm``); on a CPU build that raises
  ``ValueError: Expected a cuda device, but got: cpu``.
* ``vortex.model.rotary.apply_rotary`` (the name ``ApplyRotaryEmbQKV_`` & co. call; it is the
  triton kernel imported from ``vortex.ops.embedding.rotary``) is replaced by
  ``torch_apply_rotary`` below, an equivalent torch computation: NeoX style
  (non-interleaved), on the first ``rotary_dim = 2 * cos.shape[-1]`` features, cos/sin taken
  from vortex's own cache (already cast to the activation dtype by vortex) at positions
  ``seqlen_offsets + arange(seqlen)``, computed in float32 as
  ``(x.float() * cat([cos, cos]).float() + rotate_half(x.float()) * cat([sin, sin]).float())
  .to(x.dtype)`` and written in place when ``inplace=True`` (vortex's ``ApplyRotaryEmbQKV_``
  rotates q and k of the (B, L, 3, H, D) qkv tensor in place).  The triton kernel computes
  ``x0*cos - x1*sin`` and ``x0*sin + x1*cos`` in float32, which is the same in IEEE
  arithmetic (``a + (-b) == a - b``; addition commutes), barring FMA contraction on a GPU.

* Build only, for speed: ``torch.nn.init``'s random initialisers are no-ops while
  ``StripedHyena`` is constructed (``_skip_param_init``); every parameter and persistent
  buffer is then loaded from the state dict with ``strict=True``.

Config: ``use_flash_attn: false`` (vortex then uses its ``SelfAttention`` class, i.e.
``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)``) and
``use_fp8_input_projections: false`` (FP8 needs Transformer Engine; without TE, vortex's
``TELinear`` is a pure-PyTorch fallback whose weight is created in bfloat16).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import logging
import math
import os
import sys
import tempfile
import types
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

VTX_VERSION = "1.1.0"
EVO2_VERSION = "0.6.0"

# Model names of evo2.utils.CONFIG_MAP (evo2 0.6.0).  Copied rather than imported: importing
# evo2 imports huggingface_hub, vortex, ... which a test environment need not have.
EVO2_MODEL_CONFIGS = {
    "evo2_7b": "evo2-7b-1m",
    "evo2_40b": "evo2-40b-1m",
    "evo2_20b": "evo2-20b-1m",
    "evo2_7b_base": "evo2-7b-8k",
    "evo2_40b_base": "evo2-40b-8k",
    "evo2_1b_base": "evo2-1b-8k",
    "evo2_7b_262k": "evo2-7b-262k",
    "evo2_7b_microviridae": "evo2-7b-8k",
}

BLOCK_KINDS = ("hcs", "hcm", "hcl", "attn")

# Config flags that need CUDA kernels / Transformer Engine / flashfftconv; forced off here.
_CUDA_ONLY_FLAGS = (
    "use_flash_attn",
    "use_fp8_input_projections",
    "use_flash_rmsnorm",
    "use_flash_depthwise",
    "use_flashfft",
    "use_hcs_kernel",
    "use_hcm_kernel",
    "use_hcl_kernel",
    "print_activations",
)


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def official_config(**overrides: Any) -> dict:
    """A small Evo 2 config (YAML key style) with every block type.

    Layout (5 blocks): 0 HCS, 1 HCM, 2 HCL, 3 attention, 4 HCS.  hidden 64, 4 heads of 16,
    HCS/HCM filter groups 16 (4 channels per group), HCM filter length 128, HCS filter length
    7, MLP inner size 128, state size 16.  The key set equals that of ``evo2-1b-8k.yml``.
    ``overrides`` replace or add keys.
    """
    cfg = {
        "model_name": "evo2kit-small-random",
        "vocab_size": 512,
        "hidden_size": 64,
        "num_filters": 64,
        "attn_layer_idxs": [3],
        "hcl_layer_idxs": [2],
        "hcm_layer_idxs": [1],
        "hcs_layer_idxs": [0, 4],
        "hcm_filter_length": 128,
        "hcl_filter_groups": 64,
        "hcm_filter_groups": 16,
        "hcs_filter_groups": 16,
        "hcs_filter_length": 7,
        "num_layers": 5,
        "short_filter_length": 3,
        "num_attention_heads": 4,
        "short_filter_bias": False,
        "mlp_init_method": "torch.nn.init.zeros_",
        "mlp_output_init_method": "torch.nn.init.zeros_",
        "eps": 1e-6,
        "state_size": 16,
        "rotary_emb_base": 10000,
        "make_vocab_size_divisible_by": 8,
        "inner_size_multiple_of": 16,
        "inner_mlp_size": 128,
        "log_intermediate_values": False,
        "proj_groups": 1,
        "hyena_filter_groups": 1,
        "column_split_hyena": False,
        "column_split": True,
        "interleave": True,
        "evo2_style_activations": True,
        "model_parallel_size": 1,
        "pipe_parallel_size": 1,
        "tie_embeddings": True,
        "mha_out_proj_bias": True,
        "hyena_out_proj_bias": True,
        "hyena_flip_x1x2": False,
        "qkv_proj_bias": False,
        "use_fp8_input_projections": False,
        "max_seqlen": 8192,
        "max_batch_size": 1,
        "final_norm": True,
        "use_flash_attn": False,
        "use_flash_rmsnorm": False,
        "use_flash_depthwise": False,
        "use_flashfft": False,
        "use_laughing_hyena": False,
        "inference_mode": True,
        "tokenizer_type": "CharLevelTokenizer",
        "prefill_style": "fft",
        "mlp_activation": "gelu",
        "print_activations": False,
    }
    cfg.update(overrides)
    return cfg


def evo2_config_path(name: str) -> Path:
    """Path of an official Evo 2 YAML (copied verbatim from the ``evo2`` 0.6.0 wheel into
    ``evo2kit/model/configs/``).  ``name``: 'evo2-1b-8k', 'evo2-1b-8k.yml' or an evo2 model name
    such as 'evo2_1b_base'."""
    stem = EVO2_MODEL_CONFIGS.get(name, name)
    if stem.endswith((".yml", ".yaml")):
        stem = stem.rsplit(".", 1)[0]
    path = Path(__file__).resolve().parent / "configs" / f"{stem}.yml"
    if not path.is_file():
        raise FileNotFoundError(f"Evo 2 config {stem!r} not found at {path}")
    return path


def cut_config(config: Mapping, num_layers: int) -> dict:
    """Keep the first ``num_layers`` blocks: filter every ``*_layer_idxs`` list."""
    cfg = dict(config)
    if num_layers > cfg["num_layers"]:
        raise ValueError(f"num_layers={num_layers} > {cfg['num_layers']} in the config")
    for kind in BLOCK_KINDS:
        key = f"{kind}_layer_idxs"
        cfg[key] = [int(i) for i in cfg.get(key, []) if int(i) < num_layers]
    cfg["num_layers"] = num_layers
    return cfg


def load_yaml_config(name_or_path: str | os.PathLike, num_layers: int | None = None,
                     **overrides: Any) -> dict:
    """Read a real Evo 2 YAML, optionally cut to its first ``num_layers`` blocks.

    ``name_or_path``: a path to a YAML file, or a name resolved by ``evo2_config_path``.
    CUDA-only features (flash attention, FP8 input projections, flash rmsnorm/depthwise/fft,
    fused triton kernels) are switched off; then ``overrides`` are applied.
    """
    import yaml

    path = Path(name_or_path)
    if not path.is_file():
        path = evo2_config_path(str(name_or_path))
    cfg = yaml.safe_load(path.read_text())
    if num_layers is not None:
        cfg = cut_config(cfg, num_layers)
    for flag in _CUDA_ONLY_FLAGS:
        cfg[flag] = False
    cfg.update(overrides)
    return cfg


def block_kind(config: Mapping, layer_idx: int) -> str:
    """'attn', 'hcl', 'hcm' or 'hcs' — the same precedence as ``vortex.model.model.get_block``."""
    for kind in ("attn", "hcl", "hcm", "hcs"):
        if layer_idx in config.get(f"{kind}_layer_idxs", []):
            return kind
    raise ValueError(f"block {layer_idx} is in no *_layer_idxs list")


def inner_mlp_size(config: Mapping) -> int:
    """MLP inner size as ``vortex.model.layers.ParallelGatedMLP`` computes it."""
    multiple_of = config.get("inner_size_multiple_of", 64) * config.get("model_parallel_size", 1)
    inner = int(2 * config["hidden_size"] * 4 / 3)
    inner = multiple_of * ((inner + multiple_of - 1) // multiple_of)
    return config.get("inner_mlp_size", inner)


# --------------------------------------------------------------------------------------------
# Random weights in the official checkpoint layout
# --------------------------------------------------------------------------------------------


def official_param_shapes(config: Mapping) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``StripedHyena(config).state_dict()`` (vortex 1.1.0, no Transformer
    Engine), in the module order.  Computed from the config alone."""
    c = config
    d = c["hidden_size"]
    heads = c["num_attention_heads"]
    hd = d // heads
    inner = inner_mlp_size(c)
    if c.get("proj_groups", 1) != 1:
        raise NotImplementedError("proj_groups != 1 (GQA) is not used by Evo 2")
    shapes: dict[str, tuple[int, ...]] = {"embedding_layer.weight": (c["vocab_size"], d)}
    for i in range(c["num_layers"]):
        p = f"blocks.{i}."
        kind = block_kind(c, i)
        shapes[p + "pre_norm.scale"] = (d,)
        shapes[p + "post_norm.scale"] = (d,)
        if kind == "attn":
            m = p + "inner_mha_cls."
            shapes[m + "rotary_emb.inv_freq"] = (hd // 2,)
            shapes[m + "Wqkv.weight"] = (3 * d, d)
            if c.get("qkv_proj_bias", True):
                shapes[m + "Wqkv.bias"] = (3 * d,)
            shapes[m + "out_proj.weight"] = (d, d)
            if c.get("mha_out_proj_bias", True):
                shapes[m + "out_proj.bias"] = (d,)
        else:
            f = p + "filter."
            shapes[f + "short_filter_weight"] = (3 * d, 1, c["short_filter_length"])
            if c.get("short_filter_bias"):
                shapes[f + "short_filter_bias"] = (3 * d,)
            if kind == "hcl":
                # vortex ignores hcl_filter_groups: one modal system per channel.
                shapes[f + "log_poles"] = (d, c["state_size"], 1)
                shapes[f + "residues"] = (d, c["state_size"])
                shapes[f + "D"] = (d,)
            else:
                groups = c[f"{kind}_filter_groups"]
                length = c[f"{kind}_filter_length"]
                shapes[f + "h"] = (groups, 1, length)
                if length >= 128:
                    shapes[f + "D"] = (d,)
            shapes[p + "projections.weight"] = (3 * d, d)
            if c.get("qkv_proj_bias", True):
                shapes[p + "projections.bias"] = (3 * d,)
            shapes[p + "out_filter_dense.weight"] = (d, d)
            if c.get("hyena_out_proj_bias", True):
                shapes[p + "out_filter_dense.bias"] = (d,)
        shapes[p + "mlp.l1.weight"] = (inner, d)
        shapes[p + "mlp.l2.weight"] = (inner, d)
        shapes[p + "mlp.l3.weight"] = (d, inner)
    if c.get("final_norm", True):
        shapes["norm.scale"] = (d,)
    if not c.get("tie_embeddings", True):
        shapes["unembed.weight"] = (c["vocab_size"], d)
    return shapes


def extra_checkpoint_keys(config: Mapping) -> list[str]:
    """Keys ``random_official_state_dict`` adds beyond the module's state dict (a loader must
    drop them): ``unembed.weight`` (tied embeddings) and ``blocks.{i}.projections._extra_state``
    (Transformer Engine FP8 metadata, an ``io.BytesIO``) for every Hyena block."""
    keys = []
    if config.get("tie_embeddings", True):
        keys.append("unembed.weight")
    keys += [f"blocks.{i}.projections._extra_state" for i in range(config["num_layers"])
             if block_kind(config, i) != "attn"]
    return keys


def rotary_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """``1 / base ** (arange(0, hd, 2) / hd)`` in float32, exactly as vortex's RotaryEmbedding."""
    base = float(base)
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def _te_extra_state() -> io.BytesIO:
    buf = io.BytesIO()
    torch.save({"evo2kit_note": "stand-in for Transformer Engine FP8 metadata"}, buf)
    buf.seek(0)
    return buf


def random_official_state_dict(config: Mapping, seed: int = 0,
                               dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Random weights with exactly the official Evo 2 checkpoint key names and shapes.

    Keys/shapes: those of vortex's ``StripedHyena(config).state_dict()`` (see
    ``official_param_shapes``) plus the extras real checkpoints carry and a loader must drop
    (``extra_checkpoint_keys``): ``unembed.weight`` (a copy of the tied embedding) and, for
    every Hyena block, ``blocks.{i}.projections._extra_state`` holding an ``io.BytesIO``.

    Layout notes a loader must honour:
      * ``blocks.{i}.inner_mha_cls.Wqkv.weight`` (and ``.bias``) rows are in the checkpoint's
        per-head order: row ``h * 3 * hd + j * hd + e`` is head ``h``, ``j`` in (q, k, v),
        feature ``e``.  vortex's ``custom_load_state_dict`` permutes them to [q | k | v]
        (each head-major) when ``column_split`` is true.
      * ``blocks.{i}.projections.weight`` rows are in the checkpoint's order; vortex splits the
        projected 3*D channels with ``interleave`` (channels 0::3, 1::3, 2::3) after the short
        filter, then into (x2, x1, v) thirds.

    Scaling (so that a forward pass is numerically sane, unlike vortex's own init whose
    positive log-poles make the HCL filters explode): linears ``N(0, 1/fan_in)``; biases
    ``N(0, 0.02^2)``; RMSNorm scales ``1 + N(0, 0.1^2)``; embedding ``N(0, 1/D)`` (tied, so
    logits are O(1)); short filter
    taps ``N(0, 1/K)``; HCS/HCM ``filter.h`` ``N(0, 1/len)``; ``filter.D`` ``N(0, 0.1^2)``;
    HCL ``log_poles = -exp(U(-5, 0.5))`` (poles in (0.19, 0.994)), ``residues``
    ``N(0, 0.1^2)``; ``rotary_emb.inv_freq`` the exact float32 values.

    All floating tensors are cast to ``dtype`` except ``inv_freq`` (always float32, as vortex
    computes it).  Deterministic in ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    c = config
    hd = c["hidden_size"] // c["num_attention_heads"]
    sd: dict[str, Any] = {}
    for key, shape in official_param_shapes(c).items():
        name = key.rsplit(".", 1)[-1]
        if key.endswith("rotary_emb.inv_freq"):
            sd[key] = rotary_inv_freq(hd, c.get("rotary_emb_base", 10000))
            continue
        if key == "embedding_layer.weight":  # tied: std 1/sqrt(D) keeps logits O(1)
            t = normal(shape, 1.0 / math.sqrt(shape[1]))
        elif name == "scale":  # RMSNorm
            t = 1.0 + normal(shape, 0.1)
        elif name == "bias":
            t = normal(shape, 0.02)
        elif name == "short_filter_weight":
            t = normal(shape, 1.0 / math.sqrt(shape[-1]))
        elif name == "h":
            t = normal(shape, 1.0 / math.sqrt(shape[-1]))
        elif name == "D":
            t = normal(shape, 0.1)
        elif name == "log_poles":
            u = torch.rand(shape, generator=gen, dtype=torch.float32) * 5.5 - 5.0
            t = -torch.exp(u)
        elif name == "residues":
            t = normal(shape, 0.1)
        elif name == "weight" and len(shape) == 2:  # nn.Linear / TELinear: (out, in)
            t = normal(shape, 1.0 / math.sqrt(shape[1]))
        else:  # pragma: no cover - guards against new parameter kinds
            raise KeyError(f"no init rule for {key} {shape}")
        sd[key] = t.to(dtype)
    for key in extra_checkpoint_keys(c):
        if key == "unembed.weight":
            sd[key] = sd["embedding_layer.weight"].clone()
        else:
            sd[key] = _te_extra_state()
    return sd


# --------------------------------------------------------------------------------------------
# Importing vortex on a CPU
# --------------------------------------------------------------------------------------------


def _stub_module(name: str, doc: str, missing: type[Exception]) -> types.ModuleType:
    mod = types.ModuleType(name, doc)

    def __getattr__(attr):  # module-level __getattr__ (PEP 562)
        if attr.startswith("__"):
            raise AttributeError(attr)
        if missing is ImportError:
            raise ImportError(f"{name}.{attr} is not available (CPU stub from evo2kit/model/vortex_reference.py)")

        def unavailable(*args, **kwargs):
            raise RuntimeError(f"{name}.{attr} called, but {name} is a CPU stub "
                               "(evo2kit/model/vortex_reference.py); set use_flash_attn: false")

        return unavailable

    mod.__getattr__ = __getattr__
    return mod


class _UnavailableKernel:
    """What the triton stub's ``jit`` returns: raises when the kernel would be launched."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")

    def __getitem__(self, grid):
        raise RuntimeError(f"triton kernel {self.__name__} launched, but triton is a CPU stub "
                           "(evo2kit/model/vortex_reference.py); run under vortex_ref.cpu_patches()")

    def __call__(self, *args, **kwargs):
        return self[None]


def _triton_stubs() -> dict[str, types.ModuleType]:
    triton = _stub_module("triton", "CPU stub: only what vortex.ops.embedding.rotary needs at "
                          "import time.", ImportError)
    tl = _stub_module("triton.language", "CPU stub.", ImportError)
    tl.constexpr = type("constexpr", (), {})
    triton.language = tl
    def jit(fn=None, **kwargs):  # @triton.jit or @triton.jit(...)
        return _UnavailableKernel(fn) if fn is not None else _UnavailableKernel

    triton.jit = jit
    triton.cdiv = lambda a, b: (a + b - 1) // b
    return {"triton": triton, "triton.language": tl}


_VORTEX: types.SimpleNamespace | None = None


def _import_vortex() -> types.SimpleNamespace:
    """Import vortex's model modules once, with the import-time stubs (see module doc)."""
    global _VORTEX
    if _VORTEX is not None:
        return _VORTEX
    stubs: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("flash_attn_2_cuda") is None:
        stubs["flash_attn_2_cuda"] = _stub_module(
            "flash_attn_2_cuda", "CPU stub: imported by vortex.ops.attn_interface, never called "
            "with use_flash_attn: false.", RuntimeError)
    if importlib.util.find_spec("triton") is None:
        stubs.update(_triton_stubs())
    stubs = {k: v for k, v in stubs.items() if k not in sys.modules}

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    cwd = os.getcwd()
    try:
        with tempfile.TemporaryDirectory(prefix="vortex_import_") as tmp:
            sys.modules.update(stubs)
            os.chdir(tmp)  # vortex.logging opens ./activations_debug.log at import
            try:
                model = importlib.import_module("vortex.model.model")
                rotary = importlib.import_module("vortex.model.rotary")
                utils = importlib.import_module("vortex.model.utils")
                layers = importlib.import_module("vortex.model.layers")
                engine = importlib.import_module("vortex.model.engine")
            finally:
                os.chdir(cwd)
                for h in list(root.handlers):
                    if h not in saved_handlers:
                        root.removeHandler(h)
                        h.close()
                root.setLevel(saved_level)
    finally:
        for name, mod in stubs.items():
            if sys.modules.get(name) is mod:
                del sys.modules[name]
    if layers.HAS_TE:
        raise RuntimeError("Transformer Engine is installed; this harness assumes vortex's "
                           "pure-PyTorch TELinear fallback")
    _VORTEX = types.SimpleNamespace(model=model, rotary=rotary, utils=utils, layers=layers,
                                    engine=engine, version=importlib.metadata.version("vtx"))
    return _VORTEX


# --------------------------------------------------------------------------------------------
# Run-time patches
# --------------------------------------------------------------------------------------------


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def torch_apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                       seqlen_offsets: int | torch.Tensor = 0, cu_seqlens=None, max_seqlen=None,
                       interleaved: bool = False, inplace: bool = False,
                       conjugate: bool = False) -> torch.Tensor:
    """Drop-in for ``vortex.ops.embedding.rotary.apply_rotary`` (the triton kernel).

    x: (batch, seqlen, nheads, headdim); cos, sin: (seqlen_ro, rotary_dim / 2) in x.dtype.
    NeoX style; rotates the first rotary_dim features of x in float32; returns x itself when
    ``inplace`` (as the kernel does), else a new tensor.
    """
    if cu_seqlens is not None:
        raise NotImplementedError("varlen rotary is not used by Evo 2")
    if interleaved:
        raise NotImplementedError("interleaved (GPT-J) rotary is not used by Evo 2")
    batch, seqlen, nheads, headdim = x.shape
    seqlen_ro, half = cos.shape
    rotary_dim = 2 * half
    assert sin.shape == cos.shape
    assert rotary_dim <= headdim, "rotary_dim must be <= headdim"
    assert cos.dtype == sin.dtype == x.dtype, (cos.dtype, sin.dtype, x.dtype)
    if isinstance(seqlen_offsets, torch.Tensor):
        assert seqlen_offsets.shape == (batch,)
        pos = seqlen_offsets.to(torch.long)[:, None] + torch.arange(seqlen, device=x.device)
        assert int(pos.max()) < seqlen_ro
        c, s = cos[pos], sin[pos]  # (B, S, half)
    else:
        assert seqlen_offsets + seqlen <= seqlen_ro
        c = cos[seqlen_offsets:seqlen_offsets + seqlen][None]  # (1, S, half)
        s = sin[seqlen_offsets:seqlen_offsets + seqlen][None]
    cos2 = torch.cat([c, c], dim=-1).float()[:, :, None, :]  # broadcast over heads
    sin2 = torch.cat([s, s], dim=-1).float()[:, :, None, :]
    if conjugate:
        sin2 = -sin2
    xr = x[..., :rotary_dim].float()
    rotated = (xr * cos2 + _rotate_half(xr) * sin2).to(x.dtype)
    out = x if inplace else x.clone()
    out[..., :rotary_dim].copy_(rotated)
    return out


class _NoCudaDevice:
    """No-op replacement for ``torch.cuda.device`` (a context manager taking a device)."""

    def __init__(self, device=None):
        self.device = device

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@contextlib.contextmanager
def _skip_param_init():
    """Make ``torch.nn.init``'s random initialisers no-ops (build speed only: vortex's init of
    a 4096-wide model takes ~10 s on 2 cores, and ``build_reference`` loads every parameter and
    persistent buffer from the state dict with ``strict=True`` right after, so no initial
    value survives)."""
    names = ("kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
             "uniform_", "normal_", "trunc_normal_")
    init = torch.nn.init
    saved = {n: getattr(init, n) for n in names}
    for n in names:
        setattr(init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(init, n, fn)


@contextlib.contextmanager
def cpu_patches():
    """Run-time patches vortex needs on a CPU (see module doc); restored on exit."""
    vx = _import_vortex()
    saved_device = torch.cuda.device
    saved_rotary = vx.rotary.apply_rotary
    torch.cuda.device = _NoCudaDevice
    vx.rotary.apply_rotary = torch_apply_rotary
    try:
        yield vx
    finally:
        torch.cuda.device = saved_device
        vx.rotary.apply_rotary = saved_rotary


# --------------------------------------------------------------------------------------------
# The reference model
# --------------------------------------------------------------------------------------------


class ReferenceModel:
    """vortex ``StripedHyena`` (``.module``) plus a hooked, patched forward."""

    def __init__(self, module: torch.nn.Module, config: dict, dtype: torch.dtype, load_log: str):
        self.module = module
        self.config = config
        self.dtype = dtype
        self.load_log = load_log  # what vortex's loader printed (missing / extra keys)

    @property
    def device(self) -> torch.device:
        return self.module.embedding_layer.weight.device

    def forward(self, input_ids: torch.Tensor, hooks: Iterable[str] = (),
                clone: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits (B, L, vocab) and the outputs of the submodules named in ``hooks``.

        Like ``evo2.Evo2.forward``: forward hooks keep ``output[0]`` when a module returns a
        tuple (blocks return ``(x, None)``), ``.detach()``-ed, under ``torch.no_grad()``.
        Unlike it, the logits tensor is returned itself (vortex returns ``(logits, None)``).
        Caveat (as in evo2): the output of ``inner_mha_cls.Wqkv`` is a tensor that the rotary
        embedding then modifies in place, so its hooked value shows rotated q and k unless
        ``clone=True``.
        """
        acts: dict[str, torch.Tensor] = {}
        handles = []

        def make_hook(name):
            def hook(_module, _inputs, output):
                if isinstance(output, tuple):
                    output = output[0]
                output = output.detach()
                acts[name] = output.clone() if clone else output
            return hook

        try:
            for name in hooks:
                module = self.module.get_submodule(name)
                handles.append(module.register_forward_hook(make_hook(name)))
            with torch.no_grad(), cpu_patches(), warnings.catch_warnings():
                # HCM runs under torch.autocast("cuda"), which warns on a CPU-only host.
                warnings.filterwarnings("ignore", message=".*CUDA is not available.*autocast")
                logits, _ = self.module(input_ids.to(self.device))
        finally:
            for h in handles:
                h.remove()
        return logits, acts

    __call__ = forward

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self.module.state_dict().items()}


def build_reference(config: Mapping, state_dict: Mapping[str, Any],
                    dtype: torch.dtype = torch.float32) -> ReferenceModel:
    """vortex ``StripedHyena(dotdict(config))`` on CPU, loaded with vortex's own loader.

    ``dtype=torch.bfloat16`` replicates ``vortex.model.utils.load_checkpoint`` (what
    ``evo2.Evo2`` runs): ``to_bfloat16_except_pr_lc(to_float32=True)``, then
    ``custom_load_state_dict(state_dict)`` (strict=True; it drops keys the module lacks, i.e.
    ``unembed.weight`` and ``*._extra_state``, and permutes ``Wqkv`` rows for
    ``column_split``), then ``to_bfloat16_except_pr_lc()``.  Result: every parameter bf16
    except ``filter.log_poles`` and ``filter.residues`` (float32) and any parameter of shape
    (4096, 1, 128) (float32; vortex's hard-coded exclusion, matching no Evo 2 parameter);
    ``projections`` (TELinear fallback) bf16 because it is created bf16 and skipped by the
    casts; ``rotary_emb.inv_freq`` buffer float32.  (``load_checkpoint`` does this under
    ``torch.inference_mode()``; that changes no value and is not replicated.)

    ``dtype=torch.float32``: evo2 has no float32 path; here every parameter and buffer is
    float32 (blocks built with vortex's ``attn_block_dtype``/``hyena_block_dtype``/``mlp_dtype``
    config knobs set to float32, then ``module.float()`` for the bf16-created
    ``projections``), then
    ``custom_load_state_dict(state_dict)``, then ``module.float()`` again (vortex assigns the
    permuted ``Wqkv`` in the state dict's dtype).
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype}")
    cfg = dict(config)
    for flag in ("use_flash_attn", "use_fp8_input_projections"):
        if cfg.get(flag):
            raise ValueError(f"{flag} must be false on CPU")
    vortex_cfg = dict(cfg)
    if dtype == torch.float32:
        # vortex's per-block dtype knobs (default bfloat16); float32 here avoids building the
        # blocks in bf16 and converting back (values are loaded afterwards either way).
        for key in ("attn_block_dtype", "hyena_block_dtype", "mlp_dtype"):
            vortex_cfg.setdefault(key, torch.float32)
    with cpu_patches() as vx:
        with _skip_param_init():
            module = vx.model.StripedHyena(vx.utils.dotdict(vortex_cfg))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if dtype == torch.bfloat16:
                module.to_bfloat16_except_pr_lc(to_float32=True)
                module.custom_load_state_dict(dict(state_dict), strict=True)
                module.to_bfloat16_except_pr_lc()
            else:
                module.float()
                module.custom_load_state_dict(dict(state_dict), strict=True)
                module.float()
    module.eval()
    return ReferenceModel(module, cfg, dtype, out.getvalue())


def dna_token_ids(length: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Random DNA token ids: byte values of 'A', 'C', 'G', 'T' (Evo 2's CharLevelTokenizer)."""
    gen = torch.Generator().manual_seed(seed)
    alphabet = torch.tensor([ord(ch) for ch in "ACGT"], dtype=torch.long)
    return alphabet[torch.randint(0, 4, (batch, length), generator=gen)]


# name -> (config factory, sequence length of the forward tests).  Lengths are not multiples
# of 8 (on CPU, vortex's HCL product of a strided fft slice only differs in the last bits from
# a contiguous rfft when L % 8 is 1..6) and 150 > hcm_filter_length (filter zero-padded, not
# truncated to L).
PARITY_CONFIGS = {
    "small": (lambda: official_config(), 150),
    # the 262k / 1M configs' linearly scaled rotary (vortex swaps in LinearlyScaledRotaryEmbedding)
    "small_scaled_rope": (lambda: official_config(use_interpolated_rotary_pos_emb=True,
                                                     rotary_emb_scaling_factor=128), 61),
    "1b": (lambda: load_yaml_config("evo2-1b-8k", num_layers=5), 50),
    "7b": (lambda: load_yaml_config("evo2-7b-8k", num_layers=4), 30),
}
