"""Several GPUs on one machine with `torchrun` (DistributedDataParallel); one process otherwise.

    torchrun --standalone --nproc_per_node 4 -m tinyviz train --data ... --out ...

The same trainer code runs in every process: each takes its share of every batch (the global
batch size stays `batch_size`, so a run's recipe means the same on one GPU or four), gradients
are averaged by DDP, and only the first process writes the run folder. Without torchrun's
environment nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0


def world() -> World:
    """This process's place, from torchrun's environment variables."""
    return World(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group when launched by torchrun; one GPU per process."""
    w = world()
    if w.size == 1:
        return w, device
    if device.type == "cuda":
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return w, device


def wrap(model: torch.nn.Module, w: World, device: torch.device) -> torch.nn.Module:
    """The model as the training step calls it: DDP-wrapped when there are several processes."""
    if w.size == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_sum(t: torch.Tensor, w: World) -> torch.Tensor:
    """The sum of `t` over all processes (metrics of each process's share)."""
    if w.size > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
