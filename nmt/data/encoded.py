"""An encoded parallel corpus: token ids of every pair in two flat tensors.

Pair ``i``'s source ids are ``src_ids[src_offsets[i]:src_offsets[i + 1]]`` (likewise the
target). No BOS/EOS is stored; :func:`nmt.data.batching.collate` adds them. Four tensors
instead of millions of small lists keep a 2M-pair corpus in a few hundred MB, and the file
is memory-mapped when loaded.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from pathlib import Path

import torch

from nmt.errors import DataError

_FIELDS = ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets")


class EncodedCorpus:
    """Token ids of ``len(self)`` sentence pairs (see the module docstring for the layout)."""

    def __init__(
        self,
        src_ids: torch.Tensor,
        src_offsets: torch.Tensor,
        tgt_ids: torch.Tensor,
        tgt_offsets: torch.Tensor,
    ) -> None:
        if len(src_offsets) != len(tgt_offsets) or len(src_offsets) == 0:
            raise ValueError("source and target offsets must have the same length >= 1")
        self.src_ids, self.src_offsets = src_ids, src_offsets
        self.tgt_ids, self.tgt_offsets = tgt_ids, tgt_offsets
        self.src_lengths = src_offsets.diff()
        self.tgt_lengths = tgt_offsets.diff()

    @classmethod
    def from_id_lists(
        cls, src_id_lists: Sequence[Sequence[int]], tgt_id_lists: Sequence[Sequence[int]]
    ) -> EncodedCorpus:
        """Build from one list of ids per sentence (tests, small corpora)."""
        builder = CorpusBuilder()
        for src, tgt in zip(src_id_lists, tgt_id_lists, strict=True):
            builder.add(src, tgt)
        return builder.build()

    def __len__(self) -> int:
        return len(self.src_lengths)

    def pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        src = self.src_ids[self.src_offsets[index] : self.src_offsets[index + 1]]
        tgt = self.tgt_ids[self.tgt_offsets[index] : self.tgt_offsets[index + 1]]
        return src, tgt

    def save(self, path: Path) -> None:
        # Write then rename: a reader may have the old file memory-mapped.
        temporary = path.with_name(path.name + ".tmp")
        torch.save({name: getattr(self, name) for name in _FIELDS}, temporary)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> EncodedCorpus:
        try:
            tensors = torch.load(path, weights_only=True, mmap=True)
            return cls(*(tensors[name] for name in _FIELDS))
        except Exception as error:  # torch raises many types for truncated or foreign files
            raise DataError(
                f"corrupt encoded corpus {path}: {error}; run 'nmt prepare --force'"
            ) from None


class CorpusBuilder:
    """Collects encoded pairs one at a time in compact int arrays; :meth:`build` once."""

    def __init__(self) -> None:
        self._src_ids, self._tgt_ids = array("i"), array("i")
        self._src_offsets, self._tgt_offsets = array("q", [0]), array("q", [0])

    def add(self, src_ids: Sequence[int], tgt_ids: Sequence[int]) -> None:
        self._src_ids.extend(src_ids)
        self._tgt_ids.extend(tgt_ids)
        self._src_offsets.append(len(self._src_ids))
        self._tgt_offsets.append(len(self._tgt_ids))

    def build(self) -> EncodedCorpus:
        return EncodedCorpus(
            array_to_tensor(self._src_ids, torch.int32),
            array_to_tensor(self._src_offsets, torch.int64),
            array_to_tensor(self._tgt_ids, torch.int32),
            array_to_tensor(self._tgt_offsets, torch.int64),
        )


def array_to_tensor(values: array, dtype: torch.dtype) -> torch.Tensor:
    """A tensor sharing the array's memory (the array can no longer grow)."""
    if len(values) == 0:  # frombuffer refuses an empty buffer
        return torch.zeros(0, dtype=dtype)
    return torch.frombuffer(values, dtype=dtype)
