"""GRU encoder-decoder with attention (Bahdanau, Cho and Bengio, 2015).

Encoder: embeddings and a bidirectional multi-layer GRU over packed sequences; a bridge maps
its final states to the decoder's initial state. Decoder, at step t: the previous state
``s(t-1)`` queries the encoder states, giving alignment ``a(t)`` and context ``c(t)``; the
GRU reads ``[embed(y(t-1)); c(t)]``; the output layer reads ``[s(t); c(t); embed(y(t-1))]``.
The time loop is the only loop (attention needs ``s(t-1)``); everything that does not depend
on it (embeddings, key projections, the output layer) runs over all steps at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import GRUConfig
from nmt.models.attention import attend, make_score, padding_bias
from nmt.models.base import DecoderState, EncoderOutput, Seq2Seq, padding_mask


@dataclass
class GRUEncoderOutput(EncoderOutput):
    final: Tensor  # (batch, 2 * hidden_size): last layer's final forward and backward states


@dataclass
class GRUState(DecoderState):
    hidden: list[Tensor]  # per decoder layer, (batch, decoder_size); the last is s(t)
    memory: Tensor  # (batch, src_len, 2 * hidden_size)
    keys: Tensor  # the memory projected by the score function
    bias: Tensor  # (batch, src_len): 0 on real source positions, -inf on padding
    last_attention: Tensor | None = None

    def reorder(self, indices: Tensor, same_sentences: bool = False) -> GRUState:
        memory, keys, bias = self.memory, self.keys, self.bias
        if not same_sentences:
            memory, keys, bias = (t.index_select(0, indices) for t in (memory, keys, bias))
        return GRUState(
            hidden=[layer.index_select(0, indices) for layer in self.hidden],
            memory=memory,
            keys=keys,
            bias=bias,
            last_attention=None
            if self.last_attention is None
            else self.last_attention.index_select(0, indices),
        )

    @property
    def attention(self) -> Tensor | None:
        return self.last_attention


class GRUSeq2Seq(Seq2Seq):
    """Sized by the ``model.gru`` section of the config (validated there)."""

    def __init__(self, config: GRUConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__()
        embed_dim, hidden_size, dropout = config.embed_dim, config.hidden_size, config.dropout
        encoder_layers, decoder_layers = config.encoder_layers, config.decoder_layers
        memory_size = 2 * hidden_size  # both directions
        decoder_size = memory_size  # lets the dot scores compare s(t-1) with encoder states
        self.decoder_size = decoder_size

        self.src_embedding = nn.Embedding(src_vocab_size, embed_dim)
        self.encoder = nn.GRU(
            embed_dim,
            hidden_size,
            num_layers=encoder_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if encoder_layers > 1 else 0.0,
        )
        self.bridge = nn.Linear(memory_size, decoder_layers * decoder_size)

        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embed_dim)
        self.score = make_score(config.score, decoder_size, memory_size, config.attention_dim)
        self.cells = nn.ModuleList(
            nn.GRUCell(embed_dim + memory_size if layer == 0 else decoder_size, decoder_size)
            for layer in range(decoder_layers)
        )
        # A bottleneck the size of an embedding before the vocabulary projection, which
        # dominates the cost (Bahdanau's deep output layer, with tanh for maxout).
        self.output_layer = nn.Linear(decoder_size + memory_size + embed_dim, embed_dim)
        self.generator = nn.Linear(embed_dim, tgt_vocab_size)
        self.dropout = nn.Dropout(dropout)

    # --- encoder -------------------------------------------------------------------------

    def encode(self, src: Tensor, src_lengths: Tensor) -> GRUEncoderOutput:
        embedded = self.dropout(self.src_embedding(src))
        packed = pack_padded_sequence(
            embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_memory, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(packed_memory, batch_first=True, total_length=src.size(1))
        # final: (layers * 2, batch, hidden); the last two rows are the top layer's directions.
        final = torch.cat([final[-2], final[-1]], dim=1)
        src_mask = padding_mask(src_lengths.to(src.device), src.size(1))
        return GRUEncoderOutput(memory=memory, src_mask=src_mask, final=final)

    # --- decoder -------------------------------------------------------------------------

    def init_state(self, encoder_out: EncoderOutput, need_attention: bool = True) -> GRUState:
        """The bridge's state; the attention weights are a by-product, always available."""
        if not isinstance(encoder_out, GRUEncoderOutput):
            raise TypeError("GRUSeq2Seq.init_state needs the output of GRUSeq2Seq.encode")
        hidden = torch.tanh(self.bridge(encoder_out.final))
        memory = encoder_out.memory
        return GRUState(
            hidden=list(hidden.split(self.decoder_size, dim=1)),
            memory=memory,
            keys=self.score.project_keys(memory),
            bias=padding_bias(encoder_out.src_mask, memory.dtype),
        )

    def _step(self, embedded: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        """Attend with ``s(t-1)``, then advance the GRU; returns ``c(t)`` and the new state."""
        scores = self.score(state.hidden[-1], state.keys)
        context, weights = attend(scores, state.bias, state.memory)
        layer_input = torch.cat([embedded, context], dim=1)
        hidden: list[Tensor] = []
        for layer, cell in enumerate(self.cells):
            if layer > 0:
                layer_input = self.dropout(hidden[-1])
            hidden.append(cell(layer_input, state.hidden[layer]))
        new_state = GRUState(hidden, state.memory, state.keys, state.bias, weights)
        return context, new_state

    def _logits(self, top_hidden: Tensor, context: Tensor, embedded: Tensor) -> Tensor:
        """Output layer over ``[s(t); c(t); embed(y(t-1))]``, any number of steps at once."""
        features = torch.cat([top_hidden, context, embedded], dim=-1)
        return self.generator(self.dropout(torch.tanh(self.output_layer(features))))

    def decode(self, encoder_out: EncoderOutput, tgt_in: Tensor) -> Tensor:
        embedded = self.dropout(self.tgt_embedding(tgt_in))
        state = self.init_state(encoder_out)
        top_hiddens, contexts = [], []
        for t in range(tgt_in.size(1)):
            context, state = self._step(embedded[:, t], state)
            top_hiddens.append(state.hidden[-1])
            contexts.append(context)
        return self._logits(torch.stack(top_hiddens, 1), torch.stack(contexts, 1), embedded)

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, GRUState]:
        assert isinstance(state, GRUState)
        embedded = self.dropout(self.tgt_embedding(prev_tokens))
        context, state = self._step(embedded, state)
        logits = self._logits(state.hidden[-1], context, embedded)
        return torch.log_softmax(logits, dim=-1), state
