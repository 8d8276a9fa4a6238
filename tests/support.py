"""Helpers shared by test modules (fixtures live in conftest.py); tests import it as ``support``
(pyproject.toml puts tests/ on the path)."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def sigkill_when(proc: subprocess.Popen, ready, seconds: float) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polled every 50 ms): the way the resumption
    tests cut a run in the middle. Fails if the process ends first or makes no progress in ``seconds``."""
    deadline = time.time() + seconds
    try:
        while not ready():
            assert proc.poll() is None, "the slow run ended before it could be killed"
            assert time.time() < deadline, f"the slow run made no progress in {seconds:.0f} s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
