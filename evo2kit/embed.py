"""Embedding extraction: every requested layer from one forward per batch, pooled as it streams
by, optionally into a resumable on-disk store.

    model = evo2kit.load_model()
    feats = extract(model, seqs, ["blocks.3.mlp.l3", "blocks.7.mlp.l3"])   # {layer: (N, d)}
    feats = extract(model, seqs, model.layer_names, out="emb/")            # memmaps, resumable
    vf = variant_features(model, variant_windows(df, 2048), ["blocks.7.mlp.l3"], pooling="window:8")
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
(``evo2kit.prefix``; ``shared_prefix=False`` runs it whole): a reference batch and the variant
batches that continue it form one unit of the store.

Store (``out=DIR``): ``DIR/<layer>.npy`` per layer (``open_memmap``), ``lengths.npy``, ``batches.npy``
(the batch that fills each row) and ``DIR/manifest.json``: the store format, the model (name, weights
sha256), layers, pooling, dtype, a sha256 over the sequences (and positions), batch and chunk size,
``batches_done``, ``rows_done`` and a sha256 of each finished batch's rows (``checksums``). The
manifest is replaced atomically after each batch's rows are flushed, so a rerun of the same call
after any interruption (kill -9 included) redoes only the unfinished batches, and any finished
batch whose rows no longer match their checksum; a store made by a different call is refused,
naming the fields that differ. ``verify(DIR)`` (``evo2kit-embed --verify DIR``) checks a store.

One writer per store: the writer holds an exclusive lock on ``DIR/.lock`` (``flock``, which the
kernel drops when the holder ends, kill -9 included), and the file names the holder (pid, host,
start time); a second extraction into the same store is refused with that name. Under ``torchrun``
(an initialised ``torch.distributed`` group) rank 0 holds the lock for the group; each rank takes
every world-th pending batch, writes its rows into the shared memmaps, and records its batches
and checksums in ``manifest.rank<r>.json``; rank 0 folds those into the manifest at start and end,
so resuming works with any number of processes and the result equals a 1-process run.

Command line: ``python -m evo2kit.embed --help`` (or ``torchrun --nproc_per_node N -m evo2kit.embed``);
exit status as in ``evo2kit.cli`` (0 ok, 64 usage, 65 bad or damaged store, 66 missing input, 75 store busy).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from numpy.lib.format import open_memmap
from tqdm import tqdm

from . import prefix
from .api import Evo2Model
from .cli import ArgumentParser, BusyError, DataError, exit_status_help, run_main
from .data import VariantWindows
from .files import atomic_write, sha256_json, sha256_lines
from .tokenizer import sequence_list, validate_sequence

MANIFEST = "manifest.json"
LOCK = ".lock"
BATCHES = "batches.npy"
STORE_FORMAT = 2
"""Version of the store layout (2: per-batch checksums, ``batches.npy``); part of a store's identity."""
IDENTITY = ("format", "model", "weights_sha256", "layers", "pooling", "dtype", "n_sequences",
            "sequences_sha256", "positions_sha256", "batch_size", "chunk_size", "shared_prefix")
"""Manifest fields that must match for a store to be resumed (``shared_prefix`` is None, as in
stores written before it existed, unless rows continue other rows' states)."""


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
    units[b]: the forwards of unit b (``evo2kit.prefix.Pass``: one batch, or a batch of
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
    (-1: none; see :mod:`evo2kit.prefix`), or None for plain batches."""
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

    A sequence continuing a reference's state at offset s (``evo2kit.prefix``) takes its tokens
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


def model_sha256(model: Evo2Model) -> str:
    """``model.weights_sha256``, or for a model without one (random weights) a sha256 over the
    state dict's names and tensor bytes."""
    if model.weights_sha256:
        return model.weights_sha256
    h = hashlib.sha256()
    for name, t in sorted(model.model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- the store

class StoreError(DataError):
    """A store made by another call, or a damaged one; the message says how to recover."""


class StoreBusyError(BusyError):
    """Another running process is writing the store."""


def _write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=1))


def _read_json(path: Path) -> dict:
    """A store's JSON file, or a StoreError naming it and saying how to recover."""
    try:
        obj = json.loads(path.read_text())
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
        return obj
    except (OSError, ValueError) as e:
        raise StoreError(f"{path} is unreadable ({type(e).__name__}: {e}): the store is damaged. Restore the "
                         f"file and rerun to resume, or delete {path.parent} to start over") from None


def _open_array(path: Path, mode: str = "r") -> np.memmap:
    """One layer's memmap, or a StoreError naming the file and saying how to recover."""
    try:
        return open_memmap(path, mode=mode)
    except (OSError, ValueError) as e:
        raise StoreError(f"{path} is unreadable ({type(e).__name__}: {e}): the store is damaged. Restore the "
                         f"file and rerun to resume, or delete {path.parent} to start over") from None


class StoreLock:
    """One writer per store: an exclusive ``flock`` on ``DIR/.lock``, whose content names the holder
    (pid, host, start time). The kernel drops the lock when its holder ends, however it ends (kill -9
    included), so a lock left by a dead process is stale by construction and simply taken over."""

    def __init__(self, out: Path):
        self.path = out / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip()
            os.close(fd)
            try:
                h = json.loads(holder)
                who = f"pid {h['pid']} on {h['host']}, started {h['started']}"
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise StoreBusyError(f"{self.path.parent} is being written by {who} (lock {self.path}). Wait for it "
                                 "to end, or use another out= directory; the lock goes when that process "
                                 "ends, even if it is killed") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        # The file stays: unlinking it would let a process that opened it a moment earlier lock a
        # file no longer in the folder while a third one creates and locks a new one.
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class Store:
    """The output arrays (in memory, or memmaps in ``out``), the finished batches and their checksums."""

    def __init__(self, out: str | os.PathLike | None, identity: dict, shapes: dict[str, tuple],
                 lengths: np.ndarray, row_batch: np.ndarray, n_batches: int, rank: int = 0, world: int = 1):
        """row_batch[i]: the batch that fills input row i."""
        self.identity, self.shapes, self.rank, self.world = identity, shapes, rank, world
        self.n_batches = n_batches
        self.batch_rows = [np.flatnonzero(row_batch == b) for b in range(n_batches)]  # ascending rows
        self.out = None if out is None else Path(out)
        self.lock = None
        self.mine: dict[int, str] = {}
        dtype = identity["dtype"]
        if self.out is None:
            self.arrays = {name: np.zeros(shape, dtype) for name, shape in shapes.items()}
            self.done: dict[int, str] = {}
            return
        error = None
        if rank == 0:  # rank 0 holds the lock for the whole group
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                self.lock = StoreLock(self.out)
                self.lock.acquire()
                self._prepare(shapes, lengths, row_batch)
            except Exception as e:  # noqa: BLE001 (other ranks must hear of any failure)
                error = e
                self.close()
        if world > 1:  # rank 0 created or checked the store; everyone learns how it went
            box = [None if error is None else f"{type(error).__name__}: {error}"]
            dist.broadcast_object_list(box, src=0)
            if box[0] is not None:
                raise RuntimeError(f"rank 0 could not open the store: {box[0]}")
        elif error is not None:
            raise error
        self.done = {int(b): c for b, c in _read_json(self.out / MANIFEST)["checksums"].items()}
        self.arrays = {name: _open_array(self._path(name), "r+") for name in shapes}

    def _path(self, layer: str) -> Path:
        return self.out / f"{layer}.npy"

    def _parts(self) -> list[Path]:
        return sorted(self.out.glob("manifest.rank*.json"))

    def _prepare(self, shapes, lengths, row_batch) -> None:
        """Rank 0, holding the lock: check an existing store against this call (folding in rank
        parts, dropping batches whose rows no longer match their checksum), or create it."""
        for tmp in self.out.glob(".manifest*.tmp"):  # a write cut short; the lock says its writer is gone
            tmp.unlink()
        path = self.out / MANIFEST
        if path.is_file():
            manifest = _read_json(path)
            diff = [f"{f} (store: {manifest.get(f)!r}, this call: {self.identity[f]!r})"
                    for f in IDENTITY if manifest.get(f) != self.identity[f]]
            if diff:
                raise StoreError(f"{self.out} holds a store made by a different call; differing: "
                                 + "; ".join(diff) + ". Use another out= directory, or delete this one.")
            arrays = {}
            for name, shape in shapes.items():
                arrays[name] = arr = _open_array(self._path(name))
                if arr.shape != tuple(shape) or arr.dtype != np.dtype(self.identity["dtype"]):
                    raise StoreError(f"{self._path(name)} has shape {arr.shape} {arr.dtype}, the manifest says "
                                     f"{tuple(shape)} {self.identity['dtype']}: the store is damaged; delete "
                                     f"{self.out} to start over")
            done = {int(b): c for b, c in manifest["checksums"].items()} | self._parts_done()
            bad = sorted(b for b, c in done.items() if self.checksum(b, arrays) != c)
            if bad:
                warnings.warn(f"{self.out}: the rows of {len(bad)} finished batch(es) {bad[:10]} no longer match "
                              "their checksums (written over since); computing them again", stacklevel=4)
            self._save({b: c for b, c in done.items() if b not in bad})
            return
        for p in self._parts():  # left by an unfinished store that had no manifest yet
            p.unlink()
        for name, shape in shapes.items():
            open_memmap(self._path(name), mode="w+", dtype=self.identity["dtype"], shape=shape).flush()
        np.save(self.out / "lengths.npy", lengths)
        np.save(self.out / BATCHES, row_batch)
        self._save({})

    def _parts_done(self) -> dict[int, str]:
        done, digest = {}, sha256_json(self.identity)
        for p in self._parts():
            part = _read_json(p)
            if part.get("identity_sha256") == digest:
                done |= {int(b): c for b, c in part["checksums"].items()}
        return done

    def _save(self, done: dict[int, str]) -> None:
        """Rank 0: rewrite the manifest with ``done`` and drop the rank parts it now contains."""
        _write_json(self.out / MANIFEST, {**self.identity, "shapes": {n: list(s) for n, s in self.shapes.items()},
                                          "n_batches": self.n_batches, "batches_done": sorted(done),
                                          "rows_done": sum(len(self.batch_rows[b]) for b in done),
                                          "complete": len(done) == self.n_batches,
                                          "checksums": {str(b): done[b] for b in sorted(done)}})
        for p in self._parts():
            p.unlink()

    def checksum(self, b: int, arrays: dict[str, np.ndarray] | None = None) -> str:
        """sha256 over batch ``b``'s rows of every layer (layers in order, rows ascending)."""
        arrays = self.arrays if arrays is None else arrays
        return _rows_sha256(arrays, self.identity["layers"], self.batch_rows[b])

    def pending(self) -> list[int]:
        """This rank's share of the unfinished batches."""
        return [b for b in range(self.n_batches) if b not in self.done][self.rank::self.world]

    def mark_done(self, b: int) -> None:
        """Flush the rows of batch ``b``, then record it with its checksum (manifest, or this rank's part)."""
        if self.out is None:
            self.done[b] = ""  # nothing on disk to check later
            return
        for arr in self.arrays.values():
            arr.flush()
        self.done[b] = self.mine[b] = self.checksum(b)
        if self.world == 1:
            self._save(self.done)
        else:
            _write_json(self.out / f"manifest.rank{self.rank}.json",
                        {"identity_sha256": sha256_json(self.identity),
                         "checksums": {str(k): self.mine[k] for k in sorted(self.mine)}})

    def finish(self) -> dict[str, np.ndarray]:
        """Results: the arrays, or the store's read-only memmaps once every rank is done."""
        if self.out is None:
            return self.arrays
        self.arrays.clear()
        if self.world > 1:
            dist.barrier()
            if self.rank == 0:
                manifest = _read_json(self.out / MANIFEST)
                self._save({int(b): c for b, c in manifest["checksums"].items()} | self._parts_done())
            dist.barrier()
        self.close()
        return {name: open_memmap(self._path(name), mode="r") for name in self.shapes}

    def close(self) -> None:
        """Let go of the lock (rank 0); the store stays as it is, resumable."""
        if self.lock is not None:
            self.lock.release()


def _rows_sha256(arrays: dict[str, np.ndarray], layers: Sequence[str], rows: np.ndarray) -> str:
    h = hashlib.sha256()
    for name in layers:
        h.update(np.ascontiguousarray(arrays[name][rows]).tobytes())
    return h.hexdigest()


def verify(out: str | os.PathLike) -> dict:
    """Check a store: complete, and every batch's rows equal to their recorded checksum.

    Returns the manifest; raises StoreError naming the unfinished or damaged batches (and their
    rows) and how to recover: rerun the same ``extract`` call with ``out`` (it recomputes them).
    """
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"no store at {out} (no such folder)")
    manifest = _read_json(out / MANIFEST)
    if manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{out / MANIFEST}: store format {manifest.get('format')!r}, this evo2kit reads "
                         f"{STORE_FORMAT}: delete {out} and extract again")
    try:
        row_batch = np.load(out / BATCHES)
    except (OSError, ValueError) as e:
        raise StoreError(f"{out / BATCHES} is unreadable ({type(e).__name__}: {e}): the store is damaged; "
                         f"delete {out} to start over") from None
    arrays = {name: _open_array(out / f"{name}.npy") for name in manifest["layers"]}
    checksums = {int(b): c for b, c in manifest["checksums"].items()}
    missing = [b for b in range(manifest["n_batches"]) if b not in checksums]
    damaged = [b for b, c in sorted(checksums.items())
               if _rows_sha256(arrays, manifest["layers"], np.flatnonzero(row_batch == b)) != c]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {manifest['n_batches']} batches unfinished {missing[:10]}")
    if damaged:
        rows = np.flatnonzero(np.isin(row_batch, damaged))
        problems.append(f"{len(damaged)} batch(es) {damaged[:10]} (rows {rows[:10].tolist()}"
                        f"{'...' if len(rows) > 10 else ''}) no longer match their checksums")
    if problems:
        raise StoreError(f"{out}: " + "; ".join(problems) + ". Rerun the same extraction with this out= "
                         "to compute them again")
    return manifest


# --------------------------------------------------------------------------- public API

def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
    that row's state after their common prefix instead of running whole (:mod:`evo2kit.prefix`;
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
    rank, world = _dist_rank_world()
    if world > 1 and out is None:
        raise ValueError("a distributed run (torch.distributed initialised) writes to a store: pass out=")
    identity = {"format": STORE_FORMAT, "model": model.name, "weights_sha256": model_sha256(model), "layers": layers,
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
    never meets an earlier store, the layers, the pooling, the batching)."""
    ref_seqs, var_seqs, ref_index = windows
    positions = getattr(windows, "var_pos_in_window", None)
    identity = {"format": STORE_FORMAT, "sequences": sha256_lines([ref_seqs[j] for j in ref_index] + list(var_seqs)),
                "positions": None if positions is None else sha256_lines(map(str, positions)),
                "layers": list(layer_names), "pooling": pooling if pooling is None or isinstance(pooling, str)
                else list(pooling), "batch_size": batch_size, "chunk_size": chunk_size,
                "shared_prefix": shared_prefix}
    parse_poolings(pooling)  # refuses an unknown pooling before anything is named after it
    label = str(pooling) if pooling is None or isinstance(pooling, str) else "+".join(pooling)
    length = len(var_seqs[0]) if len(var_seqs) else 0
    return (f"{model.name}-{model_sha256(model)[:8]}_w{length}_n{len(var_seqs)}_{label.replace(':', '')}"
            f"_{sha256_json(identity)[:10]}")


def variant_features(model: Evo2Model, windows, layer_names: Sequence[str], pooling="position",
                     out: str | os.PathLike | None = None, positions: Sequence[int] | None = None,
                     shared_prefix: bool = True, **kwargs) -> dict[str, dict[str, np.ndarray]]:
    """Reference and variant features of each variant: {layer: {"ref": (N, d), "var": (N, d)}}.

    windows: ``evo2kit.data.variant_windows(...)`` output (or a ``(ref_seqs, var_seqs, ref_index)``
    tuple with explicit ``positions``). 'position' / 'window:k' pooling defaults to the variant's
    index in its window (``windows.var_pos_in_window``). One ``extract`` call over the N reference
    rows and the N variant rows: shared reference windows are computed once. In a store, rows
    0..N-1 are the references and N..2N-1 the variants. ``kwargs`` go to :func:`extract`.

    ``shared_prefix`` (default): each variant window continues its reference window's state
    from the first base where they differ (the SNV), so only its suffix is run; equal to
    whole windows up to float rounding. Variants that share fewer than ``min_shared`` (a kwarg,
    default ``evo2kit.prefix.MIN_SHARED``) leading bases with their reference window (near the
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


def output_dir() -> Path:
    """Where notebooks leave files for later ones: ``$EVO2KIT_OUTPUT_DIR`` (the runner's
    ``build/<profile>``), else the cache folder (``evo2kit.data.cache_dir()``), never the folder a
    notebook runs in."""
    from .data import cache_dir

    d = os.environ.get("EVO2KIT_OUTPUT_DIR")
    return Path(d) if d else cache_dir()


@dataclass
class VariantEmbeddings:
    """Labelled SNVs with their reference- and variant-window features (notebooks 02 and 04)."""

    variants: pd.DataFrame  # the selected SNVs, index 0..N-1
    is_lof: np.ndarray  # (N,) int64: 1 for LOF, 0 for FUNC/INT
    windows: VariantWindows
    layers: list[str]
    features: dict[str, dict[str, np.ndarray]]  # {layer: {"ref": (N, d), "var": (N, d)}}
    store: Path


def brca1_embeddings(model: Evo2Model, window: int, n_variants: int | None = None, seed: int = 0,
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
    from .data import load_brca1, variant_windows
    from .zero_shot import stratified_subset

    df = stratified_subset(load_brca1(), n_variants, seed=seed).reset_index(drop=True)
    windows = variant_windows(df, window)
    blocks = range(model.config.num_layers) if layer_ids is None else layer_ids
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


# --------------------------------------------------------------------------- command line

def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see ``evo2kit.cli``)."""
    p = ArgumentParser(prog="evo2kit-embed", description=__doc__, epilog=exit_status_help({}),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="evo2kit-tiny", help="model name or Evo 2 YAML config")
    p.add_argument("--weights", help="checkpoint (.pt or .safetensors) for --model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", help="FASTA file: one row per record (ids name errors)")
    src.add_argument("--brca1", action="store_true",
                     help="BRCA1 variant windows: rows 0..N-1 references, N..2N-1 variants")
    src.add_argument("--verify", metavar="DIR", help="check the store in DIR (complete, every batch's checksum) "
                     "and exit: 0 if intact, 65 otherwise")
    p.add_argument("--window", type=int, default=8192, help="--brca1 window length (bp)")
    p.add_argument("--limit", type=int, help="--brca1: the first K variants only")
    p.add_argument("--whole-windows", action="store_true",
                   help="--brca1: run every variant window whole (default: continue its reference's state at the SNV)")
    p.add_argument("--position", type=int, help="--fasta with position/window pooling: token index in every record")
    p.add_argument("--layers", help="comma-separated layer names, or 'all' (required to extract)")
    p.add_argument("--pooling", default="mean", help="mean | last | position | window:k | none")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=8192)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--out", help="store directory (created, or resumed; required to extract)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    if args.verify is None:
        missing = [f"--{name}" for name in ("layers", "out") if getattr(args, name) is None]
        if missing:
            p.error(f"the following arguments are required to extract: {', '.join(missing)}")
        try:
            parse_pooling(None if args.pooling == "none" else args.pooling)
        except ValueError as e:
            p.error(f"--pooling: {e}")
    return run_main(p.prog, lambda: _verify_cli(args.verify) if args.verify else _extract_cli(args), args.debug)


def _verify_cli(out: str) -> int:
    manifest = verify(out)
    print(f"{out}: complete, {manifest['n_batches']} batches ({manifest['rows_done']} rows) match their checksums",
          file=sys.stderr)
    return 0


@contextlib.contextmanager
def torchrun_group():
    """Under ``torchrun`` (WORLD_SIZE > 1): the process group (nccl on CUDA, else gloo), destroyed
    at the end. Yields this rank's device ("cuda:<LOCAL_RANK>"), or None for load_model's default."""
    device = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device else "gloo")
    try:
        yield device
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _extract_cli(args) -> int:
    with torchrun_group() as device:
        from . import load_model

        model = load_model(args.model, local_path=args.weights, device=device)
        layers = model.layer_names if args.layers == "all" else [s.strip() for s in args.layers.split(",")]
        common = dict(layer_names=layers, pooling=None if args.pooling == "none" else args.pooling,
                      batch_size=args.batch_size, out=args.out, dtype=args.dtype,
                      chunk_size=args.chunk_size, progress=True)
        if args.brca1:
            from .data import load_brca1, variant_windows

            df = load_brca1()
            windows = variant_windows(df.head(args.limit) if args.limit else df, args.window)
            feats = {k: v["var"] for k, v in variant_features(model, windows, shared_prefix=not args.whole_windows,
                                                               **common).items()}
            n = 2 * len(windows.var_seqs)
        else:
            from .data import read_fasta

            records = read_fasta(args.fasta)
            pos = None if args.position is None else [args.position] * len(records)
            feats = extract(model, list(records.values()), names=list(records), positions=pos, **common)
            n = len(records)
        if int(os.environ.get("RANK", "0")) == 0:
            shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in feats.items())
            print(f"{args.out}: {n} rows of {len(feats)} layer(s): {shapes}", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
