"""Decoding speed of beam search and greedy (figures go to docs/benchmarks.md, ``## Decoding``).

Translates the canonical test split in batches of up to 64 sentences with each beam size and
reports sentences/s, output tokens/s (EOS included) and BLEU; then translates the first
``--check`` sentences one at a time and counts how many batched outputs are identical, so
batching is seen to cost no BLEU.

Models: checkpoints (``--checkpoint``, repeatable) and default-size models of experiment
configs (vocabularies from the config's prepared data: run ``make data`` first), either with
random weights (``--random CONFIG ...``) or quickly overfit on a few training pairs
(``--overfit CONFIG ...``). A random model almost never emits EOS, so each of its outputs
runs to the length limit (1.5 x source + 10): a worst case for speed. An overfit one stops
like a trained model; its BLEU means nothing.

Without model options (``make bench``): the ``best.pt`` of the two default experiments where
they exist, else their overfit models.

Usage:
    .venv/bin/python scripts/bench_decoding.py --overfit configs/tatoeba_zh_en_transformer.yaml \\
        configs/tatoeba_zh_en_gru.yaml
    .venv/bin/python scripts/bench_decoding.py --checkpoint runs/tatoeba_zh_en_transformer/best.pt
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nmt.config import load_config
from nmt.data.batching import collate
from nmt.data.prepare import PreparedData
from nmt.data.vocab import PAD_ID
from nmt.evaluation import evaluate
from nmt.models import build_model
from nmt.translator import Translator, read_input_lines

DEFAULT_CONFIGS = [
    Path("configs/tatoeba_zh_en_transformer.yaml"),
    Path("configs/tatoeba_zh_en_gru.yaml"),
]


@dataclass
class Result:
    sentences_per_second: float
    tokens_per_second: float
    bleu: float
    identical: int  # of the checked sentences, outputs equal to one-at-a-time decoding
    checked: int


def random_translator(config_path: Path) -> Translator:
    """A default-size model of the config with random weights, and the config's vocabularies."""
    config = load_config(config_path)
    data = PreparedData.load(config.data.prepared_dir)
    torch.manual_seed(0)
    model = build_model(config.model, len(data.src_vocab), len(data.tgt_vocab))
    return Translator(model, config, data.src_vocab, data.tgt_vocab)


def overfit_translator(config_path: Path, pairs: int = 32, steps: int = 40) -> Translator:
    """The random model of :func:`random_translator`, overfit on the first training pairs
    (seconds of training): its outputs are memorised English sentences of realistic length,
    so decoding stops where a trained model's would, at the full model's cost per step."""
    translator = random_translator(config_path)
    model = translator.model.train()
    data = PreparedData.load(translator.config.data.prepared_dir)
    batch = collate(data.encoded("train"), list(range(pairs)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        logits = model(batch.src, batch.src_lengths, batch.tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return translator


def measure(
    translator: Translator,
    sources: list[str],
    references: list[str],
    beam_size: int,
    batch_size: int,
    check: int,
) -> Result:
    settings = translator.settings(beam_size=beam_size, batch_size=batch_size)
    hypotheses, report = evaluate(translator, sources, references, settings)
    one_by_one = translator.translate(sources[:check], settings.updated(batch_size=1))
    identical = sum(t.text == h for t, h in zip(one_by_one, hypotheses, strict=False))
    return Result(
        sentences_per_second=report["sentences_per_second"],
        tokens_per_second=report["tokens_per_second"],
        bleu=report["bleu"],
        identical=identical,
        checked=len(one_by_one),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, action="append", default=[])
    parser.add_argument("--random", type=Path, nargs="*", default=[], metavar="CONFIG")
    parser.add_argument("--overfit", type=Path, nargs="*", default=[], metavar="CONFIG")
    parser.add_argument("--src", type=Path, default=Path("data/tatoeba-zh-en/test.zh"))
    parser.add_argument("--ref", type=Path, default=Path("data/tatoeba-zh-en/test.en"))
    parser.add_argument("--sentences", type=int, default=0, help="only the first N (0: all)")
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--check", type=int, default=200, help="sentences decoded one by one")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.checkpoint or args.random or args.overfit):  # `make bench`: the defaults
        for config in DEFAULT_CONFIGS:
            best = Path("runs") / config.stem / "best.pt"
            if best.is_file():
                args.checkpoint.append(best)
            else:
                args.overfit.append(config)

    torch.set_num_threads(args.threads)
    sources, references = read_input_lines(args.src), read_input_lines(args.ref)
    if args.sentences:
        sources, references = sources[: args.sentences], references[: args.sentences]
    models = [(str(p), Translator.from_checkpoint(p)) for p in args.checkpoint]
    models += [(f"{p.stem} (random init)", random_translator(p)) for p in args.random]
    models += [(f"{p.stem} (overfit, 32 pairs)", overfit_translator(p)) for p in args.overfit]
    print(f"{len(sources)} sentences of {args.src}, batches of {args.batch_size}, ", end="")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | parameters | beam | sentences/s | tokens/s | BLEU | identical one by one |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, translator in models:
        parameters = sum(p.numel() for p in translator.model.parameters())
        for beam in args.beams:
            result = measure(translator, sources, references, beam, args.batch_size, args.check)
            print(
                f"| {name} | {parameters / 1e6:.1f} M | {beam} | "
                f"{result.sentences_per_second:.1f} | {result.tokens_per_second:.0f} | "
                f"{result.bleu:.2f} | {result.identical}/{result.checked} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
