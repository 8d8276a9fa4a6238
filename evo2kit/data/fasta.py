"""FASTA files, plain or gzipped (detected by their first bytes), and FASTA members of Debian packages."""

from __future__ import annotations

import gzip
import os
from typing import IO, Iterator

from Bio.SeqIO.FastaIO import SimpleFastaParser


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO:
    """Open a plain or gzipped file (detected by magic bytes, not by name)."""
    return gzip.open(path, mode) if is_gzip(path) else open(path, mode)



def _records(path: str | os.PathLike, uppercase: bool) -> Iterator[tuple[str, str]]:
    with open_text(path, "rt") as f:
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


