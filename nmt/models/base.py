"""The one interface both model families implement.

Training uses the teacher-forced :meth:`Seq2Seq.forward`; search (greedy and beam, in
``nmt/decoding.py``), evaluation and attention plots use only :meth:`Seq2Seq.encode`,
:meth:`Seq2Seq.init_state` and :meth:`Seq2Seq.decode_step`. A decoder state carries
everything a step needs (the encoder memory included), so beam search can expand and
reorder hypotheses with a single :meth:`DecoderState.reorder` call.

Attention plots of any layer, head and kind (:data:`ATTENTION_KINDS`) come from
:meth:`Seq2Seq.attention_maps`, a teacher-forced pass over a finished translation, so the
search never computes weights it does not return.

Shapes: ``src`` is ``(batch, src_len)`` token ids padded with ``pad_id``; ``src_lengths`` is
``(batch,)``, on the host or on ``src``'s device (models copy them where they need them:
the GRU packs by lengths on the host, masks are built on the device); ``tgt_in`` is the
target shifted right (``bos`` first), ``(batch, tgt_len)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID

# Queries from -> keys from: output -> source, source -> source, output -> output so far.
AttentionKind = Literal["cross", "encoder-self", "decoder-self"]
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("cross", "encoder-self", "decoder-self")


@dataclass
class EncoderOutput:
    memory: Tensor  # (batch, src_len, dim) encoder states
    src_mask: Tensor  # (batch, src_len) bool, True at real (non-padding) source positions


class DecoderState(ABC):
    """What an incremental decoder carries from one step to the next."""

    @abstractmethod
    def reorder(self, indices: Tensor, same_sentences: bool = False) -> DecoderState:
        """Select (and repeat) batch rows: row i of the result is row ``indices[i]`` of this.

        ``same_sentences``: the caller promises that row i and row ``indices[i]`` hold the
        same source sentence (beam search choosing among one sentence's hypotheses, with no
        sentence leaving). What depends on the source alone (the encoder memory and what is
        computed from it) is then kept as it is instead of copied row by row.
        """

    @property
    @abstractmethod
    def attention(self) -> Tensor | None:
        """Attention of the last step over source positions, ``(batch, src_len)``.

        Rows sum to 1 over real source positions and are 0 on padding. For the Transformer:
        the cross-attention of the configured layer, averaged over heads (with Random Feature
        Attention the weights are estimates: a few can be slightly negative and a row can sum
        to a little less than 1). ``None`` before the first step, and always for a model
        without cross-attention (``num_attention_layers("cross") == 0``).
        """


class Seq2Seq(nn.Module, ABC):
    """An encoder-decoder translation model.

    Token ids are the vocabularies' fixed special ids (``nmt.data.vocab``); ``max_length`` is
    the longest sequence (source with EOS, or output) the model takes, None for no limit.
    """

    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID
    max_length: int | None = None
    attention_heads: int = 1  # heads of every attention of the model

    @abstractmethod
    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Run the encoder."""

    @abstractmethod
    def decode(self, encoder_out: EncoderOutput, tgt_in: Tensor) -> Tensor:
        """Teacher-forced decoder: logits ``(batch, tgt_len, vocab)`` for every position."""

    @abstractmethod
    def init_state(self, encoder_out: EncoderOutput, need_attention: bool = True) -> DecoderState:
        """The decoder state before the first step.

        ``need_attention=False`` lets a model skip computing the attention weights that
        ``state.attention`` exposes (the Transformer then stays on fused kernels).
        """

    @abstractmethod
    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One incremental step.

        ``prev_tokens`` is ``(batch,)``: the previous output token (``bos`` at the first step).
        Returns next-token log-probabilities ``(batch, vocab)`` and the new state.
        """

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits ``(batch, tgt_len, vocab)``."""
        return self.decode(self.encode(src, src_lengths), tgt_in)

    def num_attention_layers(self, kind: AttentionKind) -> int:
        """How many layers have attention of ``kind`` (0: the model has none of that kind).

        Default: the cross-attention that ``state.attention`` exposes, and nothing else.
        """
        return int(kind == "cross")

    def attention_maps(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, kind: AttentionKind, layer: int
    ) -> Tensor:
        """Teacher-forced attention weights of every head of one attention, ``(batch, heads,
        queries, keys)``.

        ``layer`` indexes the layers with attention of ``kind`` (negative: from the last; the
        caller checks the range). Queries and keys: ``cross`` output positions (``tgt_len``)
        over source positions; ``encoder-self`` source over source; ``decoder-self`` output
        positions over the output so far (causal: 0 above the diagonal). Padding keys get 0.

        Default: ``state.attention`` step by step along ``tgt_in``, as one head; a family with
        more kinds, layers or heads overrides this.
        """
        if self.num_attention_layers(kind) == 0:
            raise ValueError(f"{type(self).__name__} has no {kind} attention")
        state = self.init_state(self.encode(src, src_lengths), need_attention=True)
        rows = []
        for t in range(tgt_in.size(1)):
            _, state = self.decode_step(tgt_in[:, t], state)
            rows.append(state.attention)
        return torch.stack(rows, dim=1).unsqueeze(1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(batch, max_len)`` bool mask, True at positions ``< length``."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)
