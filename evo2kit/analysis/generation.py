"""Judging generated DNA: identity to the true continuation, baselines that need no model, and the
diversity of samples.

Identity is that of the Evo 2 repository's generation notebook
(ArcInstitute/evo2 ``notebooks/generation/generation_notebook.ipynb``): a global alignment of the
generated and the true continuation (match 2, mismatch -1, gap open -0.5, gap extend -0.1; there
with Biopython's deprecated ``pairwise2.align.globalms``, here with ``PairwiseAligner``, the same
scores), then identical aligned columns as a % of the true continuation's length. Gaps are cheap in
that scoring, so two unrelated sequences already align well above 25%: read it against the
baselines.

    prompts = arc_prompts()                      # the 4 sequences of Evo 2's own tests
    continuation_identity(generated, truth)      # % of the truth matched
    markov_continuation(prompt, n, order, rng)   # a baseline that read only the prompt
"""

from __future__ import annotations

import functools
import math
from collections import Counter

import numpy as np
import pandas as pd

ARC_PROMPTS = {  # Name in prompts.csv -> (short label, what the sequence is)
    "L1RE2": ("l1re2", "human LINE-1 retrotransposon L1RE2 (thousands of copies in the human genome)"),
    "ECOLAC": ("ecolac", "E. coli lac operon region"),
    "NC_007596.2Mammuthusprimigeniusmitochondrion": ("mammoth_mt", "woolly mammoth mitochondrion (NC_007596.2)"),
    "NC_012920.1_homosapiens_mitochondrion": ("human_mt", "human mitochondrion (NC_012920.1)"),
}


def arc_prompts() -> pd.DataFrame:
    """Evo 2's 4 test sequences (dataset ``evo2_prompts``, read as the self-test reads it):
    columns name, label, what, sequence (upper case)."""
    from evo2kit.checkpoints.self_test import read_prompts

    rows = read_prompts()
    unknown = sorted({name for name, _ in rows} - set(ARC_PROMPTS))
    if unknown:
        raise ValueError(f"evo2_prompts has sequences this module does not know: {unknown}")
    return pd.DataFrame({"name": [n for n, _ in rows], "label": [ARC_PROMPTS[n][0] for n, _ in rows],
                         "what": [ARC_PROMPTS[n][1] for n, _ in rows], "sequence": [q.upper() for _, q in rows]})


@functools.cache
def dna_aligner():
    """Global alignment with the generation notebook's scores: match 2, mismatch -1, gap open -0.5,
    extend -0.1 (end gaps scored like others, as ``pairwise2.align.globalms`` does)."""
    from Bio.Align import PairwiseAligner

    aligner = PairwiseAligner()
    aligner.mode = "global"
    aligner.match_score, aligner.mismatch_score = 2, -1
    aligner.open_gap_score, aligner.extend_gap_score = -0.5, -0.1
    return aligner


def continuation_identity(generated: str, truth: str) -> float:
    """% of ``truth``'s length matched by identical columns in the best global alignment of
    ``generated`` to it (the generation notebook's "similarity")."""
    if not generated or not truth:
        raise ValueError(f"continuation_identity needs two non-empty sequences, got lengths {len(generated)} "
                         f"and {len(truth)}")
    gen_row, truth_row = dna_aligner().align(generated, truth)[0].indices
    matches = sum(1 for g, t in zip(gen_row, truth_row) if g >= 0 and t >= 0 and generated[g] == truth[t])
    return 100.0 * matches / len(truth)


def markov_continuation(prompt: str, n: int, order: int, rng: np.random.Generator) -> str:
    """``n`` bases from a Markov chain of ``order`` fitted on ``prompt`` (counts + 1 pseudo-count per base),
    started from the prompt's last ``order`` bases: what a model learns from the prompt alone."""
    counts: dict[str, Counter] = {}
    for i in range(order, len(prompt)):
        counts.setdefault(prompt[i - order:i], Counter())[prompt[i]] += 1
    context, out = prompt[len(prompt) - order:] if order else "", []
    for _ in range(n):
        seen = counts.get(context, Counter())
        weights = np.array([seen[b] + 1.0 for b in "ACGT"])
        out.append("ACGT"[rng.choice(4, p=weights / weights.sum())])
        context = (context + out[-1])[1:] if order else ""
    return "".join(out)


def shuffled(seq: str, rng: np.random.Generator) -> str:
    """``seq``'s bases in a random order: the same composition, no order."""
    return "".join(rng.permutation(list(seq)))


def kmer_entropy(seq: str, k: int = 3) -> float:
    """Shannon entropy of the k-mer frequencies of ``seq``, in bits per k-mer, over its 2k maximum
    (1: all 4^k k-mers equally often; low: a few k-mers repeated)."""
    counts = np.array(list(Counter(seq[i:i + k] for i in range(len(seq) - k + 1)).values()), float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() / (2 * k))


def repeat_fraction(seq: str, k: int = 12) -> float:
    """Share of the k-mers of ``seq`` that already occurred earlier in it: loops and tandem repeats,
    the failure of too greedy sampling (a random sequence of 500 bp: ~0 for k = 12)."""
    seen, repeated = set(), 0
    for i in range(len(seq) - k + 1):
        kmer = seq[i:i + k]
        repeated += kmer in seen
        seen.add(kmer)
    return repeated / max(1, len(seq) - k + 1)


def mean_pairwise_identity(samples: list[str]) -> float:
    """Mean ``continuation_identity`` over the pairs of samples: how alike the samples of one prompt
    are (100 - it is their diversity, on the same scale as identity to the truth)."""
    pairs = [(a, b) for i, a in enumerate(samples) for b in samples[i + 1:]]
    if not pairs:
        return math.nan
    return float(np.mean([continuation_identity(a, b) for a, b in pairs]))


def score_continuations(truths: list[str], generated: list[str], prompts: list[str], labels: list[str],
                        markov_order: int, rng: np.random.Generator) -> pd.DataFrame:
    """Identity to the truth of each generated continuation and of as many draws of the two
    baselines: a Markov chain of ``markov_order`` fitted on the prompt, and the truth shuffled.

    ``generated`` holds n samples per prompt, prompt-major (``Evo2Model.generate``'s order). Returns
    one row per (label, source: 'model', 'Markov chain' or 'shuffled truth', draw) with ``identity`` (%)."""
    n = len(generated) // len(truths)
    rows = []
    for i, (truth, prompt, label) in enumerate(zip(truths, prompts, labels)):
        for j in range(n):
            rows += [{"label": label, "source": "model", "draw": j,
                      "identity": continuation_identity(generated[i * n + j], truth)},
                     {"label": label, "source": "Markov chain", "draw": j,
                      "identity": continuation_identity(markov_continuation(prompt, len(truth), markov_order, rng),
                                                        truth)},
                     {"label": label, "source": "shuffled truth", "draw": j,
                      "identity": continuation_identity(shuffled(truth, rng), truth)}]
    return pd.DataFrame(rows)


def sample_summary(samples: list[str], truth: str) -> dict[str, float]:
    """Identity to the truth (mean %), diversity (100 - mean pairwise identity), 3-mer entropy and
    12-mer repeat fraction (means) of the samples of one prompt."""
    return {"identity": float(np.mean([continuation_identity(s, truth) for s in samples])),
            "diversity": 100 - mean_pairwise_identity(samples),
            "kmer_entropy": float(np.mean([kmer_entropy(s) for s in samples])),
            "repeat_fraction": float(np.mean([repeat_fraction(s) for s in samples]))}
