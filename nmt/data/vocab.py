"""Sentencepiece vocabularies with the project's fixed special ids.

Every model, source or target, separate or joint, has PAD=0, UNK=1, BOS=2, EOS=3, so code
outside this module never asks a vocabulary for them. Training text is already normalised
(:mod:`nmt.data.normalize`), so sentencepiece's own normalisation is switched off
(``identity``): decoding an encoding gives the normalised text back exactly.

No byte fallback: a character outside the vocabulary (rare in training, an emoji at
translation time) becomes UNK. With a small corpus the 256 byte pieces would be too rarely
seen to learn anything, and UNK keeps source and output readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm
import torch

from nmt.errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
_SKIPPED_IN_DECODING = frozenset((PAD_ID, BOS_ID, EOS_ID))


class Vocabulary:
    """A sentencepiece model: text <-> subword ids (no BOS/EOS added)."""

    def __init__(self, processor: spm.SentencePieceProcessor) -> None:
        self.processor = processor
        actual = {
            "pad": processor.pad_id(),
            "unk": processor.unk_id(),
            "bos": processor.bos_id(),
            "eos": processor.eos_id(),
        }
        if actual != SPECIAL_IDS:
            raise DataError(f"sentencepiece model has special ids {actual}, expected {SPECIAL_IDS}")

    @classmethod
    def from_file(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"vocabulary model not found: {path}")
        return cls.from_bytes(path.read_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Vocabulary:
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(data)
        except (RuntimeError, OSError) as error:
            raise DataError(f"not a sentencepiece model: {error}") from None
        return cls(processor)

    def to_bytes(self) -> bytes:
        return self.processor.serialized_model_proto()

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def encode_batch(self, texts: list[str], threads: int = 1) -> list[list[int]]:
        return self.processor.encode(texts, num_threads=threads)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.processor.decode([i for i in ids if i not in _SKIPPED_IN_DECODING])

    def pieces(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return [self.processor.id_to_piece(i) for i in ids]


def train_vocabulary(
    input_files: Sequence[Path],
    model_prefix: Path,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    input_sentence_size: int = 500_000,
    threads: int = 2,
    seed: int = 0,
) -> Vocabulary:
    """Train a model on text files (one normalised sentence a line); writes PREFIX.model.

    At most ``input_sentence_size`` sentences, sampled uniformly, are loaded, so memory stays
    bounded on huge corpora. ``vocab_size`` is an upper bound: a small corpus may support
    fewer pieces, and the summary reports the size obtained.
    """
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            input=[str(path) for path in input_files],
            model_prefix=str(model_prefix),
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            normalization_rule_name="identity",
            byte_fallback=False,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=threads,
            minloglevel=2,
        )
    except RuntimeError as error:
        files = ", ".join(str(path) for path in input_files)
        raise DataError(f"sentencepiece training on {files} failed: {error}") from None
    return Vocabulary.from_file(model_prefix.with_name(model_prefix.name + ".model"))
