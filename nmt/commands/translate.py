"""``nmt translate``: sentences from arguments, a file, stdin or an interactive prompt.

The Python API behind it is :class:`nmt.translator.Translator`. Output is line-aligned with the input: one line per input line (an empty line for an empty
one), as plain text or, with ``--json``, one JSON object per line. Input is read as bytes
and decoded as UTF-8 with invalid bytes replaced, so no input line can stop a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nmt.commands.options import (
    DEFAULT_CHECKPOINT,
    add_decoding_arguments,
    decoding_settings,
    load_translator_for,
)
from nmt.config import ConfigError, DecodingSettings
from nmt.errors import NmtError
from nmt.translator import EOS_PIECE, Translation, Translator, read_input_lines, warn_truncated

# --- output ---------------------------------------------------------------------------------


def format_translation(
    source: str, translation: Translation, as_json: bool, alignments: bool
) -> str:
    """One output line: the best text (n-best: the candidates, tab-separated) or JSON."""
    if not as_json:
        return "\t".join(candidate.text for candidate in translation.candidates)
    record: dict[str, Any] = {"source": source, "truncated": translation.truncated}
    if alignments:
        record["source_tokens"] = translation.source_pieces
    record["translations"] = []
    for candidate in translation.candidates:
        entry: dict[str, Any] = {
            "text": candidate.text,
            "score": round(candidate.score, 4),
            "log_prob": round(candidate.log_prob, 4),
            "tokens": candidate.pieces,
        }
        if alignments and candidate.attention is not None:
            entry["attention"] = [
                [round(w, 4) for w in row] for row in candidate.attention.tolist()
            ]
        record["translations"].append(entry)
    return json.dumps(record, ensure_ascii=False)


def write_plots(
    directory: Path, first_line: int, sources: list[str], translations: list[Translation]
) -> None:
    """One heat map per translated sentence, named by its input line number."""
    from nmt.plotting import plot_attention

    directory.mkdir(parents=True, exist_ok=True)
    for offset, (source, translation) in enumerate(zip(sources, translations, strict=True)):
        if not translation.candidates:
            continue
        best = translation.candidates[0]
        title = f"{source[:60]} -> {best.text[:60]}"
        path = directory / f"{first_line + offset:04d}.png"
        plot_attention(
            best.attention, translation.source_pieces, best.pieces + [EOS_PIECE], path, title
        )


# --- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentences", nargs="*", help="sentences to translate (default: stdin)")
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        metavar="PATH",
        help=f"the model (default {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument("-i", "--input", type=Path, metavar="FILE", help="one sentence a line")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    add_decoding_arguments(parser, n_best=True)
    parser.add_argument("--json", action="store_true", help="one JSON object per line, with scores")
    parser.add_argument("--alignments", action="store_true", help="with --json: attention weights")
    parser.add_argument(
        "--attention-plot", type=Path, metavar="DIR", help="write a heat map PNG per sentence"
    )
    parser.add_argument(
        "--attention-layer",
        type=int,
        metavar="N",
        help="Transformer: the decoder layer whose cross-attention is shown (default: the last)",
    )


def main(args: argparse.Namespace) -> int:
    _check_arguments(args)
    if args.attention_plot:
        from nmt.plotting import require_matplotlib

        require_matplotlib()
    translator = load_translator_for(args)
    if args.attention_layer is not None:
        try:
            translator.set_attention_layer(args.attention_layer)
        except ConfigError as error:
            flag = f"--attention-layer {args.attention_layer}:"
            raise ConfigError(
                str(error).replace("model.transformer.attention_layer:", flag)
            ) from None
    settings = decoding_settings(translator, args, bool(args.attention_plot or args.alignments))
    if not args.sentences and args.input is None and sys.stdin.isatty():
        return _interactive(translator, settings, args)

    if args.sentences:
        # Undecodable bytes in arguments arrive as surrogate escapes: back to bytes, then
        # decoded like the other inputs.
        sources = [os.fsencode(s).decode("utf-8", errors="replace") for s in args.sentences]
    else:
        sources = read_input_lines(args.input if args.input is not None else sys.stdin.buffer)
    translations = translator.translate(sources, settings)
    where = args.input if args.input is not None else "input"
    warn_truncated(translations, translator.max_length, "nmt translate", where)
    lines = [
        format_translation(source, translation, args.json, args.alignments)
        for source, translation in zip(sources, translations, strict=True)
    ]
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(text)
    else:
        sys.stdout.buffer.write(text)
        sys.stdout.buffer.flush()
    if args.attention_plot:
        write_plots(args.attention_plot, 1, sources, translations)
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    if args.sentences and args.input is not None:
        raise NmtError("give sentences as arguments or --input FILE, not both")
    if args.alignments and not args.json:
        raise NmtError("--alignments goes with --json")


def _interactive(
    translator: Translator, settings: DecodingSettings, args: argparse.Namespace
) -> int:
    """A prompt: one sentence per line, translated as soon as it is entered."""
    print("Type a sentence and press Enter; Ctrl-D quits.", file=sys.stderr)
    number = 0
    while True:
        print("> ", end="", file=sys.stderr, flush=True)
        raw = sys.stdin.buffer.readline()
        if not raw:
            print(file=sys.stderr)
            return 0
        number += 1
        source = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        (translation,) = translator.translate([source], settings)
        warn_truncated([translation], translator.max_length, "nmt translate", "input", number)
        line = format_translation(source, translation, args.json, args.alignments)
        sys.stdout.buffer.write((line + "\n").encode("utf-8"))
        sys.stdout.buffer.flush()
        if args.attention_plot:
            write_plots(args.attention_plot, number, [source], [translation])
