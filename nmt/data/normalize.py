"""Text normalisation, applied to every sentence before cleaning, training and translation.

One function, :func:`normalize`, used by data preparation and by the translator alike, so a
sentence typed at translation time meets the vocabulary in the form it was trained on:

1. Control and format characters are dropped (zero-width spaces, BOMs, soft hyphens).
2. Unicode NFKC: full-width letters, digits and punctuation become their ASCII forms,
   compatibility characters (ligatures, circled digits) are spelled out.
3. Runs of whitespace become one space; the ends are stripped.
4. Chinese only, optional: Traditional characters become Simplified (OpenCC's ``t2s``
   tables), so text in either script maps onto one vocabulary. Like OpenCC, one pass: its
   tables chain in a few places (薴 -> 苧 -> 苎), so normalising twice can differ from once;
   training and translation both normalise raw text exactly once.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import opencc

_DROPPED_CATEGORIES = {"Cc", "Cf"}  # control and format characters


@functools.cache
def is_chinese(lang: str) -> bool:
    """Whether a language code names Chinese (``zh``, ``zh-TW``, ``cmn``...)."""
    return lang.split("-")[0].split("_")[0].lower() in {"zh", "cmn"}


def normalize(text: str, lang: str, traditional_to_simplified: bool = True) -> str:
    """Return the normalised form of one sentence (see the module docstring)."""
    # isprintable() is False for exactly the characters worth a closer look (controls,
    # formats, whitespace other than ' '), so the common case skips the per-character loop.
    # They go before NFKC, which could otherwise not compose the characters around them.
    if not text.isprintable():
        text = "".join(
            char
            for char in text
            if char.isspace() or unicodedata.category(char) not in _DROPPED_CATEGORIES
        )
    text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.split())
    if traditional_to_simplified and is_chinese(lang):
        text = to_simplified(text)
    return text


def to_simplified(text: str) -> str:
    """Traditional -> Simplified Chinese with OpenCC's tables (phrases first, then characters)."""
    if not may_change_to_simplified(text):
        return text
    return _t2s_tables()[0].convert(text)


def may_change_to_simplified(text: str) -> bool:
    """False when OpenCC's conversion surely leaves ``text`` as it is.

    The pure-Python OpenCC tries every substring of a sentence against its tables: slow. A
    sentence without any character that can start a change (almost every Simplified one) is
    answered by one set test in C.
    """
    return not _t2s_tables()[1].isdisjoint(text)


@functools.cache
def _t2s_tables() -> tuple[opencc.OpenCC, frozenset[str]]:
    """The converter, and a set of characters that every changing match contains one of."""
    dictionary_dir = Path(opencc.__file__).parent / "dictionary"

    def entries(name: str) -> list[tuple[str, str]]:  # (key, first conversion)
        with open(dictionary_dir / name, encoding="utf-8") as table:
            rows = (line.rstrip("\n").split("\t") for line in table)
            return [(key, value.split(" ")[0]) for key, value in rows]

    # t2s.json applies TSPhrases.txt then TSCharacters.txt. Every character entry is a
    # trigger; a phrase that changes text contains one of them, except a few (沈默 -> 沉默)
    # whose first character is added.
    triggers = {key for key, _ in entries("TSCharacters.txt")}
    for phrase, conversion in entries("TSPhrases.txt"):
        if phrase != conversion and triggers.isdisjoint(phrase):
            triggers.add(phrase[0])
    return opencc.OpenCC("t2s"), frozenset(triggers)
