"""An encoded parallel corpus: token ids in flat arrays with offsets, sharded and
memory-mapped, so training gathers batches without holding the corpus in Python objects.

One folder per split, ``<split>.ids/``:

* ``meta.json``: the number of pairs, the pairs per shard, the id type and each shard's size;
* ``src.lengths``, ``tgt.lengths``: every pair's length in tokens (uint16), for batching;
* ``NNNNN.src.ids``, ``NNNNN.tgt.ids``: shard NNNNN's token ids, one flat array (uint16 when
  the vocabulary has at most 65,536 pieces, else int32), no BOS/EOS
  (:func:`nmt.data.batching.collate` adds them);
* ``NNNNN.src.offsets``, ``NNNNN.tgt.offsets``: int64, pair ``j`` of the shard is
  ``ids[offsets[j]:offsets[j + 1]]``.

Pair ``i`` lives in shard ``i // shard_pairs``. Files are raw little-endian arrays, mapped
with ``numpy.memmap`` when loaded (``shards``, ``src_lengths``...: nothing is read until
asked); a batch's rows are read with positioned reads from the page cache
(:class:`_PositionedReader`), so the resident memory of a training process does not grow
with the corpus. Shards are written one at a time; memory during the build holds one shard.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nmt.data.vocab import PAD_ID
from nmt.errors import DataError

SHARD_PAIRS = 1 << 20  # pairs per shard: ~60 MB of ids at 30 tokens a side
META = "meta.json"
FORMAT = 1
SIDES = ("src", "tgt")
_MAX_LENGTH = np.iinfo(np.uint16).max


def folder_of(output_dir: Path, split: str) -> Path:
    return output_dir / f"{split}.ids"


class EncodedCorpus:
    """Token ids of ``len(self)`` sentence pairs (see the module docstring for the layout).

    ``src_lengths``/``tgt_lengths`` are 1-D integer arrays (memory-mapped when loaded);
    :meth:`rows` gathers padded id rows for a batch. ``mixture`` (set by
    :class:`nmt.data.prepare.PreparedData` on the training split) says how an epoch samples
    the corpora the split was made of.
    """

    def __init__(
        self,
        shards: list[dict[str, np.ndarray]],
        src_lengths: np.ndarray,
        tgt_lengths: np.ndarray,
        shard_pairs: int = SHARD_PAIRS,
    ) -> None:
        # Each shard: {"src": ids, "src_offsets": offsets, "tgt": ..., "tgt_offsets": ...}.
        self.shards = shards
        self.src_lengths, self.tgt_lengths = src_lengths, tgt_lengths
        self.shard_pairs = shard_pairs
        self.mixture = None  # nmt.data.sampling.CorpusMixture | None
        self._reader: _PositionedReader | None = None  # set by load: batches read from disk
        self._folder: Path | None = None  # set by load

    @classmethod
    def from_id_lists(
        cls, src_id_lists: Sequence[Sequence[int]], tgt_id_lists: Sequence[Sequence[int]]
    ) -> EncodedCorpus:
        """Build in memory from one list of ids per sentence (tests, small corpora)."""
        shard = _ShardBuffer()
        for src, tgt in zip(src_id_lists, tgt_id_lists, strict=True):
            shard.add(src, tgt)
        arrays = shard.arrays(np.int32)
        return cls([arrays], arrays.pop("src_lengths"), arrays.pop("tgt_lengths"))

    def __len__(self) -> int:
        return len(self.src_lengths)

    def pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(source ids, target ids) of one pair, as int64 tensors."""
        shard, local = self._locate(index)

        def ids(side: str) -> torch.Tensor:
            start, end = shard[f"{side}_offsets"][local : local + 2]
            return torch.from_numpy(np.array(shard[side][start:end], dtype=np.int64))

        return ids("src"), ids("tgt")

    def rows(self, side: str, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, lengths): a (B, longest) int64 tensor, row b the ids of pair ``indices[b]``
        padded with PAD_ID, and the (B,) lengths."""
        if self._reader is not None:
            return self._reader.rows(side, indices, self.shard_pairs)
        lengths = np.asarray(
            (self.src_lengths if side == "src" else self.tgt_lengths)[indices], dtype=np.int64
        )
        width = int(lengths.max(initial=0))
        out = np.full((len(indices), width), PAD_ID, dtype=np.int64)
        positions = np.arange(width)
        shard = self.shards[0]  # in memory: one shard
        ids = shard[side]
        if len(ids):  # else every sentence is empty
            starts = shard[f"{side}_offsets"][indices]
            inside = positions < lengths[:, None]
            # Positions past a sentence's end are clamped into the array, then masked to PAD.
            at = np.minimum(starts[:, None] + positions, len(ids) - 1)
            out[:] = np.where(inside, ids[at], PAD_ID)
        return torch.from_numpy(out), torch.from_numpy(lengths)

    def _locate(self, index: int) -> tuple[dict[str, np.ndarray], int]:
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} of a corpus of {len(self)}")
        return self.shards[index // self.shard_pairs], index % self.shard_pairs

    def save(self, folder: Path, shard_pairs: int = SHARD_PAIRS) -> None:
        """Write the corpus as ``folder`` (a split's ``.ids`` folder)."""
        id_dtype = self.shards[0]["src"].dtype if self.shards else np.int32
        writer = CorpusWriter(folder, id_dtype, shard_pairs)
        for index in range(len(self)):
            src, tgt = self.pair(index)
            writer.add(src.tolist(), tgt.tolist())
        writer.close()

    @classmethod
    def load(cls, folder: Path) -> EncodedCorpus:
        """Memory-map a split's ``.ids`` folder."""
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')}, expected {FORMAT}")
            id_dtype = np.dtype(meta["id_dtype"])
            shards = []
            for number, (pairs, tokens) in enumerate(
                zip(meta["shards"], meta["tokens"], strict=True)
            ):
                shard = {}
                for side_index, side in enumerate(SIDES):
                    shard[side] = _map(
                        folder / f"{number:05d}.{side}.ids", id_dtype, tokens[side_index]
                    )
                    shard[f"{side}_offsets"] = _map(
                        folder / f"{number:05d}.{side}.offsets", np.int64, pairs + 1
                    )
                shards.append(shard)
            lengths = [_map(folder / f"{side}.lengths", np.uint16, meta["pairs"]) for side in SIDES]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(
                f"corrupt encoded corpus {folder}: {error}; run 'nmt prepare --force'"
            ) from None
        corpus = cls(shards, *lengths, shard_pairs=meta["shard_pairs"])
        corpus._reader = _PositionedReader(folder, len(shards), id_dtype)
        corpus._folder = folder
        return corpus

    def __reduce__(self):
        """A loaded corpus pickles as its folder (for loader worker processes that are
        spawned, not forked): the files are opened again, nothing is copied."""
        if self._folder is None:
            return super().__reduce__()
        return (_reopen, (str(self._folder), self.mixture))


def files_of(folder: Path) -> list[Path]:
    """Every file of a written ``.ids`` folder (for the manifest's completeness check)."""
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    names = [META, *(f"{side}.lengths" for side in SIDES)]
    for number in range(len(meta["shards"])):
        names += [f"{number:05d}.{side}.{kind}" for side in SIDES for kind in ("ids", "offsets")]
    return [folder / name for name in names]


class CorpusWriter:
    """Writes encoded pairs to a ``.ids`` folder, one shard in memory at a time."""

    def __init__(
        self, folder: Path, id_dtype: np.dtype | type, shard_pairs: int = SHARD_PAIRS
    ) -> None:
        if folder.exists():
            shutil.rmtree(folder)  # a shard left from a larger earlier build must not linger
        folder.mkdir(parents=True)
        self.folder, self.id_dtype, self.shard_pairs = folder, np.dtype(id_dtype), shard_pairs
        self._lengths = [open(folder / f"{side}.lengths", "wb") for side in SIDES]
        self._shard = _ShardBuffer()
        self._shards: list[int] = []
        self._tokens: list[list[int]] = []
        self.pairs = 0

    def add(self, src_ids: Sequence[int], tgt_ids: Sequence[int]) -> None:
        self._shard.add(src_ids, tgt_ids)
        self.pairs += 1
        if self._shard.pairs == self.shard_pairs:
            self._flush()

    def add_shard(
        self,
        src_lengths: np.ndarray,
        src_ids: np.ndarray,
        tgt_lengths: np.ndarray,
        tgt_ids: np.ndarray,
    ) -> None:
        """A whole shard of ``shard_pairs`` pairs (or the last, smaller one) at once."""
        if self._shard.pairs:
            raise ValueError("add_shard after add: shards must be whole")
        for side, lengths, ids in (("src", src_lengths, src_ids), ("tgt", tgt_lengths, tgt_ids)):
            self._shard.lengths[side].frombytes(np.asarray(lengths, dtype=np.int64).tobytes())
            self._shard.ids[side].frombytes(np.asarray(ids, dtype=np.int32).tobytes())
        self._shard.pairs = len(src_lengths)
        self.pairs += len(src_lengths)
        self._flush()

    def close(self) -> None:
        if self._shard.pairs or not self._shards:
            self._flush()
        for handle in self._lengths:
            handle.close()
        meta = {
            "format": FORMAT,
            "pairs": self.pairs,
            "shard_pairs": self.shard_pairs,
            "id_dtype": self.id_dtype.name,
            "shards": self._shards,
            "tokens": self._tokens,
        }
        (self.folder / META).write_text(json.dumps(meta) + "\n", encoding="utf-8")

    def _flush(self) -> None:
        number = len(self._shards)
        arrays = self._shard.arrays(self.id_dtype)
        for side_index, side in enumerate(SIDES):
            lengths = arrays[f"{side}_lengths"]
            if len(lengths) and lengths.max() > _MAX_LENGTH:
                raise DataError(
                    f"a sentence of {int(lengths.max())} tokens: at most {_MAX_LENGTH} are stored"
                )
            self._lengths[side_index].write(lengths.astype("<u2").tobytes())
            arrays[side].astype(self.id_dtype.newbyteorder("<")).tofile(
                self.folder / f"{number:05d}.{side}.ids"
            )
            arrays[f"{side}_offsets"].astype("<i8").tofile(
                self.folder / f"{number:05d}.{side}.offsets"
            )
        self._shards.append(self._shard.pairs)
        self._tokens.append([len(arrays["src"]), len(arrays["tgt"])])
        self._shard = _ShardBuffer()


class _ShardBuffer:
    """One shard's ids and lengths, collected in compact int arrays (no list per sentence)."""

    def __init__(self) -> None:
        self.ids = {side: array("i") for side in SIDES}
        self.lengths = {side: array("q") for side in SIDES}
        self.pairs = 0

    def add(self, src_ids: Sequence[int], tgt_ids: Sequence[int]) -> None:
        for side, ids in zip(SIDES, (src_ids, tgt_ids), strict=True):
            self.ids[side].extend(ids)
            self.lengths[side].append(len(ids))
        self.pairs += 1

    def arrays(self, id_dtype) -> dict[str, np.ndarray]:
        arrays = {}
        for side in SIDES:
            lengths = np.frombuffer(self.lengths[side], dtype=np.int64)
            arrays[side] = np.frombuffer(self.ids[side], dtype=np.int32).astype(id_dtype)
            arrays[f"{side}_offsets"] = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
            arrays[f"{side}_lengths"] = lengths.copy()
        return arrays


class _PositionedReader:
    """Reads a batch's rows with positioned reads (``os.pread``) from the shard files.

    Why not through the memory maps: on kernels that keep file pages in large folios (Linux
    6.x), touching one element of a mapping maps up to 2 MB into the process; 100 random
    reads of a 40 MB shard added 42 MB of resident file pages on the development machine, so
    a training process's RSS grew with the corpus (to 1.1 GB at 20M pairs). pread copies
    just the bytes from the page cache, and a batch is a few hundred such reads. The file
    descriptors are opened once; pread has no file position, so forked loader workers can
    share them.
    """

    def __init__(self, folder: Path, shards: int, id_dtype: np.dtype) -> None:
        self.id_dtype = np.dtype(id_dtype).newbyteorder("<")
        self._files = [
            {
                f"{side}.{kind}": os.open(folder / f"{number:05d}.{side}.{kind}", os.O_RDONLY)
                for side in SIDES
                for kind in ("ids", "offsets")
            }
            for number in range(shards)
        ]

    def rows(
        self, side: str, indices: np.ndarray, shard_pairs: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        itemsize = self.id_dtype.itemsize
        pieces, lengths = [], np.zeros(len(indices), dtype=np.int64)
        for row, index in enumerate(indices.tolist()):
            files = self._files[index // shard_pairs]
            start, end = _OFFSET_PAIR.unpack(
                os.pread(files[f"{side}.offsets"], 16, (index % shard_pairs) * 8)
            )
            pieces.append(
                os.pread(files[f"{side}.ids"], (end - start) * itemsize, start * itemsize)
            )
            lengths[row] = end - start
        out = np.full((len(indices), int(lengths.max(initial=0))), PAD_ID, dtype=np.int64)
        for row, piece in enumerate(pieces):
            out[row, : lengths[row]] = np.frombuffer(piece, dtype=self.id_dtype)
        return torch.from_numpy(out), torch.from_numpy(lengths)

    def __del__(self) -> None:
        for files in getattr(self, "_files", []):
            for descriptor in files.values():
                os.close(descriptor)


_OFFSET_PAIR = struct.Struct("<qq")  # offsets[j], offsets[j + 1]


def _reopen(folder: str, mixture) -> EncodedCorpus:
    corpus = EncodedCorpus.load(Path(folder))
    corpus.mixture = mixture
    return corpus


def _map(path: Path, dtype, count: int) -> np.ndarray:
    """A read-only memory map of ``count`` items (an empty array for none: mmap refuses)."""
    dtype = np.dtype(dtype).newbyteorder("<")
    expected = count * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise ValueError(f"{path.name} has {size} bytes, expected {expected}")
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))
