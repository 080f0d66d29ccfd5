"""``nmt serve``: an HTTP translation server (LibreTranslate's API, our own, a web page).

The library behind it is ``nmt/serve/`` (docs/serving.md); this module reads the options,
loads the models and runs uvicorn. It needs the serve extra: ``pip install -e '.[serve]'``.
"""

from __future__ import annotations

import argparse
import os
import sys

from nmt.commands.options import (
    DEFAULT_CHECKPOINT,
    add_decoding_arguments,
    decoding_settings,
    load_translator_for,
)
from nmt.errors import NmtError
from nmt.serve.service import ServeLimits, TranslationService, read_api_keys

# ServeLimits fields, each set by the option of the same name (--max-chars, ...).
LIMITS = {
    "batch_wait_ms": (
        float,
        "MS",
        "how long a request may wait for others to share its search call; --batch-size is "
        "the most sentences per call",
    ),
    "max_queue": (int, "N", "sentences waiting for a batch, all requests; more: 429"),
    "max_chars": (int, "N", "characters per request; more: 413"),
    "max_sentence_chars": (int, "N", "characters per sentence; more: 413"),
    "timeout": (float, "S", "seconds per request; more: 503"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        action="append",
        metavar="PATH",
        help="a checkpoint or 'nmt export' directory; repeat for more language pairs "
        f"(default {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    add_decoding_arguments(parser)
    limits, defaults = parser.add_argument_group("batching and limits"), ServeLimits()
    for name, (kind, metavar, text) in LIMITS.items():
        default = getattr(defaults, name)
        limits.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=default,
            metavar=metavar,
            help=f"{text} (default {default:g})",
        )
    limits.add_argument(
        "--api-keys", metavar="FILE", help="require one of these keys (one a line) as api_key"
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for decoding (default: the cores less one, at least 1: the HTTP "
        "event loop needs a core of its own)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")


def main(args: argparse.Namespace) -> int:
    _require_packages()
    import torch
    import uvicorn

    from nmt.serve.app import create_app

    limits = _limits(args)
    api_keys = read_api_keys(args.api_keys) if args.api_keys else None
    if args.threads is not None and args.threads < 1:
        raise NmtError(f"--threads {args.threads}: expected a positive number")
    # Decoding threads that wait by spinning (OpenMP in torch and CTranslate2) must not share
    # their cores with the event loop: on 2 cores, 2 decoding threads made a one-sentence
    # request 4x slower than 1 (docs/benchmarks.md, "Server under load").
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - 1))
    models = []
    for checkpoint in args.checkpoint or [DEFAULT_CHECKPOINT]:
        translator = load_translator_for(args, checkpoint)
        models.append((translator, decoding_settings(translator, args)))
    service = TranslationService(models, limits, api_keys)
    print(
        f"nmt serve: {service.pairs()} on http://{args.host}:{args.port}/ "
        f"({models[0][0].engine}, {models[0][0].device}, {torch.get_num_threads()} threads)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        create_app(service),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _require_packages() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise NmtError(
            "nmt serve needs the serve extra: pip install -e '.[serve]' (or: make serve)"
        ) from None


def _limits(args: argparse.Namespace) -> ServeLimits:
    """The limits from the options of the same names; a value out of range is reported
    under its option."""
    values = {name: getattr(args, name) for name in LIMITS}
    try:
        return ServeLimits(**values)
    except NmtError as error:
        message = str(error)
        for name in LIMITS:
            message = message.replace(f"{name}:", f"--{name.replace('_', '-')} {values[name]}:")
        raise NmtError(message) from None
