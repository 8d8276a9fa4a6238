"""`make lab`: JupyterLab with the project's kernel and jupytext's pairing, checked through a real
server (headless, loopback only, a token) and its REST API, on a copy of the notebooks."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from evo2kit.tutorial import runner

pytestmark = pytest.mark.slow  # a real JupyterLab server

STARTUP_S = 240  # an upper bound: about 10 s on 2 idle cores, minutes on a starved machine


@pytest.fixture
def lab(tmp_path):
    """(base URL, token, root folder) of a JupyterLab server rooted at a folder holding a copy of notebooks/."""
    shutil.copytree(runner.NOTEBOOKS, tmp_path / "root" / "notebooks")
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path / 'root'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--ServerApp.allow_root=True"],  # CI containers run as root
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
             "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                api(base, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {STARTUP_S} s:\n"
                                + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, token, tmp_path / "root"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def api(base: str, token: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_lab_has_the_kernel_and_keeps_the_py_twin_in_step(lab):
    base, token, root = lab
    specs = api(base, token, "/api/kernelspecs")["kernelspecs"]
    assert "python3" in specs and specs["python3"]["spec"]["language"] == "python"

    # jupytext's contents manager: the .py source opens as a notebook...
    text_notebook = api(base, token, "/api/contents/notebooks/03_zero_shot.py")
    assert text_notebook["type"] == "notebook" and text_notebook["content"]["cells"]

    # ...and a notebook saved from the browser writes its paired .py as well.
    model = api(base, token, "/api/contents/notebooks/03_zero_shot.ipynb")
    model["content"]["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "Edited in the browser."})
    api(base, token, "/api/contents/notebooks/03_zero_shot.ipynb", "PUT",
        {"type": "notebook", "format": "json", "content": model["content"]})
    assert "# Edited in the browser." in (root / "notebooks" / "03_zero_shot.py").read_text()
