"""Choosing each rank's device and the process-group backend, and per-rank seeds."""

from __future__ import annotations

import pytest
import torch

from nmt.distributed import Ranks, process_group_backend, rank_device, rank_seed


def ranks(local_world_size: int, local_rank: int = 0) -> Ranks:
    return Ranks(local_rank, local_world_size, local_rank, local_world_size)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_the_configured_device_chooses_the_backend_not_the_machine(two_gpus) -> None:
    # A CPU run on a machine with GPUs used to get NCCL, which cannot reduce CPU tensors.
    assert process_group_backend(torch.device("cpu"), ranks(2)) == "gloo"
    assert process_group_backend(torch.device("cuda"), ranks(2)) == "cpu:gloo,cuda:nccl"
    # NCCL refuses two ranks on one GPU: gloo, which can reduce CUDA tensors too.
    assert process_group_backend(torch.device("cuda"), ranks(3)) == "gloo"
    assert process_group_backend(torch.device("cuda:1"), ranks(2)) == "gloo"


def test_each_local_rank_takes_its_own_gpu(two_gpus) -> None:
    cuda = torch.device("cuda")
    assert [rank_device(cuda, ranks(3, r)) for r in range(3)] == [
        torch.device("cuda", 0),
        torch.device("cuda", 1),
        torch.device("cuda", 0),
    ]
    assert rank_device(torch.device("cuda:1"), ranks(2, 0)) == torch.device("cuda", 1)
    assert rank_device(cuda, Ranks()) == cuda  # one process: as configured
    assert rank_device(torch.device("cpu"), ranks(2, 1)) == torch.device("cpu")


def test_rank_zero_keeps_the_seed_and_other_ranks_get_their_own() -> None:
    assert rank_seed(7, 0) == rank_seed(7, 0, step=100) == 7
    seeds = {rank_seed(7, rank, step) for rank in range(1, 4) for step in (0, 100)}
    assert len(seeds) == 6 and 7 not in seeds
