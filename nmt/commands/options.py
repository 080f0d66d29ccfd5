"""Command-line options that several commands share (not a command itself)."""

from __future__ import annotations

import argparse

from nmt.config import ConfigError, DecodingSettings
from nmt.engines import ENGINES, load_translator
from nmt.translator import Translator

DEFAULT_CHECKPOINT = "runs/tatoeba_zh_en_transformer/best.pt"

# Search options and the DecodingSettings fields they set.
OPTIONS = {"beam": "beam_size", "n_best": "n_best", "length_penalty": "length_penalty"}
OPTIONS["batch_size"] = "batch_size"


def add_decoding_arguments(parser: argparse.ArgumentParser, n_best: bool = False) -> None:
    """The search options of ``nmt translate``, ``evaluate`` and ``serve`` (and ``--device``,
    ``--engine``)."""
    parser.add_argument("--beam", type=int, metavar="N", help="beam size, 1 = greedy")
    if n_best:
        parser.add_argument("--n-best", type=int, metavar="N", help="candidates per sentence")
    parser.add_argument("--length-penalty", type=float, metavar="ALPHA", help="GNMT alpha")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (default: a CUDA GPU when there is one, else Apple MPS, else the CPU), cpu, "
        "cuda, cuda:N, mps",
    )
    parser.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="auto (default): ctranslate2 for an 'nmt export' directory, else torch; "
        "ctranslate2 given a checkpoint converts it first",
    )
    parser.epilog = "Search options left out take the checkpoint's decoding settings."


def load_translator_for(args: argparse.Namespace, checkpoint: str | None = None) -> Translator:
    """The translator of ``checkpoint`` (default ``args.checkpoint``) on ``args.engine`` and
    ``args.device``."""
    path = args.checkpoint if checkpoint is None else checkpoint
    return load_translator(path, args.engine, args.device)


def decoding_settings(
    translator: Translator, args: argparse.Namespace, return_attention: bool = False
) -> DecodingSettings:
    """The checkpoint's settings with the options given on the command line; a value out of
    range is reported under the option's name."""
    given = {option: getattr(args, option, None) for option in OPTIONS}
    try:
        return translator.settings(
            **{OPTIONS[option]: value for option, value in given.items()},
            return_attention=return_attention,
        )
    except ConfigError as error:
        message = str(error)
        for option, value in given.items():
            if value is not None:
                flag = "--" + option.replace("_", "-")
                message = message.replace(f"decoding.{OPTIONS[option]}:", f"{flag} {value}:")
        raise ConfigError(message) from None
