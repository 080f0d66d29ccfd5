"""Token-budget batches of similar length, and the tensors a model consumes.

Conventions (the same in training, validation and translation):

* source: the sentence's ids then EOS, no BOS. The EOS tells the encoder where the sentence
  ends, which the GRU's last state and the attention can both use.
* target input: BOS then the sentence; target output: the sentence then EOS.
* padding with PAD_ID on the right; ``src_lengths`` count the EOS.

Batches come from :class:`~nmt.data.sampling.TokenBatchSampler` (re-exported here): a batch
holds ``B`` sentences padded to length ``L = max(source + 1, target + 1)`` over the batch,
and ``B * L <= max_tokens``. :func:`collate` gathers them from the (memory-mapped) encoded
corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.data.encoded import EncodedCorpus
from nmt.data.sampling import TokenBatchSampler
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
        """The batch on ``device``, except ``src_lengths``, which stay on the host: the GRU
        packs its input by lengths read on the host (a copy back from a GPU would wait for
        it), and the models copy them to the device themselves for their masks."""
        src, tgt_in, tgt_out, indices = (
            tensor.to(device, non_blocking=non_blocking)
            for tensor in (self.src, self.tgt_in, self.tgt_out, self.indices)
        )
        return Batch(src, self.src_lengths, tgt_in, tgt_out, indices)

    def pin_memory(self) -> Batch:
        """In page-locked memory, from where copies to a GPU run asynchronously."""
        return Batch(*(tensor.pin_memory() for tensor in self._tensors()))

    def _tensors(self) -> tuple[Tensor, ...]:
        return (self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.indices)


def collate(corpus: EncodedCorpus, indices: Sequence[int]) -> Batch:
    """The padded tensors of the examples ``indices`` of ``corpus``."""
    index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    rows = torch.arange(len(index))
    src_ids, src_lengths = corpus.rows("src", index.numpy())
    tgt_ids, tgt_lengths = corpus.rows("tgt", index.numpy())
    src = F.pad(src_ids, (0, 1), value=PAD_ID)  # ids, EOS, PAD...
    src[rows, src_lengths] = EOS_ID
    tgt_out = F.pad(tgt_ids, (0, 1), value=PAD_ID)  # ids, EOS, PAD...
    tgt_out[rows, tgt_lengths] = EOS_ID
    tgt_in = F.pad(tgt_ids, (1, 0), value=BOS_ID)  # BOS, ids, PAD...
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
