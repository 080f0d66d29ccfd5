"""The trainer end to end on a tiny corpus: checkpoints, exact resume, signals, NaN, DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from synthetic_corpus import tiny_experiment

import nmt.training
from nmt.checkpoint import load_checkpoint, load_model
from nmt.cli import main as cli_main
from nmt.config import config_from_dict
from nmt.training import TrainingError, train

REPO = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, model_type: str = "transformer", **training: object) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        yaml.safe_dump(tiny_experiment(tmp_path, model_type, **training)), encoding="utf-8"
    )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "tiny"


def test_cli_train_writes_checkpoints_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config_path = write_config(tmp_path, max_steps=6)
    assert cli_main(["train", "--config", str(config_path)]) == 0
    out = capsys.readouterr().err
    assert "done: 6 steps" in out and "Best dev BLEU" in out
    for name in ("last.pt", "best.pt", "step-4.pt", "step-6.pt", "metrics.jsonl"):
        assert (run_dir(tmp_path) / name).exists(), name
    assert load_checkpoint(run_dir(tmp_path) / "last.pt").step == 6
    # The checkpoint alone is enough to rebuild a translating model.
    loaded = load_model(run_dir(tmp_path) / "best.pt")
    assert loaded.config.name == "tiny" and len(loaded.tgt_vocab) > 4

    assert cli_main(["train", "--config", str(config_path), "training.max_steps=9"]) == 0
    out = capsys.readouterr().err
    assert "resumed from" in out and "at step 6" in out and "done: 9 steps" in out
    assert load_checkpoint(run_dir(tmp_path) / "last.pt").step == 9
    events = [
        json.loads(line) for line in (run_dir(tmp_path) / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in events if e["event"] == "validation"] == [4, 6, 8, 9]
    done = [e for e in events if e["event"] == "done"]  # one summary per run, resumed or not
    assert [(e["step"], e["stop_reason"]) for e in done] == [(6, "max_steps=6"), (9, "max_steps=9")]
    assert all(e["peak_memory_mb"] > 0 and e["best_step"] in (4, 6, 8, 9) for e in done)

    # Limits count across resumes: the finished run says so, and how to extend it.
    assert cli_main(["train", "--config", str(config_path), "training.max_steps=9"]) == 0
    out = capsys.readouterr().err
    assert "nothing to train" in out and "already reached max_steps=9 at step 9" in out
    assert "training.max_steps=18" in out and "done:" not in out


def test_a_run_stopped_by_max_minutes_is_finished_until_the_limit_is_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config_path = write_config(tmp_path, max_steps=0, valid_every=1000)
    minutes = ["training.max_minutes=0.002"]  # 0.12 s of training
    assert cli_main(["train", "--config", str(config_path), *minutes]) == 0
    out = capsys.readouterr().err
    assert "(stopped by max_minutes=0.002" in out
    first = load_checkpoint(run_dir(tmp_path) / "last.pt")
    assert first.training["progress"]["seconds"] >= 0.12

    assert cli_main(["train", "--config", str(config_path), *minutes]) == 0
    assert "nothing to train" in capsys.readouterr().err
    assert load_checkpoint(run_dir(tmp_path) / "last.pt").step == first.step

    raised = ["training.max_minutes=0.004"]
    assert cli_main(["train", "--config", str(config_path), *raised]) == 0
    out = capsys.readouterr().err
    assert f"resumed from {run_dir(tmp_path) / 'last.pt'} at step {first.step}" in out
    assert "(stopped by max_minutes=0.004" in out
    assert load_checkpoint(run_dir(tmp_path) / "last.pt").step > first.step


# RFA in decoder self-attention, its projection redrawn every 4 training forward passes: a
# resumed run must redraw at the same steps, with the same random numbers.
RFA_REDRAW = {"decoder_attention": "rfa", "rfa": {"num_features": 8, "redraw": 4}}


@pytest.mark.parametrize("model_type", ["transformer", "gru", "transformer_rfa"])
def test_resume_equals_uninterrupted_run(tmp_path: Path, model_type: str) -> None:
    """2N steps in one go == N steps, stop, resume, N more: identical parameters."""

    def experiment(directory: Path, max_steps: int):
        raw = tiny_experiment(
            directory, model_type.split("_")[0], max_steps=max_steps, max_tokens=600
        )
        if model_type == "transformer_rfa":
            raw["model"]["transformer"].update(RFA_REDRAW)
        return config_from_dict(raw)

    train(experiment(tmp_path / "a", max_steps=20))
    # 20 steps cross an epoch boundary (14 batches an epoch) and the resume point (9).
    train(experiment(tmp_path / "b", max_steps=9))
    progress = train(experiment(tmp_path / "b", max_steps=20))
    assert progress.step == 20 and progress.epoch >= 1
    a = load_checkpoint(run_dir(tmp_path / "a") / "last.pt").model
    b = load_checkpoint(run_dir(tmp_path / "b") / "last.pt").model
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_from_dict(tiny_experiment(tmp_path, max_steps=50))
    real_loss = nmt.training.label_smoothed_nll
    calls = {"n": 0}

    def loss_that_explodes(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 5 else loss

    monkeypatch.setattr(nmt.training, "label_smoothed_nll", loss_that_explodes)
    with pytest.raises(TrainingError, match="loss became nan at step"):
        train(config)
    assert load_checkpoint(run_dir(tmp_path) / "last.pt").step == 4  # the validation at step 4


def test_sigterm_saves_and_exits_cleanly(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, max_steps=100_000, valid_every=100_000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", "--config", str(config_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    metrics = run_dir(tmp_path) / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline:  # wait until steps are being taken
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "SIGTERM received" in err
    step = load_checkpoint(run_dir(tmp_path) / "last.pt").step
    assert step >= 2


def test_two_process_gloo_run(tmp_path: Path) -> None:
    """torchrun with 2 CPU processes: each rank takes every other batch; one epoch."""
    config_path = write_config(tmp_path, max_epochs=1, valid_every=1000)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "-m",
            "nmt",
            "train",
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = config_from_dict(tiny_experiment(tmp_path / "plan"))
    from nmt.data.batching import TokenBatchSampler
    from nmt.data.prepare import prepare_data

    corpus = prepare_data(config.data).encoded("train")
    batches = TokenBatchSampler(
        corpus.src_lengths,
        corpus.tgt_lengths,
        config.training.max_tokens,
        seed=config.training.seed,
    ).batches(0)
    checkpoint = load_checkpoint(run_dir(tmp_path) / "last.pt")
    assert checkpoint.step == len(batches) // 2
    assert result.stderr.count("done:") == 1  # only rank 0 logs
