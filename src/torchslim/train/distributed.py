"""Process-group setup for ``torchrun``: the loop itself is the same for 1 or N processes."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> tuple[int, int]:
    """(rank, world_size). Initialises the gloo process group from torchrun's environment
    (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) when WORLD_SIZE > 1 and no group exists yet;
    the group is left up for the caller (destroy it with dist.destroy_process_group())."""
    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_across(values: list[float], world_size: int) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity for one process)."""
    if world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()
