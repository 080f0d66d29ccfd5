"""Token-budget batches of similar length, and the tensors a model consumes.

Conventions (the same in training, validation and translation):

* source: the sentence's ids then EOS, no BOS. The EOS tells the encoder where the sentence
  ends, which the GRU's last state and the attention can both use.
* target input: BOS then the sentence; target output: the sentence then EOS.
* padding with PAD_ID on the right; ``src_lengths`` count the EOS.

A batch holds ``B`` sentences padded to length ``L = max(source + 1, target + 1)`` over the
batch, and ``B * L <= max_tokens``. Examples sorted by length fill batches greedily, so
padding stays small; the batch order is shuffled per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.data.encoded import EncodedCorpus
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID

__all__ = ["Batch", "EncodedCorpus", "TokenBatchSampler", "collate", "encode_source_batch"]


@dataclass
class Batch:
    src: Tensor  # (B, S) long: source ids + EOS, PAD-padded
    src_lengths: Tensor  # (B,) including the EOS
    tgt_in: Tensor  # (B, T) BOS + target ids, PAD-padded
    tgt_out: Tensor  # (B, T) target ids + EOS, PAD-padded
    indices: Tensor  # (B,) example indices into the corpus

    @property
    def ntokens(self) -> int:
        """Non-padding target tokens: what the loss is summed over."""
        return int(self.tgt_out.ne(PAD_ID).sum())

    def __len__(self) -> int:
        return len(self.indices)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(*(tensor.to(device, non_blocking=non_blocking) for tensor in self._tensors()))

    def pin_memory(self) -> Batch:
        """In page-locked memory, from where copies to a GPU run asynchronously."""
        return Batch(*(tensor.pin_memory() for tensor in self._tensors()))

    def _tensors(self) -> tuple[Tensor, ...]:
        return (self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.indices)


class TokenBatchSampler:
    """Groups example indices into batches of at most ``max_tokens`` padded tokens.

    :meth:`batches` is a pure function of (seed, epoch), so a resumed run recreates the
    epoch's batch list and continues at the batch it stopped at. An example longer than
    ``max_tokens`` on its own still gets a batch (of one), so every example appears exactly
    once per epoch.
    """

    def __init__(
        self,
        src_lengths: Tensor | Sequence[int],
        tgt_lengths: Tensor | Sequence[int],
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        src_lengths = torch.as_tensor(src_lengths, dtype=torch.long)
        tgt_lengths = torch.as_tensor(tgt_lengths, dtype=torch.long)
        # Padded length of each example: source + EOS, target + BOS (or + EOS).
        self.padded_lengths = torch.maximum(src_lengths, tgt_lengths) + 1
        self.src_lengths = src_lengths
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch, each a list of example indices."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.shuffle:  # random order among equal lengths: new batch mixes every epoch
            order = torch.randperm(len(self.padded_lengths), generator=generator)
        else:
            order = torch.arange(len(self.padded_lengths))
        # Sort by padded length, then by source length (two stable sorts, minor key first).
        order = order[torch.sort(self.src_lengths[order], stable=True).indices]
        order = order[torch.sort(self.padded_lengths[order], stable=True).indices]

        batches: list[list[int]] = []
        current: list[int] = []
        for index, length in zip(order.tolist(), self.padded_lengths[order].tolist(), strict=True):
            # Lengths ascend, so the newest example sets the batch's padded length.
            if current and (len(current) + 1) * length > self.max_tokens:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)

        if self.shuffle:
            permutation = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in permutation]
        return batches


def collate(corpus: EncodedCorpus, indices: Sequence[int]) -> Batch:
    """The padded tensors of the examples ``indices`` of ``corpus``."""
    index = torch.as_tensor(indices, dtype=torch.long)
    rows = torch.arange(len(index))
    src_lengths = corpus.src_lengths[index]
    tgt_lengths = corpus.tgt_lengths[index]
    src_starts = corpus.src_offsets[index]
    tgt_starts = corpus.tgt_offsets[index]

    src = _padded_rows(corpus.src_ids, src_starts, src_lengths, int(src_lengths.max()) + 1)
    src[rows, src_lengths] = EOS_ID
    target_width = int(tgt_lengths.max()) + 1
    tgt_out = _padded_rows(corpus.tgt_ids, tgt_starts, tgt_lengths, target_width)
    tgt_out[rows, tgt_lengths] = EOS_ID
    tgt_in = torch.full_like(tgt_out, PAD_ID)
    tgt_in[:, 0] = BOS_ID
    tgt_in[:, 1:] = _padded_rows(corpus.tgt_ids, tgt_starts, tgt_lengths, target_width - 1)
    return Batch(src, src_lengths + 1, tgt_in, tgt_out, index)


def encode_source_batch(id_lists: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """(src, src_lengths) for translation, in the source convention of :func:`collate`."""
    src_lengths = torch.tensor([len(ids) + 1 for ids in id_lists], dtype=torch.long)
    width = max((len(ids) for ids in id_lists), default=0) + 1
    src = torch.full((len(id_lists), width), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(id_lists):
        src[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        src[row, len(ids)] = EOS_ID
    return src, src_lengths


def _padded_rows(flat: Tensor, starts: Tensor, lengths: Tensor, width: int) -> Tensor:
    """(B, width) long tensor: row b holds ``flat[starts[b] : starts[b] + lengths[b]]``."""
    if len(flat) == 0:  # every sentence is empty: nothing to gather
        return torch.full((len(starts), width), PAD_ID, dtype=torch.long)
    positions = torch.arange(width)
    inside = positions < lengths.unsqueeze(1)
    # Positions past a sentence's end are clamped into the buffer, then masked to PAD.
    gather_at = (starts.unsqueeze(1) + positions).clamp(max=len(flat) - 1)
    return flat[gather_at].long().masked_fill(~inside, PAD_ID)
