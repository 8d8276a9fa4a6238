"""Embedding extraction: every requested layer from one forward per batch, pooled as it streams
by, optionally into a resumable on-disk store.

    model = evo2kit.load_model()
    feats = extract(model, seqs, ["blocks.3.mlp.l3", "blocks.7.mlp.l3"])   # {layer: (N, d)}
    feats = extract(model, seqs, model.layer_names, out="emb/")            # memmaps, resumable
    vf = variant_features(model, brca1_windows(df, 2048), ["blocks.7.mlp.l3"], pooling="window:8")
    X = probe_features(vf["blocks.7.mlp.l3"]["ref"], vf["blocks.7.mlp.l3"]["var"], kind="diff")

Pooling, over each sequence's real tokens only (padding never enters):
    "mean"       mean over the sequence                                       -> (N, d)
    "last"       its last token                                               -> (N, d)
    "position"   the token at ``positions[i]``                                -> (N, d)
    "window:k"   mean over ``positions[i]-k .. positions[i]+k``, clipped to the sequence -> (N, d)
    None         every token, zero-padded to the longest sequence             -> (N, Lmax, d)
                 (a store also holds ``lengths.npy``; row i is valid up to len(seqs[i]))
    [p1, p2...]  several of the above (not None) from the same pass          -> (N, P, d)

Batching: identical sequences are computed once; the distinct ones are sorted by length (longest
first), cut into batches of ``batch_size`` and right-padded with ``pad_id`` (1, never the EOS id 0).
The model is causal, so padding cannot reach a real token. Batches longer than ``chunk_size`` go
through the exact chunked forward (``model.model.new_state()``). ``variant_features`` runs each
variant window only from its SNV on, continuing its reference window's state there
(``evo2kit.analysis.prefix``; ``shared_prefix=False`` runs it whole): a reference batch and the variant
batches that continue it form one unit of the store.

With ``out=DIR`` the features go to a resumable on-disk store (:mod:`evo2kit.analysis.store`).
Command line: ``evo2kit-embed --help`` (:mod:`evo2kit.analysis.embed_cli`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from evo2kit.analysis import prefix
from evo2kit.analysis.store import STORE_FORMAT, Store
from evo2kit.api import Evo2Model
from evo2kit.data.brca1 import brca1_variants, brca1_windows
from evo2kit.data.variants import VariantWindows
from evo2kit.distributed import rank_world
from evo2kit.files import output_dir, sha256_json, sha256_lines
from evo2kit.model.tokenizer import sequence_list, validate_sequence

# --------------------------------------------------------------------------- planning

def parse_poolings(pooling) -> list[tuple[str, int]]:
    """``pooling``, or a list of several (not None), -> [(kind, k), ...] (see :func:`parse_pooling`)."""
    if pooling is None or isinstance(pooling, str):
        return [parse_pooling(pooling)]
    parsed = [parse_pooling(p) for p in pooling]
    if not parsed or any(kind == "none" for kind, _ in parsed):
        raise ValueError(f"a list of poolings takes 'mean', 'last', 'position' or 'window:k' (per-token None "
                         f"stands alone), not {list(pooling)!r}")
    return parsed


def parse_pooling(pooling: str | None) -> tuple[str, int]:
    """'mean' | 'last' | 'position' | 'window:k' | None -> (kind, k); kind 'none' for None."""
    if pooling is None or pooling == "none":
        return "none", 0
    if pooling in ("mean", "last", "position"):
        return pooling, 0
    if isinstance(pooling, str) and pooling.startswith("window:") and pooling[7:].isdigit():
        return "window", int(pooling[7:])
    raise ValueError(f"pooling must be 'mean', 'last', 'position', 'window:k' (k an int >= 0) "
                     f"or None, not {pooling!r}")


@dataclass
class Plan:
    """Which distinct sequences each unit of work computes and which rows receive them.

    uniq[u]: a distinct sequence; rows[u]: the input rows equal to it; slots[u]: the distinct
    positions pooled from it ([None] without positions); slot_of[i]: row i's index in its slots;
    units[b]: the forwards of unit b (``evo2kit.analysis.prefix.Pass``: one batch, or a batch of
    reference sequences and the passes that continue their states); batches[b]: the distinct
    sequences unit b fills, longest first within each pass.
    """

    uniq: list[str]
    names: list[str]
    rows: list[list[int]]
    slots: list[list]
    slot_of: np.ndarray
    units: list[list[prefix.Pass]]

    @property
    def batches(self) -> list[list[int]]:
        return [[u for p in unit for u in p.seqs] for unit in self.units]


def make_plan(seqs: Sequence[str], names: Sequence[str], positions: np.ndarray | None, batch_size: int,
              continues: Sequence[int] | None = None, min_shared: int = prefix.MIN_SHARED) -> Plan:
    """``continues[i]``: a row whose sequence row i's may continue from their common prefix
    (-1: none; see :mod:`evo2kit.analysis.prefix`), or None for plain batches."""
    index: dict[str, int] = {}
    uniq, unames, rows = [], [], []
    for i, s in enumerate(seqs):
        if s not in index:
            index[s] = len(uniq)
            uniq.append(s)
            unames.append(names[i])
            rows.append([])
        rows[index[s]].append(i)
    slot_of = np.zeros(len(seqs), np.int64)
    slots = []
    for r in rows:
        if positions is None:
            slots.append([None])
            continue
        distinct = sorted({int(positions[i]) for i in r})
        slots.append(distinct)
        slot_of[r] = [distinct.index(int(positions[i])) for i in r]
    lengths = [len(s) for s in uniq]
    parent, shared = [-1] * len(uniq), [0] * len(uniq)
    if continues is not None:
        pairs = sorted({(index[seqs[i]], index[seqs[j]]) for i, j in enumerate(continues) if j >= 0})
        roots = {q for _, q in pairs}
        for u, q in pairs:  # a sequence continued by another is never a continuation itself
            if u != q and u not in roots and parent[u] < 0:
                parent[u], shared[u] = q, prefix.shared_length(uniq[q], uniq[u])
        parent = prefix.sharing(lengths, parent, shared, min_shared)
    return Plan(uniq, unames, rows, slots, slot_of, prefix.schedule(lengths, parent, shared, batch_size))


def _validate(seqs, names, kind, positions) -> np.ndarray | None:
    """Check every sequence (and position) before any work; returns positions as int64 or None."""
    for s, name in zip(seqs, names):
        validate_sequence(s, name)
        if not s:
            raise ValueError(f"sequence {name!r} is empty")
    if kind not in ("position", "window"):
        if positions is not None:
            raise ValueError(f"positions= is only used by pooling 'position' or 'window:k', not {kind!r}")
        return None
    if positions is None:
        raise ValueError(f"pooling {kind!r} needs positions= (one token index per sequence)")
    positions = np.asarray(positions, dtype=np.int64)
    if positions.shape != (len(seqs),):
        raise ValueError(f"positions has shape {positions.shape}, expected ({len(seqs)},)")
    for s, name, p in zip(seqs, names, positions):
        if not 0 <= p < len(s):
            raise ValueError(f"position {p} is outside sequence {name!r} (length {len(s)})")
    return positions


def slot_weights(kind: str, k: int, n: int, p: int | None) -> torch.Tensor:
    """(n,) float32 weights over a sequence of n tokens: pooled = sum_t w[t] y[t] (slot at ``p``)."""
    w = torch.zeros(n)
    if kind == "mean":
        w[:] = 1.0 / n
    elif kind == "last":
        w[n - 1] = 1.0
    elif kind == "position":
        w[p] = 1.0
    else:  # window
        lo, hi = max(0, p - k), min(n, p + k + 1)
        w[lo:hi] = 1.0 / (hi - lo)
    return w


def pool_weights(kind: str, k: int, lengths: Sequence[int], slots: Sequence[list], L: int) -> torch.Tensor:
    """(B, M, L) float32 weights: pooled[b, m] = sum_t W[b, m, t] * y[b, t] for slot m of row b."""
    W = torch.zeros(len(lengths), max(len(s) for s in slots), L)
    for b, (n, row_slots) in enumerate(zip(lengths, slots)):
        for m, p in enumerate(row_slots):
            W[b, m, :n] = slot_weights(kind, k, n, p)
    return W


# --------------------------------------------------------------------------- the forward

@torch.no_grad()
def run_batch(model: Evo2Model, plan: Plan, b: int, layers: list[str], poolings: list[tuple[str, int]],
              chunk_size: int, arrays: dict[str, np.ndarray]) -> None:
    """The forwards of unit ``b`` with hooks on all ``layers``; writes its rows into ``arrays``
    (``poolings``: [(kind, k)] from :func:`parse_poolings`; several fill (P, d) per row).

    A sequence continuing a reference's state at offset s (``evo2kit.analysis.prefix``) takes its tokens
    before s from the reference's pass: pooled, its weights over 0..s-1 are applied there as
    extra slots of the reference's row, and the pass that continues it adds the rest."""
    unit, rows = plan.units[b], [i for u in plan.batches[b] for i in plan.rows[u]]
    kind = poolings[0][0]
    # (sequence, row of the first pass it continues, offset) for the continuing sequences
    continued = [(c, j, p.start) for p in unit[1:] for c, j in zip(p.seqs, p.source)]
    if kind == "none":
        for name in layers:  # rows may hold a half-written earlier attempt: start from zeros
            arrays[name][rows] = 0
    pooled: dict[tuple, dict[str, torch.Tensor]] = {}  # (sequence, slot, pooling) -> {layer: (d,)}
    cur: dict = {}  # the running pass, for the hooks

    def sink(name, y):
        off = cur["offset"][name]  # this piece's first token, relative to the pass's start
        cur["offset"][name] += y.shape[1]
        if kind != "none":  # y (B, c, d) -> acc (B, M, d) += W[..., piece] @ y
            part = torch.bmm(cur["W"][:, :, off:off + y.shape[1]], y.float())
            cur["acc"][name] = cur["acc"][name] + part if name in cur["acc"] else part
            return
        y, a = y.float().cpu().numpy(), cur["pass"].start + off  # copy each row's real tokens to its rows
        for j, (u, n) in enumerate(zip(cur["pass"].seqs, cur["lengths"])):
            part = y[j, :max(0, n - off)]
            for i in plan.rows[u]:
                arrays[name][i, a:a + len(part)] = part
        for c, j, s in continued if cur["first"] else ():
            part = y[j, :max(0, s - a)]  # the continuing sequence's tokens before s
            for i in plan.rows[c]:
                arrays[name][i, a:a + len(part)] = part

    kept: dict = {}
    with model.hooks(layers, sink):
        for p in unit:
            ids, lengths = prefix.encode(model, plan.uniq, p, plan.names)
            cur.update({"pass": p, "lengths": lengths, "first": p is unit[0], "offset": dict.fromkeys(layers, 0),
                        "acc": {}})
            if kind != "none":
                targets = [[((u, m, g), slot_weights(kd, k, len(plan.uniq[u]), q)[p.start:])
                            for m, q in enumerate(plan.slots[u]) for g, (kd, k) in enumerate(poolings)] for u in p.seqs]
                for c, j, s in continued if p is unit[0] else ():
                    targets[j] += [((c, m, g), slot_weights(kd, k, len(plan.uniq[c]), q)[:s])
                                   for m, q in enumerate(plan.slots[c]) for g, (kd, k) in enumerate(poolings)]
                W = torch.zeros(len(p.seqs), max(map(len, targets)), ids.shape[1])
                for j, row in enumerate(targets):
                    for t, (_, w) in enumerate(row):
                        W[j, t, :len(w)] = w
                cur["W"] = W.to(model.device)
            kept = prefix.run_pass(model, ids, p, kept, chunk_size) or kept
            for name, acc in cur["acc"].items():
                for j, row in enumerate(targets):
                    for t, (key, _) in enumerate(row):
                        got = pooled.setdefault(key, {})
                        got[name] = got[name] + acc[j, t] if name in got else acc[j, t]
    if kind != "none":
        for name in layers:
            per_row = [torch.stack([pooled[(u, plan.slot_of[i], g)][name] for g in range(len(poolings))])
                       for u in plan.batches[b] for i in plan.rows[u]]
            arrays[name][rows] = torch.stack(per_row).reshape(arrays[name][rows].shape).cpu().numpy()


def layer_dims(model: Evo2Model, layers: list[str]) -> dict[str, int]:
    """Width of each layer's output, from a one-token forward (also checks the names)."""
    dims = {}
    with torch.no_grad(), model.hooks(layers, lambda name, y: dims.setdefault(name, y.shape[-1])):
        model.model(torch.tensor([[model.tokenizer.tokenize("A")[0]]], device=model.device))
    return dims


def extract(model: Evo2Model, seqs: Sequence[str], layer_names: Sequence[str], pooling: str | None = "mean",
            batch_size: int = 8, out: str | os.PathLike | None = None, positions: Sequence[int] | None = None,
            dtype: str = "float32", *, chunk_size: int = 8192, names: Sequence[str] | None = None,
            progress: bool = False, continues: Sequence[int] | None = None,
            min_shared: int = prefix.MIN_SHARED) -> dict[str, np.ndarray]:
    """Features of ``seqs`` at every layer of ``layer_names``, one forward per batch.

    Returns {layer: (N, d)} (pooling=None: (N, Lmax, d), zero beyond each length; a list of P
    poolings: (N, P, d)) as numpy arrays, or with ``out`` as read-only memmaps of the store in
    that directory (see the module docstring). ``positions``: a token index per sequence, for 'position' and 'window:k'.
    ``names``: how errors refer to each sequence (default '#<index>'). Inside an initialised
    torch.distributed group the batches are shared among the ranks (``out`` required).

    ``continues[i]`` (-1: none): a row whose sequence row i's begins like; row i then continues
    that row's state after their common prefix instead of running whole (:mod:`evo2kit.analysis.prefix`;
    equal up to float rounding), where the prefix has at least ``min_shared`` tokens.
    """
    poolings = parse_poolings(pooling)
    kinds = {kind for kind, _ in poolings}
    kind = next((kd for kd in ("position", "window") if kd in kinds), poolings[0][0])  # one that needs positions?
    layers = list(layer_names)
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layer_names must be non-empty and without repeats, got {layers}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be ints >= 1, got {batch_size} and {chunk_size}")
    if np.dtype(dtype).kind != "f":
        raise ValueError(f"dtype must be a float type such as 'float32' or 'float16', not {dtype!r}")
    seqs = sequence_list(seqs)
    names = [f"#{i}" for i in range(len(seqs))] if names is None else list(names)
    positions = _validate(seqs, names, kind, positions)
    if continues is not None:
        continues = np.asarray(continues, np.int64)
        if continues.shape != (len(seqs),) or not ((continues >= -1) & (continues < len(seqs))).all():
            raise ValueError(f"continues must hold one row index (or -1) per sequence, {len(seqs)} in all")
    plan = make_plan(seqs, names, positions, batch_size, continues, min_shared)
    lengths = np.array([len(s) for s in seqs], np.int64)
    dims = layer_dims(model, layers)
    many = not (pooling is None or isinstance(pooling, str))
    shapes = {n: (len(seqs), int(lengths.max(initial=0)), dims[n]) if kind == "none" else
              (len(seqs), len(poolings), dims[n]) if many else (len(seqs), dims[n]) for n in layers}
    rank, world = rank_world()
    if world > 1 and out is None:
        raise ValueError("a distributed run (torch.distributed initialised) writes to a store: pass out=")
    identity = {"format": STORE_FORMAT, "model": model.name, "weights_sha256": model.digest(),
                "fp8": model.fp8_state() if hasattr(model, "fp8_state") else None, "layers": layers,
                "pooling": list(pooling) if many else None if kind == "none" else pooling,
                "dtype": np.dtype(dtype).name,
                "n_sequences": len(seqs), "sequences_sha256": sha256_lines(seqs),
                "positions_sha256": None if positions is None else hashlib.sha256(positions.tobytes()).hexdigest(),
                "batch_size": batch_size, "chunk_size": chunk_size,
                "shared_prefix": None if continues is None else {"continues_sha256": hashlib.sha256(
                    continues.tobytes()).hexdigest(), "min_shared": min_shared}}
    row_batch = np.zeros(len(seqs), np.int64)
    for b, us in enumerate(plan.batches):
        row_batch[[i for u in us for i in plan.rows[u]]] = b
    store = Store(out, identity, shapes, lengths, row_batch, len(plan.batches), rank, world)
    try:
        for b in tqdm(store.pending(), disable=not progress, unit="batch", dynamic_ncols=True,
                      desc=f"rank {rank}" if world > 1 else "embed"):
            run_batch(model, plan, b, layers, poolings, chunk_size, store.arrays)
            store.mark_done(b)
        return store.finish()
    finally:
        store.close()


def store_name(model: Evo2Model, windows, layer_names: Sequence[str], pooling, batch_size: int,
               chunk_size: int | None = None, shared_prefix: bool = True) -> str:
    """A store folder name for ``variant_features(model, windows, layer_names, pooling, ...)``:
    readable parts (model, weights, window length, variants, pooling) and a digest of everything
    that changes the store's content (the exact sequences, so a different variant subset or seed
    never meets an earlier store, the layers, the pooling, the batching, how FP8 projections run)."""
    ref_seqs, var_seqs, ref_index = windows
    positions = getattr(windows, "var_pos_in_window", None)
    identity = {"format": STORE_FORMAT, "sequences": sha256_lines([ref_seqs[j] for j in ref_index] + list(var_seqs)),
                "positions": None if positions is None else sha256_lines(map(str, positions)),
                "layers": list(layer_names), "pooling": pooling if pooling is None or isinstance(pooling, str)
                else list(pooling), "batch_size": batch_size, "chunk_size": chunk_size,
                "shared_prefix": shared_prefix}
    fp8 = model.fp8_state() if hasattr(model, "fp8_state") else None
    if fp8 is not None:  # FP8 projections change the features (absent: the names of models without them)
        identity["fp8"] = fp8
    parse_poolings(pooling)  # refuses an unknown pooling before anything is named after it
    label = str(pooling) if pooling is None or isinstance(pooling, str) else "+".join(pooling)
    length = len(var_seqs[0]) if len(var_seqs) else 0
    return (f"{model.name}-{model.digest()[:8]}_w{length}_n{len(var_seqs)}_{label.replace(':', '')}"
            f"_{sha256_json(identity)[:10]}")


def variant_features(model: Evo2Model, windows, layer_names: Sequence[str], pooling="position",
                     out: str | os.PathLike | None = None, positions: Sequence[int] | None = None,
                     shared_prefix: bool = True, **kwargs) -> dict[str, dict[str, np.ndarray]]:
    """Reference and variant features of each variant: {layer: {"ref": (N, d), "var": (N, d)}}.

    windows: ``evo2kit.data.brca1.brca1_windows(...)`` output (or a ``(ref_seqs, var_seqs, ref_index)``
    tuple with explicit ``positions``). 'position' / 'window:k' pooling defaults to the variant's
    index in its window (``windows.var_pos_in_window``). One ``extract`` call over the N reference
    rows and the N variant rows: shared reference windows are computed once. In a store, rows
    0..N-1 are the references and N..2N-1 the variants. ``kwargs`` go to :func:`extract`.

    ``shared_prefix`` (default): each variant window continues its reference window's state
    from the first base where they differ (the SNV), so only its suffix is run; equal to
    whole windows up to float rounding. Variants that share fewer than ``min_shared`` (a kwarg,
    default ``evo2kit.analysis.prefix.MIN_SHARED``) leading bases with their reference window (near the
    window start; an indel window re-centred) run whole. False: every window whole, the plain
    reference.
    """
    ref_seqs, var_seqs, ref_index = windows
    n = len(var_seqs)
    if positions is None and {kind for kind, _ in parse_poolings(pooling)} & {"position", "window"}:
        if not hasattr(windows, "var_pos_in_window"):
            raise ValueError(f"pooling {pooling!r} needs positions= (the variant index in each window)")
        positions = windows.var_pos_in_window
    seqs = [ref_seqs[j] for j in ref_index] + list(var_seqs)
    pos = None if positions is None else np.concatenate([positions, positions])
    names = [f"reference window of variant {i}" for i in range(n)] + [f"variant {i}" for i in range(n)]
    continues = np.concatenate([np.full(n, -1), np.arange(n)]) if shared_prefix else None
    feats = extract(model, seqs, layer_names, pooling, out=out, positions=pos, names=names, continues=continues,
                    **kwargs)
    return {layer: {"ref": a[:n], "var": a[n:]} for layer, a in feats.items()}


@dataclass
class VariantEmbeddings:
    """Labelled SNVs with their reference- and variant-window features (notebooks 02 and 04)."""

    variants: pd.DataFrame  # the selected SNVs, index 0..N-1
    is_lof: np.ndarray  # (N,) int64: 1 for LOF, 0 for FUNC/INT
    windows: VariantWindows
    layers: list[str]
    features: dict[str, dict[str, np.ndarray]]  # {layer: {"ref": (N, d), "var": (N, d)}}
    store: Path


BRCA1_SETTINGS = ("window", "n_variants", "seed", "layer_ids", "pooling", "batch_size", "layer_name")
"""The settings of :func:`brca1_embeddings` that decide its store: notebooks that share a store share these."""


def brca1_embeddings(model: Evo2Model, *, window: int, n_variants: int | None = None, seed: int = 0,
                     layer_ids: Sequence[int] | None = None, pooling: str = "mean", batch_size: int = 8,
                     store_root: str | os.PathLike | None = None, progress: bool = True,
                     layer_name: str = "blocks.{i}.mlp.l3") -> VariantEmbeddings:
    """The BRCA1 SNVs of Findlay et al. (2018) (all, or a class-stratified subset of ``n_variants``
    drawn with ``seed``), their ``window``-bp windows and the pooled features of the modules
    ``layer_name.format(i=i)`` of the blocks ``layer_ids`` (None: every block; e.g.
    "blocks.{i}.pre_norm" as the community tutorial reads), kept in the store
    ``store_root/<store_name(...)>`` (store_root None: ``output_dir()/embeddings``). A call with the
    same settings reads that store (resuming it if cut short); any setting that changes the
    content names another store."""
    n_blocks = model.config.num_layers
    if layer_ids is not None and not (isinstance(layer_ids, (list, tuple, range)) and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_blocks for i in layer_ids)):
        raise ValueError(f"layer_ids must be a list of block indices in [0, {n_blocks}) (e.g. [2, 5]) or None for "
                         f"every block, got {layer_ids!r}")
    df = brca1_variants(n_variants, seed)
    windows = brca1_windows(df, window)
    blocks = range(n_blocks) if layer_ids is None else layer_ids
    layers = [layer_name.format(i=i) for i in blocks]
    store = Path(store_root or output_dir() / "embeddings") / store_name(model, windows, layers, pooling, batch_size)
    features = variant_features(model, windows, layers, pooling=pooling, out=store, batch_size=batch_size,
                                progress=progress)
    return VariantEmbeddings(df, (df["class"] == "LOF").to_numpy(np.int64), windows, layers, features, store)


@torch.no_grad()
def per_layer_recipe(model: Evo2Model, seqs: Sequence[str], layer_names: Sequence[str],
                     batch_size: int = 8) -> dict[str, np.ndarray]:
    """The widely copied recipe that :func:`extract` replaces, kept to measure against: for each
    layer, a forward of every sequence (batches of ``batch_size``) keeping only that layer,
    mean-pooled over the real bases -> {layer: (N, d) float32}. ``len(layer_names)`` forwards per
    sequence where ``extract`` needs one."""
    seqs = sequence_list(seqs)
    out = {}
    for layer in layer_names:
        rows = []
        for i in range(0, len(seqs), batch_size):
            ids, lengths = model.tokenizer.encode_batch(seqs[i:i + batch_size])
            _, emb = model(ids, return_embeddings=True, layer_names=[layer])
            mask = model.tokenizer.attention_mask(lengths, ids.shape[1])[..., None].to(emb[layer].device)
            rows.append(((emb[layer].float() * mask).sum(1) / mask.sum(1)).cpu().numpy())
        out[layer] = np.concatenate(rows)
    return out


def probe_features(ref: np.ndarray, var: np.ndarray, kind: str = "concat") -> np.ndarray:
    """Probe inputs from reference and variant features (N, d): 'concat' -> [ref, var] (N, 2d),
    'diff' -> var - ref (N, d)."""
    if kind == "concat":
        return np.concatenate([ref, var], axis=1)
    if kind == "diff":
        return np.asarray(var, np.float32) - np.asarray(ref, np.float32)
    raise ValueError(f"kind must be 'concat' or 'diff', not {kind!r}")
