"""The prepared-data cache: reused while its inputs and settings are unchanged.

A build ends by writing ``manifest.json`` with a fingerprint: the sha256 of the input files'
contents, the data settings and the versions of the code and libraries that shape the
output. The next run computes the fingerprint again and reuses the folder when it matches
and every file is there. A build deletes the manifest first, so an interrupted build is never
taken for a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# Bump when a change to the pipeline changes its output for the same inputs and settings.
# 2: several corpora, script filter, sharded memory-mapped ids (<split>.ids/ for <split>.pt).
PIPELINE_VERSION = 2


def fingerprint(settings: dict[str, Any], input_checksums: dict[str, str]) -> str:
    """A hex digest of everything the prepared data depends on."""
    payload = {
        "pipeline": PIPELINE_VERSION,
        "libraries": {
            name: _version(name) for name in ("sentencepiece", "opencc-python-reimplemented")
        },
        "settings": settings,
        # By file name, not folder: the same files in another mirror give the same data.
        "inputs": sorted((Path(path).name, digest) for path, digest in input_checksums.items()),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def read_manifest(output_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete build in ``output_dir``, or None."""
    path = output_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("pipeline") != PIPELINE_VERSION:
        return None  # an older layout is rebuilt, never read
    files = manifest.get("files", [])
    if not files or not all((output_dir / name).is_file() for name in files):
        return None
    return manifest


def is_current(output_dir: Path, expected_fingerprint: str) -> bool:
    manifest = read_manifest(output_dir)
    return manifest is not None and manifest.get("fingerprint") == expected_fingerprint


def invalidate(output_dir: Path) -> None:
    (output_dir / MANIFEST).unlink(missing_ok=True)


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> None:
    temporary = output_dir / (MANIFEST + ".tmp")
    manifest = {"pipeline": PIPELINE_VERSION, **manifest}
    temporary.write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    os.replace(temporary, output_dir / MANIFEST)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
