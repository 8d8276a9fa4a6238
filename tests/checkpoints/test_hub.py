"""Weights by name: the real ``huggingface_hub`` client against a Hub served on 127.0.0.1.

A thread serves repositories in the Hub's URL layout (``/api/models/{repo}/revision/{rev}``
listing files with their Git LFS SHA-256, ``/{repo}/resolve/{rev}/{file}`` answering HEAD and
GET with ``X-Repo-Commit``, ``ETag`` and ``Content-Length``, and ranges, as huggingface_hub's
``file_download.py`` reads them). The client runs in a fresh Python process with ``HF_ENDPOINT``
and ``HF_HOME`` set, since huggingface_hub reads both when it is imported. The checkpoint served
is a small random-weight one in the official layout, under the published repository ids and
file names.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import evo2kit
from evo2kit.checkpoints import rehearsal

pytestmark = pytest.mark.slow  # each test runs a Python process against a local Hub server

ROOT = Path(__file__).resolve().parents[2]
COMMIT = hashlib.sha1(b"evo2kit test hub").hexdigest()


class Hub(ThreadingHTTPServer):
    """repos: {repo: {file: bytes}}; ``interrupt``: files whose GETs break off (the first after
    half the bytes, later ones at once); ``corrupt``: files served with one byte changed (the
    listing and ETag keep the true SHA-256); ``gets``: GET requests per file."""

    daemon_threads = True

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos, self.interrupt, self.corrupt, self.gets = repos, set(), set(), {}
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _repo_and_rest(self, path: str, marker: str) -> tuple[str, str] | None:
        for repo in self.server.repos:
            prefix = f"/{repo}/{marker}/"
            if path.startswith(prefix):
                return repo, path[len(prefix):]
        return None

    def _send(self, status: int, headers: dict, body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.startswith("/api/models/"):
            repo = path[len("/api/models/"):].split("/revision/")[0]
            files = self.server.repos.get(repo)
            if files is None:
                return self._send(404, {"X-Error-Code": "RepoNotFound", "Content-Length": 0})
            body = json.dumps({"id": repo, "sha": COMMIT, "siblings": [
                {"rfilename": f, "size": len(b), "blobId": hashlib.sha1(b).hexdigest(),
                 "lfs": {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b), "pointerSize": 134}}
                for f, b in files.items()]}).encode()
            return self._send(200, {"Content-Type": "application/json", "Content-Length": len(body)}, body)
        found = self._repo_and_rest(path, "resolve")
        if found is None:
            return self._send(404, {"Content-Length": 0})
        repo, rest = found
        file = rest.split("/", 1)[1]
        data = self.server.repos[repo].get(file)
        if data is None:
            return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT, "Content-Length": 0})
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if self.command == "HEAD":
            return self._send(200, headers | {"Content-Length": len(data)})
        self.server.gets[file] = self.server.gets.get(file, 0) + 1
        if file in self.server.corrupt:
            data = bytes([data[0] ^ 1]) + data[1:]
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if file in self.server.interrupt:  # the connection drops mid-file
            self.send_response(status)
            for k, v in (headers | {"Content-Length": len(body)}).items():
                self.send_header(k, str(v))
            self.end_headers()
            if self.server.gets[file] == 1:
                self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, headers | {"Content-Length": len(body)}, body)

    do_HEAD = do_GET


def client(code: str, hub: Hub | str, home: Path, offline: bool = False) -> dict:
    """Run ``code`` (which sets ``result``) in a fresh interpreter against the hub; returns
    {"result": ...} or {"error": type, "message": ...}."""
    script = ("import json, evo2kit\nfrom evo2kit.checkpoints import hub\ntry:\n"
              + "".join(f"    {line}\n" for line in code.splitlines())
              + "    out = {'result': result}\nexcept Exception as e:\n"
              "    out = {'error': type(e).__name__, 'message': str(e)}\nprint(json.dumps(out, default=str))\n")
    env = os.environ | {"HF_ENDPOINT": hub if isinstance(hub, str) else hub.url, "HF_HOME": str(home / "hf"),
                        "EVO2KIT_CACHE_DIR": str(home / "evo2kit"), "HF_HUB_DISABLE_TELEMETRY": "1",
                        "HF_HUB_DOWNLOAD_TIMEOUT": "10", "HF_HUB_ETAG_TIMEOUT": "10", "NO_PROXY": "127.0.0.1",
                        "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1" if offline else "0"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, bytes, torch.Tensor]:
    """(YAML, the bytes of the whole .pt, logits of a fixed sequence loaded from the local file)."""
    folder = tmp_path_factory.mktemp("ckpt")
    yml, pt = rehearsal.write_checkpoint(folder, parts=1)
    (logits, _), _ = evo2kit.load_model(str(yml), local_path=str(pt), device="cpu")(IDS)
    return yml, pt.read_bytes(), logits


IDS = torch.tensor([[65, 67, 71, 84, 84, 71, 65, 65] * 16])
LOAD = "m = evo2kit.load_model({yml!r}, local_path=p, device='cpu')\n(l, _), _ = m(torch.tensor({ids}))\n"


def blobs(home: Path) -> list[str]:
    """Every file the Hub cache holds (blobs, half files included), by name."""
    return sorted(p.name for p in (home / "hf").rglob("*") if p.is_file() and "blobs" in p.parts)


def test_download_by_name_loads_and_the_cache_is_reused(checkpoint, tmp_path):
    yml, data, want = checkpoint
    hub = Hub({"arcinstitute/evo2_1b_base": {"evo2_1b_base.pt": data, "config.json": b"{}"}})
    code = ("import torch\np = hub.download_checkpoint('evo2_1b_base')\n" + LOAD.format(yml=str(yml), ids=IDS.tolist())
            + "result = [str(p), l.tolist()]")
    first = client(code, hub, tmp_path)
    path, logits = first["result"]
    assert Path(path).name == "evo2_1b_base.pt" and str(tmp_path / "hf") in path
    assert torch.equal(torch.tensor(logits), want)
    assert hub.gets == {"evo2_1b_base.pt": 1}  # config.json is not fetched
    assert blobs(tmp_path) == [hashlib.sha256(data).hexdigest()]
    # another process: listed and checked, not downloaded; then by name through load_model, where the
    # same file reaches the loader (a small checkpoint cannot fit the 1B, which says so)
    out = client("again = str(hub.download_checkpoint('evo2_1b_base'))\n"
                 "result = evo2kit.load_model('evo2_1b_base', device='cpu')", hub, tmp_path)
    assert out["error"] == "CheckpointError" and "does not fit shc-evo2-1b-8k" in out["message"], out
    assert hub.gets == {"evo2_1b_base.pt": 1}
    # offline, from the cache alone
    out = client("result = str(hub.download_checkpoint('evo2_1b_base'))", hub, tmp_path, offline=True)
    assert out["result"] == path
    hub.shutdown()


def test_40b_parts_download_and_load_as_one_file(checkpoint, tmp_path):
    yml, data, want = checkpoint
    cuts = [0, len(data) // 3, 2 * len(data) // 3 + 5, len(data)]
    parts = {f"evo2_40b.pt.part{k}": data[cuts[k]:cuts[k + 1]] for k in range(3)}
    hub = Hub({"arcinstitute/evo2_40b": parts | {"README.md": b"# Evo 2 40B"}})
    code = ("import torch\np = hub.download_checkpoint('evo2_40b')\n" + LOAD.format(yml=str(yml), ids=IDS.tolist())
            + "result = [str(p), l.tolist()]")
    path, logits = client(code, hub, tmp_path)["result"]
    assert Path(path).name == "evo2_40b.pt.part0"
    assert torch.equal(torch.tensor(logits), want)
    assert hub.gets == {name: 1 for name in parts}
    hub.shutdown()


def test_interrupted_download_leaves_no_half_file_and_a_retry_works(checkpoint, tmp_path):
    _, data, _ = checkpoint
    hub = Hub({"arcinstitute/evo2_7b": {"evo2_7b.pt": data}})
    hub.interrupt.add("evo2_7b.pt")
    out = client("result = str(hub.download_checkpoint('evo2_7b'))", hub, tmp_path)
    assert out["error"] == "OSError" and "no partial file was kept" in out["message"], out
    assert hub.gets["evo2_7b.pt"] >= 2  # huggingface_hub resumed before giving up
    assert blobs(tmp_path) == []  # neither the half file nor a blob
    hub.interrupt.clear()
    path = client("result = str(hub.download_checkpoint('evo2_7b'))", hub, tmp_path)["result"]
    assert Path(path).read_bytes() == data
    hub.shutdown()


def test_a_file_whose_hash_differs_is_refused_and_deleted(checkpoint, tmp_path):
    _, data, _ = checkpoint
    hub = Hub({"arcinstitute/evo2_7b_base": {"evo2_7b_base.pt": data}})
    hub.corrupt.add("evo2_7b_base.pt")
    out = client("result = str(hub.download_checkpoint('evo2_7b_base'))", hub, tmp_path)
    assert out["error"] == "DataIntegrityError", out
    assert "refused evo2_7b_base.pt from the Hub repository arcinstitute/evo2_7b_base" in out["message"]
    assert hashlib.sha256(data).hexdigest() in out["message"] and "run again" in out["message"]
    assert blobs(tmp_path) == [] and not list((tmp_path / "hf").rglob("evo2_7b_base.pt"))
    hub.corrupt.clear()
    assert Path(client("result = str(hub.download_checkpoint('evo2_7b_base'))", hub, tmp_path)["result"]).is_file()
    hub.shutdown()


def test_offline_without_the_file_says_what_to_fetch_and_where(tmp_path):
    for offline, reason in [(False, "not reachable"), (True, "OfflineModeIsEnabled")]:
        out = client("shape_only = evo2kit.load_model('evo2_7b', random_weights=True, device='meta')\n"  # no Hub
                     "result = evo2kit.load_model('evo2_40b', device='cpu')",
                     "http://127.0.0.1:9", tmp_path, offline=offline)  # nothing listens on port 9
        message = out["message"]
        assert out["error"] == "FileNotFoundError", out
        for part in ("evo2_40b needs evo2_40b.pt", ".part0", "repository arcinstitute/evo2_40b", reason,
                     f"not in the Hub cache {tmp_path / 'hf' / 'hub'}", "hf download arcinstitute/evo2_40b",
                     "local_path="):
            assert part in message, (part, message)


def test_an_offline_cache_with_some_40b_parts_names_the_missing_one(checkpoint, tmp_path):
    yml, data, _ = checkpoint
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = {f"evo2_40b.pt.part{k}": data[cuts[k]:cuts[k + 1]] for k in range(3)}
    hub = Hub({"arcinstitute/evo2_40b": parts})
    assert Path(client("result = str(hub.download_checkpoint('evo2_40b'))", hub, tmp_path)["result"]).is_file()
    hub.shutdown()
    for link in (tmp_path / "hf").rglob("evo2_40b.pt.part2"):  # the cache as a copy that lost the last part
        link.resolve().unlink()
        link.unlink()
    out = client(f"result = evo2kit.load_model({str(yml)!r}, local_path=hub.download_checkpoint('evo2_40b'), "
                 "device='cpu')", "http://127.0.0.1:9", tmp_path, offline=True)
    assert out["error"] == "FileNotFoundError", out
    assert ("evo2_40b: the Hub cache" in out["message"] and "holds evo2_40b.pt.part0, evo2_40b.pt.part1 but not "
            "evo2_40b.pt.part2 (nor any part after it)" in out["message"]), out["message"]
    assert "hf download arcinstitute/evo2_40b --include 'evo2_40b.pt*'" in out["message"]


def test_goodfire_sae_downloads_by_name_checked_and_offline_from_the_cache(tmp_path):
    """Goodfire's SAE file (here a random one in its format) through the same client: downloaded
    once, checked, loaded with weights_only; offline, from the cache; offline and not cached, one
    message naming the repository and the file."""
    from evo2kit.analysis import sae

    path = sae.write_rehearsal_sae(tmp_path / "sae.pt", d_in=8, d_sae=64, k=4)
    hub = Hub({sae.GOODFIRE_REPO: {sae.GOODFIRE_FILE: path.read_bytes(), "README.md": b"# SAE"}})
    code = ("from evo2kit.analysis import sae\np = sae.goodfire_sae_path()\nm = sae.load_goodfire_sae(p, k=4)\n"
            "result = [str(p), m.d_in, m.d_sae]")
    got, d_in, d_sae = client(code, hub, tmp_path)["result"]
    assert Path(got).read_bytes() == path.read_bytes() and (d_in, d_sae) == (8, 64)
    assert hub.gets == {sae.GOODFIRE_FILE: 1} and blobs(tmp_path) == [hashlib.sha256(path.read_bytes()).hexdigest()]
    assert client("from evo2kit.analysis import sae\nresult = str(sae.goodfire_sae_path())", hub, tmp_path,
                  offline=True)["result"] == got
    assert hub.gets == {sae.GOODFIRE_FILE: 1}
    out = client("from evo2kit.analysis import sae\nresult = str(sae.goodfire_sae_path())", hub, tmp_path / "empty",
                 offline=True)
    assert out["error"] == "FileNotFoundError", out
    assert all(word in out["message"] for word in (sae.GOODFIRE_REPO, sae.GOODFIRE_FILE, "hf download"))
    hub.corrupt.add(sae.GOODFIRE_FILE)  # a file whose bytes differ from the Hub's SHA-256 is refused and deleted
    out = client("from evo2kit.analysis import sae\nresult = str(sae.goodfire_sae_path())", hub, tmp_path / "bad")
    assert out["error"] == "DataIntegrityError" and blobs(tmp_path / "bad") == [], out
    hub.shutdown()
