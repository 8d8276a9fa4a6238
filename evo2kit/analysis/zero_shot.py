"""Zero-shot variant effect: delta log-likelihood of variant vs reference windows, and AUROC.

    table = variant_deltas(model, df, window=2048, batch_size=8)   # df from evo2kit.data.brca1.load_brca1()
    auroc, lo, hi = auroc_ci(table["class"] == "LOF", -table["delta"])

delta = mean log-likelihood (nats per predicted base) of the variant window minus that of its
reference window; a damaging variant should look less likely to the model (delta < 0), so
``-delta`` is the score for LOF.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evo2kit.analysis import prefix
from evo2kit.data.brca1 import brca1_windows
from evo2kit.files import atomic_write, sha256_json, sha256_lines
from evo2kit.model.tokenizer import reverse_complement as reverse_complement_of


def delta_likelihood(model, ref_seqs: list[str], var_seqs: list[str], ref_index: np.ndarray,
                     batch_size: int = 8, reverse_complement: bool = False, *, shared_prefix: bool = True,
                     chunk_size: int | None = None, min_shared: int = prefix.MIN_SHARED) -> np.ndarray:
    """delta (N,) = score(variant window) - score(its reference window), scoring each unique
    reference window once (``ref_index`` (N,) maps variants to ``ref_seqs``). With
    ``reverse_complement`` both windows are read on the minus strand.

    ``shared_prefix`` (default, evo2kit models): each variant window continues its reference
    window's state from the first base where they differ, so only its suffix is run
    (:mod:`evo2kit.analysis.prefix`; equal to whole windows up to float rounding). Variants sharing fewer
    than ``min_shared`` leading bases with their reference (near the window start, or a window
    not starting where its reference's does) run whole. ``chunk_size`` cuts long windows into
    chunks of the exact chunked forward. ``shared_prefix=False``: every window whole through
    ``model.score_sequences``, the plain reference (and the only path for evo2's vortex model)."""
    if reverse_complement:
        ref_seqs, var_seqs = [reverse_complement_of(s) for s in ref_seqs], [reverse_complement_of(s) for s in var_seqs]
    ref_index = np.asarray(ref_index, np.int64)
    if shared_prefix and prefix.supports(model):
        scores = prefix_shared_scores(model, ref_seqs, var_seqs, ref_index, batch_size, chunk_size, min_shared)
        return scores[len(ref_seqs):] - scores[ref_index]
    if chunk_size is not None:
        raise ValueError("chunk_size needs shared_prefix=True on an evo2kit model (score_sequences runs whole windows)")
    ref = np.asarray(model.score_sequences(ref_seqs, batch_size=batch_size))
    var = np.asarray(model.score_sequences(var_seqs, batch_size=batch_size))
    return var - ref[ref_index]


@torch.no_grad()
def prefix_shared_scores(model, ref_seqs: list[str], var_seqs: list[str], ref_index: np.ndarray,
                         batch_size: int = 8, chunk_size: int | None = None,
                         min_shared: int = prefix.MIN_SHARED) -> np.ndarray:
    """Mean log-likelihood (nats per predicted base, as ``score_sequences``) of the reference
    windows then the variant windows, (R + N,) float64, with prefix-shared passes.

    A variant sharing p leading bases with its reference takes the reference's predictions of
    bases 1 .. p-1, the reference's distribution at p-1 read at its own base p, and its own
    predictions from p on."""
    seqs = list(ref_seqs) + list(var_seqs)
    for i, s in enumerate(seqs):
        if len(s) < 2:
            raise ValueError(f"{'reference window' if i < len(ref_seqs) else 'variant window'} "
                             f"{i if i < len(ref_seqs) else i - len(ref_seqs)} has {len(s)} base(s): "
                             "a score needs at least 2")
    lengths = [len(s) for s in seqs]
    parent = [-1] * len(ref_seqs) + [int(j) for j in ref_index]
    shared = [0] * len(ref_seqs) + [prefix.shared_length(ref_seqs[j], v) for j, v in zip(ref_index, var_seqs)]
    parent = prefix.sharing(lengths, parent, shared, min_shared)
    total = np.zeros(len(seqs))  # sum of log-likelihoods of each sequence's true next bases
    names = ([f"reference window {i}" for i in range(len(ref_seqs))]
             + [f"variant window {i}" for i in range(len(var_seqs))])
    for unit in prefix.schedule(lengths, parent, shared, batch_size):
        kept: dict = {}
        for i, p in enumerate(unit):
            ids, n = prefix.encode(model, seqs, p, names)
            lp, at_cut = [], {}  # per piece: (B, k) log-likelihoods; the distribution before each kept offset

            def on_logits(start, logits, ids=ids, p=p, lp=lp, at_cut=at_cut):
                r, k = start - p.start, logits.shape[1]
                nxt = ids[:, r + 1:r + k + 1].to(logits.device)  # next bases (one fewer at the end)
                logp = torch.log_softmax(logits.float(), -1)
                lp.append(logp[:, :nxt.shape[1]].gather(2, nxt[..., None])[..., 0].double().cpu())
                if start + k in p.keep:
                    at_cut[start + k] = logp[:, -1].cpu()

            kept = prefix.run_pass(model, ids, p, kept, chunk_size, on_logits) or kept
            lp = torch.cat(lp, 1)  # (B, L-1): position r predicts base r+1 (pass-relative)
            lp[torch.arange(lp.shape[1])[None] >= torch.tensor(n)[:, None] - 1] = 0  # padding predicts nothing
            total[p.seqs] += lp.sum(1).numpy()
            if i == 0:
                ref_lp, ref_at_cut = lp, at_cut
                continue
            for c, j in zip(p.seqs, p.source):  # the shared prefix, from the reference pass
                total[c] += float(ref_lp[j, :p.start - 1].sum()) + float(
                    ref_at_cut[p.start][j, model.tokenizer.tokenize(seqs[c][p.start])[0]])
    return total / (np.asarray(lengths) - 1)


def variant_deltas(model, df: pd.DataFrame, window: int, batch_size: int = 8, strands: str = "+",
                   region: str | None = None, cache: str | os.PathLike | None = None, *,
                   shared_prefix: bool = True, chunk_size: int | None = None) -> pd.DataFrame:
    """``df`` (rows with pos/ref/alt) plus columns ``delta+`` and/or ``delta-`` (per strand in
    ``strands``: "+", "-" or "+-") and ``delta`` (their mean), for ``window``-bp windows centred
    on each SNV (see :func:`evo2kit.data.brca1.brca1_windows`).

    ``cache``: a folder where each strand's deltas are kept (``deltas-<key>.<checksum>.npy``,
    written atomically) and reused by a later call with the same model weights, dtype, FP8 mode,
    windows, batch size and method (a damaged file is computed again); None computes every time.
    ``table.attrs["computed"]`` says whether the model scored any strand in this call (False: every
    strand came from the cache, so its time says nothing). ``shared_prefix``, ``chunk_size``: see
    :func:`delta_likelihood` (each variant window continues its reference's state at the SNV)."""
    check_strands(strands)
    windows = brca1_windows(df, window, region)
    computed: list[str] = []
    deltas = window_deltas(model, windows, batch_size, strands, cache, computed=computed,
                           shared_prefix=shared_prefix, chunk_size=chunk_size)
    cols = {f"delta{s}": d for s, d in deltas.items()}
    table = df.assign(**cols, delta=np.mean(list(cols.values()), axis=0), window=window,
                      n_unique_ref=len(windows.ref_seqs))
    table.attrs["computed"] = bool(computed)
    return table


def window_deltas(model, windows, batch_size: int = 8, strands: str = "+",
                  cache: str | os.PathLike | None = None, computed: list | None = None, *,
                  shared_prefix: bool = True, chunk_size: int | None = None) -> dict[str, np.ndarray]:
    """{strand: delta (N,)} for ``windows`` (``VariantWindows`` or a ``(ref_seqs, var_seqs,
    ref_index)`` tuple, from BRCA1 or from ``evo2kit.data.variants``), per strand in ``strands``;
    ``cache``, ``shared_prefix`` and ``chunk_size`` as in :func:`variant_deltas`; the strands the
    model scored (not read from the cache) are appended to ``computed`` when given."""
    check_strands(strands)
    ref_seqs, var_seqs, ref_index = windows
    computed = [] if computed is None else computed  # strands scored by the model here, not read from the cache
    shared = shared_prefix and prefix.supports(model)

    def strand(s: str) -> np.ndarray:
        def compute():
            computed.append(s)
            return delta_likelihood(model, ref_seqs, var_seqs, ref_index, batch_size, s == "-",
                                    shared_prefix=shared, chunk_size=chunk_size)

        if cache is None:
            return compute()
        if not hasattr(model, "digest"):
            warnings.warn(f"{type(model).__name__} has no weights digest to key cached scores by: scoring without "
                          f"the cache in {cache}", stacklevel=3)
            return compute()
        method = ["prefix-shared", chunk_size, prefix.MIN_SHARED] if shared else []
        return _cached(Path(cache), _cache_key(model, ref_seqs, var_seqs, ref_index, batch_size, s, method), compute)

    return {s: strand(s) for s in dict.fromkeys(strands)}


def check_strands(strands) -> None:
    """Raise ValueError unless ``strands`` is '+', '-' or '+-'."""
    if not isinstance(strands, str) or not strands or set(strands) - {"+", "-"}:
        raise ValueError(f"strands must be '+', '-' or '+-', not {strands!r}")


def _cache_key(model, ref_seqs, var_seqs, ref_index, batch_size: int, strand: str, method: list = ()) -> str:
    """A digest of everything that changes the deltas: the windows, the weights, the dtype and device,
    how FP8 projections run (for a model that has them), the batch size, the strand and the method."""
    params = next(model.model.parameters())
    identity = [sha256_lines([*ref_seqs, *var_seqs]), np.asarray(ref_index, np.int64).tolist(), model.digest(),
                str(params.dtype), params.device.type, batch_size, strand, *method]
    fp8 = model.fp8_state() if hasattr(model, "fp8_state") else None
    if fp8 is not None:  # the same weights give other numbers in FP8 (absent: the keys of models without FP8)
        identity.append(["fp8", fp8])
    return sha256_json(identity)[:24]


def _cached(folder: Path, key: str, compute) -> np.ndarray:
    """The deltas in ``folder/deltas-<key>.<sha>.npy``, whose name carries a SHA-256 of its values, if
    present and intact; else ``compute()`` saved there atomically. A file whose values no longer
    match its checksum (or that cannot be read) is removed and computed again, with a warning."""
    for path in sorted(folder.glob(f"deltas-{key}.*.npy")):
        try:
            values = np.load(path, allow_pickle=False)
            intact = _values_sha256(values).startswith(path.name.split(".")[1])
        except (OSError, ValueError, EOFError):
            intact = False
        if intact:
            return values
        warnings.warn(f"{path} is damaged (its values do not match the checksum in its name): computing it again",
                      stacklevel=4)
        path.unlink(missing_ok=True)
    values = np.asarray(compute(), np.float64)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"deltas-{key}.{_values_sha256(values)[:16]}.npy", lambda f: np.save(f, values), mode="wb")
    return values


def _values_sha256(values: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    h = hashlib.sha256(f"{values.dtype.str} {values.shape}\n".encode())
    h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()
