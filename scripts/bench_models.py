"""Benchmark the model families (figures go to docs/benchmarks.md, ``## Models``).

1. Training throughput: target tokens per second of forward + backward + loss, alone and
   with an Adam step (torch's default Adam and ``fused=True``), on a token-budget batch of
   Tatoeba-like lengths (source and target about 10 tokens); on a GPU also the model FLOP
   utilisation (``nmt/flops.py``) and peak memory, in ``--precision`` and, with
   ``--compile``, compiled as well.
2. Incremental decoding: time to decode T steps with the cached ``decode_step`` against a
   decoder without a cache, which reruns the whole prefix every step (and projects only the
   last position onto the vocabulary).

Timings are the best of ``--repeats`` runs: the machine may be shared.

Usage: .venv/bin/python scripts/bench_models.py [--threads 2] [--max-tokens 4096 ...]
       [--models transformer gru transformer-rfa-dec] [--decode-steps 10 50 100] [--repeats 5]
       [--device cuda --precision bf16 --compile] [--config EXPERIMENT.yaml] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from nmt.config import ModelConfig, load_config
from nmt.data.loader import LengthSums
from nmt.data.vocab import PAD_ID
from nmt.devices import resolve_device
from nmt.flops import FlopCounter, peak_flops
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
    """Default sizes of ``gru``, ``transformer`` or ``transformer-rfa-{enc,dec,cross,all}``;
    a YAML path: that experiment's model."""
    if name.endswith(".yaml"):
        return load_config(name).model
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


def best_seconds(function: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    def timed() -> float:
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        return time.perf_counter() - start

    for _ in range(warmup):
        function()
    return min(timed() for _ in range(repeats))


def synchronize() -> None:
    """Wait for the GPU: its work is asynchronous, so timings must end with it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def batch_lengths(batch: dict[str, torch.Tensor]) -> LengthSums:
    """The batch's sizes for FLOP counts (lengths with EOS, as in nmt/data/loader.py)."""
    s = batch["src_lengths"].long() + 1
    t = (batch["tgt_out"] != PAD_ID).sum(dim=1).long()
    return LengthSums(
        int(s.sum()), int(t.sum()), int((s * s).sum()), int((t * (t + 1) // 2).sum()),
        int((t * s).sum()),
    )  # fmt: skip


def training_throughput(
    model: Seq2Seq, batch: dict, repeats: int, precision: str = "fp32", compiled: bool = False
) -> dict[str, float]:
    """Target tokens/s of forward+backward, and with an Adam step (default and fused);
    ``precision`` bf16/fp16: under autocast; ``compiled``: through torch.compile (its
    compilation happens in the warm-up, untimed)."""
    model.train()
    device = next(model.parameters()).device
    target_tokens = int((batch["tgt_out"] != PAD_ID).sum())
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    forward = torch.compile(model, dynamic=True) if compiled else model

    def forward_backward() -> None:
        with autocast:
            logits = forward(batch["src"], batch["src_lengths"], batch["tgt_in"])
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(),
                batch["tgt_out"].flatten(),
                ignore_index=PAD_ID,
                label_smoothing=0.1,
            )
        loss.backward()

    def training_step(optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        optimizer.step()

    warmup = 3 if compiled else 1
    results = {"fwd+bwd": target_tokens / best_seconds(forward_backward, repeats, warmup)}
    for name, fused in (("fwd+bwd+Adam", None), ("fwd+bwd+Adam(fused)", True)):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, fused=fused)
        seconds = best_seconds(lambda: training_step(optimizer), repeats, warmup)  # noqa: B023
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
    device = next(model.parameters()).device
    src = torch.randint(4, VOCAB_SIZE, (batch_size, 10), device=device)
    src_lengths = torch.full((batch_size,), 10)  # on the host, as the translator keeps them
    tokens = torch.randint(4, VOCAB_SIZE, (batch_size, steps), device=device)
    encoder_out = model.encode(src, src_lengths)

    def cached() -> None:
        state = model.init_state(encoder_out)
        for t in range(steps):
            _, state = model.decode_step(tokens[:, t], state)

    def recomputed() -> None:
        for t in range(steps):
            last_position_logits(model, encoder_out, tokens[:, : t + 1]).log_softmax(-1)

    return best_seconds(cached, 3), best_seconds(recomputed, 1)


def measure_training(model: Seq2Seq, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """One row per batch size and mode (eager, and compiled with ``--compile``)."""
    rows = []
    peak = peak_flops(device, args.precision, args.peak_tflops)
    flop_counter = FlopCounter.of(model)
    for max_tokens in args.max_tokens:
        batch = tatoeba_like_batch(max_tokens, torch.Generator().manual_seed(0))
        # Source lengths stay on the host, as the trainer's batches keep them (Batch.to).
        batch = {
            name: tensor if name == "src_lengths" else tensor.to(device)
            for name, tensor in batch.items()
        }
        target_tokens = int((batch["tgt_out"] != PAD_ID).sum())
        flops_per_step = flop_counter(batch_lengths(batch))
        for compiled in (False, True) if args.compile else (False,):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rates = training_throughput(model, batch, args.repeats, args.precision, compiled)
            row = {"max_tokens": max_tokens, "target_tokens": target_tokens}
            row |= {"compiled": compiled, "precision": args.precision, "tokens_per_s": rates}
            best = max(rates["fwd+bwd+Adam"], rates["fwd+bwd+Adam(fused)"])
            if peak:
                row["mfu"] = round(best / target_tokens * flops_per_step / peak, 4)
            if device.type == "cuda":
                row["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
            rows.append(row)
            mode = "compiled" if compiled else "eager"
            extra = f", MFU {row['mfu']:.1%}" if "mfu" in row else ""
            print(f"  train {max_tokens} tokens ({target_tokens} targets), {mode}{extra}")
            for name, tokens_per_second in rates.items():
                print(f"    {name:20s} {tokens_per_second:9.0f} target tokens/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[4096])
    parser.add_argument("--repeats", type=int, default=5, help="0 skips training")
    parser.add_argument("--decode-batch", type=int, default=64)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["transformer", "gru"],
        help="transformer, gru, transformer-rfa-{enc,dec,cross,all} (RFA in that attention), "
        "or an experiment's YAML file (its model)",
    )
    parser.add_argument("--decode-steps", type=int, nargs="*", default=[10, 50, 100])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="for MFU (0: known GPUs)")
    parser.add_argument("--json", type=Path, help="write the training rows as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    )
    print(f"torch {torch.__version__}, {device} ({name}); vocab {VOCAB_SIZE}")
    report = {"device": str(device), "device_name": name, "torch": torch.__version__, "models": {}}
    for name in args.models:
        model = build_model(model_config(name), VOCAB_SIZE, VOCAB_SIZE).to(device)
        print(f"\n{name}: {model.num_parameters():,} parameters")
        if args.repeats > 0:  # 0: decoding only
            report["models"][name] = measure_training(model, args, device)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        for steps in args.decode_steps:
            cached, recomputed = incremental_speedup(model, steps, args.decode_batch)
            print(
                f"  decode {steps:3d} steps x {args.decode_batch}: cached {cached * 1e3:7.1f} ms, "
                f"recomputed {recomputed * 1e3:8.1f} ms, speed-up {recomputed / cached:5.1f}x"
            )


if __name__ == "__main__":
    main()
