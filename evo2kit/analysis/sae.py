"""Sparse autoencoders (SAEs) on a model's activations: Goodfire's layout, training one, and ranking
features by what they pick out.

    sae = load_goodfire_sae(goodfire_sae_path())                   # Goodfire's SAE for evo2_7b_262k, blocks.26
    sae, log = train_sae(acts, d_sae=768, k=16, steps=2000)        # or one trained here, (N, d_in) activations
    acts = layer_activations(model, seqs, "blocks.26")            # [(L_i, d_in) float32] per sequence
    feats = encode_sparse(sae, acts[0])                            # (L, d_sae) scipy CSR, exact batch top-k
    aurocs = feature_aurocs(feats, in_cds)                         # (d_sae,) one AUROC per feature

The SAE is Goodfire's (ArcInstitute/evo2 ``notebooks/sparse_autoencoder``, ``BatchTopKTiedSAE``):
tied weights ``W`` (d_in, d_sae), ``b_enc`` (d_sae,), ``b_dec`` (d_in,);

    f = batch_topk(relu(x @ W + b_enc))        x_hat = f @ W.T + b_dec

where ``batch_topk`` keeps the k x N largest of the N x d_sae values of a whole input of N positions
(one sequence, as Arc's notebook encodes it; a batch of positions in training) and zeroes the rest:
k features per position on average, more where more is going on. Goodfire's SAE reads the output
of block 26 of ``evo2_7b_262k`` (Arc's ``blocks-26``: the residual stream after that block),
32,768 features (expansion 8 of 4,096), k = 64. A third party reports (unverified here, the file
cannot be downloaded in this project's sandbox) that its keys carry torch.compile's ``_orig_mod.``
prefix; Arc's loader strips ``_orig_mod.`` and ``module.``, and so does :func:`load_goodfire_sae`.

Maintained SAE libraries (sae-lens, dictionary-learning) bring transformer-lens, transformers,
nnsight and wandb with them; this module is the small top-k SAE they would provide, tested
against :func:`batch_topk_reference` (Arc's dense top-k, written plainly).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scipy.stats import rankdata

from evo2kit.analysis.embeddings import extract
from evo2kit.analysis.stats import grouped_auroc_ci
from evo2kit.checkpoints.hub import download_hub_file
from evo2kit.files import atomic_path

GOODFIRE_REPO = "Goodfire/Evo-2-Layer-26-Mixed"
GOODFIRE_FILE = "sae-layer26-mixed-expansion_8-k_64.pt"
GOODFIRE_MODEL = "evo2_7b_262k"
GOODFIRE_LAYER = "blocks.26"
GOODFIRE_K = 64
GOODFIRE_FEATURES = 32_768
ARC_FEATURES = {"E. coli": [13606, 26069, 30262, 2812, 15680, 11734, 24568, 15481],
                "human chr17": [15680, 28339, 1050, 25666]}
"""The features Arc's SAE notebook plots along 100 kb of E. coli K-12 MG1655 (4,130,000-4,230,000 of
NC_000913.3) and along 1 kb of human chr17; the notebook does not say what each one marks."""
_PREFIXES = ("_orig_mod.", "module.")


class TopKSAE(torch.nn.Module):
    """A tied batch-top-k SAE in Goodfire's layout (see the module docstring)."""

    def __init__(self, d_in: int, d_sae: int, k: int):
        super().__init__()
        if not 1 <= k <= d_sae:
            raise ValueError(f"k must lie in 1..d_sae ({d_sae}), got {k}")
        self.d_in, self.d_sae, self.k = d_in, d_sae, k
        self.W = torch.nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))

    def init_weights(self, seed: int = 0, mean: torch.Tensor | None = None) -> "TopKSAE":
        """Arc's initialisation (columns of W random, norm 0.1); with ``mean`` (d_in,), the data's
        mean as b_dec and b_enc = -mean @ W, so that the first encodings see centred inputs."""
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(self.d_in, self.d_sae, generator=g)
        with torch.no_grad():
            self.W.copy_(0.1 * w / w.norm(dim=0, keepdim=True))
            if mean is not None:
                self.b_dec.copy_(mean)
                self.b_enc.copy_(-mean @ self.W)
        return self

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """relu(x @ W + b_enc): (N, d_in) -> (N, d_sae)."""
        return torch.relu(x @ self.W + self.b_enc)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) -> (N, d_sae), dense: the k x N largest pre-activations of the whole input kept."""
        f = self.pre_activations(x)
        top = torch.topk(f.flatten(), self.k * f.shape[0])
        return torch.zeros_like(f.flatten()).scatter(0, top.indices, top.values).reshape(f.shape)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """(N, d_sae) -> (N, d_in)."""
        return f @ self.W.T + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encode(x)
        return self.decode(f), f


def batch_topk_reference(pre: np.ndarray, k: int) -> np.ndarray:
    """The plain reference of batch top-k: of ``pre`` (N, F), keep the k*N largest values (Arc's
    ``_batch_topk``: a top-k over the flattened array), zero the rest."""
    flat = np.asarray(pre, np.float64).ravel()
    keep = np.argsort(-flat, kind="stable")[:k * pre.shape[0]]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(pre.shape)


@torch.no_grad()
def encode_sparse(sae: TopKSAE, x, chunk_values: int = 1 << 25) -> sparse.csr_matrix:
    """:meth:`TopKSAE.encode` of ``x`` (N, d_in), as a (N, d_sae) float32 CSR matrix, without
    ever holding the dense N x d_sae array (chunks of about ``chunk_values`` values): one pass finds
    the (k*N)-th largest pre-activation, merging each chunk's largest values with those kept so far,
    a second keeps what reaches it. The same as the dense top-k unless values tie at that threshold
    (then all of them are kept)."""
    x = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    n, budget = x.shape[0], sae.k * x.shape[0]
    rows_per_chunk = max(1, chunk_values // sae.d_sae)
    chunks = [slice(i, i + rows_per_chunk) for i in range(0, n, rows_per_chunk)]
    best = torch.empty(0, device=sae.W.device)
    for c in chunks:  # pass 1: the `budget` largest values overall (budget <= N * d_sae, as k <= d_sae)
        f = sae.pre_activations(x[c].to(sae.W.device, sae.W.dtype)).flatten()
        both = torch.cat([best, torch.topk(f, min(budget, f.numel())).values])
        best = torch.topk(both, min(budget, both.numel())).values
    threshold = best.min()
    rows, cols, vals = [], [], []
    for c in chunks:  # pass 2: what reaches the threshold (a zero is never kept: it is no activation)
        f = sae.pre_activations(x[c].to(sae.W.device, sae.W.dtype))
        r, col = torch.nonzero((f >= threshold) & (f > 0), as_tuple=True)
        rows.append((r + c.start).cpu().numpy())
        cols.append(col.cpu().numpy())
        vals.append(f[r, col].float().cpu().numpy())
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, sae.d_sae), dtype=np.float32)


def fraction_unexplained(sae: TopKSAE, x: torch.Tensor, batch_rows: int = 4096) -> float:
    """Fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, of ``x``
    (N, d_in) encoded ``batch_rows`` positions at a time (0: perfect, 1: no better than the mean)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    err = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_rows):
            xb = x[i:i + batch_rows].to(sae.W.device, sae.W.dtype)
            err += float(((sae(xb)[0] - xb) ** 2).sum())
    return err / float(((x - x.mean(0)) ** 2).sum())


def train_sae(acts, d_sae: int, k: int, epochs: float = 5, batch_rows: int = 4096, lr: float = 1e-3,
              seed: int = 0, log_every: int = 10) -> tuple[TopKSAE, pd.DataFrame]:
    """A :class:`TopKSAE` trained on ``acts`` (N, d_in) float32 (positions of many windows) to
    reconstruct them: Adam on the mean squared error, ``epochs`` x N / ``batch_rows`` steps (at
    least 20) of ``batch_rows`` random positions each (batch top-k over each batch, as Goodfire
    trained). Returns the SAE (float32, CPU) and its log: step, fvu (fraction of variance
    unexplained on that step's batch)."""
    x = torch.as_tensor(np.asarray(acts), dtype=torch.float32)
    if x.ndim != 2 or len(x) < batch_rows:
        raise ValueError(f"acts must be (N, d_in) with N >= batch_rows ({batch_rows}), got {tuple(x.shape)}")
    steps = max(20, int(epochs * len(x) / batch_rows))
    sae = TopKSAE(x.shape[1], d_sae, k).init_weights(seed, mean=x.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    var = float(((x - x.mean(0)) ** 2).sum(1).mean())  # per-position variance: FVU's denominator
    log = []
    for step in range(1, steps + 1):
        xb = x[torch.randint(0, len(x), (batch_rows,), generator=g)]
        loss = ((sae(xb)[0] - xb) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step in (1, steps):
            log.append({"step": step, "fvu": float(loss.detach()) / var})
    return sae.eval(), pd.DataFrame(log)


def layer_activations(model, seqs: Sequence[str], layer: str, batch_size: int = 8,
                      chunk_size: int = 8192) -> list[np.ndarray]:
    """The output of ``layer`` (e.g. "blocks.26") at every position of each sequence: one (len,
    d) float32 array per sequence, from one batched forward (``evo2kit.analysis.embeddings.extract``)."""
    out = extract(model, list(seqs), [layer], pooling=None, batch_size=batch_size, chunk_size=chunk_size)[layer]
    return [np.asarray(out[i, :len(s)]) for i, s in enumerate(seqs)]


def feature_aurocs(features: sparse.spmatrix, labels) -> np.ndarray:
    """(F,) the AUROC of each feature's activation (N positions, F features; zeros where it does
    not fire) as a score for ``labels`` (N,) bool, ties counting one half: 1 = it fires only,
    and more strongly, on labelled positions; 0.5 = no better than chance."""
    y = np.asarray(labels, bool)
    coo = sparse.coo_matrix(features)
    if y.shape != (coo.shape[0],) or y.all() or not y.any():
        raise ValueError(f"labels must be one bool per position ({coo.shape[0]}) with both classes present")
    n_pos, n_neg, F = int(y.sum()), int((~y).sum()), coo.shape[1]
    keep = coo.data > 0
    f, v, lab = coo.col[keep], coo.data[keep], y[coo.row[keep]]
    # ranks of each feature's non-zero values among themselves: sort by (feature, value), average ties
    key = f.astype(np.int64) * (len(v) + 1) + rankdata(v, method="dense").astype(np.int64)
    before = np.concatenate([[0], np.cumsum(np.bincount(f, minlength=F))])[f]  # entries of earlier features
    rank = rankdata(key) - before
    nnz_pos = np.bincount(f, weights=lab, minlength=F)
    nnz_neg = np.bincount(f, minlength=F) - nnz_pos
    u = np.bincount(f, weights=rank * lab, minlength=F) - nnz_pos * (nnz_pos + 1) / 2  # pos > neg among non-zeros
    zero_pos, zero_neg = n_pos - nnz_pos, n_neg - nnz_neg
    return (u + nnz_pos * zero_neg + 0.5 * zero_pos * zero_neg) / (n_pos * n_neg)


def rank_features(features: sparse.spmatrix, labels: dict[str, np.ndarray], groups, top: int = 3,
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The ``top`` features with the highest AUROC for each label track (``labels``: {name: (N,)
    bool}), each with its 95% interval over resamples of whole ``groups`` (N,) (windows, or bins of
    a region: neighbouring positions are not independent), and how often it fires (share of the N
    positions). Columns: label, feature, auroc, low, high, active."""
    csc = sparse.csc_matrix(features)
    active = np.diff(csc.indptr) / csc.shape[0]
    rows = []
    for name, y in labels.items():
        aurocs = feature_aurocs(csc, y)
        for j in np.argsort(-aurocs, kind="stable")[:top]:
            a, lo, hi = grouped_auroc_ci(y, csc[:, j].toarray().ravel(), groups, n_boot=n_boot, seed=seed)
            rows.append({"label": name, "feature": int(j), "auroc": a, "low": lo, "high": hi,
                         "active": float(active[j])})
    return pd.DataFrame(rows)


def load_goodfire_sae(path: str | os.PathLike, k: int = GOODFIRE_K) -> TopKSAE:
    """A :class:`TopKSAE` (float32, CPU) from a file in Goodfire's format: a torch-saved dict of
    ``W`` (d_in, d_sae), ``b_enc`` (d_sae,), ``b_dec`` (d_in,), names possibly prefixed
    ``_orig_mod.`` or ``module.``. Read with ``weights_only=True`` and an empty allow-list: plain
    tensors only, never pickled code. Raises ValueError naming the file and what is wrong."""
    with torch.serialization.safe_globals([]):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 (UnpicklingError for a refused type, RuntimeError for a damaged file)
            raise ValueError(f"{path}: not a file of plain tensors in Goodfire's SAE format ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors (W, b_enc, b_dec), found {type(state).__name__}")
    named = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        named[key] = value
    if set(named) != {"W", "b_enc", "b_dec"}:
        raise ValueError(f"{path}: expected the tensors W, b_enc and b_dec of Goodfire's SAE, found {sorted(state)}")
    d_in, d_sae = named["W"].shape if named["W"].ndim == 2 else (None, None)
    if d_in is None or named["b_enc"].shape != (d_sae,) or named["b_dec"].shape != (d_in,):
        raise ValueError(f"{path}: shapes W {tuple(named['W'].shape)}, b_enc {tuple(named['b_enc'].shape)}, b_dec "
                         f"{tuple(named['b_dec'].shape)} do not fit W (d_in, d_sae), b_enc (d_sae,), b_dec (d_in,)")
    sae = TopKSAE(d_in, d_sae, k)
    sae.load_state_dict({name: t.float() for name, t in named.items()})
    return sae.eval()


def save_goodfire_format(sae: TopKSAE, path: str | os.PathLike) -> Path:
    """Write ``sae`` as Goodfire's file is laid out (``_orig_mod.W``, ``_orig_mod.b_enc``,
    ``_orig_mod.b_dec``, float32), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"_orig_mod.{name}": t.detach().float().cpu().contiguous() for name, t in sae.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def write_rehearsal_sae(path: str | os.PathLike, d_in: int, d_sae: int = GOODFIRE_FEATURES,
                        k: int = GOODFIRE_K, seed: int = 0) -> Path:
    """A random-weight SAE for a model of width ``d_in`` in Goodfire's file format, with Goodfire's
    number of features (so Arc's feature numbers exist), for the official-format rehearsal."""
    sae = TopKSAE(d_in, d_sae, k).init_weights(seed)
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.01, generator=torch.Generator().manual_seed(seed + 1))
    return save_goodfire_format(sae, path)


def goodfire_sae_path() -> Path:
    """Goodfire's SAE file from the Hugging Face Hub cache (downloaded on first use and checked
    against the SHA-256 the Hub lists; offline: from the cache, else one message saying what to fetch)."""
    return download_hub_file(GOODFIRE_REPO, GOODFIRE_FILE)
