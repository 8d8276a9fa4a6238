"""A resumable on-disk store of features, one writer at a time.

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
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch.distributed as dist
from numpy.lib.format import open_memmap

from evo2kit.cli import BusyError, DataError
from evo2kit.files import atomic_write, sha256_json

MANIFEST = "manifest.json"
LOCK = ".lock"
BATCHES = "batches.npy"
STORE_FORMAT = 2
"""Version of the store layout (2: per-batch checksums, ``batches.npy``); part of a store's identity."""
IDENTITY = ("format", "model", "weights_sha256", "fp8", "layers", "pooling", "dtype", "n_sequences",
            "sequences_sha256", "positions_sha256", "batch_size", "chunk_size", "shared_prefix")
"""Manifest fields that must match for a store to be resumed (``shared_prefix`` is None, as in
stores written before it existed, unless rows continue other rows' states; ``fp8`` is None, as in
stores written before it existed, unless the model has FP8 input projections)."""




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
