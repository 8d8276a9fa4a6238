"""A stand-in for NVIDIA's Evo 2 service (NIM) on 127.0.0.1, serving evo2kit-tiny's numbers, for the tests of
evo2kit.checkpoints.nim and of the nim-evo2_40b profile (tests import it as ``nim_standin``).

It speaks one of the two layer dialects the client knows ('vortex': the hosted service's names, NPZ keys
``<layer>.output``, arrays (1, L, D) float64; 'nim2': NIM 2.x's names, arrays (L, 1, D) float32) and answers
422 "... has no attribute" to the other's names. ``script`` lists the form of the next answers to POSTs, one
each: 'json' (the default), 'zip' (application/zip holding the JSON), 'npz-zip' (an NPZ whose member holds the
JSON text), 'redirect' (302 to a presigned URL serving the zip, which refuses a request carrying a key),
'accepted' (202 + NVCF-REQID; the status URL answers 202 once more, then the answer), '429' (with
``retry_after``), 'busy' (422 busy), '500', 'truncate' (every array one position short), 'nodata' (JSON
without 'data'). ``counts`` counts the requests by kind; ``presigned_with_key`` those that sent the key to
the presigned URL.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import uuid
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch

import evo2kit

_VORTEX = re.compile(r"(unembed|embedding_layer|norm|blocks\.\d+(\.mlp\.l3)?)$")
_NIM2 = {"output_layer": "unembed", "embedding": "embedding_layer", "decoder.final_norm": "norm"}


def evo2kit_name(wire: str, dialect: str) -> str | None:
    """The evo2kit module a layer name of ``dialect`` points at ('unembed': the logits), or None."""
    if dialect == "vortex":
        return wire if _VORTEX.match(wire) else None
    if wire in _NIM2:
        return _NIM2[wire]
    m = re.match(r"decoder\.layers\.(\d+)(\.mlp\.linear_fc2)?$", wire)
    return f"blocks.{m.group(1)}" + (".mlp.l3" if m.group(2) else "") if m else None


class StandIn:
    """``with StandIn(dialect="vortex") as s: s.url`` -> a NIM endpoint on 127.0.0.1 (see the module docstring)."""

    def __init__(self, dialect: str = "vortex", api_key: str | None = None, model=None, retry_after: str = "1"):
        self.dialect, self.api_key, self.retry_after = dialect, api_key, retry_after
        self.model = model or evo2kit.load_model()
        self.script: list[str] = []
        self.counts: Counter = Counter()
        self.presigned_with_key = 0
        self._held: dict[str, tuple[int, dict, bytes]] = {}  # answers waiting behind a 202 or a redirect
        self._polled: Counter = Counter()
        self._lock = threading.Lock()

    def __enter__(self) -> "StandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                standin._reply(self, *standin.post(self.path, self.headers, body))

            def do_GET(self):
                standin._reply(self, *standin.get(self.path, self.headers))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.root + "/biology/arc/evo2"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        return False

    # -- the service ----------------------------------------------------------------------------

    def post(self, path: str, headers, body: dict) -> tuple[int, dict, bytes]:
        endpoint = path.rsplit("/", 1)[-1]
        self.counts[endpoint] += 1
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(401, {"detail": "Unauthorized"})
        with self._lock:
            form = self.script.pop(0) if self.script else "json"
        if form == "429":
            return 429, {"Content-Type": "application/json", "Retry-After": self.retry_after}, b'{"detail":"Too Many"}'
        if form == "busy":
            return _json(422, {"detail": "The model is busy, try again later"})
        if form == "500":
            return _json(500, {"detail": "Internal Server Error"})
        status, answer = self.forward(body, form) if endpoint == "forward" else self.generate(body)
        if status != 200 or form in ("json", "truncate", "nodata"):
            return _json(status, answer)
        text = json.dumps(answer).encode()
        if form == "accepted":
            reqid = str(uuid.uuid4())
            self._held[reqid] = _json(200, answer)
            return 202, {"NVCF-REQID": reqid}, b""
        if form == "npz-zip":
            buf = io.BytesIO()
            np.savez(buf, **{str(uuid.uuid4()): np.array(text.decode())})
            return 200, {"Content-Type": "application/zip"}, buf.getvalue()
        zipped = _zip(text)
        if form == "redirect":
            token = str(uuid.uuid4())
            self._held[token] = (200, {"Content-Type": "application/zip"}, zipped)
            return 302, {"Location": f"{self.root}/presigned/{token}"}, b""
        return 200, {"Content-Type": "application/zip"}, zipped

    def get(self, path: str, headers) -> tuple[int, dict, bytes]:
        kind, _, token = path.strip("/").rpartition("/")
        self.counts["presigned" if kind == "presigned" else "status"] += 1
        if kind == "presigned":
            if headers.get("Authorization"):  # S3 refuses a second authentication
                self.presigned_with_key += 1
                return _json(400, {"detail": "Only one auth mechanism allowed"})
            return self._held.pop(token)
        self._polled[token] += 1
        if self._polled[token] == 1:
            return 202, {"NVCF-REQID": token}, b""
        return self._held.pop(token)

    @torch.no_grad()
    def outputs(self, sequence: str, names: list[str]) -> dict[str, np.ndarray]:
        """{evo2kit name: (L, D) float32} from evo2kit-tiny, the logits as ``score_sequences`` computes them."""
        ids = torch.tensor([list(sequence.encode())])
        got = {}
        hooked = [n for n in names if n != "unembed"]
        with self._lock, self.model.hooks(hooked, lambda n, y: got.__setitem__(n, y[0].float().numpy())):
            got["unembed"] = self.model.model(ids)[0].float().numpy()
        return got

    def forward(self, body: dict, form: str) -> tuple[int, dict]:
        wire = body["output_layers"]
        names = {w: evo2kit_name(w, self.dialect) for w in wire}
        unknown = [w for w, n in names.items() if n is None or (n.startswith("blocks.") and int(n.split(".")[1])
                                                                >= self.model.config.num_layers)]
        if unknown:
            return 422, {"detail": f"'StripedHyena' object has no attribute '{unknown[0]}'"}
        got = self.outputs(body["sequence"], list(names.values()))
        arrays = {}
        for w, n in names.items():
            a = got[n][:-1] if form == "truncate" else got[n]
            if self.dialect == "vortex":
                arrays[f"{w}.output"] = a[None].astype(np.float64)
            else:
                arrays[w] = a[:, None]
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        if form == "nodata":
            return 200, {"output": "moved", "elapsed_ms": 1}
        return 200, {"data": base64.b64encode(buf.getvalue()).decode(), "elapsed_ms": 1}

    @torch.no_grad()
    def generate(self, body: dict) -> tuple[int, dict]:
        prompt, n = body["sequence"], body.get("num_tokens", 100)
        with self._lock:
            out = self.model.generate([prompt], n_tokens=n, temperature=body.get("temperature", 0.7),
                                      top_k=body.get("top_k", 3), seed=body.get("random_seed"))
            ids = torch.tensor([list((prompt + out.sequences[0]).encode())])
            logp = torch.log_softmax(self.model.model(ids)[0, len(prompt) - 1:-1].float(), -1)
        probs = logp.gather(1, ids[0, len(prompt):, None])[:, 0].exp().tolist()
        return 200, {"sequence": out.sequences[0], "sampled_probs": probs, "elapsed_ms": 1}

    @staticmethod
    def _reply(handler, status: int, headers: dict, payload: bytes) -> None:
        handler.send_response(status)
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _json(status: int, obj: dict) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def _zip(text: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("response.json", text)
    return buf.getvalue()
