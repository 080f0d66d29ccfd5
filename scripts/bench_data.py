"""Benchmark of data preparation: wall time and peak memory of `nmt prepare`.

Each run is `nmt prepare` in a child process (so its peak RSS is its own):

1. the canonical Tatoeba zh-en setup (the mirror's train/dev/test), vocabularies included,
   built afresh (``--force``), then once more to time a cache hit;
2. a synthetic corpus of ``--pairs`` pairs (scripts/make_synthetic_corpus.py), with dev and
   test split off by seed: the streaming test, whose peak memory must stay under 2 GB.

    python scripts/bench_data.py                  # both runs, 2,000,000 synthetic pairs
    python scripts/bench_data.py --pairs 0        # the canonical run only

It also times Traditional->Simplified conversion of the mirror's Chinese sentences, with
the fast path of nmt/data/normalize.py and with OpenCC alone. Outputs go to a temporary
folder (``--workdir`` keeps them); the figures are printed as a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tatoeba_zh_en_transformer.yaml"


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{output}")
    return seconds, usage.ru_maxrss / 1024, output  # ru_maxrss is in KB on Linux


def prepare_command(output_dir: Path, *overrides: str, force: bool = True) -> list[str]:
    command = [sys.executable, "-m", "nmt", "prepare", "--config", str(CONFIG)]
    return command + (["--force"] if force else []) + [f"data.output_dir={output_dir}", *overrides]


def bench_traditional_to_simplified() -> None:
    """The fast path of ``to_simplified`` against OpenCC on every sentence, same results."""
    import opencc

    from nmt.data.normalize import may_change_to_simplified, to_simplified
    from nmt.data.readers import read_lines
    from nmt.data.sources import find_mirror

    mirror = find_mirror()
    folder = mirror / "tatoeba-zh-en" if mirror else None
    if folder is None or not folder.is_dir():
        print("no mirror: Traditional->Simplified timing skipped")
        return
    tsv_chinese = [line.split("\t")[1] for line in read_lines(folder / "cmn-eng.txt") if line]
    sentences = read_lines(folder / "train.zh") + tsv_chinese
    needing = sum(may_change_to_simplified(sentence) for sentence in sentences)
    start = time.perf_counter()
    fast = [to_simplified(sentence) for sentence in sentences]
    fast_seconds = time.perf_counter() - start
    converter = opencc.OpenCC("t2s")
    start = time.perf_counter()
    plain = [converter.convert(sentence) for sentence in sentences]
    plain_seconds = time.perf_counter() - start
    print(
        f"Traditional->Simplified on {len(sentences):,} sentences (train.zh + cmn-eng.txt): "
        f"{needing} need the converter; fast path {fast_seconds:.2f} s, OpenCC alone "
        f"{plain_seconds:.2f} s; identical results: {fast == plain}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2_000_000, help="synthetic pairs; 0: skip")
    parser.add_argument("--workdir", type=Path, help="keep outputs here (default: a temp dir)")
    args = parser.parse_args()
    bench_traditional_to_simplified()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as temporary:
        workdir = args.workdir or Path(temporary)
        rows = []

        seconds, peak_mb, summary = run_measured(prepare_command(workdir / "tatoeba"))
        print(summary)
        rows.append(("Tatoeba zh-en, canonical config, vocabularies included", seconds, peak_mb))
        seconds, peak_mb, _ = run_measured(prepare_command(workdir / "tatoeba", force=False))
        rows.append(("Tatoeba zh-en again: cache reused", seconds, peak_mb))

        if args.pairs:
            corpus = workdir / "synthetic"
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    str(REPO / "scripts" / "make_synthetic_corpus.py"),
                    "--pairs",
                    str(args.pairs),
                    "--out",
                    str(corpus / "train"),
                ],
                check=True,
            )
            print(f"synthetic corpus written in {time.perf_counter() - start:.0f} s")
            seconds, peak_mb, summary = run_measured(
                prepare_command(
                    workdir / "synthetic-prepared",
                    f"data.corpus={corpus}",
                    "data.dev=null",
                    "data.test=null",
                )
            )
            print(summary)
            rows.append((f"synthetic, {args.pairs:,} pairs, dev/test split off", seconds, peak_mb))

    print("| corpus | wall time | peak RSS |")
    print("| --- | ---: | ---: |")
    for name, seconds, peak_mb in rows:
        print(f"| {name} | {seconds:.1f} s | {peak_mb:,.0f} MB |")


if __name__ == "__main__":
    main()
