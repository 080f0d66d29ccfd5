"""The GPU path, skipped without CUDA (``scripts/gpu_check.sh`` runs these on a GPU machine):
the model properties of ``test_models.py`` on the device, incremental decoding equal to
teacher forcing under bf16 autocast, search on the GPU equal to search on the CPU, and a
bf16 training run with everything a GPU turns on (pinned loader workers, fused Adam, MFU,
GPU memory) whose resumption stays close to the uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_models
import torch
from synthetic_corpus import tiny_experiment
from tiny_checkpoint import PAIRS, tiny_checkpoint
from tiny_models import VARIANTS, random_batch, teacher_forced_log_probs, tiny_model

from nmt.checkpoint import load_checkpoint
from nmt.config import config_from_dict
from nmt.training import train
from nmt.translator import Translator

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def float32_matmuls():
    """The CPU tests' tolerances are for float32 products; nmt turns TF32 on for speed."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_model_properties_hold_on_the_gpu(variant: str) -> None:
    """Padding, causality and incremental == teacher forcing (after reorders), with every
    tensor the CPU tests make created on the GPU instead."""
    with torch.device(CUDA):
        test_models.test_padding_does_not_change_any_sentence(variant)
        test_models.test_incremental_decoding_matches_teacher_forcing_also_after_reorder(variant)
        test_models.test_attention_weights_sum_to_one_over_real_source_and_are_zero_on_padding(
            variant
        )
        if VARIANTS[variant][0] == "transformer":
            test_models.test_transformer_decoder_is_causal(variant)


@pytest.mark.parametrize("variant", ["gru-additive", "transformer-pre", "rfa-all"])
def test_incremental_decoding_matches_teacher_forcing_in_bf16(variant: str) -> None:
    with torch.device(CUDA):
        model = tiny_model(variant).eval()
        batch = random_batch(src_lengths=(7, 4, 2), tgt_lengths=(6, 6, 6))
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        expected = teacher_forced_log_probs(model, batch).float()
        state = model.init_state(model.encode(batch["src"], batch["src_lengths"]))
        for t in range(batch["tgt_in"].size(1)):
            log_probs, state = model.decode_step(batch["tgt_in"][:, t], state)
            # bf16 keeps 8 bits of mantissa: about 2 decimal digits of a log-probability.
            torch.testing.assert_close(log_probs.float(), expected[:, t], atol=0.05, rtol=0.02)


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_search_on_the_gpu_equals_search_on_the_cpu(model_type: str, beam_size: int) -> None:
    sources = [source for source, _ in PAIRS]
    translators = [
        Translator.from_checkpoint(tiny_checkpoint(model_type), d) for d in ("cpu", "cuda")
    ]
    torch.set_float32_matmul_precision("highest")  # loading onto CUDA turned TF32 on
    settings = translators[0].settings(beam_size=beam_size, batch_size=4)
    cpu, gpu = (translator.translate(sources, settings) for translator in translators)
    assert [t.text for t in gpu] == [t.text for t in cpu]
    for a, b in zip(cpu, gpu, strict=True):
        assert b.candidates[0].score == pytest.approx(a.candidates[0].score, abs=1e-3)


def cuda_run(directory: Path, max_steps: int, seed: int = 3) -> dict[str, torch.Tensor]:
    raw = tiny_experiment(directory, max_steps=max_steps, max_tokens=600, seed=seed)
    raw["training"] |= {"device": "cuda", "precision": "bf16"}
    train(config_from_dict(raw))
    return load_checkpoint(directory / "runs" / "tiny" / "last.pt").model


def test_bf16_training_resumes_close_to_the_uninterrupted_run(tmp_path: Path) -> None:
    """Exact equality is not to be had (bf16, and GPU kernels that add in any order), so the
    resumed run must stay much closer to the uninterrupted one than either is to where the
    training started: a resume that lost the optimiser, the data position or the random
    state would not."""
    uninterrupted = cuda_run(tmp_path / "a", max_steps=20)
    cuda_run(tmp_path / "b", max_steps=9)
    resumed = cuda_run(tmp_path / "b", max_steps=20)
    started = cuda_run(tmp_path / "c", max_steps=1)
    for name, tensor in uninterrupted.items():
        if not tensor.is_floating_point() or name.endswith("positions"):
            continue
        moved = (tensor - started[name]).abs().mean()
        assert (resumed[name] - tensor).abs().mean() <= 0.05 * moved + 1e-6, name

    events = [
        json.loads(line) for line in (tmp_path / "b" / "runs" / "tiny" / "metrics.jsonl").open()
    ]
    done = [e for e in events if e["event"] == "done"]
    assert all(e["peak_gpu_memory_mb"] > 0 for e in done)
    if "H100" in torch.cuda.get_device_name() or "H200" in torch.cuda.get_device_name():
        assert all("mfu" in e for e in events if e["event"] == "train")
