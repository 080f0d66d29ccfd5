"""The streaming steps of a build: each reads its input line by line and writes files.

Memory holds at most a chunk of sentences plus, per training pair, two 64-bit sentence keys
(for de-duplication and the split), so tens of millions of pairs fit in a few GB; encoded
ids go to disk one shard at a time (:mod:`nmt.data.encoded`).
"""

from __future__ import annotations

import itertools
import os
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nmt.data.clean import PairFilter, sentence_key
from nmt.data.encoded import CorpusWriter
from nmt.data.langid import LanguageIdentifier, needs_detection
from nmt.data.normalize import normalize
from nmt.data.readers import (
    CorpusInput,
    MalformedLines,
    SentencePair,
    read_aligned,
    read_pairs,
)
from nmt.data.split import TRAIN
from nmt.data.vocab import Vocabulary

ENCODE_CHUNK = 10_000  # sentences per sentencepiece call
CLEAN_CHUNK = 10_000  # pairs normalised and filtered together (language identification)


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
        writers = out.open_for_writing(stack, attribution=corpus.has_attribution)
        for pair in read_pairs(corpus):
            _write_fields(writers, pair)
            source, target = normalizer(pair.source, pair.target)
            keys.sources.add(sentence_key(source))
            keys.targets.add(sentence_key(target))
            size += 1
    return size


@dataclass
class CorpusCount:
    """What cleaning did to one training corpus (per-corpus lines of the summary)."""

    name: str
    pairs_read: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    kept: int = 0  # pairs that passed every filter but de-duplication
    train: int = 0  # pairs in the training split (after de-duplication and splitting)


@dataclass
class CleanedPairs:
    counts: list[CorpusCount]  # per corpus, in order: their pairs follow each other
    source_keys: np.ndarray  # (kept,) int64 sentence keys, for de-duplication and the split
    target_keys: np.ndarray

    def ranges(self) -> list[slice]:
        """Each corpus's kept pairs (they follow each other)."""
        ends = np.cumsum([0] + [count.kept for count in self.counts]).tolist()
        return [slice(start, end) for start, end in zip(ends, ends[1:], strict=False)]


@dataclass
class Cleaning:
    """The cleaning settings of one build, passed whole to :func:`clean_training_pairs`."""

    normalizer: PairNormalizer
    make_filter: Callable[[], PairFilter]  # one filter (and its counts) per corpus
    language_id: LanguageIdentifier | None
    errors: MalformedLines


def clean_training_pairs(
    corpora: list[tuple[str, CorpusInput]],
    cleaning: Cleaning,
    cleaned: SplitFiles,
    raw: SplitFiles | None,
) -> CleanedPairs:
    """Normalise and filter the training corpora (``(name, input)``, in order) into one
    ``cleaned`` file set (and the originals of the kept pairs into ``raw``, needed when
    dev/test are split off it). Each corpus is read in chunks: the per-pair filters, then
    language identification of the chunk's survivors."""
    source_keys, target_keys = array("q"), array("q")
    has_attribution = any(corpus.has_attribution for _, corpus in corpora)
    counts = []
    with ExitStack() as stack:
        cleaned_writers = cleaned.open_for_writing(stack, has_attribution)
        raw_writers = raw.open_for_writing(stack, has_attribution) if raw else None
        for name, corpus in corpora:
            count, pair_filter = CorpusCount(name), cleaning.make_filter()
            pairs = read_pairs(corpus, cleaning.errors)
            progress = tqdm(desc=f"clean {name}", unit=" pairs", disable=None)
            while chunk := list(islice(pairs, CLEAN_CHUNK)):
                count.pairs_read += len(chunk)
                progress.update(len(chunk))
                kept = _filter_chunk(chunk, cleaning, pair_filter)
                for pair, source, target, source_key, target_key in kept:
                    _write_fields(cleaned_writers, (source, target, pair.attribution))
                    if raw_writers:
                        _write_fields(raw_writers, pair)
                    source_keys.append(source_key)
                    target_keys.append(target_key)
                count.kept += len(kept)
            progress.close()
            count.removed = dict(pair_filter.removed)
            counts.append(count)
    return CleanedPairs(
        counts,
        np.frombuffer(source_keys, dtype=np.int64) if source_keys else np.zeros(0, np.int64),
        np.frombuffer(target_keys, dtype=np.int64) if target_keys else np.zeros(0, np.int64),
    )


def _filter_chunk(
    chunk: list[SentencePair], cleaning: Cleaning, pair_filter: PairFilter
) -> list[tuple[SentencePair, str, str, int, int]]:
    """The chunk's pairs that pass the per-pair filters and language identification, with
    their normalised text and sentence keys."""
    kept = []
    for pair in chunk:
        source, target = cleaning.normalizer(pair.source, pair.target)
        source_key, target_key = sentence_key(source), sentence_key(target)
        if pair_filter.keep(source, target, source_key, target_key):
            kept.append((pair, source, target, source_key, target_key))
    if cleaning.language_id is None or not kept:
        return kept
    wrong = [False] * len(kept)
    languages = (cleaning.normalizer.src_lang, cleaning.normalizer.tgt_lang)
    for side, lang in enumerate(languages):
        if needs_detection(lang):
            found = cleaning.language_id.wrong([item[1 + side] for item in kept], lang)
            wrong = [a or b for a, b in zip(wrong, found, strict=True)]
    pair_filter.removed["wrong_language"] += sum(wrong)
    return [item for item, drop in zip(kept, wrong, strict=True) if not drop]


DROPPED = -1  # split code of a pair that goes nowhere (a duplicate)


def distribute(
    split_codes: np.ndarray,
    cleaned: SplitFiles,
    raw: SplitFiles | None,
    train: SplitFiles,
    held_out: list[SplitFiles],
) -> list[int]:
    """Send each cleaned pair to its split: normalised text to train (code 0), the original
    text to held-out split ``k`` (code ``k``), nowhere for :data:`DROPPED`; returns the size
    of every split, train first."""
    has_attribution = cleaned.attribution.is_file()
    sizes = [0] * (1 + len(held_out))
    with ExitStack() as stack:
        cleaned_lines = zip(*_read_lines(stack, cleaned, has_attribution), strict=True)
        raw_lines = (
            zip(*_read_lines(stack, raw, has_attribution), strict=True)
            if raw
            else itertools.repeat(None)
        )
        outputs = [files.open_for_writing(stack, has_attribution) for files in (train, *held_out)]
        codes = (  # a million at a time: no list of 20M Python ints
            code
            for start in range(0, len(split_codes), 1 << 20)
            for code in split_codes[start : start + (1 << 20)].tolist()
        )
        for code, cleaned_fields, raw_fields in zip(codes, cleaned_lines, raw_lines, strict=False):
            if code == DROPPED:
                continue
            _write_fields(outputs[code], cleaned_fields if code == TRAIN else raw_fields)
            sizes[code] += 1
    return sizes


def encode_files(
    files: SplitFiles,
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    normalizer: PairNormalizer | None,
    threads: int,
    folder: Path,
    desc: str,
) -> int:
    """Token ids of every line pair into the ``.ids`` folder ``folder``; ``normalizer`` for
    files holding original text. Returns the number of pairs."""
    largest = max(len(src_vocab), len(tgt_vocab))
    writer = CorpusWriter(folder, np.uint16 if largest <= 1 << 16 else np.int32)
    pairs = read_aligned(files.source, files.target)
    with tqdm(desc=desc, unit=" pairs", disable=None) as progress:
        while chunk := list(islice(pairs, ENCODE_CHUNK)):
            if normalizer is not None:
                chunk = [normalizer(pair.source, pair.target) for pair in chunk]
            sources = src_vocab.encode_batch([pair[0] for pair in chunk], threads)
            targets = tgt_vocab.encode_batch([pair[1] for pair in chunk], threads)
            for src_ids, tgt_ids in zip(sources, targets, strict=True):
                writer.add(src_ids, tgt_ids)
            progress.update(len(chunk))
    writer.close()
    return writer.pairs


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
