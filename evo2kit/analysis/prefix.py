"""Prefix-shared passes: a variant window that begins like its reference window continues from
the model's state there instead of being run whole.

Evo 2 is causal: at every position before a variant's SNV, the variant window holds exactly the
tokens of its reference window, so its logits and hidden states there are the reference's. One
pass over each reference window, cut at the SNV offsets its variants need (the chunked forward
carries the FIR tails, the modal state and the K/V cache across the cut), gives those states;
each variant then runs only from its SNV to the end of its window, continuing that state. For
windows centred on their SNVs this forwards (R + N/2) windows instead of (R + N) (R reference
windows, N variants); the results equal whole-window passes up to float rounding (the chunked
forward's, ~1e-6 in float32).

A variant shares the common prefix of its window and its reference window (``shared_length``):
the SNV's index for an SNV, and the stretch before the change for an indel whose window keeps
its reference window's start. It falls back to a whole-window pass when that prefix is shorter
than ``min_shared`` tokens (a variant near the window start, or a window re-centred on an indel,
which shares nothing), or when the prefix is the whole variant window.

    units = schedule(lengths, parent, shared, batch_size)      # list of units, each a list of Pass
    kept = {}
    for p in unit:
        ids, lengths = encode(model, seqs, p)
        kept = run_pass(model, ids, p, kept, chunk_size, on_logits) or kept

Callers: ``evo2kit.analysis.zero_shot.delta_likelihood`` (scores) and ``evo2kit.analysis.embeddings.extract`` (pooled
or per-token embeddings, with the resumable store and torchrun sharding).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import torch

MIN_SHARED = 64
"""Default shortest shared prefix (tokens) worth continuing from: below it a variant runs whole."""


def shared_length(ref: str, var: str) -> int:
    """Tokens at the start of ``var`` equal to the start of ``ref`` (their common prefix)."""
    return len(os.path.commonprefix([ref, var]))


@dataclass
class Pass:
    """One batched forward of a unit of work.

    seqs: indices of the caller's sequences, one per batch row.
    start: 0 (from the start of each sequence) or the offset every row continues from: row j
        continues the state that row ``source[j]`` of the unit's first pass reached there.
    keep: offsets at which the first pass keeps its state for the passes after it.
    """

    seqs: list[int]
    start: int = 0
    source: list[int] = field(default_factory=list)
    keep: list[int] = field(default_factory=list)


def sharing(lengths: Sequence[int], parent: Sequence[int], shared: Sequence[int],
            min_shared: int = MIN_SHARED) -> list[int]:
    """``parent`` with -1 where sharing does not pay: a prefix shorter than ``min_shared``, or
    the whole sequence (nothing would be left to run)."""
    return [q if q >= 0 and min_shared <= s < n and s >= 1 else -1
            for q, s, n in zip(parent, shared, lengths)]


def schedule(lengths: Sequence[int], parent: Sequence[int], shared: Sequence[int],
             batch_size: int) -> list[list[Pass]]:
    """Units of work over sequences 0..n-1: a list of passes each, run in order.

    parent[u]: -1 (run from the start), or the sequence whose state u continues at offset
    ``shared[u]`` (a parent is never a child itself). A parent is batched with other parents
    (longest first, ``batch_size`` per pass); its unit then runs each of its children, grouped
    by offset, ``batch_size`` per pass, so the states it keeps live for one unit only. Sequences
    with neither parent nor children are batched as before, one pass per unit.
    """
    children: dict[int, list[int]] = {}
    for u, q in enumerate(parent):
        if q >= 0:
            if parent[q] >= 0:
                raise ValueError(f"sequence {q} continues sequence {parent[q]} and cannot be continued itself")
            children.setdefault(q, []).append(u)
    longest = lambda us: sorted(us, key=lambda u: -lengths[u])  # noqa: E731
    batches = lambda us: [us[i:i + batch_size] for i in range(0, len(us), batch_size)]  # noqa: E731
    units = []
    for roots in batches(longest(children)):
        row = {u: j for j, u in enumerate(roots)}
        by_offset: dict[int, list[int]] = {}
        for u in roots:
            for c in children[u]:
                by_offset.setdefault(shared[c], []).append(c)
        unit = [Pass(roots, keep=sorted(by_offset))]
        for p in sorted(by_offset):
            for cs in batches(longest(by_offset[p])):
                unit.append(Pass(cs, start=p, source=[row[parent[c]] for c in cs]))
        units.append(unit)
    alone = [u for u in range(len(lengths)) if parent[u] < 0 and u not in children]
    units += [[Pass(us)] for us in batches(longest(alone))]
    return units


def encode(model, seqs: Sequence[str], p: Pass, names: Sequence[str] | None = None) -> tuple[torch.Tensor, list[int]]:
    """Token ids (B, L) of the pass's rows from ``p.start`` on (right-padded), and their lengths."""
    ids, lengths = model.tokenizer.encode_batch([seqs[u][p.start:] for u in p.seqs],
                                                names=None if names is None else [names[u] for u in p.seqs])
    return ids, lengths.tolist()


def run_pass(model, ids: torch.Tensor, p: Pass, kept: dict, chunk_size: int | None = None,
             on_logits=None) -> dict:
    """Run one pass (``ids`` from :func:`encode`) on ``model`` (an ``Evo2Model``); returns the
    states it keeps ({offset: InferenceState}, empty for a continuing pass). ``kept``: the
    unit's first pass's states; ``on_logits(start, logits)`` as in ``StripedHyena2.forward_from``."""
    state = None if p.start == 0 else kept[p.start].select(p.source)
    return model.model.forward_from(ids.to(model.device), state, p.keep, chunk_size, on_logits)


def supports(model) -> bool:
    """Whether ``model`` runs prefix-shared passes (evo2kit's torch model; not evo2's vortex)."""
    return hasattr(getattr(model, "model", None), "forward_from") and hasattr(model, "tokenizer")


@contextmanager
def counting_tokens(model):
    """Count what ``model`` (an ``Evo2Model``) forwards inside the block: yields a dict whose
    "tokens" (token ids, padding included) and "forwards" (calls) grow as it runs."""
    seen = {"tokens": 0, "forwards": 0}

    def hook(_module, args):
        seen["tokens"] += args[0].numel()
        seen["forwards"] += 1

    handle = model.model.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
