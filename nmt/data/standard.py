"""Standard corpora by name: WMT training corpora through mtdata, test sets through sacrebleu.

Wherever a corpus file name goes (``data.train`` entries, ``data.dev``, ``data.test``):

* ``mtdata:DATASET_ID`` (``mtdata list -l eng-zho`` lists them), e.g.
  ``mtdata:Statmt-news_commentary-16-eng-zho`` or ``mtdata:OPUS-unpc-v1.0-eng-zho``;
* ``sacrebleu:TESTSET``, e.g. ``sacrebleu:wmt20``, in the direction of the data section
  (``zh-en``: Chinese sources, English references).

Each is looked up, in order, in

1. the mirror, ``$DATA_MIRROR/mtdata/DATASET_ID.<lang>`` (for both languages, plain or
   compressed) and ``$DATA_MIRROR/sacrebleu/TESTSET/TESTSET.<src>-<tgt>.{src,ref}`` (the
   layout of sacrebleu's own cache: a copy of ``~/.sacrebleu`` is a mirror);
2. what an earlier run fetched: ``<prepared dir>/download/mtdata/``, and sacrebleu's cache
   (``$SACREBLEU``, else ``~/.sacrebleu``);
3. the network: ``mtdata get`` (``pip install -e '.[corpora]'``) or sacrebleu's download.

When all three fail the error names the files to download and where to put them.
``NMT_OFFLINE=1`` skips step 3 (the test suite sets it: it never touches the network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nmt.data.compression import COMPRESSED_SUFFIXES, with_compressed_variant
from nmt.data.readers import CorpusInput, CorpusNotFoundError
from nmt.data.tmx import language_of

MTDATA, SACREBLEU = "mtdata:", "sacrebleu:"
OFFLINE_ENV = "NMT_OFFLINE"


def is_standard(name: str) -> bool:
    return name.startswith((MTDATA, SACREBLEU))


def resolve_standard(
    name: str, src_lang: str, tgt_lang: str, mirror: Path | None, download_dir: Path
) -> CorpusInput:
    """The aligned files of ``mtdata:ID`` or ``sacrebleu:TESTSET``, found or fetched."""
    if name.startswith(MTDATA):
        return _mtdata(name[len(MTDATA) :], src_lang, tgt_lang, mirror, download_dir)
    return _sacrebleu(name[len(SACREBLEU) :], src_lang, tgt_lang, mirror)


def _aligned(prefix: Path, src_lang: str, tgt_lang: str) -> CorpusInput | None:
    paths = tuple(
        with_compressed_variant(prefix.with_name(f"{prefix.name}.{lang}"))
        for lang in (src_lang, tgt_lang)
    )
    if all(path.is_file() for path in paths):
        return CorpusInput("aligned", paths, src_lang, tgt_lang)
    return None


def _mtdata(
    dataset: str, src_lang: str, tgt_lang: str, mirror: Path | None, download_dir: Path
) -> CorpusInput:
    folders = ([mirror / "mtdata"] if mirror else []) + [download_dir / "mtdata"]
    for folder in folders:
        if found := _aligned(folder / dataset, src_lang, tgt_lang):
            return found
    problem = _fetch_mtdata(dataset, src_lang, tgt_lang, download_dir / "mtdata")
    if problem is None and (
        found := _aligned(download_dir / "mtdata" / dataset, src_lang, tgt_lang)
    ):
        return found
    where = f"{mirror / 'mtdata'}/" if mirror else "$DATA_MIRROR/mtdata/ (set DATA_MIRROR)"
    raise CorpusNotFoundError(
        f"corpus 'mtdata:{dataset}' not found: {problem}. On a machine with internet run "
        f"'mtdata get -l {_mtdata_pair(dataset)} --train {dataset} -o DIR' (pip install mtdata) "
        f"and put DIR/train-parts/{dataset}.* as {dataset}.{src_lang} and {dataset}.{tgt_lang} "
        f"(plain or {', '.join(COMPRESSED_SUFFIXES)}) into {where}"
    )


def _mtdata_pair(dataset: str) -> str:
    """``eng-zho`` for ``Statmt-news_commentary-16-eng-zho`` (its last two parts)."""
    return "-".join(dataset.split("-")[-2:])


def _fetch_mtdata(dataset: str, src_lang: str, tgt_lang: str, folder: Path) -> str | None:
    """Download with the mtdata command into ``folder`` as ``dataset.<lang>[.gz]``; None on
    success, else what went wrong."""
    if os.environ.get(OFFLINE_ENV):
        return f"not in the mirror or {folder}/, and ${OFFLINE_ENV} forbids downloading"
    try:
        import mtdata  # noqa: F401
    except ImportError:
        return (
            f"not in the mirror or {folder}/, and mtdata (which downloads it) is not installed: "
            f"pip install -e '.[corpora]'"
        )
    work = folder / f"{dataset}.mtdata"
    command = [sys.executable, "-m", "mtdata", "get", "-l", _mtdata_pair(dataset)]
    command += ["--train", dataset, "-o", str(work), "--no-merge", "--compress", "--fail"]
    result = subprocess.run(command, capture_output=True, text=True)
    parts = work / "train-parts"
    if result.returncode != 0 or not parts.is_dir():
        shutil.rmtree(work, ignore_errors=True)
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"mtdata could not download it ({last[0][:300]})"
    for path in parts.glob(f"{dataset}.*"):
        suffixes = path.name[len(dataset) + 1 :].split(".")
        lang = language_of(suffixes[0])
        if lang in (src_lang, tgt_lang):
            os.replace(path, folder / ".".join([dataset, lang, *suffixes[1:]]))
    shutil.rmtree(work, ignore_errors=True)
    return None


def sacrebleu_cache() -> Path:
    return Path(os.environ.get("SACREBLEU", "~/.sacrebleu")).expanduser()


def _sacrebleu(test_set: str, src_lang: str, tgt_lang: str, mirror: Path | None) -> CorpusInput:
    pair = f"{src_lang}-{tgt_lang}"
    flat = test_set.replace("/", "_")
    names = (f"{flat}.{pair}.src", f"{flat}.{pair}.ref")
    folders = ([mirror / "sacrebleu" / test_set] if mirror else []) + [sacrebleu_cache() / test_set]
    for folder in folders:
        paths = tuple(with_compressed_variant(folder / name) for name in names)
        if all(path.is_file() for path in paths):
            return CorpusInput("aligned", paths, src_lang, tgt_lang)
    problem = _fetch_sacrebleu(test_set, pair)
    if problem is None:
        return CorpusInput(
            "aligned", tuple(sacrebleu_cache() / test_set / n for n in names), src_lang, tgt_lang
        )
    where = (
        f"{mirror / 'sacrebleu' / test_set}/"
        if mirror
        else f"$DATA_MIRROR/sacrebleu/{test_set}/ (set DATA_MIRROR)"
    )
    raise CorpusNotFoundError(
        f"test set 'sacrebleu:{test_set}' ({pair}) not found: {problem}. On a machine with "
        f"internet run 'sacrebleu -t {test_set} -l {pair} --echo src > /dev/null' and copy "
        f"~/.sacrebleu/{test_set}/{names[0]} and {names[1]} into {where}"
    )


def _fetch_sacrebleu(test_set: str, pair: str) -> str | None:
    if os.environ.get(OFFLINE_ENV):
        return f"not in the mirror or {sacrebleu_cache()}/, and ${OFFLINE_ENV} forbids downloading"
    from sacrebleu.dataset import DATASETS

    dataset = DATASETS.get(test_set)
    if dataset is None:
        return f"sacrebleu knows no test set '{test_set}'"
    if pair not in dataset.langpairs:
        return f"sacrebleu's {test_set} has no {pair} pair (it has {', '.join(dataset.langpairs)})"
    try:
        dataset.get_files(pair)  # downloads into sacrebleu's cache
    except (Exception, SystemExit) as error:  # many types; sys.exit for SSL or MD5 trouble
        return f"sacrebleu could not download it ({str(error).strip()[:300]})"
    return None
