"""What a machine offers and what a model needs: memory in bytes, parameters by count.

Notebook 00 compares the two to say which model sizes fit here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch


def system_memory_bytes() -> tuple[int, int]:
    """(total, available) RAM in bytes: ``MemTotal`` and ``MemAvailable`` of /proc/meminfo on
    Linux; elsewhere the physical pages from sysconf, for both (available is not known there)."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemTotal"].split()[0]) * 1024, int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return total, total


def parameter_count(name_or_config) -> int:
    """Parameters of a model (a name ``load_model`` knows, or a config), counted on the meta
    device: the layers get their shapes and no memory, so even the 40B model takes a moment."""
    from evo2kit.api import resolve_config
    from evo2kit.model.striped_hyena import StripedHyena2

    config, _ = resolve_config(name_or_config)
    with torch.device("meta"):
        return StripedHyena2(config).num_params()

_PEAK_SCRIPT = """
import json, sys
import psutil, torch, evo2kit
def status():
    lines = open("/proc/self/status").read().splitlines()
    return {l.split(":")[0]: int(l.split()[1]) * 1024 for l in lines if l.startswith(("VmHWM", "Rss"))}
before = status()
base = psutil.Process().memory_info().rss
model = evo2kit.load_model(sys.argv[1], local_path=sys.argv[2], device="cpu", dtype=getattr(torch, sys.argv[3]))
for p in model.model.parameters():  # every page of every weight is resident now
    p.sum()
# VmHWM, not ru_maxrss: ru_maxrss survives exec and so starts at the RSS of whoever forked us
after = status()
print(json.dumps({"base": base, "peak": after["VmHWM"], "file": after["RssFile"] - before["RssFile"],
                  "anon": after["RssAnon"] - before["RssAnon"]}))
"""


def load_peak_bytes(config_yml: str, checkpoint: str, dtype: str = "bfloat16", detail: bool = False):
    """Peak RSS of loading ``checkpoint`` with ``evo2kit.load_model`` in a fresh process, minus
    that process's RSS after ``import torch, evo2kit`` (bytes). ``detail``: also the resident
    file-backed (the checkpoint's pages) and anonymous bytes the load added, in a dict."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, config_yml, checkpoint, dtype],
                         capture_output=True, text=True, env=env, timeout=600)
    if out.returncode:
        raise RuntimeError(f"loading {checkpoint} failed:\n{out.stderr}")
    m = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(m, peak_minus_base=m["peak"] - m["base"]) if detail else m["peak"] - m["base"]
