"""Is a side written in its language? A cheap script check, and language identification.

**Script** (``data.script_filter``, on by default): a side whose letters are mostly of
another script than its language's is in the wrong column. A Chinese character weighs as
much as 4 Latin letters (about one English word):

* Chinese side: wrong when it has any kana or hangul (Japanese, Korean), or more foreign
  letters (Latin, Cyrillic...) than 4 x its Chinese characters. ``我用Twitter。`` stays
  (7 <= 8), ``Hello, how are you?`` goes.
* Latin-script side (English, French...): wrong when 4 x its CJK characters plus its other
  non-Latin letters outnumber its Latin letters. ``How do you say "猫"?`` stays,
  ``我们明天去公园吧。`` goes.

Languages not listed in :data:`SCRIPTS` are not checked. On the canonical Tatoeba training
split it removes no pair (docs/data.md).

**Language identification** (``data.language_id``, off by default) with lingua
(``lingua-language-detector``, its models inside the wheel, offline; ``pip install -e
'.[langid]'``). It runs only on the sides the script does not decide: Latin-script ones
(Chinese is told apart from Japanese by its script). The candidates are the side's language
and the frequent Latin-script languages of web crawls (:data:`CANDIDATES`); a side goes when
lingua names another one with a relative confidence distance of at least
:data:`MIN_DISTANCE` and the side has at least :data:`MIN_WORDS` words (short sentences carry
too little evidence: "Kiss me." reads as French). Detection runs in lingua's thread pool, a
chunk of sentences at a time (about 25,000 English sentences/s on 2 cores).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from nmt.data.normalize import is_chinese
from nmt.errors import DataError

SCRIPTS = {"zh": "han"} | dict.fromkeys(
    "en fr de es it pt nl id vi tr pl cs ro sv da fi no nb hu ca".split(), "latin"
)
CANDIDATES = ("en", "fr", "de", "es", "pt", "it", "nl")
MIN_DISTANCE = 0.25
MIN_WORDS = 4
_HAN_WEIGHT = 4

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA_HANGUL = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_LETTER = re.compile(r"[^\W\d_]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")


def script_of(lang: str) -> str | None:
    """``han``, ``latin`` or None (not checked) for a language code."""
    return "han" if is_chinese(lang) else SCRIPTS.get(lang.split("-")[0].split("_")[0].lower())


def wrong_script(text: str, lang: str) -> bool:
    """True when ``text`` is written mostly in another script than ``lang``'s."""
    script = script_of(lang)
    if script == "latin":
        if text.isascii():  # the common case, decided in C
            return False
        latin = len(_LATIN.findall(text))
        cjk = len(_HAN.findall(text)) + len(_KANA_HANGUL.findall(text))
        other = len(_LETTER.findall(text)) - latin - cjk
        return _HAN_WEIGHT * cjk + other > latin
    if script == "han":
        if _KANA_HANGUL.search(text):
            return True
        han = len(_HAN.findall(text))
        foreign = len(_LETTER.findall(text)) - han
        return foreign > _HAN_WEIGHT * han
    return False


class LanguageIdentifier:
    """Finds sides in another language than their column's, with lingua."""

    def __init__(self, languages: Sequence[str]) -> None:
        """``languages``: the codes of the sides to check (those :func:`needs_detection`)."""
        lingua = _import_lingua()
        self._languages = {}
        for code in {*languages, *CANDIDATES}:
            try:
                iso = getattr(lingua.IsoCode639_1, code.upper())
            except AttributeError:
                raise DataError(
                    f"data.language_id: lingua does not know language '{code}'"
                ) from None
            self._languages[code] = lingua.Language.from_iso_code_639_1(iso)
        self._detector = (
            lingua.LanguageDetectorBuilder.from_languages(*self._languages.values())
            .with_minimum_relative_distance(MIN_DISTANCE)
            .build()
        )

    def wrong(self, texts: list[str], lang: str) -> list[bool]:
        """Per text: lingua is sure it is in another language than ``lang``."""
        judged = [i for i, text in enumerate(texts) if len(text.split()) >= MIN_WORDS]
        found = self._detector.detect_languages_in_parallel_of([texts[i] for i in judged])
        expected = self._languages[lang]
        result = [False] * len(texts)
        for i, language in zip(judged, found, strict=True):
            result[i] = language is not None and language != expected
        return result


def needs_detection(lang: str) -> bool:
    """Sides whose script does not tell their language (Latin script, or unknown)."""
    return script_of(lang) != "han"


def _import_lingua():
    try:
        import lingua
    except ImportError:
        raise DataError(
            "data.language_id needs the lingua-language-detector package: "
            "pip install -e '.[langid]' (or set data.language_id=false)"
        ) from None
    return lingua
