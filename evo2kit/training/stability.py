"""Why training Evo 2 blows up, measured: the same model trained from the same initialisation under
three gradient recipes, with the gradient norm of every kind of parameter logged before clipping,
and the classic mistake of clipping before ``backward()`` (notebook 06, part 1).

    log, summary = compare_recipes(recipes(warmup=5), steps=40, batch_size=4, seq_len=512, lr=2e-3)
    mistake = clip_order_check(StripedHyena2(train.TINY_CONFIG).init_weights(0), batch)

The pieces of a safe step (per-kind gradient norms, the clipping groups, the pole clamp, the
learning-rate schedule) are ``evo2kit.training.train``'s, shared with the training of the bundled model.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from evo2kit.data import genome_windows
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2
from evo2kit.training import train


@dataclass(frozen=True)
class Recipe:
    """How a training step treats its gradients: ``clip`` one of ``train.CLIP_MODES`` (after
    ``backward()``), ``clamp_poles`` keeps the HCL poles inside the unit circle, ``warmup`` steps
    of linear learning-rate warm-up (then cosine decay)."""

    clip: str | None
    clamp_poles: bool
    warmup: int


def recipes(warmup: int) -> dict[str, Recipe]:
    """The three runs of notebook 06: nothing, one global clip, and evo2kit's recipe."""
    return {"no clipping": Recipe(None, False, 0), "one global clip": Recipe("global", False, 0),
            "evo2kit recipe": Recipe("modal", True, warmup)}


@functools.lru_cache(maxsize=2)
def training_samplers(length: int) -> tuple[genome_windows.WindowSampler, genome_windows.WindowSampler]:
    """Samplers of ``length``-base windows of the training chromosomes and of the validation tail
    (``genome_windows.load_genome``), kept for the next call: the genome is read once per process."""
    seqs, val = genome_windows.load_genome()
    return genome_windows.WindowSampler(seqs, length), genome_windows.WindowSampler({"val": val}, length)


def compare_recipes(recipes: Mapping[str, Recipe], steps: int, batch_size: int, seq_len: int, lr: float,
                    seed: int = 0, config: Evo2Config = train.TINY_CONFIG, max_norm: float = 1.0,
                    val_windows: int = 8, device: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one model per recipe from the same initialisation (``init_weights(seed)``) on the same
    batches of the training chromosomes (``genome_windows.load_genome``: never chr17).

    Returns (log, summary). log: one row per recipe and step with the loss (bits per base), the
    learning rate, the gradient norm of each of ``train.PARAM_KINDS`` and the total *before*
    clipping, whether clipping changed anything, and the largest log-pole after the step. A run
    stops at its first non-finite loss. summary: one row per recipe: steps run, ``diverged``
    (1 if the loss became non-finite), the mean loss of its last 5 steps, the validation loss
    (bits per base on ``val_windows`` fixed windows of the chr20 tail; NaN for a diverged run),
    and the HCL share of the squared gradient norm over the first 10 steps.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sampler, val_sampler = training_samplers(seq_len + 1)
    val_batch = val_sampler.batch(np.random.default_rng(12345), val_windows)
    start = StripedHyena2(config).init_weights(seed).state_dict()
    rows, summary = [], []
    for name, recipe in recipes.items():
        model = StripedHyena2(config).to(device)
        model.load_state_dict(start)
        model.train()
        args = train.schedule(lr, recipe.warmup, steps)
        opt = train.make_optimizer(model, args)
        diverged = 0
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = train.lr_at(step, args)
            batch = sampler.batch(np.random.default_rng([seed, step]), batch_size).to(device)
            logits = model(batch[:, :-1]).float()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            if not torch.isfinite(loss):
                diverged = 1
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms = train.kind_grad_norms(model, config)
            train.clip_gradients(model, max_norm, recipe.clip)
            opt.step()
            if recipe.clamp_poles:
                train.clamp_poles(model)
            max_pole = max(float(p.detach().max()) for n, p in model.named_parameters() if n.endswith("log_poles"))
            rows.append({"recipe": name, "step": step + 1, "lr": opt.param_groups[0]["lr"],
                         "loss_bits": float(loss) / math.log(2), **{f"gn_{k}": v for k, v in norms.items()},
                         "clipped": recipe.clip is not None and norms["total"] > max_norm,
                         "max_log_pole": max_pole})
        run = pd.DataFrame([r for r in rows if r["recipe"] == name])
        early = run.head(10)
        hcl_sq = (early.gn_hcl_modal ** 2 + early.gn_hcl_other ** 2).sum() if len(run) else float("nan")
        summary.append({"recipe": name, "steps": len(run), "diverged": diverged,
                        "final_loss_bits": run.loss_bits.tail(5).mean() if len(run) else float("nan"),
                        "val_bits": float("nan") if diverged else train.evaluate(model, val_batch, device),
                        "early_hcl_share": hcl_sq / (early.gn_total ** 2).sum() if len(run) else float("nan"),
                        "max_log_pole": run.max_log_pole.max() if len(run) else float("nan")})
    return pd.DataFrame(rows), pd.DataFrame(summary)


def clip_order_check(model: StripedHyena2, batch: torch.Tensor, max_norm: float = 1.0) -> pd.DataFrame:
    """The gradients one step would apply, computed three ways from the same weights and batch (B, L+1):
    no clipping, ``clip_grad_norm_`` called *before* ``backward()`` (the classic mistake: the
    gradients do not exist yet, so nothing is clipped) and after it. One row each: the norm of the
    gradients the optimiser would see, and their largest difference from the unclipped ones."""
    params = list(model.parameters())

    def gradients(clip: str | None) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        if clip == "before":
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        logits = model(batch[:, :-1]).float()
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)).backward()
        if clip == "after":
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        out = [p.grad.detach().clone() for p in params]
        model.zero_grad(set_to_none=True)
        return out

    plain = gradients(None)
    rows = []
    for label, clip in [("no clipping", None), ("clip_grad_norm_ before backward()", "before"),
                        ("clip_grad_norm_ after backward()", "after")]:
        g = plain if clip is None else gradients(clip)
        rows.append({"order": label, "gradient norm seen by the optimiser":
                     float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in g]))),
                     "max |change| vs no clipping": max(float((a - b).abs().max()) for a, b in zip(g, plain))})
    return pd.DataFrame(rows)
