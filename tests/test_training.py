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
from nmt.training import TrainingError, restore_random_states, restore_scaler, train

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
    # Only last.pt carries what resuming needs; the others are weights for translating.
    assert load_checkpoint(run_dir(tmp_path) / "last.pt").training is not None
    for name in ("best.pt", "step-4.pt", "step-6.pt"):
        assert load_checkpoint(run_dir(tmp_path) / name).training is None, name
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


def test_random_states_restore_from_what_load_checkpoint_returns(tmp_path: Path) -> None:
    """Resuming on a GPU failed when the loader moved the saved states there: torch takes
    random states only as CPU byte tensors."""
    train(config_from_dict(tiny_experiment(tmp_path, max_steps=2)))
    states = load_checkpoint(run_dir(tmp_path) / "last.pt").training["random"]
    assert states["torch"].device.type == "cpu" and states["torch"].dtype == torch.uint8
    torch.manual_seed(12345)
    restore_random_states(states)
    assert torch.equal(torch.get_rng_state(), states["torch"])


def test_cuda_random_states_are_saved_and_restored_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_states = [torch.full((16,), i, dtype=torch.uint8) for i in range(2)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed on fewer GPUs
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: gpu_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    states = nmt.training.random_states()
    assert states["cuda"] is gpu_states
    restore_random_states(states)
    assert len(restored) == 1 and [s.device.type for s in restored[0]] == ["cpu"]
    assert torch.equal(restored[0][0], gpu_states[0])


def test_an_fp32_run_resumes_with_fp16() -> None:
    """A disabled scaler (fp32, bf16) saves an empty state, which an enabled one refuses."""
    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    restore_scaler(scaler, saved)
    assert scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()
    fp16 = torch.amp.GradScaler("cpu", init_scale=8.0)
    restore_scaler(scaler, fp16.state_dict())
    assert scaler.get_scale() == 8.0


def test_precision_off_cuda_is_announced_and_compile_wraps_the_training_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    compiled, real_compile = [], torch.compile

    def compile_without_inductor(module, **options):
        compiled.append(options)
        return real_compile(module, backend="eager", **options)  # no C++ toolchain needed

    monkeypatch.setattr(nmt.training.torch, "compile", compile_without_inductor)
    raw = tiny_experiment(tmp_path, max_steps=3, precision="bf16", compile=True)
    train(config_from_dict(raw))
    err = capsys.readouterr().err
    assert "training.precision=bf16 applies on CUDA only: fp32 on cpu" in err
    assert "compiled" in err and compiled == [{"dynamic": True}]
    # The checkpoint holds the model's own names, not the compiled wrapper's.
    model = load_checkpoint(run_dir(tmp_path) / "last.pt").model
    assert not any(name.startswith("_orig_mod") for name in model)


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
    with pytest.raises(TrainingError, match="loss became nan in steps? "):
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


def torchrun(*arguments: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone`` (a free port) on CPU processes; fails with their output."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(processes), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_two_processes_train_like_one_with_accumulation_and_stop_together(tmp_path: Path) -> None:
    """2 ranks x 1 batch per step == 1 process x 2 batches per step: same batches, same
    loss normalisation, so the same parameters, identical on both ranks although each saw
    other batches. The run ends on a validation step with early stopping on (ranks that
    disagreed about the history would wait for each other forever there)."""
    no_dropout = {"dropout": 0.0}
    training = {"max_steps": 6, "valid_every": 3, "early_stopping_patience": 1, "log_every": 3}
    raw = tiny_experiment(tmp_path / "ddp", **training)
    raw["model"]["transformer"].update(no_dropout)
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = torchrun(str(REPO / "tests" / "ddp_worker.py"), str(config_path), str(tmp_path))
    assert result.stderr.count("done:") == 1  # only rank 0 logs
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    # They agree on everything but their clocks, the history included.
    assert {**ranks[0]["progress"], "seconds": 0} == {**ranks[1]["progress"], "seconds": 0}
    assert [e["step"] for e in ranks[0]["progress"]["history"]] == [3, 6]
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"])  # each rank its own batches
    assert ranks[0]["seed"] != ranks[1]["seed"]  # and its own dropout masks
    for name, tensor in ranks[0]["model"].items():
        torch.testing.assert_close(ranks[1]["model"][name], tensor, rtol=0, atol=0, msg=name)

    raw = tiny_experiment(tmp_path / "one", accumulate=2, **training)
    raw["model"]["transformer"].update(no_dropout)
    train(config_from_dict(raw))
    one = load_checkpoint(run_dir(tmp_path / "one") / "last.pt").model
    for name, tensor in one.items():
        torch.testing.assert_close(ranks[0]["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
