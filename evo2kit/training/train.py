"""Train the bundled evo2kit-tiny model (or any StripedHyena 2 config) on human DNA.

    python -m evo2kit.training --out runs/tiny --steps 1600          # resumes if runs/tiny has a checkpoint
    python -m evo2kit.training --out runs/tiny --export evo2kit/weights

Data: hg19 chr20 and the chrX part from the registry (never chr17, never the chr22 test
blocks); the last ``--val-bp`` bases of chr20 are held out for validation. Random windows
of ``--seq-len`` bases without N, either strand (reverse complement with probability 1/2),
drawn from a generator seeded by (seed, step), so a resumed run sees exactly the batches
an uninterrupted one would. AdamW with linear warm-up and cosine decay; total gradient
norm clipped after ``backward()``; the norm of each block kind's gradient is logged every
step to show whether the long Hyena (HCL) layers spike. Checkpoints are written atomically
every ``--checkpoint-minutes``; a loss that is not a finite number stops the run (nothing of
it is saved).

Rerunning an ``--out`` folder resumes its run only with the settings it was started with
(``args.json``; ``--out``, ``--device``, ``--stop-at``, ``--time-limit-min`` and
``--checkpoint-minutes`` may differ): other settings are refused unless ``--allow-changes``, and
each such resumption is recorded in ``args.json`` (``resumed_with_changes``: the step and what
changed). Bad options, ``--init`` weights of another shape or with NaN, and ``--val-bp`` that
leaves nothing of chr20 for training are one line each; exit status as in ``evo2kit.cli``.

Gene-aware training (:mod:`evo2kit.genome_windows`): ``--exon-fraction`` of the windows centred
on coding exons, bases in repeats weighted ``--repeat-weight`` in the loss, ``--init`` to continue
from trained weights, ``--bacteria-fraction`` of the windows from 16 coding-rich bacterial genomes,
and every ``--brca1-every`` steps a zero-shot BRCA1 check (AUROC, the mean delta per consequence and
the LOF-rich minus benign-rich gap, into ``brca1.csv``) to see whether the model is learning the
lesson; ``--stop-at`` ends a session at a chosen step without changing the schedule:

    python -m evo2kit.training --out runs/genic --init evo2kit-tiny --exon-fraction 0.5 --repeat-weight 0.1 \
        --lr 1e-3 --min-lr 1e-4 --steps 4000 --seed 1 --brca1-every 600
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from evo2kit.checkpoints.official import save_pretrained
from evo2kit.cli import ArgumentParser, DataError, UsageError, exit_status_help, run_main
from evo2kit.data.genome_windows import (
    GenicSampler,
    MixedSampler,
    WindowSampler,
    load_annotation,
    load_bacteria,
    load_genome,
)
from evo2kit.files import atomic_write, sha256_file
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2

_PATTERN = ["hcs", "hcm", "hcl", "attn"] * 3
TINY_CONFIG = Evo2Config(
    model_name="evo2kit-tiny",
    hidden_size=96,
    num_layers=len(_PATTERN),
    **{f"{k}_layer_idxs": [i for i, p in enumerate(_PATTERN) if p == k] for k in ("hcs", "hcm", "hcl", "attn")},
    num_attention_heads=4,
    inner_mlp_size=256,
    state_size=16,
    hcs_filter_groups=16,
    hcm_filter_groups=16,
    qkv_proj_bias=False,
    rotary_emb_base=10000,
    max_seqlen=8192,
)
KINDS = ("hcs", "hcm", "hcl", "attn")


def schedule(lr: float, warmup: int, steps: int, weight_decay: float = 0.1) -> types.SimpleNamespace:
    """The arguments ``lr_at`` and ``make_optimizer`` read: ``warmup`` steps of linear warm-up, then
    cosine decay to lr / 10 at ``steps``."""
    return types.SimpleNamespace(lr=lr, min_lr=lr / 10, warmup=warmup, steps=steps, weight_decay=weight_decay)


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


MODAL = ("log_poles", "residues")
"""Name endings of the HCL modal parameters (poles and residues of the long filters)."""
PARAM_KINDS = ("embedding", "hcs", "hcm", "hcl_modal", "hcl_other", "attn", "mlp")
"""What ``param_kind`` sorts a StripedHyena 2's parameters into."""
_IN_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.(.+)$")


def param_kind(config: Evo2Config, name: str) -> str | None:
    """The kind of the parameter ``name`` of a StripedHyena 2, or of a module holding one (a LoRA-wrapped
    model, a classifier: names such as ``backbone.blocks.3.mlp.l1.lora_A.default.weight``).

    'mlp': a block's gated MLP and the norm before it; 'hcl_modal': HCL poles and residues; the
    block's kind ('hcs', 'hcm', 'hcl_other', 'attn') for the rest of a block (pre-norm, projections,
    filters, output projection); 'embedding': the embedding (tied to the output layer) and the final
    norm; None for anything else (a classifier head).
    """
    m = _IN_BLOCK.search(name)
    if m is None:
        return "embedding" if re.search(r"(?:^|\.)(embedding_layer|norm)\.", name) else None
    rest = m[2]
    if rest.startswith(("mlp.", "post_norm.")):
        return "mlp"
    kind = config.block_kind(int(m[1]))
    if kind == "hcl":
        return "hcl_modal" if rest.endswith(MODAL) else "hcl_other"
    return kind


def grad_norms(named_parameters, group) -> dict[str, float]:
    """{key: L2 norm of the gradients of the parameters ``group(name)`` maps to key}, and 'total' over
    every parameter with a gradient. Parameters without a gradient, or mapped to None, count in no
    group. Call after ``backward()`` and before clipping."""
    sq: dict[str, torch.Tensor] = {}
    for name, p in named_parameters:
        if p.grad is None:
            continue
        g2 = torch.linalg.vector_norm(p.grad.detach().float()).double() ** 2  # summed in float64
        for key in ("total", group(name)):
            if key is not None:
                sq[key] = sq[key] + g2.to(sq[key].device) if key in sq else g2
    return {k: math.sqrt(float(v)) for k, v in sq.items()}


def kind_grad_norms(model: torch.nn.Module, config: Evo2Config) -> dict[str, float]:
    """The gradient norm of every kind of ``PARAM_KINDS`` (0.0 where no parameter of that kind has a
    gradient), 'head' for the parameters outside the language model (when they have gradients),
    and 'total'."""
    norms = grad_norms(model.named_parameters(), lambda n: param_kind(config, n) or "head")
    return {k: norms.get(k, 0.0) for k in PARAM_KINDS} | {k: v for k, v in norms.items() if k not in PARAM_KINDS}


def block_grad_norms(model: StripedHyena2) -> dict[str, float]:
    """L2 norm of the gradient of each block kind, and of the HCL poles and residues alone (the
    columns of the training log)."""
    by_block = grad_norms(model.blocks.named_parameters(), lambda n: model.config.block_kind(int(n.split(".")[0])))
    modal = grad_norms([(n, p) for n, p in model.blocks.named_parameters() if n.endswith(MODAL)], lambda n: None)
    return {k: by_block.get(k, 0.0) for k in KINDS} | {"hcl_poles_residues": modal.get("total", 0.0)}


CLIP_MODES = (None, "global", "modal")


def clip_gradients(model: torch.nn.Module, max_norm: float, mode: str | None = "modal") -> float:
    """Clip the gradients in place, after ``backward()``; returns their total norm before clipping.

    'modal' (evo2kit's recipe): the HCL modal parameters form their own group and everything else
    another, each scaled to norm <= ``max_norm``; 'global': one norm over all; None: no clipping.
    Why two groups: the modal parameters' gradients grow with the filter length (d h / d log_pole
    = R t p^t) and would dominate one global norm, shrinking every other update with them.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"clipping mode must be one of {CLIP_MODES}, not {mode!r}")
    params = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    if mode is None:
        return grad_norms(params, lambda n: None).get("total", 0.0)
    if mode == "global":
        return float(torch.nn.utils.clip_grad_norm_([p for _, p in params], max_norm))
    modal = [p for n, p in params if n.endswith(MODAL)]
    rest = [p for n, p in params if not n.endswith(MODAL)]
    return math.hypot(float(torch.nn.utils.clip_grad_norm_(modal, max_norm)),
                      float(torch.nn.utils.clip_grad_norm_(rest, max_norm)))


@torch.no_grad()
def clamp_poles(model: torch.nn.Module, max_log_pole: float = -1e-4) -> None:
    """Keep every HCL pole strictly inside the unit circle (log_poles <= max_log_pole < 0), so each
    long filter decays; call after each optimiser step."""
    for name, p in model.named_parameters():
        if name.endswith("log_poles"):
            p.clamp_(max=max_log_pole)


def make_optimizer(model: StripedHyena2, args) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 2 and "embedding" not in name else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def evaluate(model: StripedHyena2, windows: torch.Tensor, device) -> float:
    """Mean next-base cross-entropy in bits over fixed validation windows."""
    model.eval()
    total, n = 0.0, 0
    for w in windows.split(4):
        w = w.to(device)
        logits = model(w[:, :-1]).float()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"))
        n += w[:, 1:].numel()
    model.train()
    return total / n / math.log(2)


def save_checkpoint(path: Path, model, opt, step: int, tokens: int, elapsed: float) -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "tokens": tokens,
             "elapsed": elapsed, "config": model.config.to_dict()}
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def plot_log(log_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(log_csv)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    clip = df["clip"].iloc[0]
    axes[0].plot(df.tokens / 1e6, df.loss_bits.rolling(20, min_periods=1).mean(), label="train (20-step mean)")
    val = df.dropna(subset=["val_bits"])
    axes[0].plot(val.tokens / 1e6, val.val_bits, "o-", label="validation (chr20 tail)")
    axes[0].set(xlabel="tokens seen (M)", ylabel="bits per base", title="Loss")
    axes[0].legend()
    for k in KINDS:
        axes[1].plot(df.tokens / 1e6, df[f"gn_{k}"], label=k.upper(), lw=0.8)
    axes[1].plot(df.tokens / 1e6, df.gn_hcl_poles_residues, label="HCL poles+residues", lw=0.8)
    axes[1].set(xlabel="tokens seen (M)", ylabel="gradient L2 norm (before clipping)", yscale="log",
                title="Gradient norm by block kind")
    axes[1].legend(fontsize=8)
    axes[2].plot(df.tokens / 1e6, df.grad_norm, lw=0.8, label="total (before clipping)")
    axes[2].axhline(clip, color="k", ls="--", lw=0.8, label="clip threshold (per set)")
    axes[2].set(xlabel="tokens seen (M)", yscale="log", title="Total gradient norm")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def initial_weights(init: str, config: Evo2Config) -> dict[str, torch.Tensor]:
    """The state dict to continue training from: a model name ``load_model`` knows (the bundled
    evo2kit-tiny; a published one, from the Hub cache), or a checkpoint file (evo2kit's safetensors
    or ``torch.save`` of a state dict, or an official Evo 2 ``.pt``, told by its keys). Refused, with
    one line naming ``--init``, unless it has ``config``'s shape and only finite values."""
    from evo2kit.api import BUNDLED, load_model
    from evo2kit.checkpoints.official import (
        PUBLISHED_CHECKPOINTS,
        check_finite,
        checkpoint_layout,
        load_official_state_dict,
        read_checkpoint,
    )

    if Path(init).is_file():
        state, _ = read_checkpoint(init)
        if checkpoint_layout(state) == "official":
            with torch.device("meta"):
                official = StripedHyena2(config)
            load_official_state_dict(official, state, dtype=torch.float32, device="cpu", where=f"--init {init}")
            state = official.state_dict()
    elif init in BUNDLED or init in PUBLISHED_CHECKPOINTS:
        state = load_model(init, device="cpu", dtype="float32").model.state_dict()
    else:
        raise FileNotFoundError(f"--init {init}: no such file, nor a model name (bundled {sorted(BUNDLED)}, or a "
                                "published Evo 2 name)")
    want = StripedHyena2(config).state_dict()
    wrong = [k for k in want if k not in state or state[k].shape != want[k].shape]
    if wrong:
        raise ValueError(f"--init {init} does not fit the training config ({config.model_name}): {len(wrong)} "
                         f"tensor(s) missing or of another shape, e.g. {wrong[0]}; pass the --config it was "
                         "trained with")
    check_finite({k: state[k] for k in want}, f"--init {init}")
    return {k: state[k] for k in want}


LOF_RICH, BENIGN_RICH = ("Nonsense", "Canonical splice"), ("Synonymous", "Intronic")
"""Findlay et al.'s consequences whose SNVs are mostly LOF (264 of 281) or mostly not (16 of 1,033):
the stop rule of continued training compares their mean deltas."""


def brca1_check(model: StripedHyena2, step: int, tokens: int, csv_path: Path, window: int = 1024,
                n_variants: int | None = 1000) -> dict:
    """Zero-shot BRCA1 during training: AUROC (bootstrap 95% interval) of -delta for LOF on a
    class-stratified subset (seed 0) at ``window`` bp; the mean delta per consequence (nats per
    base x 1e3, Findlay et al.'s annotation); and ``gap``, the mean delta of the LOF-rich classes
    minus that of the benign-rich ones (x 1e3, with its interval: a model that has learnt the
    lesson puts it clearly below 0). Appended to ``csv_path``."""
    from evo2kit.analysis.stats import auroc_ci, mean_difference_ci
    from evo2kit.analysis.zero_shot import variant_deltas
    from evo2kit.api import Evo2Model
    from evo2kit.data.brca1 import brca1_variants

    was = model.training
    model.eval()
    df = brca1_variants(n_variants, seed=0)
    table = variant_deltas(Evo2Model(model, "training"), df, window)
    auroc, lo, hi = auroc_ci(table["class"] == "LOF", -table["delta"])
    by = table.groupby("consequence")["delta"].mean() * 1e3
    gap = mean_difference_ci(table.loc[table["consequence"].isin(LOF_RICH), "delta"] * 1e3,
                             table.loc[table["consequence"].isin(BENIGN_RICH), "delta"] * 1e3)
    row = {"step": step, "tokens": tokens, "window": window, "n": len(table), "auroc": auroc, "ci_low": lo,
           "ci_high": hi, "gap": gap[0], "gap_low": gap[1], "gap_high": gap[2],
           **{f"delta_{k.lower().replace(' ', '_').replace(chr(39), '')}": v for k, v in by.items()}}
    rows = pd.concat([pd.read_csv(csv_path), pd.DataFrame([row])]) if csv_path.exists() else pd.DataFrame([row])
    atomic_write(csv_path, lambda f: rows.to_csv(f, index=False))
    model.train(was)
    print(f"step {step}: BRCA1 zero-shot AUROC {auroc:.3f} [{lo:.3f}, {hi:.3f}], LOF-rich minus benign-rich delta "
          f"{gap[0]:+.3f} [{gap[1]:+.3f}, {gap[2]:+.3f}] x 1e-3 nats/base ({len(table)} SNVs, {window} bp)")
    return row


OPERATIONAL = ("out", "device", "stop_at", "time_limit_min", "checkpoint_minutes", "export", "debug",
               "allow_changes")
"""Options that say where and how long a session runs, not what it computes: free to differ on resuming."""
CHANGES = "resumed_with_changes"
"""The key of ``args.json`` listing each resumption with other settings: the step and what changed."""


def run_settings(args) -> dict:
    """The options of ``args`` that change a run's numbers (all but :data:`OPERATIONAL`)."""
    return {k: v for k, v in vars(args).items() if k not in OPERATIONAL}


def _resume_changes(out: Path, args, config: Evo2Config, state: dict) -> dict:
    """{option: [recorded, now]} between the run in ``out`` (its args.json and checkpoint) and this
    one; a UsageError unless they agree or ``args.allow_changes``, and always when the model's shape
    differs (its checkpoint cannot be loaded into another shape)."""
    if state.get("config") != config.to_dict():
        raise UsageError(f"--out {out} holds a run of another model config ({state.get('config', {}).get('model_name')}"
                         f", hidden_size {state.get('config', {}).get('hidden_size')}): resume it with the --config it "
                         "started with, or use another --out")
    path = out / "args.json"
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = None  # a run cut before its first record: nothing to compare
    if not isinstance(recorded, dict):
        return {}
    now = run_settings(args)
    changed = {k: [recorded.get(k), v] for k, v in now.items() if k in recorded and recorded.get(k) != v}
    if changed and not args.allow_changes:
        said = "; ".join(f"--{k.replace('_', '-')} {a} there, {b} here" for k, (a, b) in changed.items())
        raise UsageError(f"--out {out} holds a run started with other settings ({said}): rerun with its settings "
                         "to resume it, use another --out to start anew, or pass --allow-changes to resume with these "
                         "(recorded in args.json)")
    return changed


def train(args) -> Path:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file: give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    config = _read_config(args.config) if args.config else TINY_CONFIG
    ckpt = out / "checkpoint.pt"
    state = None
    if ckpt.is_file():
        try:
            state = torch.load(ckpt, map_location=device, weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError) as e:
            raise DataError(f"{ckpt} is damaged ({str(e).strip().splitlines()[0]}): delete it to start the run "
                            "over") from None
    changes = _resume_changes(out, args, config, state) if state is not None else {}
    model = StripedHyena2(config).init_weights(args.seed).to(device)
    if args.init:  # continued training: start from a trained model's weights (same config)
        model.load_state_dict(initial_weights(args.init, config))
    opt = make_optimizer(model, args)
    step, tokens, elapsed = 0, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, tokens, elapsed = state["step"], state["tokens"], state["elapsed"]
        print(f"resuming from {ckpt} at step {step} ({tokens:,} tokens)")
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    record = vars(args) | {CHANGES: []}
    if state is not None:
        try:
            record[CHANGES] = json.loads((out / "args.json").read_text()).get(CHANGES, [])
        except (OSError, ValueError, AttributeError):
            pass
        if changes:
            record[CHANGES].append({"step": step, "changed": changes})
            print(f"resuming with changed settings from step {step}: {changes} (recorded in args.json)")
    atomic_write(out / "args.json", lambda f: json.dump(record, f, indent=2))

    train_seqs, val_seq = load_genome(val_bp=args.val_bp)
    genic = args.exon_fraction > 0 or args.repeat_weight < 1 or args.bacteria_fraction > 0
    if genic:
        sampler = GenicSampler(train_seqs, args.seq_len + 1, load_annotation(train_seqs), args.exon_fraction,
                               args.exon_jitter, args.repeat_weight)
        if args.bacteria_fraction > 0:
            bacteria = WindowSampler(load_bacteria(), args.seq_len + 1)
            sampler = MixedSampler(sampler, bacteria, args.bacteria_fraction)
    else:  # evo2kit-tiny's recipe: uniform windows, every base weighted alike
        sampler = WindowSampler(train_seqs, args.seq_len + 1)
    val_sampler = WindowSampler({"val": val_seq}, args.seq_len + 1)
    val_windows = val_sampler.batch(np.random.default_rng(12345), args.val_windows)

    log_path = out / "log.csv"
    fields = ["step", "tokens", "lr", "loss_bits", "val_bits", "grad_norm", "clip", *[f"gn_{k}" for k in KINDS],
              "gn_hcl_poles_residues", "tok_per_s", "elapsed_s"]
    if not log_path.exists():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
    for path in (log_path, out / "brca1.csv"):  # steps after the checkpoint are about to be run again
        if path.exists():
            rows = pd.read_csv(path)
            if (rows["step"] > step).any():
                atomic_write(path, lambda f, rows=rows: rows[rows["step"] <= step].to_csv(f, index=False))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    if args.brca1_every and step == 0:  # the starting point, for continued training above all
        brca1_check(model, 0, 0, out / "brca1.csv", args.brca1_window, args.brca1_variants)
    model.train()
    last_ckpt = session_start = time.time()
    t_start = time.time() - elapsed
    bar = tqdm(total=args.steps, initial=step, unit="step", dynamic_ncols=True)
    last_step = min(args.steps, args.stop_at or args.steps)
    while step < last_step:
        if args.time_limit_min and time.time() - session_start > args.time_limit_min * 60:
            print("time limit reached; checkpoint saved, rerun the same command to continue")
            break
        t0 = time.time()
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([args.seed, step])
        batch, weights = sampler.batch(rng, args.batch_size) if genic else (sampler.batch(rng, args.batch_size), None)
        batch = batch.to(device)
        with autocast:
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                               reduction="mean" if weights is None else "none")
        if weights is not None:  # repeats count repeat_weight of a base: the mean per unit of weight
            weights = weights.to(device).reshape(-1)
            loss = (loss * weights).sum() / weights.sum()
        if not torch.isfinite(loss):  # never saved: the last checkpoint keeps the last finite weights
            bar.close()
            kept = f"{ckpt} keeps the last checkpoint" if ckpt.is_file() else "nothing was saved"
            raise ValueError(f"step {step + 1}: the loss is {float(loss.detach())}, not a finite number: training "
                             f"diverged (lower --lr or --clip, or check --init); {kept}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms = block_grad_norms(model)
        total = clip_gradients(model, args.clip, "modal")
        opt.step()
        clamp_poles(model)
        step += 1
        tokens += batch[:, 1:].numel()
        dt = time.time() - t0
        due = step % args.eval_every == 0 or step == args.steps
        val_bits = evaluate(model, val_windows, device) if due else float("nan")
        elapsed = time.time() - t_start
        loss_bits = float(loss.detach()) / math.log(2)
        row = [step, tokens, lr, loss_bits, val_bits, total, args.clip, *[norms[k] for k in KINDS],
               norms["hcl_poles_residues"], batch[:, 1:].numel() / dt, elapsed]
        with open(log_path, "a", newline="") as f:
            csv.writer(f).writerow(row)
        if args.brca1_every and step % args.brca1_every == 0:
            brca1_check(model, step, tokens, out / "brca1.csv", args.brca1_window, args.brca1_variants)
            model.train()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_bits:.3f}b", tok_s=f"{row[-2]:.0f}", val=f"{val_bits:.3f}")
        if time.time() - last_ckpt > args.checkpoint_minutes * 60 or step == last_step:
            save_checkpoint(ckpt, model, opt, step, tokens, elapsed)
            last_ckpt = time.time()
    bar.close()
    save_checkpoint(ckpt, model, opt, step, tokens, elapsed)
    plot_log(log_path, out / "training_curves.png")
    summary = {"steps": step, "tokens": tokens, "elapsed_s": elapsed, "device": str(device),
               "torch_threads": torch.get_num_threads(), "params": model.num_params()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    model.eval()
    save_pretrained(model.cpu(), out, config.model_name)
    return out / f"{config.model_name}.safetensors"


def export(run_dir: Path, weights_dir: Path) -> None:
    """Write the run's latest checkpoint into the package as safetensors + JSON, with its sha256."""
    if not (run_dir / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"--out {run_dir} has no checkpoint.pt to export: train there first")
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = StripedHyena2(Evo2Config.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    name = model.config.model_name
    path = save_pretrained(model.eval(), weights_dir, name)
    digest = sha256_file(path)
    (weights_dir / f"{name}.sha256").write_text(f"{digest}  {name}.safetensors\n")
    print(f"exported {name} at step {state['step']} ({state['tokens']:,} tokens; sha256 {digest}) to {weights_dir}")


def _read_config(path: str) -> Evo2Config:
    """The --config JSON, or an error naming it."""
    try:
        return Evo2Config.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"--config {path}: not an evo2kit config JSON ({str(e).splitlines()[0]})") from None


def check_args(args) -> str | None:
    """What is wrong with the options, in one sentence, or None; checked before anything is loaded."""
    positive = ("steps", "batch_size", "seq_len", "val_windows", "eval_every", "brca1_variants")
    for k in positive:
        if getattr(args, k) < 1:
            return f"--{k.replace('_', '-')} must be >= 1, got {getattr(args, k)}"
    for k in ("lr", "clip"):
        if not (math.isfinite(getattr(args, k)) and getattr(args, k) > 0):
            return f"--{k} must be a number > 0, got {getattr(args, k)}"
    for k in ("min_lr", "weight_decay", "checkpoint_minutes", "time_limit_min"):
        if not (math.isfinite(getattr(args, k)) and getattr(args, k) >= 0):
            return f"--{k.replace('_', '-')} must be a number >= 0, got {getattr(args, k)}"
    for k in ("warmup", "stop_at", "brca1_every"):
        if getattr(args, k) < 0:
            return f"--{k.replace('_', '-')} must be >= 0, got {getattr(args, k)}"
    for k in ("exon_fraction", "repeat_weight"):
        if not 0 <= getattr(args, k) <= 1:
            return f"--{k.replace('_', '-')} must lie in [0, 1], got {getattr(args, k)}"
    if not 0 <= args.bacteria_fraction < 1:
        return f"--bacteria-fraction must lie in [0, 1), got {args.bacteria_fraction}"
    if args.exon_jitter is not None and args.exon_jitter < 0:
        return f"--exon-jitter must be >= 0, got {args.exon_jitter}"
    if args.val_bp <= args.seq_len:
        return f"--val-bp ({args.val_bp}) must exceed --seq-len ({args.seq_len}): validation windows come from it"
    if args.brca1_window < 2 or args.brca1_window % 2:
        return f"--brca1-window must be an even number >= 2, got {args.brca1_window}"
    if args.device is not None:
        try:
            device = torch.device(args.device)
        except (RuntimeError, ValueError):
            return f"--device {args.device!r} is not a device: use cpu, cuda or cuda:N"
        if device.type == "cuda" and not torch.cuda.is_available():
            return f"--device {args.device}: this machine has no CUDA device (use --device cpu, or leave it out)"
        if device.type not in ("cpu", "cuda"):
            return f"--device {args.device}: training runs on cpu or cuda"
    return None


def main(argv=None) -> int:
    """The command line; returns the exit status (see ``evo2kit.cli``)."""
    p = ArgumentParser(prog="python -m evo2kit.training", description=__doc__, epilog=exit_status_help({}),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/evo2kit-tiny")
    p.add_argument("--config", help="JSON config (default: the evo2kit-tiny config)")
    p.add_argument("--steps", type=int, default=1400)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-bp", type=int, default=2_000_000)
    p.add_argument("--val-windows", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--checkpoint-minutes", type=float, default=3.0)
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop (with a checkpoint) at this step; the schedule stays that of --steps")
    p.add_argument("--time-limit-min", type=float, default=0.0, help="stop (with a checkpoint) after this many minutes")
    p.add_argument("--init", help="start from these weights: a bundled model's name (evo2kit-tiny) or a "
                   "checkpoint file of the same config (continued training)")
    p.add_argument("--exon-fraction", type=float, default=0.0,
                   help="share of windows centred on a coding exon of the training chromosomes (0: uniform)")
    p.add_argument("--exon-jitter", type=int,
                   help="bp by which an exon-centred window's centre moves at most (default seq-len / 4)")
    p.add_argument("--bacteria-fraction", type=float, default=0.0,
                   help="share of the windows drawn from 16 bacterial genomes (dataset bacteria_ragout)")
    p.add_argument("--repeat-weight", type=float, default=1.0, help="loss weight of bases inside repeats (GPN: 0.1)")
    p.add_argument("--brca1-every", type=int, default=0,
                   help="every this many steps, score BRCA1 zero-shot into brca1.csv (0: never)")
    p.add_argument("--brca1-window", type=int, default=1024)
    p.add_argument("--brca1-variants", type=int, default=1000, help="class-stratified SNVs per check (seed 0)")
    p.add_argument("--device")
    p.add_argument("--allow-changes", action="store_true",
                   help="resume --out's run even though these settings differ from those it was run with; each "
                   "such resumption (step, changed settings) is recorded in args.json")
    p.add_argument("--export", metavar="WEIGHTS_DIR", help="only export --out's trained weights into WEIGHTS_DIR")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    problem = None if args.export else check_args(args)
    if problem:
        p.error(problem)

    def body() -> int:
        if args.export:
            export(Path(args.out), Path(args.export))
        else:
            train(args)
        return 0

    return run_main(p.prog, body, args.debug)


if __name__ == "__main__":
    sys.exit(main())
