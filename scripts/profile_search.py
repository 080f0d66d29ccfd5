"""Where beam and greedy search spend their time: torch.profiler over one batch of a
default-size model (random weights), top operators by self CPU time, and the share of
``aten::cat`` (the growing key/value caches). Figures: docs/benchmarks.md, Decoding.

Usage: .venv/bin/python scripts/profile_search.py [--model transformer] [--batch 64] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from nmt.config import DecodingSettings, ModelConfig
from nmt.decoding import search
from nmt.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="transformer", choices=["transformer", "gru"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--source-length", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(type=args.model), 6000, 5886).eval()
    src = torch.randint(4, 6000, (args.batch, args.source_length))
    src_lengths = torch.full((args.batch,), args.source_length)
    for beam in (5, 1):
        settings = DecodingSettings(beam_size=beam, batch_size=args.batch)
        with torch.no_grad():
            search(model, src, src_lengths, settings)  # warm-up
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                search(model, src, src_lengths, settings)
        events = profiler.key_averages()
        total = sum(event.self_cpu_time_total for event in events)
        for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
            print(f"beam {beam}: {event.key:50s} {100 * event.self_cpu_time_total / total:5.1f} %")
        cat = sum(event.self_cpu_time_total for event in events if event.key == "aten::cat")
        print(f"beam {beam}: aten::cat {100 * cat / total:.1f} % of the self CPU time\n")


if __name__ == "__main__":
    main()
