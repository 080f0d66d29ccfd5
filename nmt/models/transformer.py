"""Transformer encoder-decoder (Vaswani et al., 2017).

Embeddings scaled by ``sqrt(d_model)`` plus sinusoidal (or learned) positions; N encoder layers
(self-attention, feed-forward) and N decoder layers (causal self-attention, cross-attention,
feed-forward), each sublayer wrapped in a residual connection with LayerNorm after it
(post-norm, the paper) or before it (pre-norm, with a final LayerNorm on each stack).
Incremental decoding caches every layer's keys and values, and the memory's projected keys
and values once per sentence, so a step costs one position instead of the whole prefix.
Each attention type (encoder self, decoder self, cross) uses softmax or random feature
attention (``rfa.py``); with RFA the decoder self-attention cache is a fixed-size state.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.config import ConfigError, RFAConfig, TransformerConfig
from nmt.models.attention import (
    AttentionCore,
    Cache,
    MultiHeadAttention,
    SoftmaxAttention,
    reorder_cache,
)
from nmt.models.base import AttentionKind, DecoderState, EncoderOutput, Seq2Seq, padding_mask
from nmt.models.rfa import RandomFeatureAttention


def make_attention_core(
    kind: str, heads: int, head_dim: int, dropout: float, rfa: RFAConfig
) -> AttentionCore:
    """The attention core called ``kind`` for ``heads`` heads of size ``head_dim``.

    ``kind`` is a value of the config keys ``model.transformer.*_attention``: a new core is
    a new class plus a new value there and a branch here. ``dropout`` drops softmax weights
    (RFA has no attention matrix to drop from); ``rfa`` configures a random feature core.
    """
    if kind == "softmax":
        return SoftmaxAttention(dropout)
    if kind == "rfa":
        # Sized here: its random projection is a buffer that load_state_dict must find.
        return RandomFeatureAttention(heads, head_dim, rfa)
    raise ValueError(f"unknown attention core {kind!r}")


def sinusoidal_positions(max_positions: int, d_model: int) -> Tensor:
    """``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``."""
    positions = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model)
    )
    table = torch.zeros(max_positions, d_model)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)
    return table


class Embeddings(nn.Module):
    """Token embeddings times ``sqrt(d_model)``, plus positions, then dropout.

    ``learned_positions``: one trained vector per position (Gehring et al., 2017; BERT),
    initialised like fairseq's, ``N(0, 1 / d_model)``; otherwise the sinusoids of the paper.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_positions: int,
        dropout: float,
        learned_positions: bool = False,
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.tokens.weight, std=d_model**-0.5)
        self.scale = math.sqrt(d_model)
        if learned_positions:
            self.positions = nn.Parameter(torch.randn(max_positions, d_model) * d_model**-0.5)
        else:
            # Not saved with the weights: a pure function of the sizes.
            self.register_buffer("positions", sinusoidal_positions(max_positions, d_model), False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, offset: int = 0) -> Tensor:
        """``tokens (batch, len)`` at positions ``offset .. offset + len - 1``."""
        end = offset + tokens.size(1)
        if end > self.positions.size(0):
            raise ValueError(
                f"sequence of {end} tokens exceeds max_positions={self.positions.size(0)}"
            )
        return self.dropout(self.tokens(tokens) * self.scale + self.positions[offset:end])


class FeedForward(nn.Module):
    """``max(0, x W_1 + b_1) W_2 + b_2``. As in the paper, no dropout inside: the residual
    connection drops the output, and sampling a mask for the wide hidden layer costs more
    than any of the model's other elementwise work on CPU."""

    def __init__(self, d_model: int, ff_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d_model, ff_size), nn.ReLU(), nn.Linear(ff_size, d_model)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Residual(nn.Module):
    """``x + dropout(sublayer(...))`` with LayerNorm on the sublayer's input (pre-norm) or on
    the sum (post-norm). Used as ``combine(x, sublayer(sublayer_input(x)))``."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def sublayer_input(self, x: Tensor) -> Tensor:
        return self.norm(x) if self.pre_norm else x

    def combine(self, x: Tensor, sublayer_output: Tensor) -> Tensor:
        x = x + self.dropout(sublayer_output)
        return x if self.pre_norm else self.norm(x)


class EncoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        heads: int,
        ff_size: int,
        dropout: float,
        pre_norm: bool,
        core: AttentionCore,
    ) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, heads, core)
        self.feed_forward = FeedForward(d_model, ff_size)
        self.attention_residual = Residual(d_model, dropout, pre_norm)
        self.ff_residual = Residual(d_model, dropout, pre_norm)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        h = self.attention_residual.sublayer_input(x)
        x = self.attention_residual.combine(x, self.self_attention(h, h, key_mask=src_mask))
        return self.ff_residual.combine(x, self.feed_forward(self.ff_residual.sublayer_input(x)))

    def attention_weights(self, x: Tensor, src_mask: Tensor) -> Tensor:
        """The self-attention weights of ``forward(x, src_mask)``, every head."""
        h = self.attention_residual.sublayer_input(x)
        return self.self_attention.attention_weights(h, h, key_mask=src_mask)


class DecoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        heads: int,
        ff_size: int,
        dropout: float,
        pre_norm: bool,
        self_core: AttentionCore,
        cross_core: AttentionCore,
    ) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, heads, self_core)
        self.cross_attention = MultiHeadAttention(d_model, heads, cross_core)
        self.feed_forward = FeedForward(d_model, ff_size)
        self.self_residual = Residual(d_model, dropout, pre_norm)
        self.cross_residual = Residual(d_model, dropout, pre_norm)
        self.ff_residual = Residual(d_model, dropout, pre_norm)

    def forward(self, x: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
        x = self._after_self_attention(x)
        h = self.cross_residual.sublayer_input(x)
        x = self.cross_residual.combine(x, self.cross_attention(h, memory, key_mask=src_mask))
        return self.ff_residual.combine(x, self.feed_forward(self.ff_residual.sublayer_input(x)))

    def _after_self_attention(self, x: Tensor) -> Tensor:
        h = self.self_residual.sublayer_input(x)
        return self.self_residual.combine(x, self.self_attention(h, h, causal=True))

    def attention_weights(
        self, x: Tensor, memory: Tensor, src_mask: Tensor, kind: AttentionKind
    ) -> Tensor:
        """The weights of one attention (``cross`` or ``decoder-self``) in ``forward``."""
        if kind == "decoder-self":
            h = self.self_residual.sublayer_input(x)
            return self.self_attention.attention_weights(h, h, causal=True)
        h = self.cross_residual.sublayer_input(self._after_self_attention(x))
        return self.cross_attention.attention_weights(h, memory, key_mask=src_mask)

    def step(
        self, x: Tensor, self_cache: Cache, cross_cache: Cache, need_weights: bool
    ) -> tuple[Tensor, Cache, Tensor | None]:
        """One position ``(batch, 1, d_model)``; returns it, the new self-attention cache and
        the cross-attention weights (with ``need_weights``)."""
        h = self.self_residual.sublayer_input(x)
        update, self_cache, _ = self.self_attention.step(h, self_cache, new_key_value=h)
        x = self.self_residual.combine(x, update)
        h = self.cross_residual.sublayer_input(x)
        update, _, weights = self.cross_attention.step(h, cross_cache, need_weights=need_weights)
        x = self.cross_residual.combine(x, update)
        x = self.ff_residual.combine(x, self.feed_forward(self.ff_residual.sublayer_input(x)))
        return x, self_cache, weights


@dataclass
class TransformerState(DecoderState):
    # per decoder layer: keys and values of the steps so far (softmax), or RFA's fixed-size
    # state, which the steps update instead of growing it
    self_caches: list[Cache]
    cross_caches: list[Cache]  # per decoder layer: the memory's keys, values and mask
    position: int  # target tokens consumed so far
    need_attention: bool = True
    last_attention: Tensor | None = None

    def reorder(self, indices: Tensor, same_sentences: bool = False) -> TransformerState:
        cross_caches = self.cross_caches
        if not same_sentences:
            cross_caches = [reorder_cache(cache, indices) for cache in cross_caches]
        return TransformerState(
            self_caches=[reorder_cache(cache, indices) for cache in self.self_caches],
            cross_caches=cross_caches,
            position=self.position,
            need_attention=self.need_attention,
            last_attention=None
            if self.last_attention is None
            else self.last_attention.index_select(0, indices),
        )

    @property
    def attention(self) -> Tensor | None:
        return self.last_attention


class Transformer(Seq2Seq):
    """Sized by the ``model.transformer`` section of the config (validated there)."""

    def __init__(self, config: TransformerConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__()
        if config.share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ConfigError(
                "model.transformer.share_embeddings: needs one joint vocabulary, but the source "
                f"has {src_vocab_size} entries and the target {tgt_vocab_size}"
            )
        d_model, heads, ff_size, dropout = (
            config.d_model,
            config.heads,
            config.ff_size,
            config.dropout,
        )
        pre_norm, max_positions = config.norm == "pre", config.max_positions
        learned_positions = config.positions == "learned"
        self.max_length = max_positions
        self.attention_heads = heads
        self.attention_layer = config.attention_layer % config.decoder_layers

        def core(kind: str, rfa: RFAConfig) -> AttentionCore:
            return make_attention_core(kind, heads, d_model // heads, config.attention_dropout, rfa)

        # Only causal decoder self-attention has a gated form (checked by the config).
        ungated_rfa = dataclasses.replace(config.rfa, gated=False)

        self.src_embed = Embeddings(
            src_vocab_size, d_model, max_positions, dropout, learned_positions
        )
        self.tgt_embed = (
            self.src_embed
            if config.share_embeddings
            else Embeddings(tgt_vocab_size, d_model, max_positions, dropout, learned_positions)
        )
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(
                d_model,
                heads,
                ff_size,
                dropout,
                pre_norm,
                core(config.encoder_attention, ungated_rfa),
            )
            for _ in range(config.encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(
                d_model,
                heads,
                ff_size,
                dropout,
                pre_norm,
                core(config.decoder_attention, config.rfa),
                core(config.cross_attention, ungated_rfa),
            )
            for _ in range(config.decoder_layers)
        )
        # Pre-norm leaves the residual stream unnormalised; post-norm layers end normalised.
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.output = nn.Linear(d_model, tgt_vocab_size, bias=False)
        self._init_linear_weights()
        if config.tie_output_embeddings:
            self.output.weight = self.tgt_embed.tokens.weight

    def _init_linear_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        src_mask = padding_mask(src_lengths.to(src.device, non_blocking=True), src.size(1))
        x = self.src_embed(src)
        for layer in self.encoder_layers:
            x = layer(x, src_mask)
        return EncoderOutput(memory=self.encoder_norm(x), src_mask=src_mask)

    def decode(self, encoder_out: EncoderOutput, tgt_in: Tensor) -> Tensor:
        # Target padding needs no mask: it comes after the real tokens, which the causal
        # mask already hides it from.
        x = self.tgt_embed(tgt_in)
        for layer in self.decoder_layers:
            x = layer(x, encoder_out.memory, encoder_out.src_mask)
        return self.output(self.decoder_norm(x))

    def init_state(
        self, encoder_out: EncoderOutput, need_attention: bool = True
    ) -> TransformerState:
        """``need_attention=False`` keeps every step on the fused attention kernels, keeps no
        per-key state for weights in any cache, and leaves ``state.attention`` as None."""
        memory, src_mask = encoder_out.memory, encoder_out.src_mask
        return TransformerState(
            self_caches=[
                layer.self_attention.empty_cache(memory.size(0), memory)
                for layer in self.decoder_layers
            ],
            cross_caches=[
                layer.cross_attention.memory_cache(
                    memory, src_mask, need_weights=need_attention and i == self.attention_layer
                )
                for i, layer in enumerate(self.decoder_layers)
            ],
            position=0,
            need_attention=need_attention,
        )

    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, TransformerState]:
        assert isinstance(state, TransformerState)
        x = self.tgt_embed(prev_tokens.unsqueeze(1), offset=state.position)
        self_caches, attention = [], None
        for index, layer in enumerate(self.decoder_layers):
            need_weights = state.need_attention and index == self.attention_layer
            x, self_cache, weights = layer.step(
                x, state.self_caches[index], state.cross_caches[index], need_weights
            )
            self_caches.append(self_cache)
            if weights is not None:
                attention = weights
        logits = self.output(self.decoder_norm(x)).squeeze(1)
        new_state = TransformerState(
            self_caches, state.cross_caches, state.position + 1, state.need_attention, attention
        )
        return torch.log_softmax(logits, dim=-1), new_state

    def num_attention_layers(self, kind: AttentionKind) -> int:
        return len(self.encoder_layers if kind == "encoder-self" else self.decoder_layers)

    def attention_maps(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, kind: AttentionKind, layer: int
    ) -> Tensor:
        src_mask = padding_mask(src_lengths.to(src.device, non_blocking=True), src.size(1))
        x = self.src_embed(src)
        layers = list(self.encoder_layers)
        if kind == "encoder-self":
            for encoder_layer in layers[:layer]:
                x = encoder_layer(x, src_mask)
            return layers[layer].attention_weights(x, src_mask)
        memory = self.encode(src, src_lengths).memory
        y = self.tgt_embed(tgt_in)
        layers = list(self.decoder_layers)
        for decoder_layer in layers[:layer]:
            y = decoder_layer(y, memory, src_mask)
        return layers[layer].attention_weights(y, memory, src_mask, kind)
