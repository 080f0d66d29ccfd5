"""Softmax versus Random Feature Attention in translation: quality and decoding speed under one
training budget (figures go to docs/rfa.md, ``## Translation quality``).

Variants of the Transformer of ``--config`` (the Tatoeba zh->en default):

- ``softmax``: the config as it is (its run is the default ``make train`` run);
- ``enc``, ``dec``, ``cross``: RFA in one attention type (encoder self-attention, decoder
  self-attention, cross-attention), softmax in the other two;
- ``all``: RFA in all three.

Each variant trains with ``nmt train --config CONFIG name=NAME OVERRIDES``, one run at a time
(concurrent runs would share the CPU cores and so the budget), for the config's wall-clock
budget ``training.max_minutes`` unless ``--minutes`` says otherwise. A variant whose run
directory already holds a ``best.pt`` is not trained again (delete the directory to retrain),
so the script can be stopped and restarted.

Then each ``best.pt`` translates the test split with beam 5 and greedy in batches of 64 (the
code of ``nmt evaluate``), one model after the other in this process, and a Markdown table is
printed: steps reached in the budget, median training tokens/s, peak memory (from the run's
``done`` event, where there is one), dev BLEU at the common validation steps (quality per
update, apart from speed), test BLEU/chrF and decoding speed.

Usage:
    .venv/bin/python scripts/rfa_study.py [--config configs/tatoeba_zh_en_transformer.yaml]
        [--variants softmax enc dec cross all] [--minutes 28] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from nmt.config import load_config
from nmt.evaluation import evaluate
from nmt.translator import Translator, read_input_lines

ATTENTION_TYPES = {
    "enc": "encoder_attention",
    "dec": "decoder_attention",
    "cross": "cross_attention",
}
VARIANTS = {
    "softmax": [],
    **{name: [key] for name, key in ATTENTION_TYPES.items()},
    "all": list(ATTENTION_TYPES.values()),
}


def run_name(base: str, variant: str) -> str:
    return base if variant == "softmax" else f"{base}_rfa_{variant}"


# The RFA defaults when this study was run (docs/rfa.md); the current ones are every_step
# and relative (scripts/attention_study.py runs the paper's setting).
STUDY_RFA = [
    "model.transformer.rfa.redraw=fixed",
    "model.transformer.rfa.denominator_floor=absolute",
]


def overrides(variant: str) -> list[str]:
    switched = [f"model.transformer.{key}=rfa" for key in VARIANTS[variant]]
    return [*switched, *STUDY_RFA] if switched else switched


def train(config: Path, name: str, variant: str, minutes: float | None) -> None:
    command = [sys.executable, "-m", "nmt", "train", "--config", str(config), f"name={name}"]
    command += overrides(variant)
    if minutes is not None:
        command.append(f"training.max_minutes={minutes}")
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def training_summary(run_dir: Path) -> dict:
    """Steps, minutes, tokens/s and dev BLEU per validation step, from ``metrics.jsonl``."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    validations = [e for e in events if e["event"] == "validation"]
    done = [e for e in events if e["event"] == "done"]
    return {
        "steps": validations[-1]["step"],
        "minutes": validations[-1]["minutes"],
        "tokens_per_second": statistics.median(
            e["tokens_per_s"] for e in events if e["event"] == "train"
        ),
        "peak_memory_mb": done[-1]["peak_memory_mb"] if done else None,
        "dev_bleu": {e["step"]: e["dev_bleu"] for e in validations},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", type=Path, default=Path("configs/tatoeba_zh_en_transformer.yaml")
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--minutes", type=float, help="training budget (default: the config's)")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    parser.add_argument("--src", type=Path, default=Path("data/tatoeba-zh-en/test.zh"))
    parser.add_argument("--ref", type=Path, default=Path("data/tatoeba-zh-en/test.en"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    config = load_config(args.config)
    runs = {v: Path(config.training.output_dir) / run_name(config.name, v) for v in args.variants}
    for variant, run_dir in runs.items():
        if not args.report_only and not (run_dir / "best.pt").is_file():
            train(args.config, run_dir.name, variant, args.minutes)
    missing = [str(run_dir) for run_dir in runs.values() if not (run_dir / "best.pt").is_file()]
    if missing:
        sys.exit(f"no best.pt in {', '.join(missing)}: train these variants first")

    torch.set_num_threads(args.threads)
    sources, references = read_input_lines(args.src), read_input_lines(args.ref)
    rows = []
    for variant, run_dir in runs.items():
        summary = training_summary(run_dir)
        translator = Translator.from_checkpoint(run_dir / "best.pt")
        decoded = {
            beam: evaluate(translator, sources, references, translator.settings(beam_size=beam))[1]
            for beam in (5, 1)
        }
        rows.append((variant, run_dir, summary, decoded))
        print(
            f"{variant}: {summary['steps']} steps, test BLEU {decoded[5]['bleu']:.2f}", flush=True
        )

    common_steps = sorted(set.intersection(*(set(row[2]["dev_bleu"]) for row in rows)))
    print(f"\n{len(sources)} test sentences of {args.src}; torch {torch.__version__}, ", end="")
    print(f"{torch.get_num_threads()} threads\n")
    dev_columns = " | ".join(f"dev BLEU @{step}" for step in common_steps)
    print(
        "| attention | run | steps | train tok/s | peak MB | "
        f"{dev_columns} | test BLEU | chrF | beam 5 sent/s | greedy BLEU | greedy sent/s |"
    )
    print("| --- | --- |" + " ---: |" * (len(common_steps) + 8))
    for variant, run_dir, summary, decoded in rows:
        dev = " | ".join(f"{summary['dev_bleu'][step]:.2f}" for step in common_steps)
        peak = summary["peak_memory_mb"]
        print(
            f"| {variant} | {run_dir.name} | {summary['steps']:,} | "
            f"{summary['tokens_per_second']:,.0f} | {'n/a' if peak is None else f'{peak:,}'} | "
            f"{dev} | {decoded[5]['bleu']:.2f} | {decoded[5]['chrf']:.2f} | "
            f"{decoded[5]['sentences_per_second']:.1f} | {decoded[1]['bleu']:.2f} | "
            f"{decoded[1]['sentences_per_second']:.1f} |"
        )
    print(f"\nBLEU signature: {rows[0][3][5]['bleu_signature']}")


if __name__ == "__main__":
    main()
