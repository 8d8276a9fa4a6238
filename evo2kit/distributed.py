"""torch.distributed helpers: this process's rank in a group, and the group of a ``torchrun`` launch."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(rank, world size) in the initialised torch.distributed group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1




@contextlib.contextmanager
def torchrun_group():
    """Under ``torchrun`` (WORLD_SIZE > 1): the process group (nccl on CUDA, else gloo), destroyed
    at the end. Yields this rank's device ("cuda:<LOCAL_RANK>"), or None for load_model's default."""
    device = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device else "gloo")
    try:
        yield device
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
