"""Cleaning: the filters a training pair must pass, each with its own count for the summary.

Filters see normalised text and run in the order of :data:`FILTERS`; a removed pair is
counted once, under the first filter it fails. Lengths are in characters (the vocabulary
does not exist yet when cleaning runs). :class:`PairFilter` applies the per-pair filters as
pairs stream by; language identification runs on chunks (:mod:`nmt.data.langid`), and
de-duplication once over all kept pairs (:func:`first_occurrences`, on 64-bit keys in numpy
arrays: 16 bytes a pair, no Python object per pair).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection

import numpy as np

from nmt.data.langid import wrong_script
from nmt.data.normalize import is_chinese

FILTERS = (
    "empty",  # a side is empty
    "too_long",  # a side is longer than max_chars
    "length_ratio",  # the longer side is more than max_length_ratio times the shorter
    "identical",  # source and target are the same text (untranslated)
    "no_cjk",  # the Chinese side has no Chinese character
    "wrong_script",  # a side is mostly in another script than its language's
    "in_dev_or_test",  # a side occurs in the given dev or test set (would leak into training)
    "wrong_language",  # language identification names another language (data.language_id)
    "duplicate",  # the pair occurred before (in any corpus)
)

# CJK Unified Ideographs with extensions A-F and the compatibility block.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def sentence_key(text: str) -> int:
    """A stable 64-bit identity of a sentence (signed, so it fits an int64 tensor)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class PairFilter:
    """Decides which normalised pairs go on towards training and counts the rest per filter
    (all but ``wrong_language`` and ``duplicate``, which see more than one pair)."""

    def __init__(
        self,
        max_chars: int,
        max_length_ratio: float,
        languages: tuple[str, str] = ("zh", "en"),  # (source, target)
        script_filter: bool = True,
        held_out_sources: Collection[int] = (),  # sentence keys of the given dev/test sets
        held_out_targets: Collection[int] = (),
    ) -> None:
        self.max_chars = max_chars
        self.max_length_ratio = max_length_ratio
        self.languages = languages
        self.script_filter = script_filter
        self.chinese_side = next((i for i, lang in enumerate(languages) if is_chinese(lang)), None)
        self.held_out_sources = held_out_sources
        self.held_out_targets = held_out_targets
        self.removed: Counter[str] = Counter({name: 0 for name in FILTERS})

    def keep(self, source: str, target: str, source_key: int, target_key: int) -> bool:
        reason = self._reason(source, target, source_key, target_key)
        if reason is None:
            return True
        self.removed[reason] += 1
        return False

    def _reason(self, source: str, target: str, source_key: int, target_key: int) -> str | None:
        shorter, longer = sorted((len(source), len(target)))
        if shorter == 0:
            return "empty"
        if longer > self.max_chars:
            return "too_long"
        if longer > self.max_length_ratio * shorter:
            return "length_ratio"
        if source == target:
            return "identical"
        sides = (source, target)
        if self.chinese_side is not None and not has_cjk(sides[self.chinese_side]):
            return "no_cjk"
        if self.script_filter and any(
            wrong_script(text, lang) for text, lang in zip(sides, self.languages, strict=True)
        ):
            return "wrong_script"
        if source_key in self.held_out_sources or target_key in self.held_out_targets:
            return "in_dev_or_test"
        return None


def first_occurrences(source_keys: np.ndarray, target_keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True for the first pair of every distinct (source, target) key pair.

    A stable sort by (source key, target key) puts equal pairs side by side in their input
    order; the first of each run is kept. Memory: a few 8-byte arrays of the pair count.
    """
    if len(source_keys) == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((target_keys, source_keys))  # stable: equal pairs keep input order
    sorted_source, sorted_target = source_keys[order], target_keys[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_source[1:] != sorted_source[:-1]) | (
        sorted_target[1:] != sorted_target[:-1]
    )
    keep = np.zeros(len(order), dtype=bool)
    keep[order[starts]] = True
    return keep
