"""Benchmark the two model families on CPU (figures go to docs/benchmarks.md, ``## Models``).

1. Training throughput: target tokens per second of forward + backward + loss, alone and
   with an Adam step (torch's default CPU Adam and ``fused=True``), on a token-budget batch
   of Tatoeba-like lengths (source and target about 10 tokens).
2. Incremental decoding: time to decode T steps with the cached ``decode_step`` against a
   decoder without a cache, which reruns the whole prefix every step (and projects only the
   last position onto the vocabulary).

Timings are the best of ``--repeats`` runs: the machine may be shared.

Usage: .venv/bin/python scripts/bench_models.py [--threads 2] [--max-tokens 4096]
       [--models transformer gru transformer-rfa-dec] [--decode-steps 10 50 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nmt.config import ModelConfig
from nmt.data.vocab import PAD_ID
from nmt.models import build_model
from nmt.models.base import EncoderOutput, Seq2Seq
from nmt.models.gru import GRUSeq2Seq
from nmt.models.transformer import Transformer

VOCAB_SIZE = 8000


RFA_ATTENTION = {
    "enc": ["encoder_attention"],
    "dec": ["decoder_attention"],
    "cross": ["cross_attention"],
    "all": ["encoder_attention", "decoder_attention", "cross_attention"],
}


def model_config(name: str) -> ModelConfig:
    """Default sizes of ``gru``, ``transformer`` or ``transformer-rfa-{enc,dec,cross,all}``."""
    if not name.startswith("transformer-rfa-"):
        return ModelConfig(type=name)
    config = ModelConfig(type="transformer")
    for attention in RFA_ATTENTION[name.removeprefix("transformer-rfa-")]:
        setattr(config.transformer, attention, "rfa")
    return config


def tatoeba_like_batch(max_tokens: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A length-bucketed batch: sources of 8-12 tokens, targets of 8-12 tokens plus BOS/EOS."""
    batch_size = max_tokens // 12
    src_lengths = torch.randint(8, 13, (batch_size,), generator=generator)
    tgt_lengths = torch.randint(8, 13, (batch_size,), generator=generator) + 1
    src = torch.randint(4, VOCAB_SIZE, (batch_size, int(src_lengths.max())), generator=generator)
    tgt = torch.randint(
        4, VOCAB_SIZE, (batch_size, int(tgt_lengths.max()) + 1), generator=generator
    )
    src[torch.arange(src.size(1)) >= src_lengths.unsqueeze(1)] = PAD_ID
    tgt[torch.arange(tgt.size(1)) > tgt_lengths.unsqueeze(1)] = PAD_ID
    return {"src": src, "src_lengths": src_lengths, "tgt_in": tgt[:, :-1], "tgt_out": tgt[:, 1:]}


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def training_throughput(model: Seq2Seq, batch: dict, repeats: int) -> dict[str, float]:
    """Target tokens/s of forward+backward, and with an Adam step (default and fused)."""
    model.train()
    target_tokens = int((batch["tgt_out"] != PAD_ID).sum())

    def forward_backward() -> None:
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        loss = F.cross_entropy(
            logits.flatten(0, 1),
            batch["tgt_out"].flatten(),
            ignore_index=PAD_ID,
            label_smoothing=0.1,
        )
        loss.backward()

    def training_step(optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        optimizer.step()

    results = {"fwd+bwd": target_tokens / best_seconds(forward_backward, repeats)}
    for name, fused in (("fwd+bwd+Adam", None), ("fwd+bwd+Adam(fused)", True)):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, fused=fused)
        seconds = best_seconds(lambda: training_step(optimizer), repeats)  # noqa: B023
        results[name] = target_tokens / seconds
    return results


def last_position_logits(model: Seq2Seq, encoder_out: EncoderOutput, prefix: torch.Tensor):
    """What a decoder without a cache computes each step: the whole prefix again."""
    if isinstance(model, Transformer):
        x = model.tgt_embed(prefix)
        for layer in model.decoder_layers:
            x = layer(x, encoder_out.memory, encoder_out.src_mask)
        return model.output(model.decoder_norm(x[:, -1]))
    # The GRU's recurrent state is its cache; without it, the recurrence reruns from s(0).
    assert isinstance(model, GRUSeq2Seq)
    state = model.init_state(encoder_out)
    embedded = model.tgt_embedding(prefix)
    for t in range(prefix.size(1)):
        context, state = model._step(embedded[:, t], state)
    return model._logits(state.hidden[-1], context, embedded[:, -1])


@torch.no_grad()
def incremental_speedup(model: Seq2Seq, steps: int, batch_size: int) -> tuple[float, float]:
    """Seconds to decode ``steps`` tokens: cached steps, and the whole prefix every step."""
    model.eval()
    src = torch.randint(4, VOCAB_SIZE, (batch_size, 10))
    src_lengths = torch.full((batch_size,), 10)
    tokens = torch.randint(4, VOCAB_SIZE, (batch_size, steps))
    encoder_out = model.encode(src, src_lengths)

    def cached() -> None:
        state = model.init_state(encoder_out)
        for t in range(steps):
            _, state = model.decode_step(tokens[:, t], state)

    def recomputed() -> None:
        for t in range(steps):
            last_position_logits(model, encoder_out, tokens[:, : t + 1]).log_softmax(-1)

    return best_seconds(cached, 3), best_seconds(recomputed, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5, help="0 skips training")
    parser.add_argument("--decode-batch", type=int, default=64)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["transformer", "gru"],
        help="transformer, gru, or transformer-rfa-{enc,dec,cross,all} (RFA in that attention)",
    )
    parser.add_argument("--decode-steps", type=int, nargs="*", default=[10, 50, 100])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = tatoeba_like_batch(args.max_tokens, torch.Generator().manual_seed(0))
    print(
        f"torch {torch.__version__}, {args.threads} threads; batch {tuple(batch['src'].shape)} "
        f"src, {tuple(batch['tgt_in'].shape)} tgt, "
        f"{int((batch['tgt_out'] != PAD_ID).sum())} target tokens; vocab {VOCAB_SIZE}"
    )
    for name in args.models:
        model = build_model(model_config(name), VOCAB_SIZE, VOCAB_SIZE)
        print(f"\n{name}: {model.num_parameters():,} parameters")
        if args.repeats > 0:  # 0: decoding only
            throughput = training_throughput(model, batch, args.repeats)
            for name, tokens_per_second in throughput.items():
                print(f"  train {name:20s} {tokens_per_second:6.0f} target tokens/s")
        for steps in args.decode_steps:
            cached, recomputed = incremental_speedup(model, steps, args.decode_batch)
            print(
                f"  decode {steps:3d} steps x {args.decode_batch}: cached {cached * 1e3:7.1f} ms, "
                f"recomputed {recomputed * 1e3:8.1f} ms, speed-up {recomputed / cached:5.1f}x"
            )


if __name__ == "__main__":
    main()
