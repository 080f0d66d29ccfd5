"""``nmt export``: a checkpoint converted for another inference engine (CTranslate2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.engines.ctranslate2_export import QUANTIZATIONS, export_ctranslate2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="the model directory to write"
    )
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="the model")
    parser.add_argument(
        "--format", default="ctranslate2", choices=["ctranslate2"], help="the engine's format"
    )
    parser.add_argument(
        "--quantization",
        default="float32",
        choices=QUANTIZATIONS,
        help="weight type (default float32); int8 is the fast one on CPU, float16 on GPU",
    )
    parser.epilog = (
        "Then: nmt translate/evaluate/serve --checkpoint OUT_DIR (the engine is detected). "
        "Transformer models with softmax attention only."
    )


def main(args: argparse.Namespace) -> int:
    out_dir = export_ctranslate2(args.checkpoint, args.out_dir, args.quantization)
    size = (out_dir / "model.bin").stat().st_size / 2**20
    print(f"{args.checkpoint} -> {out_dir} (CTranslate2, {args.quantization}, {size:.1f} MiB)")
    return 0
