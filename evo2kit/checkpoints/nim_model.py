"""EXPERIMENTAL. An Evo 2 served by NVIDIA NIM, shaped like ``Evo2Model`` (``load_model(name, backend="nim")``).

    model = evo2kit.load_model("evo2_40b", backend="nim")        # the hosted API; key from NVIDIA_API_KEY
    model.score_sequences(["ACGT...", ...])                        # as every backend: mean log-likelihood
    (logits, _), emb = model(ids, return_embeddings=True, layer_names=["blocks.20.mlp.l3"])

Scores are computed here from the served logits exactly as ``Evo2Model.score_sequences`` computes them
(log-softmax in float32, position i predicts base i + 1, the mean over the predicted bases), so the same
logits give the same scores. ``forward`` asks for the logits and the named layers of each row (small inputs:
each answer is L x 512 float64 values); the service takes DNA letters only, so a row holding special ids
(0, end of sequence) is refused, and padding (id 1, right of the bases) comes back as NaN: nothing is
computed there. ``model.model`` holds the served model's shapes on the meta device (no weights), so that
parameter counts and configs read as for the other backends. Before the first call of a scoring or a
forward, one line says how many calls and how many bytes it will cost (the cache's answers cost none).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from evo2kit.checkpoints.nim import BYTES_PER_LOGIT, LOGITS, VOCAB, NimClient
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2
from evo2kit.model.tokenizer import CharLevelTokenizer, reverse_complement, sequence_list


class ServedShapes(torch.nn.Module):
    """The served model's modules (``embedding_layer``, ``blocks``, ``norm``) on the meta device: parameter
    counts and names, no weights and no forward (so nothing mistakes it for a model to run here)."""

    def __init__(self, config: Evo2Config):
        super().__init__()
        with torch.device("meta"):
            shapes = StripedHyena2(config)
        self.config = config
        self.embedding_layer, self.blocks, self.norm = shapes.embedding_layer, shapes.blocks, shapes.norm
        self._num_params = shapes.num_params()

    def num_params(self) -> int:
        return self._num_params


@dataclass
class NimGeneration:
    """As ``evo2kit.api.GenerationOutput``: the generated bases and the mean log-probability of the
    sampled bases (natural log, from the service's ``sampled_probs``)."""

    sequences: list[str]
    logprobs_mean: list[float]


class NimModel:
    """EXPERIMENTAL. Evo 2 behind a NIM endpoint, with ``Evo2Model``'s ``score_sequences``, ``forward``,
    ``generate``, ``tokenizer``, ``config``, ``layer_names`` and ``digest`` (see the module docstring)."""

    remote = True  # no weights here: evo2kit.self_test judges it by its name, as a loaded checkpoint
    weights_sha256 = None
    load_report = None
    takes_token_ids = False  # DNA letters only: no end-of-sequence or padding ids reach the service

    def __init__(self, client: NimClient, config: Evo2Config, name: str):
        self.client, self.name = client, name
        self.model = ServedShapes(config)
        self.tokenizer = CharLevelTokenizer(512)
        self.device = torch.device("cpu")  # where the returned tensors are

    @property
    def config(self) -> Evo2Config:
        return self.model.config

    @property
    def layer_names(self) -> list[str]:
        return [f"blocks.{i}.mlp.l3" for i in range(self.config.num_layers)]

    def digest(self) -> str:
        """SHA-256 naming what serves the numbers: the endpoint and the model's name (caches key by it)."""
        return hashlib.sha256(f"nim {self.client.url} {self.name}".encode()).hexdigest()

    def __repr__(self) -> str:
        return f"NimModel({self.name!r} at {self.client.url}, dialect {self.client.dialect!r})"

    # -- cost -------------------------------------------------------------------------------------

    def announce(self, sequences: list[str], what: str, layers: int = 0) -> None:
        """Print what asking for ``sequences`` will cost, before the first call."""
        calls, cached, logit_bytes = self.client.plan(sequences, "loglik" if what == "scores" else LOGITS)
        if not calls:
            return
        extra = sum(len(s) for s in sequences) * layers * self.config.hidden_size * BYTES_PER_LOGIT
        mib = (logit_bytes + extra) * 4 / 3 / 2**20  # base64
        minutes = calls * self.client.min_interval_s / 60
        print(f"NIM ({self.client.url}): {what} of {len(sequences)} sequence(s): {calls} call(s), {cached} answer(s) "
              f"from the cache; up to {mib:,.1f} MiB to download"
              + (f"; at least {minutes:.1f} min at the rate limit" if minutes >= 0.1 else ""), flush=True)

    # -- scoring ----------------------------------------------------------------------------------

    def score_sequences(self, seqs: list[str], batch_size: int = 1, prepend_bos: bool = False,
                        reduce_method: str = "mean", average_reverse_complement: bool = False) -> list[float]:
        """Log-likelihood of each sequence (natural log): the mean (or sum) over its predicted bases, as
        ``Evo2Model.score_sequences``. ``batch_size`` is accepted for the common interface (the service
        takes one sequence a request); ``prepend_bos`` cannot be served (no end-of-sequence id goes out)."""
        if reduce_method not in ("mean", "sum"):
            raise ValueError(f"reduce_method must be 'mean' or 'sum', not {reduce_method!r}")
        if prepend_bos:
            raise ValueError("prepend_bos=True cannot be served: the NIM service takes DNA letters only")
        seqs = sequence_list(seqs)
        for i, s in enumerate(seqs):
            self.tokenizer.tokenize(s, name=f"seqs[{i}]")  # a bad letter fails here, naming where
            if len(s) < 2:
                raise ValueError(f"seqs[{i}] has {len(s)} base(s): a score needs at least 2 (the first base is "
                                 "not predicted)")
        seqs = [s.upper() for s in seqs]
        todo = seqs + ([reverse_complement(s) for s in seqs] if average_reverse_complement else [])
        self.announce(todo, "scores")
        per_base = self.client.log_likelihoods(todo)
        scores = [float(torch.from_numpy(lp).double().sum() if reduce_method == "sum"
                        else torch.from_numpy(lp).double().mean()) for lp in per_base]
        if average_reverse_complement:
            n = len(seqs)
            scores = [(a + b) / 2 for a, b in zip(scores[:n], scores[n:])]
        return scores

    # -- forward ----------------------------------------------------------------------------------

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, return_embeddings: bool = False, layer_names=None,
                chunk_size: int | None = None):
        """input_ids (B, L) -> ``((logits (B, L, 512) float32,), embeddings {layer: (B, L, d)} or None)``,
        as ``Evo2Model.forward``, one request a row. Padding (id 1 after a row's bases) is NaN; any other
        id that is not a letter is refused. ``chunk_size`` is accepted and ignored (the service runs whole
        sequences)."""
        if return_embeddings and not layer_names:
            raise ValueError(f"layer_names must be given when return_embeddings=True, e.g. {self.layer_names[:2]}")
        names = list(layer_names) if return_embeddings else []
        rows = [self._row_sequence(row, b) for b, row in enumerate(input_ids.cpu().tolist())]
        self.announce([s for s in rows if s], "forward", layers=len(names))
        answers = self.client.map(lambda s: self.client.forward(s, [LOGITS, *names]), rows)
        B, L = input_ids.shape
        out = {name: torch.full((B, L, VOCAB if name == LOGITS else answers[0][name].shape[1]), math.nan)
               for name in [LOGITS, *names]}
        for b, (seq, got) in enumerate(zip(rows, answers)):
            for name, a in got.items():
                out[name][b, :len(seq)] = torch.from_numpy(a)
        return (out[LOGITS],), ({n: out[n] for n in names} if return_embeddings else None)

    __call__ = forward

    def _row_sequence(self, row: list[int], b: int) -> str:
        """The bases of one row of token ids: trailing padding dropped; other special ids refused."""
        n = len(row)
        while n and row[n - 1] == self.tokenizer.pad_id:
            n -= 1
        bad = next((i for i, t in enumerate(row[:n]) if not (65 <= t <= 122)), None)
        if bad is not None:
            raise ValueError(f"row {b} holds token id {row[bad]} at position {bad}: the NIM service takes DNA "
                             "letters only (no end-of-sequence, padding inside a row, or other special ids)")
        if n < 1:
            raise ValueError(f"row {b} holds no bases")
        return self.tokenizer.detokenize(row[:n]).upper()

    # -- generation -------------------------------------------------------------------------------

    def generate(self, prompt_seqs: list[str], n_tokens: int = 500, temperature: float = 1.0, top_k: int = 4,
                 seed: int | None = None) -> NimGeneration:
        """Sample ``n_tokens`` bases after each prompt with the service's ``/generate``; ``logprobs_mean``:
        the mean natural log of the service's sampled probabilities."""
        seqs, means = [], []
        for prompt in sequence_list(prompt_seqs):
            generated, probs = self.client.generate(prompt.upper(), n_tokens, temperature, top_k, seed)
            seqs.append(generated)
            means.append(float(np.mean(np.log(probs))) if probs else float("nan"))
        return NimGeneration(seqs, means)
