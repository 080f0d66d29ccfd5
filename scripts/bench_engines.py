"""Decoding speed and BLEU of our search vs CTranslate2 float32 and int8 (figures go to
docs/benchmarks.md, ``## Inference engines``).

Exports the checkpoint with ``nmt export`` (float32 and int8, into ``--export-dir``), then
runs ``nmt evaluate`` once per engine and beam size, each in its own process (one engine's
thread pool never competes with another's), on the same sentences with the same batch size,
and prints one table: sentences/s (translation alone, as ``nmt evaluate`` times it), the
speed-up over our search at the same beam, BLEU and its difference to ours.

Usage (the trained default model, the canonical test split; about 2 minutes on 2 cores):
    .venv/bin/python scripts/bench_engines.py --checkpoint runs/tatoeba_zh_en_transformer/best.pt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {  # name -> (what --checkpoint points at, the export's quantization or None)
    "torch": (None, None),
    "ctranslate2-float32": ("float32", "float32"),
    "ctranslate2-int8": ("int8", "int8"),
}


def nmt(*arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "nmt", *arguments], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        sys.exit(f"nmt {' '.join(arguments)} failed:\n{result.stderr[-2000:]}")
    return result


def export(checkpoint: Path, directory: Path, quantization: str) -> tuple[float, float]:
    """(seconds, MiB of model.bin) of one export."""
    start = time.perf_counter()
    nmt("export", "--checkpoint", str(checkpoint), "--quantization", quantization, str(directory))
    return time.perf_counter() - start, (directory / "model.bin").stat().st_size / 2**20


def evaluate(model: Path, args: argparse.Namespace, beam: int, report: Path) -> dict:
    nmt(
        "evaluate", "--checkpoint", str(model), "--src", str(args.src), "--ref", str(args.ref),
        "--beam", str(beam), "--batch-size", str(args.batch_size), "--report", str(report),
    )  # fmt: skip
    return json.loads(report.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--src", type=Path, default=Path("data/tatoeba-zh-en/test.zh"))
    parser.add_argument("--ref", type=Path, default=Path("data/tatoeba-zh-en/test.en"))
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--export-dir", type=Path, help="keep the exports here (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as temporary:
        exports = args.export_dir or Path(temporary)
        models, notes = {}, []
        for name in args.variants:
            subdirectory, quantization = VARIANTS[name]
            if quantization is None:
                models[name] = args.checkpoint
                continue
            models[name] = exports / subdirectory
            seconds, size = export(args.checkpoint, models[name], quantization)
            notes.append(f"{name}: exported in {seconds:.1f} s, model.bin {size:.1f} MiB")
        rows = []
        for beam in args.beams:
            for name, model in models.items():
                report = evaluate(model, args, beam, Path(temporary) / f"{name}-{beam}.json")
                rows.append({**report, "engine": name, "beam": beam})
                print(f"{name} beam {beam}: {report['sentences_per_second']} sentences/s, "
                      f"BLEU {report['bleu']:.2f}", file=sys.stderr, flush=True)  # fmt: skip

    first = rows[0]
    print(f"{first['sentences']} sentences of {args.src}, batches of {args.batch_size}, "
          f"{first['threads']} threads, {first['device']}")  # fmt: skip
    for note in notes:
        print(f"- {note}")
    baseline = args.variants[0]  # each beam's first row
    print(f"\n| engine | beam | sentences/s | vs {baseline} | BLEU | vs {baseline} | chrF |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        base = next(r for r in rows if r["beam"] == row["beam"])
        speedup = row["sentences_per_second"] / base["sentences_per_second"]
        delta = row["bleu"] - base["bleu"]
        print(f"| {row['engine']} | {row['beam']} | {row['sentences_per_second']:.1f} | "
              f"{speedup:.2f}x | {row['bleu']:.2f} | {delta:+.2f} | {row['chrf']:.2f} |")  # fmt: skip
    print(f"\nBLEU signature: {first['bleu_signature']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
