"""Checkpoints: written atomically, loaded safely, self-contained.

A checkpoint file is one ``torch.save`` of plain data only (tensors, numbers, strings, bytes,
lists and dicts), so it loads with ``weights_only=True`` and cannot run code. It carries the
model weights, the experiment config and both sentencepiece models as bytes, so a checkpoint
alone is enough to translate. Training checkpoints add what resuming needs: the optimiser,
schedule, scaler and random states and the position in the data order.

In code a checkpoint is a :class:`Checkpoint`; :func:`to_payload` and :func:`from_payload`
are the one place that maps it to and from the file's dictionary, used by the trainer,
``nmt average``, the translator and the tests alike.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nmt.config import Config, ConfigError, stored_config_from_dict
from nmt.data.vocab import Vocabulary
from nmt.errors import CheckpointError, DataError
from nmt.models import Seq2Seq, build_model

FORMAT = "nmt-checkpoint"
VERSION = 1
# Top-level entries of a training checkpoint that only resuming reads.
TRAINING_STATE = ("progress", "optimizer", "schedule", "scaler", "random")


@dataclass
class Checkpoint:
    """What a checkpoint holds."""

    config: Config
    model: dict[str, Tensor]  # the model's state_dict
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    step: int = 0  # optimiser steps taken
    epoch: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # the last validation's
    training: dict[str, Any] | None = None  # TRAINING_STATE entries; None: weights only
    averaged_from: list[str] | None = None  # nmt average: the files averaged


def to_payload(checkpoint: Checkpoint) -> dict[str, Any]:
    """The plain-data dictionary a checkpoint file holds."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": checkpoint.config.to_dict(),
        "model": checkpoint.model,
        "vocab": {"src": checkpoint.src_vocab.to_bytes(), "tgt": checkpoint.tgt_vocab.to_bytes()},
        "step": checkpoint.step,
        "epoch": checkpoint.epoch,
        "metrics": checkpoint.metrics,
        **(checkpoint.training or {}),
    }
    if checkpoint.averaged_from is not None:
        payload["averaged_from"] = checkpoint.averaged_from
    return payload


def from_payload(payload: Any, path: str | Path = "checkpoint") -> Checkpoint:
    """The :class:`Checkpoint` in a loaded file; errors name ``path`` and what is wrong."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an nmt checkpoint")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer nmt (format {payload['version']})")
    for key in ("config", "model", "vocab"):
        if key not in payload:
            raise CheckpointError(f"corrupt checkpoint {path}: no '{key}' entry")
    try:
        config = stored_config_from_dict(payload["config"])
    except ConfigError as error:
        raise CheckpointError(f"{path}: stored config is invalid: {error}") from None
    try:
        src_vocab = Vocabulary.from_bytes(payload["vocab"]["src"])
        tgt_vocab = Vocabulary.from_bytes(payload["vocab"]["tgt"])
    except (DataError, KeyError, TypeError) as error:
        raise CheckpointError(f"corrupt checkpoint {path}: bad vocabulary ({error})") from None
    training = {key: payload[key] for key in TRAINING_STATE if key in payload}
    return Checkpoint(
        config=config,
        model=payload["model"],
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        step=int(payload.get("step", 0)),
        epoch=int(payload.get("epoch", 0)),
        metrics=payload.get("metrics", {}),
        training=training or None,
        averaged_from=payload.get("averaged_from"),
    )


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = to_payload(checkpoint)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint with ``weights_only=True``, onto the CPU; errors name the path and
    the problem.

    CPU always: random-number states must be CPU tensors to be restored, and loading a
    state dict copies the weights to wherever the model lives anyway.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run the file's code.
        raise CheckpointError(
            f"{path} holds objects other than plain data (not an nmt checkpoint); "
            "refusing to load it, since unpickling them could run code"
        ) from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().split(". ")[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"corrupt or truncated checkpoint {path} ({reason[:160]})") from None
    return from_payload(payload, path)


@dataclass
class LoadedModel:
    """A model ready to translate, with what it needs around it."""

    model: Seq2Seq  # in eval mode
    config: Config
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    path: Path
    step: int


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model and vocabularies stored in a checkpoint."""
    checkpoint = load_checkpoint(path)
    model = untrained_model(checkpoint)
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as error:
        # torch's first line names only the model class; the details follow on later lines.
        details = " ".join(line.strip() for line in str(error).splitlines()[1:])
        raise CheckpointError(
            f"corrupt checkpoint {path}: its weights do not fit the model its config describes "
            f"({details[:300]})"
        ) from None
    model.to(device).eval()
    c = checkpoint
    return LoadedModel(model, c.config, c.src_vocab, c.tgt_vocab, Path(path), c.step)


def untrained_model(checkpoint: Checkpoint) -> Seq2Seq:
    """The (untrained) model that a checkpoint's config and vocabularies describe."""
    sizes = len(checkpoint.src_vocab), len(checkpoint.tgt_vocab)
    return build_model(checkpoint.config.model, *sizes)


def average_checkpoints(paths: list[Path]) -> Checkpoint:
    """Element-wise mean of the model parameters; everything else comes from the newest file.

    Buffers are not averaged: a random feature projection redrawn during training belongs
    with the weights it was last used with (a fixed one is the same in every file), and
    counters are not quantities to average. The result holds no training state: it is for
    translating, not for resuming.
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    checkpoints = [load_checkpoint(p) for p in paths]
    newest = checkpoints[-1]
    with torch.device("meta"):  # only the names are needed: allocate nothing
        skeleton = untrained_model(newest)
    # remove_duplicate=False: tied weights (embedding = output layer) appear under both names.
    parameter_names = {name for name, _ in skeleton.named_parameters(remove_duplicate=False)}
    averaged = {}
    for name, tensor in newest.model.items():
        if name in parameter_names:
            total = sum(c.model[name].double() for c in checkpoints)
            averaged[name] = total.div(len(paths)).to(tensor.dtype)
        else:
            averaged[name] = tensor
    return Checkpoint(
        config=newest.config,
        model=averaged,
        src_vocab=newest.src_vocab,
        tgt_vocab=newest.tgt_vocab,
        step=newest.step,
        epoch=newest.epoch,
        metrics=newest.metrics,
        averaged_from=[str(p) for p in paths],
    )


def step_checkpoints(run_dir: Path) -> list[Path]:
    """Numbered step checkpoints of a run, oldest first."""
    return sorted(run_dir.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
