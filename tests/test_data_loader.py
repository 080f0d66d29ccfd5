"""The trainer's input: optimiser steps split over ranks, their token counts, and the
background loader that collates them ahead."""

from __future__ import annotations

import itertools

import pytest
import torch

from nmt.data.batching import EncodedCorpus, TokenBatchSampler, collate
from nmt.data.loader import LengthSums, StepPlan, step_loader
from nmt.errors import NmtError


def corpus(pairs: int = 60) -> EncodedCorpus:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 12, (pairs, 2), generator=generator).tolist()
    return EncodedCorpus.from_id_lists(
        [list(range(4, 4 + s)) for s, _ in lengths], [list(range(4, 4 + t)) for _, t in lengths]
    )


def plan(data: EncodedCorpus, accumulate: int = 1, rank: int = 0, world: int = 1) -> StepPlan:
    sampler = TokenBatchSampler(data.src_lengths, data.tgt_lengths, 40, seed=5)
    return StepPlan(data, sampler, accumulate, rank, world)


@pytest.mark.parametrize(("accumulate", "world"), [(1, 1), (3, 1), (1, 2), (2, 3)])
def test_ranks_share_each_step_and_count_its_tokens_on_all_ranks(accumulate, world) -> None:
    data = corpus()
    plans = [plan(data, accumulate, rank, world) for rank in range(world)]
    batches = plans[0].sampler.batches(1)
    steps = [[p.step(1, i) for i in range(p.num_steps(1))] for p in plans]
    assert len({len(s) for s in steps}) == 1  # every rank takes the same number of steps
    group = accumulate * world
    assert len(steps[0]) == len(batches) // group  # only the incomplete tail is dropped
    for index in range(len(steps[0])):
        mine = [steps[rank][index][0] for rank in range(world)]
        assert all(len(m) == accumulate for m in mine)
        # Together the ranks train on exactly the step's group of batches, each once.
        together = sorted(itertools.chain.from_iterable(mine))
        assert together == sorted(batches[index * group : (index + 1) * group])
        # The loss normaliser: the targets (with EOS) of the whole step, on all ranks.
        expected = sum(collate(data, b).ntokens for b in itertools.chain.from_iterable(mine))
        assert {steps[rank][index][1] for rank in range(world)} == {expected}


def test_a_plan_that_gives_no_step_says_why() -> None:
    with pytest.raises(NmtError, match="no optimiser step.*training.accumulate=100"):
        plan(corpus(), accumulate=100).num_steps(0)


def test_length_sums_count_tokens_with_eos_and_attention_pairs() -> None:
    data = EncodedCorpus.from_id_lists([[5, 6], [7]], [[8, 9, 10], []])
    sums = LengthSums.of(data, [0, 1])
    # sources of 3 and 2 tokens, targets of 4 and 1 (EOS included)
    assert sums == LengthSums(
        src_tokens=5, tgt_tokens=5, src_pairs=9 + 4, tgt_causal_pairs=10 + 1, cross_pairs=12 + 2
    )
    assert sums + sums == LengthSums(10, 10, 26, 22, 28)


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_streams_steps_from_a_position_across_epochs(workers: int) -> None:
    data = corpus()
    steps_plan = plan(data, accumulate=2)
    per_epoch = steps_plan.num_steps(0)
    start = (0, per_epoch - 2)
    stream = iter(step_loader(steps_plan, start, workers=workers))
    items = [next(stream) for _ in range(4)]
    assert [(s.epoch, s.index) for s in items] == [
        (0, per_epoch - 2),
        (0, per_epoch - 1),
        (1, 0),
        (1, 1),
    ]
    assert [s.last_in_epoch for s in items] == [False, True, False, False]
    for item in items:
        indices, tokens = steps_plan.step(item.epoch, item.index)
        assert [b.indices.tolist() for b in item.batches] == indices
        assert item.tokens == tokens == sum(b.ntokens for b in item.batches)
        assert item.lengths == LengthSums.of(data, [i for b in indices for i in b])
        torch.testing.assert_close(item.batches[0].tgt_out, collate(data, indices[0]).tgt_out)


def test_loader_leaves_the_global_random_state_alone() -> None:
    """Dropout and exact resumption depend on it: a loader must not draw from it."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    next(iter(step_loader(plan(corpus()), (0, 0))))
    assert torch.equal(torch.rand(3), expected)
