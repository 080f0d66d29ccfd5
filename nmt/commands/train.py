"""``nmt train --config FILE [section.key=value ...]``: train, or resume a stopped run."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nmt.config import load_config
from nmt.training import train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, type=Path, help="experiment YAML file (configs/*.yaml)"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="override config values, e.g. training.max_steps=1000 model.transformer.d_model=512",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start from scratch; an existing run directory is kept, renamed with a time stamp "
        "(default: resume from runs/NAME/last.pt when it exists)",
    )
    parser.epilog = (
        "A stopped run (Ctrl-C, SIGTERM) resumes with the same command. Limits (max_steps, "
        "max_epochs, max_minutes) count across resumes: a run that reached one is finished, "
        "and raising it on the command line (e.g. training.max_minutes=60) trains on."
    )


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    if args.restart and config.run_dir.exists() and int(os.environ.get("RANK", "0")) == 0:
        kept = config.run_dir.with_name(f"{config.run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}")
        config.run_dir.rename(kept)
        print(f"--restart: the previous run was moved to {kept}", file=sys.stderr)
    train(config, resume=not args.restart)
    return 0
