"""Judging generated DNA (evo2kit.analysis.generation) and Evo 2's gene-completion benchmark
(evo2kit.analysis.gene_completion) on the real files of the Evo 2 repository."""

from __future__ import annotations

import re

import numpy as np
import pytest

from evo2kit.analysis import gene_completion as gc
from evo2kit.analysis import generation


def test_continuation_identity_is_the_notebooks_alignment_score():
    truth = "ACGTACGTAC" * 10
    assert generation.continuation_identity(truth, truth) == 100.0
    assert generation.continuation_identity(truth[:50], truth) == 50.0  # half the truth matched
    one_off = truth[:30] + ("A" if truth[30] != "A" else "C") + truth[31:]
    assert generation.continuation_identity(one_off, truth) == 99.0
    # cheap gaps: unrelated random sequences still align over most of their length
    rng = np.random.default_rng(0)
    a, b = ("".join(rng.choice(list("ACGT"), 500)) for _ in range(2))
    assert 50 < generation.continuation_identity(a, b) < 75
    with pytest.raises(ValueError, match="two non-empty sequences"):
        generation.continuation_identity("", truth)


def test_baselines_and_diversity_measures():
    rng = np.random.default_rng(1)
    prompt = "AAAAAAAAAC" * 30  # a Markov chain of order 3 learns "after AAA comes A, mostly"
    out = generation.markov_continuation(prompt, 400, 3, rng)
    assert len(out) == 400 and set(out) <= set("ACGT") and out.count("A") > 250
    assert sorted(generation.shuffled("AACGT", rng)) == sorted("AACGT")
    assert generation.repeat_fraction("ACGT" * 50, k=12) > 0.9
    assert generation.repeat_fraction("".join(rng.choice(list("ACGT"), 500)), k=12) < 0.02
    assert generation.kmer_entropy("A" * 100) == 0.0
    assert generation.kmer_entropy("".join(rng.choice(list("ACGT"), 5000))) > 0.99
    assert generation.mean_pairwise_identity(["ACGT" * 10] * 3) == 100.0


def test_arc_prompts(real_dir):
    prompts = generation.arc_prompts()
    assert list(prompts.label) == ["l1re2", "ecolac", "mammoth_mt", "human_mt"]
    assert list(prompts.sequence.str.len()) == [6538, 7056, 6160, 7616]
    assert all(set(s) <= set("ACGTN") for s in prompts.sequence)  # the human mitochondrion has one N (rCRS 3107)


def test_prokaryote_panel_prompts_and_the_true_completion_scores_100(real_dir):
    """Arc's prompts (1,000 bp upstream + 30% of the CDS in whole codons) and token budgets; the true
    sequence itself recovers 100%, a shuffled one far less; a completion that stops at once has no
    scored column (NaN), as in Arc's scoring."""
    tasks = gc.load_panel("prokaryote")
    assert [t.gene for t in tasks] == ["ftsZ", "secY", "dnaK", "gyrA"]
    for t in tasks:
        coding = len(t.truth) + len(t.prompt) - gc.PROK_UPSTREAM_LEN
        assert t.prompt_cut == round(coding / 3 * 0.3) and len(t.prompt) == gc.PROK_UPSTREAM_LEN + 3 * t.prompt_cut
        assert t.n_tokens == (len(t.reference_protein) - t.prompt_cut) * 3 + 150
        assert gc.translate_dna(t.prompt[gc.PROK_UPSTREAM_LEN:] + t.truth, to_stop=True) == \
            t.reference_protein.rstrip("*")
        assert gc.score(t, t.prompt + t.truth) == 100.0
    rng = np.random.default_rng(0)
    shuffled = gc.shuffled_completions(tasks, 20, rng)
    assert shuffled.aa_recovery.mean() < 60
    assert np.isnan(gc.score(tasks[0], tasks[0].prompt + "TAA" + tasks[0].truth))
    assert [t.gene for t in gc.load_panel("prokaryote", ["GYRA", "ftsz"])] == ["ftsZ", "gyrA"]
    with pytest.raises(ValueError, match=re.escape("no gene ['abcD'] in the prokaryote panel")):
        gc.load_panel("prokaryote", ["abcD"])


def test_reference_proteins_agree_with_their_fasta_files(real_dir):
    from Bio import SeqIO

    from evo2kit.data import registry

    for panel in gc.PANELS:
        fasta = {r.id: str(r.seq) for r in SeqIO.parse(registry.fetch(f"gene_completion_{panel}_ref"), "fasta")}
        import pandas as pd

        table = pd.read_csv(registry.fetch(f"gene_completion_{panel}_genes"))
        assert fasta == {g: p.strip() for g, p in zip(table.gene, table.reference_protein)}


def test_aligned_identity_counts_only_the_non_prompt_columns():
    ref = "MKTAYIAKQRQISFVKSHFSRQ"
    assert gc.aligned_identity_after(ref, ref, 10) == 100.0
    mutated = ref[:15] + "W" + ref[16:]  # one substitution beyond the prompt: 1 of 12 columns
    assert gc.aligned_identity_after(mutated, ref, 10) == pytest.approx(100 * 11 / 12)
    assert gc.aligned_identity_after(ref[:10], ref, 10) != gc.aligned_identity_after(ref[:10], ref, 10)  # NaN
    assert gc.positional_identity("ABCD", "ABXDEF") == 75.0


def test_published_recovery(real_dir):
    summary, per_gene = gc.published_recovery()
    assert summary.set_index("model").loc["evo2_7b", "prokaryote_mean"] == 78.67
    assert len(per_gene) == 4 * 12 and set(per_gene.panel) == {"prokaryote", "eukaryote"}


def test_exonerate_missing_is_one_clear_error():
    with pytest.raises(FileNotFoundError, match="apt-get install exonerate"):
        gc.find_exonerate("no-such-exonerate-here")


def test_eukaryote_panel_as_published_scores_nan_even_for_the_truth(real_dir):
    """With exonerate installed: every eukaryote window is 5,000 bp upstream + the gene's first part,
    so Arc's score (beyond residue prompt_len // 3) has no column, even for the true sequence."""
    try:
        gc.find_exonerate()
    except FileNotFoundError:
        pytest.skip("exonerate is not installed (apt-get install exonerate)")
    tasks = gc.load_panel("eukaryote")
    assert len(tasks) == 8
    for t in tasks:
        assert 0 < len(t.reference_spliced) < t.prompt_cut // 3
        assert np.isnan(gc.score(t, t.prompt + t.truth))
