"""Content hashes and all-or-nothing file writes, used by every module that writes or checks a file.

- :func:`sha256_file` / :func:`sha256_lines` / :func:`sha256_json`: hex SHA-256 of a file's bytes,
  of a list of strings (one per line), of a JSON-able value (keys sorted).
- :func:`atomic_path` / :func:`atomic_write`: the new content goes to a temporary file beside the
  target, is flushed to disk, then renamed onto the target, so a reader (or a rerun after a crash)
  sees the old file or the new one, never half of one; on an error the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def sha256_lines(lines: Iterable[str]) -> str:
    """SHA-256 over the strings in order, each followed by a newline."""
    h = hashlib.sha256()
    for s in lines:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """SHA-256 of ``obj`` as JSON with sorted keys: the same value always gives the same digest."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to (for writers that take a file name).
    On leaving the block the file is fsynced and renamed onto ``path``; on an exception it is
    removed and ``path`` is left as it was. The name ``.<name>.<pid>.<random>.tmp`` is hidden and
    says which process wrote it (a crash leaves it for the next run to remove)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], mode: str = "w") -> None:
    """Call ``write(f)`` on a file opened with ``mode`` that replaces ``path`` all at once
    (:func:`atomic_path`), e.g. ``atomic_write(p, lambda f: json.dump(obj, f))``."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        write(f)

def cache_dir() -> Path:
    """``$EVO2KIT_CACHE_DIR`` or ``~/.cache/evo2kit`` (downloads and the verification memo)."""
    d = os.environ.get("EVO2KIT_CACHE_DIR")
    return Path(d).expanduser() if d else Path.home() / ".cache" / "evo2kit"


def output_dir() -> Path:
    """Where a run leaves files for later steps: ``$EVO2KIT_OUTPUT_DIR`` (the tutorial runner's
    ``build/<profile>``), else :func:`cache_dir`, never the folder a notebook runs in."""
    d = os.environ.get("EVO2KIT_OUTPUT_DIR")
    return Path(d) if d else cache_dir()
