"""Fine-tuning Evo 2 for a task: a variant classifier trained on a frozen model, with LoRA adapters,
or in full (notebook 06, part 2; part 1, training from scratch, is ``evo2kit.stability``).

    task = brca1_task(window=512, group_bp=100)                 # notebook 04's variants and grouped split
    clf = VariantClassifier(model, "blocks.6.mlp.l3", mode="lora")
    result = fit(clf, task, FitConfig(epochs=3), checkpoint="runs/lora.pt")   # resumes if cut short
    save_adapter(clf, "brca1_lora.safetensors"); clf2 = load_adapter(model, "brca1_lora.safetensors")

The pieces of a safe training step (per-kind gradient norms, the two clipping groups, the pole clamp,
the learning-rate schedule) are ``evo2kit.training.train``'s, shared with the training of the bundled model.
LoRA comes from the ``peft`` library, injected into the model's own ``nn.Linear`` modules by name;
an adapter file is safetensors (tensors and JSON metadata, nothing unpickled).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from evo2kit.analysis.embeddings import parse_pooling, pool_weights
from evo2kit.analysis.probes import ProbeDNN, Split
from evo2kit.api import Evo2Model
from evo2kit.checkpoints.official import save_safetensors
from evo2kit.cli import DataError
from evo2kit.data.brca1 import brca1_variants, brca1_windows, stratified_subset
from evo2kit.files import atomic_write
from evo2kit.model.striped_hyena import StripedHyena2
from evo2kit.training import train

# --------------------------------------------------------------------------- a variant classifier


@dataclass
class VariantTask:
    """Labelled SNVs, their windows as token ids, and a train / validation / test split.

    ref_ids (n_ref, L) and var_ids (N, L) int64 (all windows of one length), ref_index (N,): variant
    i's reference window is ref_ids[ref_index[i]]; var_pos (N,): the SNV's index in its window;
    y (N,) 1 for LOF; split: rows of the full set (notebook 04's split)."""

    variants: pd.DataFrame
    y: np.ndarray
    ref_ids: torch.Tensor
    var_ids: torch.Tensor
    ref_index: np.ndarray
    var_pos: np.ndarray
    split: Split


def brca1_task(tokenizer, window: int, n_variants: int | None = None, seed: int = 0, split_seed: int = 42,
               group_bp: int = 100) -> VariantTask:
    """Notebook 04's variants (``n_variants`` drawn class-stratified with ``seed``, or all), windows and
    split grouped by genomic position (blocks of ``group_bp`` bases, ``split_seed``): the same test set."""
    from evo2kit.analysis.probes import grouped_split

    df = brca1_variants(n_variants, seed)
    windows = brca1_windows(df, window)
    lengths = {len(s) for s in [*windows.ref_seqs, *windows.var_seqs]}
    if len(lengths) != 1:
        raise ValueError(f"windows of {sorted(lengths)} bp: fine-tuning batches need windows of one length")
    y = (df["class"] == "LOF").to_numpy(np.int64)
    encode = lambda seqs: tokenizer.encode_batch(seqs)[0]  # noqa: E731 (one length: no padding)
    return VariantTask(df, y, encode(windows.ref_seqs), encode(windows.var_seqs), np.asarray(windows.ref_index),
                       np.asarray(windows.var_pos_in_window),
                       grouped_split(y, groups=df["pos"].to_numpy() // group_bp, seed=split_seed))


def subset_rows(rows: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` of ``rows`` drawn class-stratified with ``seed`` (all for None or n >= len(rows)), sorted:
    :func:`evo2kit.data.brca1.stratified_subset`, the one stratified sampler, on row numbers."""
    table = pd.DataFrame({"class": y[rows]}, index=rows)
    return np.sort(stratified_subset(table, n, seed=seed).index.to_numpy())


LORA_TARGETS = ("projections", "out_filter_dense", "Wqkv", "out_proj", "l1", "l2", "l3")
"""Every ``nn.Linear`` of a StripedHyena 2 block: the Hyena input and output projections, attention's
QKV and output projections, the MLP's three matrices. The filters, norms and embedding stay frozen."""
MODES = ("frozen", "lora", "full")


class VariantClassifier(nn.Module):
    """P(LOF) of a variant from a language model's pooled features of its reference and variant windows.

    The model runs up to the block of ``layer`` (e.g. 'blocks.6.mlp.l3'); that module's output (B, L, d)
    is pooled (``embed``'s poolings: 'mean', 'position', 'window:k'), the reference and variant
    features are concatenated (B, 2d), standardised with fixed statistics (``set_standardisation``)
    and fed to notebook 04's probe network (``probes.ProbeDNN``). Blocks after ``layer`` cannot change
    the output: they are neither run nor trained. ``mode``: 'frozen' (only the head trains), 'lora'
    (LoRA adapters of rank ``lora_r`` on ``lora_targets``, and the head) or 'full' (every weight
    the output depends on, and the head); 'lora' and 'full' work on a copy of the model, 'frozen'
    on the model itself. ``grad_checkpointing`` recomputes each block's activations in the backward
    pass (for long windows on large models).
    """

    def __init__(self, model: Evo2Model | StripedHyena2, layer: str, mode: str = "lora", pooling: str = "mean",
                 lora_r: int = 8, lora_alpha: float = 16.0, lora_targets=LORA_TARGETS, seed: int = 0,
                 grad_checkpointing: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        backbone = model.model if isinstance(model, Evo2Model) else model
        self.block = _block_of(layer, backbone.config.num_layers)
        if mode != "frozen":  # LoRA replaces modules, full training changes weights: work on a copy of the
            # blocks that run (the later ones are shared, never run, never changed)
            backbone = copy.deepcopy(backbone, memo={id(b): b for b in [*backbone.blocks[self.block + 1:],
                                                                         backbone.norm]})
        parse_pooling(pooling)
        self.layer, self.mode, self.pooling, self.grad_checkpointing = layer, mode, pooling, grad_checkpointing
        self.lora = {"r": lora_r, "lora_alpha": lora_alpha, "target_modules": list(lora_targets)}
        backbone.get_submodule(layer)  # an unknown name fails here, not in the first forward
        for name, p in backbone.named_parameters():
            p.requires_grad_(mode == "full" and _used(name, self.block))
        if mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model  # noqa: PLC0415 (peft only when LoRA is asked for)

            blocks = "|".join(str(i) for i in range(self.block + 1))  # only the blocks that run
            targets = rf"blocks\.({blocks})\.(.+\.)?({'|'.join(lora_targets)})"
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # LoRA's A matrices start random (B at zero): the same each time
                backbone = inject_adapter_in_model(LoraConfig(r=lora_r, lora_alpha=lora_alpha, target_modules=targets),
                                                   backbone)  # and freezes every base weight
        self.backbone = backbone
        d = backbone.config.hidden_size  # the width of a block's output and of its norms, mixer and MLP outputs
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = ProbeDNN(2 * d).to(backbone.embedding_layer.weight.device)
        self.register_buffer("mean", torch.zeros(2 * d, device=self.head[0].weight.device))
        self.register_buffer("std", torch.ones(2 * d, device=self.head[0].weight.device))

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Fix the head's input standardisation from training features (N, 2d), as notebook 04 does."""
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0) + 1e-6)

    def pooled(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """ids (B, L) token ids, pos (B,) SNV index -> (B, d) float32 pooled output of ``layer``."""
        out = {}
        handle = self.backbone.get_submodule(self.layer).register_forward_hook(
            lambda _m, _i, y: out.__setitem__("y", y[0] if isinstance(y, tuple) else y))
        try:
            x = self.backbone.embedding_layer(ids.to(self.backbone.embedding_layer.weight.device))
            for blk in self.backbone.blocks[: self.block + 1]:
                x = x.to(next(blk.parameters()).device)
                if self.grad_checkpointing and torch.is_grad_enabled():  # recompute in backward: memory for time
                    x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
                else:
                    x = blk(x)
        finally:
            handle.remove()
        y = out["y"]
        kind, k = parse_pooling(self.pooling)
        W = pool_weights(kind, k, [ids.shape[1]] * len(ids), [[int(p)] for p in pos], ids.shape[1]).to(y.device)
        return torch.bmm(W, y.float())[:, 0]

    def features(self, task: VariantTask, rows: np.ndarray) -> torch.Tensor:
        """(len(rows), 2d): [reference, variant] pooled features of the task's variants ``rows``."""
        pos = torch.as_tensor(task.var_pos[rows])
        both = torch.cat([task.ref_ids[task.ref_index[rows]], task.var_ids[rows]])
        f = self.pooled(both, torch.cat([pos, pos]))
        return torch.cat([f[: len(rows)], f[len(rows):]], 1)

    def head_proba(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 2d) features -> (B,) P(LOF)."""
        return self.head((features.to(self.mean.device) - self.mean) / self.std)[:, 0]

    def forward(self, task: VariantTask, rows: np.ndarray) -> torch.Tensor:
        return self.head_proba(self.features(task, rows))

    def trainable(self) -> dict[str, nn.Parameter]:
        """{name: parameter} of what this mode trains (head included)."""
        return {n: p for n, p in self.named_parameters()
                if p.requires_grad and (not n.startswith("backbone.") or _used(n[len("backbone."):], self.block))}

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """What a checkpoint or adapter file holds: the trained tensors, the head's buffers (batch norm
        statistics) and the standardisation; for 'full', every used backbone weight."""
        keep = set(self.trainable()) | {n for n, _ in self.named_buffers() if not n.startswith("backbone.")}
        return {n: t.detach() for n, t in self.state_dict().items() if n in keep}


def _used(name: str, block: int) -> bool:
    """Whether the model parameter ``name`` runs when the head reads block ``block``: the embedding
    and blocks 0..block, not the later blocks nor the final norm."""
    parts = name.split(".")
    return int(parts[1]) <= block if parts[0] == "blocks" else parts[0] == "embedding_layer"


def _block_of(layer: str, num_layers: int) -> int:
    parts = layer.split(".")
    if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit() or int(parts[1]) >= num_layers:
        raise ValueError(f"layer must name a module inside a block, such as 'blocks.3.mlp.l3' (blocks 0.."
                         f"{num_layers - 1}), not {layer!r}")
    return int(parts[1])


# --------------------------------------------------------------------------- training, resumable


@dataclass
class FitConfig:
    """Settings of ``fit``. ``lr`` is the head's learning rate, ``backbone_lr`` the adapters' ('lora')
    or the model weights' ('full'); both warm up for ``warmup`` steps, then decay (``train.lr_at``).
    Gradients are clipped after ``backward()`` in evo2kit's two groups (``train.clip_gradients``)
    and the poles clamped after each step. ``batch_size`` variants per step (twice as many
    windows). The best epoch by validation AUROC is kept, as in notebook 04."""

    epochs: int = 3
    batch_size: int = 8
    lr: float = 1e-3
    backbone_lr: float = 1e-3
    warmup: int = 10
    weight_decay: float = 0.0
    max_norm: float = 1.0
    seed: int = 0
    checkpoint_minutes: float = 3.0


@dataclass
class FitResult:
    """log: one row per step (epoch, step, lr, loss, per-kind gradient norms before clipping);
    epochs: one row per epoch (train loss, validation AUROC, seconds); best_epoch (1-based)."""

    log: pd.DataFrame
    epochs: pd.DataFrame
    best_epoch: int
    test_proba: np.ndarray | None = None  # P(LOF) of the split's test rows, set by compare_modes

    @property
    def seconds_per_epoch(self) -> float:
        return float(self.epochs["seconds"].mean())


def _batch_seed(seed: int, epoch: int, step: int) -> int:
    """Each step's dropout seed, from (seed, epoch, step) alone: a resumed run draws what an
    uninterrupted one would."""
    return int(np.random.default_rng([seed, epoch, step]).integers(2**62))


def fit(clf: VariantClassifier, task: VariantTask, config: FitConfig = FitConfig(),
        train_rows: np.ndarray | None = None, val_rows: np.ndarray | None = None,
        checkpoint: str | os.PathLike | None = None, frozen_features: torch.Tensor | None = None) -> FitResult:
    """Train ``clf`` on ``train_rows`` (default: the split's training rows), keep the epoch of best
    AUROC on ``val_rows`` (default: the split's validation rows).

    The head's standardisation is fixed first from the frozen model's training features
    (``frozen_features``: the rows of ``features(task, train_rows)``, computed here if None). In
    'frozen' mode those cached features are all the head ever sees: the model runs once. With
    ``checkpoint`` a file is written atomically every ``config.checkpoint_minutes`` and after every
    epoch (trained tensors, optimiser, progress, the best epoch's tensors); calling ``fit`` again
    with the same arguments after an interruption resumes from it and ends as an uninterrupted run.
    """
    train_rows = np.sort(task.split.train if train_rows is None else np.asarray(train_rows))
    val_rows = np.sort(task.split.val if val_rows is None else np.asarray(val_rows))
    if frozen_features is None:
        frozen_features = embed_rows(clf, task, train_rows, config.batch_size)
    clf.set_standardisation(frozen_features)
    val_features = embed_rows(clf, task, val_rows, config.batch_size) if clf.mode == "frozen" else None
    params = clf.trainable()
    head = [p for n, p in params.items() if not n.startswith("backbone.")]
    body = [p for n, p in params.items() if n.startswith("backbone.")]
    opt = torch.optim.AdamW([{"params": head, "lr": config.lr, "base_lr": config.lr},
                             {"params": body, "lr": config.backbone_lr, "base_lr": config.backbone_lr}],
                            weight_decay=config.weight_decay)
    y = torch.as_tensor(task.y, dtype=torch.float32)
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    total = steps_per_epoch * config.epochs
    progress = {"epoch": 0, "step": 0, "log": [], "epochs": [], "best": -1.0, "best_epoch": 0, "best_state": None,
                "epoch_seconds": 0.0}
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.is_file():
        progress = _load_checkpoint(path, clf, opt)
    last_save = time.time()
    while progress["epoch"] < config.epochs:
        epoch = progress["epoch"]
        clf.train()
        t0 = time.time() - progress["epoch_seconds"]
        order = np.random.default_rng([config.seed, epoch]).permutation(train_rows)
        batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        for b in range(progress["step"], len(batches)):
            rows = batches[b]
            step = epoch * steps_per_epoch + b
            for g in opt.param_groups:
                g["lr"] = train.lr_at(step, train.schedule(g["base_lr"], config.warmup, total))
            if len(rows) >= 2:  # batch norm cannot train on one row
                torch.manual_seed(_batch_seed(config.seed, epoch, b))
                if clf.mode == "frozen":
                    proba = clf.head_proba(frozen_features[np.searchsorted(train_rows, rows)])
                else:
                    proba = clf(task, rows)
                loss = F.binary_cross_entropy(proba, y[rows].to(proba.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norms = train.kind_grad_norms(clf, clf.backbone.config) if clf.mode != "frozen" else \
                    {"total": train.grad_norms(clf.named_parameters(), lambda n: None)["total"]}
                train.clip_gradients(clf, config.max_norm, "modal")
                opt.step()
                if clf.mode == "full":  # the only mode that trains poles
                    train.clamp_poles(clf)
                progress["log"].append({"epoch": epoch + 1, "step": step + 1, "lr": opt.param_groups[-1]["lr"],
                                        "loss": loss.item(), **{f"gn_{k}": v for k, v in norms.items()}})
            progress["step"] = b + 1
            if path is not None and time.time() - last_save > config.checkpoint_minutes * 60:
                progress["epoch_seconds"] = time.time() - t0
                _save_checkpoint(path, clf, opt, progress)
                last_save = time.time()
        seconds = time.time() - t0
        val_auroc = _auroc(task.y[val_rows], predict(clf, task, val_rows, config.batch_size, val_features))
        epoch_loss = [r["loss"] for r in progress["log"] if r["epoch"] == epoch + 1]
        progress["epochs"].append({"epoch": epoch + 1, "train_loss": float(np.mean(epoch_loss)) if epoch_loss
                                   else float("nan"), "val_auroc": val_auroc, "seconds": seconds})
        if val_auroc > progress["best"]:
            progress["best"], progress["best_epoch"] = val_auroc, epoch + 1
            progress["best_state"] = {n: t.clone() for n, t in clf.state_to_save().items()}
        progress.update(epoch=epoch + 1, step=0, epoch_seconds=0.0)
        if path is not None:
            _save_checkpoint(path, clf, opt, progress)
            last_save = time.time()
    if progress["best_state"] is not None:
        clf.load_state_dict(progress["best_state"], strict=False)
    clf.eval()
    return FitResult(pd.DataFrame(progress["log"]), pd.DataFrame(progress["epochs"]), progress["best_epoch"])


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def _save_checkpoint(path: Path, clf: VariantClassifier, opt: torch.optim.Optimizer, progress: dict) -> None:
    state = {"model": clf.state_to_save(), "opt": opt.state_dict(), "progress": progress}
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def _load_checkpoint(path: Path, clf: VariantClassifier, opt: torch.optim.Optimizer) -> dict:
    state = torch.load(path, map_location=clf.mean.device, weights_only=True)  # tensors and plain types only
    missing = set(clf.state_to_save()) - set(state["model"])
    if missing:
        raise ValueError(f"{path} was written by another classifier (no {sorted(missing)[:3]}...): "
                         "delete it to start over, or pass the matching mode and layer")
    clf.load_state_dict(state["model"], strict=False)
    opt.load_state_dict(state["opt"])
    return state["progress"]


@torch.no_grad()
def embed_rows(clf: VariantClassifier, task: VariantTask, rows: np.ndarray, batch_size: int = 8) -> torch.Tensor:
    """(len(rows), 2d) [reference, variant] features of ``rows``, in batches, without gradients."""
    was = clf.training
    clf.eval()
    out = torch.cat([clf.features(task, rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)])
    clf.train(was)
    return out


@torch.no_grad()
def predict(clf: VariantClassifier, task: VariantTask, rows: np.ndarray, batch_size: int = 8,
            features: torch.Tensor | None = None) -> np.ndarray:
    """(len(rows),) P(LOF) of the variants ``rows`` (``features``: their cached features, for 'frozen')."""
    was = clf.training
    clf.eval()
    f = embed_rows(clf, task, rows, batch_size) if features is None else features
    p = torch.cat([clf.head_proba(f[i:i + 256]) for i in range(0, len(f), 256)]).float().cpu().numpy()
    clf.train(was)
    return p


# --------------------------------------------------------------------------- adapter files


def base_digest(base: Evo2Model) -> str:
    """The SHA-256 of the tensors ``base`` holds now (``Evo2Model.tensors_digest``), which an adapter
    records and is checked against: not the weights file's digest, which stays the same when the
    weights are changed in place. Computed on each call (a remembered value could go stale), on a
    thread pool; a caller that changes no weight in between may pass it on (``compare_modes`` does)."""
    return base.tensors_digest()


ADAPTER_FORMAT = "evo2kit-variant-classifier/1"


def save_adapter(clf: VariantClassifier, path: str | os.PathLike, base: Evo2Model,
                 base_tensors_sha256: str | None = None) -> Path:
    """Write what ``clf`` trained (LoRA matrices or full weights, the head, its statistics) to a
    safetensors file, with the settings to rebuild it, the base model's name, its weights file's sha256
    and the sha256 of the tensors it holds (:func:`base_digest`, or ``base_tensors_sha256`` when the
    caller has just computed it) in its metadata. Atomic: an interrupted save leaves no file."""
    meta = {"format": ADAPTER_FORMAT, "mode": clf.mode, "layer": clf.layer, "pooling": clf.pooling,
            "lora": json.dumps(clf.lora), "base_model": base.name, "base_sha256": base.digest(),
            "base_tensors_sha256": base_tensors_sha256 or base_digest(base)}
    tensors = {n: t.detach().contiguous().cpu() for n, t in clf.state_to_save().items()}
    return save_safetensors(tensors, path, meta)


ADAPTER_KEYS = ("mode", "layer", "pooling", "lora", "base_model", "base_sha256")
"""Metadata every adapter file holds (``base_tensors_sha256`` too since it exists)."""


def load_adapter(base: Evo2Model, path: str | os.PathLike) -> VariantClassifier:
    """The classifier saved by ``save_adapter``, rebuilt on ``base`` (which must hold the weights it
    was trained from: the sha256 of its tensors is checked, so weights changed in place are seen), in
    eval mode. Nothing is unpickled. A file that is not a complete adapter is a DataError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise FileNotFoundError(f"no adapter file {path}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path} is not a complete safetensors file ({e}): the adapter is truncated or damaged; "
                        "save it again") from None
    if meta.get("format") != ADAPTER_FORMAT:
        raise DataError(f"{path}: not an evo2kit adapter file (metadata format {meta.get('format')!r}, "
                        f"expected {ADAPTER_FORMAT!r})")
    missing = [k for k in ADAPTER_KEYS if k not in meta]
    if missing:
        raise DataError(f"{path}: the adapter's metadata lacks {missing}: it was not written by save_adapter, or "
                        "was altered; save it again with finetune.save_adapter")
    if "base_tensors_sha256" in meta:
        found = base_digest(base)
        if meta["base_tensors_sha256"] != found:
            raise DataError(f"{path} was trained on {meta['base_model']} (tensors sha256 "
                            f"{meta['base_tensors_sha256'][:12]}...), not on this {base.name}, whose tensors "
                            f"(sha256 {found[:12]}...) differ: load that model's weights, unchanged, first")
    elif meta["base_sha256"] != base.digest():
        raise DataError(f"{path} was trained on {meta['base_model']} (weights sha256 {meta['base_sha256'][:12]}...), "
                        f"not on this {base.name} ({base.digest()[:12]}...): load that model first")
    else:
        warnings.warn(f"{path} records only its base's weights file digest (written before evo2kit checked the "
                      "tensors): weights changed in place since loading are not detected; save it again",
                      stacklevel=2)
    try:
        lora = json.loads(meta["lora"])
        clf = VariantClassifier(base, meta["layer"], mode=meta["mode"], pooling=meta["pooling"], lora_r=lora["r"],
                                lora_alpha=lora["lora_alpha"], lora_targets=lora["target_modules"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: the adapter's settings cannot be read ({e}): save it again") from None
    expected = set(clf.state_to_save())
    if set(tensors) != expected:
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise DataError(f"{path}: tensors do not match a {meta['mode']} classifier on {meta['layer']} "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    clf.load_state_dict({k: v.to(clf.mean.device) for k, v in tensors.items()}, strict=False)
    return clf.eval()


# --------------------------------------------------------------------------- the comparison of notebook 06


def compare_modes(model: Evo2Model, task: VariantTask, layer: str, modes=MODES, config: FitConfig = FitConfig(),
                  backbone_lr: Mapping[str, float] | None = None, train_rows: np.ndarray | None = None,
                  val_rows: np.ndarray | None = None, pooling: str = "mean", lora_r: int = 8,
                  lora_alpha: float = 16.0, grad_checkpointing: bool = False, n_boot: int = 1000,
                  out_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, dict[str, FitResult]]:
    """Train one classifier per mode on the same rows, from the same head initialisation, and score
    each on the split's test rows (AUROC, 95% bootstrap interval: ``probes.split_auroc``).
    ``backbone_lr``: the backbone's learning rate for modes 'lora' and 'full' (other keys, such as a
    notebook's 'head', are left out); ``config.lr`` is the head's.

    Returns (table, fits): one row per mode with its trainable parameter count, seconds per epoch,
    best epoch and test AUROC; fits {mode: FitResult}. With ``out_dir``, each mode's training
    checkpoint (``<mode>.pt``, resumed by a rerun) and its adapter file (``<mode>.safetensors``) go
    to ``out_dir/<digest of the settings>/``.
    """
    from evo2kit.analysis.probes import split_auroc
    from evo2kit.files import sha256_json

    train_rows = np.sort(task.split.train if train_rows is None else train_rows)
    backbone_lr = {mode: lr for mode, lr in (backbone_lr or {}).items() if mode in ("lora", "full")}
    digest = base_digest(model)  # once: nothing here changes the model's weights (LoRA and full train copies)
    settings = {"model": digest, "layer": layer, "pooling": pooling, "lora": [lora_r, lora_alpha],
                "config": dataclasses.asdict(config), "lr": backbone_lr, "train": train_rows.tolist(),
                "val": None if val_rows is None else np.sort(val_rows).tolist(),
                "test": task.split.test.tolist(), "variants": task.var_ids.shape[1]}
    folder = None if out_dir is None else Path(out_dir) / sha256_json(settings)[:16]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    frozen = VariantClassifier(model, layer, "frozen", pooling, seed=config.seed)
    t0 = time.time()
    train_features = embed_rows(frozen, task, train_rows, config.batch_size)
    embed_seconds = time.time() - t0
    rows, fits = [], {}
    for mode in modes:
        clf = frozen if mode == "frozen" else VariantClassifier(
            model, layer, mode, pooling, lora_r=lora_r, lora_alpha=lora_alpha, seed=config.seed,
            grad_checkpointing=grad_checkpointing)
        cfg = dataclasses.replace(config, backbone_lr=backbone_lr.get(mode, config.backbone_lr))
        fits[mode] = fit(clf, task, cfg, train_rows, val_rows, None if folder is None else folder / f"{mode}.pt",
                         frozen_features=train_features)
        score = np.full(len(task.y), np.nan)
        score[task.split.test] = fits[mode].test_proba = predict(clf, task, task.split.test, config.batch_size)
        if folder is not None:
            save_adapter(clf, folder / f"{mode}.safetensors", model, digest)
        rows.append({"mode": mode, "trainable_params": sum(p.numel() for p in clf.trainable().values()),
                     "seconds_per_epoch": fits[mode].seconds_per_epoch,
                     "best_epoch": fits[mode].best_epoch, "val_auroc": fits[mode].epochs.val_auroc.max(),
                     **split_auroc(task.y, score, task.split, n_boot=n_boot),
                     "adapter": None if folder is None else str(folder / f"{mode}.safetensors")})
        if mode != "frozen":
            del clf  # a copy of the model: free it before the next mode
    table = pd.DataFrame(rows)
    table.attrs["feature_seconds"] = embed_seconds  # the frozen model's one pass over the training rows
    return table, fits
