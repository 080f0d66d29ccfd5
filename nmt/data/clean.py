"""Cleaning: the filters a training pair must pass, each with its own count for the summary.

Filters see normalised text and run in the order of :data:`FILTERS`; a removed pair is
counted once, under the first filter it fails. Lengths are in characters (the vocabulary
does not exist yet when cleaning runs).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection

FILTERS = (
    "empty",  # a side is empty
    "too_long",  # a side is longer than max_chars
    "length_ratio",  # the longer side is more than max_length_ratio times the shorter
    "identical",  # source and target are the same text (untranslated)
    "no_cjk",  # the Chinese side has no Chinese character
    "in_dev_or_test",  # a side occurs in the given dev or test set (would leak into training)
    "duplicate",  # the pair occurred before
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
    """Decides which normalised pairs go into training and counts the rest per filter."""

    def __init__(
        self,
        max_chars: int,
        max_length_ratio: float,
        chinese_side: str | None = None,  # "source", "target" or None
        held_out_sources: Collection[int] = (),  # sentence keys of the given dev/test sets
        held_out_targets: Collection[int] = (),
    ) -> None:
        self.max_chars = max_chars
        self.max_length_ratio = max_length_ratio
        self.chinese_side = chinese_side
        self.held_out_sources = held_out_sources
        self.held_out_targets = held_out_targets
        self.removed: Counter[str] = Counter({name: 0 for name in FILTERS})
        # source_key << 64 | target_key: compact; a false match needs a 64-bit hash collision
        self._seen_pairs: set[int] = set()

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
        if self.chinese_side is not None:
            chinese = source if self.chinese_side == "source" else target
            if not has_cjk(chinese):
                return "no_cjk"
        if source_key in self.held_out_sources or target_key in self.held_out_targets:
            return "in_dev_or_test"
        pair_key = (source_key << 64) | (target_key & 0xFFFF_FFFF_FFFF_FFFF)
        if pair_key in self._seen_pairs:
            return "duplicate"
        self._seen_pairs.add(pair_key)
        return None
