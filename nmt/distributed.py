"""Several processes training one model (``torchrun``): ranks, their devices, the process
group, per-rank seeds and the two exchanges the trainer needs besides gradients.

Without ``torchrun`` (``WORLD_SIZE`` unset) everything here is a no-op for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among those ``torchrun`` started."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # on this machine
    local_world_size: int = 1

    @classmethod
    def from_environment(cls) -> Ranks:
        def number(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        world_size = number("WORLD_SIZE", 1)
        return cls(
            rank=number("RANK", 0),
            world_size=world_size,
            local_rank=number("LOCAL_RANK", 0),
            local_world_size=number("LOCAL_WORLD_SIZE", world_size),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_device(configured: torch.device, ranks: Ranks) -> torch.device:
    """This rank's device: with several ranks and ``cuda`` without an index, local rank
    ``i`` takes GPU ``i`` (modulo the GPU count: more ranks than GPUs share them)."""
    if not ranks.distributed or configured.type != "cuda" or configured.index is not None:
        return configured
    return torch.device("cuda", ranks.local_rank % torch.cuda.device_count())


def process_group_backend(configured: torch.device, ranks: Ranks) -> str:
    """The backend for ranks training on the ``configured`` device (not merely on what the
    machine has): gloo on CPUs. On GPUs, NCCL for the gradients and gloo for the few CPU
    tensors the trainer exchanges (so agreeing to stop never waits for the GPU); gloo alone
    where ranks share a GPU, which NCCL refuses."""
    if configured.type != "cuda":
        return "gloo"
    one_gpu_each = configured.index is None and ranks.local_world_size <= torch.cuda.device_count()
    return "cpu:gloo,cuda:nccl" if one_gpu_each else "gloo"


def start(configured: torch.device, ranks: Ranks) -> torch.device:
    """Join the process group (``torchrun`` gives its address in the environment); returns
    this rank's device."""
    device = rank_device(configured, ranks)
    if ranks.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=process_group_backend(configured, ranks))
    return device


def backend_name() -> str:
    """The process group's backend, as torch names it (e.g. ``gloo``)."""
    return str(dist.get_backend())


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of ``rank``'s random numbers (dropout) from ``step`` on. Rank 0 keeps the
    configured seed, so one process trains as it always has; the others get their own, so
    their dropout masks differ, and new ones on a resume (which restores the random state
    rank 0 saved)."""
    return seed if rank == 0 else seed + 1_000_003 * rank + 7919 * step


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def any_rank(flag: bool, ranks: Ranks) -> bool:
    """True on every rank when ``flag`` is True on any. A CPU tensor: under NCCL it goes
    through the group's gloo side and never waits for the GPU."""
    if not ranks.distributed:
        return flag
    tensor = torch.tensor([float(flag)])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def from_main(value: Any, ranks: Ranks) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not ranks.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
