"""Supervised probes on frozen embeddings: the community DNN, a logistic-regression probe,
train/validation/test splits that do or do not share genomic positions, and bootstrap CIs.

    X = embed.probe_features(ref, var)                         # (N, 2d): [ref window, variant window]
    splits = {"random": random_split(y), "by position": grouped_split(y, groups=pos // 100)}
    table = probe_table({"blocks.6.mlp.l3": X}, y, splits)     # test AUROC with 95% bootstrap CIs
    onehot = onehot_context(var_seqs, var_pos, flank=10)       # a sequence-only baseline

Everything takes plain numpy arrays; ``y`` is 1 for the positive class (LOF), 0 otherwise.
Intervals are ``zero_shot.auroc_ci``'s percentile bootstrap.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Iterator, Mapping, NamedTuple, Sequence

import joblib
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from evo2kit.analysis.stats import auroc_ci

# --------------------------------------------------------------------------- features


def onehot_context(seqs: list[str], centers: np.ndarray, flank: int) -> np.ndarray:
    """One-hot A/C/G/T of ``seqs[i][centers[i]-flank : centers[i]+flank+1]`` -> float32 (N, (2*flank+1)*4).

    Bases outside the sequence or other than ACGT are all-zero rows. With reference and
    variant windows this is the sequence-feature baseline: what a model sees without a
    language model.
    """
    width = 2 * flank + 1
    lut = np.full(256, -1, np.int64)
    lut[np.frombuffer(b"ACGT", np.uint8)] = np.arange(4)
    out = np.zeros((len(seqs), width, 4), np.float32)
    for i, (s, c) in enumerate(zip(seqs, np.asarray(centers))):
        lo, hi = max(0, c - flank), min(len(s), c + flank + 1)
        codes = lut[np.frombuffer(s[lo:hi].upper().encode("ascii"), np.uint8)]
        cols = np.arange(lo - (c - flank), hi - (c - flank))
        ok = codes >= 0
        out[i, cols[ok], codes[ok]] = 1.0
    return out.reshape(len(seqs), width * 4)


# --------------------------------------------------------------------------- splits


class Split(NamedTuple):
    """Row indices (int arrays) of the training, validation and test sets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def random_split(y: np.ndarray, sizes: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 42) -> Split:
    """The tutorial's split: stratified by class, 60/20/20, ``random_state=42``."""
    y = np.asarray(y)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, train_size=sizes[0], stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=sizes[2] / (sizes[1] + sizes[2]), stratify=y[rest],
                                 random_state=seed)
    return Split(np.sort(train), np.sort(val), np.sort(test))


def grouped_split(y: np.ndarray, groups: np.ndarray, n_folds: int = 5, seed: int = 42) -> Split:
    """A split in which no group (e.g. a genomic position or block of positions) is in two sets.

    ``StratifiedGroupKFold`` cuts the groups into ``n_folds`` class-balanced folds: fold 0
    is the test set, fold 1 the validation set, the rest training (60/20/20 for 5 folds).
    """
    y, groups = np.asarray(y), np.asarray(groups)
    if len(np.unique(groups)) < n_folds:
        raise ValueError(f"grouped_split needs at least {n_folds} groups, got {len(np.unique(groups))}; "
                         "use smaller position blocks or fewer folds")
    folds = [test for _, test in StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
             .split(np.zeros(len(y)), y, groups)]
    train = np.sort(np.concatenate(folds[2:]))
    return Split(train, np.sort(folds[1]), np.sort(folds[0]))


def distance_to_training(pos: np.ndarray, split: Split) -> np.ndarray:
    """(n_test,) distance in bp from each test row's position to the closest training row's position."""
    pos = np.asarray(pos)
    train_pos = np.sort(pos[split.train])
    test_pos = pos[split.test]
    i = np.clip(np.searchsorted(train_pos, test_pos), 1, len(train_pos) - 1)
    return np.minimum(np.abs(test_pos - train_pos[i - 1]), np.abs(test_pos - train_pos[i]))


# --------------------------------------------------------------------------- determinism


@contextlib.contextmanager
def pinned_compute(threads: int = 1, seed: int | None = None) -> Iterator[None]:
    """Run the enclosed training with a fixed thread count, deterministic algorithms and its own RNG.

    A probe's training trajectory is chaotic: a different summation order (PyTorch and BLAS split
    sums by thread count) changes the last bits of a gradient, and after a few hundred steps a
    different epoch wins early stopping. Fixing the threads makes a probe reproducible on one
    machine whatever ``OMP_NUM_THREADS`` is; across CPUs (other SIMD kernels) results still differ
    in the last bits, which is why the notebooks judge averages over layers and seeds. The global
    RNG state is restored afterwards, so fitting a probe never shifts the caller's random stream.
    """
    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]), threadpool_limits(threads):
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        if seed is not None:
            torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.set_num_threads(threads_before)
            torch.use_deterministic_algorithms(deterministic_before)


# --------------------------------------------------------------------------- the DNN probe


class ProbeDNN(nn.Sequential):
    """The widely used classifier head: d -> 512 -> 128 -> 32 -> 1, probability out (B, 1)."""

    def __init__(self, d: int, dropout: float = 0.3):
        super().__init__(
            nn.Linear(d, 512), nn.ReLU(), nn.BatchNorm1d(512), nn.Dropout(dropout),
            nn.Linear(512, 128), nn.ReLU(), nn.BatchNorm1d(128), nn.Dropout(dropout),
            nn.Linear(128, 32), nn.ReLU(), nn.BatchNorm1d(32),
            nn.Linear(32, 1), nn.Sigmoid(),
        )


@dataclass
class DNNConfig:
    """Training settings; defaults are the tutorial's (Adam 3e-4, ReduceLROnPlateau on
    validation AUROC with factor 0.5 / patience 20, early stop after 100 epochs, 500 max)."""

    lr: float = 3e-4
    batch_size: int = 128
    max_epochs: int = 500
    early_stop: int = 100
    lr_factor: float = 0.5
    lr_patience: int = 20
    max_grad_norm: float = 1.0
    seed: int = 0
    threads: int = 1  # fixed so that training does not depend on the machine's thread count


@dataclass
class DNNProbe:
    """A trained ProbeDNN with the standardisation of its training features."""

    model: ProbeDNN
    mean: np.ndarray
    std: np.ndarray
    best_epoch: int
    history: pd.DataFrame = field(repr=False)

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, 2) class probabilities, like scikit-learn's ``predict_proba``."""
        self.model.eval()
        p = self.model(torch.as_tensor((X - self.mean) / self.std, dtype=torch.float32))[:, 0].numpy()
        return np.stack([1 - p, p], axis=1)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
               max_grad_norm: float) -> tuple[float, float]:
    """One optimiser step on a batch; returns (loss, gradient norm before clipping).

    The order matters: gradients exist only after ``backward()``, so clipping goes between
    ``backward()`` and ``step()`` (clipping before ``backward()`` clips nothing).
    """
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.binary_cross_entropy(model(xb)[:, 0], yb)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    return loss.item(), norm.item()


def fit_dnn(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
            config: DNNConfig = DNNConfig()) -> DNNProbe:
    """Train a ProbeDNN on standardised features; keep the weights of the best validation AUROC.

    X (N, d) float, y (N,) in {0, 1}. Stops after ``config.early_stop`` epochs without a
    better validation AUROC, or after ``config.max_epochs``. Initialisation, batch order and
    dropout follow ``config.seed``; training runs on ``config.threads`` threads (``pinned_compute``).
    """
    with pinned_compute(config.threads, config.seed):
        return _fit_dnn(X_train, y_train, X_val, y_val, config)


def _fit_dnn(X_train, y_train, X_val, y_val, config: DNNConfig) -> DNNProbe:
    mean = X_train.mean(0)
    std = X_train.std(0) + 1e-6
    xt = torch.as_tensor((X_train - mean) / std, dtype=torch.float32)
    yt = torch.as_tensor(y_train, dtype=torch.float32)
    xv = torch.as_tensor((X_val - mean) / std, dtype=torch.float32)
    model = ProbeDNN(xt.shape[1])
    # foreach: one kernel per step for all 14 tensors, the same numbers as the per-tensor loop, faster
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=config.lr_factor,
                                                       patience=config.lr_patience)
    best, best_epoch, best_state, rows = -np.inf, 0, None, []
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(xt))
        losses, norms = [], []
        for batch in order.split(config.batch_size):
            if len(batch) < 2:  # BatchNorm cannot train on a single row
                continue
            loss, norm = train_step(model, opt, xt[batch], yt[batch], config.max_grad_norm)
            losses.append(loss)
            norms.append(norm)
        model.eval()
        with torch.no_grad():
            val_auroc = roc_auc_score(y_val, model(xv)[:, 0].numpy())
        sched.step(val_auroc)
        rows.append({"epoch": epoch, "loss": np.mean(losses), "grad_norm": np.max(norms),
                     "val_auroc": val_auroc, "lr": opt.param_groups[0]["lr"]})
        if val_auroc > best:
            best, best_epoch, best_state = val_auroc, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.early_stop:
            break
    model.load_state_dict(best_state)
    return DNNProbe(model.eval(), mean, std, best_epoch, pd.DataFrame(rows))


def fit_logistic(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                 Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)):
    """Standardise + L2 logistic regression; the inverse penalty C is picked on validation AUROC.

    Returns the fitted scikit-learn pipeline (``predict_proba(X)[:, 1]`` is P(positive)).
    """
    best, best_auc = None, -np.inf
    with threadpool_limits(1):  # BLAS sums in one fixed order: the same fit whatever the thread count
        for C in Cs:
            pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
            pipe.fit(X_train, y_train)
            auc = roc_auc_score(y_val, pipe.predict_proba(X_val)[:, 1])
            if auc > best_auc:
                best, best_auc = pipe, auc
    return best


def grouped_cv_auroc(X: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int = 5, C: float = 0.1,
                     n_boot: int = 1000, seed: int = 42) -> tuple[float, float, float]:
    """(AUROC, low, high) of a logistic probe's out-of-fold predictions, folds grouped by ``groups``.

    A quick way to compare feature sets on a few hundred rows: every row is predicted by a
    probe that never saw its group.
    """
    cv = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    with threadpool_limits(1):
        score = cross_val_predict(pipe, X, y, groups=groups, cv=cv, method="predict_proba")[:, 1]
    return auroc_ci(y, score, n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- tables


def split_auroc(y: np.ndarray, score: np.ndarray, split: Split, n_boot: int = 1000, seed: int = 0) -> dict:
    """{auroc, ci_low, ci_high, n_test} of ``score`` on the split's test rows (95% bootstrap CI)."""
    auc, lo, hi = auroc_ci(y[split.test], score[split.test], n_boot=n_boot, seed=seed)
    return {"auroc": auc, "ci_low": lo, "ci_high": hi, "n_test": len(split.test)}


def probe_table(features: Mapping[str, np.ndarray], y: np.ndarray, splits: Mapping[str, Split],
                probes: tuple[str, ...] = ("dnn", "logreg"), config: DNNConfig = DNNConfig(),
                n_boot: int = 1000, seeds: Sequence[int] | None = None, n_jobs: int | None = None) -> pd.DataFrame:
    """Train every probe on every feature set and split; one row per (features, split, probe, seed).

    The DNN is trained once per seed of ``seeds`` (default: ``config.seed`` alone), so the spread
    that its initialisation and batch order cause can be measured; the logistic probe is
    deterministic and trained once (seed -1). Columns: features, split, probe, seed, val_auroc
    (for choosing among rows without looking at the test set), auroc, ci_low, ci_high (test
    set, bootstrap 95% CI), n_test, best_epoch (DNN only). ``summarize`` averages over seeds.

    ``n_jobs`` probes train at once in worker processes (None: one per CPU core). Each is pinned
    to ``config.threads`` threads with its own seed, so the table is the same for any ``n_jobs``.
    """
    unknown = set(probes) - {"dnn", "logreg"}
    if unknown:
        raise ValueError(f"unknown probe(s) {sorted(unknown)}; use 'dnn' and/or 'logreg'")
    seeds = [config.seed] if seeds is None else list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    y = np.asarray(y)
    jobs = [(f, s, p, seed) for f in features for s in splits for p in probes
            for seed in (seeds if p == "dnn" else [-1])]
    n_jobs = min(len(jobs), n_jobs or joblib.cpu_count())
    rows = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
        joblib.delayed(_probe_row)(features[f], y, splits[s], p, seed, config, n_boot) for f, s, p, seed in jobs)
    return pd.DataFrame([{"features": f, "split": s, "probe": p, "seed": seed, **row}
                         for (f, s, p, seed), row in zip(jobs, tqdm(rows, total=len(jobs), desc="probes"))])


def _probe_row(X: np.ndarray, y: np.ndarray, sp: Split, probe: str, seed: int, config: DNNConfig,
               n_boot: int) -> dict:
    """One probe of ``probe_table``, fitted and scored: {val_auroc, auroc, ci_low, ci_high, n_test, best_epoch}."""
    if probe == "dnn":
        fitted = fit_dnn(X[sp.train], y[sp.train], X[sp.val], y[sp.val], dataclasses.replace(config, seed=seed))
        best_epoch = fitted.best_epoch
    else:
        fitted = fit_logistic(X[sp.train], y[sp.train], X[sp.val], y[sp.val])
        best_epoch = np.nan
    score = fitted.predict_proba(X)[:, 1]
    return {"val_auroc": roc_auc_score(y[sp.val], score[sp.val]), **split_auroc(y, score, sp, n_boot=n_boot),
            "best_epoch": best_epoch}


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """``probe_table`` rows averaged over seeds: one row per (features, split, probe), in order.

    Columns: val_auroc and auroc (means over seeds), auroc_sd (their standard deviation; 0 for
    one seed), auroc_min, auroc_max, ci_low and ci_high (means of the per-seed bootstrap
    bounds), n_seeds.
    """
    g = table.groupby(["features", "split", "probe"], sort=False)
    out = g.agg(val_auroc=("val_auroc", "mean"), auroc=("auroc", "mean"), auroc_sd=("auroc", "std"),
                auroc_min=("auroc", "min"), auroc_max=("auroc", "max"), ci_low=("ci_low", "mean"),
                ci_high=("ci_high", "mean"), n_seeds=("auroc", "size")).reset_index()
    out["auroc_sd"] = out["auroc_sd"].fillna(0.0)
    return out


def split_gap(summary: pd.DataFrame, a: str, b: str, probe: str) -> pd.Series:
    """Per feature set: (mean) test AUROC on split ``a`` minus that on split ``b`` for ``probe``,
    from ``summarize``'s table; indexed by features, in their order."""
    rows = summary[summary.probe == probe].set_index(["split", "features"])["auroc"]
    first = rows.loc[a]
    return (first - rows.loc[b].reindex(first.index)).dropna()
