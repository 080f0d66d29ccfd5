"""Learning-rate schedules and the label-smoothed loss: small pieces the trainer composes."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class LearningRateSchedule:
    """Learning rate as a function of the optimiser step (counted from 1).

    ``inverse_sqrt``: linear warm-up to ``base_lr`` over ``warmup_steps``, then decay with
    ``1/sqrt(step)`` (Vaswani et al. 2017, with the peak given directly instead of through
    ``d_model``). ``constant``: the same warm-up, then flat. ``plateau``: warm-up, then flat
    until :meth:`observe` sees ``patience`` validations in a row without a better score;
    each time that happens the rate is multiplied by ``factor`` (never below ``min_lr``).
    """

    def __init__(
        self,
        kind: str,
        base_lr: float,
        warmup_steps: int = 0,
        factor: float = 0.5,
        patience: int = 2,
        min_lr: float = 0.0,
    ) -> None:
        if kind not in ("inverse_sqrt", "constant", "plateau"):
            raise ValueError(f"unknown schedule {kind!r}")
        self.kind = kind
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        # plateau bookkeeping (part of the resumable state)
        self.scale = 1.0
        self.best_score = -math.inf
        self.bad_validations = 0

    def lr_at(self, step: int) -> float:
        step = max(step, 1)
        warmup = self.warmup_steps
        if warmup and step < warmup:
            return self.base_lr * step / warmup
        if self.kind == "inverse_sqrt":
            return self.base_lr * math.sqrt(max(warmup, 1) / step)
        return max(self.base_lr * self.scale, self.min_lr)

    def observe(self, score: float) -> None:
        """Tell a plateau schedule the latest validation score (higher is better)."""
        if self.kind != "plateau":
            return
        if score > self.best_score:
            self.best_score, self.bad_validations = score, 0
            return
        self.bad_validations += 1
        if self.bad_validations >= self.patience:
            self.scale *= self.factor
            self.bad_validations = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "best_score": self.best_score,
            "bad_validations": self.bad_validations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.best_score = float(state["best_score"])
        self.bad_validations = int(state["bad_validations"])


def label_smoothed_nll(logits: Tensor, targets: Tensor, smoothing: float, pad_id: int) -> Tensor:
    """Summed label-smoothed cross-entropy over non-padding targets.

    The smoothed target puts ``1 - smoothing`` on the reference token and spreads
    ``smoothing`` uniformly over the whole vocabulary (Szegedy et al. 2016), i.e. the loss is
    ``(1 - smoothing) * nll + smoothing * mean_v(-log p_v)``. The sum (not the mean) lets the
    trainer normalise by the number of target tokens across accumulated batches.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=smoothing,
        reduction="sum",
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
