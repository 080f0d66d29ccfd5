"""Run by ``torchrun`` in the tests: train the experiment of a YAML file like ``nmt train``,
then write what this rank ended with to ``OUT/rank{RANK}.pt``: its parameters, the example
indices it trained on, its seed and its progress, for the test to compare the ranks."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from nmt import distributed
from nmt.config import load_config
from nmt.training import Trainer


class RecordingTrainer(Trainer):
    seen: list[int] = []

    def train_step(self, step):
        for batch in step.batches:
            self.seen.extend(batch.indices.tolist())
        return super().train_step(step)


def main(config_path: str, out: str) -> None:
    trainer = RecordingTrainer(load_config(config_path))
    try:
        progress = trainer.run()
        record = {
            "model": trainer.model.state_dict(),
            "seen": trainer.seen,
            "seed": trainer.rank_seed,
            "progress": dataclasses.asdict(progress),  # plain data: loads with weights_only
        }
        torch.save(record, Path(out) / f"rank{trainer.rank}.pt")
        distributed.barrier(trainer.ranks)
    finally:
        distributed.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
