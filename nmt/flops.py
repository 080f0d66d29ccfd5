"""Model FLOPs of training steps and devices' peak rates: model FLOP utilisation (MFU).

MFU = FLOPs the model needs for the tokens trained on / seconds / the device's peak FLOP/s.
It counts the model's arithmetic only (no padding, no recomputation), per sentence lengths
(:class:`~nmt.data.loader.LengthSums`), so it does not flatter a run that pads a lot. The
formula (docs/training.md): a matrix product with a weight of N entries costs 2N FLOPs per
token forward and 4N backward, hence 6N per token and weight; attention adds 12 d FLOPs per
query-key pair per layer (``QK^T`` and the weighted sum of ``V``, 2d each forward, x3 with the
backward pass)::

    FLOPs = 6 (N_src S + N_tgt T) + 12 d (L_enc sum s^2 + L_dec sum(t(t+1)/2 + t s))

``S`` and ``T`` are the source and target tokens (with EOS), ``s`` and ``t`` per sentence;
``N_src`` are the weights applied to every source token (encoder layers, the cross-attention
key/value projections), ``N_tgt`` those applied to every target token (the rest of the
decoder and the output projection, whether tied to the embeddings or not). Embedding lookups
cost no FLOPs. Random-feature attention layers cost per token instead of per pair (below);
the GRU's additive attention costs per (target, source) pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nmt.data.loader import LengthSums
from nmt.models.base import Seq2Seq
from nmt.models.gru import GRUSeq2Seq
from nmt.models.rfa import RandomFeatureAttention
from nmt.models.transformer import Transformer

# Dense (no sparsity) tensor-core peaks for bf16/fp16 inputs, TFLOP/s, from the vendors'
# datasheets, by the words of torch.cuda.get_device_name(). fp32 training runs on TF32
# tensor cores at half these rates. Other GPUs: give training.peak_tflops.
PEAK_TFLOPS_16BIT: list[tuple[tuple[str, ...], float]] = [
    (("H100", "PCIe"), 756.0),
    (("H100",), 989.0),  # SXM
    (("H200",), 989.0),
    (("GH200",), 989.0),
    (("A100",), 312.0),
    (("L40S",), 362.0),
    (("L4",), 121.0),
    (("RTX", "4090"), 165.0),
]


@dataclass(frozen=True)
class FlopCounter:
    """Training FLOPs (forward and backward) as a linear function of a step's sizes."""

    per_src_token: float = 0.0
    per_tgt_token: float = 0.0
    per_src_pair: float = 0.0  # per sum of s^2
    per_tgt_causal_pair: float = 0.0  # per sum of t(t+1)/2
    per_cross_pair: float = 0.0  # per sum of t*s

    def __call__(self, lengths: LengthSums) -> float:
        return (
            self.per_src_token * lengths.src_tokens
            + self.per_tgt_token * lengths.tgt_tokens
            + self.per_src_pair * lengths.src_pairs
            + self.per_tgt_causal_pair * lengths.tgt_causal_pairs
            + self.per_cross_pair * lengths.cross_pairs
        )

    @classmethod
    def of(cls, model: Seq2Seq) -> FlopCounter:
        if isinstance(model, Transformer):
            return _transformer(model)
        if isinstance(model, GRUSeq2Seq):
            return _gru(model)
        # Another family: every non-embedding weight once per target token.
        return cls(per_tgt_token=6.0 * _weights(model, skip=(nn.Embedding,)))


def _weights(module: nn.Module, skip: tuple[type, ...] = ()) -> int:
    """Entries of the parameters of ``module``, less those inside modules of types ``skip``."""
    skipped = {id(p) for m in module.modules() if isinstance(m, skip) for p in m.parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in skipped)


def _rfa_token_flops(core: RandomFeatureAttention) -> float:
    """Training FLOPs per token on one side (queries, or keys with their values) of random
    feature attention: the features (a ``head_dim x num_features`` product) and their product
    with the ``(2 num_features) x (head_dim + 1)`` state."""
    heads, num_features, head_dim = core.projection.shape
    return 6.0 * heads * (num_features * head_dim + 2 * num_features * (head_dim + 1))


def _transformer(model: Transformer) -> FlopCounter:
    src = 6.0 * (
        sum(_weights(layer) for layer in model.encoder_layers) + _weights(model.encoder_norm)
    )
    tgt = 6.0 * (_weights(model.decoder_norm) + model.output.weight.numel())
    src_pair = tgt_pair = cross_pair = 0.0
    for layer in model.encoder_layers:
        attention = layer.self_attention
        if isinstance(attention.core, RandomFeatureAttention):
            src += 2 * _rfa_token_flops(attention.core)  # queries and keys: the same tokens
        else:
            src_pair += 12.0 * attention.query_proj.in_features
    for layer in model.decoder_layers:
        cross_kv = _weights(layer.cross_attention.key_value_proj)
        src += 6.0 * cross_kv  # the memory's keys and values: once per source token
        tgt += 6.0 * (_weights(layer) - cross_kv)
        attention, cross = layer.self_attention, layer.cross_attention
        if isinstance(attention.core, RandomFeatureAttention):
            tgt += 2 * _rfa_token_flops(attention.core)
        else:
            tgt_pair += 12.0 * attention.query_proj.in_features
        if isinstance(cross.core, RandomFeatureAttention):
            src += _rfa_token_flops(cross.core)  # keys and values
            tgt += _rfa_token_flops(cross.core)  # queries
        else:
            cross_pair += 12.0 * cross.query_proj.in_features
    return FlopCounter(src, tgt, src_pair, tgt_pair, cross_pair)


def _gru(model: GRUSeq2Seq) -> FlopCounter:
    key_projection = getattr(model.score, "key_proj", None)
    src = _weights(model.encoder) + (0 if key_projection is None else _weights(key_projection))
    # The additive score's last layer (v) works per (target, source) pair, not per token.
    v = getattr(model.score, "v", None)
    per_pair_weights = 0 if v is None else _weights(v)
    tgt = _weights(model, skip=(nn.Embedding,)) - src - per_pair_weights - _weights(model.bridge)
    memory_size = model.decoder_size  # = 2 x hidden_size, the encoder states' size
    # Per pair: the score (v, or a dot product with the memory) and the context's weighted sum.
    score = per_pair_weights if v is not None else memory_size
    return FlopCounter(6.0 * src, 6.0 * tgt, per_cross_pair=6.0 * (score + memory_size))


def peak_flops(
    device: torch.device, precision: str, configured_tflops: float = 0.0
) -> float | None:
    """Peak FLOP/s of ``device`` for training in ``precision``: ``configured_tflops`` when
    given (> 0), else from :data:`PEAK_TFLOPS_16BIT` for a known GPU; None when unknown (a CPU
    without a configured peak: no MFU is reported)."""
    if configured_tflops > 0:
        return configured_tflops * 1e12
    if device.type != "cuda":
        return None
    words = set(torch.cuda.get_device_name(device).replace("-", " ").split())
    for required, tflops in PEAK_TFLOPS_16BIT:
        if set(required) <= words:
            return tflops * 1e12 * (1.0 if precision in ("bf16", "fp16") else 0.5)
    return None
