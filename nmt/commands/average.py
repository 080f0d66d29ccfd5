"""``nmt average``: average the weights of the last K step checkpoints of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.checkpoint import average_checkpoints, save_checkpoint, step_checkpoints
from nmt.errors import CheckpointError, NmtError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="run directory (runs/EXPERIMENT)")
    parser.add_argument(
        "-k",
        "--last",
        type=int,
        default=3,
        help="how many of the newest step checkpoints (default 3)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="output file (default RUN_DIR/averaged.pt)"
    )


def main(args: argparse.Namespace) -> int:
    if args.last < 1:
        raise NmtError(f"-k {args.last}: expected a number of checkpoints >= 1")
    paths = step_checkpoints(args.run_dir)[-args.last :]
    if len(paths) < args.last:
        raise CheckpointError(
            f"{args.run_dir}: asked for {args.last} step checkpoints, found {len(paths)}"
        )
    output = args.output or args.run_dir / "averaged.pt"
    save_checkpoint(output, average_checkpoints(paths))
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {output}")
    return 0
