"""Official Evo 2 checkpoints: read safely, checked against the model, loaded lean.

An official checkpoint is a ``torch.save``d state dict (vortex layout) whose names are those of
``StripedHyena2``, plus keys the module does not own: ``unembed.weight`` (the tied embedding
again) and ``*._extra_state`` (Transformer Engine's FP8 metadata, a pickled ``io.BytesIO``).
This module

  * reads it with ``torch.load(weights_only=True, mmap=True)`` and an allow-list holding only
    ``io.BytesIO`` (nothing executable is unpickled, from the file or from the FP8 metadata);
  * reads the 40B checkpoints from the parts they are published in (``evo2_40b.pt.part0``,
    ``.part1``, ...: byte ranges of one file, which the evo2 package concatenates after download,
    ArcInstitute/evo2 ``evo2/models.py``, ``load_evo2_model``) without writing the joined file;
  * checks names, shapes and FP8 metadata before anything large is allocated, listing every
    problem at once;
  * maps the state dict onto the model: the column-split Wqkv permutation, the dtype rule
    (``keeps_float32``), FP8 scales into ``FP8Linear`` modules; tensors are assigned, not copied,
    so a model built on the meta device costs no memory beyond the checkpoint's own pages;
  * says what it did in a ``LoadReport``.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from evo2kit.cli import DataError
from evo2kit.files import atomic_path
from evo2kit.model.fp8 import FP8Linear, backend_for
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2, keeps_float32

# What the unpickler may construct besides tensors: TE 1.x stores its FP8 metadata as an
# io.BytesIO (vortex vortex/model/utils.py, load_checkpoint, allow-lists the same type).
# TE's recipe classes, which vortex also allows, are deliberately not allowed: nothing
# evo2kit needs lives in them, and the metadata is read with an empty allow-list.
SAFE_GLOBALS = [io.BytesIO]


class CheckpointError(KeyError):
    """A checkpoint does not fit the model: names every missing, unexpected and mis-shaped key,
    or the FP8 metadata key that is missing or malformed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# ---------------------------------------------------------------------------------------------
# Published checkpoints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedCheckpoint:
    """Where a published checkpoint comes from and what it needs (``fp8``: its published
    accuracy needs FP8 input projections)."""

    name: str
    source: str  # Hugging Face repository id or NGC resource
    filename: str  # as published; 40B: split in parts ``filename.part0``, ``.part1``, ...
    fp8: bool
    hardware: str  # where the published accuracy holds


_HF = "Hugging Face"
PUBLISHED_CHECKPOINTS = {c.name: c for c in [
    # ArcInstitute/evo2 evo2/utils.py: MODEL_NAMES, HF_MODEL_NAME_MAP; file name f"{name}.pt"
    PublishedCheckpoint("evo2_1b_base", f"{_HF} arcinstitute/evo2_1b_base", "evo2_1b_base.pt", True,
                        "FP8 casts on any device (exact accumulation expected to suffice; unmeasured here)"),
    PublishedCheckpoint("evo2_7b_base", f"{_HF} arcinstitute/evo2_7b_base", "evo2_7b_base.pt", False, "any (bf16)"),
    PublishedCheckpoint("evo2_7b", f"{_HF} arcinstitute/evo2_7b", "evo2_7b.pt", False, "any (bf16)"),
    PublishedCheckpoint("evo2_7b_262k", f"{_HF} arcinstitute/evo2_7b_262k", "evo2_7b_262k.pt", False, "any (bf16)"),
    PublishedCheckpoint("evo2_7b_microviridae", f"{_HF} evo-design/evo-2-7b-8k-microviridae",
                        "evo2_7b_microviridae.pt", False, "any (bf16)"),
    PublishedCheckpoint("evo2_20b", f"{_HF} arcinstitute/evo2_20b", "evo2_20b.pt", True,
                        "likely Hopper only (FP8 with fast accumulation; unmeasured)"),
    PublishedCheckpoint("evo2_40b_base", f"{_HF} arcinstitute/evo2_40b_base", "evo2_40b_base.pt", True,
                        "Hopper (FP8 with fast accumulation)"),
    PublishedCheckpoint("evo2_40b", f"{_HF} arcinstitute/evo2_40b", "evo2_40b.pt", True,
                        "Hopper (FP8 with fast accumulation)"),
    # NVIDIA's bf16-robust fine-tunes, exported to the vortex layout (no _extra_state) by
    # BioNeMo's evo2_export_mbridge_to_vortex
    PublishedCheckpoint("1b-8k-bf16", "NGC evo2/1b-8k-bf16:1.0 (export with BioNeMo's "
                        "evo2_export_mbridge_to_vortex)", "the exported .pt", False, "any (bf16)"),
    PublishedCheckpoint("40b-1m-fp8-bf16", "NGC evo2/40b-1m-fp8-bf16:1.0 (export with BioNeMo's "
                        "evo2_export_mbridge_to_vortex)", "the exported .pt", False, "any (bf16)"),
]}


def where_to_get(name: str) -> str:
    """One sentence: which file a published model needs and where it is published."""
    c = PUBLISHED_CHECKPOINTS[name]
    parts = f" (40B files are published in parts {c.filename}.part0, .part1, ...: pass the first part, " \
            "the .pt path or their folder)" if "40b" in name and c.filename.endswith(".pt") else ""
    return f"{name} needs its checkpoint {c.filename} from {c.source}{parts}; pass it as local_path="


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def checkpoint_files(path: str | Path) -> list[Path]:
    """The file(s) holding a checkpoint: ``path`` itself; or its parts ``path.part0``, ``.part1``,
    ... when ``path`` (``x.pt``) is absent; or all parts when ``path`` is ``x.pt.part0``; or the
    one ``.pt`` (or one set of parts) in a folder. Raises FileNotFoundError naming what was tried."""
    path = Path(path)
    if path.is_dir():
        pts = sorted(path.glob("*.pt")) or sorted(path.glob("*.pt.part0"))
        if len(pts) != 1:
            raise FileNotFoundError(f"{path}: expected one .pt checkpoint (or one set of .pt.partN files) "
                                    f"in this folder, found {[p.name for p in pts]}")
        path = pts[0]
    stem = str(path)[: -len(".part0")] if path.name.endswith(".pt.part0") else None
    if stem is None and path.is_file():
        return [path]
    stem = stem or str(path)
    parts = []
    while Path(f"{stem}.part{len(parts)}").is_file():
        parts.append(Path(f"{stem}.part{len(parts)}"))
    if not parts:
        raise FileNotFoundError(f"checkpoint {path} does not exist (nor its parts {stem}.part0, ...)")
    return parts


class _JoinedParts(io.RawIOBase):
    """The parts of a split checkpoint read as one file, without writing the joined file."""

    def __init__(self, files: list[Path]):
        self.files = [open(f, "rb") for f in files]
        self.sizes = [os.fstat(f.fileno()).st_size for f in self.files]
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.size, self.pos = sum(self.sizes), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self.pos < self.size:
            i = max(j for j, s in enumerate(self.starts) if s <= self.pos)
            f = self.files[i]
            f.seek(self.pos - self.starts[i])
            n = f.readinto(view[done: done + min(len(view) - done, self.starts[i] + self.sizes[i] - self.pos)])
            if not n:  # a part shrank since it was opened
                raise OSError(f"{f.name}: unexpected end of file")
            done, self.pos = done + n, self.pos + n
        return done

    def close(self) -> None:
        for f in self.files:
            f.close()
        super().close()


def read_official_checkpoint(path: str | Path) -> dict[str, Any]:
    """An official Evo 2 ``.pt`` state dict, name -> tensor (or ``io.BytesIO`` for TE metadata).

    Unpickled with ``weights_only=True`` and only ``io.BytesIO`` allowed beyond tensors, so a
    file cannot run code. A single file is memory-mapped (tensors are read when touched); a
    checkpoint in parts is read through one stream (tensors land in memory, once). A truncated or
    damaged file, or one whose pickle asks for anything else, is a DataError naming it."""
    files = checkpoint_files(path)
    with open(files[0], "rb") as f:  # torch.save writes a zip archive; anything else fails deep in torch.load
        if f.read(4) != b"PK\x03\x04":
            raise ValueError(f"not a PyTorch checkpoint: {files[0]}")
    where = str(files[0]) if len(files) == 1 else f"{files[0]} (and its {len(files) - 1} other part(s))"
    if ".part" in files[-1].name and not zip_complete(files[-1]):  # a checkpoint in parts, some missing
        following = f"{files[-1].name.rsplit('.part', 1)[0]}.part{len(files)}"
        raise FileNotFoundError(f"{files[0].parent}: part(s) {files[0].name} to {files[-1].name} are not the whole "
                                f"checkpoint (the last ends no zip archive): {following} (and any part after it) "
                                f"is missing, or {files[-1].name} is truncated; fetch it beside the others")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            if len(files) == 1:
                sd = torch.load(files[0], map_location="cpu", weights_only=True, mmap=True)
            else:
                with _JoinedParts(files) as stream:
                    sd = torch.load(io.BufferedReader(stream, 1 << 20), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line or "global" in line),
                   str(e).splitlines()[0])
        raise DataError(f"{where}: refused, its pickle asks for more than tensors (Weights only load failed: "
                        f"{why}); evo2kit never runs a checkpoint's code: use a checkpoint saved as a plain "
                        "state dict") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:  # torch's zip reader: "PytorchStreamReader failed"
        raise DataError(f"{where} is truncated or damaged ({str(e).strip().splitlines()[0]}): download or copy it "
                        "again") from None
    if not isinstance(sd, Mapping) or not all(isinstance(k, str) for k in sd):
        raise DataError(f"{where} holds a {type(sd).__name__}, not a state dict (name -> tensor)")
    return sd


def zip_complete(last: Path) -> bool:
    """Whether ``last`` (a file, or the last part of one) ends a zip archive: the end-of-central-directory
    record (signature ``PK\\x05\\x06``) lies in its last 64 KiB + 22 bytes, as torch.save writes it."""
    with open(last, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - (1 << 16) - 22))
        return b"PK\x05\x06" in f.read()


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], str]:
    """The state dict in ``path`` and the format it was read from, 'safetensors' or 'torch', told by
    the file's first bytes (not its name): a torch zip archive (or the parts of one, as
    :func:`read_official_checkpoint` reads them) or a safetensors file. Anything else, and a
    truncated or damaged file, is a DataError naming it."""
    files = checkpoint_files(path)
    with open(files[0], "rb") as f:
        head = f.read(9)
    if len(files) > 1 or head.startswith(b"PK\x03\x04"):
        return read_official_checkpoint(path), "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return read_safetensors(files[0]), "safetensors"
    raise DataError(f"{files[0]} is neither a PyTorch checkpoint (a zip archive) nor a safetensors file"
                    + (" (it is empty)" if not head else " (or it is damaged)"))


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a truncated, empty or malformed file is a DataError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path} is not a complete safetensors file ({e}): it is truncated or damaged; copy or "
                        "save it again") from None


def checkpoint_layout(state_dict: Mapping[str, Any]) -> str:
    """'official' for the vortex layout of published Evo 2 checkpoints (it always holds
    ``unembed.weight``, and FP8 ones ``*._extra_state``; column-split Wqkv rows per head), else
    'evo2kit' (``StripedHyena2.state_dict()``, as ``save_pretrained`` or ``torch.save`` of it writes)."""
    official = "unembed.weight" in state_dict or any(k.endswith("._extra_state") for k in state_dict)
    return "official" if official else "evo2kit"


def check_finite(tensors: Mapping[str, Any], where: str) -> None:
    """DataError naming ``where`` and the tensors holding NaN or infinity (a damaged file: flipped
    bytes in a weight)."""
    bad = [k for k, t in tensors.items() if isinstance(t, torch.Tensor) and t.is_floating_point()
           and t.device.type != "meta" and not _all_finite(t)]
    if bad:
        raise DataError(f"{where}: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
                        f"{', ...' if len(bad) > 3 else ''}): the weights are damaged; copy or download them again")


def _all_finite(t: torch.Tensor) -> bool:
    """torch.isfinite(t).all(), in pieces of 2^24 values (no copy of a big tensor's size)."""
    flat = t.detach().reshape(-1)
    return all(bool(torch.isfinite(piece).all()) for piece in flat.split(1 << 24))


# ---------------------------------------------------------------------------------------------
# FP8 metadata (Transformer Engine _extra_state)
# ---------------------------------------------------------------------------------------------


def parse_te_extra_state(key: str, value: Any) -> tuple[float, float]:
    """(input_scale, weight_scale) of a TE Linear from its checkpoint ``_extra_state``.

    TE 1.x writes ``io.BytesIO`` holding ``torch.save`` of a dict (TransformerEngine
    transformer_engine/pytorch/module/base.py, ``get_extra_state``): ``scale_fwd``,
    ``scale_inv_fwd``, ``amax_history_fwd`` for the forward tensors indexed by
    ``FP8FwdTensors`` (GEMM1_INPUT = 0, GEMM1_WEIGHT = 1, GEMM1_OUTPUT = 2; TE
    pytorch/csrc/common.h), the same for backward, and ``extra_fp8_variables``. The payload is
    read with ``weights_only=True`` and an empty allow-list. Raises CheckpointError naming
    ``key`` when the metadata is absent, unreadable or not usable scales."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{key}: {why}. The FP8 input projections need the scales Transformer "
                               "Engine saved there; load with fp8='off' to run without FP8 (loses accuracy)")

    if isinstance(value, torch.Tensor):  # TE >= 1.12 pickles into a uint8 tensor
        raise bad("FP8 metadata in Transformer Engine's uint8-tensor format (pickle bytes), which "
                  "evo2kit does not unpickle; official Evo 2 checkpoints use the io.BytesIO format")
    if not isinstance(value, io.BytesIO):
        raise bad(f"expected Transformer Engine FP8 metadata (io.BytesIO), found {type(value).__name__}")
    value.seek(0)
    try:
        with torch.serialization.safe_globals([]):
            state = torch.load(value, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (any failure means: not plain tensors and containers)
        why = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise bad(f"FP8 metadata refused by the safe unpickler ({why})") from None
    if state is None:
        raise bad("holds no FP8 state (saved with FP8 off)")
    if not isinstance(state, dict) or "scale_fwd" not in state:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise bad(f"no 'scale_fwd' in the FP8 metadata (keys: {keys})")
    scale = state["scale_fwd"]
    if not isinstance(scale, torch.Tensor) or scale.dim() != 1 or scale.numel() < 2:
        raise bad(f"'scale_fwd' must be a 1-D tensor of at least 2 scales (input, weight), "
                  f"found {tuple(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__}")
    pair = scale[:2].float()
    if not (torch.isfinite(pair).all() and (pair > 0).all()):
        raise bad(f"'scale_fwd'[:2] must be finite and positive, found {pair.tolist()}")
    return float(pair[0]), float(pair[1])


# ---------------------------------------------------------------------------------------------
# Mapping and loading
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What loading an official checkpoint dropped, permuted and converted."""

    dropped: list[str]
    permuted_wqkv: list[str]
    converted: dict[str, int] = field(default_factory=dict)  # "bfloat16 -> float32": tensors
    fp8_scales: dict[str, tuple[float, float]] = field(default_factory=dict)  # module: (input, weight)
    fp8_backend: str | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = ", ".join(self.dropped[:4]) + (", ..." if len(self.dropped) > 4 else "")
        lines = [f"dropped {len(self.dropped)} keys the model does not own ({shown})",
                 f"column-split Wqkv permuted in {len(self.permuted_wqkv)} tensors"]
        if self.converted:
            lines.append("converted: " + ", ".join(f"{k} ({n} tensors)" for k, n in sorted(self.converted.items())))
        if self.fp8_scales:
            lines.append(f"FP8 input projections in {len(self.fp8_scales)} blocks ({self.fp8_backend}), "
                         "scales from the checkpoint's Transformer Engine metadata")
        return "; ".join(lines) + "".join(f"\nnote: {n}" for n in self.notes)


def permute_column_split_wqkv(w: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Checkpoint Wqkv (3D, D[...]) with rows per head [q, k, v] -> rows [all q, all k, all v].
    Returns a transposed view, laid out exactly as vortex leaves it."""
    d = w.shape[0] // 3
    head = d // num_heads
    w = w.T.reshape(w.shape[1], num_heads, 3, head) if w.dim() == 2 else w.reshape(num_heads, 3, head)
    if w.dim() == 3:  # bias
        return torch.cat([w[:, 0].reshape(-1), w[:, 1].reshape(-1), w[:, 2].reshape(-1)])
    q, k, v = w.unbind(dim=-2)
    return torch.cat([q.reshape(w.shape[0], -1), k.reshape(w.shape[0], -1), v.reshape(w.shape[0], -1)], -1).T


def _droppable(key: str) -> bool:
    return key == "unembed.weight" or key.endswith("._extra_state")


def check_keys(model: StripedHyena2, state_dict: Mapping[str, Any], where: str = "checkpoint",
               droppable=lambda key: False) -> None:
    """Both loaders' key check: raise CheckpointError listing every missing, unexpected (not
    ``droppable``) and wrongly shaped key at once. Reads shapes only (the model may be on meta)."""
    own = model.state_dict()
    shape = lambda t: tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__  # noqa: E731
    missing = sorted(k for k in own if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in own and not droppable(k))
    shaped = sorted(f"{k}: checkpoint {shape(state_dict[k])} vs model {shape(own[k])}"
                    for k in own if k in state_dict and shape(state_dict[k]) != shape(own[k]))
    if missing or unexpected or shaped:
        lines = [f"{where} does not fit {model.config.model_name}:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shaped)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + "; ".join(keys))
        raise CheckpointError("\n".join(lines))


def check_official_state_dict(model: StripedHyena2, state_dict: Mapping[str, Any],
                              where: str = "checkpoint") -> dict[str, tuple[float, float]]:
    """Check names, shapes and FP8 metadata without touching any weight; the model may be on
    the meta device. Returns the FP8 scales per ``FP8Linear`` module name. Raises
    CheckpointError listing every missing, unexpected and wrongly shaped key at once, or naming
    the FP8 metadata key that is missing or malformed."""
    check_keys(model, state_dict, where, droppable=_droppable)
    scales = {}
    for name, module in model.named_modules():
        if isinstance(module, FP8Linear):
            key = f"{name}._extra_state"
            if key not in state_dict:
                raise CheckpointError(f"{key}: missing; this checkpoint has no FP8 metadata for {name} "
                                      "(a bf16 export?). Load it with fp8='off' or under its bf16 name")
            scales[name] = parse_te_extra_state(key, state_dict[key])
    return scales


def load_official_state_dict(model: StripedHyena2, state_dict: Mapping[str, Any],
                             dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                             fp8_backend: str = "emulate",
                             block_devices: list[torch.device] | None = None, where: str = "checkpoint") -> LoadReport:
    """Load an official Evo 2 state dict into ``model`` (strict, in place) and report.

    Everything is checked first (``check_official_state_dict``). Then each tensor is mapped
    (Wqkv permuted when ``column_split``; cast to ``dtype``, except those ``keeps_float32``, or
    to the model's own dtype when ``dtype`` is None) and *assigned* to the module, so a
    memory-mapped checkpoint whose dtype already fits is never copied. ``model`` may live on
    the meta device (then ``device``, default CPU, says where the weights go, or
    ``block_devices[i]`` for those of block i). FP8Linear modules get their scales from the
    checkpoint and run with ``fp8_backend`` ('auto': ``_scaled_mm`` where their device has it).
    A weight holding NaN or infinity is a DataError naming ``where`` (the file).
    """
    scales = check_official_state_dict(model, state_dict, where)
    own = model.state_dict()
    cfg = model.config
    mapped, permuted, converted = {}, [], {}
    for name, target in own.items():
        src = state_dict[name]
        if cfg.column_split and ".inner_mha_cls.Wqkv." in name:
            src = permute_column_split_wqkv(src, cfg.num_attention_heads)
            permuted.append(name)
        to_dtype = target.dtype if dtype is None or not target.is_floating_point() else (
            torch.float32 if keeps_float32(name) else dtype)
        if not target.is_meta:
            to_device = target.device
        elif block_devices is not None and name.startswith("blocks."):
            to_device = block_devices[int(name.split(".")[1])]
        else:
            to_device = torch.device((block_devices or [device or "cpu"])[0])
        if src.dtype != to_dtype:
            change = f"{str(src.dtype).removeprefix('torch.')} -> {str(to_dtype).removeprefix('torch.')}"
            converted[change] = converted.get(change, 0) + 1
        mapped[name] = src.to(device=to_device, dtype=to_dtype)
    bad = [k for k, t in mapped.items() if t.is_floating_point() and t.device.type != "meta" and not _all_finite(t)]
    if bad:
        overflow = [k for k in bad if _all_finite(state_dict[k])]  # finite in the file, not in ``dtype``
        if overflow:
            raise DataError(f"{where}: {len(overflow)} tensor(s) overflow {dtype} ({', '.join(overflow[:3])}): "
                            "load with dtype='bfloat16' or 'float32'")
        check_finite({k: state_dict[k] for k in bad}, where)
    model.load_state_dict(mapped, strict=True, assign=True)
    backends = set()
    for name, (input_scale, weight_scale) in scales.items():
        module = model.get_submodule(name)
        module.set_scales(input_scale, weight_scale)
        module.backend = backend_for(fp8_backend, module.weight.device)
        backends.add(module.backend)
    dropped = sorted(k for k in state_dict if k not in own and not (k.endswith("._extra_state")
                                                                     and k[: -len("._extra_state")] in scales))
    return LoadReport(dropped, permuted, converted, scales, ", ".join(sorted(backends)) or None)


# ---------------------------------------------------------------------------------------------
# Writing the official layout (the inverse of loading it)
# ---------------------------------------------------------------------------------------------


def te_extra_state(input_scale: float, weight_scale: float, amax_history_len: int = 16) -> io.BytesIO:
    """What Transformer Engine 1.x stores as a one-GEMM ``Linear``'s ``_extra_state`` (TE
    ``module/base.py``, ``get_extra_state``): ``torch.save`` of a dict into an ``io.BytesIO``, forward
    tensors indexed GEMM1_INPUT = 0, GEMM1_WEIGHT = 1, GEMM1_OUTPUT = 2, scale = 448 / amax."""
    scale = torch.tensor([input_scale, weight_scale, 1.0], dtype=torch.float32)
    state = {"scale_fwd": scale, "scale_inv_fwd": 1.0 / scale,
             "amax_history_fwd": (448.0 / scale).expand(amax_history_len, 3).clone(),
             "scale_bwd": torch.ones(2), "scale_inv_bwd": torch.ones(2),
             "amax_history_bwd": torch.zeros(amax_history_len, 2),
             "extra_fp8_variables": {"fp8_checkpoint": True, "num_gemms": 1, "fp8_max_fwd": 448.0,
                                     "fp8_max_bwd": 57344.0, "first_module": False}}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def unpermute_column_split_wqkv(w: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Inverse of :func:`permute_column_split_wqkv`: model Wqkv rows [all q, all k, all v] -> the
    checkpoint's rows per head [q, k, v] (weight (3D, D) or bias (3D,))."""
    d = w.shape[0] // 3
    return w.reshape(3, num_heads, d // num_heads, *w.shape[1:]).transpose(0, 1).reshape(w.shape).contiguous()


def save_official_checkpoint(model: StripedHyena2, path: str | Path, parts: int = 1,
                             dtype: torch.dtype = torch.bfloat16) -> list[Path]:
    """Write ``model`` as an official Evo 2 checkpoint: ``torch.save`` of the vortex state dict with
    Wqkv column-split rows (when ``column_split``), ``unembed.weight``, a TE ``_extra_state`` per
    ``FP8Linear`` (its scales), floats in ``dtype`` except ``keeps_float32`` ones. ``parts`` > 1
    splits the file into byte ranges ``path.part0``, ``.part1``, ... as the 40B is published (no
    ``path`` then). Each file is written atomically. Returns the files written."""
    from evo2kit.files import atomic_write

    cfg, path = model.config, Path(path)
    sd: dict[str, Any] = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if cfg.column_split and ".inner_mha_cls.Wqkv." in name:
            t = unpermute_column_split_wqkv(t, cfg.num_attention_heads)
        if t.is_floating_point() and not keeps_float32(name):
            t = t.to(dtype)
        sd[name] = t.contiguous()
    sd["unembed.weight"] = sd["embedding_layer.weight"].clone()
    for name, module in model.named_modules():
        if isinstance(module, FP8Linear):
            sd[f"{name}._extra_state"] = te_extra_state(module.input_scale, module.weight_scale)
    buf = io.BytesIO()
    torch.save(sd, buf)
    blob = buf.getvalue()
    files = [path] if parts == 1 else [path.with_name(f"{path.name}.part{k}") for k in range(parts)]
    cuts = [len(blob) * k // len(files) for k in range(len(files) + 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(files):
        atomic_write(f, lambda out, k=k: out.write(blob[cuts[k]:cuts[k + 1]]), mode="wb")
    return files


# ---------------------------------------------------------------------------------------------
# evo2kit's own format: safetensors weights + JSON config
# ---------------------------------------------------------------------------------------------


def save_pretrained(model: StripedHyena2, directory: str | Path, name: str) -> Path:
    """Write ``name.safetensors`` (weights) and ``name.json`` (config) into ``directory``."""
    import json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = directory / f"{name}.safetensors"
    save_safetensors(tensors, path, {"format": "pt", "model": name})
    (directory / f"{name}.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return path


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> Path:
    """``tensors`` and ``metadata`` as a safetensors file at ``path``, written atomically, with its header's
    keys sorted: the same tensors and metadata always give the same bytes (safetensors itself writes
    metadata in a hash map's order, which varies from one call to the next)."""
    import json
    import struct

    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=dict(metadata))
        with open(tmp, "r+b") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.dumps(json.loads(f.read(n)), sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False).encode()
            if len(header) > n:  # not the compact JSON safetensors writes (never seen): leave the file as it is
                return Path(path)
            f.seek(8)
            f.write(header + b" " * (n - len(header)))  # the same length: the data does not move
    return Path(path)


def load_pretrained(weights: str | Path, config: Evo2Config | None = None) -> StripedHyena2:
    """A model from our own ``.safetensors`` + ``.json`` pair (config read from the JSON beside
    the weights unless given), built on the meta device and given the file's tensors."""
    import json

    weights = Path(weights)
    if config is None:
        config = Evo2Config.from_dict(json.loads(weights.with_suffix(".json").read_text()))
    return model_from_state_dict(read_safetensors(weights), config, str(weights))


def model_from_state_dict(state_dict: Mapping[str, torch.Tensor], config: Evo2Config,
                          where: str = "checkpoint") -> StripedHyena2:
    """A model of ``config`` built on the meta device and given ``state_dict``'s tensors (evo2kit's
    layout, :func:`checkpoint_layout`), after checking names, shapes and that every value is finite."""
    with torch.device("meta"):
        model = StripedHyena2(config)
    check_keys(model, state_dict, where=where)
    check_finite(state_dict, where)
    model.load_state_dict(state_dict, assign=True)
    return model
