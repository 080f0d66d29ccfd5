"""What the trainer's input costs per optimiser step on the CPU: the loop that collated in
the training process before issue 12 against ``step_loader`` with no worker process (the CPU
default), over whole epochs of a prepared train split (figures: docs/benchmarks.md).

Usage: .venv/bin/python scripts/bench_loader.py [--data data/tatoeba-zh-en] [--max-tokens 3000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.loader import StepPlan, step_loader
from nmt.data.prepare import PreparedData


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/tatoeba-zh-en"))
    parser.add_argument("--max-tokens", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = PreparedData.load(args.data).encoded("train")
    sampler = TokenBatchSampler(corpus.src_lengths, corpus.tgt_lengths, args.max_tokens, seed=1)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        batches = sampler.batches(epoch)
        for indices in batches:
            collate(corpus, indices).ntokens  # noqa: B018  (what the old loop computed)
        old = (time.perf_counter() - start) / len(batches)
        plan = StepPlan(corpus, sampler)
        start = time.perf_counter()
        steps = iter(step_loader(plan, (epoch, 0)))
        for _ in range(plan.num_steps(epoch)):
            sum(batch.ntokens for batch in next(steps).batches)
        new = (time.perf_counter() - start) / plan.num_steps(epoch)
        print(
            f"epoch {epoch}: {len(batches)} steps; collate in the loop {old * 1e6:.0f} us/step, "
            f"step_loader {new * 1e6:.0f} us/step"
        )


if __name__ == "__main__":
    main()
