"""``nmt prepare``: clean, split and encode a corpus; train the vocabularies."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.config import config_from_dict, load_config
from nmt.data.prepare import prepare_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="experiment YAML; its 'data' section is used (default: the built-in defaults, "
        "the canonical Tatoeba zh->en setup)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="config overrides, e.g. data.test=null",
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the prepared data is up to date"
    )


def main(args: argparse.Namespace) -> int:
    if args.config is not None:
        config = load_config(args.config, args.overrides)
    else:
        config = config_from_dict({}, args.overrides)
    data = prepare_data(config.data, force=args.force)
    print(data.summary.format())
    return 0
