"""Attention compared the way the literature does, under one training budget: recurrent
cells x score functions (no attention, additive, dot, scaled dot, general, cosine), the
Transformer with sinusoidal vs learned positions, and Random Feature Attention in the
paper's translation setting (tables and raw outputs: docs/attention_study.md).

Each variant is an experiment config plus overrides, trained with ``nmt train`` under the
same wall-clock budget (``--minutes``, default 10) on the canonical Tatoeba split, one seed
per ``--seeds`` entry. Runs go to ``--runs`` (default runs/attention_study/NAME-sSEED); a run
whose ``metrics.jsonl`` says it finished is reused (delete its directory to retrain), a
stopped one resumes, so the script can be stopped and restarted. ``--parallel 2`` trains
two runs at a time with ``training.threads=1`` each; ``--parallel 1`` (the default) one at
a time with ``--threads``. Every run records these settings (``study.json`` in its
directory) and a table refuses rows measured differently.

Then, in this process and one sitting, each ``best.pt`` translates the test split (the
config's beam, 5, in batches of 64: the code of ``nmt evaluate``), and the script writes:

- ``--out`` (default docs/attention_study/): per run a copy of ``metrics.jsonl``, its
  ``study.json`` and the evaluation ``report.json``; ``study.json`` with every row;
- ``--doc`` (default docs/attention_study.md): the tables, between the markers
  ``<!-- attention-study:begin -->`` and ``<!-- attention-study:end -->`` (text around them
  is kept), with the command and the settings.

Usage:
    .venv/bin/python scripts/attention_study.py [--minutes 10] [--seeds 1 2] [--parallel 2]
        [--tables main rfa] [--variants NAME ...] [--report-only]
    # a quick check of the whole pipeline on tiny models:
    .venv/bin/python scripts/attention_study.py --minutes 0.1 --runs /tmp/study/runs \\
        --out /tmp/study/raw --doc /tmp/study/study.md --max-test-sentences 20 \\
        --set model.gru.hidden_size=8 model.transformer.d_model=16 ...
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.config import load_config
from nmt.evaluation import evaluate
from nmt.translator import Translator, read_input_lines

GRU_CONFIG = Path("configs/tatoeba_zh_en_gru.yaml")
TRANSFORMER_CONFIG = Path("configs/tatoeba_zh_en_transformer.yaml")
CELLS = ("gru", "lstm", "rnn")
SCORES = ("none", "additive", "dot", "scaled_dot", "general", "cosine")
# The paper's translation setting: RFA in decoder self- and cross-attention, softmax
# encoder, random features redrawn at every training step.
PAPER_RFA = [
    "model.transformer.decoder_attention=rfa",
    "model.transformer.cross_attention=rfa",
    "model.transformer.rfa.redraw=every_step",
]
BEGIN, END = "<!-- attention-study:begin -->", "<!-- attention-study:end -->"


@dataclass(frozen=True)
class Variant:
    name: str  # run name (before the seed)
    table: str  # recurrent, transformer or rfa
    label: str  # what the row shows
    config: Path
    overrides: tuple[str, ...]


def variants() -> list[Variant]:
    rows = [
        Variant(
            f"{cell}-{score}",
            "recurrent",
            f"{cell.upper()}, {'no attention' if score == 'none' else score}",
            GRU_CONFIG,
            (f"model.gru.cell={cell}", f"model.gru.score={score}"),
        )
        for cell in CELLS
        for score in SCORES
    ]
    rows += [
        Variant(
            f"transformer-{positions}",
            "transformer",
            f"Transformer, {positions} positions",
            TRANSFORMER_CONFIG,
            (f"model.transformer.positions={positions}",),
        )
        for positions in ("sinusoidal", "learned")
    ]
    for feature_map in ("trig", "arccos"):
        for gated in (False, True):
            name = f"rfa-{feature_map}{'-gated' if gated else ''}"
            label = f"RFA {feature_map}{', gated' if gated else ''} (decoder self + cross)"
            overrides = [*PAPER_RFA, f"model.transformer.rfa.feature_map={feature_map}"]
            overrides.append(f"model.transformer.rfa.gated={str(gated).lower()}")
            rows.append(Variant(name, "rfa", label, TRANSFORMER_CONFIG, tuple(overrides)))
    return rows


# The tables: their titles and which variants are their rows. The RFA table compares with
# the softmax Transformer of the same sitting (the transformer-sinusoidal runs).
TABLES = {
    "main": "Recurrent cells x score functions, and the Transformer's positions",
    "rfa": "Random Feature Attention in the paper's translation setting (softmax encoder, RFA "
    "in decoder self- and cross-attention, random features redrawn every training step)",
}


def in_table(variant: Variant, table: str) -> bool:
    if table == "main":
        return variant.table in ("recurrent", "transformer")
    return variant.table == "rfa" or variant.name == "transformer-sinusoidal"


@dataclass(frozen=True)
class Run:
    variant: Variant
    seed: int
    directory: Path

    @property
    def name(self) -> str:
        return self.directory.name


def finished(run_dir: Path) -> bool:
    """The run's log has a ``done`` event that was not an interruption."""
    metrics = run_dir / "metrics.jsonl"
    if not (metrics.is_file() and (run_dir / "best.pt").is_file()):
        return False
    events = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return any(e["event"] == "done" and not e.get("interrupted") for e in events)


def settings_of(args: argparse.Namespace) -> dict:
    """How a run is measured: what every row of a table must share."""
    return {
        "minutes": args.minutes,
        "parallel": args.parallel,
        "threads": 1 if args.parallel > 1 else args.threads,
        "extra_overrides": list(args.set),
    }


def train_command(run: Run, args: argparse.Namespace) -> list[str]:
    settings = settings_of(args)
    return [
        sys.executable,
        "-m",
        "nmt",
        "train",
        "--config",
        str(run.variant.config),
        f"name={run.name}",
        f"training.output_dir={run.directory.parent}",
        f"training.seed={run.seed}",
        f"training.max_minutes={args.minutes}",
        f"training.threads={settings['threads']}",
        *run.variant.overrides,
        *args.set,
    ]


def train_all(runs: list[Run], args: argparse.Namespace) -> None:
    """Train the runs that are not finished, ``--parallel`` at a time; each run's output goes
    to ``train.log`` in its directory."""
    todo = [run for run in runs if not finished(run.directory)]
    data_overrides = [o for o in args.set if o.startswith("data.")]
    for config in sorted({run.variant.config for run in todo}):
        # Once, before any training: parallel runs must not prepare the same data at once.
        command = [sys.executable, "-m", "nmt", "prepare", "--config", str(config)]
        subprocess.run([*command, *data_overrides], check=True)
    running: list[tuple[Run, subprocess.Popen]] = []
    failed = []
    while todo or running:
        while todo and len(running) < args.parallel:
            run = todo.pop(0)
            run.directory.mkdir(parents=True, exist_ok=True)
            record = {
                **settings_of(args),
                "seed": run.seed,
                "overrides": list(run.variant.overrides),
                "config": str(run.variant.config),
                "commit": _commit(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(train_command(run, args)[1:]),
            }
            (run.directory / "study.json").write_text(json.dumps(record, indent=1) + "\n")
            print(f"$ {record['command']}", flush=True)
            log = (run.directory / "train.log").open("a")
            process = subprocess.Popen(train_command(run, args), stdout=log, stderr=log)
            running.append((run, process))
        time.sleep(1)
        for run, process in list(running):
            if process.poll() is not None:
                running.remove((run, process))
                if process.returncode != 0:
                    failed.append(run.name)
                print(f"{run.name}: exit {process.returncode}", flush=True)
    if failed:
        sys.exit(f"training failed for {', '.join(failed)}: see train.log in their directories")


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def training_summary(run_dir: Path) -> dict:
    """Steps, minutes, median training tokens/s and the best dev BLEU, from metrics.jsonl."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    done = [e for e in events if e["event"] == "done"][-1]
    rates = [e["tokens_per_s"] for e in events if e["event"] == "train"]
    return {
        "steps": done["step"],
        "minutes": done["minutes"],
        "tokens_per_second": statistics.median(rates) if rates else None,
        "best_dev_bleu": done["best_dev_bleu"],
        "peak_memory_mb": done.get("peak_memory_mb"),
    }


def measure(runs: list[Run], args: argparse.Namespace) -> list[dict]:
    """Decode the test split with every run's best.pt (one after the other, this process)
    and keep the raw outputs under ``--out``."""
    torch.set_num_threads(args.threads)
    sources, references = read_input_lines(args.src), read_input_lines(args.ref)
    if args.max_test_sentences:
        sources, references = (
            sources[: args.max_test_sentences],
            references[: args.max_test_sentences],
        )
    rows = []
    for run in runs:
        translator = Translator.from_checkpoint(run.directory / "best.pt")
        _, report = evaluate(translator, sources, references)
        raw = args.out / run.name
        raw.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "study.json"):
            shutil.copyfile(run.directory / name, raw / name)
        (raw / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        study = json.loads((run.directory / "study.json").read_text())
        row = {
            "variant": run.variant.name,
            "table": run.variant.table,
            "label": run.variant.label,
            "seed": run.seed,
            "run": str(run.directory),
            "settings": {key: study[key] for key in settings_of(args)},
            "parameters": translator.model.num_parameters(),
            **training_summary(run.directory),
            "test_bleu": report["bleu"],
            "test_chrf": report["chrf"],
            "bleu_signature": report["bleu_signature"],
            "test_sentences": len(sources),
        }
        rows.append(row)
        print(f"{run.name}: {row['steps']} steps, test BLEU {row['test_bleu']:.2f}", flush=True)
    return rows


def _seeds(values: list[float]) -> str:
    """The mean, and each seed's value when there are several."""
    mean = f"{statistics.mean(values):.2f}"
    return mean if len(values) == 1 else f"{mean} ({', '.join(f'{v:.2f}' for v in values)})"


def table(selected: list[dict]) -> str:
    """How its rows were trained, then one Markdown row per variant (seeds averaged, each
    seed in brackets)."""
    settings = {json.dumps(row["settings"], sort_keys=True) for row in selected}
    if len(settings) > 1:
        raise SystemExit(
            f"rows of one table were measured differently ({' / '.join(sorted(settings))}): "
            "retrain them with the same --minutes, --parallel, --threads and --set"
        )
    trained = selected[0]["settings"]
    extra = " ".join(trained["extra_overrides"])
    lines = [
        f"Budget: {trained['minutes']:g} minutes of training per run, {trained['parallel']} "
        f"run(s) at a time with {trained['threads']} thread(s) each"
        + (f"; every run with `{extra}`" if extra else "")
        + ".",
        "",
        "| variant | test BLEU | chrF | train tok/s | parameters | steps | best dev BLEU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_variant: dict[str, list[dict]] = {}
    for row in selected:
        by_variant.setdefault(row["variant"], []).append(row)
    for group in by_variant.values():
        rates = [r["tokens_per_second"] for r in group if r["tokens_per_second"] is not None]
        lines.append(
            f"| {group[0]['label']} | {_seeds([r['test_bleu'] for r in group])} | "
            f"{_seeds([r['test_chrf'] for r in group])} | "
            f"{statistics.mean(rates):,.0f} | {group[0]['parameters']:,} | "
            f"{statistics.mean(r['steps'] for r in group):,.0f} | "
            f"{_seeds([r['best_dev_bleu'] for r in group])} |"
        )
    return "\n".join(lines)


def bleu_matrix(rows: list[dict]) -> str:
    """Test BLEU of the recurrent variants, cells across and scores down."""
    bleu: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row["table"] == "recurrent":
            cell, score = row["variant"].split("-", 1)
            bleu.setdefault((cell, score), []).append(row["test_bleu"])
    cells = [cell for cell in CELLS if any(key[0] == cell for key in bleu)]
    lines = ["| score | " + " | ".join(c.upper() for c in cells) + " |"]
    lines.append("| --- |" + " ---: |" * len(cells))
    for score in SCORES:
        values = [bleu.get((cell, score)) for cell in cells]
        if any(values):
            cells_text = " | ".join(
                "" if v is None else f"{statistics.mean(v):.2f}" for v in values
            )
            lines.append(f"| {'no attention' if score == 'none' else score} | {cells_text} |")
    return "\n".join(lines)


def report(rows: list[dict], runs: list[Run], args: argparse.Namespace) -> str:
    """The Markdown block for the doc: command, settings, tables."""
    command = shlex.join(["python", "scripts/attention_study.py", *sys.argv[1:]])
    parts = [
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')} (commit {_commit()}), "
        f"{_cpu_name()}, torch {torch.__version__}; seeds {_seed_counts(runs)}. Test "
        f"BLEU and chrF: {rows[0]['test_sentences']} test sentences, beam 5, the best "
        f"dev-BLEU checkpoint; several seeds: the mean, then each seed's value. BLEU "
        f"signature `{rows[0]['bleu_signature']}`. Raw outputs: `{args.out}/` (metrics.jsonl, "
        "study.json and report.json of every run; study.json with every row).",
    ]
    if len({run.seed for run in runs}) == 1:
        parts.append(
            "One seed: rows closer than about a BLEU point are not ranked by this table; "
            "`--seeds 1 2 3` adds seeds to the runs already there."
        )
    for name in args.tables:
        members = [row for row, run in zip(rows, runs, strict=True) if in_table(run.variant, name)]
        if members:
            parts.append(f"### {TABLES[name]}\n\n{table(members)}")
        if name == "main" and any(row["table"] == "recurrent" for row in members):
            parts.append(f"Test BLEU by cell and score:\n\n{bleu_matrix(members)}")
    return "\n\n".join(parts)


def _seed_counts(runs: list[Run]) -> str:
    """Which seeds the rows have: "1" or, say, "1 (every row), 2 (3 rows)"."""
    variants = {run.variant.name for run in runs}
    counts: dict[int, int] = {}
    for run in runs:
        counts[run.seed] = counts.get(run.seed, 0) + 1
    return ", ".join(
        f"{seed}"
        if len(counts) == 1
        else f"{seed} ({'every row' if count == len(variants) else f'{count} of {len(variants)} rows'})"
        for seed, count in sorted(counts.items())
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (or append one)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Attention study\n"
    generated = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + generated + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--parallel", type=int, choices=(1, 2), default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (--parallel 1)")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--variants", nargs="+", help="only these variants (names)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing; a row without a run for a later seed is reported with the seeds it has",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/attention_study"))
    parser.add_argument("--out", type=Path, default=Path("docs/attention_study"))
    parser.add_argument("--doc", type=Path, default=Path("docs/attention_study.md"))
    parser.add_argument("--src", type=Path, default=Path("data/tatoeba-zh-en/test.zh"))
    parser.add_argument("--ref", type=Path, default=Path("data/tatoeba-zh-en/test.en"))
    parser.add_argument("--max-test-sentences", type=int, default=0, help="0: all (checks)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run"
    )
    args = parser.parse_args()

    chosen = [v for v in variants() if any(in_table(v, name) for name in args.tables)]
    if args.variants:
        chosen = [v for v in chosen if v.name in args.variants]
    for variant in chosen:  # every override is valid before hours of training
        load_config(variant.config, [*variant.overrides, *args.set])
    runs = [
        Run(variant, seed, args.runs / f"{variant.name}-s{seed}")
        for variant in chosen
        for seed in args.seeds
    ]
    if not args.report_only:
        train_all(runs, args)
    else:  # a seed added to some rows only (--seeds 2 --variants ...) is reported with them
        runs = [run for run in runs if finished(run.directory) or run.seed == args.seeds[0]]
    missing = [run.name for run in runs if not finished(run.directory)]
    if missing:
        sys.exit(f"unfinished runs: {', '.join(missing)}; train them first")
    rows = measure(runs, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.json").write_text(json.dumps(rows, indent=1) + "\n")
    block = report(rows, runs, args)
    write_doc(args.doc, block)
    print(f"\n{block}\n\nwritten to {args.doc} and {args.out}/")


if __name__ == "__main__":
    main()
