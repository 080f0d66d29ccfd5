"""Readers for the corpus formats, streaming one sentence pair at a time.

* Aligned plain text: ``NAME.zh`` and ``NAME.en``, one sentence per line, line i of one the
  translation of line i of the other.
* TSV: by default the Tatoeba / manythings.org layout, ``english<TAB>other<TAB>attribution``
  (optional BOM), whose attribution column (CC-BY credit) is kept. With ``columns`` (one
  name per column: a language code, ``attribution``, or ``-`` for a column to ignore) any
  tab-separated layout: ``[zh, en]``, ``[-, en, zh, -]``...
* TMX (``*.tmx``): translation units streamed by :mod:`nmt.data.tmx`.

Every file may be compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``; :mod:`nmt.data.compression`)
and is decompressed while it is read. Lines end at ``\\n`` only (``\\r\\n`` is accepted);
other separators such as U+2028 stay inside the line, so line numbers agree with ``wc -l``
and with the files' line alignment. Each line is decoded strictly as UTF-8: guessing an
encoding would silently corrupt sentences.

A malformed line (not UTF-8, a TSV line with the wrong number of fields, a TMX unit without
both languages) goes to a :class:`MalformedLines` record: with ``data.on_error=stop`` (the
default) the first one is an error naming file and line; with ``skip`` the pair is dropped,
counted per file and its line number kept for the summary. Damaged archives and aligned
files of different lengths are errors under either policy: they are no single bad line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

from nmt.data.compression import (
    DECOMPRESSION_ERRORS,
    content_name,
    damaged,
    open_binary,
    read_all,
    with_compressed_variant,
)
from nmt.errors import DataError


class CorpusNotFoundError(DataError):
    """The corpus files are not where the configuration says."""


class SentencePair(NamedTuple):
    source: str
    target: str
    attribution: str = ""  # the TSV's credit column; empty for aligned text


ATTRIBUTION = "attribution"  # a TSV column name: the pair's credit line
IGNORED = "-"  # a TSV column name: a column that is read past


@dataclass(frozen=True)
class CorpusInput:
    """One corpus file set: a TSV or TMX file, or an aligned pair of text files."""

    kind: str  # "tsv" | "aligned" | "tmx"
    paths: tuple[Path, ...]  # (file,) or (source file, target file)
    src_lang: str
    tgt_lang: str
    columns: tuple[str, ...] | None = None  # TSV: what each column holds; None: Tatoeba's

    def describe(self) -> str:
        return " + ".join(str(path) for path in self.paths)

    @property
    def has_attribution(self) -> bool:
        return self.kind == "tsv" and (self.columns is None or ATTRIBUTION in self.columns)


@dataclass
class MalformedLines:
    """The ``data.on_error`` policy and what it met: ``stop`` raises at the first malformed
    line; ``skip`` counts them per file and keeps the first line numbers of each."""

    policy: str = "stop"  # "stop" | "skip"
    kept_per_file: int = 10  # line numbers remembered per file (the summary shows them)
    counts: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)
    log: TextIO | None = None  # every skipped line as path<TAB>line<TAB>reason, if given

    def report(self, path: Path, line: int, reason: str) -> None:
        if self.policy != "skip":
            raise DataError(f"{path}:{line}: {reason} (data.on_error=skip drops such lines)")
        name = str(path)
        self.counts[name] = self.counts.get(name, 0) + 1
        numbers = self.lines.setdefault(name, [])
        if len(numbers) < self.kept_per_file:
            numbers.append(line)
        if self.log is not None:
            self.log.write(f"{name}\t{line}\t{reason}\n")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


STOP = MalformedLines()  # the default: every reader stops at the first malformed line


def resolve_input(
    name: str, folder: Path, src_lang: str, tgt_lang: str, columns: list[str] | None = None
) -> CorpusInput:
    """Find ``name`` inside ``folder`` (or absolute): an aligned prefix (``name.<lang>``,
    plain or compressed), a TMX file (``*.tmx``, plain or compressed) or a TSV file."""
    base = Path(name) if Path(name).is_absolute() else folder / name
    source = with_compressed_variant(base.with_name(f"{base.name}.{src_lang}"))
    target = with_compressed_variant(base.with_name(f"{base.name}.{tgt_lang}"))
    if source.is_file() and target.is_file():
        return CorpusInput("aligned", (source, target), src_lang, tgt_lang)
    if source.is_file() != target.is_file():
        present, missing = (source, target) if source.is_file() else (target, source)
        raise DataError(f"found {present} but not its aligned partner {missing}")
    if base.is_file():
        kind = "tmx" if content_name(base).lower().endswith(".tmx") else "tsv"
        if kind == "tsv" and columns is not None:
            check_columns(columns, src_lang, tgt_lang, str(base))
        return CorpusInput(kind, (base,), src_lang, tgt_lang, tuple(columns) if columns else None)
    raise CorpusNotFoundError(
        f"no corpus '{name}' in {folder}: expected {source.name} and {target.name} (plain, "
        f".gz, .bz2, .xz or .zst), or a TSV or TMX file {base}"
    )


def check_columns(columns: list[str], src_lang: str, tgt_lang: str, where: str) -> None:
    """TSV column names must name each language exactly once."""
    for lang in (src_lang, tgt_lang):
        if columns.count(lang) != 1:
            raise DataError(
                f"{where}: columns {columns} must name '{lang}' exactly once (one name per "
                f"column: a language, '{ATTRIBUTION}', or '{IGNORED}' for a column to ignore)"
            )


def read_pairs(corpus: CorpusInput, errors: MalformedLines = STOP) -> Iterator[SentencePair]:
    """Stream the sentence pairs of ``corpus`` (raw text, not normalised)."""
    if corpus.kind == "tsv":
        return read_tsv(corpus.paths[0], corpus.src_lang, corpus.tgt_lang, corpus.columns, errors)
    if corpus.kind == "tmx":
        from nmt.data.tmx import read_tmx

        return read_tmx(corpus.paths[0], corpus.src_lang, corpus.tgt_lang, errors)
    return read_aligned(*corpus.paths, errors=errors)


def read_tsv(
    path: Path,
    src_lang: str,
    tgt_lang: str,
    columns: tuple[str, ...] | None = None,
    errors: MalformedLines = STOP,
) -> Iterator[SentencePair]:
    """Pairs of a TSV file: Tatoeba's layout (English first) unless ``columns`` says."""
    if columns is None:
        if "en" not in (src_lang, tgt_lang):
            raise DataError(
                f"{path}: a Tatoeba TSV pairs English with one language, not "
                f"{src_lang}-{tgt_lang}; give the corpus's columns for another layout"
            )
        other = tgt_lang if src_lang == "en" else src_lang
        layouts = {2: ("en", other), 3: ("en", other, ATTRIBUTION)}
        expected = "'english<TAB>translation[<TAB>attribution]'"
    else:
        layouts = {len(columns): columns}
        expected = f"{len(columns)} tab-separated fields ({', '.join(columns)})"
    positions = {
        count: (
            layout.index(src_lang),
            layout.index(tgt_lang),
            layout.index(ATTRIBUTION) if ATTRIBUTION in layout else None,
        )
        for count, layout in layouts.items()
    }
    for line_number, line in enumerate(_lines(path, errors), start=1):
        if line is None:
            continue
        if not line.strip():
            yield SentencePair("", "")  # counted by the 'empty' filter, like any empty side
            continue
        fields = line.split("\t")
        if len(fields) not in positions:
            errors.report(
                path, line_number, f"expected {expected}, found {len(fields)} tab-separated fields"
            )
            continue
        source, target, attribution = positions[len(fields)]
        yield SentencePair(
            fields[source], fields[target], "" if attribution is None else fields[attribution]
        )


def read_aligned(
    source_path: Path, target_path: Path, errors: MalformedLines = STOP
) -> Iterator[SentencePair]:
    """Pairs of two line-aligned files; different line counts are refused before reading."""
    source_count, target_count = count_lines(source_path), count_lines(target_path)
    if source_count != target_count:
        raise DataError(
            f"misaligned corpus: {source_path} has {source_count} lines but "
            f"{target_path} has {target_count}"
        )
    for source, target in zip(
        _lines(source_path, errors), _lines(target_path, errors), strict=True
    ):
        if source is not None and target is not None:
            yield SentencePair(source, target)


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, split at ``\\n`` only (unlike ``str.splitlines``)."""
    return list(_lines(Path(path), STOP))  # type: ignore[arg-type]  # STOP never yields None


def count_lines(path: Path) -> int:
    """Number of lines as :func:`read_lines` sees them (a last line may lack its newline)."""
    count, last_byte = 0, b"\n"

    def consume(chunk: bytes) -> None:
        nonlocal count, last_byte
        count += chunk.count(b"\n")
        last_byte = chunk[-1:]

    read_all(path, consume)
    return count + (last_byte != b"\n")


def _lines(path: Path, errors: MalformedLines) -> Iterator[str | None]:
    """The lines of ``path`` without their ends, BOM dropped; None for a line that is not
    UTF-8 and was skipped by ``errors`` (so the numbering of the next lines holds)."""
    with open_binary(path) as handle:
        try:
            for line_number, raw in enumerate(handle, start=1):
                if raw.endswith(b"\n"):
                    raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    if errors.policy != "skip":
                        _drain(handle, path)  # a damaged archive is the real problem
                    errors.report(path, line_number, _not_utf8(raw, error))
                    yield None
                    continue
                if line_number == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield line
        except DECOMPRESSION_ERRORS as error:
            raise damaged(path, error) from None


def _drain(handle, path: Path) -> None:
    """Read to the end: a damaged archive decompresses to garbage before its checksum fails
    at the end, and then the archive is the problem, not the text's encoding."""
    try:
        while handle.read(1 << 20):
            pass
    except DECOMPRESSION_ERRORS as error:
        raise damaged(path, error) from None


def _not_utf8(raw: bytes, error: UnicodeDecodeError) -> str:
    return (
        f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the "
        f"line); convert the file to UTF-8, e.g. with 'iconv -f GB18030 -t UTF-8'"
    )
