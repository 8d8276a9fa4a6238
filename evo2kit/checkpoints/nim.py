"""EXPERIMENTAL. An HTTP client for Evo 2 served by NVIDIA NIM: the hosted API or a self-hosted container.

    client = NimClient("https://health.api.nvidia.com/v1/biology/arc/evo2-40b", api_key=..., model="evo2_40b")
    client.forward("ACGT...", ["unembed", "blocks.20.mlp.l3"])   # {layer: (L, D) float32}
    client.log_likelihoods(["ACGT...", ...])                      # [(L-1,) float32], position i predicts i+1

``forward`` POSTs ``{"sequence", "output_layers"}`` to ``<url>/forward`` and reads the answer in any of the
forms the service gives: JSON ``{"data": base64 NPZ}``, ``application/zip`` holding that JSON, a 302 to a
presigned URL serving the zip (fetched without the key), or 202 with ``NVCF-REQID`` to poll. Layer names
are evo2kit's (vortex's): ``unembed`` (logits), ``blocks.N``, ``blocks.N.mlp.l3``, ``embedding_layer``,
``norm``; they go out in one of two dialects: ``vortex`` (the hosted service: the names as they are, NPZ
keys ``<layer>.output``, arrays (1, L, D)) or ``nim2`` (NIM 2.x documentation: ``output_layer``,
``decoder.layers.N``, ``embedding``, ``decoder.final_norm``, arrays (L, 1, D)). The client starts with the
one its URL suggests and switches once, for good, when the service answers 422 "... has no attribute".
Every returned array must have one row per base of its sequence: anything else stops the run (a changed
interface), it is never trimmed or padded to fit.

Retries: 408, 429, 5xx and 422 "busy" answers are retried with exponential backoff, at least as long as
``Retry-After`` asks; requests are spaced to ``requests_per_minute`` and at most ``concurrency`` run at
once. Answers are kept on disk (``cache_dir``; keyed by endpoint, model, layer and the sequence's SHA-256,
written atomically), so a rerun makes no call. Failures a user can act on raise the ``evo2kit.cli``
errors (one sentence, no traceback in a CLI): a missing or refused key and an over-long sequence
(UsageError), a rate still exhausted after the retries (BusyError), an answer of another shape than the
contract's (DataError). docs/nim.md lists each field of the contract this relies on, with its source.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import requests
import torch

from evo2kit.cli import BusyError, DataError, UsageError
from evo2kit.files import atomic_write, sha256_json
from evo2kit.files import cache_dir as evo2kit_cache_dir

HOSTED_HOST = "health.api.nvidia.com"
HOSTED_URLS = {"evo2_40b": f"https://{HOSTED_HOST}/v1/biology/arc/evo2-40b"}
"""Model name -> the hosted endpoint (POST <url>/forward, <url>/generate)."""
SELF_HOSTED_PATH = "/biology/arc/evo2"
"""The self-hosted container's path (NIM quickstart), appended to a URL given as host and port only."""
HOSTED_MAX_BASES = 16_000
"""Longest sequence the hosted service takes (ArcInstitute/evo2 issue #93: ~16 kb; ViroSense uses 16,000)."""
HOSTED_REQUESTS_PER_MINUTE = 40.0
"""The hosted service's reported rate limit (~40 requests a minute; evo2kit issue #35)."""
GET_KEY = "https://build.nvidia.com/arc/evo2-40b"
LOGITS = "unembed"
BYTES_PER_LOGIT = 8  # the hosted service answers float64; a self-hosted one may send less: an upper bound
VOCAB = 512

_NIM2_NAMES = {"unembed": "output_layer", "embedding_layer": "embedding", "norm": "decoder.final_norm"}
_BLOCK = re.compile(r"blocks\.(\d+)(\.mlp\.l3)?$")


def nim2_name(layer: str) -> str:
    """evo2kit's layer name in the NIM 2.x dialect: 'unembed' -> 'output_layer', 'blocks.20' ->
    'decoder.layers.20', 'blocks.20.mlp.l3' -> 'decoder.layers.20.mlp.linear_fc2' (Megatron's name of
    the MLP's last projection)."""
    if layer in _NIM2_NAMES:
        return _NIM2_NAMES[layer]
    m = _BLOCK.match(layer)
    if not m:
        raise KeyError(f"no NIM 2.x name is known for layer {layer!r}; use 'unembed', 'embedding_layer', 'norm', "
                       "'blocks.N' or 'blocks.N.mlp.l3'")
    return f"decoder.layers.{m.group(1)}" + (".mlp.linear_fc2" if m.group(2) else "")


def endpoint_url(url: str) -> str:
    """The base URL requests go to: a trailing /forward or /generate removed; a URL of a host and port
    only (``http://gpu-box:8000``) gets the self-hosted path."""
    url = url.rstrip("/")
    for suffix in ("/forward", "/generate"):
        url = url.removesuffix(suffix)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"NIM url {url!r} is not an http(s) URL, e.g. {HOSTED_URLS['evo2_40b']} or "
                         f"http://localhost:8000{SELF_HOSTED_PATH}")
    return url if parts.path not in ("", "/") else url + SELF_HOSTED_PATH


class _NoAttribute(Exception):
    """The service does not know a layer name: the other dialect's names may be the right ones."""


class NimClient:
    """EXPERIMENTAL. See the module docstring. ``url``: the endpoint (hosted or self-hosted); ``api_key``:
    needed by the hosted service, sent as ``Authorization: Bearer``; ``model``: the served model's name
    (part of the cache key); ``dialect``: 'vortex' or 'nim2' to start with (None: 'vortex' for the hosted
    service, else 'nim2'); ``requests_per_minute``, ``max_length``: None: the hosted service's
    (:data:`HOSTED_REQUESTS_PER_MINUTE`, :data:`HOSTED_MAX_BASES`), no limit elsewhere; ``cache_dir``:
    None: ``<evo2kit cache>/nim``. ``calls`` counts the requests sent (polls and redirects included)."""

    def __init__(self, url: str, api_key: str | None = None, model: str = "evo2_40b", *, dialect: str | None = None,
                 requests_per_minute: float | None = None, concurrency: int = 2, max_retries: int = 6,
                 backoff_s: float = 2.0, timeout_s: float = 600.0, max_length: int | None = None,
                 cache_dir: str | Path | None = None, poll_s: float = 2.0):
        self.url = endpoint_url(url)
        parts = urlsplit(self.url)
        self.hosted = parts.hostname == HOSTED_HOST
        if dialect not in (None, "vortex", "nim2"):
            raise ValueError(f"dialect must be 'vortex' or 'nim2', not {dialect!r}")
        if self.hosted and not api_key:
            raise UsageError(f"the hosted Evo 2 service ({self.url}) needs an API key: set NVIDIA_API_KEY or pass "
                             f"api_key= (a free key: {GET_KEY}, 'Get API Key')")
        self.api_key, self.model = api_key, model
        self.dialect = dialect or ("vortex" if self.hosted else "nim2")
        self.status_url = f"{parts.scheme}://{parts.netloc}/v1/status"
        rate = requests_per_minute if requests_per_minute is not None else (
            HOSTED_REQUESTS_PER_MINUTE if self.hosted else None)
        self.min_interval_s = 60.0 / rate if rate else 0.0
        self.max_length = max_length if max_length is not None else (HOSTED_MAX_BASES if self.hosted else None)
        self.concurrency, self.max_retries, self.backoff_s = concurrency, max_retries, backoff_s
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else evo2kit_cache_dir() / "nim"
        self.calls = 0
        self._switched = False  # the dialect is switched once, for good
        self._settled = False  # a forward has succeeded: the dialect is known
        self._lock = threading.Lock()
        self._next_send = 0.0
        self._sessions = threading.local()  # one connection pool per thread: a Session is not thread-safe

    # -- what the notebooks ask for -------------------------------------------------------------

    def forward(self, sequence: str, layers: list[str]) -> dict[str, np.ndarray]:
        """{layer: (L, D) float32} for one sequence of L bases, each layer read from the cache or
        asked for (all missing ones in one request)."""
        out = {layer: self._cached(layer, sequence) for layer in layers}
        missing = [layer for layer, a in out.items() if a is None]
        if missing:
            got = self._forward_call(sequence, missing)
            for layer in missing:
                self._store(layer, sequence, got[layer])
                out[layer] = got[layer]
        return out

    def log_likelihoods(self, sequences: list[str]) -> list[np.ndarray]:
        """Per sequence of L bases, (L-1,) float32: log P(base i+1 | bases 0..i), the log-softmax of the
        logits (cast to float32, as evo2kit scores) at position i read at the next base. Only these are
        kept in the cache, not the logits (an 8-kb window's float64 logits are 32 MiB)."""
        def one(seq: str) -> np.ndarray:
            kept = self._cached("loglik", seq)
            if kept is not None:
                return kept
            logits = torch.from_numpy(self._forward_call(seq, [LOGITS])[LOGITS])
            ids = torch.tensor(np.frombuffer(seq.encode(), np.uint8).astype(np.int64))
            lp = torch.log_softmax(logits[None, :-1], -1).gather(2, ids[None, 1:, None])[0, :, 0].numpy()
            self._store("loglik", seq, lp)
            return lp

        unique = list(dict.fromkeys(sequences))  # each distinct sequence asked for once
        found = dict(zip(unique, self.map(one, unique)))
        return [found[s] for s in sequences]

    def generate(self, prompt: str, n_tokens: int, temperature: float, top_k: int,
                 seed: int | None) -> tuple[str, list[float]]:
        """(generated bases, probability of each sampled base) from ``<url>/generate``; kept in the cache
        when ``seed`` makes the answer repeatable."""
        payload = {"sequence": prompt, "num_tokens": n_tokens, "temperature": temperature, "top_k": top_k,
                   "enable_sampled_probs": True, **({"random_seed": seed} if seed is not None else {})}
        key = self._key(json.dumps({k: v for k, v in payload.items() if k != "sequence"}, sort_keys=True), prompt)
        path = self.cache_dir / f"generate-{key}.json"
        if seed is not None and path.is_file():
            body = json.loads(path.read_text())
        else:
            self._check_length(prompt)
            body = self._answer(self._request("generate", payload), "generate")
            if not isinstance(body.get("sequence"), str):
                raise DataError(f"the NIM service's /generate answer has no 'sequence' (keys {sorted(body)}): "
                                "its interface has changed")
            if seed is not None:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                atomic_write(path, lambda f: json.dump(body, f))
        probs = body.get("sampled_probs") or []
        if probs and len(probs) != len(body["sequence"]):
            raise DataError(f"the NIM service's /generate answer has {len(probs)} sampled probabilities for "
                            f"{len(body['sequence'])} bases: its interface has changed")
        return body["sequence"], [float(p) for p in probs]

    def plan(self, sequences: list[str], layer: str = "loglik") -> tuple[int, int, int]:
        """(calls to make, answers already in the cache, bytes to download at most) for the distinct
        ``sequences``."""
        unique = list(dict.fromkeys(sequences))
        todo = [s for s in unique if not self._path(layer, s).is_file()]
        return len(todo), len(unique) - len(todo), sum(len(s) for s in todo) * VOCAB * BYTES_PER_LOGIT

    def map(self, fn, items: list) -> list:
        """``[fn(x) for x in items]`` on ``concurrency`` threads, in order; until a forward has succeeded
        (the dialect is settled), the first item goes alone."""
        if self.concurrency <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        first = [] if self._settled else [fn(items[0])]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return first + list(pool.map(fn, items[len(first):]))

    # -- the cache ------------------------------------------------------------------------------

    def _key(self, what: str, sequence: str) -> str:
        return sha256_json([self.url, self.model, what, hashlib.sha256(sequence.encode()).hexdigest()])[:32]

    def _path(self, what: str, sequence: str) -> Path:
        return self.cache_dir / f"{self._key(what, sequence)}.npy"

    def _cached(self, what: str, sequence: str) -> np.ndarray | None:
        path = self._path(what, sequence)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # unreadable: asked for again
            return None

    def _store(self, what: str, sequence: str, array: np.ndarray) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path(what, sequence), lambda f: np.save(f, array), mode="wb")

    # -- one forward request --------------------------------------------------------------------

    def _check_length(self, sequence: str) -> None:
        if self.max_length is not None and len(sequence) > self.max_length:
            raise UsageError(f"a sequence of {len(sequence):,} bases is longer than the {self.max_length:,} the "
                             f"NIM service at {self.url} takes: use shorter windows")

    def _forward_call(self, sequence: str, layers: list[str]) -> dict[str, np.ndarray]:
        """{layer: (L, D) float32} straight from the service, in the dialect that works (switched once)."""
        self._check_length(sequence)
        for attempt in range(2):
            dialect = self.dialect
            wire = {layer: layer if dialect == "vortex" else nim2_name(layer) for layer in layers}
            try:
                body = self._answer(self._request("forward", {"sequence": sequence,
                                                              "output_layers": list(wire.values())}), "forward")
            except _NoAttribute as e:
                with self._lock:
                    if self.dialect == dialect and not self._switched:
                        self.dialect, self._switched = ("nim2" if dialect == "vortex" else "vortex"), True
                    elif self.dialect == dialect:
                        raise DataError(f"the NIM service at {self.url} knows neither the vortex nor the NIM 2.x "
                                        f"name of layer(s) {layers} ({e}): its interface has changed") from None
                continue
            arrays = {layer: self._array(body, name, len(sequence)) for layer, name in wire.items()}
            self._settled = True
            return arrays
        raise DataError(f"the NIM service at {self.url} refused layer(s) {layers} in both dialects")

    def _array(self, body: dict, name: str, length: int) -> np.ndarray:
        """The (L, D) float32 array of layer ``name`` in a decoded forward answer; DataError unless it
        has exactly ``length`` rows."""
        if not isinstance(body.get("data"), str):
            raise DataError(f"the NIM service's /forward answer has no base64 'data' (keys {sorted(body)}): "
                            "its interface has changed")
        try:
            with np.load(io.BytesIO(base64.b64decode(body["data"])), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise DataError(f"the NIM service's /forward 'data' is not a base64 NPZ ({e}): its interface has "
                            "changed") from None
        key = next((k for k in (f"{name}.output", name) if k in arrays), None)
        if key is None:
            raise DataError(f"the NIM service answered arrays {sorted(arrays)} for layer {name!r}: its "
                            "interface has changed")
        a = arrays[key]
        if a.ndim == 3 and a.shape[0] == 1 and a.shape[1] == length:
            a = a[0]  # (1, L, D): the hosted service
        elif a.ndim == 3 and a.shape[1] == 1:
            a = a[:, 0]  # (L, 1, D): NIM 2.x's documented [seq_len, batch_size, D]
        if a.ndim != 2 or a.shape[0] != length:
            raise DataError(f"the NIM service returned layer {name!r} with shape {tuple(arrays[key].shape)} for a "
                            f"sequence of {length:,} bases (expected {length:,} positions): refusing to "
                            "misalign; its interface may have changed")
        return np.ascontiguousarray(a, dtype=np.float32)

    # -- HTTP -----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})}

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        """One request, spaced after the previous one by the rate limit."""
        with self._lock:
            wait = self._next_send - time.monotonic()
            self._next_send = max(self._next_send, time.monotonic()) + self.min_interval_s
            self.calls += 1
        if wait > 0:
            time.sleep(wait)
        if not hasattr(self._sessions, "session"):
            self._sessions.session = requests.Session()
        return self._sessions.session.request(method, url, timeout=self.timeout_s, allow_redirects=False, **kwargs)

    def _request(self, endpoint: str, payload: dict) -> requests.Response:
        """The final answer to POST ``<url>/<endpoint>`` (200, or an error raised as a sentence): transient
        failures retried with backoff, 202s polled, redirects followed without the key."""
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                r = self._send("POST", f"{self.url}/{endpoint}", json=payload, headers=self._headers())
                while r.status_code == 202:  # NVCF: not done yet; poll its request id
                    reqid = r.headers.get("NVCF-REQID")
                    if not reqid:
                        raise DataError(f"the NIM service answered 202 without an NVCF-REQID header to poll "
                                        f"({self.url}/{endpoint}): its interface has changed")
                    time.sleep(self.poll_s)
                    r = self._send("GET", f"{self.status_url}/{reqid}", headers=self._headers())
                if r.status_code in (301, 302, 303, 307, 308) and r.headers.get("Location"):
                    r = self._send("GET", r.headers["Location"])  # presigned: no key goes there
                    if r.status_code == 403:  # expired before we got there: ask again
                        last = "a presigned URL expired"
                        time.sleep(self._delay(attempt, None))
                        continue
            except requests.RequestException as e:
                last = f"{type(e).__name__}: {e}"
                time.sleep(self._delay(attempt, None))
                continue
            text = r.text[:300] if r.status_code != 200 else ""
            if r.status_code == 200:
                return r
            if r.status_code in (401, 403):
                raise UsageError(f"the NIM service at {self.url} refused the API key (HTTP {r.status_code}): "
                                 f"check NVIDIA_API_KEY (a free key: {GET_KEY})")
            if r.status_code == 422 and "has no attribute" in text:
                raise _NoAttribute(text)
            if r.status_code == 413 or (r.status_code == 422 and re.search(r"too long|length|exceed", text, re.I)):
                raise UsageError(f"the NIM service at {self.url} refused a sequence of "
                                 f"{len(payload.get('sequence', '')):,} bases as too long (HTTP {r.status_code}: "
                                 f"{text}): use shorter windows")
            busy = r.status_code == 422 and re.search(r"busy|out of memory|try again", text, re.I)
            if r.status_code in (408, 429) or r.status_code >= 500 or busy:
                last = f"HTTP {r.status_code}: {text}"
                time.sleep(self._delay(attempt, r.headers.get("Retry-After")))
                continue
            raise UsageError(f"the NIM service at {self.url} refused the request (HTTP {r.status_code}: {text})")
        if last.startswith("HTTP 429"):
            raise BusyError(f"the NIM service at {self.url} still limits the rate after {self.max_retries} retries "
                            f"({last}): try again later, or lower requests_per_minute")
        raise BusyError(f"the NIM service at {self.url} failed {self.max_retries + 1} times ({last}): try again later")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff, at least what ``Retry-After`` (seconds) asks."""
        delay = self.backoff_s * 2 ** attempt
        try:
            return max(delay, float(retry_after)) if retry_after else delay
        except ValueError:  # an HTTP date: take the backoff
            return delay

    def _answer(self, r: requests.Response, endpoint: str) -> dict:
        """The JSON object of a 200 answer, from JSON or from a zip holding it (as a .json member or an
        .npy holding its text)."""
        kind = r.headers.get("Content-Type", "")
        raw = r.content
        if "zip" in kind or raw[:2] == b"PK":
            try:
                with zipfile.ZipFile(io.BytesIO(raw)) as z:
                    member = z.read(z.namelist()[0])
            except (zipfile.BadZipFile, IndexError) as e:
                raise DataError(f"the NIM service's /{endpoint} zip answer cannot be read ({e})") from None
            if member[:6] == b"\x93NUMPY":  # an NPZ member holding the JSON text
                member = np.load(io.BytesIO(member), allow_pickle=False).item()
            raw = member.encode() if isinstance(member, str) else member
        try:
            body = json.loads(raw)
        except ValueError:
            raise DataError(f"the NIM service's /{endpoint} answer ({kind or 'no Content-Type'}) is neither JSON "
                            "nor a zip holding JSON: its interface has changed") from None
        if not isinstance(body, dict):
            raise DataError(f"the NIM service's /{endpoint} answer is not a JSON object: its interface has changed")
        return body


