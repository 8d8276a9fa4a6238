"""What every benchmark prints first and the one option they share, so that a figure always
travels with the command, priority, threads and load it was measured under."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import torch


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); on a busy machine 1 "
                        "avoids OpenMP threads waiting on each other")


def start(args: argparse.Namespace | None = None, settings: str = "") -> None:
    """Apply ``args.threads`` when given, then print the command line and the conditions of the run
    (niceness, torch version, threads, load average) followed by ``settings``."""
    if args is not None and getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print("$ " + shlex.join([os.path.relpath(sys.executable), *sys.argv]))
    print(f"niceness {os.nice(0)}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load}" + (f"; {settings}" if settings else "") + "\n", flush=True)
