"""The ``nmt`` command: one sub-command per step of the workflow.

Each sub-command is a thin module of ``nmt/commands/`` providing ``add_arguments(parser)``
and ``main(args) -> int`` on top of the library; no other module imports it. Only the chosen
command is imported, so ``nmt --help`` is instant and one broken command cannot break the
others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nmt.errors import NmtError

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("nmt.commands.prepare", "clean, split and encode a corpus; train the vocabularies"),
    "train": ("nmt.commands.train", "train a model from a YAML config (resumes a stopped run)"),
    "evaluate": ("nmt.commands.evaluate", "translate a test set and score it with sacrebleu"),
    "translate": ("nmt.commands.translate", "translate sentences (arguments, stdin or a file)"),
    "average": ("nmt.commands.average", "average the weights of the last K checkpoints of a run"),
    "export": ("nmt.commands.export", "convert a checkpoint for CTranslate2 (fast decoding)"),
    "serve": ("nmt.commands.serve", "an HTTP translation server: LibreTranslate API, web page"),
}


def _top_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="nmt",
        description="Chinese<->English neural machine translation with attention models.",
        epilog=f"commands:\n{commands}\n\nRun 'nmt COMMAND --help' for one command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="see below")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv[:1] or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module_name, description = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"nmt {name}", description=description)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except NmtError as error:
        print(f"nmt {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nmt {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
