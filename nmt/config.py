"""Experiment configuration: YAML in, typed dataclasses out, validated once at the edge.

Every experiment is one YAML file with the sections ``data``, ``model``, ``training`` and
``decoding``. :func:`load_config` reads it, applies ``section.key=value`` overrides from the
command line and turns the result into a :class:`Config`. Errors name the key path and the
expected type or range; an unknown key is refused with the closest valid key suggested. Code
below the edge takes plain arguments, never the raw dictionary.

Numbers are read as people write them: a float field takes ``5e-4``, ``1E-3``, ``1e+30``,
``.5``, ``5.`` or an integer (PyYAML reads exponents without a dot as strings), an integer
field takes any whole number (``1000``, ``1e3``; not ``1.5``). Each section checks its own
ranges in its ``validate(key)`` method; :func:`validate` runs them all plus the checks that
span sections.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from nmt.errors import NmtError


class ConfigError(NmtError, ValueError):
    """A configuration file or override that does not fit the schema."""


# A number as people write it. PyYAML (YAML 1.1) reads an exponent without a dot (5e-4, 1E-3,
# 1e+30) as a string; such strings are taken as numbers, other strings ('fast') are not.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# Larger floats are not whole numbers exactly (1e30 is 1000000000000000019884624838656).
_EXACT_INT = 2**53
_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")
_LANGUAGE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Keys that older versions wrote; checkpoints still store them, so they are accepted and
# ignored. data.download: fetching is now data.source=download, and without a mirror the
# embedded copy serves where the download used to.
_RETIRED_KEYS = {"data": ("download",)}


@dataclass
class VocabConfig:
    """Sentencepiece vocabularies, trained on the training split."""

    src_size: int = 8000
    tgt_size: int = 8000
    joint: bool = False  # one model for both languages (needed for shared embeddings)
    joint_size: int = 16000
    model_type: Literal["unigram", "bpe"] = "unigram"
    zh_character_coverage: float = 0.9995
    other_character_coverage: float = 1.0
    # Sentences sampled for sentencepiece training: bounds its time and memory on huge
    # corpora, and is plenty to find the frequent pieces.
    input_sentence_size: int = 500_000

    def validate(self, key: str = "data.vocab") -> None:
        _check_choices(self, key)
        for name in ("src_size", "tgt_size", "joint_size"):  # 4 special pieces + characters
            _check_int(self, key, name, 8)
        for name in ("zh_character_coverage", "other_character_coverage"):
            _check_number(self, key, name, 0.98, 1.0)  # sentencepiece refuses less
        _check_positive(self, key, "input_sentence_size")


@dataclass
class CorpusConfig:
    """One training corpus of ``data.train`` (a plain string there is ``{path: STRING}``)."""

    # Inside data.corpus's folder (or absolute): an aligned prefix NAME (NAME.zh / NAME.en),
    # a TSV or TMX file, each maybe compressed (.gz .bz2 .xz .zst); or a corpus by name,
    # mtdata:DATASET_ID (nmt/data/standard.py).
    path: str = "train"
    # Sampling weight: corpus i gives a share of each epoch proportional to weight x size
    # (1 everywhere: every pair once per epoch). None: 1, or data.sampling_temperature's.
    weight: float | None = None
    # TSV only: what each column holds, a language code, 'attribution' or '-' (ignored);
    # e.g. [zh, en]. None: the Tatoeba layout (english, other language, attribution).
    columns: list[str] | None = None

    def validate(self, key: str) -> None:
        _check_text(self, key, "path")
        if self.weight is not None:
            _check_number(self, key, "weight", low=0, low_open=True)
        if self.columns is not None:
            valid = all(isinstance(name, str) and name.strip() for name in self.columns)
            _require(valid and len(self.columns) >= 2, f"{key}.columns",
                     "a list of at least two column names", self.columns)  # fmt: skip


@dataclass
class DataConfig:
    """Where the corpus comes from and how it is cleaned, split and encoded."""

    corpus: str = "tatoeba-zh-en"  # a name (mirror or embedded copy), or an absolute folder
    # Where a named corpus comes from (nmt/data/sources.py): auto: $DATA_MIRROR/<corpus> when
    # DATA_MIRROR is set, else the copy embedded in data/corpora/<corpus>/; mirror or
    # embedded: only that; download: the latest upstream release of a known corpus (not the
    # canonical split), prepared into <output_dir>-upstream so the two never mix.
    source: Literal["auto", "embedded", "mirror", "download"] = "auto"
    src_lang: str = "zh"
    tgt_lang: str = "en"
    # Training corpora: one name (an aligned prefix NAME for NAME.zh / NAME.en, a TSV or TMX
    # file, or mtdata:DATASET_ID), or a list of them, each a name or {path, weight, columns}.
    train: str | list[CorpusConfig | str] = "train"
    # Given dev/test sets (aligned prefix, TSV, or sacrebleu:TESTSET such as
    # sacrebleu:wmt20); null: split off the training pairs by ``split_seed``.
    dev: str | None = "dev"
    test: str | None = "test"
    dev_size: int = 1000
    test_size: int = 2000
    split_seed: int = 20261121
    output_dir: str = "data/tatoeba-zh-en"
    traditional_to_simplified: bool = True
    max_chars: int = 200  # cleaning: longer sentences (either side) are dropped
    max_length_ratio: float = 9.0  # cleaning: character-length ratio between the sides
    # Cleaning: a side written mostly in another script than its language's (English in the
    # Chinese column, Chinese or Japanese in the English one) is dropped.
    script_filter: bool = True
    # Cleaning: language identification (lingua, offline; pip install -e '.[langid]') of
    # the sides whose script does not decide the language (English, not Chinese).
    language_id: bool = False
    # A malformed input line (not UTF-8, wrong TSV field count, TMX unit missing a side):
    # stop names the first; skip drops them, counted by file with line numbers.
    on_error: Literal["stop", "skip"] = "stop"
    # With several corpora and no explicit weights: corpus i's share of an epoch is
    # proportional to size_i ** (1 / T) (1: by size; larger: towards uniform).
    sampling_temperature: float | None = None
    verify_checksums: bool = True  # a known corpus's files must match their pinned sha256
    threads: int = 2  # sentencepiece training and encoding
    vocab: VocabConfig = field(default_factory=VocabConfig)

    @property
    def prepared_dir(self) -> Path:
        """Where the prepared data goes: ``output_dir``, or beside it for an upstream download
        (a different corpus release must never replace the canonical split's files)."""
        if self.source == "download":
            return Path(f"{self.output_dir.rstrip('/')}-upstream")
        return Path(self.output_dir)

    @property
    def train_corpora(self) -> list[CorpusConfig]:
        """``train`` as a list of corpora (a plain name is one corpus)."""
        entries = [self.train] if isinstance(self.train, str) else self.train
        return [CorpusConfig(path=e) if isinstance(e, str) else e for e in entries]

    def validate(self, key: str = "data") -> None:
        """Range checks; run by ``prepare_data`` for configs built in code too."""
        _check_choices(self, key)
        _check_text(self, key, "corpus", "output_dir")
        corpora = self.train_corpora
        _require(len(corpora) > 0, f"{key}.train", "at least one corpus", self.train)
        for index, corpus in enumerate(corpora):
            corpus.validate(
                f"{key}.train" if isinstance(self.train, str) else f"{key}.train[{index}]"
            )
        for name in ("dev", "test"):
            if getattr(self, name) is not None:
                _check_text(self, key, name)
        for name in ("src_lang", "tgt_lang"):  # file suffixes: train.zh, train.en
            value = getattr(self, name)
            valid = isinstance(value, str) and _LANGUAGE.fullmatch(value) is not None
            _require(valid, f"{key}.{name}", "a language code such as 'zh' or 'en'", value)
        _require(
            self.src_lang != self.tgt_lang,
            f"{key}.tgt_lang",
            "a language other than src_lang",
            self.tgt_lang,
        )
        for name in ("dev_size", "test_size"):
            _check_int(self, key, name, 0)
        _check_int(self, key, "split_seed", 0, 2**32 - 1)  # sentencepiece takes a uint32
        _check_positive(self, key, "max_chars", "threads")
        _check_number(self, key, "max_length_ratio", low=1)
        if self.sampling_temperature is not None:
            _check_number(self, key, "sampling_temperature", low=0, low_open=True)
            weighted = [c.path for c in corpora if c.weight is not None]
            _require(not weighted, f"{key}.sampling_temperature",
                     f"null when corpora have explicit weights ({', '.join(weighted)})",
                     self.sampling_temperature)  # fmt: skip
        self.vocab.validate(f"{key}.vocab")


FeatureMap = Literal["trig", "positive", "arccos"]


@dataclass
class RFAConfig:
    """Random feature attention (nmt/models/rfa.py, docs/rfa.md) for the attention types
    set to ``rfa``."""

    num_features: int = 64  # random vectors per head; the feature dimension is twice that
    feature_map: FeatureMap = "trig"
    sigma: float = 1.0  # initial scale of l2-normalised queries and keys
    learn_sigma: bool = True
    # every_step (the paper's setting), or an integer N: a new projection every N training
    # forward passes; fixed: one projection per model. Checkpoints store the key explicitly
    # (Config.to_dict writes every field), so runs from before the default was every_step
    # keep their fixed projection.
    redraw: Literal["fixed", "every_step"] | int = "every_step"
    gated: bool = False  # the paper's gated recurrence, for decoder self-attention only
    # relative: the denominator floor is a fraction of the kernel of a key orthogonal to the
    # query, whatever sigma; absolute: a fixed floor per key (checkpoints from before the
    # key existed, which translate as they did; see LEGACY_DEFAULTS).
    denominator_floor: Literal["relative", "absolute"] = "relative"

    def validate(self, key: str = "model.transformer.rfa") -> None:
        _check_choices(self, key)
        _check_positive(self, key, "num_features")
        _check_number(self, key, "sigma", low=0, low_open=True)
        redraw = self.redraw
        if isinstance(redraw, str):
            valid = redraw in ("fixed", "every_step")
        else:
            valid = isinstance(redraw, int) and not isinstance(redraw, bool) and redraw >= 1
        _require(valid, f"{key}.redraw", "'fixed', 'every_step' or an integer N >= 1", redraw)


@dataclass
class TransformerConfig:
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0
    norm: Literal["post", "pre"] = "pre"
    tie_output_embeddings: bool = True  # decoder input and output embeddings share weights
    share_embeddings: bool = False  # source and target share one table (joint vocabulary)
    max_positions: int = 1024
    attention_layer: int = -1  # which decoder layer's cross-attention states expose (plots)
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"  # position embeddings
    # The core of each attention type (nmt/models/transformer.py, make_attention_core).
    encoder_attention: Literal["softmax", "rfa"] = "softmax"
    decoder_attention: Literal["softmax", "rfa"] = "softmax"
    cross_attention: Literal["softmax", "rfa"] = "softmax"
    rfa: RFAConfig = field(default_factory=RFAConfig)

    def validate(self, key: str = "model.transformer") -> None:
        _check_choices(self, key)
        sizes = ("d_model", "heads", "ff_size", "encoder_layers", "decoder_layers", "max_positions")
        _check_positive(self, key, *sizes)
        _check_probability(self, key, "dropout", "attention_dropout")
        _require(self.d_model % 2 == 0, f"{key}.d_model", "an even number", self.d_model)
        _require(
            self.d_model % self.heads == 0,
            f"{key}.heads",
            f"a divisor of d_model={self.d_model}",
            self.heads,
        )
        layers = self.decoder_layers
        _require(
            -layers <= self.attention_layer < layers,
            f"{key}.attention_layer",
            f"a decoder layer index in [{-layers}, {layers})",
            self.attention_layer,
        )
        self.rfa.validate(f"{key}.rfa")
        _require(
            not self.rfa.gated or self.decoder_attention == "rfa",
            f"{key}.rfa.gated",
            f"false unless {key}.decoder_attention is 'rfa' (only causal self-attention has "
            "a gated form)",
            self.rfa.gated,
        )


AttentionScore = Literal[
    "none",
    "additive",
    "dot",
    "scaled_dot",
    "general",
    "biased_general",
    "activated_general",
    "cosine",
]


@dataclass
class GRUConfig:
    """The recurrent encoder-decoder (``model.type: gru``, the family's first cell)."""

    cell: Literal["gru", "lstm", "rnn"] = "gru"  # rnn: Elman (tanh)
    embed_dim: int = 256
    hidden_size: int = 256  # per direction in the encoder; the decoder has 2x this
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.2
    # The attention score (nmt/models/attention.py, docs/models.md); none: no attention, a
    # fixed context vector (the encoder's final states) at every step.
    score: AttentionScore = "additive"
    attention_dim: int = 256  # size of the additive score's hidden layer

    def validate(self, key: str = "model.gru") -> None:
        _check_choices(self, key)
        sizes = ("embed_dim", "hidden_size", "encoder_layers", "decoder_layers", "attention_dim")
        _check_positive(self, key, *sizes)
        _check_probability(self, key, "dropout")


@dataclass
class ModelConfig:
    type: Literal["gru", "transformer"] = "transformer"
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    gru: GRUConfig = field(default_factory=GRUConfig)

    def validate(self) -> None:
        """Range checks; also run by ``build_model`` for configs built in code."""
        _check_choices(self, "model")
        self.transformer.validate()
        self.gru.validate()


@dataclass
class TrainingConfig:
    output_dir: str = "runs"  # checkpoints go to OUTPUT_DIR/<config name>/
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16 autocast on CUDA only
    compile: bool = False  # torch.compile the model for training (docs/training.md)
    # Processes collating batches ahead of the step; auto: 2 on CUDA, 0 (in the main process)
    # on a CPU, whose cores all train.
    data_workers: Literal["auto"] | int = "auto"
    peak_tflops: float = 0.0  # the device's peak for MFU; 0: known GPUs' datasheet peak
    deterministic: bool = False
    max_tokens: int = 4096  # token budget of one batch (source or target, the larger)
    accumulate: int = 1  # gradient accumulation: batches per optimiser step
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-9
    weight_decay: float = 0.0
    schedule: Literal["inverse_sqrt", "plateau", "constant"] = "inverse_sqrt"
    warmup_steps: int = 400
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    clip_norm: float = 1.0  # 0 disables clipping
    max_steps: int = 0  # 0: no limit
    max_epochs: int = 0  # 0: no limit
    max_minutes: float = 0.0  # wall-clock limit of training; 0: no limit
    valid_every: int = 500  # steps between validations
    valid_max_sentences: int = 0  # 0: the whole dev set
    early_stopping_patience: int = 0  # validations without a better dev BLEU; 0: off
    keep_checkpoints: int = 3  # numbered step checkpoints kept beside last.pt and best.pt
    log_every: int = 50
    tensorboard: bool = True  # used when tensorboard is installed

    def validate(self, key: str = "training") -> None:
        """Range checks. Whether the device exists is checked when training starts
        (nmt/devices.py); here only its spelling."""
        _check_choices(self, key)
        _check_text(self, key, "output_dir")
        valid_device = isinstance(self.device, str) and _DEVICE.fullmatch(self.device) is not None
        _require(
            valid_device, f"{key}.device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", self.device
        )
        _check_int(self, key, "seed", 0, 2**63 - 1)
        for name in ("max_tokens", "accumulate", "valid_every", "log_every", "plateau_patience"):
            _check_int(self, key, name, 1)
        for name in (
            "threads",  # 0: torch's default
            "warmup_steps",
            "max_steps",  # 0: no limit, as for the next two
            "max_epochs",
            "valid_max_sentences",
            "early_stopping_patience",
            "keep_checkpoints",
        ):
            _check_int(self, key, name, 0)
        _check_number(self, key, "lr", low=0, low_open=True)
        betas = self.betas
        valid_betas = isinstance(betas, (list, tuple)) and len(betas) == 2
        _require(valid_betas, f"{key}.betas", "a list of two values in [0, 1)", betas)
        for index, beta in enumerate(betas):
            _check_value(beta, f"{key}.betas[{index}]", 0, 1, high_open=True)
        _check_number(self, key, "eps", low=0, low_open=True)
        _check_number(self, key, "weight_decay", low=0)
        _check_number(self, key, "plateau_factor", 0, 1, low_open=True, high_open=True)
        _check_number(self, key, "min_lr", low=0)
        _check_probability(self, key, "label_smoothing")
        _check_number(self, key, "clip_norm", low=0)  # 0 disables clipping
        _check_number(self, key, "max_minutes", low=0)  # finite: 0 means no limit
        _require(
            self.data_workers == "auto" or self.data_workers >= 0,
            f"{key}.data_workers",
            "'auto' or a number of processes >= 0",
            self.data_workers,
        )
        _check_number(self, key, "peak_tflops", low=0)  # 0: known GPUs' datasheet peak


@dataclass
class DecodingConfig:
    """Search settings (nmt/decoding.py); the defaults of ``nmt translate``/``evaluate``."""

    beam_size: int = 5  # 1: greedy search
    length_penalty: float = 1.0  # GNMT alpha: rank by log_prob / ((5 + length) / 6) ** alpha
    max_len_a: float = 1.5  # longest output = a * source_length + b (both counting EOS)
    max_len_b: int = 10
    n_best: int = 1  # candidates per sentence
    batch_size: int = 64  # sentences per decoding batch
    valid_beam_size: int = 1  # beam used for dev BLEU during training (1: greedy)

    def validate(self, key: str = "decoding") -> None:
        DecodingSettings.from_config(self, key=key)
        _check_positive(self, key, "valid_beam_size")


@dataclass(frozen=True)
class DecodingSettings:
    """How one decoding run searches: built once, from the ``decoding`` section and the
    command-line options, and passed whole to the translator and the search functions.

    The defaults are :class:`DecodingConfig`'s; ``__post_init__`` is the one place their
    ranges are checked (errors name the config key, ``decoding.beam_size`` and so on).
    """

    beam_size: int = DecodingConfig.beam_size  # 1: greedy search
    n_best: int = DecodingConfig.n_best  # candidates per sentence, best first
    length_penalty: float = DecodingConfig.length_penalty  # GNMT alpha
    max_len_a: float = DecodingConfig.max_len_a
    max_len_b: int = DecodingConfig.max_len_b
    batch_size: int = DecodingConfig.batch_size  # sentences per search call
    return_attention: bool = False  # collect attention over the source (plots, alignments)
    key: InitVar[str] = "decoding"  # how errors name the section

    def __post_init__(self, key: str) -> None:
        _check_positive(self, key, "beam_size", "n_best", "batch_size")
        _require(self.n_best <= self.beam_size, f"{key}.n_best", "<= beam_size", self.n_best)
        _check_number(self, key, "max_len_a", low=0)
        _check_int(self, key, "max_len_b", 0)
        _check_number(self, key, "length_penalty")  # negative favours short output; allowed

    @classmethod
    def from_config(
        cls, config: DecodingConfig, key: str = "decoding", **options: Any
    ) -> DecodingSettings:
        """The config's settings, updated with ``options`` (see :meth:`updated`)."""
        fields = ("beam_size", "n_best", "length_penalty", "max_len_a", "max_len_b", "batch_size")
        return cls(**{name: getattr(config, name) for name in fields}, key=key).updated(
            key, **options
        )

    def updated(self, key: str = "decoding", **options: Any) -> DecodingSettings:
        """These settings with ``options`` (field names) replacing them where not None;
        asking for more candidates than the beam (without a beam) widens the beam. ``key``
        names the settings in errors."""
        given = {name: value for name, value in options.items() if value is not None}
        if "n_best" in given and "beam_size" not in given:
            given["beam_size"] = max(self.beam_size, given["n_best"])
        return dataclasses.replace(self, key=key, **given)


@dataclass
class Config:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.training.output_dir) / self.name


# --- YAML -> dataclass ---------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return f"list of {_type_name(item)}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _as_number(value: Any) -> int | float | None:
    """``value`` as a number if it is one or spells one (``'5e-4'``), else None."""
    if isinstance(value, bool):
        return None  # a bool is an int to Python, never a number in a config
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{path}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is None:
            return None
    elif tp is float:
        number = _as_number(value)
        if number is not None:
            try:
                return float(number)
            except OverflowError:  # an int too large for a float
                pass
    elif tp is int:
        number = _as_number(value)
        if isinstance(number, int):
            return number
        # A whole number in float spelling (1e3, 1000.0) is that integer; 1.5 is refused.
        if isinstance(number, float) and number.is_integer() and abs(number) <= _EXACT_INT:
            return int(number)
        if number is not None:
            raise ConfigError(f"{path}: expected int (a whole number), got {value!r}")
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


# Keys people reach for that the schema spells otherwise: the hint for each.
SPELLED_ELSEWHERE = {
    "model.gru.attention": "; the attention of the recurrent family is model.gru.score "
    "(none: a fixed context vector, no attention)",
}


def _build(cls: type, data: Any, path: str) -> Any:
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            prefix = f"{path}." if path else ""
            hint = (
                f"; did you mean '{prefix}{close[0]}'?"
                if close
                else f"; valid keys: {', '.join(names)}"
            )
            hint = SPELLED_ELSEWHERE.get(key_path, hint)
            raise ConfigError(f"unknown config key '{key_path}'{hint}")
        kwargs[key] = _convert(value, hints[key], key_path)
    return cls(**kwargs)


def _apply_override(raw: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected section.key=value")
    dotted, text = override.split("=", 1)
    keys = dotted.strip().split(".")
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: '{key}' is not a section")
        node = child
    try:
        node[keys[-1]] = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"override {override!r}: not a YAML value: {_yaml_problem(error)}"
        ) from None


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a raw mapping (as read from YAML) plus overrides into a :class:`Config`."""
    raw = copy.deepcopy(dict(raw or {}))  # overrides must not change the caller's dict
    for override in overrides:
        _apply_override(raw, override)
    for section, keys in _RETIRED_KEYS.items():
        if isinstance(raw.get(section), dict):
            for key in keys:
                raw[section].pop(key, None)
    config = _build(Config, raw, "")
    validate(config)
    return config


# Keys added after checkpoints were first written, with the value that reproduces what the
# models of those checkpoints computed. A stored config holds every key (Config.to_dict), so
# one that lacks a key predates it; a YAML file that leaves a key out gets its default.
LEGACY_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("model", "transformer", "rfa", "denominator_floor"): "absolute",
}


def stored_config_from_dict(raw: dict[str, Any]) -> Config:
    """The :class:`Config` of a checkpoint's stored mapping, with :data:`LEGACY_DEFAULTS`
    for the keys it predates."""
    raw = copy.deepcopy(dict(raw or {}))
    for path, value in LEGACY_DEFAULTS.items():
        node: Any = raw
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(path[-1], value)
    return config_from_dict(raw)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML experiment file; the experiment name defaults to the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    raw = _read_yaml_mapping(path)
    raw.setdefault("name", path.stem)
    try:
        return config_from_dict(raw, overrides)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; anything else is one ConfigError naming it."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    nul = data.find(b"\0")
    if nul >= 0:  # binary data; UTF-16 text has them too, and both need converting
        raise ConfigError(
            f"{path}: not a text file (NUL byte at byte {nul + 1}); expected YAML in UTF-8"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[error.start]:02x}); "
            "save the config as UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = _yaml_where(error, text)
        raise ConfigError(f"{path}: not valid YAML{where}: {_yaml_problem(error)}") from None
    sections = ", ".join(f.name for f in dataclasses.fields(Config) if f.name != "name")
    if raw is None:
        raise ConfigError(f"{path}: empty; expected a mapping of sections ({sections})")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections ({sections}) at the top level, "
            f"got {type(raw).__name__}"
        )
    return raw


def _yaml_where(error: yaml.YAMLError, text: str) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return f" at line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        return f" at line {line}, column {column}"
    return ""


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's message on one line, without its excerpt of the file."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        text = error.problem + (f" ({error.context})" if error.context else "")
    elif isinstance(error, yaml.reader.ReaderError):
        text = f"character #x{error.character:04x}: {error.reason}"
    else:
        text = str(error)
    return " ".join(text.split())


# --- range checks ---------------------------------------------------------------------------


def _require(condition: bool, key: str, expected: str, value: Any) -> None:
    if not condition:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _check_choices(section: Any, key: str) -> None:
    """Literal-typed fields hold one of their values (also in dataclasses built in code)."""
    for name, hint in typing.get_type_hints(type(section)).items():
        if typing.get_origin(hint) is Literal:
            value = getattr(section, name)
            _require(
                value in typing.get_args(hint), f"{key}.{name}", f"one of {_type_name(hint)}", value
            )


def _check_int(section: Any, key: str, name: str, low: int, high: int | None = None) -> None:
    """An integer field in ``[low, high]`` (the type too: dataclasses built in code)."""
    value = getattr(section, name)
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if high is None:
        _require(valid, f"{key}.{name}", f"an integer >= {low}", value)
    else:
        _require(valid and value <= high, f"{key}.{name}", f"an integer in [{low}, {high}]", value)


def _check_positive(section: Any, key: str, *names: str) -> None:
    for name in names:
        _check_int(section, key, name, 1)


def _check_number(
    section: Any,
    key: str,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A finite number field between ``low`` and ``high`` (each bound open or closed)."""
    value = getattr(section, name)
    _check_value(value, f"{key}.{name}", low, high, low_open=low_open, high_open=high_open)


def _check_value(
    value: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    # nan and inf pass no useful range: every float setting needs a finite value.
    _require(number and math.isfinite(value), key, "a finite number", value)
    if low is None and high is None:
        return
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    if low is not None and high is not None:
        expected = (
            f"a value in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )
    elif low is not None:
        expected = f"a value {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a value {'<' if high_open else '<='} {high:g}"
    _require(above and below, key, expected, value)


def _check_probability(section: Any, key: str, *names: str) -> None:
    for name in names:
        _check_number(section, key, name, 0, 1, high_open=True)


def _check_text(section: Any, key: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _require(
            isinstance(value, str) and value.strip() != "",
            f"{key}.{name}",
            "a non-empty string",
            value,
        )


def validate(config: Config) -> None:
    """Every section's range checks, then those that span sections."""
    _require(
        isinstance(config.name, str) and config.name.strip() != "",
        "name",
        "a non-empty string (the run folder's name)",
        config.name,
    )
    config.data.validate()
    config.model.validate()
    config.training.validate()
    config.decoding.validate()
    if config.model.transformer.share_embeddings:
        _require(
            config.data.vocab.joint,
            "data.vocab.joint",
            "true when model.transformer.share_embeddings is true",
            config.data.vocab.joint,
        )
