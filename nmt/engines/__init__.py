"""Inference engines: the same :class:`~nmt.translator.Translator` interface over torch (our
own search) or CTranslate2 (an ``nmt export`` directory), so that ``nmt translate``,
``nmt evaluate`` and ``nmt serve`` decode with either (``--engine``).

``load_translator(path, engine, device)`` picks the engine: ``auto`` takes CTranslate2 for
an export directory and torch for a checkpoint file; ``ctranslate2`` given a checkpoint
converts it (float32) into a temporary directory first.
"""

from __future__ import annotations

from pathlib import Path

from nmt.errors import NmtError
from nmt.translator import Translator

ENGINES = ("auto", "torch", "ctranslate2")


def load_translator(path: str | Path, engine: str = "auto", device: str = "cpu") -> Translator:
    """The translator of a checkpoint file or an export directory, on ``engine``."""
    path = Path(path)
    exported = path.is_dir()
    if engine == "auto":
        engine = "ctranslate2" if exported else "torch"
    if engine == "torch":
        if exported:
            raise NmtError(
                f"{path} is a directory (a CTranslate2 export?): the torch engine takes the "
                "checkpoint file it was made from; use --engine ctranslate2 for the directory"
            )
        return Translator.from_checkpoint(path, device)
    if engine != "ctranslate2":
        raise NmtError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    from nmt.engines.ctranslate2_translator import CTranslate2Translator

    if exported:
        return CTranslate2Translator.from_directory(path, device)
    return CTranslate2Translator.from_checkpoint(path, device)
