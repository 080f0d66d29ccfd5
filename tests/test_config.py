"""Config errors name the key and the expected type; overrides reach the dataclasses."""

from pathlib import Path

import pytest

from nmt.config import Config, ConfigError, config_from_dict, load_config

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
