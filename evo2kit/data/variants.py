"""Your own variants: a VCF or a table, checked against a reference FASTA read through its index,
cut into the reference and variant windows that notebook 03 scores.

    genome = Genome("GRCh38.fa.gz")                  # plain, bgzipped or gzipped; indexed on first use
    df = read_variants("mine.vcf.gz")                # one row per ALT allele (multi-allelic records split)
    cut = variant_windows(df, genome, window=2048)   # cut.windows: VariantWindows of the scorable rows

**The VCF parser is pysam** (htslib, the library bcftools and tabix are built on): it reads plain
and bgzipped VCF and BCF, with or without a .tbi/.csi index, exactly as the tools that made the
file do, and it also writes the bgzip + tabix index that :func:`write_vcf` produces. cyvcf2 reads
as fast but writes no index; vcfpy is pure Python (slower, and needs pysam for indexed files).
The FASTA is read through **pyfaidx** (a samtools ``.fai`` index, plus ``.gzi`` for bgzip): only
the windows are read from disk, so a whole genome is never loaded into memory.

Contig names: a VCF contig matches a FASTA record of the same name, else one of the same
chromosome written another way: "17" = "chr17" = "NC_000017.11" (RefSeq, any version),
"MT" = "M" = "chrM", "X" = "NC_000023.x". A record named ``name:start-end`` (samtools region
syntax, e.g. ``chr17:41176312-41370000``) is a region: its first base is position ``start`` of
``name``. Several regions of one contig may be present; a variant goes to the one holding it.

Windows, for a variant whose first REF base is at 0-based index ``p`` of its FASTA record of
length ``n`` (notebook 03's, i.e. the Evo 2 BRCA1 notebook's, windows for an SNV):

* reference window = ``record[max(0, p - window//2) : min(n, p + window//2)]``, upper-cased;
  variants at one position share it (scored once);
* variant window = the same start, the record with REF replaced by ALT, cut to the length of the
  reference window: an insertion pushes the window's last bases out (trimmed), a deletion pulls
  the bases that follow the window in (padded from the genome; shorter only where the record ends);
* a window that would leave its record (contig, or region of one) is cut at the record's edge,
  as notebook 03 cuts it, and the row's ``note`` says so; so is an ``N`` in the reference window
  (the model reads it as a base like any other).

Rows that cannot be scored: a symbolic or ``*`` ALT, an ALT equal to its REF, or an allele longer
than half the window, is kept unscored with a note. A contig no record matches, a position outside its record and a REF
that differs from the FASTA are errors listing every such row (:class:`VariantError`), unless
``skip_bad=True``, which keeps them unscored with the reason in ``note``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from evo2kit.cli import DataError, few
from evo2kit.data.fasta import is_gzip, open_text
from evo2kit.data.registry import DATASETS, data_dir, fetch
from evo2kit.files import cache_dir

VARIANT_COLUMNS = ("chrom", "pos", "ref", "alt")
"""The columns a table must have (any case; ``#CHROM`` too); every other column is carried along."""

_BASES = re.compile(r"[ACGTN]+")


class VariantError(DataError):
    """Variants that do not fit the FASTA (missing contig, position outside it, REF mismatch)."""



# --------------------------------------------------------------------------- reading variants

def read_variants(path: str | os.PathLike, sheet: str | int = 0) -> pd.DataFrame:
    """A VCF/BCF (by its content) or a TSV/CSV/xlsx table (by its name) as one row per ALT allele:
    ``record`` (VCF: 1-based record number; table: the file's row, header = 1), ``allele`` (1-based
    index of the ALT in its record), ``chrom``, ``pos`` (1-based), ``ref``, ``alt``, then the
    file's other columns (VCF: ``id``, ``qual``, ``filter`` and one column per INFO field)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no variant file {path}")
    with open_text(path, "rb") as f:
        head = f.read(16)
    if head.startswith((b"##fileformat=VCF", b"BCF")):
        return read_vcf(path)
    if path.suffix.lower() in (".vcf", ".bcf") or path.name.lower().endswith((".vcf.gz", ".vcf.bgz")):
        raise DataError(f"{path} does not start with '##fileformat=VCF': not a VCF file")
    return read_table(path, sheet=sheet)


def read_vcf(path: str | os.PathLike) -> pd.DataFrame:
    """A plain or bgzipped VCF (or BCF), index or not; see :func:`read_variants` for the columns.
    Sample (FORMAT) columns are not read: a variant's score does not depend on who carries it."""
    import pysam

    path = Path(path)
    if is_gzip(path) and not _is_bgzf(path):
        raise DataError(f"{path} is compressed with gzip, not bgzip: htslib reads only bgzip. Recompress it "
                        f"(gunzip -c {path.name} | bgzip > new.vcf.gz) or decompress it")
    pysam.set_verbosity(0)  # htslib's warnings (e.g. a contig absent from the header) are not errors here
    try:
        vcf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable VCF/BCF ({e})") from None
    v43 = vcf.header.version == "VCFv4.3"
    info_keys = list(vcf.header.info)
    number_a = {k for k in info_keys if vcf.header.info[k].number in ("A", "R")}
    rows, n, last = [], 0, "the header"
    try:
        for n, rec in enumerate(vcf, 1):
            last = f"record {n} ({rec.chrom}:{rec.pos})"
            for a, alt in enumerate(rec.alts or ("",), 1):
                row = {"record": n, "allele": a, "chrom": rec.chrom, "pos": rec.pos, "ref": rec.ref, "alt": alt,
                       "id": rec.id, "qual": rec.qual, "filter": ";".join(rec.filter) or None}
                for k in info_keys:
                    row[k] = _info_value(rec.info.get(k), a if k in number_a else 0,
                                         vcf.header.info[k].number == "R", v43)
                rows.append(row)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: record {n + 1}, the one after {last}, cannot be parsed ({e})") from None
    finally:
        vcf.close()
    if not rows:
        raise DataError(f"{path}: no variant records")
    return _normalise(pd.DataFrame(rows), path)


def _info_value(v, allele: int, per_ref: bool, v43: bool):
    """One INFO value as a cell: this allele's item of a Number=A/R field, others joined by ','."""
    if isinstance(v, tuple):
        if allele and len(v) > allele - (0 if per_ref else 1):
            v = v[allele if per_ref else allele - 1]
        else:
            v = ",".join(map(str, v))
    if isinstance(v, str) and v43 and "%" in v:  # VCF 4.3 percent-encodes ';', '=', ',' ...
        v = urllib.parse.unquote(v)
    return v


def _is_bgzf(path) -> bool:
    """A gzip file whose first member carries BGZF's 'BC' extra field (bgzip, not plain gzip)."""
    with open(path, "rb") as f:
        head = f.read(16)
    return len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC"


def read_table(path: str | os.PathLike, sheet: str | int = 0) -> pd.DataFrame:
    """A TSV / CSV (plain or gzipped) or xlsx table with columns chrom, pos, ref, alt (any case);
    an ALT with commas is split into one row per allele. See :func:`read_variants`."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith((".xlsx", ".xls")):
            raw = pd.read_excel(path, sheet_name=sheet, dtype=str)
        else:
            sep = "," if name.endswith(".csv") else "\t"
            with open_text(path, "rt") as f:
                raw = pd.read_csv(f, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, UnicodeDecodeError, OSError) as e:  # pandas' ParserError is a ValueError
        hint = " (it looks like a VCF: read it as one, --vcf)" if _looks_like_vcf(path) else ""
        raise DataError(f"{path}: not a readable {'xlsx' if name.endswith(('.xlsx', '.xls')) else 'table'}"
                        f"{hint}: {str(e).strip().splitlines()[0]}") from None
    found = {str(c).lower().lstrip("#"): c for c in raw.columns}
    missing = [c for c in VARIANT_COLUMNS if c not in found]
    if missing:
        raise DataError(f"{path}: no column(s) {missing} (any case); found {[str(c) for c in raw.columns][:12]}")
    raw = raw.rename(columns={found[c]: c for c in VARIANT_COLUMNS})
    raw.insert(0, "record", np.arange(2, len(raw) + 2))
    empty = raw[list(VARIANT_COLUMNS)].isna().any(axis=1)
    if empty.any():
        raise DataError(f"{path}: empty chrom/pos/ref/alt in row(s) {raw.loc[empty, 'record'].tolist()[:10]}")
    alts = raw["alt"].str.split(",")
    raw = raw.assign(alt=alts, allele=alts.map(lambda a: list(range(1, len(a) + 1)))).explode(["alt", "allele"])
    pos = pd.to_numeric(raw["pos"], errors="coerce")
    bad = pos.isna() | (pos % 1 != 0) | (pos < 1)
    if bad.any():
        rows = [f"row {r} ({p!r})" for r, p in zip(raw.loc[bad, "record"], raw.loc[bad, "pos"])]
        raise DataError(f"{path}: column 'pos' must hold whole numbers >= 1; {few(rows, 5)}")
    raw["pos"] = pos
    front = ["record", "allele", *VARIANT_COLUMNS]
    return _normalise(raw[front + [c for c in raw.columns if c not in front]].reset_index(drop=True), path)


def _looks_like_vcf(path: Path) -> bool:
    try:
        with open_text(path, "rb") as f:
            return f.read(16).startswith(b"##fileformat=VCF")
    except OSError:
        return False


def _normalise(df: pd.DataFrame, path) -> pd.DataFrame:
    df["chrom"] = df["chrom"].astype(str)
    df["pos"] = df["pos"].astype(np.int64)
    df["ref"] = df["ref"].astype(str).str.strip().str.upper()
    df["alt"] = df["alt"].astype(str).str.strip().str.upper()
    df["allele"] = df["allele"].astype(np.int64)
    bad = ~df["ref"].str.fullmatch(_BASES.pattern)
    if bad.any():
        rows = [f"record {r} ({c}:{p} REF {a!r})" for r, c, p, a in df.loc[bad, ["record", "chrom", "pos", "ref"]]
                .itertuples(index=False)]
        raise DataError(f"{path}: REF must be bases A, C, G, T or N; {few(rows, 5)}")
    return df


def write_vcf(df: pd.DataFrame, path: str | os.PathLike, info: list[str] | tuple = (), index: bool = True,
              id_column: str | None = None) -> Path:
    """``df`` (chrom, pos, ref, alt; one row per allele) as a VCF 4.3 at ``path``: plain text, or
    bgzip for a name ending in .gz / .bgz, with a tabix index (.tbi) unless ``index=False``.
    ``info``: columns written as INFO fields (type from the column: Integer, Float or String).
    Records are sorted by contig (in order of first appearance) and position. Written atomically."""
    import pysam

    from evo2kit.files import atomic_write

    path = Path(path)
    missing = [c for c in (*VARIANT_COLUMNS, *info) if c not in df.columns]
    if missing:
        raise ValueError(f"write_vcf: df lacks column(s) {missing}")
    order = {c: i for i, c in enumerate(dict.fromkeys(df["chrom"].astype(str)))}
    df = df.assign(_c=df["chrom"].astype(str).map(order)).sort_values(["_c", "pos"], kind="stable")
    kinds = {c: "Integer" if pd.api.types.is_integer_dtype(df[c]) else
             "Float" if pd.api.types.is_float_dtype(df[c]) else "String" for c in info}
    header = ["##fileformat=VCFv4.3", "##source=evo2kit.variants.write_vcf",
              *[f"##contig=<ID={c}>" for c in order],
              *[f'##INFO=<ID={c},Number=1,Type={kinds[c]},Description="column {c}">' for c in info],
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]

    def field(v) -> str:
        return urllib.parse.quote(str(v), safe=" '/()+-.:_<>*[]") if pd.notna(v) else "."

    def write(f):
        f.write("\n".join(header) + "\n")
        cols = [df[c].tolist() for c in ("chrom", "pos", "ref", "alt", *info)]
        ids = df[id_column].tolist() if id_column else ["."] * len(df)
        for (chrom, pos, ref, alt, *vals), vid in zip(zip(*cols), ids):
            inf = ";".join(f"{k}={field(v)}" for k, v in zip(info, vals) if pd.notna(v)) or "."
            f.write(f"{chrom}\t{int(pos)}\t{vid}\t{ref}\t{alt}\t.\t.\t{inf}\n")

    if not path.name.endswith((".gz", ".bgz")):
        atomic_write(path, write)
        return path
    plain = path.with_name(f".{path.name}.{os.getpid()}.vcf")
    packed = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        atomic_write(plain, write)
        pysam.tabix_compress(str(plain), str(packed), force=True)
        if index:
            tbi = path.with_name(f".{path.name}.{os.getpid()}.tbi")
            pysam.tabix_index(str(packed), preset="vcf", force=True, index=str(tbi))
            os.replace(packed, path)
            os.replace(tbi, f"{path}.tbi")
        else:
            os.replace(packed, path)
    finally:
        for p in (plain, packed):
            p.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- the genome

def contig_key(name: str) -> str:
    """One spelling per chromosome: 'chr17', '17', 'NC_000017.11' -> '17'; 'chrM', 'M', 'MT' -> 'MT';
    'NC_000023.11' -> 'X'. Other names are upper-cased, a 'chr' prefix dropped."""
    m = re.fullmatch(r"NC_0000(\d\d)\.\d+", name)
    if m:
        return {23: "X", 24: "Y"}.get(int(m[1]), str(int(m[1])))
    if re.fullmatch(r"NC_012920\.\d+", name):
        return "MT"
    key = re.sub(r"^chr", "", name, flags=re.I).upper()
    return "MT" if key == "M" else key


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


@dataclass(frozen=True)
class Record:
    """A FASTA record: ``name`` in the file, the ``contig`` it belongs to, ``start`` (1-based
    position of its first base on that contig) and ``length`` (bp)."""

    name: str
    contig: str
    start: int
    length: int


class Genome:
    """A plain, bgzipped or gzipped FASTA read through its index (see the module docstring).

    The ``.fai`` (and ``.gzi``) index goes beside the file, or into the cache (``cache_dir()``)
    when that folder is read-only; a gzip (not bgzip) file is first copied once into the cache as
    bgzip. ``path`` may also be a dataset name of ``evo2kit.DATASETS`` (fetched and verified)."""

    def __init__(self, path: str | os.PathLike):
        if isinstance(path, str) and path in DATASETS:
            path = fetch(path)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no FASTA file {self.path}")
        self.fasta = _open_indexed(self.path)
        self.records = []
        for name in self.fasta.keys():
            length = len(self.fasta[name])
            m = re.fullmatch(r"(.+):(\d+)-(\d+)", name)
            region = m and int(m[3]) - int(m[2]) + 1 == length
            self.records.append(Record(name, m[1] if region else name, int(m[2]) if region else 1, length))
        if not self.records:
            raise DataError(f"{self.path}: no FASTA records")

    @classmethod
    def from_sequence(cls, seq: str, contig: str, start: int = 1) -> "Genome":
        """A one-record genome held in memory: ``seq`` is ``contig`` from 1-based position ``start`` on
        (a region cut from a chromosome, such as the BRCA1 region)."""
        genome = cls.__new__(cls)
        name = f"{contig}:{start}-{start + len(seq) - 1}"
        genome.path, genome.fasta = Path(name), {name: seq.upper()}
        genome.records = [Record(name, contig, start, len(seq))]
        return genome

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self.records)} records)"

    def candidates(self, chrom: str) -> list[Record]:
        """The records of contig ``chrom``: same name first, else the same chromosome spelt otherwise."""
        same = [r for r in self.records if r.contig == chrom]
        return same or [r for r in self.records if contig_key(r.contig) == contig_key(chrom)]

    def fetch(self, record: Record, start: int, end: int) -> str:
        """Bases ``start:end`` (0-based, end excluded, clipped to the record) of ``record``, upper case."""
        start, end = max(0, start), min(record.length, end)
        return self.fasta[record.name][start:end] if end > start else ""


def _open_indexed(path: Path):
    """pyfaidx.Fasta of ``path``, its index built atomically on first use (beside it, else in the cache)."""
    import pyfaidx

    from evo2kit.files import atomic_write

    if is_gzip(path) and not _is_bgzf(path):
        path = _bgzf_copy(path)
    fai, gzi = Path(f"{path}.fai"), Path(f"{path}.gzi")
    bgzf = is_gzip(path)
    fresh = lambda p: p.is_file() and p.stat().st_mtime >= path.stat().st_mtime  # noqa: E731
    if not (fresh(fai) and (fresh(gzi) or not bgzf)):
        if not _writable(path.parent):
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
            folder = cache_dir() / "fai"
            folder.mkdir(parents=True, exist_ok=True)
            fai, gzi = folder / f"{digest}-{path.name}.fai", folder / f"{digest}-{path.name}.gzi"
        if not (fresh(fai) and (fresh(gzi) or not bgzf)):
            tmp = fai.with_name(f".{fai.name}.{os.getpid()}")  # pyfaidx writes in place: build aside, then rename
            try:
                pyfaidx.Faidx(str(path), indexname=f"{tmp}.fai", gzi_indexname=f"{tmp}.gzi").close()
            except pyfaidx.FastaIndexingError as e:
                raise DataError(f"{path}: cannot index this FASTA ({e})") from None
            if bgzf:
                atomic_write(gzi, lambda f: f.write(Path(f"{tmp}.gzi").read_bytes()), mode="wb")
            atomic_write(fai, lambda f: f.write(Path(f"{tmp}.fai").read_text()))
            for p in (Path(f"{tmp}.fai"), Path(f"{tmp}.gzi")):
                p.unlink(missing_ok=True)
    return pyfaidx.Fasta(str(path), indexname=str(fai), gzi_indexname=str(gzi) if bgzf else None,
                         sequence_always_upper=True, as_raw=True, rebuild=False, build_index=False)


def _writable(folder: Path) -> bool:
    """A folder we may add index files to: writable by its mode (root passes os.access regardless)
    and not the data directory ($EVO2KIT_DATA_DIR, read-only by contract)."""
    d = data_dir()
    inside = d is not None and folder.resolve().is_relative_to(d.resolve())
    return not inside and os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _bgzf_copy(path: Path) -> Path:
    """A bgzip copy of the gzip file ``path`` in the cache (made once per path, size and mtime;
    streamed, so the sequence is never all in memory)."""
    from Bio import bgzf

    from evo2kit.files import atomic_write

    st = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / "bgzf" / f"{digest}-{path.name}"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)

    class KeepOpen:  # BgzfWriter.close() closes its handle; atomic_write must still fsync it
        def __init__(self, f):
            self.f = f

        def write(self, b):
            return self.f.write(b)

        def flush(self):
            self.f.flush()

        def close(self):
            self.f.flush()

    def write(f):
        w = bgzf.BgzfWriter(fileobj=KeepOpen(f))
        with gzip.open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                w.write(chunk)
        w.close()

    atomic_write(out, write, mode="wb")
    return out


# --------------------------------------------------------------------------- windows

@dataclass
class Cut:
    """:func:`variant_windows`'s result.

    windows: ``VariantWindows`` of the scorable rows (what zero_shot and embed take).
    rows: int64 (n_scorable,), the row of ``df`` (0-based position) each window belongs to.
    info: one row per ``df`` row (same index): ``fasta_record``, ``window_start`` (1-based
    position on the contig of the window's first base), ``window_length`` (bp), ``scored``
    (bool) and ``note`` (why a row is not scored, or what is unusual about its window; "" if nothing).
    """

    windows: VariantWindows
    rows: np.ndarray
    info: pd.DataFrame


def check_ref(df: pd.DataFrame, genome: Genome) -> pd.DataFrame:
    """Every REF compared with the FASTA: one row per mismatch, columns ``record``, ``chrom``,
    ``pos``, ``expected`` (the REF) and ``found`` (the FASTA's bases there); rows whose contig or
    position is not in the FASTA are left to :func:`variant_windows` to report."""
    out = []
    for label, chrom, pos, ref in zip(_labels(df), df["chrom"], df["pos"], df["ref"]):
        rec = _locate(genome, str(chrom), int(pos))
        if isinstance(rec, Record):
            p = int(pos) - rec.start
            found = genome.fetch(rec, p, p + len(ref))
            if found != ref.upper():
                out.append({"record": label, "chrom": chrom, "pos": int(pos), "expected": ref, "found": found})
    return pd.DataFrame(out, columns=["record", "chrom", "pos", "expected", "found"])


def _labels(df: pd.DataFrame) -> list:
    return df["record"].tolist() if "record" in df.columns else [f"row {i}" for i in df.index]


def _locate(genome: Genome, chrom: str, pos: int) -> Record | str:
    """The record holding ``chrom:pos``, or why there is none ('contig' or 'outside ...')."""
    recs = genome.candidates(chrom)
    if not recs:
        return "contig"
    for r in recs:
        if r.start <= pos < r.start + r.length:
            return r
    return "outside " + ", ".join(f"{r.name} ({r.contig}:{r.start}-{r.start + r.length - 1})" for r in recs)


def variant_windows(df: pd.DataFrame, genome: Genome, window: int = 8192, *, skip_bad: bool = False) -> Cut:
    """Reference and variant windows of every row of ``df`` (chrom, pos, ref, alt; e.g. from
    :func:`read_variants`) on ``genome``: see the module docstring for the windows and notes.

    Raises:
        VariantError: rows whose contig no FASTA record matches, whose position lies outside
            it, or whose REF differs from the FASTA (all listed), unless ``skip_bad``.
    """
    if not isinstance(window, (int, np.integer)) or window < 2 or window % 2:
        raise ValueError(f"window must be an even number >= 2, got {window!r}")
    missing = [c for c in VARIANT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"variant table lacks column(s) {missing}")
    half = window // 2
    labels = _labels(df)
    info = {k: [] for k in ("fasta_record", "window_start", "window_length", "scored", "note")}
    no_contig, outside, mismatch = {}, [], []
    keys, ref_seqs, var_seqs, ref_index, var_pos, rows = {}, [], [], [], [], []
    for i, (label, chrom, pos, ref, alt) in enumerate(zip(labels, df["chrom"].astype(str), df["pos"],
                                                          df["ref"], df["alt"])):
        pos, ref, alt = int(pos), str(ref).upper(), str(alt).upper()
        rec, note, start, length = _locate(genome, chrom, pos), "", None, None
        if not _BASES.fullmatch(alt or "-"):
            note = f"ALT {alt or '(none)'!r} is not a sequence of bases (symbolic or missing): not scored"
        elif alt == ref:
            note = "ALT equals REF: not scored"
        elif max(len(ref), len(alt)) > half:
            note = f"allele longer than half the window ({half} bp): not scored"
        elif rec == "contig":
            no_contig.setdefault(chrom, []).append(str(label))
            note = f"no FASTA record for contig {chrom!r}: not scored"
        elif isinstance(rec, str):
            outside.append(f"{_name(label)} ({chrom}:{pos})")
            note = f"position {pos} is {rec}: not scored"
        else:
            p = pos - rec.start
            found = genome.fetch(rec, p, p + len(ref))
            if found != ref:
                mismatch.append(f"{_name(label)} ({chrom}:{pos}) expected {ref!r} found {found!r}")
                note = f"REF {ref!r} but the FASTA has {found!r}: not scored"
        if note:
            info["fasta_record"].append(rec.name if isinstance(rec, Record) else None)
            for k, v in (("window_start", None), ("window_length", None), ("scored", False), ("note", note)):
                info[k].append(v)
            continue
        start, end = max(0, p - half), min(rec.length, p + half)
        k = p - start
        if (rec.name, start, end) not in keys:
            keys[(rec.name, start, end)] = len(ref_seqs)
            ref_seqs.append(genome.fetch(rec, start, end))
        ref_w = ref_seqs[keys[(rec.name, start, end)]]
        length = end - start
        if len(ref) == len(alt):
            var_w = ref_w[:k] + alt + ref_w[k + len(ref):]
        else:  # same start; trimmed (insertion) or padded from the genome (deletion) to the window length
            var_w = (ref_w[:k] + alt + genome.fetch(rec, p + len(ref), end + max(0, len(ref) - len(alt))))[:length]
        notes = []
        if p - half < 0 or p + half > rec.length:
            notes.append(f"window cut to {length} bp at the edge of {rec.name} ({rec.length} bp)")
        if len(var_w) < length:
            notes.append(f"variant window {length - len(var_w)} bp shorter: {rec.name} ends")
        if "N" in ref_w:
            notes.append(f"{ref_w.count('N')} N in the reference window")
        ref_index.append(keys[(rec.name, start, end)])
        var_seqs.append(var_w)
        var_pos.append(k)
        rows.append(i)
        info["fasta_record"].append(rec.name)
        for key, v in (("window_start", rec.start + start), ("window_length", length), ("scored", True),
                       ("note", "; ".join(notes))):
            info[key].append(v)
    problems = []
    if no_contig:
        have = ", ".join(repr(r.name) for r in genome.records[:8]) + (" ..." if len(genome.records) > 8 else "")
        problems.append("contig(s) " + ", ".join(f"{c!r} ({len(v)} variant(s))" for c, v in no_contig.items())
                        + f" match no record of {genome.path.name} (names compared as given, with and without "
                        f"'chr', M/MT, RefSeq NC_ accessions); it has {have}")
    if outside:
        problems.append(f"{len(outside)} variant(s) lie outside the FASTA's records: {few(outside, 10)}")
    if mismatch:
        problems.append(f"{len(mismatch)} REF allele(s) differ from {genome.path.name} (another genome "
                        f"build?): {few(mismatch, 10)}")
    if problems and not skip_bad:
        raise VariantError("; ".join(problems) + ". Fix the input, or skip_bad=True (--skip-bad) keeps those "
                           "rows unscored with the reason in 'note'")
    vw = VariantWindows(ref_seqs, var_seqs, np.asarray(ref_index, np.int64), np.asarray(var_pos, np.int64))
    return Cut(vw, np.asarray(rows, np.int64), pd.DataFrame(info, index=df.index))


def _name(label) -> str:
    return f"record {label}" if isinstance(label, (int, np.integer)) else str(label)
