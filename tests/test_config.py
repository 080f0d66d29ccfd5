"""Config errors name the key and the expected type; overrides reach the dataclasses."""

from pathlib import Path

import pytest

from nmt.config import (
    Config,
    ConfigError,
    DataConfig,
    DecodingConfig,
    TrainingConfig,
    config_from_dict,
    load_config,
)

CONFIGS = sorted(Path(__file__).resolve().parent.parent.glob("configs/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem
    assert config.model.type in ("gru", "transformer")


def test_defaults_and_types() -> None:
    config = config_from_dict({"training": {"lr": 1}})  # an int is a valid float
    assert isinstance(config, Config)
    assert config.training.lr == 1.0 and isinstance(config.training.lr, float)


def test_wrong_type_names_key_and_expected_type() -> None:
    with pytest.raises(ConfigError, match=r"training\.max_tokens: expected int, got str"):
        config_from_dict({"training": {"max_tokens": "many"}})
    with pytest.raises(ConfigError, match=r"training\.deterministic: expected bool"):
        config_from_dict({"training": {"deterministic": 1}})
    with pytest.raises(ConfigError, match=r"model\.gru\.score: expected one of 'none'"):
        config_from_dict({"model": {"gru": {"score": "luong"}}})
    with pytest.raises(ConfigError, match=r"data\.dev: expected str or null"):
        config_from_dict({"data": {"dev": 3}})


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'training\.warmup'; did you mean 'training\.warmup_steps'",
    ):
        config_from_dict({"training": {"warmup": 100}})
    with pytest.raises(ConfigError, match=r"unknown config key 'modle'; did you mean 'model'"):
        config_from_dict({"modle": {}})


def test_section_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match=r"training: expected a mapping"):
        config_from_dict({"training": [1, 2]})


def test_range_checks() -> None:
    with pytest.raises(
        ConfigError, match=r"model\.transformer\.heads: expected a divisor of d_model=256"
    ):
        config_from_dict({"model": {"transformer": {"heads": 3}}})
    with pytest.raises(ConfigError, match=r"decoding\.n_best"):
        config_from_dict({"decoding": {"beam_size": 2, "n_best": 3}})


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("training:\n  lr: 0.001\n", encoding="utf-8")
    config = load_config(
        path,
        [
            "training.lr=0.5",
            "model.transformer.d_model=128",
            "data.dev=null",
            "training.betas=[0.8, 0.9]",
        ],
    )
    assert config.training.lr == 0.5
    assert config.model.transformer.d_model == 128
    assert config.data.dev is None
    assert config.training.betas == [0.8, 0.9]
    assert config.name == "exp"
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(path, ["training.lr"])


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("training:\n  lr: fast\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"wrong.yaml: training\.lr: expected float"):
        load_config(wrong)


# --- numbers as people write them ------------------------------------------------------------

FLOAT_SPELLINGS = [
    ("5e-4", 5e-4),
    ("1E-3", 1e-3),
    ("1e+30", 1e30),
    ("2.5e2", 250.0),  # PyYAML: a string (no sign in the exponent)
    ("1.0e-3", 1e-3),  # PyYAML: already a float
    (".5", 0.5),
    ("5.", 5.0),
    ("-0.5", -0.5),
    ("3", 3.0),  # an int is a valid float
]


@pytest.mark.parametrize(("text", "value"), FLOAT_SPELLINGS)
def test_float_spellings_in_files_and_overrides(tmp_path: Path, text: str, value: float) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(f"decoding:\n  length_penalty: {text}\ntraining:\n  betas: [{text}, 0.98]\n")
    if 0 <= value < 1:
        config = load_config(path)
        assert config.training.betas == [value, 0.98]
    path.write_text(f"decoding:\n  length_penalty: {text}\n", encoding="utf-8")
    from_file = load_config(path).decoding.length_penalty
    from_override = config_from_dict({}, [f"decoding.length_penalty={text}"])
    assert from_file == from_override.decoding.length_penalty == value
    assert isinstance(from_file, float)


def test_every_float_field_takes_exponents_without_a_dot() -> None:
    overrides = [
        "training.lr=5e-4",
        "training.eps=1E-9",
        "training.min_lr=1e-6",
        "training.weight_decay=1e-2",
        "training.max_minutes=3e1",
        "training.clip_norm=1e0",
        "training.betas=[9e-1, 98e-2]",
        "model.transformer.dropout=1e-1",
        "model.transformer.rfa.sigma=2e0",
        "data.max_length_ratio=9e0",
        "data.vocab.zh_character_coverage=9995e-4",
        "decoding.max_len_a=15e-1",
    ]
    config = config_from_dict({}, overrides)
    t = config.training
    assert (t.lr, t.eps, t.min_lr, t.weight_decay, t.max_minutes) == (5e-4, 1e-9, 1e-6, 0.01, 30.0)
    assert t.betas == [0.9, 0.98] and config.decoding.max_len_a == 1.5
    assert config.data.vocab.zh_character_coverage == pytest.approx(0.9995)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1000", 1000), ("1e3", 1000), ("2.5E4", 25000), ("1000.0", 1000), ("1_000", 1000)],
)
def test_int_fields_take_whole_numbers_in_any_spelling(text: str, value: int) -> None:
    # A decision: 1e3 is how people write step counts, and it is exactly 1000.
    config = config_from_dict({}, [f"training.max_steps={text}"])
    assert config.training.max_steps == value and isinstance(config.training.max_steps, int)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "training.max_steps=1.5",
            r"training\.max_steps: expected int \(a whole number\), got 1\.5",
        ),
        ("training.max_steps=1e30", r"expected int \(a whole number\), got '1e30'"),  # inexact
        ("training.max_steps=many", r"training\.max_steps: expected int, got str 'many'"),
        ("training.max_steps=true", r"training\.max_steps: expected int, got bool"),
        ("training.lr=fast", r"training\.lr: expected float, got str 'fast'"),
        ("training.lr=1e", r"training\.lr: expected float, got str '1e'"),
        ("training.lr=e5", r"training\.lr: expected float, got str 'e5'"),
        ("training.lr=inf", r"training\.lr: expected float, got str 'inf'"),  # YAML says .inf
        ("training.lr=true", r"training\.lr: expected float, got bool"),
        ("training.lr=[1]", r"training\.lr: expected float, got list"),
    ],
)
def test_strings_that_are_not_numbers_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({}, [override])


@pytest.mark.parametrize(
    "override",
    [
        "training.lr=.nan",
        "training.lr=.inf",
        "training.lr=1e400",  # overflows to inf
        "training.max_minutes=.inf",
        "training.clip_norm=.inf",
        "training.betas=[.nan, 0.9]",
        "training.label_smoothing=.nan",
        "data.max_length_ratio=.inf",
        "data.vocab.zh_character_coverage=.nan",
        "model.transformer.dropout=.nan",
        "model.transformer.rfa.sigma=.inf",
        "decoding.length_penalty=-.inf",
        "decoding.max_len_a=.inf",
    ],
)
def test_nan_and_inf_are_refused_where_a_finite_number_is_needed(override: str) -> None:
    key = override.split("=")[0] + ("[0]" if "betas" in override else "")
    with pytest.raises(ConfigError) as error:
        config_from_dict({}, [override])
    assert str(error.value).startswith(f"{key}: expected a finite number, got")


# --- ranges, each checked by its section ---------------------------------------------------

RANGES = [
    ("training.warmup_steps=-1", "training.warmup_steps: expected an integer >= 0, got -1"),
    ("training.max_minutes=-1", "training.max_minutes: expected a value >= 0, got -1.0"),
    ("training.max_steps=-1", "training.max_steps: expected an integer >= 0"),
    ("training.max_epochs=-1", "training.max_epochs: expected an integer >= 0"),
    ("training.keep_checkpoints=-1", "training.keep_checkpoints: expected an integer >= 0"),
    ("training.threads=-2", "training.threads: expected an integer >= 0"),
    ("training.valid_every=0", "training.valid_every: expected an integer >= 1"),
    ("training.log_every=0", "training.log_every: expected an integer >= 1"),
    ("training.valid_max_sentences=-1", "training.valid_max_sentences: expected an integer >= 0"),
    ("training.early_stopping_patience=-1", "training.early_stopping_patience: expected an integer >= 0"),
    ("training.eps=0", "training.eps: expected a value > 0, got 0.0"),
    ("training.weight_decay=-1e-2", "training.weight_decay: expected a value >= 0"),
    ("training.betas=[1.0, 0.98]", "training.betas[0]: expected a value in [0, 1), got 1.0"),
    ("training.betas=[-0.1, 0.98]", "training.betas[0]: expected a value in [0, 1)"),
    ("training.betas=[0.9]", "training.betas: expected a list of two values in [0, 1)"),
    ("training.plateau_factor=0", "training.plateau_factor: expected a value in (0, 1)"),
    ("training.plateau_factor=1", "training.plateau_factor: expected a value in (0, 1)"),
    ("training.plateau_patience=0", "training.plateau_patience: expected an integer >= 1"),
    ("training.min_lr=-1e-6", "training.min_lr: expected a value >= 0"),
    ("training.clip_norm=-1", "training.clip_norm: expected a value >= 0"),
    ("training.accumulate=0", "training.accumulate: expected an integer >= 1"),
    ("training.max_tokens=0", "training.max_tokens: expected an integer >= 1"),
    ("training.lr=0", "training.lr: expected a value > 0"),
    ("training.label_smoothing=1", "training.label_smoothing: expected a value in [0, 1)"),
    ("training.seed=-1", "training.seed: expected an integer in [0, "),
    ("training.device=gpu", "training.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    ("training.device=cuda:x", "training.device: expected 'auto'"),
    ("training.device=CPU", "training.device: expected 'auto'"),
    ("training.output_dir=''", "training.output_dir: expected a non-empty string"),
    ("data.split_seed=-1", "data.split_seed: expected an integer in [0, 4294967295]"),
    ("data.split_seed=4294967296", "data.split_seed: expected an integer in [0, 4294967295]"),
    ("data.max_chars=0", "data.max_chars: expected an integer >= 1"),
    ("data.threads=0", "data.threads: expected an integer >= 1"),
    ("data.test_size=-1", "data.test_size: expected an integer >= 0"),
    ("data.max_length_ratio=0.5", "data.max_length_ratio: expected a value >= 1"),
    ("data.src_lang=''", "data.src_lang: expected a language code such as 'zh' or 'en'"),
    ("data.tgt_lang=en/x", "data.tgt_lang: expected a language code"),
    ("data.tgt_lang=zh", "data.tgt_lang: expected a language other than src_lang"),
    ("data.corpus=''", "data.corpus: expected a non-empty string"),
    ("data.dev=' '", "data.dev: expected a non-empty string"),
    ("data.vocab.joint_size=0", "data.vocab.joint_size: expected an integer >= 8"),
    ("data.vocab.input_sentence_size=0", "data.vocab.input_sentence_size: expected an integer >= 1"),
    ("data.vocab.other_character_coverage=1.1", "data.vocab.other_character_coverage: expected a value in [0.98, 1]"),
    ("model.gru.hidden_size=0", "model.gru.hidden_size: expected an integer >= 1"),
    ("model.transformer.attention_dropout=-0.1", "model.transformer.attention_dropout: expected a value in [0, 1)"),
    ("model.transformer.rfa.sigma=0", "model.transformer.rfa.sigma: expected a value > 0"),
    ("decoding.max_len_b=-1", "decoding.max_len_b: expected an integer >= 0"),
    ("decoding.valid_beam_size=0", "decoding.valid_beam_size: expected an integer >= 1"),
    ("name=''", "name: expected a non-empty string"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), RANGES, ids=[r[0] for r in RANGES])
def test_range_errors_name_the_key_and_the_range(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict({}, [override])
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_spellings(device: str) -> None:
    assert config_from_dict({}, [f"training.device={device}"]).training.device == device


def test_sections_built_in_code_check_their_own_ranges() -> None:
    with pytest.raises(ConfigError, match=r"^training\.warmup_steps: expected an integer >= 0"):
        TrainingConfig(warmup_steps=-1).validate()
    with pytest.raises(ConfigError, match=r"^run\.max_tokens: expected an integer >= 1, got 1\.5"):
        TrainingConfig(max_tokens=1.5).validate("run")  # a float where an int belongs
    with pytest.raises(ConfigError, match=r"^training\.lr: expected a finite number, got nan"):
        TrainingConfig(lr=float("nan")).validate()
    with pytest.raises(ConfigError, match=r"^decoding\.beam_size"):
        DecodingConfig(beam_size=0).validate()
    with pytest.raises(ConfigError, match=r"^data\.source: expected one of"):
        DataConfig(source="ftp").validate()
    TrainingConfig().validate()
    DataConfig().validate()


def test_a_retired_key_from_older_checkpoints_is_accepted() -> None:
    # Checkpoints written before data.source store data.download; they must still load.
    stored = Config().to_dict()
    stored["data"]["download"] = True
    del stored["data"]["source"]
    assert config_from_dict(stored).data.source == "auto"


def test_a_download_is_prepared_beside_the_canonical_folder() -> None:
    assert DataConfig().prepared_dir == Path("data/tatoeba-zh-en")
    assert DataConfig(source="download").prepared_dir == Path("data/tatoeba-zh-en-upstream")


# --- config files that are not YAML mappings -------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"",
            r"exp\.yaml: empty; expected a mapping of sections \(data, model, training, decoding\)",
        ),
        (b"- a\n", r"exp\.yaml: expected a mapping of sections .* at the top level, got list"),
        (b"training:\n  lr: [1\n", r"exp\.yaml: not valid YAML at line 3, column 1: expected ','"),
        (b"a: b: c\n", r"exp\.yaml: not valid YAML at line 1, column 5: mapping values"),
        ("name: caf\xe9\n".encode("latin-1"), r"exp\.yaml:1: not valid UTF-8 \(byte 0xe9\)"),
        (b"\x00\x01\x02", r"exp\.yaml: not a text file \(NUL byte at byte 1\)"),
    ],
)
def test_broken_config_files_give_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_a_config_with_a_bom_and_windows_line_ends_loads(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"\xef\xbb\xbftraining:\r\n  lr: 5e-4\r\n")
    assert load_config(path).training.lr == 5e-4


def test_a_key_spelled_otherwise_gets_a_hint_to_the_schema_s_spelling() -> None:
    with pytest.raises(
        ConfigError, match=r"model\.gru\.attention'; the attention .* model\.gru\.score"
    ):
        config_from_dict({}, ["model.gru.attention=none"])
