"""What the chunked forward carries from one chunk to the next: one typed object per block.

    HyenaState  HCS / HCM   the short FIR's tail and the inner filter's tail
    ModalState  HCL         the short FIR's tail and the modal state of the long filter
    KVCache     ATTN        the rotated keys and the values seen so far

A forward *replaces* a state's tensors and never writes into them, so a snapshot that shares
them stays as it was. Each field is None until the block's first chunk. Shapes: B batch,
D hidden size, S state size, H heads, T positions seen, hd head size, K a filter's length.
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
    """Attention. k, v: (B, H, T, hd), keys after the rotary embedding."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """T, the positions cached (the next chunk's first position)."""
        return 0 if self.k is None else self.k.shape[2]


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

    def to(self, device: torch.device | str) -> "InferenceState":
        """Every block's state on ``device``."""
        return InferenceState([b.to(device) for b in self.blocks], self.offset)
