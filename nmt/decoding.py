"""Search: greedy decoding and batched beam search, for both model families.

Both searches drive a :class:`~nmt.models.base.Seq2Seq` through its incremental interface
(``encode``, ``init_state``, ``decode_step``, ``state.reorder``) and are vectorised over the
whole batch: a step costs one ``decode_step`` call and a few tensor operations, whatever the
batch size. Sentences that are done leave the batch (their rows are dropped from the decoder
state), so steps get cheaper as sentences finish.

Conventions shared by both searches:

* an output is at most ``max_len_a * source_length + max_len_b`` tokens long, EOS included;
  at the last allowed step only EOS may be chosen (with its own log-probability);
* a hypothesis is ranked by ``log_prob / ((5 + length) / 6) ** alpha`` (GNMT length penalty,
  length with EOS); ``alpha = 0`` ranks by log-probability alone;
* attention over the source is collected only when ``return_attention`` is set; otherwise
  the models skip computing it (``init_state(..., need_attention=False)``).

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

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.data.batching import encode_source_batch
from nmt.data.normalize import normalize
from nmt.data.vocab import Vocabulary
from nmt.models.base import Seq2Seq

EOS_PIECE = "</s>"  # how the source's EOS is labelled in source_pieces


@dataclass
class Hypothesis:
    """One output of the search."""

    tokens: list[int]  # output token ids, without EOS
    score: float  # log_prob divided by the length penalty: what the search ranks by
    log_prob: float  # total log-probability under the model, EOS included
    attention: Tensor | None = None  # (len(tokens) + 1, src_length), rows for tokens then EOS


def length_penalty(lengths: Tensor | float, alpha: float) -> Tensor | float:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al., 2016)."""
    return ((5.0 + lengths) / 6.0) ** alpha


def max_output_lengths(
    src_lengths: Tensor, max_len_a: float, max_len_b: int, limit: int | None = None
) -> Tensor:
    """Longest allowed output per sentence (EOS included): ``a * src_length + b``, at least 1."""
    lengths = (src_lengths.double() * max_len_a + max_len_b).floor().long().clamp(min=1)
    return lengths if limit is None else lengths.clamp(max=limit)


def search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    *,
    beam_size: int = 1,
    n_best: int = 1,
    alpha: float = 1.0,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    max_length: int | None = None,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """n-best lists (best first), one per sentence: greedy for beam 1, else beam search.

    ``max_length`` caps every output length (the model's position limit, if it has one).
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need 1 <= n_best <= beam_size, got n_best={n_best}, beam={beam_size}")
    settings = {
        "alpha": alpha,
        "max_len_a": max_len_a,
        "max_len_b": max_len_b,
        "max_length": max_length,
        "return_attention": return_attention,
    }
    if beam_size == 1:
        return [[hypothesis] for hypothesis in greedy_search(model, src, src_lengths, **settings)]
    return beam_search(model, src, src_lengths, beam_size=beam_size, n_best=n_best, **settings)


def _append(history: Tensor, rows: Tensor, new: Tensor) -> Tensor:
    """The histories ``history[rows]`` (one step per position of dim 1) with ``new`` appended
    as their last step; ``rows`` may have any shape, ``new`` has its shape."""
    return torch.cat([history[rows], new.unsqueeze(rows.dim())], dim=rows.dim())


def _allow_only_eos(log_probs: Tensor, rows: Tensor, eos_id: int) -> Tensor:
    """Set every log-probability but EOS's to -inf in the selected rows (a length limit)."""
    if not rows.any():
        return log_probs
    limited = log_probs.masked_fill(rows.unsqueeze(1), float("-inf"))
    limited[:, eos_id] = log_probs[:, eos_id]
    return limited


@torch.inference_mode()
def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    *,
    alpha: float = 1.0,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    max_length: int | None = None,
    return_attention: bool = False,
) -> list[Hypothesis]:
    """The most probable next token at every step, for a batch of sentences."""
    batch_size, device = src.size(0), src.device
    max_lengths = max_output_lengths(src_lengths, max_len_a, max_len_b, max_length).to(device)
    longest = int(max_lengths.max())
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
        at_limit = max_lengths[active] == step + 1
        log_probs = _allow_only_eos(log_probs.float(), at_limit, model.eos_id)
        best_log_probs, best_tokens = log_probs.max(dim=-1)
        tokens[active, step] = best_tokens
        log_probs_sum[active] += best_log_probs
        if return_attention:
            attention[active, step] = state.attention.float()

        finished = best_tokens == model.eos_id
        if finished.any():
            lengths[active[finished]] = step + 1
            unfinished = (~finished).nonzero().squeeze(1)
            if unfinished.numel() == 0:
                break
            active, best_tokens = active[unfinished], best_tokens[unfinished]
            state = state.reorder(unfinished)
        prev_tokens = best_tokens

    scores = log_probs_sum / length_penalty(lengths, alpha)
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


@torch.inference_mode()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    *,
    beam_size: int = 5,
    n_best: int = 1,
    alpha: float = 1.0,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    max_length: int | None = None,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Beam search for a batch of sentences; the ``n_best`` best hypotheses of each (fewer
    only when the length limit leaves fewer possible outputs)."""
    batch_size, device, beam = src.size(0), src.device, beam_size
    max_lengths = max_output_lengths(src_lengths, max_len_a, max_len_b, max_length).to(device)
    longest = int(max_lengths.max())
    finished = _FinishedHypotheses(
        batch_size, beam, longest, src.size(1) if return_attention else None, model.pad_id, device
    )

    # Unfinished hypotheses, `width` rows per active sentence (sentence-major): one row, the
    # empty prefix, before the first step; `beam` rows after it.
    active = torch.arange(batch_size, device=device)  # batch positions still decoding
    state = model.init_state(model.encode(src, src_lengths), need_attention=return_attention)
    width = 1
    beam_log_probs = torch.zeros(batch_size, device=device)
    beam_tokens = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    beam_attention = torch.zeros(batch_size, 0, src.size(1), device=device)
    prev_tokens = torch.full((batch_size,), model.bos_id, dtype=torch.long, device=device)

    for step in range(longest):
        log_probs, state = model.decode_step(prev_tokens, state)
        num_active, vocab_size = active.numel(), log_probs.size(1)
        if 2 * beam > vocab_size:
            raise ValueError(f"beam size {beam} needs at least {2 * beam} output tokens")
        at_limit = max_lengths[active] == step + 1
        log_probs = _allow_only_eos(
            log_probs.float(), at_limit.repeat_interleave(width), model.eos_id
        )
        step_attention = state.attention.float() if return_attention else None

        # The 2*beam best extensions of each sentence; at most `beam` of them end in EOS.
        extension_log_probs = (beam_log_probs.unsqueeze(1) + log_probs).view(num_active, -1)
        top_log_probs, top_indices = extension_log_probs.topk(2 * beam, dim=1)
        top_tokens = top_indices % vocab_size
        first_row = torch.arange(num_active, device=device).unsqueeze(1) * width
        top_rows = first_row + torch.div(top_indices, vocab_size, rounding_mode="floor")
        ends = top_tokens == model.eos_id

        # EOS among the best `beam` extensions: those hypotheses are finished.
        finishing = ends[:, :beam] & top_log_probs[:, :beam].isfinite()
        if finishing.any():
            rows = top_rows[:, :beam]
            log_probs_done = top_log_probs[:, :beam]
            finished.add(
                active,
                (log_probs_done / length_penalty(step + 1, alpha)).masked_fill(
                    ~finishing, float("-inf")
                ),
                log_probs_done,
                step + 1,
                _append(beam_tokens, rows, top_tokens[:, :beam]),
                _append(beam_attention, rows, step_attention[rows]) if return_attention else None,
            )

        # The best `beam` extensions that do not end in EOS carry on (stable: best first).
        rank = torch.arange(2 * beam, device=device) + ends * 2 * beam
        carry_on = rank.topk(beam, dim=1, largest=False).indices
        rows = top_rows.gather(1, carry_on)
        next_tokens = top_tokens.gather(1, carry_on)
        next_log_probs = top_log_probs.gather(1, carry_on)

        # A sentence is done when its best unfinished hypothesis, scored as if it ended now,
        # cannot beat the worst of `beam` finished ones (an empty slot scores -inf). Done
        # sentences leave the batch.
        best_unfinished = next_log_probs[:, 0] / length_penalty(step + 1, alpha)
        done = at_limit | (best_unfinished <= finished.worst_scores(active))
        if done.all():
            break
        some_done = bool(done.any())
        if some_done:
            keep = (~done).nonzero().squeeze(1)
            active, rows = active[keep], rows[keep]
            next_tokens, next_log_probs = next_tokens[keep], next_log_probs[keep]
        rows = rows.view(-1)
        prev_tokens, beam_log_probs = next_tokens.view(-1), next_log_probs.view(-1)
        beam_tokens = _append(beam_tokens, rows, prev_tokens)
        if return_attention:
            beam_attention = _append(beam_attention, rows, step_attention[rows])
        # Rows keep their sentence unless one leaves or the first step fans out to `beam`;
        # then the encoder side need not be copied (with RFA cross-attention, whose cache is
        # large, that copy cost 28% of beam search: docs/benchmarks.md, ## Decoding).
        same_sentences = width == beam and not some_done
        state = state.reorder(rows, same_sentences=same_sentences)
        width = beam

    return [
        [
            Hypothesis(
                tokens=finished.tokens[i, k, : length - 1].tolist(),
                score=score,
                log_prob=log_prob,
                attention=(
                    finished.attention[i, k, :length, : src_lengths[i]].cpu()
                    if return_attention
                    else None
                ),
            )
            for k, (score, log_prob, length) in enumerate(
                zip(
                    finished.scores[i, :n_best].tolist(),
                    finished.log_probs[i, :n_best].tolist(),
                    finished.lengths[i, :n_best].tolist(),
                    strict=True,
                )
            )
            if score != float("-inf")
        ]
        for i in range(batch_size)
    ]


# --- sentences in, sentences out ------------------------------------------------------------


@dataclass
class Candidate:
    """One output sentence."""

    text: str  # detokenised
    pieces: list[str]  # target subwords, without EOS
    score: float
    log_prob: float
    attention: Tensor | None = None  # (len(pieces) + 1, len(source_pieces)), EOS row last


@dataclass
class Translation:
    """One input sentence and its n-best outputs, best first."""

    source_pieces: list[str]  # the source subwords the model read, EOS last
    candidates: list[Candidate]  # empty for an empty input
    truncated: bool = False  # the source was cut to the model's maximum length

    @property
    def text(self) -> str:
        return self.candidates[0].text if self.candidates else ""


def translate_sentences(
    model: Seq2Seq,
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    sentences: Sequence[str],
    src_lang: str,
    beam_size: int = 5,
    n_best: int = 1,
    length_penalty: float = 1.0,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    batch_size: int = 64,
    max_length: int | None = None,
    traditional_to_simplified: bool = True,
    return_attention: bool = False,
) -> list[Translation]:
    """Translate raw sentences; results come back in input order.

    Inputs are normalised as in data preparation, encoded, sorted by length and searched in
    batches of up to ``batch_size`` sentences. ``max_length`` is the longest sequence the
    model takes (source with EOS, and output); longer sources are truncated and marked.
    An empty (or all-whitespace) sentence gets an empty translation without a search.
    """
    if isinstance(sentences, str):
        raise TypeError("translate_sentences takes a list of sentences, not one string")
    id_lists = [
        src_vocab.encode(normalize(_valid_unicode(s), src_lang, traditional_to_simplified))
        for s in sentences
    ]
    truncated = [max_length is not None and len(ids) >= max_length for ids in id_lists]
    if max_length is not None:
        id_lists = [ids[: max_length - 1] for ids in id_lists]  # room for the EOS
    results = [Translation([], [], cut) for cut in truncated]
    order = sorted((i for i, ids in enumerate(id_lists) if ids), key=lambda i: len(id_lists[i]))

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            src, src_lengths = encode_source_batch([id_lists[i] for i in indices])
            nbest_lists = search(
                model,
                src.to(device),
                src_lengths.to(device),
                beam_size=beam_size,
                n_best=n_best,
                alpha=length_penalty,
                max_len_a=max_len_a,
                max_len_b=max_len_b,
                max_length=max_length,
                return_attention=return_attention,
            )
            for i, nbest in zip(indices, nbest_lists, strict=True):
                results[i] = Translation(
                    src_vocab.pieces(id_lists[i]) + [EOS_PIECE],
                    [_candidate(hypothesis, tgt_vocab) for hypothesis in nbest],
                    truncated[i],
                )
    finally:
        model.train(was_training)
    return results


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (which sentencepiece cannot take) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _candidate(hypothesis: Hypothesis, tgt_vocab: Vocabulary) -> Candidate:
    return Candidate(
        text=tgt_vocab.decode(hypothesis.tokens),
        pieces=tgt_vocab.pieces(hypothesis.tokens),
        score=hypothesis.score,
        log_prob=hypothesis.log_prob,
        attention=hypothesis.attention,
    )
