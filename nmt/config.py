"""Experiment configuration: YAML in, typed dataclasses out, validated once at the edge.

Every experiment is one YAML file with the sections ``data``, ``model``, ``training`` and
``decoding``. :func:`load_config` reads it, applies ``section.key=value`` overrides from the
command line and turns the result into a :class:`Config`. Errors name the key path and the
expected type; an unknown key is refused with the closest valid key suggested. Code below the
edge takes plain arguments, never the raw dictionary.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from nmt.errors import NmtError


class ConfigError(NmtError, ValueError):
    """A configuration file or override that does not fit the schema."""


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
            _require(getattr(self, name) >= 8, f"{key}.{name}", "a size >= 8", getattr(self, name))
        for name in ("zh_character_coverage", "other_character_coverage"):
            value = getattr(self, name)
            _require(0.9 <= value <= 1.0, f"{key}.{name}", "a value in [0.9, 1]", value)
        _check_positive(self, key, "input_sentence_size")


@dataclass
class DataConfig:
    """Where the corpus comes from and how it is cleaned, split and encoded."""

    corpus: str = "tatoeba-zh-en"  # folder inside the mirror ($DATA_MIRROR), or absolute
    src_lang: str = "zh"
    tgt_lang: str = "en"
    # Inside the corpus folder (or absolute): an aligned prefix NAME (NAME.zh / NAME.en) or a
    # Tatoeba TSV file. With dev/test set to null, they are split off train by ``split_seed``.
    train: str = "train"
    dev: str | None = "dev"
    test: str | None = "test"
    dev_size: int = 1000
    test_size: int = 2000
    split_seed: int = 20261121
    output_dir: str = "data/tatoeba-zh-en"
    traditional_to_simplified: bool = True
    max_chars: int = 200  # cleaning: longer sentences (either side) are dropped
    max_length_ratio: float = 9.0  # cleaning: character-length ratio between the sides
    download: bool = True  # no mirror: fetch a known corpus from its public address
    verify_checksums: bool = True  # a known corpus's files must match their pinned sha256
    threads: int = 2  # sentencepiece training and encoding
    vocab: VocabConfig = field(default_factory=VocabConfig)

    def validate(self, key: str = "data") -> None:
        """Range checks; run by ``prepare_data`` for configs built in code too."""
        _require(
            self.src_lang != self.tgt_lang,
            f"{key}.tgt_lang",
            "a language other than src_lang",
            self.tgt_lang,
        )
        for name in ("dev_size", "test_size"):
            _require(getattr(self, name) >= 0, f"{key}.{name}", "a size >= 0", getattr(self, name))
        _check_positive(self, key, "max_chars", "threads")
        _require(
            self.max_length_ratio >= 1,
            f"{key}.max_length_ratio",
            "a ratio >= 1",
            self.max_length_ratio,
        )
        self.vocab.validate(f"{key}.vocab")


@dataclass
class RFAConfig:
    """Random feature attention (nmt/models/rfa.py, docs/rfa.md) for the attention types
    set to ``rfa``."""

    num_features: int = 64  # random vectors per head; the feature dimension is twice that
    feature_map: Literal["trig", "positive"] = "trig"
    sigma: float = 1.0  # initial scale of l2-normalised queries and keys
    learn_sigma: bool = True
    # fixed: one projection per model (saved in checkpoints); every_step, or an integer N:
    # a new one every N training forward passes.
    redraw: Literal["fixed", "every_step"] | int = "fixed"
    gated: bool = False  # the paper's gated recurrence, for decoder self-attention only

    def validate(self, key: str = "model.transformer.rfa") -> None:
        _check_choices(self, key)
        _check_positive(self, key, "num_features")
        _require(self.sigma > 0, f"{key}.sigma", "a positive number", self.sigma)
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


@dataclass
class GRUConfig:
    embed_dim: int = 256
    hidden_size: int = 256  # per direction in the encoder; the decoder has 2x this
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.2
    score: Literal["additive", "dot", "scaled_dot", "general"] = "additive"
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
        _require(self.max_len_a >= 0, f"{key}.max_len_a", "a value >= 0", self.max_len_a)
        _require(self.max_len_b >= 0, f"{key}.max_len_b", "an integer >= 0", self.max_len_b)
        _require(
            math.isfinite(self.length_penalty),
            f"{key}.length_penalty",
            "a finite number",
            self.length_penalty,
        )

    @classmethod
    def from_config(
        cls, config: DecodingConfig, key: str = "decoding", **options: Any
    ) -> DecodingSettings:
        """The config's settings with ``options`` (field names) replacing them where not None.

        Asking (in ``options``) for more candidates than the config's beam widens the beam.
        """
        given = {name: value for name, value in options.items() if value is not None}
        values = {
            name: given.get(name, getattr(config, name))
            for name in ("beam_size", "n_best", "length_penalty", "max_len_a", "max_len_b")
        }
        values["batch_size"] = given.get("batch_size", config.batch_size)
        if "n_best" in given and "beam_size" not in given:
            values["beam_size"] = max(values["beam_size"], values["n_best"])
        return cls(**values, return_attention=given.get("return_attention", False), key=key)

    def replace(self, **changes: Any) -> DecodingSettings:
        return dataclasses.replace(self, **changes)


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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


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
    node[keys[-1]] = yaml.safe_load(text) if text.strip() else None


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a raw mapping (as read from YAML) plus overrides into a :class:`Config`."""
    raw = copy.deepcopy(dict(raw or {}))  # overrides must not change the caller's dict
    for override in overrides:
        _apply_override(raw, override)
    config = _build(Config, raw, "")
    validate(config)
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML experiment file; the experiment name defaults to the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    try:
        return config_from_dict(raw, overrides)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


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


def _check_positive(section: Any, key: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _require(value >= 1, f"{key}.{name}", "an integer >= 1", value)


def _check_probability(section: Any, key: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _require(0 <= value < 1, f"{key}.{name}", "a value in [0, 1)", value)


def validate(config: Config) -> None:
    """Range checks that types alone cannot express."""
    config.data.validate()
    t, m, d = config.training, config.model, config.decoding
    _require(t.max_tokens > 0, "training.max_tokens", "a positive number of tokens", t.max_tokens)
    _require(t.accumulate >= 1, "training.accumulate", "an integer >= 1", t.accumulate)
    _require(t.lr > 0, "training.lr", "a positive learning rate", t.lr)
    _require(len(t.betas) == 2, "training.betas", "a list of two floats", t.betas)
    _require(
        0 <= t.label_smoothing < 1,
        "training.label_smoothing",
        "a value in [0, 1)",
        t.label_smoothing,
    )
    _require(t.valid_every > 0, "training.valid_every", "a positive number of steps", t.valid_every)
    _require(
        t.data_workers == "auto" or t.data_workers >= 0,
        "training.data_workers",
        "'auto' or a number of processes >= 0",
        t.data_workers,
    )
    _require(t.peak_tflops >= 0, "training.peak_tflops", "a number >= 0", t.peak_tflops)
    d.validate()
    m.validate()
    if m.transformer.share_embeddings:
        _require(
            config.data.vocab.joint,
            "data.vocab.joint",
            "true when model.transformer.share_embeddings is true",
            config.data.vocab.joint,
        )
