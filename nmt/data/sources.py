"""Where a corpus comes from: a mirror folder, else the corpus's public download address.

1. The mirror: ``$DATA_MIRROR/<corpus>/`` (``DATA_MIRROR`` defaults to ``../shared/data``
   beside the repository when that exists), or ``data.corpus`` given as an absolute folder.
   ``data.train``/``dev``/``test`` name files inside it.
2. Otherwise, for a corpus listed in :data:`KNOWN_CORPORA`, the public archive is downloaded
   into ``<output_dir>/download/``. It holds only the TSV, so dev and test are split off it
   by seed.

Files of a known corpus are checked against pinned sha256 sums (``data.verify_checksums``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nmt.data.readers import CorpusInput, CorpusNotFoundError, resolve_input
from nmt.errors import DataError

MIRROR_ENV = "DATA_MIRROR"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class KnownCorpus:
    url: str  # a zip archive
    archive_member: str  # the TSV inside the archive
    tsv_name: str  # the TSV's name in the mirror (and after download)
    sha256: dict[str, str]  # file name -> pinned sha256 of the version the project uses
    credit: str


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
        credit="Tatoeba (tatoeba.org) via manythings.org, CC-BY 2.0 FR; "
        "per-sentence credit in the TSV's attribution column",
    ),
}


@dataclass
class CorpusFiles:
    """The inputs of one preparation run."""

    train: CorpusInput
    held_out: dict[str, CorpusInput | None]  # "dev"/"test" -> given files, or None: split off
    origin: str  # where the files were found, for the summary
    credit: str = ""
    checksums: dict[str, str] | None = None  # path -> sha256, reused for the cache fingerprint


def find_mirror() -> Path | None:
    """``$DATA_MIRROR`` if set, else ``../shared/data`` beside the repository if present."""
    configured = os.environ.get(MIRROR_ENV, "").strip()
    if configured:
        return Path(configured)
    default = REPO_ROOT.parent / "shared" / "data"
    return default if default.is_dir() else None


def locate_corpus(
    corpus: str,
    src_lang: str,
    tgt_lang: str,
    train: str,
    held_out: dict[str, str | None],
    download_dir: Path,
    allow_download: bool = True,
    verify_checksums: bool = True,
) -> CorpusFiles:
    """Find (or fetch) the files of ``corpus``; errors say exactly what to put where."""
    known = KNOWN_CORPORA.get(corpus)
    mirror = find_mirror()
    folder = Path(corpus) if Path(corpus).is_absolute() else (mirror / corpus if mirror else None)

    if folder is not None and folder.is_dir():
        files = CorpusFiles(
            train=resolve_input(train, folder, src_lang, tgt_lang),
            held_out={
                split: None if name is None else resolve_input(name, folder, src_lang, tgt_lang)
                for split, name in held_out.items()
            },
            origin=f"folder {folder}",
            credit=known.credit if known else "",
        )
    elif known is not None and allow_download:
        try:
            tsv = _download(known, download_dir)
        except DataError as error:
            raise CorpusNotFoundError(
                _not_found_message(corpus, mirror, known, download_dir, str(error))
            ) from None
        files = CorpusFiles(
            train=CorpusInput("tsv", (tsv,), src_lang, tgt_lang),
            held_out={split: None for split in held_out},
            origin=f"download {known.url}",
            credit=known.credit,
        )
    else:
        reason = "downloading is off (data.download=false)" if known else "no download address"
        raise CorpusNotFoundError(_not_found_message(corpus, mirror, known, download_dir, reason))

    files.checksums = _checksums(files, known if verify_checksums else None)
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _checksums(files: CorpusFiles, known: KnownCorpus | None) -> dict[str, str]:
    """sha256 of every input file; for a known corpus, pinned sums must match."""
    inputs = [files.train, *(given for given in files.held_out.values() if given)]
    sums = {}
    for path in (path for corpus_input in inputs for path in corpus_input.paths):
        sums[str(path)] = actual = file_sha256(path)
        expected = known.sha256.get(path.name) if known else None
        if expected is not None and actual != expected:
            raise DataError(
                f"checksum mismatch for {path}: sha256 {actual}, expected {expected} (the "
                f"version the project's results use). The file is damaged or a different "
                f"release; replace it, or accept it with data.verify_checksums=false"
            )
    return sums


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
    corpus: str, mirror: Path | None, known: KnownCorpus | None, download_dir: Path, reason: str
) -> str:
    if Path(corpus).is_absolute():
        looked, target = f"{corpus} does not exist", f"{corpus}/"
    elif mirror is not None:
        looked, target = f"{mirror / corpus} does not exist", f"{mirror / corpus}/"
    else:
        looked = f"no mirror (${MIRROR_ENV} unset, no ../shared/data beside the repository)"
        target = f"<DIR>/{corpus}/ and set {MIRROR_ENV}=<DIR>"
    message = f"corpus '{corpus}' not found: {looked}; {reason}."
    if known is None:
        return f"{message} Put its files into {target}."
    aligned = ", ".join(name for name in known.sha256 if name != known.tsv_name)
    return (
        f"{message} Either put {aligned} (or only {known.tsv_name}, with data.train="
        f"{known.tsv_name} data.dev=null data.test=null) into {target}; or download "
        f"{known.url} yourself and unzip its {known.archive_member} to "
        f"{download_dir / known.tsv_name}."
    )
