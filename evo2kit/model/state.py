"""What the chunked forward carries from one chunk to the next: one typed object per block.

    HyenaState  HCS / HCM   the short FIR's tail and the inner filter's tail
    ModalState  HCL         the short FIR's tail and the modal state of the long filter
    KVCache     ATTN        the rotated keys and the values seen so far

A forward *replaces* a state's tensors and never writes into them, so a snapshot that shares
them stays as it was (the one exception, a K/V cache's reserved room, is written only past the
positions any snapshot holds: see ``KVCache.reserve``). Each field is None until the block's first
chunk. Shapes: B batch, D hidden size, S state size, H heads, T positions seen, hd head size, K a
filter's length, G groups of rows sharing a prefix.

Sampling many continuations of one prompt (``evo2kit.model.sampling``) prefills the prompt once and
``expand``s the state: each row repeated, the Hyena states copied (a few hundred KB a row at most),
the prompt's keys and values kept once and shared by the rows that continue it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import torch

S = TypeVar("S", bound="BlockState")


@dataclass
class BlockState:
    """The operations every block's state shares; subclasses only name their tensors."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors held so far, by field name."""
        return {f.name: t for f in dataclasses.fields(self) if (t := getattr(self, f.name)) is not None}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def snapshot(self: S) -> S:
        """This state as it is now; shares the tensors (a forward replaces them, see above)."""
        return dataclasses.replace(self)

    def select(self: S, rows: torch.Tensor) -> S:
        """The states of batch rows ``rows`` (int64, repeats allowed), as a new batch in that order."""
        return dataclasses.replace(self, **{n: t.index_select(0, rows.to(t.device)) for n, t in self.tensors().items()})

    def expand(self: S, n: int) -> S:
        """Each batch row ``n`` times in a row (rows 0, 0, .., 1, 1, ..): the state ``n`` samples of
        each row continue from."""
        held = list(self.tensors().values())
        if not held:
            return dataclasses.replace(self)
        return self.select(torch.arange(held[0].shape[0]).repeat_interleave(n))

    def to(self: S, device: torch.device | str) -> S:
        return dataclasses.replace(self, **{n: t.to(device) for n, t in self.tensors().items()})


@dataclass
class HyenaState(BlockState):
    """HCS / HCM. fir: (B, 3D, K_short - 1) the last projected inputs of the short FIR;
    inner: (B, D, K - 1) the last gated inputs u = x1 * v of the explicit filter."""

    fir: torch.Tensor | None = None
    inner: torch.Tensor | None = None


@dataclass
class ModalState(BlockState):
    """HCL. fir: as in ``HyenaState``; modal: (B, D, S) float32, s = sum_{i < now} p^(now-1-i) u[i]
    with p = exp(log_poles), all the long filter needs of the past."""

    fir: torch.Tensor | None = None
    modal: torch.Tensor | None = None


@dataclass
class KVCache(BlockState):
    """Attention. k, v: (B, H, T, hd), keys after the rotary embedding. prefix_k, prefix_v:
    (G, H, P, hd) or None, the keys and values of the P positions before k's, shared by each run
    of B / G consecutive rows (row b reads prefix b // (B / G)): a prompt's, kept once however many
    samples continue it (``expand``)."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    prefix_k: torch.Tensor | None = None
    prefix_v: torch.Tensor | None = None

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix_k is None else self.prefix_k.shape[2]

    @property
    def own_length(self) -> int:
        """T, the positions held per row (after the shared prefix)."""
        return 0 if self.k is None else self.k.shape[2]

    @property
    def length(self) -> int:
        """P + T, the positions cached (the next chunk's first position)."""
        return self.prefix_length + self.own_length

    @property
    def nbytes(self) -> int:
        room = getattr(self, "_room", None)  # reserved room counts whole: it is allocated
        own = [self.prefix_k, self.prefix_v] + (list(room) if room is not None else [self.k, self.v])
        return sum(t.numel() * t.element_size() for t in own if t is not None)

    def expand(self, n: int) -> "KVCache":
        """Each row ``n`` times in a row; the keys and values so far become (or stay) the shared
        prefix, not copied; only the rows' own positions after a prefix are."""
        if self.k is None:
            return dataclasses.replace(self)
        if self.prefix_k is None:
            empty = self.k[:, :, :0].repeat_interleave(n, 0)
            return KVCache(empty, empty.clone(), self.k, self.v)
        return dataclasses.replace(self, k=self.k.repeat_interleave(n, 0), v=self.v.repeat_interleave(n, 0))

    def select(self, rows: torch.Tensor) -> "KVCache":
        """As ``BlockState.select``; the shared prefix is copied into the chosen rows (any rows may
        be picked, so they no longer share it by group)."""
        if self.prefix_k is None:
            return super().select(rows)
        per_group = self.k.shape[0] // self.prefix_k.shape[0]
        group = torch.arange(self.k.shape[0]) // per_group
        return KVCache(torch.cat([self.prefix_k[group], self.k], 2),
                       torch.cat([self.prefix_v[group], self.v], 2)).select(rows)

    def reserve(self, extra: int) -> None:
        """Room for ``extra`` more positions per row, so that appending writes in place instead of
        copying the whole cache at every step (decoding one token at a time). The room belongs to
        this object alone: a snapshot, selection or move gets none, and the room is written only
        past this cache's positions, so the views a snapshot holds never change."""
        if self.k is None:
            raise ValueError("reserve needs a cache that has seen a chunk (prefill first)")
        B, H, T, hd = self.k.shape
        room = [self.k.new_empty(B, H, T + extra, hd) for _ in range(2)]
        for buffer, have in zip(room, (self.k, self.v)):
            buffer[:, :, :T] = have
        self._room = tuple(room)
        self.k, self.v = room[0][:, :, :T], room[1][:, :, :T]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Add the positions of a chunk, k, v: (B, H, L, hd), after the cached ones: in the reserved
        room while it lasts, else as new tensors."""
        if self.k is None:
            self.k, self.v = k, v
            return
        T, L = self.own_length, k.shape[2]
        room = getattr(self, "_room", None)
        if room is not None and room[0].shape[2] >= T + L and room[0][:, :, :T].data_ptr() == self.k.data_ptr():
            room[0][:, :, T:T + L], room[1][:, :, T:T + L] = k, v
            self.k, self.v = room[0][:, :, :T + L], room[1][:, :, :T + L]
        else:
            self.k, self.v = torch.cat([self.k, k], 2), torch.cat([self.v, v], 2)


@dataclass
class InferenceState:
    """The state of every block (block i's on block i's device) and the positions consumed."""

    blocks: list[BlockState]
    offset: int = 0

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)

    def snapshot(self) -> "InferenceState":
        """This state as it is now, unchanged by later forwards (free: shares the tensors)."""
        return InferenceState([b.snapshot() for b in self.blocks], self.offset)

    def select(self, rows: torch.Tensor | list[int]) -> "InferenceState":
        """The state of batch rows ``rows`` (repeats allowed), as a new batch in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return InferenceState([b.select(rows) for b in self.blocks], self.offset)

    def expand(self, n: int) -> "InferenceState":
        """Each batch row ``n`` times in a row, for ``n`` samples of each: Hyena states copied,
        attention keys and values shared (``KVCache.expand``)."""
        return InferenceState([b.expand(n) for b in self.blocks], self.offset)

    def reserve(self, extra: int) -> None:
        """Room in every K/V cache for ``extra`` more positions (``KVCache.reserve``)."""
        for b in self.blocks:
            if isinstance(b, KVCache):
                b.reserve(extra)

    def nbytes_by_kind(self) -> dict[str, int]:
        """Bytes held by the attention caches ('attention') and by the Hyena states ('hyena')."""
        attention = sum(b.nbytes for b in self.blocks if isinstance(b, KVCache))
        return {"attention": attention, "hyena": self.nbytes - attention}

    def to(self, device: torch.device | str) -> "InferenceState":
        """Every block's state on ``device``."""
        return InferenceState([b.to(device) for b in self.blocks], self.offset)
