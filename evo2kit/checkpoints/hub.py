"""Official Evo 2 checkpoints by name, from the Hugging Face Hub, as the ``evo2`` package gets them.

``evo2.Evo2(name)`` downloads ``{name}.pt`` from the repository ``HF_MODEL_NAME_MAP[name]`` or,
for the 40B models, the parts ``{name}.pt.part0``, ``.part1``, ... that it then concatenates
(ArcInstitute/evo2 ``evo2/utils.py``; ``evo2/models.py``, ``Evo2.load_evo2_model``).
:func:`download_checkpoint` fetches the same files with ``huggingface_hub`` into the same Hub
cache (``$HF_HOME``, default ``~/.cache/huggingface``), so a file either package downloaded is
reused by the other. It

  * lists the repository once (``model_info``) to learn whether the checkpoint is one file or
    parts, and the SHA-256 the Hub records for each (Git LFS) file;
  * downloads each file with ``hf_hub_download``, which writes to a temporary file and moves it
    into the cache only when complete: an interrupted download leaves no half file behind, and
    the next call starts it again;
  * checks each file against the Hub's SHA-256 (memoised like the datasets', ``evo2kit.data.registry.verify``, so
    an unchanged 13 GB file is hashed once) and deletes a file that fails, so that the next call
    downloads it again instead of loading it;
  * leaves parts as they are: ``checkpoint.read_official_checkpoint`` reads them as one stream,
    where evo2 writes a joined copy (80 GB more disk for a 40B).

Offline (``HF_HUB_OFFLINE=1``, no network, Hub down) files already in the cache are used; if
there are none, one FileNotFoundError says which file to fetch and where to put it.

:func:`download_hub_file` does the same for any one file of a Hub repository (Goodfire's sparse
autoencoder for ``evo2_7b_262k``, read by ``evo2kit.analysis.sae``).
"""

from __future__ import annotations

import re
from pathlib import Path

from evo2kit.checkpoints.official import PUBLISHED_CHECKPOINTS, where_to_get, zip_complete
from evo2kit.data.registry import DataIntegrityError, Dataset, verify

_SHA256 = re.compile(r"[0-9a-f]{64}")


def hub_repo(name: str) -> str | None:
    """The Hugging Face repository id of a published checkpoint, or None (NGC-only ones)."""
    source = PUBLISHED_CHECKPOINTS[name].source
    return source.removeprefix("Hugging Face ") if source.startswith("Hugging Face ") else None


def download_checkpoint(name: str) -> Path:
    """Local path of the published checkpoint ``name`` for ``read_official_checkpoint``: its
    ``.pt`` file, or the first of its parts (the others beside it); downloaded into the Hub cache
    unless already there. Raises FileNotFoundError (offline and not cached: what to fetch, where
    to put it), DataIntegrityError (a file whose SHA-256 differs from the Hub's; it is deleted)
    or OSError (a download failed; nothing of it is kept)."""
    if name not in PUBLISHED_CHECKPOINTS:
        raise KeyError(f"{name!r} is not a published Evo 2 checkpoint: {sorted(PUBLISHED_CHECKPOINTS)}")
    repo, filename = hub_repo(name), PUBLISHED_CHECKPOINTS[name].filename
    if repo is None:
        raise FileNotFoundError(f"{where_to_get(name)}'...' (it is not on the Hugging Face Hub)")
    return _fetch(name, repo, filename, parts=True)


def download_hub_file(repo: str, filename: str) -> Path:
    """Local path of ``filename`` from the Hub repository ``repo`` (one file, no parts), downloaded
    into the Hub cache unless already there, checked against the SHA-256 the Hub lists; the same
    errors and offline behaviour as :func:`download_checkpoint`."""
    return _fetch(f"{repo}/{filename}", repo, filename, parts=False)


def _fetch(name: str, repo: str, filename: str, parts: bool) -> Path:
    """``filename`` (or, with ``parts``, its parts ``.part0``, ... when the repository has no
    whole file) from ``repo``; ``name`` is what messages call it."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo, files_metadata=True)
    except Exception as e:  # noqa: BLE001 (offline mode, no network, Hub down, gated: fall back to the cache)
        return _from_cache(name, repo, filename, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                           parts)
    listed = {s.rfilename: s for s in info.siblings or []}
    names = [filename] if filename in listed else _parts(filename, listed) if parts else []
    if not names:
        held = f"holds neither {filename} nor its parts {filename}.part0, ..." if parts else f"does not hold {filename}"
        raise FileNotFoundError(f"{name}: the Hub repository {repo} {held}; it lists {sorted(listed)}")
    paths = []
    for file in names:
        lfs = listed[file].lfs
        if not lfs or not _SHA256.fullmatch(str(lfs.sha256)):
            raise DataIntegrityError(f"{repo}/{file}: the Hub lists no SHA-256 for it, so it cannot be checked")
        paths.append(_download(repo, file, lfs.sha256))
    return paths[0]


def _parts(filename: str, present) -> list[str]:
    """``filename.part0``, ``.part1``, ... up to the first one not in ``present``."""
    parts = []
    while f"{filename}.part{len(parts)}" in present:
        parts.append(f"{filename}.part{len(parts)}")
    return parts


def _download(repo: str, file: str, sha256: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:  # revision main, as listed: the cache then maps main to this commit, which offline look-ups need
        path = Path(hf_hub_download(repo, file))
    except Exception as e:  # noqa: BLE001 (the HTTP library's errors differ across huggingface_hub versions)
        raise OSError(f"downloading {file} from the Hub repository {repo} failed ({type(e).__name__}: {e}); "
                      "no partial file was kept: run again to retry (files already downloaded are reused)") from e
    _verify(path, repo, file, sha256)
    return path


def _verify(path: Path, repo: str, file: str, sha256: str) -> None:
    """``evo2kit.data.registry.verify`` against the Hub's SHA-256; on a mismatch the cached copy is deleted."""
    entry = Dataset(f"{repo}/{file}", file, None, "file_sha256", sha256, f"{file} from the Hub repository {repo}")
    try:
        verify(path, entry)
    except DataIntegrityError as e:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise DataIntegrityError(f"refused {file} from the Hub repository {repo}: its SHA-256 differs from the "
                                 f"one the Hub lists ({e}). The copy was deleted from the Hub cache; run again "
                                 "to download it again") from None


def _from_cache(name: str, repo: str, filename: str, reason: str, parts: bool = True) -> Path:
    """The file (or its parts) from the Hub cache alone, checked against the SHA-256 its blob is named by."""
    from huggingface_hub import constants, hf_hub_download

    def cached(file: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo, file, local_files_only=True))
        except Exception:  # noqa: BLE001 (LocalEntryNotFoundError and kin: not cached)
            return None

    paths = [p for p in [cached(filename)] if p]
    while parts and (not paths or paths[-1].name != filename):
        part = cached(f"{filename}.part{len(paths)}")
        if part is None:
            break
        paths.append(part)
    if not paths:
        published = "" if "40b" not in name else f" (or, as published, its parts {filename}.part0, .part1, ...)"
        raise FileNotFoundError(
            f"{name} needs {filename}{published} from the Hugging Face Hub repository {repo}, which is not reachable "
            f"({reason}), and it is not in the Hub cache {constants.HF_HUB_CACHE}. On a machine with network "
            f"access run `hf download {repo} --include '{filename}*' --local-dir DIR`, then pass "
            f"local_path='DIR/{filename}' (or DIR), or copy that machine's {constants.HF_HUB_CACHE}/"
            f"models--{repo.replace('/', '--')} folder into this cache (HF_HOME sets where it is)")
    if paths[-1].name != filename and not zip_complete(paths[-1]):  # parts, and the last one cached ends nothing
        raise FileNotFoundError(
            f"{name}: the Hub cache {constants.HF_HUB_CACHE} holds {', '.join(p.name for p in paths)} but not "
            f"{filename}.part{len(paths)} (nor any part after it), and the Hub repository {repo} is not reachable "
            f"({reason}). Fetch the rest with `hf download {repo} --include '{filename}*'` where there is network")
    for path in paths:
        blob = path.resolve().name  # the Hub cache names a Git LFS file's blob by its SHA-256
        if _SHA256.fullmatch(blob):
            _verify(path, repo, path.name, blob)
    return paths[0]
