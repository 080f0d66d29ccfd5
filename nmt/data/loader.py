"""The trainer's input: which batches make each optimiser step on this rank, collated ahead.

:class:`StepPlan` is the schedule: the sampler's token-budget batches of an epoch, grouped
into optimiser steps of ``accumulate x world_size`` batches, of which rank ``r`` trains on
every ``world_size``-th one. Like the sampler it is a pure function of (seed, epoch), so a
resumed run finds the step it stopped at. :func:`step_loader` turns the plan into a stream of
:class:`StepInput` from a starting position on, across epochs: a ``DataLoader`` whose
workers collate (and, for a GPU, pin) the next steps while the current one trains.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nmt.data.batching import Batch, EncodedCorpus, TokenBatchSampler, collate
from nmt.errors import NmtError


@dataclass
class LengthSums:
    """Sizes of the sentences of some batches, as FLOP counts need them (``nmt/flops.py``).

    Lengths count the EOS: a source of ``s`` tokens and a target of ``t`` (the non-padding
    positions the model reads and predicts).
    """

    src_tokens: int = 0
    tgt_tokens: int = 0
    src_pairs: int = 0  # sum of s*s: encoder self-attention's query-key pairs
    tgt_causal_pairs: int = 0  # sum of t*(t+1)/2: causal decoder self-attention's pairs
    cross_pairs: int = 0  # sum of t*s: cross-attention's pairs

    @classmethod
    def of(cls, corpus: EncodedCorpus, indices: list[int]) -> LengthSums:
        # Lengths may be tensors or (memory-mapped) numpy arrays: gather, then widen.
        s = torch.as_tensor(corpus.src_lengths[indices]).long() + 1
        t = torch.as_tensor(corpus.tgt_lengths[indices]).long() + 1
        return cls(
            src_tokens=int(s.sum()),
            tgt_tokens=int(t.sum()),
            src_pairs=int((s * s).sum()),
            tgt_causal_pairs=int((t * (t + 1) // 2).sum()),
            cross_pairs=int((t * s).sum()),
        )

    def __add__(self, other: LengthSums) -> LengthSums:
        return LengthSums(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass
class StepInput:
    """One optimiser step of this rank."""

    epoch: int
    index: int  # the step's position in its epoch
    steps_in_epoch: int
    batches: list[Batch]  # this rank's micro-batches (``accumulate`` of them)
    tokens: int  # target tokens of the whole step on all ranks: what the loss is divided by
    lengths: LengthSums  # of this rank's batches

    @property
    def last_in_epoch(self) -> bool:
        return self.index == self.steps_in_epoch - 1

    def pin_memory(self) -> StepInput:
        """Page-locked copies (the DataLoader's pin thread calls this), so that copies to
        the GPU run asynchronously."""
        pinned = [batch.pin_memory() for batch in self.batches]
        return StepInput(
            self.epoch, self.index, self.steps_in_epoch, pinned, self.tokens, self.lengths
        )


class StepPlan:
    """This rank's optimiser steps, epoch by epoch (see the module docstring)."""

    def __init__(
        self,
        corpus: EncodedCorpus,
        sampler: TokenBatchSampler,
        accumulate: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.corpus = corpus
        self.sampler = sampler
        self.accumulate = accumulate
        self.rank = rank
        self.world_size = world_size

        self._epoch_batches: tuple[int, Sequence[list[int]]] | None = None

    def _batches(self, epoch: int) -> Sequence[list[int]]:
        """The sampler's batches of ``epoch`` (a lazy sequence at scale), kept for the epoch."""
        if self._epoch_batches is None or self._epoch_batches[0] != epoch:
            batches = self.sampler.batches(epoch)
            if len(batches) < self.accumulate * self.world_size:
                raise NmtError(
                    f"an epoch gives no optimiser step: {len(batches)} batches for "
                    f"{self.world_size} process(es) x training.accumulate={self.accumulate}; "
                    "use more data or a smaller training.max_tokens"
                )
            self._epoch_batches = (epoch, batches)
        return self._epoch_batches[1]

    def num_steps(self, epoch: int) -> int:
        """Steps of ``epoch``: the tail of batches that does not fill a whole step is dropped,
        so every rank takes the same number of steps."""
        return len(self._batches(epoch)) // (self.accumulate * self.world_size)

    def step(self, epoch: int, index: int) -> tuple[list[list[int]], int]:
        """(this rank's batches, target tokens of the whole step on all ranks) of step
        ``index`` of ``epoch``. Computed on demand: nothing holds an epoch's steps."""
        group_size = self.accumulate * self.world_size
        group = list(self._batches(epoch)[index * group_size : (index + 1) * group_size])
        # A target of t tokens is t + 1 predictions (EOS): what Batch.ntokens counts.
        tokens = sum(int(self.corpus.tgt_lengths[b].sum()) + len(b) for b in group)
        # Rank r takes every world_size-th batch of the step's group.
        return group[self.rank :: self.world_size], tokens


class StepDataset(Dataset):
    """``dataset[(epoch, index)]``: the :class:`StepInput` of that step, collated."""

    def __init__(self, plan: StepPlan) -> None:
        self.plan = plan

    def __getitem__(self, key: tuple[int, int]) -> StepInput:
        epoch, index = key
        indices, tokens = self.plan.step(epoch, index)
        corpus = self.plan.corpus
        lengths = LengthSums()
        for batch_indices in indices:
            lengths = lengths + LengthSums.of(corpus, batch_indices)
        batches = [collate(corpus, batch_indices) for batch_indices in indices]
        return StepInput(epoch, index, self.plan.num_steps(epoch), batches, tokens, lengths)


class StepOrder(Sampler):
    """(epoch, index) of every step from ``start`` on, endlessly: the trainer decides when
    to stop."""

    def __init__(self, plan: StepPlan, start: tuple[int, int]) -> None:
        self.plan = plan
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, index = self.start
        while True:
            while index < self.plan.num_steps(epoch):
                yield epoch, index
                index += 1
            epoch, index = epoch + 1, 0


def step_loader(
    plan: StepPlan, start: tuple[int, int], workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """The steps of ``plan`` from ``start`` = (epoch, index) on. ``workers`` > 0 collates
    in that many background processes, a few steps ahead; 0 collates on demand."""
    return DataLoader(
        StepDataset(plan),
        sampler=StepOrder(plan, start),
        batch_size=None,  # an item is already a whole step
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        # Its own generator: the DataLoader draws a seed when an iterator starts, which
        # must not advance the global random state that dropout (and resuming) depend on.
        generator=torch.Generator(),
    )
