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

Step 2 makes the Chinese side's full-width ``，？！：；（）`` ASCII, so a model trained on it
writes "是的,我知道。" and "你在哪里?". :func:`restore_chinese_punctuation` turns them back
for Chinese output (the translator applies it to what it writes in Chinese): an ASCII
``, ? ! : ; ( )`` beside Chinese text (a CJK character or full-width punctuation, looking
past spaces and quotes) becomes its full-width form, and the spaces around it go; so does a
``?`` or ``!`` that ends a sentence with Chinese in it ("你有多少张CD?"). A bracket pair
converts when it encloses Chinese, or encloses letters or digits right beside Chinese.
Numbers ("3:00", "1,000"), Latin text ("A,B", "Really?"), URLs ("http://") and emoticons
(":)", "(^_^)") stay ASCII; text without Chinese is returned as it is. It is idempotent.
"""

from __future__ import annotations

import functools
import re
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


# --- Chinese punctuation in Chinese output ------------------------------------------------

_FULL_WIDTH = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；", "(": "（", ")": "）"}
# Chinese context: CJK ideographs (with extensions and compatibility forms), kana, CJK
# punctuation (。、「」) and full-width forms (，？！ and the others once converted).
_CHINESE_CONTEXT = re.compile(
    "[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)
_SEE_THROUGH = frozenset(" \"'\u201c\u201d\u2018\u2019")  # looked past for context
# Marks that belong to something else: URLs and e-mail addresses (ASCII: Chinese text
# around them is not theirs), and emoticons (:) ;-( :D).
_PROTECTED = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[!-~]*"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
    r"|(?<![A-Za-z0-9])[:;=][-^']?[()DPpO|\[\]](?![A-Za-z0-9])"
)
_SPACES_AROUND_FULL_WIDTH = re.compile(f" *([{''.join(_FULL_WIDTH.values())}]) *")


def restore_chinese_punctuation(text: str) -> str:
    """Full-width ``，？！：；（）`` for the ASCII marks that :func:`normalize` made of them
    in Chinese text (see the module docstring). ``restore(restore(x)) == restore(x)``."""
    if not _CHINESE_CONTEXT.search(text):
        return text  # English, numbers, symbols: nothing to restore
    # A conversion can put Chinese context beside another mark ("好?!": the ! follows a ？
    # only once the ? is converted), so repeat until nothing changes; every pass only
    # converts marks or drops spaces, so this ends, and the result is a fixed point.
    while True:
        restored = _restore_once(text)
        if restored == text:
            return text
        text = restored


def _restore_once(text: str) -> str:
    protected = {i for match in _PROTECTED.finditer(text) for i in range(*match.span())}
    chars = list(text)
    for index, char in enumerate(text):
        if char not in _FULL_WIDTH or index in protected or char in "()":
            continue
        following = _neighbour(text, index, 1)
        if _is_context(_neighbour(text, index, -1)) or _is_context(following):
            chars[index] = _FULL_WIDTH[char]
        elif char in "?!" and not following.isalnum() and _ends_chinese_sentence(text, index):
            chars[index] = _FULL_WIDTH[char]  # "你有多少张CD?": the sentence is Chinese
    for opening, closing in _bracket_pairs(text, protected):
        inside = text[opening + 1 : closing]
        chinese_inside = _CHINESE_CONTEXT.search(inside) is not None
        beside = _is_context(_neighbour(text, opening, -1)) or _is_context(
            _neighbour(text, closing, 1)
        )
        if chinese_inside or (beside and any(char.isalnum() for char in inside)):
            chars[opening], chars[closing] = "（", "）"
    # Full-width marks carry their own spacing: a space beside one goes.
    return _SPACES_AROUND_FULL_WIDTH.sub(r"\1", "".join(chars))


def _neighbour(text: str, index: int, step: int) -> str:
    """The nearest character before (step -1) or after (step 1) ``index`` that is not a
    space or a quote; empty at the ends."""
    index += step
    while 0 <= index < len(text) and text[index] in _SEE_THROUGH:
        index += step
    return text[index] if 0 <= index < len(text) else ""


def _ends_chinese_sentence(text: str, index: int) -> bool:
    """Whether the sentence that the mark at ``index`` ends has Chinese in it."""
    start = max(text.rfind(mark, 0, index) for mark in "。！？!?") + 1
    return _CHINESE_CONTEXT.search(text, start, index) is not None


def _is_context(char: str) -> bool:
    return bool(char) and _CHINESE_CONTEXT.match(char) is not None


def _bracket_pairs(text: str, protected: set[int]) -> list[tuple[int, int]]:
    """Positions of matched ASCII ``(`` ``)`` pairs; unmatched ones stay as they are."""
    pairs, open_at = [], []
    for index, char in enumerate(text):
        if index in protected:
            continue
        if char == "(":
            open_at.append(index)
        elif char == ")" and open_at:
            pairs.append((open_at.pop(), index))
    return pairs
