"""Running under torchrun: process-group set-up, device choice and the few collectives the loop
needs. Without torchrun everything here is a no-op on one process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Only the main process writes files and shows progress."""
        return self.rank == 0


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when torchrun started us (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, dev)


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum over processes (identity on one process)."""
    if info.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_max(value: int, info: DistInfo) -> int:
    """The largest of the processes' values (identity on one process)."""
    if info.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
