"""Readers for the two corpus formats, streaming one sentence pair at a time.

* Tatoeba / manythings.org TSV: ``english<TAB>other<TAB>attribution`` per line, optional BOM.
  The attribution column (CC-BY credit of the two sentences) is kept.
* Aligned plain text: ``NAME.zh`` and ``NAME.en``, one sentence per line, line i of one the
  translation of line i of the other.

Lines end at ``\\n`` only (``\\r\\n`` is accepted); other separators such as U+2028 stay
inside the line, so line numbers agree with ``wc -l`` and with the files' line alignment.
Bytes that are not UTF-8 stop the reader with the file and line number: guessing an
encoding would silently corrupt sentences, so the user converts the file instead.

A file whose name ends in ``.gz`` is decompressed while it is read (the corpus embedded in
``data/corpora/`` is stored so), with the same line rules; a damaged or truncated archive
is a :class:`~nmt.errors.DataError` naming it. ``NAME.zh.gz`` + ``NAME.en.gz`` is an aligned
prefix like ``NAME.zh`` + ``NAME.en``.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from nmt.errors import DataError


class CorpusNotFoundError(DataError):
    """The corpus files are not where the configuration says."""


class SentencePair(NamedTuple):
    source: str
    target: str
    attribution: str = ""  # the TSV's credit column; empty for aligned text


@dataclass(frozen=True)
class CorpusInput:
    """One corpus file set: a TSV file or an aligned pair of text files."""

    kind: str  # "tsv" | "aligned"
    paths: tuple[Path, ...]  # (tsv,) or (source file, target file)
    src_lang: str
    tgt_lang: str

    def describe(self) -> str:
        return " + ".join(str(path) for path in self.paths)


def resolve_input(name: str, folder: Path, src_lang: str, tgt_lang: str) -> CorpusInput:
    """Find ``name`` as an aligned prefix (``name.<lang>``, or ``name.<lang>.gz``) or a TSV
    file inside ``folder``."""
    base = Path(name) if Path(name).is_absolute() else folder / name
    source = _plain_or_gzip(base.with_name(f"{base.name}.{src_lang}"))
    target = _plain_or_gzip(base.with_name(f"{base.name}.{tgt_lang}"))
    if source.is_file() and target.is_file():
        return CorpusInput("aligned", (source, target), src_lang, tgt_lang)
    if source.is_file() != target.is_file():
        present, missing = (source, target) if source.is_file() else (target, source)
        raise DataError(f"found {present} but not its aligned partner {missing}")
    if base.is_file():
        return CorpusInput("tsv", (base,), src_lang, tgt_lang)
    raise CorpusNotFoundError(
        f"no corpus '{name}' in {folder}: expected {source} and {target} (plain or .gz), "
        f"or a TSV {base}"
    )


def _plain_or_gzip(path: Path) -> Path:
    """``path``, or ``path.gz`` when only the compressed file exists."""
    compressed = path.with_name(path.name + ".gz")
    return compressed if not path.is_file() and compressed.is_file() else path


def is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed on the fly if it is a ``.gz`` file.
    Reading a damaged archive raises what :func:`gzip_error` turns into a DataError."""
    try:
        if not is_gzip(path):
            return open(path, "rb")
        if path.stat().st_size == 0:  # gzip would read it as empty text; it is truncated
            raise gzip_error(path, EOFError("empty file"))
        return gzip.open(path, "rb")  # type: ignore[return-value]
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None


# What gzip raises for a truncated (EOFError) or damaged (BadGzipFile, zlib.error) archive.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def gzip_error(path: Path, error: Exception) -> DataError:
    reason = str(error) or type(error).__name__
    return DataError(
        f"{path}: damaged or truncated gzip file ({reason}); replace it with an intact copy"
    )


def read_pairs(corpus: CorpusInput) -> Iterator[SentencePair]:
    """Stream the sentence pairs of ``corpus`` (raw text, not normalised)."""
    if corpus.kind == "tsv":
        return read_tsv(corpus.paths[0], corpus.src_lang, corpus.tgt_lang)
    return read_aligned(*corpus.paths)


def read_tsv(path: Path, src_lang: str, tgt_lang: str) -> Iterator[SentencePair]:
    """Pairs of a manythings.org TSV; English is always its first column."""
    if "en" not in (src_lang, tgt_lang):
        raise DataError(
            f"{path}: a Tatoeba TSV pairs English with one language, not {src_lang}-{tgt_lang}"
        )
    english_is_source = src_lang == "en"
    for line_number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            yield SentencePair("", "")  # counted by the 'empty' filter, like any empty side
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise DataError(
                f"{path}:{line_number}: expected 'english<TAB>translation[<TAB>attribution]', "
                f"found {len(fields)} tab-separated fields"
            )
        english, other = fields[0], fields[1]
        attribution = fields[2] if len(fields) == 3 else ""
        if english_is_source:
            yield SentencePair(english, other, attribution)
        else:
            yield SentencePair(other, english, attribution)


def read_aligned(source_path: Path, target_path: Path) -> Iterator[SentencePair]:
    """Pairs of two line-aligned files; different line counts are refused before reading."""
    source_count, target_count = count_lines(source_path), count_lines(target_path)
    if source_count != target_count:
        raise DataError(
            f"misaligned corpus: {source_path} has {source_count} lines but "
            f"{target_path} has {target_count}"
        )
    for source, target in zip(_lines(source_path), _lines(target_path), strict=True):
        yield SentencePair(source, target)


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, split at ``\\n`` only (unlike ``str.splitlines``)."""
    return list(_lines(Path(path)))


def count_lines(path: Path) -> int:
    """Number of lines as :func:`read_lines` sees them (a last line may lack its newline)."""
    count, last_byte = 0, b"\n"
    with open_binary(path) as handle:
        try:
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
                last_byte = chunk[-1:]
        except GZIP_ERRORS as error:
            raise gzip_error(path, error) from None
    return count + (last_byte != b"\n")


def _lines(path: Path) -> Iterator[str]:
    """The lines of ``path`` without their ends, decoded strictly as UTF-8, BOM dropped."""
    binary = open_binary(path)
    with io.TextIOWrapper(binary, encoding="utf-8-sig", newline="\n") as handle:
        try:
            for line in handle:
                if line.endswith("\n"):
                    line = line[:-2] if line.endswith("\r\n") else line[:-1]
                yield line
        except UnicodeDecodeError:
            raise _decoding_error(path) from None
        except GZIP_ERRORS as error:
            raise gzip_error(path, error) from None


def _decoding_error(path: Path) -> DataError:
    """Find the first line that is not UTF-8 (decoding above works in chunks, not lines)."""
    found = DataError(f"{path}: not valid UTF-8")
    with open_binary(path) as handle:
        try:
            for line_number, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    found = DataError(
                        f"{path}:{line_number}: not valid UTF-8 (byte 0x{raw[error.start]:02x} "
                        f"at byte {error.start + 1} of the line); convert the file to UTF-8, "
                        f"e.g. with 'iconv -f GB18030 -t UTF-8'"
                    )
                    break
            # A damaged archive decompresses to garbage before its checksum fails at the end:
            # then the archive is the problem, not the text's encoding.
            while is_gzip(path) and handle.read(1 << 20):
                pass
        except GZIP_ERRORS as error:
            return gzip_error(path, error)
    return found
