"""``nmt evaluate``: translate a test set, score it with sacrebleu, write a JSON report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nmt.commands.options import add_decoding_arguments, decoding_settings, load_translator_for
from nmt.data.prepare import prepare_data
from nmt.errors import DataError, NmtError
from nmt.evaluation import evaluate
from nmt.translator import read_input_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="the model")
    parser.add_argument("--src", type=Path, metavar="FILE", help="one sentence a line")
    parser.add_argument(
        "--ref", type=Path, metavar="FILE", help="references, line-aligned with --src"
    )
    parser.add_argument(
        "--split",
        choices=("dev", "test"),
        default="test",
        help="without --src/--ref: this split of the data the checkpoint was trained on, in "
        "its direction (prepared if needed; default test)",
    )
    add_decoding_arguments(parser)
    parser.add_argument("--out", type=Path, metavar="HYP", help="write the translations to HYP")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="REPORT.json",
        help="write scores, settings and speed as JSON",
    )


def main(args: argparse.Namespace) -> int:
    if (args.src is None) != (args.ref is None):
        raise NmtError("give both --src and --ref, or neither (then --split is scored)")
    translator = load_translator_for(args)
    if args.src is None:
        # The checkpoint's own data section names the corpus and the direction.
        args.src, args.ref = prepare_data(translator.config.data).text_paths(args.split)
    sources, references = read_input_lines(args.src), read_input_lines(args.ref)
    if not sources:
        raise DataError(f"{args.src} has no sentences")
    if len(sources) != len(references):
        raise DataError(f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}")
    settings = decoding_settings(translator, args)
    hypotheses, report = evaluate(translator, sources, references, settings)
    hyp = None if args.out is None else str(args.out)
    report.update(src=str(args.src), ref=str(args.ref), hyp=hyp)

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(line + "\n" for line in hypotheses), encoding="utf-8")
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"BLEU = {report['bleu']:.2f}  ({report['bleu_signature']})")
    print(f"chrF = {report['chrf']:.2f}  ({report['chrf_signature']})")
    print(
        f"{report['sentences']} sentences in {report['seconds']:.2f} s: "
        f"{report['sentences_per_second']} sentences/s, {report['tokens_per_second']} tokens/s "
        f"(beam {report['decoding']['beam_size']}, {report['device']})"
    )
    return 0
