"""Sampling DNA: batched, cached decoding of many continuations of several prompts.

    settings = SamplingSettings(temperature=0.7, top_k=4, top_p=1.0)
    tokens, logprobs = sample_tokens(model, [prompt_ids, ...], n_tokens=500, settings=settings,
                                     seed=0, n_samples=50)

1. Prompts of one length are prefilled together, once (one stateful forward).
2. The state is expanded to ``n_samples`` rows per prompt (``InferenceState.expand``): the Hyena
   states copied (a few hundred KB a row at most), the prompt's attention keys and values shared.
3. Then one token a step for all rows at once: the last position's logits of A, C, G, T, filtered
   as Evo 2 filters them (vortex ``sample``: top-k, then temperature, then top-p), one draw each.

Evo 2's semantics where they are defined (``evo2.Evo2.generate``: ``n_tokens=500``,
``temperature=1.0``, ``top_k=4``, ``top_p=1.0``): top-k keeps the k likeliest bases (ties kept),
top-p then drops the unlikeliest bases whose probabilities sum to at most 1 - top_p, and
temperature 0 or top_k 1 is greedy (the likeliest base). Unlike vortex, which ranks all 512 byte
tokens, only A, C, G and T are ever drawn (a trained Evo 2 puts almost all its mass on them).
The log-probabilities returned are vortex's: of the drawn base under the model's own distribution
over the whole vocabulary, before any filtering.

Draws: sample j of prompt i reads its own stream of uniforms (``numpy.random.default_rng([seed,
i, j])``), one a step, turned into a base by the inverse of the filtered distribution's CDF. So a
sample does not depend on which other samples share its batch, nor on ``batch_size``; only float
rounding of the logits in a different batch shape could move a draw, and only when its uniform
falls within rounding of a step of the CDF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evo2kit.model.state import InferenceState
from evo2kit.model.striped_hyena import StripedHyena2

BASES = "ACGT"
BASE_IDS = [ord(b) for b in BASES]  # the byte tokens of A, C, G, T (CharLevelTokenizer)


@dataclass(frozen=True)
class SamplingSettings:
    """temperature >= 0 (0: greedy); top_k 0 (all four bases) or 1..4; top_p in (0, 1] (1: off)."""

    temperature: float = 1.0
    top_k: int = 4
    top_p: float = 1.0

    def __post_init__(self):
        t, k, p = self.temperature, self.top_k, self.top_p
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < math.inf:
            raise ValueError(f"temperature must be a finite number >= 0 (0: always the likeliest base), got {t!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= 4:
            raise ValueError(f"top_k must be an int from 0 to 4 (0 or None: all four bases), got {k!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"top_p must be a number in (0, 1] (1: no nucleus filtering), got {p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


def base_probabilities(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """The distribution a base is drawn from: logits (B, 4) of A, C, G, T -> (B, 4) float64
    probabilities after top-k, temperature and top-p (one-hot at the likeliest base when greedy)."""
    x = logits.double()
    if settings.greedy:
        return torch.nn.functional.one_hot(x.argmax(-1), 4).double()
    if 0 < settings.top_k < 4:  # as vortex: every base below the k-th largest logit goes, ties stay
        x = x.masked_fill(x < x.topk(settings.top_k, -1).values[:, -1:], -math.inf)
    x = x / settings.temperature
    if settings.top_p < 1:  # as vortex: drop the unlikeliest bases whose mass sums to <= 1 - top_p
        ascending, order = x.sort(-1)
        drop = ascending.softmax(-1).cumsum(-1) <= 1 - settings.top_p
        x = x.masked_fill(drop.scatter(1, order, drop), -math.inf)
    return x.softmax(-1)


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws: probs (B, 4), uniforms (B,) in [0, 1) -> (B,) base indices 0..3. A base of
    probability 0 is never drawn."""
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf, (uniforms.to(cdf) * cdf[:, -1])[:, None], right=True)[:, 0]
    last_possible = 3 - (probs.flip(-1) > 0).int().argmax(-1)  # guards the rounding of u * total
    return torch.minimum(idx, last_possible)


def uniform_streams(seed: int, rows: list[tuple[int, int]], n: int) -> np.ndarray:
    """(len(rows), n) float64 uniforms: row (prompt i, sample j) is ``default_rng([seed, i, j])``'s
    first n, whatever batch it is decoded in."""
    return np.stack([np.random.default_rng([seed, i, j]).random(n) for i, j in rows]) if rows else np.zeros((0, n))


def last_logits(model: StripedHyena2, ids: torch.Tensor, state: InferenceState | None = None) -> torch.Tensor:
    """ids (B, L) continuing ``state`` (None: a plain forward) -> the last position's logits (B, vocab),
    without the (B, L, vocab) logits of the other positions."""
    return model.unembed(model.hidden_states(ids, state)[:, -1:])[:, 0]


def _blocks(group: list[int], n_samples: int, batch_size: int | None) -> list[tuple[list[int], range]]:
    """Rows decoded together, as (prompts of the group, their sample indices), at most ``batch_size`` rows."""
    if batch_size is None or len(group) * n_samples <= batch_size:
        return [(group, range(n_samples))]
    if n_samples <= batch_size:
        per = batch_size // n_samples
        return [(group[i:i + per], range(n_samples)) for i in range(0, len(group), per)]
    return [([p], range(j, min(j + batch_size, n_samples))) for p in group for j in range(0, n_samples, batch_size)]


@torch.no_grad()
def sample_tokens(model: StripedHyena2, prompts: list[list[int]], n_tokens: int, settings: SamplingSettings,
                  seed: int, n_samples: int = 1, batch_size: int | None = None,
                  cached: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_samples`` continuations of ``n_tokens`` bases for each prompt (token ids, each non-empty).

    Returns (tokens (N, n_tokens) int64, logprobs (N, n_tokens) float32) on the CPU, N =
    len(prompts) * n_samples, prompt-major: row i * n_samples + j is sample j of prompt i.
    ``batch_size``: most rows decoded at once (None: all samples of all prompts of one length).
    ``cached=False`` recomputes the whole prefix at every step instead of carrying the state (the
    plain reference: same draws, same bases up to float rounding; quadratic in the length)."""
    N = len(prompts) * n_samples
    tokens = torch.empty(N, n_tokens, dtype=torch.long)
    logprobs = torch.empty(N, n_tokens)
    device = model.embedding_layer.weight.device
    bases = torch.tensor(BASE_IDS, device=device)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for group in by_length.values():
        ids = torch.tensor([prompts[i] for i in group], device=device)
        state = model.new_state() if cached else None
        logits = last_logits(model, ids, state) if cached else None
        for block, samples in _blocks(group, n_samples, batch_size):
            rows = [(i, j) for i in block for j in samples]
            u = torch.from_numpy(uniform_streams(seed, rows, n_tokens)).to(device)
            at = torch.tensor([group.index(i) for i in block])
            if cached:
                whole = len(block) == len(group)
                block_state = (state if whole else state.select(at)).expand(len(samples))
                block_state.reserve(n_tokens)
                first = (logits if whole else logits[at.to(device)]).repeat_interleave(len(samples), 0)
                toks, lps = _decode_cached(model, block_state, first, u, settings, bases)
            else:
                toks, lps = _decode_recomputed(model, ids[at.to(device)].repeat_interleave(len(samples), 0), u,
                                               settings, bases)
            out = torch.tensor([i * n_samples + j for i, j in rows])
            tokens[out], logprobs[out] = toks.cpu(), lps.cpu()
    return tokens, logprobs


def _step(logits: torch.Tensor, u: torch.Tensor, settings: SamplingSettings,
          bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per row from the last logits (B, vocab) -> (token ids (B,), their log-probabilities)."""
    choice = bases[draw(base_probabilities(logits[:, bases], settings), u)]
    return choice, torch.log_softmax(logits.float(), -1).gather(1, choice[:, None])[:, 0]


def _decode_cached(model, state, logits, u, settings, bases):
    B, n = u.shape
    toks = torch.empty(B, n, dtype=torch.long, device=logits.device)
    lps = torch.empty(B, n, device=logits.device)
    for t in range(n):
        toks[:, t], lps[:, t] = _step(logits, u[:, t], settings, bases)
        if t + 1 < n:
            logits = last_logits(model, toks[:, t:t + 1], state)
    return toks, lps


def _decode_recomputed(model, ids, u, settings, bases):
    B, n = u.shape
    lps = torch.empty(B, n, device=ids.device)
    for t in range(n):
        choice, lps[:, t] = _step(last_logits(model, ids), u[:, t], settings, bases)
        ids = torch.cat([ids, choice[:, None]], 1)
    return ids[:, -n:], lps
