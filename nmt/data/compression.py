"""Compressed corpus files, decompressed while they are read (never unpacked to disk).

The suffix says the format: ``.gz`` (gzip), ``.bz2`` (bzip2), ``.xz`` (xz/lzma) and ``.zst``
(Zstandard; the ``zstandard`` package, ``pip install -e '.[corpora]'``, or Python 3.14's
``compression.zstd``). A damaged or truncated archive is one :class:`DataError` naming the
file: every format here raises ``EOFError`` for a stream that ends early, the zstd reader
included (the ``zstandard`` package's own stream reader would stop silently, so the frames
are decoded here with its ``decompressobj``).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO

from nmt.errors import DataError

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_FORMAT_NAMES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}
_CHUNK = 1 << 20


class _ZstdError(Exception):
    """A zstd frame that does not decode (the library's own error type is imported lazily)."""


# What reading a damaged (or truncated: EOFError) archive raises, in any supported format.
DECOMPRESSION_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError, lzma.LZMAError, _ZstdError)


def is_compressed(path: Path) -> bool:
    return path.suffix in COMPRESSED_SUFFIXES


def content_name(path: Path) -> str:
    """The name of a file's content: ``train.zh`` for ``train.zh`` and ``train.zh.xz``."""
    return path.stem if is_compressed(path) else path.name


def with_compressed_variant(path: Path) -> Path:
    """``path`` if it exists, else its first existing compressed form (``path.gz``, ...)."""
    if path.is_file():
        return path
    for suffix in COMPRESSED_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed on the fly by its suffix. Reading a
    damaged archive raises one of :data:`DECOMPRESSION_ERRORS` (see :func:`damaged`)."""
    suffix = path.suffix if is_compressed(path) else ""
    try:
        if suffix and path.stat().st_size == 0:  # an empty archive is a truncated one
            raise damaged(path, EOFError("empty file"))
        handle = open(path, "rb")
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    if suffix == ".gz":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    if suffix == ".bz2":
        return bz2.BZ2File(handle)  # type: ignore[return-value]
    if suffix == ".xz":
        return lzma.LZMAFile(handle)  # type: ignore[return-value]
    if suffix == ".zst":
        return io.BufferedReader(_ZstdReader(handle, path), _CHUNK)  # type: ignore[return-value]
    return handle


def damaged(path: Path, error: BaseException) -> DataError:
    reason = str(error) or type(error).__name__
    kind = _FORMAT_NAMES.get(path.suffix, "compressed")
    return DataError(
        f"{path}: damaged or truncated {kind} file ({reason}); replace it with an intact copy"
    )


def read_all(path: Path, consume) -> None:
    """Feed every decompressed chunk of ``path`` to ``consume`` (hashing, counting)."""
    with open_binary(path) as handle:
        try:
            while chunk := handle.read(_CHUNK):
                consume(chunk)
        except DECOMPRESSION_ERRORS as error:
            raise damaged(path, error) from None


class _ZstdReader(io.RawIOBase):
    """Decompressed bytes of a (multi-frame) zstd file; EOFError when it ends mid-frame."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self._handle = handle
        self._module = _zstd_module(path)
        self._decoder = self._module.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._in_frame = False  # bytes of an unfinished frame have been fed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            compressed = self._handle.read(_CHUNK)
            if not compressed:
                if self._in_frame:
                    raise EOFError("compressed file ended before the end of a zstd frame")
                return 0
            self._pending = self._decode(compressed)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _decode(self, compressed: bytes) -> bytes:
        output = []
        while compressed:
            try:
                output.append(self._decoder.decompress(compressed))
            except self._module.ZstdError as error:
                raise _ZstdError(str(error)) from None
            self._in_frame = not self._decoder.eof
            if not self._decoder.eof:
                break
            compressed = self._decoder.unused_data  # the next frame starts here
            self._decoder = self._module.ZstdDecompressor().decompressobj()
            self._in_frame = bool(compressed)
        return b"".join(output)

    def close(self) -> None:
        self._handle.close()
        super().close()


def _zstd_module(path: Path):
    try:
        import zstandard
    except ImportError:
        raise DataError(
            f"{path}: reading .zst files needs the zstandard package: "
            f"pip install -e '.[corpora]' (or pip install zstandard)"
        ) from None
    return zstandard
