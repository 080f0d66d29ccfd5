"""Checkpoints: written atomically, loaded safely, self-contained.

A checkpoint is one ``torch.save`` file holding plain data only (tensors, numbers, strings,
bytes, lists and dicts), so it loads with ``weights_only=True`` and cannot run code. It
carries the model weights, the experiment config and both sentencepiece models as bytes,
so a checkpoint alone is enough to translate. Training checkpoints add the optimiser,
scheduler, scaler and random states, the step and the position in the data order.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nmt.config import Config, ConfigError, config_from_dict
from nmt.errors import CheckpointError

FORMAT = "nmt-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **payload}
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; errors name the path and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run the file's code.
        raise CheckpointError(
            f"{path} holds objects other than plain data (not an nmt checkpoint); "
            "refusing to load it, since unpickling them could run code"
        ) from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().split(". ")[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"corrupt or truncated checkpoint {path} ({reason[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an nmt checkpoint")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer nmt (format {payload['version']})")
    for key in ("config", "model", "vocab"):
        if key not in payload:
            raise CheckpointError(f"corrupt checkpoint {path}: no '{key}' entry")
    return payload


def checkpoint_config(payload: dict[str, Any], path: str | Path = "checkpoint") -> Config:
    try:
        return config_from_dict(payload["config"])
    except ConfigError as error:
        raise CheckpointError(f"{path}: stored config is invalid: {error}") from None


@dataclass
class LoadedModel:
    """A model ready to translate, with what it needs around it."""

    model: Any  # nmt.models.base.Seq2Seq, in eval mode
    config: Config
    src_vocab: Any  # nmt.data.vocab.Vocabulary
    tgt_vocab: Any
    path: Path
    step: int


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model and vocabularies stored in a checkpoint."""
    payload = load_checkpoint(path)
    model, config, src_vocab, tgt_vocab = _model_from_payload(payload, path)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        # torch's first line names only the model class; the details follow on later lines.
        details = " ".join(line.strip() for line in str(error).splitlines()[1:])
        raise CheckpointError(
            f"corrupt checkpoint {path}: its weights do not fit the model its config describes "
            f"({details[:300]})"
        ) from None
    model.to(device).eval()
    return LoadedModel(model, config, src_vocab, tgt_vocab, Path(path), int(payload.get("step", 0)))


def _model_from_payload(payload: dict[str, Any], path: str | Path) -> tuple[Any, Config, Any, Any]:
    """The untrained model a checkpoint's config describes, and its two vocabularies."""
    from nmt.data.vocab import Vocabulary
    from nmt.models import build_model

    config = checkpoint_config(payload, path)
    try:
        src_vocab = Vocabulary.from_bytes(payload["vocab"]["src"])
        tgt_vocab = Vocabulary.from_bytes(payload["vocab"]["tgt"])
    except Exception as error:
        raise CheckpointError(f"corrupt checkpoint {path}: bad vocabulary ({error})") from None
    model = build_model(config.model, src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab))
    return model, config, src_vocab, tgt_vocab


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """Element-wise mean of the model parameters; everything else comes from the newest file.

    Buffers are not averaged: a random feature projection redrawn during training belongs
    with the weights it was last used with (a fixed one is the same in every file), and
    counters are not quantities to average.
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    payloads = [load_checkpoint(p) for p in paths]
    newest = payloads[-1]
    with torch.device("meta"):  # only the names are needed: allocate nothing
        skeleton = _model_from_payload(newest, paths[-1])[0]
    # remove_duplicate=False: tied weights (embedding = output layer) appear under both names.
    parameter_names = {name for name, _ in skeleton.named_parameters(remove_duplicate=False)}
    averaged = {}
    for name, tensor in newest["model"].items():
        if name in parameter_names:
            averaged[name] = (
                sum(p["model"][name].double() for p in payloads).div(len(paths)).to(tensor.dtype)
            )
        else:
            averaged[name] = tensor
    keep = ("config", "vocab", "step", "epoch", "metrics")
    return {
        **{k: newest[k] for k in keep if k in newest},
        "model": averaged,
        "averaged_from": [str(p) for p in paths],
    }


def step_checkpoints(run_dir: Path) -> list[Path]:
    """Numbered step checkpoints of a run, oldest first."""
    return sorted(run_dir.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="run directory (runs/EXPERIMENT)")
    parser.add_argument(
        "-k",
        "--last",
        type=int,
        default=3,
        help="how many of the newest step checkpoints (default 3)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="output file (default RUN_DIR/averaged.pt)"
    )


def main(args: argparse.Namespace) -> int:
    paths = step_checkpoints(args.run_dir)[-args.last :]
    if len(paths) < args.last:
        raise CheckpointError(
            f"{args.run_dir}: asked for {args.last} step checkpoints, found {len(paths)}"
        )
    output = args.output or args.run_dir / "averaged.pt"
    save_checkpoint(output, average_checkpoints(paths))
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {output}")
    return 0
