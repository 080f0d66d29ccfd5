"""Language codes as API clients send them, their names, and ``source=auto`` detection.

Detection is by script only, which is all a Chinese<->other server needs: a text in which
Han characters make up a fair share of the letters is Chinese, anything else is the one
non-Chinese source language the server has. A server with several non-Chinese source
languages cannot tell them apart and asks for ``source``.
"""

from __future__ import annotations

import unicodedata

from nmt.data.normalize import is_chinese

NAMES = {
    "zh": "Chinese",
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
}
# Codes LibreTranslate clients use for Simplified Chinese.
ALIASES = {"zh-hans": "zh", "zh-cn": "zh", "zh_cn": "zh", "cmn": "zh"}
HAN_SHARE = 0.3  # a text this much Han (of its letters) is Chinese


def canonical(code: str) -> str:
    code = code.strip().lower()
    return ALIASES.get(code, code)


def name(code: str) -> str:
    return NAMES.get(code, code)


def han_share(text: str) -> float:
    """The share of Han characters among the letters of ``text`` (0 when it has none)."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return 0.0
    han = sum(1 for char in letters if unicodedata.name(char, "").startswith("CJK"))
    return han / len(letters)


def detect(text: str, sources: list[str]) -> tuple[str, float] | None:
    """(language, confidence in %) of ``text`` among ``sources``; None if the script cannot
    decide between them."""
    chinese = [code for code in sources if is_chinese(code)]
    others = [code for code in sources if not is_chinese(code)]
    share = han_share(text)
    if share >= HAN_SHARE and chinese:
        return chinese[0], round(100 * share, 1)
    if len(others) == 1:
        return others[0], round(100 * (1 - share), 1)
    if not others and chinese:
        return chinese[0], round(100 * share, 1)
    return None
