"""Benchmark of the data path at scale: `nmt prepare` on a big synthetic corpus, then the
training data loader alone (no model), each in a child process whose peak RSS is its own.

    # 1. the corpus (scripts/make_synthetic_corpus.py): gzip TSV, 1% malformed lines, 2%
    #    wrong-language pairs, and given dev/test sets
    python scripts/make_synthetic_corpus.py --pairs 20000000 --out /tmp/scale20m/train \\
        --tsv --gzip --held-out 2000
    # 2. prepare it: wall time, peak RSS, per-stage times (the summary), disk use
    python scripts/bench_corpus_scale.py prepare --corpus /tmp/scale20m --work /tmp/scale20m-work
    # 3. the loader on the prepared data: epoch plan time, target tokens/s, peak RSS
    python scripts/bench_corpus_scale.py loader --work /tmp/scale20m-work

``prepare`` runs `nmt prepare --force` with the corpus as ``data.train`` (``data.on_error=skip``,
``data.language_id=true`` unless ``--no-language-id``; ``--split`` splits dev/test off instead
of using the given ones). ``loader`` builds the epoch's batches with ``TokenBatchSampler`` and
gathers ``--batches`` of them with ``collate``, on one thread, as a training process does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_child(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{output}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, output


def disk_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


def prepare(args: argparse.Namespace) -> None:
    train = next(args.corpus.glob("train.tsv*"), None) or "train"
    output = args.work / "prepared"
    command = [sys.executable, "-m", "nmt", "prepare", "--force"]
    command += [
        f"data.corpus={args.corpus.resolve()}",
        f"data.train={Path(train).name}",
        f"data.output_dir={output}",
        "data.on_error=skip",
        f"data.language_id={str(not args.no_language_id).lower()}",
        f"data.threads={args.threads}",
    ]
    if args.split:
        command += ["data.dev=null", "data.test=null"]
    seconds, peak_mb, summary = run_child(command)
    print(summary)
    print(
        f"| prepare | {seconds:.0f} s | {peak_mb:,.0f} MB peak RSS | output {disk_mb(output):,.0f} MB"
        f" | input {disk_mb(args.corpus):,.0f} MB |"
    )


def fake_ids(args: argparse.Namespace) -> None:
    """Write WORK/prepared/train.ids of random token ids, lengths like a real corpus's, in
    the layout of nmt/data/encoded.py: the loader alone, without preparing a corpus."""
    import numpy as np

    from nmt.data.encoded import SHARD_PAIRS, CorpusWriter

    rng = np.random.default_rng(0)
    writer = CorpusWriter(args.work / "prepared" / "train.ids", np.uint16)
    for start in range(0, args.pairs, SHARD_PAIRS):
        pairs = min(SHARD_PAIRS, args.pairs - start)
        lengths = {side: rng.integers(3, 40, pairs) for side in ("src", "tgt")}
        ids = {
            side: rng.integers(4, 32000, int(lengths[side].sum()), dtype=np.uint16)
            for side in lengths
        }
        writer.add_shard(lengths["src"], ids["src"], lengths["tgt"], ids["tgt"])
    writer.close()
    print(f"{args.pairs:,} pairs, {disk_mb(args.work / 'prepared'):,.0f} MB")


def loader(args: argparse.Namespace) -> None:
    """Run :func:`measure_loader` in a child, so that its peak RSS is the loader's."""
    command = [sys.executable, __file__, "measure-loader", "--work", str(args.work)]
    command += ["--batches", str(args.batches), "--max-tokens", str(args.max_tokens)]
    seconds, peak_mb, output = run_child(command)
    figures = json.loads(output.strip().splitlines()[-1])
    print(
        f"| loader | {figures['pairs']:,} pairs | epoch plan {figures['plan_seconds']:.1f} s, "
        f"{figures['batches']:,} batches | {figures['tokens_per_second']:,.0f} target tokens/s "
        f"| peak RSS {peak_mb:,.0f} MB (at the end: anonymous {figures['rss_anon_mb']:,.0f} MB, "
        f"file pages {figures['rss_file_mb']:,.0f} MB) |"
    )


def measure_loader(args: argparse.Namespace) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from nmt.data.batching import EncodedCorpus, TokenBatchSampler, collate
    from nmt.data.prepare import PreparedData

    torch.set_num_threads(1)
    if (args.work / "prepared" / "manifest.json").is_file():
        corpus = PreparedData.load(args.work / "prepared").encoded("train")
    else:  # fake-ids: the encoded folder alone
        corpus = EncodedCorpus.load(args.work / "prepared" / "train.ids")
    start = time.perf_counter()
    sampler = TokenBatchSampler(corpus.src_lengths, corpus.tgt_lengths, args.max_tokens, seed=1)
    batches = sampler.batches(0)
    plan_seconds = time.perf_counter() - start
    start, tokens = time.perf_counter(), 0
    for indices in batches[: args.batches]:
        tokens += collate(corpus, indices).ntokens
    seconds = time.perf_counter() - start
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(
        json.dumps(
            {
                "pairs": len(corpus),
                "batches": len(batches),
                "plan_seconds": plan_seconds,
                "tokens_per_second": tokens / seconds,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_anon_mb": int(status["RssAnon"].split()[0]) / 1024,
                "rss_file_mb": int(status["RssFile"].split()[0]) / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser("prepare", help="nmt prepare on a synthetic corpus")
    prepare_parser.add_argument(
        "--corpus", type=Path, required=True, help="make_synthetic_corpus's folder"
    )
    prepare_parser.add_argument(
        "--work", type=Path, required=True, help="outputs go to WORK/prepared"
    )
    prepare_parser.add_argument("--no-language-id", action="store_true")
    prepare_parser.add_argument("--split", action="store_true", help="split dev/test off")
    prepare_parser.add_argument("--threads", type=int, default=2)
    fake_parser = commands.add_parser("fake-ids", help="random encoded ids, for the loader alone")
    fake_parser.add_argument("--pairs", type=int, required=True)
    fake_parser.add_argument("--work", type=Path, required=True)
    for name in ("loader", "measure-loader"):
        sub = commands.add_parser(name, help="the data loader alone on WORK/prepared")
        sub.add_argument("--work", type=Path, required=True)
        sub.add_argument("--batches", type=int, default=3000)
        sub.add_argument("--max-tokens", type=int, default=4096)
    args = parser.parse_args()
    commands = {"prepare": prepare, "fake-ids": fake_ids, "loader": loader}
    commands["measure-loader"] = measure_loader
    commands[args.command](args)


if __name__ == "__main__":
    main()
