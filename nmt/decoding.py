"""Search: greedy decoding and batched beam search, for both model families.

Tensors in, token ids out: text handling (normalisation, subwords, batching of strings)
lives with the translator (``nmt/translator.py``). Every search takes one
:class:`~nmt.config.DecodingSettings`.

Both searches drive a :class:`~nmt.models.base.Seq2Seq` through its incremental interface
(``encode``, ``init_state``, ``decode_step``, ``state.reorder``) and are vectorised over the
whole batch: a step costs one ``decode_step`` call and a few tensor operations, whatever the
batch size. Sentences that are done leave the batch (their rows are dropped from the decoder
state), so steps get cheaper as sentences finish.

Conventions shared by both searches:

* an output is at most ``max_len_a * source_length + max_len_b`` tokens long, EOS included,
  and never longer than the model's ``max_length``; at the last allowed step only EOS may be
  chosen (with its own log-probability);
* a hypothesis is ranked by ``log_prob / ((5 + length) / 6) ** alpha`` (GNMT length penalty,
  length with EOS; ``alpha`` is ``settings.length_penalty``); ``alpha = 0`` ranks by
  log-probability alone;
* attention over the source is collected only when ``settings.return_attention`` is set and
  the model has cross-attention (a recurrent model with ``score: none`` has none: its
  hypotheses' attention stays None); otherwise the models skip computing it
  (``init_state(..., need_attention=False)``).

Beam search keeps ``beam_size`` unfinished hypotheses per sentence. Each step it takes the
``2 * beam_size`` best extensions: those among the best ``beam_size`` that end in EOS join
the sentence's finished list, and the best ``beam_size`` that do not end in EOS continue, so
the beam stays full. A sentence is done at its length limit, or once ``beam_size`` hypotheses
have finished and none of the unfinished ones would beat the worst of them if it ended now
(exact for ``alpha = 0``, as log-probabilities only fall; for ``alpha > 0`` a much longer
hypothesis could in principle still win, the usual trade-off of toolkits). It then returns the
best ``n_best`` finished hypotheses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.config import DecodingSettings
from nmt.models.base import DecoderState, Seq2Seq

__all__ = ["DecodingSettings", "Hypothesis", "beam_search", "greedy_search", "search"]


@dataclass
class Hypothesis:
    """One output of the search."""

    tokens: list[int]  # output token ids, without EOS
    score: float  # log_prob divided by the length penalty: what the search ranks by
    log_prob: float  # total log-probability under the model, EOS included
    attention: Tensor | None = None  # (len(tokens) + 1, src_length), rows for tokens then EOS


def length_normalizer(lengths: Tensor | float, alpha: float) -> Tensor | float:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al., 2016)."""
    return ((5.0 + lengths) / 6.0) ** alpha


def max_output_lengths(
    src_lengths: Tensor, settings: DecodingSettings, limit: int | None = None
) -> Tensor:
    """Longest allowed output per sentence (EOS included): ``a * src_length + b``, at least 1,
    at most ``limit``."""
    lengths = (src_lengths.double() * settings.max_len_a + settings.max_len_b).floor().long()
    return lengths.clamp(min=1) if limit is None else lengths.clamp(min=1, max=limit)


def _collects_attention(model: Seq2Seq, settings: DecodingSettings) -> bool:
    return settings.return_attention and model.num_attention_layers("cross") > 0


def search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, settings: DecodingSettings
) -> list[list[Hypothesis]]:
    """n-best lists (best first), one per sentence: greedy for beam 1, else beam search."""
    if settings.beam_size == 1:
        return [[hypothesis] for hypothesis in greedy_search(model, src, src_lengths, settings)]
    return beam_search(model, src, src_lengths, settings)


def _append(history: Tensor, rows: Tensor, new: Tensor) -> Tensor:
    """The histories ``history[rows]`` (one step per position of dim 1) with ``new`` appended
    as their last step; ``rows`` may have any shape, ``new`` has its shape."""
    return torch.cat([history[rows], new.unsqueeze(rows.dim())], dim=rows.dim())


def _on_host(tensor: Tensor) -> Tensor:
    """``tensor`` read on the host. On a GPU this waits for every kernel queued before it, so
    the search reads once a step (greedy) or twice (beam); the tests count the calls."""
    return tensor.cpu()


class _LengthLimits:
    """The output length limits of the sentences still decoding, kept on the host (they come
    from the source lengths, which are there), so that the search knows when a sentence
    reaches its limit without reading anything from the GPU."""

    def __init__(
        self,
        src_lengths: Tensor,
        settings: DecodingSettings,
        limit: int | None,
        device: torch.device,
    ) -> None:
        self.host = max_output_lengths(src_lengths.cpu(), settings, limit)
        self.device = device
        self.longest = int(self.host.max())

    def reached(self, step: int) -> Tensor | None:
        """Which active sentences must end at ``step`` (0-based), on the device; None: none."""
        at_limit = self.host == step + 1
        return at_limit.to(self.device, non_blocking=True) if at_limit.any() else None

    def keep(self, going_on: Tensor) -> Tensor:
        """Only the active sentences at (host) positions ``going_on`` go on decoding; returns
        the positions on the device, to select the same sentences' tensors."""
        self.host = self.host[going_on]
        return going_on.to(self.device, non_blocking=True)


def _allow_only_eos(log_probs: Tensor, rows: Tensor, eos_id: int) -> Tensor:
    """Set every log-probability but EOS's to -inf in the selected rows (a length limit)."""
    limited = log_probs.masked_fill(rows.unsqueeze(1), float("-inf"))
    limited[:, eos_id] = log_probs[:, eos_id]
    return limited


@torch.inference_mode()
def greedy_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, settings: DecodingSettings
) -> list[Hypothesis]:
    """The most probable next token at every step, for a batch of sentences (the settings'
    beam size and n-best are not used)."""
    batch_size, device = src.size(0), src.device
    limits = _LengthLimits(src_lengths, settings, model.max_length, device)
    longest = limits.longest
    return_attention = _collects_attention(model, settings)
    state = model.init_state(model.encode(src, src_lengths), need_attention=return_attention)

    # Results, indexed by the sentence's position in the batch.
    tokens = torch.full((batch_size, longest), model.pad_id, dtype=torch.long, device=device)
    log_probs_sum = torch.zeros(batch_size, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    if return_attention:
        attention = torch.zeros(batch_size, longest, src.size(1), device=device)

    active = torch.arange(batch_size, device=device)  # batch positions still decoding
    prev_tokens = torch.full((batch_size,), model.bos_id, dtype=torch.long, device=device)
    for step in range(longest):
        log_probs, state = model.decode_step(prev_tokens, state)
        log_probs, at_limit = log_probs.float(), limits.reached(step)
        if at_limit is not None:
            log_probs = _allow_only_eos(log_probs, at_limit, model.eos_id)
        best_log_probs, best_tokens = log_probs.max(dim=-1)
        tokens[active, step] = best_tokens
        log_probs_sum[active] += best_log_probs
        if return_attention:
            attention[active, step] = state.attention.float()

        finished = _on_host(best_tokens == model.eos_id)  # the step's one read
        if finished.any():
            ended = finished.nonzero().squeeze(1).to(device, non_blocking=True)
            lengths[active[ended]] = step + 1
            if finished.all():
                break
            going_on = limits.keep((~finished).nonzero().squeeze(1))
            active, best_tokens = active[going_on], best_tokens[going_on]
            state = state.reorder(going_on)
        prev_tokens = best_tokens

    scores = log_probs_sum / length_normalizer(lengths, settings.length_penalty)
    return [
        Hypothesis(
            tokens=tokens[i, : length - 1].tolist(),
            score=score,
            log_prob=log_prob,
            attention=attention[i, :length, : src_lengths[i]].cpu() if return_attention else None,
        )
        for i, (length, score, log_prob) in enumerate(
            zip(lengths.tolist(), scores.tolist(), log_probs_sum.tolist(), strict=True)
        )
    ]


class _FinishedHypotheses:
    """The best ``beam_size`` finished hypotheses of every sentence, as padded tensors.

    Rows are sentences (batch positions), columns hypotheses sorted best first; an empty slot
    has score -inf.
    """

    def __init__(
        self,
        batch_size: int,
        beam_size: int,
        longest: int,
        src_len: int | None,  # None: no attention kept
        pad_id: int,
        device: torch.device,
    ) -> None:
        shape = (batch_size, beam_size)
        self.pad_id = pad_id
        self.scores = torch.full(shape, float("-inf"), device=device)
        self.log_probs = torch.full(shape, float("-inf"), device=device)
        self.lengths = torch.zeros(shape, dtype=torch.long, device=device)
        self.tokens = torch.full((*shape, longest), pad_id, dtype=torch.long, device=device)
        self.attention = None
        if src_len is not None:
            self.attention = torch.zeros((*shape, longest, src_len), device=device)

    def worst_scores(self, sentences: Tensor) -> Tensor:
        return self.scores[sentences, -1]

    def add(
        self,
        sentences: Tensor,
        scores: Tensor,
        log_probs: Tensor,
        length: int,
        tokens: Tensor,
        attention: Tensor | None,
    ) -> None:
        """Merge candidates ``(n, k)`` (score -inf: not a candidate) into the lists of
        ``sentences`` ``(n,)``; ``tokens`` is ``(n, k, length)``, EOS last."""
        beam_size, longest = self.scores.size(1), self.tokens.size(2)
        merged_scores, order = torch.cat([self.scores[sentences], scores], dim=1).topk(
            beam_size, dim=1
        )

        def merge(old: Tensor, new: Tensor) -> Tensor:
            both = torch.cat([old[sentences], new], dim=1)
            index = order.view(*order.shape, *[1] * (both.dim() - 2)).expand(
                -1, -1, *both.shape[2:]
            )
            return both.gather(1, index)

        pad = (0, longest - length)
        self.scores[sentences] = merged_scores
        self.log_probs[sentences] = merge(self.log_probs, log_probs)
        self.lengths[sentences] = merge(self.lengths, torch.full_like(order, length))
        self.tokens[sentences] = merge(self.tokens, F.pad(tokens, pad, value=self.pad_id))
        if self.attention is not None:
            self.attention[sentences] = merge(self.attention, F.pad(attention, (0, 0, *pad)))

    def best(self, n_best: int, src_lengths: Tensor) -> list[list[Hypothesis]]:
        """The ``n_best`` best of every sentence (fewer where fewer finished)."""
        results = []
        for i, src_length in enumerate(src_lengths.tolist()):
            nbest = []
            for k, (score, log_prob, length) in enumerate(
                zip(
                    self.scores[i, :n_best].tolist(),
                    self.log_probs[i, :n_best].tolist(),
                    self.lengths[i, :n_best].tolist(),
                    strict=True,
                )
            ):
                if score == float("-inf"):
                    continue
                attention = None
                if self.attention is not None:
                    attention = self.attention[i, k, :length, :src_length].cpu()
                tokens = self.tokens[i, k, : length - 1].tolist()
                nbest.append(Hypothesis(tokens, score, log_prob, attention))
            results.append(nbest)
        return results


@dataclass
class _Beams:
    """The unfinished hypotheses: ``width`` rows per active sentence, sentence-major (one row,
    the empty prefix, before the first step; ``beam_size`` rows after it)."""

    active: Tensor  # (sentences,) batch positions still decoding
    state: DecoderState
    width: int
    log_probs: Tensor  # (rows,) total log-probability of each prefix
    tokens: Tensor  # (rows, steps) the prefixes
    attention: Tensor  # (rows, steps, src_len); empty unless attention is collected
    prev_tokens: Tensor  # (rows,) the last token of each prefix (BOS at first)


@dataclass
class _Extensions:
    """The ``2 * beam_size`` best one-token extensions of each active sentence, best first:
    at most ``beam_size`` of them end in EOS, so at least ``beam_size`` can carry on."""

    log_probs: Tensor  # (sentences, 2 * beam) prefix + token log-probability
    tokens: Tensor  # (sentences, 2 * beam) the new token
    rows: Tensor  # (sentences, 2 * beam) the row (prefix) each one extends
    ends: Tensor  # (sentences, 2 * beam) bool: the token is EOS


def _expand(beams: _Beams, log_probs: Tensor, beam_size: int, eos_id: int) -> _Extensions:
    num_active, vocab_size = beams.active.numel(), log_probs.size(1)
    if 2 * beam_size > vocab_size:
        raise ValueError(f"beam size {beam_size} needs at least {2 * beam_size} output tokens")
    extension_log_probs = (beams.log_probs.unsqueeze(1) + log_probs).view(num_active, -1)
    top_log_probs, top_indices = extension_log_probs.topk(2 * beam_size, dim=1)
    tokens = top_indices % vocab_size
    first_row = torch.arange(num_active, device=log_probs.device).unsqueeze(1) * beams.width
    rows = first_row + torch.div(top_indices, vocab_size, rounding_mode="floor")
    return _Extensions(top_log_probs, tokens, rows, tokens == eos_id)


def _finish(
    finished: _FinishedHypotheses,
    beams: _Beams,
    extensions: _Extensions,
    step_attention: Tensor | None,
    length: int,
    settings: DecodingSettings,
) -> None:
    """Extensions ending in EOS among the best ``beam_size`` join their sentence's finished
    list, scored with the length penalty."""
    beam = settings.beam_size
    log_probs, rows = extensions.log_probs[:, :beam], extensions.rows[:, :beam]
    finishing = extensions.ends[:, :beam] & log_probs.isfinite()
    if not finishing.any():
        return
    scores = log_probs / length_normalizer(length, settings.length_penalty)
    finished.add(
        beams.active,
        scores.masked_fill(~finishing, float("-inf")),
        log_probs,
        length,
        _append(beams.tokens, rows, extensions.tokens[:, :beam]),
        None if step_attention is None else _append(beams.attention, rows, step_attention[rows]),
    )


def _carry_on(extensions: _Extensions, beam_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """(rows, tokens, log_probs), each ``(sentences, beam)``: the best ``beam_size``
    extensions that do not end in EOS, best first (a stable choice)."""
    width = extensions.ends.size(1)
    rank = torch.arange(width, device=extensions.ends.device) + extensions.ends * width
    chosen = rank.topk(beam_size, dim=1, largest=False).indices
    return (
        extensions.rows.gather(1, chosen),
        extensions.tokens.gather(1, chosen),
        extensions.log_probs.gather(1, chosen),
    )


def _advance(
    beams: _Beams,
    rows: Tensor,
    tokens: Tensor,
    log_probs: Tensor,
    going_on: Tensor | None,
    step_attention: Tensor | None,
    beam_size: int,
) -> _Beams:
    """The next step's beams: only the sentences at positions ``going_on`` stay (None: all
    do), the chosen extensions become the rows."""
    active, some_done = beams.active, going_on is not None
    if some_done:
        active, rows = active[going_on], rows[going_on]
        tokens, log_probs = tokens[going_on], log_probs[going_on]
    rows, prev_tokens = rows.view(-1), tokens.view(-1)
    attention = beams.attention
    if step_attention is not None:
        attention = _append(attention, rows, step_attention[rows])
    # Rows keep their sentence unless one leaves or the first step fans out to `beam`;
    # then the encoder side need not be copied (with RFA cross-attention, whose cache is
    # large, that copy cost 28% of beam search: docs/benchmarks.md, ## Decoding).
    same_sentences = beams.width == beam_size and not some_done
    return _Beams(
        active=active,
        state=beams.state.reorder(rows, same_sentences=same_sentences),
        width=beam_size,
        log_probs=log_probs.view(-1),
        tokens=_append(beams.tokens, rows, prev_tokens),
        attention=attention,
        prev_tokens=prev_tokens,
    )


@torch.inference_mode()
def beam_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, settings: DecodingSettings
) -> list[list[Hypothesis]]:
    """Beam search for a batch of sentences; the ``n_best`` best hypotheses of each (fewer
    only when the length limit leaves fewer possible outputs)."""
    batch_size, device, beam = src.size(0), src.device, settings.beam_size
    limits = _LengthLimits(src_lengths, settings, model.max_length, device)
    longest = limits.longest
    return_attention = _collects_attention(model, settings)
    src_len = src.size(1) if return_attention else None
    finished = _FinishedHypotheses(batch_size, beam, longest, src_len, model.pad_id, device)
    beams = _Beams(
        active=torch.arange(batch_size, device=device),
        state=model.init_state(model.encode(src, src_lengths), need_attention=return_attention),
        width=1,
        log_probs=torch.zeros(batch_size, device=device),
        tokens=torch.zeros(batch_size, 0, dtype=torch.long, device=device),
        attention=torch.zeros(batch_size, 0, src.size(1), device=device),
        prev_tokens=torch.full((batch_size,), model.bos_id, dtype=torch.long, device=device),
    )
    for step in range(longest):
        log_probs, beams.state = model.decode_step(beams.prev_tokens, beams.state)
        log_probs, at_limit = log_probs.float(), limits.reached(step)
        if at_limit is not None:
            rows_at_limit = at_limit.repeat_interleave(beams.width)
            log_probs = _allow_only_eos(log_probs, rows_at_limit, model.eos_id)
        step_attention = beams.state.attention.float() if return_attention else None

        extensions = _expand(beams, log_probs, beam, model.eos_id)
        _finish(finished, beams, extensions, step_attention, step + 1, settings)
        rows, tokens, next_log_probs = _carry_on(extensions, beam)
        # A sentence is done when its best unfinished hypothesis, scored as if it ended now,
        # cannot beat the worst of `beam` finished ones (an empty slot scores -inf).
        best_unfinished = next_log_probs[:, 0] / length_normalizer(
            step + 1, settings.length_penalty
        )
        done = best_unfinished <= finished.worst_scores(beams.active)
        if at_limit is not None:
            done |= at_limit
        done = _on_host(done)  # the step's second read (_finish's is the first)
        if done.all():
            break
        going_on = limits.keep((~done).nonzero().squeeze(1)) if done.any() else None
        beams = _advance(beams, rows, tokens, next_log_probs, going_on, step_attention, beam)
    return finished.best(settings.n_best, src_lengths)
