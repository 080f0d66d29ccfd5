"""Learning-rate schedules and the label-smoothed loss against hand computations."""

import math

import pytest
import torch

from nmt.schedules import LearningRateSchedule, label_smoothed_nll


def test_inverse_sqrt_warmup_then_decay() -> None:
    schedule = LearningRateSchedule("inverse_sqrt", base_lr=1e-3, warmup_steps=100)
    assert schedule.lr_at(1) == pytest.approx(1e-5)
    assert schedule.lr_at(50) == pytest.approx(5e-4)
    assert schedule.lr_at(100) == pytest.approx(1e-3)  # the peak
    assert schedule.lr_at(400) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    assert schedule.lr_at(10_000) == pytest.approx(1e-4)


def test_constant_with_warmup() -> None:
    schedule = LearningRateSchedule("constant", base_lr=2e-3, warmup_steps=10)
    assert schedule.lr_at(5) == pytest.approx(1e-3)
    assert schedule.lr_at(10) == schedule.lr_at(5000) == pytest.approx(2e-3)


def test_plateau_decays_after_patience_and_resumes() -> None:
    schedule = LearningRateSchedule("plateau", base_lr=1e-3, factor=0.5, patience=2, min_lr=2e-4)
    for score in (10.0, 12.0, 11.0):  # improvement, improvement, one bad validation
        schedule.observe(score)
    assert schedule.lr_at(500) == pytest.approx(1e-3)
    schedule.observe(11.5)  # second bad validation in a row: halve
    assert schedule.lr_at(500) == pytest.approx(5e-4)
    restored = LearningRateSchedule("plateau", base_lr=1e-3, factor=0.5, patience=2, min_lr=2e-4)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(500) == pytest.approx(5e-4)
    for _ in range(10):
        schedule.observe(0.0)
    assert schedule.lr_at(500) == pytest.approx(2e-4)  # floored at min_lr


def test_label_smoothing_matches_hand_computation() -> None:
    logits = torch.tensor([[[2.0, 0.5, -1.0, 0.0]], [[0.1, 0.2, 0.3, 0.4]]])  # (2, 1, V=4)
    targets = torch.tensor([[2], [0]])  # the second row is padding (pad_id 0)
    smoothing = 0.1
    log_probs = torch.log_softmax(logits[0, 0], dim=-1)
    expected = (1 - smoothing) * -log_probs[2] + smoothing * -log_probs.mean()
    loss = label_smoothed_nll(logits, targets, smoothing, pad_id=0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = label_smoothed_nll(logits, targets, 0.0, pad_id=0)
    assert plain.item() == pytest.approx(-log_probs[2].item(), rel=1e-6)
