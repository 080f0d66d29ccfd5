"""``nmt translate``: sentences from arguments, a file, stdin or an interactive prompt.

The Python API is :class:`Translator`::

    translator = Translator.from_checkpoint("runs/tatoeba_zh_en_transformer/best.pt")
    for translation in translator.translate(["我们明天去公园吧。"], beam_size=5, n_best=2):
        print(translation.text, [c.score for c in translation.candidates])

Output is line-aligned with the input: one line per input line (an empty line for an empty
one), as plain text or, with ``--json``, one JSON object per line. Input is read as bytes
and decoded as UTF-8 with invalid bytes replaced, so no input line can stop a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from nmt.checkpoint import load_model
from nmt.config import Config
from nmt.data.vocab import Vocabulary
from nmt.decoding import Translation, translate_sentences
from nmt.devices import resolve_device
from nmt.errors import DataError, NmtError
from nmt.models.base import Seq2Seq

DEFAULT_CHECKPOINT = "runs/tatoeba_zh_en_transformer/best.pt"


class Translator:
    """A checkpoint loaded once, translating lists of sentences."""

    def __init__(
        self,
        model: Seq2Seq,
        config: Config,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        checkpoint: Path | None = None,
        step: int = 0,
    ) -> None:
        self.model = model.eval()
        self.config = config  # its data and decoding sections supply the defaults
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.checkpoint = checkpoint
        self.step = step

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Translator:
        """Load ``path`` onto ``device`` (``auto``: CUDA when available, else CPU)."""
        loaded = load_model(path, resolve_device(device))
        return cls(
            loaded.model,
            loaded.config,
            loaded.src_vocab,
            loaded.tgt_vocab,
            loaded.path,
            loaded.step,
        )

    @property
    def max_length(self) -> int | None:
        """The longest source (with EOS) or output the model takes; None: no limit."""
        model = self.config.model
        return model.transformer.max_positions if model.type == "transformer" else None

    def set_attention_layer(self, layer: int) -> None:
        """Which decoder layer's cross-attention (head average) Transformer plots show."""
        model = self.config.model
        if model.type != "transformer":
            raise NmtError("--attention-layer applies to Transformer models only")
        layers = model.transformer.decoder_layers
        if not -layers <= layer < layers:
            raise NmtError(f"--attention-layer {layer}: the model has {layers} decoder layers")
        self.model.attention_layer = layer % layers

    def translate(
        self,
        sentences: Sequence[str],
        beam_size: int | None = None,
        n_best: int | None = None,
        length_penalty: float | None = None,
        max_len_a: float | None = None,
        max_len_b: int | None = None,
        batch_size: int | None = None,
        return_attention: bool = False,
    ) -> list[Translation]:
        """Translations in input order; settings left as None come from the checkpoint."""
        decoding = self.config.decoding
        n_best = _default(n_best, decoding.n_best)
        if beam_size is None:  # the checkpoint's beam, widened if more candidates are asked for
            beam_size = max(decoding.beam_size, n_best)
        return translate_sentences(
            self.model,
            self.src_vocab,
            self.tgt_vocab,
            sentences,
            self.config.data.src_lang,
            beam_size=beam_size,
            n_best=n_best,
            length_penalty=_default(length_penalty, decoding.length_penalty),
            max_len_a=_default(max_len_a, decoding.max_len_a),
            max_len_b=_default(max_len_b, decoding.max_len_b),
            batch_size=_default(batch_size, decoding.batch_size),
            max_length=self.max_length,
            traditional_to_simplified=self.config.data.traditional_to_simplified,
            return_attention=return_attention,
        )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def read_input_lines(source: str | Path | BinaryIO) -> list[str]:
    """Lines of a file (or binary stream) as text: UTF-8 with invalid bytes replaced, split on
    ``\\n`` only (so other line-break characters stay inside their line), ``\\r`` stripped."""
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise DataError(f"cannot read {source}: {error.strerror}") from None
    else:
        data = source.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


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
    from nmt.decoding import EOS_PIECE
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


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """The search options that ``nmt translate`` and ``nmt evaluate`` share."""
    parser.add_argument("--beam", type=int, metavar="N", help="beam size, 1 = greedy")
    parser.add_argument("--length-penalty", type=float, metavar="ALPHA", help="GNMT alpha")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps, auto")
    parser.epilog = "Search options left out take the checkpoint's decoding settings."


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
    add_decoding_arguments(parser)
    parser.add_argument("--n-best", type=int, metavar="N", help="candidates per sentence")
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
    translator = Translator.from_checkpoint(args.checkpoint, args.device)
    if args.attention_layer is not None:
        translator.set_attention_layer(args.attention_layer)
    settings = {
        "beam_size": args.beam,
        "n_best": args.n_best,
        "length_penalty": args.length_penalty,
        "batch_size": args.batch_size,
        "return_attention": bool(args.attention_plot or args.alignments),
    }
    if not args.sentences and args.input is None and sys.stdin.isatty():
        return _interactive(translator, settings, args)

    if args.sentences:
        # Undecodable bytes in arguments arrive as surrogate escapes: back to bytes, then
        # decoded like the other inputs.
        sources = [os.fsencode(s).decode("utf-8", errors="replace") for s in args.sentences]
    else:
        sources = read_input_lines(args.input if args.input is not None else sys.stdin.buffer)
    translations = translator.translate(sources, **settings)
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
    if args.beam is not None and args.beam < 1:
        raise NmtError(f"--beam {args.beam}: must be at least 1")
    if args.n_best is not None and args.n_best < 1:
        raise NmtError(f"--n-best {args.n_best}: must be at least 1")
    if None not in (args.n_best, args.beam) and args.n_best > args.beam:
        raise NmtError(f"--n-best {args.n_best}: at most the beam size ({args.beam})")
    if args.batch_size is not None and args.batch_size < 1:
        raise NmtError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.alignments and not args.json:
        raise NmtError("--alignments goes with --json")


def warn_truncated(
    translations: list[Translation],
    max_length: int | None,
    command: str,
    where: str | Path = "input",
    first_line: int = 1,
) -> None:
    """One warning on stderr per source that was cut to the model's maximum length."""
    for offset, translation in enumerate(translations):
        if translation.truncated:
            print(
                f"{command}: warning: {where} line {first_line + offset} is longer than the "
                f"model's {max_length} subword tokens; only its beginning was translated",
                file=sys.stderr,
            )


def _interactive(translator: Translator, settings: dict[str, Any], args: argparse.Namespace) -> int:
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
        (translation,) = translator.translate([source], **settings)
        warn_truncated([translation], translator.max_length, "nmt translate", "input", number)
        line = format_translation(source, translation, args.json, args.alignments)
        sys.stdout.buffer.write((line + "\n").encode("utf-8"))
        sys.stdout.buffer.flush()
        if args.attention_plot:
            write_plots(args.attention_plot, number, [source], [translation])
