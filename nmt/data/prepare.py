"""Data preparation: from a raw corpus to vocabularies and encoded splits, cached (the
command is ``nmt prepare``).

The steps (each streams its input, see :mod:`nmt.data.pipeline`):

1. locate the corpus (mirror, embedded copy or download; checksums checked);
2. copy given dev/test sets as they are (unfiltered: they must stay aligned with their
   references) and remember their sentences;
3. normalise and clean the training pairs, dropping any that share a sentence with dev/test;
4. split dev/test off the cleaned pairs by seed where none were given, keeping pairs that
   share a sentence in one split;
5. train the sentencepiece model(s) on the training split;
6. encode every split to token ids.

Everything lands in ``data.output_dir`` (``<output_dir>-upstream`` for a download of the
latest upstream release, see ``DataConfig.prepared_dir``) with a manifest; the next run with
the same inputs and settings reuses it (:mod:`nmt.data.cache`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nmt.config import DataConfig
from nmt.data import cache, encoded
from nmt.data.clean import FILTERS, PairFilter, first_occurrences
from nmt.data.encoded import EncodedCorpus
from nmt.data.langid import LanguageIdentifier, needs_detection
from nmt.data.normalize import is_chinese
from nmt.data.pipeline import (
    DROPPED,
    Cleaning,
    CorpusCount,
    HeldOutKeys,
    PairNormalizer,
    SplitFiles,
    clean_training_pairs,
    copy_given_split,
    distribute,
    encode_files,
    replace_files,
)
from nmt.data.readers import CorpusNotFoundError, MalformedLines
from nmt.data.sampling import CorpusMixture
from nmt.data.sources import CorpusFiles, locate_corpus
from nmt.data.split import TRAIN, assign_splits
from nmt.data.summary import PrepareSummary
from nmt.data.vocab import SPECIAL_IDS, Vocabulary, train_vocabulary
from nmt.errors import DataError

SPLITS = ("train", "dev", "test")
MALFORMED_LOG = "malformed.tsv"  # data.on_error=skip: every skipped line, file<TAB>line<TAB>why


@dataclass
class PreparedData:
    """A prepared data folder: vocabularies, encoded splits and their text files."""

    output_dir: Path
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    src_lang: str = "zh"
    tgt_lang: str = "en"
    splits: tuple[str, ...] = SPLITS
    summary: PrepareSummary | None = None
    # How an epoch samples the training corpora (None: every pair once).
    mixture: CorpusMixture | None = None
    _encoded: dict[str, EncodedCorpus] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def load(cls, output_dir: str | Path) -> PreparedData:
        output_dir = Path(output_dir)
        manifest = cache.read_manifest(output_dir)
        if manifest is None:
            raise DataError(f"no complete prepared data in {output_dir}; run 'nmt prepare'")
        src_vocab = Vocabulary.from_file(output_dir / manifest["vocab"]["src"])
        joint = manifest["vocab"]["src"] == manifest["vocab"]["tgt"]
        tgt_vocab = (
            src_vocab if joint else Vocabulary.from_file(output_dir / manifest["vocab"]["tgt"])
        )
        return cls(
            output_dir=output_dir,
            src_vocab=src_vocab,
            tgt_vocab=tgt_vocab,
            src_lang=manifest["src_lang"],
            tgt_lang=manifest["tgt_lang"],
            splits=tuple(manifest["splits"]),
            summary=PrepareSummary.from_dict(manifest["summary"]),
        )

    def encoded(self, split: str) -> EncodedCorpus:
        """Token ids of a split (loaded once, memory-mapped); the training split carries the
        corpus mixture its batches are sampled by."""
        self._check_split(split)
        if split not in self._encoded:
            corpus = EncodedCorpus.load(encoded.folder_of(self.output_dir, split))
            corpus.mixture = self.mixture if split == "train" else None
            self._encoded[split] = corpus
        return self._encoded[split]

    def with_mixture(self, config: DataConfig) -> PreparedData:
        """Set the sampling of the training corpora from ``config`` (weights and temperature
        are not part of the prepared data: changing them needs no new preparation)."""
        corpora = self.summary.corpora if self.summary else []
        if len(corpora) > 1:
            weights = [entry.weight for entry in config.train_corpora]
            self.mixture = CorpusMixture.from_weights(
                [corpus["train"] for corpus in corpora],
                weights if len(weights) == len(corpora) else None,
                config.sampling_temperature,
                [corpus["name"] for corpus in corpora],
            )
            self.summary.shares = self.mixture.shares
        return self

    def text_paths(self, split: str) -> tuple[Path, Path]:
        """(source, reference) text files, line-aligned. Dev/test hold the original text (for
        translation and BLEU); train holds the cleaned, normalised text the vocabularies saw."""
        self._check_split(split)
        files = SplitFiles.named(self.output_dir, split, self.src_lang, self.tgt_lang)
        return files.source, files.target

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(
                f"no '{split}' split in {self.output_dir} (it has {', '.join(self.splits)}); "
                f"give data.{split} or a positive data.{split}_size"
            )


def prepare_data(config: DataConfig, force: bool = False) -> PreparedData:
    """Prepare the data of ``config``, or reuse a previous preparation of the same inputs."""
    config.validate()
    output_dir = config.prepared_dir
    try:
        files = locate_corpus(
            config.corpus,
            config.src_lang,
            config.tgt_lang,
            config.train_corpora,
            {"dev": config.dev, "test": config.test},
            download_dir=output_dir / "download",
            source=config.source,
            verify_checksums=config.verify_checksums,
        )
    except CorpusNotFoundError as error:
        # Without its inputs (a machine with data/ copied but no corpus mirror) a complete
        # earlier build is still usable; it just cannot be checked against them.
        if force or cache.read_manifest(output_dir) is None:
            raise
        data = PreparedData.load(output_dir)
        data.summary.notes.append(f"inputs not found, reused as it is: {error}")
        return data.with_mixture(config)

    fingerprint = cache.fingerprint(_settings(config), files.checksums)
    if not force and cache.is_current(output_dir, fingerprint):
        data = PreparedData.load(output_dir)
        data.summary.reused = True
        # This run's inputs: the same content as the build's, maybe from another place.
        data.summary.origin, data.summary.credit = files.origin, files.credit
        data.summary.train_input = _describe_inputs(files)
        return data.with_mixture(config)
    return _build(config, files, output_dir, fingerprint).with_mixture(config)


def _settings(config: DataConfig) -> dict:
    """The data settings the prepared data depends on, for the fingerprint."""
    settings = dataclasses.asdict(config)
    # The inputs' content identifies the data: the mirror's files and the embedded copy of
    # the same split share one build, a download (other files) never does. Sampling
    # weights act at training time only.
    for unrelated in ("output_dir", "source", "verify_checksums", "sampling_temperature"):
        settings.pop(unrelated)
    settings["train"] = [
        {"path": corpus.path, "columns": corpus.columns} for corpus in config.train_corpora
    ]
    return settings


def _describe_inputs(files: CorpusFiles) -> str:
    return " | ".join(" + ".join(path.name for path in corpus.paths) for _, corpus in files.train)


@dataclass
class _Splits:
    """What cleaning and splitting produced."""

    sizes: dict[str, int]  # split -> pairs, in SPLITS order
    notes: dict[str, str]  # split -> how it was made
    corpora: list[CorpusCount]  # per training corpus
    malformed: MalformedLines


def _build(
    config: DataConfig, files: CorpusFiles, output_dir: Path, fingerprint: str
) -> PreparedData:
    timer = _StageTimer()
    output_dir.mkdir(parents=True, exist_ok=True)
    cache.invalidate(output_dir)
    for stale in SPLITS:  # the encoded files of pipeline version 1
        (output_dir / f"{stale}.pt").unlink(missing_ok=True)
    src, tgt = config.src_lang, config.tgt_lang
    normalizer = PairNormalizer(src, tgt, config.traditional_to_simplified)
    split_files = {name: SplitFiles.named(output_dir, name, src, tgt) for name in SPLITS}

    with timer("clean+split"):
        splits = _clean_and_split(config, files, split_files, normalizer)
    with timer("vocabulary"):
        src_vocab, tgt_vocab, vocab_sizes, vocab_names = _train_vocabularies(
            config, split_files["train"], output_dir
        )
    encoded_files = []
    with timer("encode"):
        for name in splits.sizes:
            folder = encoded.folder_of(output_dir, name)
            encode_files(
                split_files[name],
                src_vocab,
                tgt_vocab,
                normalizer=None if name == "train" else normalizer,  # train is normalised
                threads=config.threads,
                folder=folder,
                desc=f"encode {name}",
            )
            encoded_files += [
                str(path.relative_to(output_dir)) for path in encoded.files_of(folder)
            ]

    names = tuple(splits.sizes)
    text_files = [
        path.name
        for name in names
        for path in dataclasses.astuple(split_files[name])
        if path.is_file()
    ]
    files_written = text_files + vocab_names + encoded_files
    malformed_log = output_dir / MALFORMED_LOG
    summary = PrepareSummary(
        corpus=config.corpus,
        direction=f"{src} -> {tgt}",
        origin=files.origin,
        train_input=_describe_inputs(files),
        credit=files.credit,
        pairs_read=sum(count.pairs_read for count in splits.corpora),
        removed={
            name: sum(count.removed.get(name, 0) for count in splits.corpora) for name in FILTERS
        },
        split_sizes=splits.sizes,
        split_notes=splits.notes,
        vocab_sizes=vocab_sizes,
        output_dir=str(output_dir),
        files=[*files_written, cache.MANIFEST],
        seconds=timer.total(),
        stage_seconds=timer.stages,
        corpora=[dataclasses.asdict(count) for count in splits.corpora],
        malformed={
            name: [count, splits.malformed.lines[name]]
            for name, count in splits.malformed.counts.items()
        },
        malformed_log=malformed_log.name if malformed_log.is_file() else "",
    )
    cache.write_manifest(
        output_dir,
        {
            "fingerprint": fingerprint,
            "src_lang": src,
            "tgt_lang": tgt,
            "special_ids": SPECIAL_IDS,
            "vocab": {"src": vocab_names[0], "tgt": vocab_names[-1]},
            "splits": list(names),
            "files": files_written,
            "summary": summary.to_dict(),
        },
    )
    return PreparedData(output_dir, src_vocab, tgt_vocab, src, tgt, names, summary)


def _clean_and_split(
    config: DataConfig,
    files: CorpusFiles,
    split_files: dict[str, SplitFiles],
    normalizer: PairNormalizer,
) -> _Splits:
    """Steps 2-4: given dev/test copied, training pairs cleaned and de-duplicated across all
    corpora, missing dev/test split off (leak-free across all of them too)."""
    src, tgt = config.src_lang, config.tgt_lang
    output_dir = split_files["train"].source.parent
    sizes, notes = {"train": 0}, {"train": "cleaned, normalised"}
    held_out_keys = HeldOutKeys(set(), set())
    requested = {"dev": config.dev_size, "test": config.test_size}
    to_split = []
    for name, given in files.held_out.items():
        if given is not None:
            sizes[name] = copy_given_split(given, split_files[name], normalizer, held_out_keys)
            notes[name] = "given, unfiltered"
        elif requested[name] > 0:
            to_split.append(name)

    def make_filter() -> PairFilter:
        return PairFilter(
            config.max_chars,
            config.max_length_ratio,
            (src, tgt),
            config.script_filter,
            held_out_keys.sources,
            held_out_keys.targets,
        )

    languages = [lang for lang in (src, tgt) if needs_detection(lang)]
    malformed_log = output_dir / MALFORMED_LOG
    malformed_log.unlink(missing_ok=True)
    with ExitStack() as stack:
        log = (
            stack.enter_context(open(malformed_log, "w", encoding="utf-8"))
            if config.on_error == "skip"
            else None
        )
        errors = MalformedLines(config.on_error, log=log)
        cleaning = Cleaning(
            normalizer,
            make_filter,
            LanguageIdentifier(languages) if config.language_id and languages else None,
            errors,
        )
        cleaned = SplitFiles.named(output_dir, "cleaned", src, tgt)
        raw = SplitFiles.named(output_dir, "cleaned.raw", src, tgt) if to_split else None
        pairs = clean_training_pairs(files.train, cleaning, cleaned, raw)
    del cleaning  # lingua's models (about 300 MB) are not needed any more
    if not errors.total:
        malformed_log.unlink(missing_ok=True)

    first = first_occurrences(pairs.source_keys, pairs.target_keys)
    for count, kept in zip(pairs.counts, pairs.ranges(), strict=True):
        count.removed["duplicate"] = int(np.count_nonzero(~first[kept]))
    codes = np.full(len(first), DROPPED, dtype=np.int8)
    if to_split:
        keys = [torch.from_numpy(k[first]) for k in (pairs.source_keys, pairs.target_keys)]
        pairs.source_keys = pairs.target_keys = None  # 16 bytes a pair fewer for the split
        codes[first] = assign_splits(
            *keys, [requested[name] for name in to_split], config.split_seed
        ).numpy()
    else:
        codes[first] = TRAIN
    if raw is None and first.all():  # nothing to drop or split off: the files are train
        replace_files(cleaned, split_files["train"])
        counts = [len(first)]
    else:
        counts = distribute(
            codes, cleaned, raw, split_files["train"], [split_files[n] for n in to_split]
        )
        cleaned.remove()
        if raw is not None:
            raw.remove()
    sizes["train"] = counts[0]
    for name, count in zip(to_split, counts[1:], strict=True):
        sizes[name] = count
        notes[name] = f"split off by seed {config.split_seed}, original text"
    for count, kept in zip(pairs.counts, pairs.ranges(), strict=True):
        count.train = int(np.count_nonzero(codes[kept] == TRAIN))
    if sizes["train"] == 0:
        inputs = ", ".join(corpus.describe() for _, corpus in files.train)
        raise DataError(f"no training pairs left after cleaning {inputs}")
    ordered = [name for name in SPLITS if name in sizes]
    return _Splits(
        sizes={name: sizes[name] for name in ordered},
        notes={name: notes[name] for name in ordered},
        corpora=pairs.counts,
        malformed=errors,
    )


class _StageTimer:
    """Seconds per named stage, for the summary."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        yield
        self.stages[name] = round(time.perf_counter() - begin, 2)

    def total(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def _train_vocabularies(
    config: DataConfig, train: SplitFiles, output_dir: Path
) -> tuple[Vocabulary, Vocabulary, dict[str, list[int]], list[str]]:
    """(source vocabulary, target vocabulary, name -> [asked, got] size, model file names)."""
    settings = config.vocab

    def coverage(lang: str) -> float:
        if is_chinese(lang):
            return settings.zh_character_coverage
        return settings.other_character_coverage

    def fit(files: list[Path], name: str, size: int, character_coverage: float) -> Vocabulary:
        return train_vocabulary(
            files,
            output_dir / f"vocab.{name}",
            size,
            model_type=settings.model_type,
            character_coverage=character_coverage,
            input_sentence_size=settings.input_sentence_size,
            threads=config.threads,
            seed=config.split_seed,
        )

    src, tgt = config.src_lang, config.tgt_lang
    if settings.joint:
        joint_coverage = min(coverage(src), coverage(tgt))
        vocab = fit([train.source, train.target], "joint", settings.joint_size, joint_coverage)
        return vocab, vocab, {"joint": [settings.joint_size, len(vocab)]}, ["vocab.joint.model"]
    src_vocab = fit([train.source], src, settings.src_size, coverage(src))
    tgt_vocab = fit([train.target], tgt, settings.tgt_size, coverage(tgt))
    sizes = {src: [settings.src_size, len(src_vocab)], tgt: [settings.tgt_size, len(tgt_vocab)]}
    return src_vocab, tgt_vocab, sizes, [f"vocab.{src}.model", f"vocab.{tgt}.model"]
