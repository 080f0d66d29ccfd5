"""Checkpoints: atomic writes, safe loads with clear errors, weight averaging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tiny_checkpoint import tiny_vocabularies

from nmt.checkpoint import (
    Checkpoint,
    average_checkpoints,
    from_payload,
    load_checkpoint,
    load_model,
    save_checkpoint,
    to_payload,
)
from nmt.cli import main as cli_main
from nmt.config import config_from_dict
from nmt.errors import CheckpointError
from nmt.models import build_model
from nmt.models.rfa import RandomFeatureAttention


def checkpoint(value: float, step: int, training: dict | None = None) -> Checkpoint:
    zh_vocab, en_vocab = tiny_vocabularies()
    model = {"w": torch.full((2, 3), value), "count": torch.tensor(step)}
    config = config_from_dict({"name": "x"})
    return Checkpoint(config, model, zh_vocab, en_vocab, step=step, training=training)


def test_save_is_atomic_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run" / "last.pt"
    training = {"progress": {"step": 1}, "random": {"torch": torch.get_rng_state()}}
    save_checkpoint(path, checkpoint(1.0, 1, training))
    loaded = load_checkpoint(path)
    assert loaded.step == 1 and loaded.config.name == "x"
    assert loaded.tgt_vocab.to_bytes() == tiny_vocabularies()[1].to_bytes()
    torch.testing.assert_close(loaded.model["w"], torch.ones(2, 3))
    assert loaded.training["progress"] == {"step": 1}
    # The file's entries are the ones the format has always had: training state at the top.
    raw = torch.load(path, weights_only=True)
    assert {"format", "version", "config", "model", "vocab", "step", "progress"} <= set(raw)
    assert to_payload(from_payload(raw)).keys() == raw.keys()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    # A crash while writing leaves the previous checkpoint intact and no temporary file.
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, checkpoint(2.0, 2))
    assert load_checkpoint(path).step == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_missing_corrupt_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, checkpoint(1.0, 1))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated checkpoint .*truncated.pt"):
        load_checkpoint(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        load_checkpoint(empty)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(1)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt is not an nmt checkpoint"):
        load_checkpoint(foreign)
    code = tmp_path / "code.pt"
    torch.save({"format": "nmt-checkpoint", "hook": Path("x")}, code)  # not plain data
    with pytest.raises(CheckpointError, match="refusing to load it"):
        load_checkpoint(code)


def test_average_of_last_k(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Parameters are averaged; buffers (an RFA projection redrawn during training, its call
    counter) come from the newest checkpoint, where they belong with the last weights."""
    zh_vocab, en_vocab = tiny_vocabularies()
    transformer = {"d_model": 16, "heads": 2, "ff_size": 32, "encoder_layers": 1}
    transformer |= {"decoder_layers": 1, "decoder_attention": "rfa"}
    transformer |= {"rfa": {"num_features": 8, "redraw": "every_step"}}
    config = config_from_dict({"name": "avg", "model": {"transformer": transformer}})
    model = build_model(config.model, len(zh_vocab), len(en_vocab))
    cores = [m for m in model.modules() if isinstance(m, RandomFeatureAttention)]
    assert cores
    for step, value in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0)):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(value)
        for core in cores:
            core.redraw_projection()
            core.train_calls.fill_(step)
        state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        written = Checkpoint(config, state, zh_vocab, en_vocab, step=step, training={"x": 1})
        save_checkpoint(tmp_path / f"step-{step}.pt", written)
    newest = load_checkpoint(tmp_path / "step-4.pt").model
    parameter_names = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    buffer_names = set(newest) - parameter_names
    assert any(name.endswith("projection") for name in buffer_names)

    average = average_checkpoints([tmp_path / "step-3.pt", tmp_path / "step-4.pt"])
    assert average.training is None and average.step == 4  # for translating, not resuming
    averaged = average.model
    for name in parameter_names:
        torch.testing.assert_close(averaged[name], torch.full_like(newest[name], 5.0))
    for name in buffer_names:
        assert torch.equal(averaged[name], newest[name]), name

    assert cli_main(["average", str(tmp_path), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "step-2.pt, step-3.pt, step-4.pt" in out
    loaded = load_model(tmp_path / "averaged.pt")  # translates like any checkpoint
    for name, tensor in loaded.model.state_dict().items():
        expected = torch.full_like(tensor, 4.0) if name in parameter_names else newest[name]
        torch.testing.assert_close(tensor, expected, msg=name)
    assert cli_main(["average", str(tmp_path), "-k", "9"]) == 2
    assert "asked for 9 step checkpoints, found 4" in capsys.readouterr().err
    assert cli_main(["average", str(tmp_path), "-k", "0"]) == 2  # not "every checkpoint"
    assert "-k 0: expected a number of checkpoints >= 1" in capsys.readouterr().err


def test_configs_stored_before_new_keys_build_the_model_they_did(tmp_path: Path) -> None:
    """Checkpoints store every key (so a later default change cannot reach them); a stored
    config lacking a key added since builds what it built before: a GRU with sinusoidal
    positions, and the absolute RFA denominator floor of the time."""
    zh_vocab, en_vocab = tiny_vocabularies()
    section = {"decoder_attention": "rfa", "d_model": 16, "heads": 2, "ff_size": 16}
    config = config_from_dict({"model": {"transformer": section}})
    stored = to_payload(Checkpoint(config, {}, zh_vocab, en_vocab))["config"]
    assert stored["model"]["transformer"]["rfa"]["redraw"] == "every_step"  # explicit
    for section_name, key in [("gru", "cell"), ("transformer", "positions")]:
        del stored["model"][section_name][key]
    del stored["model"]["transformer"]["rfa"]["denominator_floor"]
    model = build_model(config.model, len(zh_vocab), len(en_vocab))
    path = tmp_path / "old.pt"
    payload = to_payload(Checkpoint(config, model.state_dict(), zh_vocab, en_vocab))
    torch.save({**payload, "config": stored}, path)
    loaded = load_checkpoint(path).config.model
    assert (loaded.gru.cell, loaded.transformer.positions) == ("gru", "sinusoidal")
    assert loaded.transformer.rfa.denominator_floor == "absolute"
    core = load_model(path).model.decoder_layers[0].self_attention.core
    assert isinstance(core, RandomFeatureAttention) and not core.relative_floor
    # A YAML file that leaves the key out gets the default.
    assert config.model.transformer.rfa.denominator_floor == "relative"
