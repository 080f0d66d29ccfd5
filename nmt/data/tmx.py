"""TMX (Translation Memory eXchange) files, streamed one translation unit at a time.

A ``<tu>`` holds one ``<tuv xml:lang="..."><seg>text</seg></tuv>`` per language. Languages
match by their primary subtag, case-insensitively (``zh-CN``, ``ZH_tw`` and ``zho`` are all
``zh``). Inside ``<seg>`` the text of ``<hi>`` and ``<sub>`` is kept, the native codes of
``<bpt>``, ``<ept>``, ``<it>``, ``<ph>`` and ``<ut>`` are dropped. A unit that lacks one of
the two languages is a malformed line (reported at the line of its ``<tu>``); broken XML
stops the reader with file and line, whatever ``data.on_error`` says: nothing after it can
be trusted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.parsers import expat

from nmt.data.compression import DECOMPRESSION_ERRORS, damaged, open_binary
from nmt.data.readers import MalformedLines, SentencePair
from nmt.errors import DataError

_CODES = frozenset(("bpt", "ept", "it", "ph", "ut"))  # markup of the original file format
_THREE_LETTER = {"zho": "zh", "chi": "zh", "cmn": "zh", "eng": "en", "fra": "fr", "fre": "fr",
                 "deu": "de", "ger": "de", "jpn": "ja", "kor": "ko", "rus": "ru", "spa": "es"}  # fmt: skip


def language_of(code: str) -> str:
    """``zh`` for ``zh-CN``, ``ZH_tw``, ``zho``: the primary subtag, lowercase."""
    primary = code.replace("_", "-").split("-")[0].lower()
    return _THREE_LETTER.get(primary, primary)


def read_tmx(
    path: Path, src_lang: str, tgt_lang: str, errors: MalformedLines
) -> Iterator[SentencePair]:
    units = _UnitCollector()
    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda name, attributes: units.start(
        name, attributes, parser.CurrentLineNumber
    )
    parser.EndElementHandler = units.end
    parser.CharacterDataHandler = units.text
    with open_binary(path) as handle:
        try:
            while chunk := handle.read(1 << 20):
                _parse(parser, path, chunk, final=False)
                yield from _pairs(units, path, src_lang, tgt_lang, errors)
        except DECOMPRESSION_ERRORS as error:
            raise damaged(path, error) from None
    _parse(parser, path, b"", final=True)
    yield from _pairs(units, path, src_lang, tgt_lang, errors)


def _parse(parser, path: Path, chunk: bytes, final: bool) -> None:
    try:
        parser.Parse(chunk, final)
    except expat.ExpatError as error:
        raise DataError(
            f"{path}:{error.lineno}: not a well-formed TMX file ({expat.ErrorString(error.code)})"
        ) from None


def _pairs(
    units: _UnitCollector, path: Path, src_lang: str, tgt_lang: str, errors: MalformedLines
) -> Iterator[SentencePair]:
    finished, units.finished = units.finished, []
    for line, segments in finished:
        if src_lang in segments and tgt_lang in segments:
            yield SentencePair(segments[src_lang], segments[tgt_lang])
        else:
            found = ", ".join(sorted(segments)) or "none"
            errors.report(
                path, line, f"translation unit without both {src_lang} and {tgt_lang} (has {found})"
            )


class _UnitCollector:
    """expat callbacks: collects (line of <tu>, {language: segment text}) per unit."""

    def __init__(self) -> None:
        self.finished: list[tuple[int, dict[str, str]]] = []
        self._unit_line = 0
        self._segments: dict[str, str] = {}
        self._language: str | None = None
        self._text: list[str] | None = None  # inside <seg>
        self._skip_depth = 0  # inside native codes

    def start(self, name: str, attributes: dict[str, str], line: int) -> None:
        if name == "tu":
            self._unit_line, self._segments = line, {}
        elif name == "tuv":
            code = attributes.get("xml:lang") or attributes.get("lang") or ""
            self._language = language_of(code)
        elif name == "seg":
            self._text = []
        elif name in _CODES and self._text is not None:
            self._skip_depth += 1

    def end(self, name: str) -> None:
        if name == "tu":
            self.finished.append((self._unit_line, self._segments))
        elif name == "seg" and self._text is not None:
            if self._language:
                # One line per sentence in the prepared files: line breaks become spaces.
                self._segments[self._language] = " ".join("".join(self._text).split())
            self._text = None
        elif name in _CODES and self._skip_depth:
            self._skip_depth -= 1

    def text(self, data: str) -> None:
        if self._text is not None and not self._skip_depth:
            self._text.append(data)
