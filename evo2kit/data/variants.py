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

Rows that cannot be scored: a symbolic or ``*`` ALT, an ALT equal to its REF, an allele longer
than half the window, or an ALT that does not fit in its window (an insertion at the last bases of
its record), is kept unscored with a note. A contig no record matches, a position outside its record and a REF
that differs from the FASTA are errors listing every such row (:class:`VariantError`), unless
``skip_bad=True``, which keeps them unscored with the reason in ``note``.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import os
import re
import struct
import urllib.parse
import zlib
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
OWN_COLUMNS = ("record", "allele", *VARIANT_COLUMNS, "id", "qual", "filter")
"""The columns :func:`read_variants` writes for every variant (a table has no id, qual, filter)."""
WINDOW_COLUMNS = ("fasta_record", "window_start", "window_length", "scored", "note")
"""The columns :func:`variant_windows` adds (``Cut.info``)."""
SCORE_COLUMNS = ("delta+", "delta-", "delta", "store_row")
"""The columns ``evo2kit.analysis.vep`` adds, with one ``l2:<layer>`` per layer."""


def is_reserved(column) -> bool:
    """Whether ``column`` is a name evo2kit writes beside a variant (its own fields, the window
    columns, the scores): an input column of that name is renamed, never overwritten."""
    return column in (*OWN_COLUMNS, *WINDOW_COLUMNS, *SCORE_COLUMNS) or str(column).startswith("l2:")

_BASES = re.compile(r"[ACGTN]+")


class VariantError(DataError):
    """Variants that do not fit the FASTA (missing contig, position outside it, REF mismatch)."""



# --------------------------------------------------------------------------- reading variants

def read_variants(path: str | os.PathLike, sheet: str | int = 0) -> pd.DataFrame:
    """A VCF/BCF (by its content) or a TSV/CSV/xlsx table (by its name) as one row per ALT allele:
    ``record`` (VCF: 1-based record number; table: the file's row, header = 1), ``allele`` (1-based
    index of the ALT in its record), ``chrom``, ``pos`` (1-based), ``ref``, ``alt``, then the
    file's other columns (VCF: ``id``, ``qual``, ``filter`` and one column per INFO field).

    An input column whose name evo2kit writes itself (:func:`is_reserved`: ``alt``, ``record``,
    ``note``, ``delta``, ...) is kept under another name, ``INFO/<name>`` for a VCF INFO field and
    ``input/<name>`` for a table column, so it never replaces a variant's own field nor is replaced
    by a computed one; ``df.attrs["renamed"]`` maps each such name to its new one. ``sheet``: the
    xlsx sheet (name or 0-based index)."""
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
    columns = {k: f"INFO/{k}" if is_reserved(k) else k for k in info_keys}  # never a variant's own field
    rows, n, last = [], 0, "the header"
    try:
        for n, rec in enumerate(vcf, 1):
            last = f"record {n} ({rec.chrom}:{rec.pos})"
            for a, alt in enumerate(rec.alts or ("",), 1):
                row = {"record": n, "allele": a, "chrom": rec.chrom, "pos": rec.pos, "ref": rec.ref, "alt": alt,
                       "id": rec.id, "qual": rec.qual, "filter": ";".join(rec.filter) or None}
                for k in info_keys:
                    row[columns[k]] = _info_value(rec.info.get(k), a if k in number_a else 0,
                                         vcf.header.info[k].number == "R", v43)
                rows.append(row)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: record {n + 1}, the one after {last}, cannot be parsed ({e})") from None
    finally:
        vcf.close()
    if not rows:
        raise DataError(f"{path}: no variant records")
    df = _normalise(pd.DataFrame(rows, columns=[*OWN_COLUMNS, *columns.values()]), path)
    for column in columns.values():  # whole numbers stay whole where a record lacks the field (not floats)
        values = [row[column] for row in rows]
        whole = [isinstance(v, int) and not isinstance(v, bool) for v in values]
        if any(whole) and all(w or v is None for w, v in zip(whole, values)) and not all(whole):
            df[column] = pd.array(values, dtype="Int64")
    df.attrs["renamed"] = {k: v for k, v in columns.items() if k != v}
    return df


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
    xlsx = name.endswith((".xlsx", ".xls"))
    where = f"{path} (sheet {sheet!r})" if xlsx else str(path)
    try:
        if xlsx:
            raw = pd.read_excel(path, sheet_name=sheet, dtype=str)
        else:
            sep = "," if name.endswith(".csv") else "\t"
            with open_text(path, "rt") as f:
                raw = pd.read_csv(f, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, IndexError, UnicodeDecodeError, OSError, EOFError) as e:  # ParserError is a ValueError
        hint = " (it looks like a VCF: read it as one, --vcf)" if _looks_like_vcf(path) else ""
        if xlsx and _sheets(path) and sheet not in _sheets(path) and not (
                isinstance(sheet, int) and 0 <= sheet < len(_sheets(path))):
            raise DataError(f"{path} has no sheet {sheet!r}; its sheets are {_sheets(path)}: choose one with "
                            "--sheet (sheet=)") from None
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{where}: not a readable {'xlsx' if xlsx else 'table'}{hint}: {text}") from None
    found: dict[str, list] = {}
    for c in raw.columns:
        found.setdefault(str(c).lower().lstrip("#"), []).append(c)
    missing = [c for c in VARIANT_COLUMNS if c not in found]
    if missing:
        other = [s for i, s in enumerate(_sheets(path)) if sheet not in (s, i)] if xlsx else []
        hint = f"; the workbook's other sheets are {other}: choose one with --sheet (sheet=)" if other else ""
        raise DataError(f"{where}: no column(s) {missing} (any case); found {[str(c) for c in raw.columns][:12]}"
                        f"{hint}")
    twice = {c: found[c] for c in VARIANT_COLUMNS if len(found[c]) > 1}
    if twice:
        raise DataError(f"{where}: " + "; ".join(f"columns {[str(x) for x in v]} all name {c!r}"
                                                  for c, v in twice.items()) + ": keep one of each")
    if raw.empty:
        raise DataError(f"{where}: a header but no variant rows")
    raw = raw.rename(columns={found[c][0]: c for c in VARIANT_COLUMNS})
    renamed = {c: f"input/{c}" for c in raw.columns if c not in VARIANT_COLUMNS and is_reserved(c)}
    clash = [f"{c!r} (kept as {n!r}, which the table also has)" for c, n in renamed.items() if n in raw.columns]
    if clash:
        raise DataError(f"{where}: column(s) {', '.join(clash)}: their names are evo2kit's own output columns; "
                        "rename them")
    raw = raw.rename(columns=renamed)
    raw.insert(0, "record", np.arange(2, len(raw) + 2))
    empty = raw[list(VARIANT_COLUMNS)].isna().any(axis=1)
    if empty.any():
        raise DataError(f"{where}: empty chrom/pos/ref/alt in row(s) {raw.loc[empty, 'record'].tolist()[:10]}")
    alts = raw["alt"].str.split(",")
    raw = raw.assign(alt=alts, allele=alts.map(lambda a: list(range(1, len(a) + 1)))).explode(["alt", "allele"])
    pos = pd.to_numeric(raw["pos"], errors="coerce")
    bad = pos.isna() | (pos % 1 != 0) | (pos < 1)
    if bad.any():
        rows = [f"row {r} ({p!r})" for r, p in zip(raw.loc[bad, "record"], raw.loc[bad, "pos"])]
        raise DataError(f"{where}: column 'pos' must hold whole numbers >= 1; {few(rows, 5)}")
    raw["pos"] = pos
    front = ["record", "allele", *VARIANT_COLUMNS]
    df = _normalise(raw[front + [c for c in raw.columns if c not in front]].reset_index(drop=True), where)
    df.attrs["renamed"] = renamed
    return df


def _sheets(path: Path) -> list[str]:
    """The sheet names of a workbook ([] if it cannot be read)."""
    try:
        return list(pd.ExcelFile(path).sheet_names)
    except Exception:  # noqa: BLE001 (only a hint for an error message)
        return []


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
    bgzip. ``path`` may also be a dataset name of ``evo2kit.data.registry.DATASETS`` (fetched and verified)."""

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
    """pyfaidx.Fasta of ``path`` through its ``.fai`` (and ``.gzi``) index: the one beside it when that
    is newer than the file and fits it (:func:`_index_problem`), else one built atomically beside it
    (or in the cache, for a read-only folder). An index that does not fit its FASTA (one copied with
    ``cp -p`` or rsync from another file, keeping its time) is never used: it is rebuilt."""
    import pyfaidx

    if is_gzip(path) and not _is_bgzf(path):
        path = _bgzf_copy(path)
    bgzf = is_gzip(path)
    fai, gzi = Path(f"{path}.fai"), Path(f"{path}.gzi")
    if not _usable_index(path, fai, gzi, bgzf):
        if not _writable(path.parent):
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
            folder = cache_dir() / "fai"
            folder.mkdir(parents=True, exist_ok=True)
            fai, gzi = folder / f"{digest}-{path.name}.fai", folder / f"{digest}-{path.name}.gzi"
        if not _usable_index(path, fai, gzi, bgzf):
            _build_index(path, fai, gzi, bgzf)
            problem = _index_problem(path, fai, gzi, bgzf)
            if problem:
                raise DataError(f"{path}: the index just built does not fit the file ({problem}): the FASTA's "
                                "lines are not laid out as an index needs (lines of one width per record)")
    return pyfaidx.Fasta(str(path), indexname=str(fai), gzi_indexname=str(gzi) if bgzf else None,
                         sequence_always_upper=True, as_raw=True, rebuild=False, build_index=False)


def _usable_index(path: Path, fai: Path, gzi: Path, bgzf: bool) -> bool:
    """Whether the index files exist, are not older than the FASTA and fit it."""
    mtime = path.stat().st_mtime
    fresh = lambda p: p.is_file() and p.stat().st_mtime >= mtime  # noqa: E731
    return fresh(fai) and (fresh(gzi) or not bgzf) and _index_problem(path, fai, gzi, bgzf) is None


def _build_index(path: Path, fai: Path, gzi: Path, bgzf: bool) -> None:
    """Write ``fai`` (and ``gzi``) for ``path``, atomically; a FASTA that cannot be indexed is a DataError
    naming it and why, and leaves no temporary file."""
    import pyfaidx

    from evo2kit.files import atomic_write

    tmp = fai.with_name(f".{fai.name}.{os.getpid()}")  # pyfaidx writes in place: build aside, then rename
    try:
        pyfaidx.Faidx(str(path), indexname=f"{tmp}.fai", gzi_indexname=f"{tmp}.gzi").close()
        if bgzf:
            atomic_write(gzi, lambda f: f.write(Path(f"{tmp}.gzi").read_bytes()), mode="wb")
        atomic_write(fai, lambda f: f.write(Path(f"{tmp}.fai").read_text()))
    except pyfaidx.FastaIndexingError as e:
        raise DataError(f"{path}: cannot index this FASTA ({e})") from None
    except ValueError as e:
        if str(e).startswith("Duplicate key"):  # pyfaidx's words for two records of one name
            name = str(e).split('"')[1] if '"' in str(e) else str(e)
            raise DataError(f"{path}: two FASTA records are named {name!r}: a record must be found by its name; "
                            "rename or remove one") from None
        raise DataError(f"{path}: cannot index this FASTA ({e})") from None
    except (OSError, EOFError, struct.error, zlib.error) as e:
        raise DataError(f"{path} is truncated or damaged ({e}): fetch or decompress it "
                        "again") from None
    finally:
        for p in (Path(f"{tmp}.fai"), Path(f"{tmp}.gzi")):
            p.unlink(missing_ok=True)


def _index_problem(path: Path, fai: Path, gzi: Path, bgzf: bool) -> str | None:
    """Why the ``.fai`` index does not fit the FASTA ``path``, or None when it does: each record must
    start on the line after its ``>name`` header, its first line must end where the index says, and its
    last base must be followed by a line end and then the next header or the end of the file. A
    record that grew, shrank or moved, or lines of another width, fail one of these."""
    try:
        lines = fai.read_text().splitlines()
        with _RawReader(path, gzi if bgzf else None) as raw:
            for n, line in enumerate(lines, 1):
                fields = line.split("\t")
                if len(fields) < 5:
                    return f"line {n} of {fai.name} is not an index line"
                name, (length, offset, width, stride) = fields[0], map(int, fields[1:5])
                head = raw.read(max(0, offset - 4096), min(offset, 4096))
                if not head.endswith(b"\n"):
                    return f"record {name!r} does not start after a header line"
                begin = head.rfind(b"\n", 0, len(head) - 1) + 1
                if begin or offset <= 4096:
                    words = head[begin:].strip().split()
                    if not words or words[0] != b">" + name.encode():
                        return f"record {name!r} does not follow its header (found {head[begin:][:40]!r})"
                if length == 0:
                    continue
                if width < 1 or stride < width:
                    return f"record {name!r} has line width {width} and stride {stride}"
                if length > width and raw.read(offset + width, stride - width) not in (b"\n", b"\r\n"):
                    return f"the first line of {name!r} is not {width} bases long"
                last = offset + (length - 1) // width * stride + (length - 1) % width
                tail = raw.read(last, 256)
                if not tail or tail[:1] in b"\r\n>" or tail[1:2] not in (b"", b"\n", b"\r"):
                    return f"record {name!r} does not end after {length} bases"
                after = tail[1:].lstrip(b"\r\n")
                if after and not after.startswith(b">"):
                    return f"record {name!r} is longer than {length} bases"
    except (OSError, ValueError, EOFError, struct.error, zlib.error) as e:
        return f"{type(e).__name__}: {e}"
    return None


class _RawReader:
    """Bytes of a plain FASTA, or of a bgzip one at uncompressed offsets through its ``.gzi``."""

    def __init__(self, path: Path, gzi: Path | None):
        self.starts = None
        if gzi is None:
            self.f = open(path, "rb")
            return
        from Bio import bgzf

        data = gzi.read_bytes()
        (n,) = struct.unpack_from("<Q", data)
        pairs = struct.unpack_from(f"<{2 * n}Q", data, 8)
        self.starts = [(0, 0)] + [(pairs[2 * i + 1], pairs[2 * i]) for i in range(n)]  # (uncompressed, compressed)
        self.f = bgzf.BgzfReader(str(path), "rb")

    def read(self, offset: int, n: int) -> bytes:
        if self.starts is None:
            self.f.seek(offset)
        else:
            from Bio import bgzf

            u, c = self.starts[bisect.bisect_right(self.starts, (offset, float("inf"))) - 1]
            self.f.seek(bgzf.make_virtual_offset(c, offset - u))
        return self.f.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


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

    try:
        atomic_write(out, write, mode="wb")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path} is truncated or damaged ({e}): fetch or decompress it "
                        "again") from None
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
        if k + len(alt) > end - start:  # an insertion at the record's end: its ALT would be trimmed away
            info["fasta_record"].append(rec.name)
            for key, v in (("window_start", None), ("window_length", None), ("scored", False),
                           ("note", f"ALT ({len(alt)} bp) does not fit in its {end - start}-bp window: {rec.name} "
                                    f"has {rec.length - p} bp left from the variant's first base: not scored")):
                info[key].append(v)
            continue
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
    for key in ("window_start", "window_length"):  # whole numbers, empty where not scored (not floats)
        info[key] = pd.array(info[key], dtype="Int64")
    return Cut(vw, np.asarray(rows, np.int64), pd.DataFrame(info, index=df.index))


def _name(label) -> str:
    return f"record {label}" if isinstance(label, (int, np.integer)) else str(label)
