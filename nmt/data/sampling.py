"""Which examples an epoch holds, and in which token-budget batches, computed window by window
so that no list of all batches (or all examples) is ever built.

**Corpus weights.** The training split is made of corpora in order, corpus ``i`` holding
``n_i`` pairs (contiguous indices). A :class:`CorpusMixture` gives each corpus its share
``p_i`` of an epoch: ``p_i ∝ w_i · n_i`` with weights ``w_i`` (1 for all: every pair once, a
plain concatenation; weight 2: the corpus twice as often per pair), or ``p_i ∝ n_i^(1/T)``
with a sampling temperature ``T``. An epoch holds ``N = Σ n_i`` examples in expectation,
so epoch counts mean what they mean for one corpus; corpus ``i``'s pairs appear
``r_i = N · p_i / n_i`` times each on average: ``floor(r_i)`` times, plus once more with
probability ``frac(r_i)`` (drawn per pair from ``(seed, epoch, block)``). So a rate below 1
samples a different subset every epoch, one above 1 repeats pairs.

**Batches.** Indices are cut into blocks of :data:`BLOCK` consecutive pairs; an epoch deals
the blocks out in a seeded random order, :data:`WINDOW_BLOCKS` to a window (262,144 pairs).
Within a window, examples are shuffled, sorted by padded length (then source length) and cut
greedily into batches of at most ``max_tokens`` padded tokens; the window's batches are
shuffled. Memory holds one window. A corpus of at most one window (Tatoeba's 26,036 pairs)
is one window whose generator is seeded as the sampler always was, so its batches are
exactly those of the earlier all-in-memory sampler. Everything is a pure function of
``(seed, epoch)``: a resumed run recreates the epoch and continues at its batch index.
"""

from __future__ import annotations

import bisect
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

BLOCK = 4096  # consecutive pairs dealt out together
WINDOW_BLOCKS = 64  # blocks per window: its examples are sorted and batched together
_SEED_STRIDE = 0x9E3779B97F4A7C15  # spreads the windows' seeds (an odd 64-bit constant)


@dataclass(frozen=True)
class CorpusMixture:
    """Per corpus of the training split: its size, its name and its sampling rate (expected
    copies of each of its pairs per epoch)."""

    sizes: tuple[int, ...]
    rates: tuple[float, ...]
    names: tuple[str, ...] = ()

    @classmethod
    def from_weights(
        cls,
        sizes: Sequence[int],
        weights: Sequence[float | None] | None = None,
        temperature: float | None = None,
        names: Sequence[str] = (),
    ) -> CorpusMixture:
        """Rates for explicit weights (share ∝ weight × size; None counts as 1) or a
        temperature (share ∝ size^(1/T))."""
        sizes_array = np.asarray(sizes, dtype=np.float64)
        if temperature is not None:
            shares = np.where(sizes_array > 0, sizes_array ** (1.0 / temperature), 0.0)
        else:
            given = [1.0 if w is None else float(w) for w in (weights or [None] * len(sizes))]
            shares = np.asarray(given) * sizes_array
        total = sizes_array.sum()
        if total == 0 or shares.sum() == 0:
            rates = np.ones(len(sizes))
        else:
            shares = shares / shares.sum()
            rates = np.divide(
                shares * total, sizes_array, out=np.zeros(len(sizes)), where=sizes_array > 0
            )
        return cls(tuple(int(n) for n in sizes), tuple(float(r) for r in rates), tuple(names))

    @property
    def uniform(self) -> bool:
        """Every pair exactly once per epoch."""
        return all(abs(rate - 1.0) < 1e-12 for rate in self.rates)

    @property
    def shares(self) -> list[float]:
        """Each corpus's expected share of an epoch's examples."""
        expected = [n * r for n, r in zip(self.sizes, self.rates, strict=True)]
        return [e / sum(expected) if sum(expected) else 0.0 for e in expected]

    def copies(self, start: int, stop: int, seed: int, epoch: int) -> np.ndarray:
        """How many times each pair of ``[start, stop)`` (one block) is in the epoch."""
        bounds = np.cumsum((0, *self.sizes))
        corpus = np.searchsorted(bounds, np.arange(start, stop), side="right") - 1
        rate = np.asarray(self.rates)[corpus]
        whole = np.floor(rate)
        draws = np.random.default_rng([seed, epoch, start]).random(stop - start)
        return (whole + (draws < rate - whole)).astype(np.int64)


class TokenBatchSampler:
    """Groups example indices into batches of at most ``max_tokens`` padded tokens.

    :meth:`batches` is a pure function of (seed, epoch). An example longer than
    ``max_tokens`` on its own still gets a batch (of one). Without a mixture (or with
    rates of 1) every example appears exactly once per epoch.
    """

    def __init__(
        self,
        src_lengths: torch.Tensor | np.ndarray | Sequence[int],
        tgt_lengths: torch.Tensor | np.ndarray | Sequence[int],
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        mixture: CorpusMixture | None = None,
    ) -> None:
        # Kept as given (a memory map stays one): only a window's lengths are ever read.
        self.src_lengths, self.tgt_lengths = _as_array(src_lengths), _as_array(tgt_lengths)
        if mixture is not None and sum(mixture.sizes) != len(self.src_lengths):
            raise ValueError(f"mixture of {sum(mixture.sizes)} pairs for {len(self.src_lengths)}")
        self.mixture = None if mixture is None or mixture.uniform else mixture
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed

    def padded_lengths(self, indices: np.ndarray) -> np.ndarray:
        """Padded length of examples ``indices``."""
        src = np.asarray(self.src_lengths[indices], dtype=np.int64)
        return padded_length(src, np.asarray(self.tgt_lengths[indices], dtype=np.int64))

    def batches(self, epoch: int) -> EpochBatches:
        """The batches of one epoch: a sequence (len, indexing, slicing, iteration) of
        batches, each a list of example indices."""
        return EpochBatches(_EpochPlan(self, epoch))


class EpochBatches(Sequence):
    """A lazy, sliceable sequence of an epoch's batches; a slice is a view of the same plan
    (``batches[rank::world]``)."""

    def __init__(self, plan: _EpochPlan, positions: range | None = None) -> None:
        self._plan = plan
        self._positions = range(plan.total) if positions is None else positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return EpochBatches(self._plan, self._positions[item])
        return self._plan.batch(self._positions[item])

    def __iter__(self) -> Iterator[list[int]]:
        return (self._plan.batch(position) for position in self._positions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(
            a == list(b) for a, b in zip(self, other, strict=True)
        )

    def __repr__(self) -> str:
        return f"EpochBatches({len(self)} batches)"


class _EpochPlan:
    """The windows of one epoch and how many batches each gives; a window's batches are
    recomputed when asked for (the last two are kept)."""

    def __init__(self, sampler: TokenBatchSampler, epoch: int) -> None:
        self.sampler, self.epoch = sampler, epoch
        count = len(sampler.src_lengths)
        blocks = np.arange(-(-count // BLOCK))
        if sampler.shuffle and len(blocks) > WINDOW_BLOCKS:
            blocks = np.random.default_rng([sampler.seed, epoch]).permutation(blocks)
        self.windows = [
            np.sort(blocks[start : start + WINDOW_BLOCKS])
            for start in range(0, len(blocks), WINDOW_BLOCKS)
        ]
        self._window = lru_cache(maxsize=2)(self._compute_window)
        self.starts = [0]
        for window in range(len(self.windows)):
            self.starts.append(self.starts[-1] + len(self._window(window)[1]) - 1)
        self.total = self.starts[-1]

    def batch(self, position: int) -> list[int]:
        window = bisect.bisect_right(self.starts, position) - 1
        order, bounds, permutation = self._window(window)
        k = int(permutation[position - self.starts[window]])
        return order[bounds[k] : bounds[k + 1]].tolist()

    def _compute_window(self, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(examples in length order, batch boundaries in it, batch permutation)."""
        sampler = self.sampler
        count = len(sampler.src_lengths)
        starts = self.windows[window] * BLOCK
        ranges = [(s, min(s + BLOCK, count)) for s in starts.tolist()]
        examples = np.concatenate([np.arange(s, e) for s, e in ranges])
        src_lengths, tgt_lengths = (
            np.concatenate([read_range(lengths, s, e) for s, e in ranges]).astype(np.int64)
            for lengths in (sampler.src_lengths, sampler.tgt_lengths)
        )
        padded = padded_length(src_lengths, tgt_lengths)
        if sampler.mixture is not None:
            copies = np.concatenate(
                [sampler.mixture.copies(s, e, sampler.seed, self.epoch) for s, e in ranges]
            )
            examples, src_lengths, padded = (
                np.repeat(a, copies) for a in (examples, src_lengths, padded)
            )
        # Window 0 keeps the historical seed: a one-window corpus batches as it always did.
        generator = torch.Generator().manual_seed(
            (sampler.seed * 1_000_003 + self.epoch + window * _SEED_STRIDE) % 2**63
        )
        order, src_lengths, padded = (torch.from_numpy(a) for a in (examples, src_lengths, padded))
        if sampler.shuffle:  # random order among equal lengths: new batch mixes every epoch
            permutation = torch.randperm(len(order), generator=generator)
            order, src_lengths, padded = (
                order[permutation],
                src_lengths[permutation],
                padded[permutation],
            )
        # Sort by padded length, then by source length (two stable sorts, minor key first).
        by_source = torch.sort(src_lengths, stable=True).indices
        order, padded = order[by_source], padded[by_source]
        by_padded = torch.sort(padded, stable=True).indices
        order, padded = order[by_padded], padded[by_padded]
        bounds = cut_sorted(padded.numpy(), sampler.max_tokens)
        batches = len(bounds) - 1
        if sampler.shuffle:
            permutation = torch.randperm(batches, generator=generator).numpy()
        else:
            permutation = np.arange(batches)
        return order.numpy(), bounds, permutation


def padded_length(src_lengths: np.ndarray, tgt_lengths: np.ndarray) -> np.ndarray:
    """A pair's length in a batch: the longer side plus EOS (source) or BOS/EOS (target)."""
    return np.maximum(src_lengths, tgt_lengths) + 1


def cut_sorted(lengths: np.ndarray, max_tokens: int) -> np.ndarray:
    """Batch boundaries over ascending padded ``lengths``: greedy, each batch as long as
    ``size * (its longest) <= max_tokens`` (at least one example). Works run by run of equal
    lengths, so the loop turns once per batch, not once per example."""
    count = len(lengths)
    if count == 0:
        return np.zeros(1, dtype=np.int64)
    run_starts = np.concatenate(([0], np.flatnonzero(np.diff(lengths)) + 1))
    run_ends = np.append(run_starts[1:], count)
    values = lengths[run_starts].tolist()
    run_starts, run_ends = run_starts.tolist(), run_ends.tolist()
    bounds, start, run = [0], 0, 0
    while start < count:
        end = start + 1  # the first example always goes in
        while run < len(values):
            # Positions e of this run fit while (e - start + 1) * value <= max_tokens.
            limit = start + max_tokens // values[run]
            if limit >= run_ends[run]:
                end = run_ends[run]
                run += 1
                continue
            end = max(end, min(run_ends[run], max(limit, run_starts[run])))
            break
        bounds.append(end)
        start = end
        while run < len(values) and run_ends[run] <= start:
            run += 1
    return np.asarray(bounds, dtype=np.int64)


def _as_array(lengths) -> np.ndarray:
    if isinstance(lengths, torch.Tensor):
        return lengths.numpy()
    if isinstance(lengths, np.ndarray):
        return lengths
    return np.asarray(lengths, dtype=np.int64)


def read_range(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``values[start:stop]``; for a memory map, by a positioned read from the page cache
    rather than through the mapping (see nmt/data/encoded.py's _PositionedReader)."""
    if isinstance(values, np.memmap) and isinstance(values.base, mmap.mmap):  # not a view
        return np.fromfile(
            values.filename,
            dtype=values.dtype,
            count=stop - start,
            offset=values.offset + start * values.dtype.itemsize,
        )
    return np.asarray(values[start:stop])
