"""The prepared GPU check runs end to end on the CPU with tiny sizes, so that it cannot rot
before a GPU machine runs it; and ``make`` picks the GPU-sized config only with a GPU."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from synthetic_corpus import tiny_experiment

REPO = Path(__file__).resolve().parent.parent
STAGES = ["environment", "cuda_tests", "prepare", "resume_after_kill", "torchrun", "train"]
STAGES += ["evaluate", "throughput"]


def test_gpu_check_runs_every_stage_on_the_cpu(tmp_path: Path) -> None:
    raw = tiny_experiment(tmp_path)
    del raw["training"]["deterministic"]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    command = ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--tiny"]
    command += ["--config", str(config), "--out", str(out), "--work", str(tmp_path / "runs")]
    command += ["--budget", "400"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    failed = {name: s.get("error") for name, s in report["stages"].items() if not s["ok"]}
    assert result.returncode == 0 and not failed, (failed, result.stdout[-3000:], result.stderr)

    assert list(report["stages"]) == STAGES
    pieces = sorted(path.name for path in out.glob("[0-9][0-9]-*.json"))
    assert pieces == ["00-setup.json"] + [f"{i:02d}-{s}.json" for i, s in enumerate(STAGES, 1)]
    stages = report["stages"]
    assert stages["cuda_tests"]["skipped"] == stages["cuda_tests"]["tests"] > 0  # no GPU here
    resumed = stages["resume_after_kill"]
    # Killed after its first validation or a later one (a fast run races the kill), it resumes
    # from a validated checkpoint no later than the kill and still ends at step 20.
    assert 5 <= resumed["killed_after_validation_at_step"] <= 20
    assert 0 < resumed["resumed_at_step"] <= resumed["killed_after_validation_at_step"]
    assert f"at step {resumed['resumed_at_step']}" in resumed["resumed"]
    assert resumed["final_step"] == 20
    assert stages["torchrun"]["validations"][-1] == stages["torchrun"]["final_step"]
    assert stages["train"]["steps"] == 30 and stages["train"]["tokens_per_s_median"] > 0
    for name in ("test_beam5", "test_greedy", "dev_beam5"):
        assert stages["evaluate"][name]["sentences"] == 20
    assert stages["throughput"]["models"]  # tokens/s of the experiment's model
    summary = report["summary"]
    assert summary["all_ok"] and summary["beam5_sentences_per_s"] > 0
    assert summary["train_mfu"] is None  # a CPU has no known peak


def choose(*arguments: str, cuda: bool, monkeypatch: pytest.MonkeyPatch, capsys) -> tuple:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    script = ["choose_config.py", "--cpu", "cpu.yaml", "--gpu", "gpu.yaml", *arguments]
    monkeypatch.setattr(sys, "argv", script)
    runpy.run_path(str(REPO / "scripts" / "choose_config.py"), run_name="__main__")
    captured = capsys.readouterr()
    return captured.out.strip(), captured.err.strip()


def test_make_picks_the_gpu_config_only_with_a_gpu_and_says_why(monkeypatch, capsys) -> None:
    out, err = choose(cuda=True, monkeypatch=monkeypatch, capsys=capsys)
    assert out == "gpu.yaml"
    assert (
        err
        == "make: torch sees a CUDA GPU (2 x NVIDIA H200): using gpu.yaml (CONFIG=... chooses another)"
    )
    out, err = choose(cuda=False, monkeypatch=monkeypatch, capsys=capsys)
    assert out == "cpu.yaml" and "torch sees no CUDA GPU" in err
    assert choose("mine.yaml", cuda=True, monkeypatch=monkeypatch, capsys=capsys) == (
        "mine.yaml",
        "",
    )
