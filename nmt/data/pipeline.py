"""The streaming steps of a build: each reads its input line by line and writes files.

Memory holds at most a chunk of sentences plus, per training pair, two 64-bit sentence keys
(for the split) and one pair key (for de-duplication), so millions of pairs fit easily.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch
from tqdm import tqdm

from nmt.data.clean import PairFilter, sentence_key
from nmt.data.encoded import CorpusBuilder, EncodedCorpus, array_to_tensor
from nmt.data.normalize import normalize
from nmt.data.readers import CorpusInput, count_lines, read_aligned, read_pairs
from nmt.data.split import TRAIN
from nmt.data.vocab import Vocabulary

ENCODE_CHUNK = 10_000  # sentences per sentencepiece call


@dataclass(frozen=True)
class SplitFiles:
    """The text files of one split: source, target and the corpus's attribution lines."""

    source: Path
    target: Path
    attribution: Path

    @classmethod
    def named(cls, folder: Path, name: str, src_lang: str, tgt_lang: str) -> SplitFiles:
        return cls(
            folder / f"{name}.{src_lang}",
            folder / f"{name}.{tgt_lang}",
            folder / f"{name}.attribution",
        )

    def remove(self) -> None:
        for path in (self.source, self.target, self.attribution):
            path.unlink(missing_ok=True)

    def open_for_writing(self, stack: ExitStack, attribution: bool) -> list:
        paths = [self.source, self.target] + ([self.attribution] if attribution else [])
        self.attribution.unlink(missing_ok=True)  # a stale one would no longer line up
        return [stack.enter_context(_open_text(path, "w")) for path in paths]


@dataclass(frozen=True)
class PairNormalizer:
    src_lang: str
    tgt_lang: str
    traditional_to_simplified: bool

    def __call__(self, source: str, target: str) -> tuple[str, str]:
        return (
            normalize(source, self.src_lang, self.traditional_to_simplified),
            normalize(target, self.tgt_lang, self.traditional_to_simplified),
        )


@dataclass
class HeldOutKeys:
    """Sentence keys of the given dev/test sets, so training can exclude them."""

    sources: set[int]
    targets: set[int]


def copy_given_split(
    corpus: CorpusInput, out: SplitFiles, normalizer: PairNormalizer, keys: HeldOutKeys
) -> int:
    """Copy a given dev/test set unfiltered and unnormalised; returns its size.

    It stays line-aligned with its references (every line kept, as it was), and its
    normalised sentences' keys are added to ``keys``.
    """
    size = 0
    with ExitStack() as stack:
        writers = out.open_for_writing(stack, attribution=corpus.kind == "tsv")
        for pair in read_pairs(corpus):
            _write_fields(writers, pair)
            source, target = normalizer(pair.source, pair.target)
            keys.sources.add(sentence_key(source))
            keys.targets.add(sentence_key(target))
            size += 1
    return size


@dataclass
class CleanedPairs:
    pairs_read: int
    source_keys: torch.Tensor  # (kept,) int64 sentence keys, for the split
    target_keys: torch.Tensor


def clean_training_pairs(
    corpus: CorpusInput,
    normalizer: PairNormalizer,
    pair_filter: PairFilter,
    cleaned: SplitFiles,
    raw: SplitFiles | None,
) -> CleanedPairs:
    """Normalise and filter the training input into ``cleaned`` (and the originals of the
    kept pairs into ``raw``, needed when dev/test are split off it)."""
    source_keys, target_keys = array("q"), array("q")
    has_attribution = corpus.kind == "tsv"
    pairs_read = 0
    with ExitStack() as stack:
        cleaned_writers = cleaned.open_for_writing(stack, has_attribution)
        raw_writers = raw.open_for_writing(stack, has_attribution) if raw else None
        total = count_lines(corpus.paths[0])
        for pair in tqdm(
            read_pairs(corpus), total=total, desc="clean", unit=" pairs", disable=None
        ):
            pairs_read += 1
            source, target = normalizer(pair.source, pair.target)
            source_key, target_key = sentence_key(source), sentence_key(target)
            if not pair_filter.keep(source, target, source_key, target_key):
                continue
            _write_fields(cleaned_writers, (source, target, pair.attribution))
            if raw_writers:
                _write_fields(raw_writers, pair)
            source_keys.append(source_key)
            target_keys.append(target_key)
    return CleanedPairs(
        pairs_read,
        array_to_tensor(source_keys, torch.int64),
        array_to_tensor(target_keys, torch.int64),
    )


def distribute(
    split_codes: torch.Tensor,
    cleaned: SplitFiles,
    raw: SplitFiles,
    train: SplitFiles,
    held_out: list[SplitFiles],
) -> list[int]:
    """Send each cleaned pair to its split: normalised text to train, the original text to
    held-out split ``k`` (code ``k``); returns the size of every split, train first."""
    has_attribution = cleaned.attribution.is_file()
    sizes = [0] * (1 + len(held_out))
    with ExitStack() as stack:
        inputs = [_read_lines(stack, files, has_attribution) for files in (cleaned, raw)]
        outputs = [files.open_for_writing(stack, has_attribution) for files in (train, *held_out)]
        for code, cleaned_fields, raw_fields in zip(
            split_codes.tolist(),
            zip(*inputs[0], strict=True),
            zip(*inputs[1], strict=True),
            strict=True,
        ):
            _write_fields(outputs[code], cleaned_fields if code == TRAIN else raw_fields)
            sizes[code] += 1
    return sizes


def encode_files(
    files: SplitFiles,
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    normalizer: PairNormalizer | None,
    threads: int,
    desc: str,
) -> EncodedCorpus:
    """Token ids of every line pair; ``normalizer`` for files holding original text."""
    builder = CorpusBuilder()
    pairs = read_aligned(files.source, files.target)
    total = count_lines(files.source)
    with tqdm(total=total, desc=desc, unit=" pairs", disable=None) as progress:
        while chunk := list(islice(pairs, ENCODE_CHUNK)):
            if normalizer is not None:
                chunk = [normalizer(pair.source, pair.target) for pair in chunk]
            sources = src_vocab.encode_batch([pair[0] for pair in chunk], threads)
            targets = tgt_vocab.encode_batch([pair[1] for pair in chunk], threads)
            for src_ids, tgt_ids in zip(sources, targets, strict=True):
                builder.add(src_ids, tgt_ids)
            progress.update(len(chunk))
    return builder.build()


def replace_files(source: SplitFiles, destination: SplitFiles) -> None:
    """Rename the files of one split to another split's names."""
    for old, new in zip(
        (source.source, source.target, source.attribution),
        (destination.source, destination.target, destination.attribution),
        strict=True,
    ):
        if old.is_file():
            os.replace(old, new)
        else:
            new.unlink(missing_ok=True)


def _open_text(path: Path, mode: str):
    # newline="\n": lines end at \n only, as the readers expect; no \r\n translation.
    return open(path, mode, encoding="utf-8", newline="\n")


def _read_lines(stack: ExitStack, files: SplitFiles, attribution: bool) -> list[Iterator[str]]:
    paths = [files.source, files.target] + ([files.attribution] if attribution else [])
    return [(line[:-1] for line in stack.enter_context(_open_text(path, "r"))) for path in paths]


def _write_fields(writers: list, fields: tuple[str, ...]) -> None:
    for writer, text in zip(writers, fields, strict=False):  # the attribution is optional
        writer.write(text + "\n")
