"""What a machine offers and what a model needs: memory in bytes, parameters by count.

Notebook 00 compares the two to say which model sizes fit here.
"""

from __future__ import annotations

import os

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
    from .api import resolve_config
    from .model import StripedHyena2

    config, _ = resolve_config(name_or_config)
    with torch.device("meta"):
        return StripedHyena2(config).num_params()
