"""Recurrent encoder-decoder with attention (Bahdanau, Cho and Bengio, 2015), with GRU, LSTM
or Elman RNN cells (``model.gru.cell``; the config section keeps the family's first name).

Encoder: embeddings and a bidirectional multi-layer RNN over packed sequences; a bridge maps
its final states to the decoder's initial state (for the LSTM a second bridge maps the final
memory cells to the decoder's). Decoder, at step t: the previous state ``s(t-1)`` queries
the encoder states, giving alignment ``a(t)`` and context ``c(t)``; the cell reads
``[embed(y(t-1)); c(t)]``; the output layer reads ``[s(t); c(t); embed(y(t-1))]``. With
``score: none`` there is no attention: ``c(t)`` is the same fixed context at every step, the
encoder's final states (Cho et al., 2014), the baseline that attention is compared with.
The time loop is the only loop (attention needs ``s(t-1)``); everything that does not depend
on it (embeddings, key projections, the output layer) runs over all steps at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import GRUConfig
from nmt.models.attention import Cache, attend, make_score, padding_bias, reorder_cache
from nmt.models.base import AttentionKind, DecoderState, EncoderOutput, Seq2Seq, padding_mask

# model.gru.cell -> (the encoder's multi-layer RNN, the decoder's one-step cell)
CELLS: dict[str, tuple[type[nn.RNNBase], type[nn.Module]]] = {
    "gru": (nn.GRU, nn.GRUCell),
    "lstm": (nn.LSTM, nn.LSTMCell),
    "rnn": (nn.RNN, nn.RNNCell),
}


@dataclass
class RecurrentEncoderOutput(EncoderOutput):
    final: Tensor  # (batch, 2 * hidden_size): last layer's final forward and backward states
    final_cells: Tensor | None = None  # the same for the LSTM's memory cells; else None


@dataclass
class RecurrentState(DecoderState):
    hidden: list[Tensor]  # per decoder layer, (batch, decoder_size); the last is s(t)
    cell_states: list[Tensor] | None  # per decoder layer, the LSTM's memory cells; else None
    # What the decoder reads from the source, batch first: with attention the ``memory``
    # (batch, src_len, 2 * hidden_size), its ``keys`` projected by the score function and the
    # padding ``bias`` (0 on real positions, -inf on padding); without, the fixed ``context``.
    source: Cache
    last_attention: Tensor | None = None

    def reorder(self, indices: Tensor, same_sentences: bool = False) -> RecurrentState:
        def rows(tensors: list[Tensor] | None) -> list[Tensor] | None:
            return None if tensors is None else [t.index_select(0, indices) for t in tensors]

        return RecurrentState(
            hidden=rows(self.hidden),
            cell_states=rows(self.cell_states),
            source=self.source if same_sentences else reorder_cache(self.source, indices),
            last_attention=None
            if self.last_attention is None
            else self.last_attention.index_select(0, indices),
        )

    @property
    def attention(self) -> Tensor | None:
        return self.last_attention


class RecurrentSeq2Seq(Seq2Seq):
    """Sized by the ``model.gru`` section of the config (validated there)."""

    def __init__(self, config: GRUConfig, src_vocab_size: int, tgt_vocab_size: int) -> None:
        super().__init__()
        embed_dim, hidden_size, dropout = config.embed_dim, config.hidden_size, config.dropout
        encoder_layers, decoder_layers = config.encoder_layers, config.decoder_layers
        memory_size = 2 * hidden_size  # both directions
        decoder_size = memory_size  # lets the dot scores compare s(t-1) with encoder states
        self.decoder_size = decoder_size
        self.is_lstm = config.cell == "lstm"
        encoder_class, cell_class = CELLS[config.cell]

        self.src_embedding = nn.Embedding(src_vocab_size, embed_dim)
        self.encoder = encoder_class(
            embed_dim,
            hidden_size,
            num_layers=encoder_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if encoder_layers > 1 else 0.0,
        )
        self.bridge = nn.Linear(memory_size, decoder_layers * decoder_size)
        # The LSTM's memory cells get their own bridge, without tanh: cells are unbounded.
        self.cell_bridge = (
            nn.Linear(memory_size, decoder_layers * decoder_size) if self.is_lstm else None
        )

        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embed_dim)
        self.score = make_score(config.score, decoder_size, memory_size, config.attention_dim)
        self.cells = nn.ModuleList(
            cell_class(embed_dim + memory_size if layer == 0 else decoder_size, decoder_size)
            for layer in range(decoder_layers)
        )
        # A bottleneck the size of an embedding before the vocabulary projection, which
        # dominates the cost (Bahdanau's deep output layer, with tanh for maxout).
        self.output_layer = nn.Linear(decoder_size + memory_size + embed_dim, embed_dim)
        self.generator = nn.Linear(embed_dim, tgt_vocab_size)
        self.dropout = nn.Dropout(dropout)

    def num_attention_layers(self, kind: AttentionKind) -> int:
        return int(kind == "cross" and self.score is not None)

    # --- encoder -------------------------------------------------------------------------

    def encode(self, src: Tensor, src_lengths: Tensor) -> RecurrentEncoderOutput:
        # Packing needs the lengths on the host, sorted. Sorting here, on the host, rather
        # than with enforce_sorted=False keeps torch from copying its device-side order back
        # to the host (a wait for the GPU at every step); the order goes the other way.
        host_lengths = src_lengths.cpu()
        longest_first = host_lengths.argsort(descending=True, stable=True)
        original_order = longest_first.argsort().to(src.device, non_blocking=True)

        def unsort(sorted_rows: Tensor) -> Tensor:
            return sorted_rows.index_select(0, original_order)

        embedded = self.dropout(self.src_embedding(src))
        packed = pack_padded_sequence(
            embedded.index_select(0, longest_first.to(src.device, non_blocking=True)),
            host_lengths[longest_first],
            batch_first=True,
        )
        packed_memory, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(packed_memory, batch_first=True, total_length=src.size(1))
        # final: (layers * 2, batch, hidden); the last two rows are the top layer's directions.
        final, final_cells = final if self.is_lstm else (final, None)
        src_mask = padding_mask(src_lengths.to(src.device, non_blocking=True), src.size(1))
        return RecurrentEncoderOutput(
            memory=unsort(memory),
            src_mask=src_mask,
            final=unsort(_top_layer(final)),
            final_cells=None if final_cells is None else unsort(_top_layer(final_cells)),
        )

    # --- decoder -------------------------------------------------------------------------

    def init_state(self, encoder_out: EncoderOutput, need_attention: bool = True) -> RecurrentState:
        """The bridge's state; the attention weights are a by-product, always available."""
        if not isinstance(encoder_out, RecurrentEncoderOutput):
            raise TypeError(f"{type(self).__name__}.init_state needs the output of its encode")
        hidden = torch.tanh(self.bridge(encoder_out.final)).split(self.decoder_size, dim=1)
        cell_states = None
        if self.cell_bridge is not None:
            cells = self.cell_bridge(encoder_out.final_cells)
            cell_states = list(cells.split(self.decoder_size, dim=1))
        if self.score is None:
            source = {"context": encoder_out.final}
        else:
            memory = encoder_out.memory
            source = {
                "memory": memory,
                "keys": self.score.project_keys(memory),
                "bias": padding_bias(encoder_out.src_mask, memory.dtype),
            }
        return RecurrentState(list(hidden), cell_states, source)

    def _step(self, embedded: Tensor, state: RecurrentState) -> tuple[Tensor, RecurrentState]:
        """Attend with ``s(t-1)``, then advance the cells; returns ``c(t)`` and the new state."""
        source, weights = state.source, None
        if self.score is None:
            context = source["context"]
        else:
            scores = self.score(state.hidden[-1], source["keys"])
            context, weights = attend(scores, source["bias"], source["memory"])
        layer_input = torch.cat([embedded, context], dim=1)
        hidden: list[Tensor] = []
        cell_states: list[Tensor] | None = None if state.cell_states is None else []
        for layer, cell in enumerate(self.cells):
            if layer > 0:
                layer_input = self.dropout(hidden[-1])
            if cell_states is None:
                hidden.append(cell(layer_input, state.hidden[layer]))
            else:
                h, c = cell(layer_input, (state.hidden[layer], state.cell_states[layer]))
                hidden.append(h)
                cell_states.append(c)
        return context, RecurrentState(hidden, cell_states, source, weights)

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

    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, RecurrentState]:
        assert isinstance(state, RecurrentState)
        embedded = self.dropout(self.tgt_embedding(prev_tokens))
        context, state = self._step(embedded, state)
        logits = self._logits(state.hidden[-1], context, embedded)
        return torch.log_softmax(logits, dim=-1), state


# The family's name before it had LSTM and RNN cells.
GRUSeq2Seq = RecurrentSeq2Seq


def _top_layer(final: Tensor) -> Tensor:
    """``(layers * 2, batch, hidden)`` -> the top layer's two directions, ``(batch, 2 * hidden)``."""
    return torch.cat([final[-2], final[-1]], dim=1)
