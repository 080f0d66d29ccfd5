"""``nmt translate``: sentences from arguments, a file, stdin or an interactive prompt.

The Python API behind it is :class:`nmt.translator.Translator`. Output is line-aligned with
the input: one line per input line (an empty line for an empty one), as plain text or, with ``--json``, one JSON object per line. Input is read as bytes
and decoded as UTF-8 with invalid bytes replaced, so no input line can stop a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from nmt.commands.options import (
    DEFAULT_CHECKPOINT,
    add_decoding_arguments,
    decoding_settings,
    load_translator_for,
)
from nmt.config import ConfigError, DecodingSettings
from nmt.errors import NmtError
from nmt.models.base import ATTENTION_KINDS, AttentionKind
from nmt.translator import (
    Translation,
    Translator,
    attention_labels,
    read_input_lines,
    warn_truncated,
)

# (columns, rows) of a heat map: keys across, queries down
AXIS_LABELS = {
    "cross": ("source", "output"),
    "encoder-self": ("source (keys)", "source (queries)"),
    "decoder-self": ("output so far (keys)", "output (queries)"),
}


@dataclass(frozen=True)
class PlotRequest:
    """Which attention the heat maps show (``--attention-*``)."""

    kind: AttentionKind = "cross"
    layer: int = 0  # resolved: from 0
    head: int | None = None  # None: the average of the heads
    all_heads: bool = False  # one grid of every head per sentence


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
    directory: Path,
    first_line: int,
    sources: list[str],
    translations: list[Translation],
    translator: Translator,
    request: PlotRequest,
) -> None:
    """One image per translated sentence, named by its input line number: a heat map of the
    requested attention (one head, or the average of the heads), or a grid of every head."""
    directory.mkdir(parents=True, exist_ok=True)
    maps = translator.attention_maps(translations, request.kind, request.layer)
    for offset, (source, translation, heads) in enumerate(
        zip(sources, translations, maps, strict=True)
    ):
        if heads is not None:
            title = f"{source[:60]} -> {translation.candidates[0].text[:60]}"
            path = directory / f"{first_line + offset:04d}.png"
            _plot(heads, translation, title, path, request)


def _plot(
    heads: Tensor, translation: Translation, title: str, path: Path, request: PlotRequest
) -> None:
    """The image of one sentence's attention ``heads`` ``(heads, rows, columns)``."""
    from nmt.plotting import attention_grid, plot_attention, save_figure

    kind, layer = request.kind, request.layer
    rows, columns = attention_labels(translation, kind)
    if request.all_heads:
        titles = [f"{kind}, layer {layer}, head {h}" for h in range(len(heads))]
        weights = heads
    else:
        weights = heads.mean(dim=0) if request.head is None else heads[request.head]
        if kind == "cross":  # the classic alignment plot
            plot_attention(weights, columns, rows, path, title)
            return
        which = "heads averaged" if request.head is None else f"head {request.head}"
        titles, weights = [f"{kind}, layer {layer}, {which}"], weights[None]
    save_figure(attention_grid(weights, columns, rows, titles, AXIS_LABELS[kind], title), path)


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
        help="the layer whose attention is shown, from 0 (negative: from the last; default: "
        "the last, or for cross-attention the config's attention_layer); also --alignments'",
    )
    parser.add_argument(
        "--attention-head",
        metavar="H|all",
        help="plot head H (from 0), or a grid of all heads (default: the heads' average)",
    )
    parser.add_argument(
        "--attention-kind",
        choices=ATTENTION_KINDS,
        default="cross",
        help="plot cross-attention (output over source, the default), encoder-self "
        "(source over source) or decoder-self (output over the output so far)",
    )


def main(args: argparse.Namespace) -> int:
    _check_arguments(args)
    if args.attention_plot:
        from nmt.plotting import require_matplotlib

        require_matplotlib()
    translator = load_translator_for(args)
    request = _plot_request(translator, args)
    settings = decoding_settings(translator, args, args.alignments)
    if not args.sentences and args.input is None and sys.stdin.isatty():
        return _interactive(translator, settings, args, request)

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
        write_plots(args.attention_plot, 1, sources, translations, translator, request)
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    if args.sentences and args.input is not None:
        raise NmtError("give sentences as arguments or --input FILE, not both")
    if args.alignments and not args.json:
        raise NmtError("--alignments goes with --json")
    if not args.attention_plot and (args.attention_head or args.attention_kind != "cross"):
        raise NmtError("--attention-head and --attention-kind go with --attention-plot")


def _plot_request(translator: Translator, args: argparse.Namespace) -> PlotRequest:
    """The attention to show, checked against the model before anything is translated;
    ``--attention-layer`` also selects the layer of ``--alignments`` (cross-attention)."""
    kind = args.attention_kind
    if not (args.attention_plot or args.alignments or args.attention_layer is not None):
        return PlotRequest(kind)
    if args.attention_plot and translator.engine != "torch":
        raise NmtError(
            f"--attention-plot needs --engine torch (heat maps come from a teacher-forced pass "
            f"of the torch model; {translator.engine} gives --alignments only)"
        )
    layer = translator.attention_layer(kind, args.attention_layer)
    if (
        kind == "cross"
        and args.attention_layer is not None
        and hasattr(translator.model, "attention_layer")
    ):
        translator.set_attention_layer(layer)
    heads = translator.model.attention_heads
    head = args.attention_head
    if head is None or head == "all":
        return PlotRequest(kind, layer, all_heads=head == "all")
    if not (head.isdigit() and int(head) < heads):
        raise ConfigError(f"--attention-head {head}: expected a head in [0, {heads}) or all")
    return PlotRequest(kind, layer, int(head))


def _interactive(
    translator: Translator,
    settings: DecodingSettings,
    args: argparse.Namespace,
    request: PlotRequest,
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
            write_plots(args.attention_plot, number, [source], [translation], translator, request)
