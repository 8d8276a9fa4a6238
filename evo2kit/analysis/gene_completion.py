"""Evo 2's gene-completion benchmark (% amino-acid recovery), scored exactly as the Evo 2
repository scores it: ArcInstitute/evo2 ``scripts/gene_completion/`` (``prompts.py``,
``scoring.py``, ``run_gene_completion.py``) at commit 53f195997257c56c00e5ef8d33a54f5baad143a6,
Brixi et al., Nature 2026.

A model gets the start of a gene and completes it; the completion is translated and compared with
the gene's reference protein over the part the model wrote (never the part it was given).

- Prokaryote panel (ftsZ, secY, dnaK, gyrA; H. volcanii, E. coli): prompt = the 1,000 nt upstream
  of the CDS + the first 30% of the CDS in whole codons; prompt + completion from the CDS start is
  translated in frame 0 up to the first stop, globally aligned to the reference protein (BLOSUM62,
  gap open -11, extend -1), and identity is counted over aligned columns whose reference residue
  lies beyond the prompt's codons.
- Eukaryote panel (8 genes with introns): prompt = the first 30% of the genomic window; exonerate
  (protein2genome) splices prompt + completion against the reference protein, and the spliced
  protein is compared position by position, beyond the prompt's length / 3, with the protein
  exonerate splices from the true genomic window.

    tasks = load_panel("prokaryote")
    task.prompt, task.n_tokens                  # what to generate, as Arc's script asks
    recovery = score(task, task.prompt + completion)
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PROMPT_FRACTION = 0.30
PROK_UPSTREAM_LEN = 1000
PANEL_TEMPERATURE = {"prokaryote": 0.7, "eukaryote": 1.0}
"""Generation settings of the published runs: these temperatures, top_k 4, 50 generations per gene."""
TOP_K = 4
PANELS = ("prokaryote", "eukaryote")


def clean_seq(seq: str) -> str:
    return "".join(str(seq).split()).upper()


# -- prompts (prompts.py) -------------------------------------------------------------------

def prokaryote_prompt(genomic: str, cds_start: int = 5000, upstream_len: int = PROK_UPSTREAM_LEN,
                      fraction: float = PROMPT_FRACTION) -> tuple[str, int]:
    """(prompt, prompt_cds_aa): ``upstream_len`` nt before the CDS and the first ``fraction`` of it
    in whole codons; ``prompt_cds_aa`` coding residues are in the prompt."""
    genomic = clean_seq(genomic)
    coding_aa_take = round((len(genomic) - cds_start) / 3.0 * fraction)
    start = max(0, cds_start - upstream_len)
    return genomic[start:cds_start] + genomic[cds_start:cds_start + coding_aa_take * 3], coding_aa_take


def eukaryote_prompt(genomic: str, fraction: float = PROMPT_FRACTION) -> tuple[str, int]:
    """(prompt, prompt_len): the first ``fraction`` of the genomic window."""
    genomic = clean_seq(genomic)
    prompt_len = int(len(genomic) * fraction)
    return genomic[:prompt_len], prompt_len


# -- scoring (scoring.py) -------------------------------------------------------------------

def translate_dna(dna: str, to_stop: bool = True) -> str:
    """Frame-0 translation of ``dna`` cut to whole codons (up to the first stop with ``to_stop``)."""
    from Bio.Seq import Seq

    dna = clean_seq(dna)
    usable = len(dna) - len(dna) % 3
    return str(Seq(dna[:usable]).translate(to_stop=to_stop)) if usable > 0 else ""


def positional_identity(a: str, b: str) -> float:
    """Ungapped % identity over the shorter of the two (the eukaryote panel's metric); NaN if one is empty."""
    n = min(len(a), len(b))
    return 100.0 * sum(a[i] == b[i] for i in range(n)) / n if n else float("nan")


@functools.cache
def protein_aligner():
    """Global protein alignment, BLOSUM62, gap open -11, extend -1 (scoring.py's ``_aligner``)."""
    from Bio.Align import PairwiseAligner, substitution_matrices

    aligner = PairwiseAligner()
    aligner.substitution_matrix = substitution_matrices.load("BLOSUM62")
    aligner.open_gap_score, aligner.extend_gap_score = -11, -1
    aligner.mode = "global"
    return aligner


def aligned_identity_after(query_aa: str, ref_aa: str, ref_start: int) -> float:
    """% identity over the columns of the global alignment of ``ref_aa`` and ``query_aa`` where both
    have a residue and the reference's lies at index >= ``ref_start``; NaN if there is none."""
    if not query_aa or not ref_aa:
        return float("nan")
    ref_row, query_row = protein_aligner().align(ref_aa, query_aa)[0].indices
    matches = aligned = 0
    for r, q in zip(ref_row, query_row):
        if r >= ref_start and q >= 0:
            aligned += 1
            matches += ref_aa[r] == query_aa[q]
    return 100.0 * matches / aligned if aligned else float("nan")


def score_prokaryote(generated_full: str, reference_protein: str, upstream_len: int, prompt_cds_aa: int) -> float:
    """AA recovery of prompt + completion (``generated_full``), the CDS starting at ``upstream_len``."""
    protein = translate_dna(generated_full[upstream_len:], to_stop=True)
    return aligned_identity_after(protein, reference_protein, prompt_cds_aa)


def find_exonerate(path: str = "exonerate") -> str:
    """The exonerate executable (a path, or a name on PATH); FileNotFoundError saying how to install it."""
    if Path(path).exists():
        return path
    found = shutil.which(path)
    if found is None:
        raise FileNotFoundError(f"{path!r} not found: the eukaryote panel splices with exonerate. Install it with "
                                "`apt-get install exonerate` (Debian/Ubuntu) or `conda install -c bioconda exonerate`")
    return found


def exonerate_spliced_protein(dna_seq: str, ref_protein: str, exonerate_path: str = "exonerate") -> tuple[str, str]:
    """(spliced CDS, its translation) from exonerate protein2genome aligning ``ref_protein`` to
    ``dna_seq``; ("", "") when exonerate finds no exon or fails."""
    exe = find_exonerate(exonerate_path)
    cleaned = "".join(c if c in "ACGT" else "N" for c in clean_seq(dna_seq))
    with tempfile.TemporaryDirectory() as tmp:
        query, target = Path(tmp) / "q.faa", Path(tmp) / "t.fna"
        query.write_text(f">query\n{ref_protein}\n")
        target.write_text(f">target\n{cleaned}\n")
        cmd = [exe, "--model", "protein2genome", "--showalignment", "no", "--showvulgar", "no",
               "--showquerygff", "no", "--showtargetgff", "yes", str(query), str(target)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        except subprocess.CalledProcessError:
            return "", ""
    exons, strand = [], "+"
    for line in out.splitlines():
        parts = line.split("\t")
        if not line or line.startswith("#") or len(parts) < 9 or parts[2] != "exon":
            continue
        exons.append((int(parts[3]), int(parts[4])))
        strand = parts[6]
    if not exons:
        return "", ""
    cds = "".join(cleaned[s - 1:e] for s, e in sorted(exons) if 1 <= s <= e <= len(cleaned))
    if strand == "-":
        from Bio.Seq import Seq

        cds = str(Seq(cds).reverse_complement())
    return cds, translate_dna(cds, to_stop=False)


def score_eukaryote(generated_full: str, reference_spliced_protein: str, prompt_len: int, reference_protein: str,
                    exonerate_path: str = "exonerate") -> float:
    """AA recovery of prompt + completion: its exonerate-spliced protein against the true window's,
    position by position beyond residue prompt_len // 3."""
    _, protein = exonerate_spliced_protein(generated_full, reference_protein, exonerate_path)
    if not protein or not reference_spliced_protein:
        return float("nan")
    prompt_aa = prompt_len // 3
    return positional_identity(reference_spliced_protein[prompt_aa:], protein[prompt_aa:])


# -- the panels (run_gene_completion.py) ------------------------------------------------------

@dataclass(frozen=True)
class GeneTask:
    """One gene of a panel. ``prompt_cut``: prompt_cds_aa (prokaryote) or prompt_len (eukaryote);
    ``truth``: the genomic bases after the prompt (what a perfect completion would write);
    ``reference_spliced``: the protein exonerate splices from the whole window (eukaryote; else "")."""

    panel: str
    gene: str
    organism: str
    prompt: str
    n_tokens: int
    truth: str
    reference_protein: str
    prompt_cut: int
    reference_spliced: str = ""


def load_panel(panel: str, genes: list[str] | None = None, exonerate_path: str = "exonerate") -> list[GeneTask]:
    """The genes of ``panel`` ('prokaryote' or 'eukaryote'; ``genes``: only these, by name, case-insensitive)
    with Arc's prompts and token budgets (remaining codons x 3 + 150; remaining window + 50). The
    eukaryote panel splices each true window once with exonerate (needs it installed)."""
    from evo2kit.data import registry

    if panel not in PANELS:
        raise ValueError(f"panel must be one of {PANELS}, not {panel!r}")
    table = pd.read_csv(registry.fetch(f"gene_completion_{panel}_genes"))
    if genes is not None:
        known = {g.lower(): g for g in table["gene"]}
        unknown = [g for g in genes if g.lower() not in known]
        if unknown:
            raise ValueError(f"no gene {unknown} in the {panel} panel; it has {sorted(table['gene'])}")
        table = table[table["gene"].str.lower().isin([g.lower() for g in genes])]
    tasks = []
    for row in table.itertuples():
        genomic, ref = clean_seq(row.genomic_sequence), str(row.reference_protein).strip()
        if panel == "prokaryote":
            prompt, cut = prokaryote_prompt(genomic, int(row.cds_start))
            start = max(0, int(row.cds_start) - PROK_UPSTREAM_LEN)  # where the prompt begins in the window
            n_tokens, spliced = max(1, len(ref) - cut) * 3 + 150, ""
        else:
            prompt, cut = eukaryote_prompt(genomic)
            start, n_tokens = 0, len(genomic) - cut + 50
            spliced = exonerate_spliced_protein(genomic, ref, exonerate_path)[1]
        tasks.append(GeneTask(panel, row.gene, row.organism, prompt, n_tokens, genomic[start + len(prompt):], ref,
                              cut, spliced))
    return tasks


def score(task: GeneTask, generated_full: str, exonerate_path: str = "exonerate") -> float:
    """% AA recovery of ``generated_full`` (prompt + completion) for ``task``, as Arc's script scores it."""
    if task.panel == "prokaryote":
        return score_prokaryote(generated_full, task.reference_protein, PROK_UPSTREAM_LEN, task.prompt_cut)
    return score_eukaryote(generated_full, task.reference_spliced, task.prompt_cut, task.reference_protein,
                           exonerate_path)


def published_recovery() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published results: (summary: model, prokaryote_mean, eukaryote_mean,
    overall_mean_aa_recovery, ...; per gene: model, gene, panel, n_samples, mean_aa_recovery,
    sem_aa_recovery)."""
    from evo2kit.data import registry

    summary = pd.read_csv(registry.fetch("gene_completion_summary"))
    per_gene = pd.concat([pd.read_csv(registry.fetch(f"gene_completion_{p}_per_gene")).assign(panel=p)
                          for p in PANELS], ignore_index=True)
    return summary, per_gene


def complete_genes(model, tasks: list[GeneTask], n_generations: int, seed: int,
                   exonerate_path: str = "exonerate") -> pd.DataFrame:
    """``n_generations`` completions of each task with ``model`` (an ``Evo2Model``), at the panel's
    published temperature and top_k 4, all from one prefill per gene, scored as Arc's script scores
    them: one row per generation (panel, gene, organism, gen_idx, aa_recovery, seconds)."""
    import time

    rows = []
    for task in tasks:
        t0 = time.perf_counter()
        out = model.generate([task.prompt], n_tokens=task.n_tokens, temperature=PANEL_TEMPERATURE[task.panel],
                             top_k=TOP_K, seed=seed, n_samples=n_generations)
        seconds = time.perf_counter() - t0
        rows += [{"panel": task.panel, "gene": task.gene, "organism": task.organism, "gen_idx": j,
                  "aa_recovery": score(task, task.prompt + completion, exonerate_path), "seconds": seconds}
                 for j, completion in enumerate(out.sequences)]
    return pd.DataFrame(rows, columns=["panel", "gene", "organism", "gen_idx", "aa_recovery", "seconds"])


def shuffled_completions(tasks: list[GeneTask], n_shuffles: int, rng,
                         exonerate_path: str = "exonerate") -> pd.DataFrame:
    """The random-protein baseline: each task's true completion shuffled (same bases, no order),
    ``n_shuffles`` times, scored like a model's (panel, gene, organism, gen_idx, aa_recovery)."""
    rows = []
    for task in tasks:
        for j in range(n_shuffles):
            completion = "".join(rng.permutation(list(task.truth)))
            rows.append({"panel": task.panel, "gene": task.gene, "organism": task.organism, "gen_idx": j,
                         "aa_recovery": score(task, task.prompt + completion, exonerate_path)})
    return pd.DataFrame(rows, columns=["panel", "gene", "organism", "gen_idx", "aa_recovery"])


def per_gene(scores: pd.DataFrame) -> pd.DataFrame:
    """Arc's per-gene statistics: n_samples (scored, NaN left out), mean, std and sem of aa_recovery."""
    stats = scores.groupby(["panel", "gene"], sort=False)["aa_recovery"].agg(
        n_samples="count", mean_aa_recovery="mean", std_aa_recovery="std").reset_index()
    stats["sem_aa_recovery"] = stats["std_aa_recovery"] / stats["n_samples"] ** 0.5
    return stats
