"""Where a corpus comes from: a mirror folder, the copy embedded in the repository, or (only
when asked) the corpus's public download address. ``data.source`` chooses:

* ``auto`` (the default): ``data.corpus`` given as an absolute folder is used as it is.
  Otherwise the mirror ``$DATA_MIRROR/<corpus>/`` when ``DATA_MIRROR`` is set and holds the
  corpus, else the copy embedded in the repository, ``data/corpora/<corpus>/``: for
  ``tatoeba-zh-en`` the canonical split, gzip-compressed, so a fresh clone works offline.
* ``mirror`` or ``embedded``: only that place.
* ``download``: for a corpus listed in :data:`KNOWN_CORPORA`, the latest upstream release is
  downloaded into ``<prepared dir>/download/``. It holds only the TSV, so dev and test are
  split off it by seed: not the canonical split, which is why it is prepared into a folder
  of its own (:attr:`nmt.config.DataConfig.prepared_dir`).

``data.train``/``dev``/``test`` name files inside the folder found. Files of a known corpus
are checked against pinned sha256 sums of their content, decompressed for compressed files, so
the embedded copy and the mirror's plain files share the pins (``data.verify_checksums``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nmt.config import CorpusConfig
from nmt.data.compression import content_name, is_compressed, read_all
from nmt.data.readers import (
    CorpusInput,
    CorpusNotFoundError,
    read_aligned,
    read_tsv,
    resolve_input,
)
from nmt.data.standard import is_standard, resolve_standard
from nmt.errors import DataError

MIRROR_ENV = "DATA_MIRROR"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Corpora that travel with the repository (data/README.md); the prepared output goes
# elsewhere (data.output_dir), so these folders only ever hold the inputs.
EMBEDDED_DIR = REPO_ROOT / "data" / "corpora"
EMBEDDED_CREDITS = "credits.tsv.gz"  # per-pair attribution of an embedded copy
INPUT_SUMS = "inputs.sha256.json"  # in the prepared folder: content sums of the inputs seen


@dataclass(frozen=True)
class KnownCorpus:
    url: str  # a zip archive
    archive_member: str  # the TSV inside the archive
    tsv_name: str  # the TSV's name in the mirror (and after download)
    sha256: dict[str, str]  # file name -> pinned sha256 of the version the project uses
    licence: str  # who made it and under which licence


KNOWN_CORPORA = {
    "tatoeba-zh-en": KnownCorpus(
        url="https://www.manythings.org/anki/cmn-eng.zip",
        archive_member="cmn.txt",
        tsv_name="cmn-eng.txt",
        sha256={
            "cmn-eng.txt": "aa264a2447b26ab7c9d413f8321f9e2a779fd134b5118306b6e26a3499b3926e",
            "train.zh": "e92cd52cefac9651740089b4e837246d60845ee7cd2517196f93c69dfe7aeda1",
            "train.en": "65971f854a0e8b7a34848133e3423f89be6b317896fcc322a4813a84d84ba2b5",
            "dev.zh": "90aeab631c100358b010b8d3bd3ee16dc4c57337412eef70a41d3bf73ebed368",
            "dev.en": "007da1320b597348f9944592aa7aea6981cf868ef185d0888fa27e4fa5d633a7",
            "test.zh": "5e1258e11baf551e2b0d97c53090d73fbf8ea6518a2b26dc6ba822bcd33a413d",
            "test.en": "7ac01e26ff84a94260da9871dc04a8f9e48663f07a891f12bc9e30a9940f60fb",
        },
        licence="Tatoeba (tatoeba.org) via manythings.org, CC-BY 2.0 FR",
    ),
}


@dataclass
class CorpusFiles:
    """The inputs of one preparation run."""

    train: list[tuple[str, CorpusInput]]  # (name in data.train, its files), in order
    held_out: dict[str, CorpusInput | None]  # "dev"/"test" -> given files, or None: split off
    origin: str  # where the files were found, for the summary
    credit: str = ""
    # Content path (``.gz`` dropped) -> sha256 of the content, for the cache fingerprint:
    # a compressed copy of a file fingerprints like the file.
    checksums: dict[str, str] | None = None


def find_mirror() -> Path | None:
    """``$DATA_MIRROR`` when set (and not empty), else None: without it, the embedded copy."""
    configured = os.environ.get(MIRROR_ENV, "").strip()
    return Path(configured) if configured else None


def locate_corpus(
    corpus: str,
    src_lang: str,
    tgt_lang: str,
    train: list[CorpusConfig],
    held_out: dict[str, str | None],
    download_dir: Path,
    source: str = "auto",
    verify_checksums: bool = True,
) -> CorpusFiles:
    """Find (or, with ``source='download'``, fetch) the files of ``corpus``; when they are
    nowhere, the error says exactly what to put where. Names of standard corpora
    (``mtdata:``, ``sacrebleu:``) are found by :mod:`nmt.data.standard`; the corpus folder
    is looked up only when some name is a file in it."""
    known = KNOWN_CORPORA.get(corpus)
    if source == "download":
        files = _download_files(corpus, known, src_lang, tgt_lang, held_out, download_dir)
    else:
        found: list[tuple[Path, str]] = []  # the folder, once looked up

        def resolve(name: str, columns: list[str] | None = None) -> CorpusInput:
            if is_standard(name):
                return resolve_standard(name, src_lang, tgt_lang, find_mirror(), download_dir)
            if not found:
                found.append(_find_folder(corpus, source, known, verify_checksums, download_dir))
            return resolve_input(name, found[0][0], src_lang, tgt_lang, columns)

        train_inputs = [(entry.path, resolve(entry.path, entry.columns)) for entry in train]
        given = {split: None if name is None else resolve(name) for split, name in held_out.items()}
        folder, origin = found[0] if found else (None, "standard corpora by name")
        files = CorpusFiles(
            train=train_inputs,
            held_out=given,
            origin=origin,
            credit=_credit(known, train_inputs[0][1], folder) if folder else "",
        )
    memo = download_dir.parent / INPUT_SUMS
    files.checksums = _checksums(files, known if verify_checksums else None, memo)
    return files


def _find_folder(
    corpus: str, source: str, known: KnownCorpus | None, verified: bool, download_dir: Path
) -> tuple[Path, str]:
    """(folder, origin for the summary) of a corpus found in a folder, by ``source``."""
    if Path(corpus).is_absolute():
        folder = Path(corpus)
        if source == "embedded":
            raise CorpusNotFoundError(
                f"data.source=embedded names a corpus in {_shown(EMBEDDED_DIR)}/, but "
                f"data.corpus is a folder ({corpus}); use data.source=auto for a folder"
            )
        if folder.is_dir():
            return folder, f"folder {folder}"
        raise CorpusNotFoundError(
            f"corpus folder {folder} does not exist; put the corpus's files there "
            f"(data.train, data.dev, data.test name them)"
        )
    mirror = find_mirror()
    if source in ("auto", "mirror") and mirror is not None and (mirror / corpus).is_dir():
        return mirror / corpus, f"mirror {mirror / corpus} (${MIRROR_ENV})"
    embedded = EMBEDDED_DIR / corpus
    if source in ("auto", "embedded") and embedded.is_dir():
        what = "embedded canonical split" if known and verified else "embedded copy"
        origin = f"{what} ({_shown(embedded)})"
        if mirror is not None:  # a mirror that lacks the corpus is worth a word
            origin += f"; {mirror / corpus} does not exist"
        return embedded, origin
    raise CorpusNotFoundError(_not_found_message(corpus, source, mirror, known, download_dir))


def _download_files(
    corpus: str,
    known: KnownCorpus | None,
    src_lang: str,
    tgt_lang: str,
    held_out: dict[str, str | None],
    download_dir: Path,
) -> CorpusFiles:
    if known is None:
        raise CorpusNotFoundError(
            f"data.source=download: no download address for corpus '{corpus}' (known: "
            f"{', '.join(KNOWN_CORPORA)}); put its files into a folder and name it in "
            f"data.corpus, or into $DATA_MIRROR/{corpus}/"
        )
    try:
        tsv = _download(known, download_dir)
    except DataError as error:
        raise CorpusNotFoundError(
            f"corpus '{corpus}': {error}. Download {known.url} yourself and unzip its "
            f"{known.archive_member} to {download_dir / known.tsv_name}; or use the canonical "
            f"split with data.source=auto (the embedded copy, no download needed)"
        ) from None
    return CorpusFiles(
        train=[(known.tsv_name, CorpusInput("tsv", (tsv,), src_lang, tgt_lang))],
        held_out={split: None for split in held_out},
        origin=f"download of the latest upstream release, {known.url} (not the canonical "
        f"split: dev and test split off by seed)",
        credit=f"{known.licence}; per-sentence credit in the TSV's attribution column",
    )


def _credit(known: KnownCorpus | None, train: CorpusInput, folder: Path) -> str:
    """The licence and where each sentence's credit is, for the summary."""
    if known is None:
        return ""
    if train.kind == "tsv":
        return f"{known.licence}; per-sentence credit in the TSV's attribution column"
    credits = folder / EMBEDDED_CREDITS
    if credits.is_file():
        return f"{known.licence}; per-sentence credit in {_shown(credits)}"
    return f"{known.licence}; per-sentence credit in {known.tsv_name}'s attribution column"


def content_sha256(path: Path) -> str:
    """sha256 of a file's content: of the decompressed bytes for a compressed file."""
    digest = hashlib.sha256()
    read_all(path, digest.update)
    return digest.hexdigest()


def _checksums(files: CorpusFiles, known: KnownCorpus | None, memo_path: Path) -> dict[str, str]:
    """sha256 of every input file's content; for a known corpus, pinned sums must match.
    Hashing streams (the canonical split takes about 10 ms; a 20M-pair corpus a minute), so
    sums are remembered in ``memo_path`` by (path, size, modification time)."""
    inputs = [corpus for _, corpus in files.train]
    inputs += [given for given in files.held_out.values() if given]
    memo = _read_memo(memo_path)
    sums = {}
    for path in (path for corpus_input in inputs for path in corpus_input.paths):
        stat = path.stat()
        key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
        if memo.get(key, [None])[:2] != stamp:
            memo[key] = [*stamp, content_sha256(path)]
        sums[str(path.with_name(content_name(path)))] = actual = memo[key][2]
        expected = known.sha256.get(content_name(path)) if known else None
        if expected is not None and actual != expected:
            what = "its decompressed content has" if is_compressed(path) else "sha256"
            raise DataError(
                f"checksum mismatch for {path}: {what} sha256 {actual}, expected {expected} "
                f"(the version the project's results use). The file is damaged or a different "
                f"release; replace it, or accept it with data.verify_checksums=false"
            )
    if memo_path.parent.is_dir():
        memo_path.write_text(json.dumps(memo, indent=0) + "\n", encoding="utf-8")
    return sums


def _read_memo(path: Path) -> dict[str, list]:
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _download(known: KnownCorpus, download_dir: Path) -> Path:
    """The corpus TSV, downloaded and unpacked into ``download_dir`` unless already there."""
    tsv = download_dir / known.tsv_name
    if tsv.is_file():
        return tsv
    download_dir.mkdir(parents=True, exist_ok=True)
    archive = download_dir / Path(known.url).name
    partial = archive.with_name(archive.name + ".part")
    # manythings.org refuses clients without a browser-like User-Agent.
    request = urllib.request.Request(known.url, headers={"User-Agent": "Mozilla/5.0 (nmt)"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(partial, archive)
        with zipfile.ZipFile(archive) as zipped, zipped.open(known.archive_member) as member:
            with open(partial, "wb") as out:
                shutil.copyfileobj(member, out)
        os.replace(partial, tsv)
    except (urllib.error.URLError, OSError, zipfile.BadZipFile, KeyError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"download of {known.url} failed: {error}") from None
    return tsv


def _not_found_message(
    corpus: str,
    source: str,
    mirror: Path | None,
    known: KnownCorpus | None,
    download_dir: Path,
) -> str:
    looked = []
    if source in ("auto", "mirror"):
        looked.append(
            f"{mirror / corpus} does not exist" if mirror else f"${MIRROR_ENV} is not set"
        )
    if source in ("auto", "embedded"):
        looked.append(f"no embedded copy {_shown(EMBEDDED_DIR / corpus)}/")
    target = f"{mirror / corpus}/" if mirror else f"<DIR>/{corpus}/ and set {MIRROR_ENV}=<DIR>"
    message = f"corpus '{corpus}' not found (data.source={source}): {'; '.join(looked)}."
    if known is None:
        return f"{message} Put its files into {target}, or give data.corpus as an absolute folder."
    aligned = ", ".join(name for name in known.sha256 if name != known.tsv_name)
    return (
        f"{message} Either put {aligned} (or only {known.tsv_name}, with data.train="
        f"{known.tsv_name} data.dev=null data.test=null) into {target}; or restore the "
        f"embedded copy (git checkout -- {_shown(EMBEDDED_DIR / corpus)}); or fetch the "
        f"latest upstream release, not the canonical split, with data.source=download "
        f"(or download {known.url} yourself and unzip its {known.archive_member} to "
        f"{download_dir / known.tsv_name})."
    )


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (as the docs name it)."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def embedded_credits(folder: str | Path, corpus: str = "tatoeba-zh-en") -> Iterator[str]:
    """Lines ``split<TAB>attribution`` for every pair of the folder's train, dev and test
    splits, in order, from the TSV's attribution column (``make embed-corpus`` writes them
    to data/corpora/<corpus>/credits.tsv.gz). A pair the TSV lists more than once with
    different credits gets them all, joined by `` | ``."""
    folder, known = Path(folder), KNOWN_CORPORA[corpus]
    credits: dict[tuple[str, str], list[str]] = {}
    for pair in read_tsv(folder / known.tsv_name, "zh", "en"):
        found = credits.setdefault((pair.source, pair.target), [])
        if pair.attribution and pair.attribution not in found:
            found.append(pair.attribution)
    for split in ("train", "dev", "test"):
        source, target = folder / f"{split}.zh", folder / f"{split}.en"
        for line, pair in enumerate(read_aligned(source, target), start=1):
            if (pair.source, pair.target) not in credits:
                raise DataError(f"{source}:{line}: pair not found in {known.tsv_name}")
            yield f"{split}\t{' | '.join(credits[pair.source, pair.target])}\n"
