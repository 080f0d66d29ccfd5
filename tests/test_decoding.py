"""Greedy and beam search, first on toy models whose distributions are known exactly, then on
the real model families (small, randomly initialised or overfit on a few pairs)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_checkpoint import MODEL_SECTIONS, PAIRS, tiny_checkpoint
from torch import Tensor
from torch.ops import aten
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nmt import decoding
from nmt.checkpoint import LoadedModel, load_model
from nmt.config import ConfigError, config_from_dict
from nmt.config import DecodingSettings as S
from nmt.data.batching import encode_source_batch
from nmt.decoding import (
    beam_search,
    greedy_search,
    length_normalizer,
    max_output_lengths,
    search,
)
from nmt.models import build_model
from nmt.models.base import DecoderState, EncoderOutput, Seq2Seq, padding_mask
from nmt.translator import Translator

PAD, BOS, EOS = 0, 2, 3


# --- toy models ----------------------------------------------------------------------------


class ToyState(DecoderState):
    """The whole prefix of every row, plus what the toy model derives from it."""

    def __init__(
        self, key: Tensor, prefix: Tensor, src_mask: Tensor, need_attention: bool, attention=None
    ) -> None:
        self.key, self.prefix, self.src_mask = key, prefix, src_mask
        self.need_attention, self._attention = need_attention, attention

    def reorder(self, indices: Tensor, same_sentences: bool = False) -> ToyState:
        attention = None if self._attention is None else self._attention[indices]
        return ToyState(
            self.key[indices],
            self.prefix[indices],
            self.src_mask[indices],
            self.need_attention,
            attention,
        )

    @property
    def attention(self) -> Tensor | None:
        return self._attention


class ToyModel(Seq2Seq):
    """Next-token distributions that depend only on the real source tokens and the prefix.

    ``script`` maps an output prefix (a tuple of token ids, without BOS) to the probabilities
    of the next tokens; other prefixes get a pseudo-random distribution looked up by a hash of
    (source, prefix), in which EOS grows likelier with every step, faster for short sources. Every call's batch size is
    recorded in ``batch_sizes``.
    """

    def __init__(
        self,
        vocab_size: int = 12,
        script: dict[tuple[int, ...], dict[int, float]] | None = None,
        eos_growth: float = 0.6,
        seed: int = 0,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.table = torch.randn(997, vocab_size, generator=generator) * 2.0
        self.table[:, PAD] = self.table[:, BOS] = float("-inf")
        self.vocab_size, self.script, self.eos_growth = vocab_size, script or {}, eos_growth
        self.batch_sizes: list[int] = []

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        mask = padding_mask(src_lengths, src.size(1))
        return EncoderOutput(src.unsqueeze(-1).float(), mask)

    def decode(self, encoder_out: EncoderOutput, tgt_in: Tensor) -> Tensor:
        raise NotImplementedError

    def init_state(self, encoder_out: EncoderOutput, need_attention: bool = True) -> ToyState:
        src = encoder_out.memory.squeeze(-1).long()
        key = ((src * 7919 + 13) * encoder_out.src_mask).sum(dim=1) % 997
        prefix = src.new_zeros(src.size(0), 0)
        return ToyState(key, prefix, encoder_out.src_mask, need_attention)

    def decode_step(self, prev_tokens: Tensor, state: ToyState) -> tuple[Tensor, ToyState]:
        self.batch_sizes.append(prev_tokens.size(0))
        prefix = torch.cat([state.prefix, prev_tokens.unsqueeze(1)], dim=1)  # BOS first
        key = (state.key * 31 + prev_tokens) % 997
        logits = self.table[key].clone()
        src_lengths = state.src_mask.sum(dim=1)
        logits[:, EOS] += self.eos_growth * (prefix.size(1) - 1) * 4 / src_lengths
        log_probs = logits.log_softmax(dim=-1)
        for row, tokens in enumerate(prefix[:, 1:].tolist()):
            if tuple(tokens) in self.script:
                log_probs[row] = _log_distribution(self.script[tuple(tokens)], self.vocab_size)
        attention = None
        if state.need_attention:
            positions = torch.arange(state.src_mask.size(1)).float()
            scores = torch.sin(key.unsqueeze(1).float() + positions)
            attention = scores.masked_fill(~state.src_mask, float("-inf")).softmax(dim=-1)
        return log_probs, ToyState(key, prefix, state.src_mask, state.need_attention, attention)


def _log_distribution(probabilities: dict[int, float], vocab_size: int) -> Tensor:
    log_probs = torch.full((vocab_size,), float("-inf"))
    for token, probability in probabilities.items():
        log_probs[token] = math.log(probability)
    return log_probs


def batch(sentences: list[list[int]]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(s) for s in sentences])
    src = torch.full((len(sentences), int(lengths.max())), PAD)
    for i, sentence in enumerate(sentences):
        src[i, : len(sentence)] = torch.tensor(sentence)
    return src, lengths


SENTENCES = [[5, 6, 7, EOS], [8, EOS], [4, 4, 9, 10, 11, 5, EOS], [6, 5, EOS], [11, 7, 7, EOS]]


def forced_decode(model: Seq2Seq, src: Tensor, tokens: list[int]) -> tuple[float, Tensor]:
    """Log-probability of ``tokens`` + EOS for one sentence, and the attention of every step."""
    src_lengths = torch.tensor([src.numel()])
    state = model.init_state(model.encode(src.unsqueeze(0), src_lengths))
    prev, total, attention = BOS, 0.0, []
    for token in [*tokens, EOS]:
        log_probs, state = model.decode_step(torch.tensor([prev]), state)
        total += log_probs[0, token].item()
        attention.append(state.attention[0])
        prev = token
    return total, torch.stack(attention)


# --- tests on toy models -------------------------------------------------------------------


def test_length_penalty_and_max_output_lengths() -> None:
    assert length_normalizer(1, 0.0) == 1.0
    assert length_normalizer(7, 1.0) == pytest.approx(2.0)
    assert length_normalizer(torch.tensor([1, 13]), 0.5).tolist() == pytest.approx([1.0, 3**0.5])
    settings = S(max_len_a=1.5, max_len_b=2)
    lengths = max_output_lengths(torch.tensor([1, 4, 10]), settings)
    assert lengths.tolist() == [3, 8, 17]
    assert max_output_lengths(torch.tensor([1, 4, 10]), settings, limit=8).tolist() == [3, 8, 8]
    assert max_output_lengths(torch.tensor([3]), S(max_len_a=0.0, max_len_b=0)).tolist() == [1]


def test_beam_finds_the_better_translation_that_greedy_misses() -> None:
    # Greedy takes 4 (p=0.6), then faces a flat distribution: 0.6 * 0.1 * 1 = 0.06.
    # Beam also keeps 5 (p=0.4), followed by 6 and EOS with certainty: 0.4.
    script = {
        (): {4: 0.6, 5: 0.4},
        (4,): {t: 0.1 for t in range(4, 12)} | {EOS: 0.2},
        (5,): {6: 1.0},
        (5, 6): {EOS: 1.0},
    }
    model = ToyModel(script=script)
    src, src_lengths = batch([[7, EOS]])
    (greedy,) = greedy_search(model, src, src_lengths, S(beam_size=1, length_penalty=0.0))
    (beam,) = beam_search(model, src, src_lengths, S(beam_size=2, length_penalty=0.0))
    assert greedy.tokens == [4] and greedy.log_prob == pytest.approx(math.log(0.6 * 0.2))
    assert beam[0].tokens == [5, 6] and beam[0].log_prob == pytest.approx(math.log(0.4))


def test_beam_goes_on_while_an_unfinished_hypothesis_can_still_win() -> None:
    # With beam 2, two hypotheses finish by step 2 (p=0.3 and 0.14), while 4 6 (p=0.56) is
    # still unfinished: stopping then would lose the best translation (which greedy finds).
    script = {(): {EOS: 0.3, 4: 0.7}, (4,): {EOS: 0.2, 6: 0.8}, (4, 6): {EOS: 1.0}}
    model = ToyModel(script=script)
    src, src_lengths = batch([[7, EOS]])
    (nbest,) = beam_search(model, src, src_lengths, S(beam_size=2, n_best=2, length_penalty=0.0))
    assert [h.tokens for h in nbest] == [[4, 6], []]
    assert [h.log_prob for h in nbest] == pytest.approx([math.log(0.56), math.log(0.3)])


def test_length_penalty_changes_the_winner() -> None:
    # Short: EOS at once (p=0.5). Long: 4 5 6 7 EOS with p=0.45 * 0.9**4 ~ 0.295.
    script = {(): {EOS: 0.5, 4: 0.45, 8: 0.05}} | {
        prefix: {prefix[-1] + 1: 0.9, 10: 0.1} for prefix in [(4,), (4, 5), (4, 5, 6)]
    }
    script[(4, 5, 6, 7)] = {EOS: 1.0}
    model = ToyModel(script=script)
    src, src_lengths = batch([[7, EOS]])
    (no_penalty,) = beam_search(model, src, src_lengths, S(beam_size=3, length_penalty=0.0))
    (with_penalty,) = beam_search(model, src, src_lengths, S(beam_size=3, length_penalty=2.0))
    assert no_penalty[0].tokens == []
    assert with_penalty[0].tokens == [4, 5, 6, 7]
    for hypothesis in with_penalty:
        expected = hypothesis.log_prob / length_normalizer(len(hypothesis.tokens) + 1, 2.0)
        assert hypothesis.score == pytest.approx(expected)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_outputs_stop_at_the_length_limit_with_a_forced_eos(beam_size: int) -> None:
    model = ToyModel(eos_growth=-100.0)  # EOS practically never chosen freely
    sentences = [[5, EOS], [5, 6, 7, 8, 9, EOS]]
    src, src_lengths = batch(sentences)
    results = search(
        model,
        src,
        src_lengths,
        S(beam_size=beam_size, n_best=beam_size, length_penalty=0.0, max_len_a=1.0, max_len_b=2),
    )
    for sentence, nbest in zip(sentences, results, strict=True):
        assert len(nbest) == beam_size
        for hypothesis in nbest:
            assert len(hypothesis.tokens) + 1 == len(sentence) + 2  # a * len + b, EOS included
            log_prob, _ = forced_decode(model, torch.tensor(sentence), hypothesis.tokens)
            assert hypothesis.log_prob == pytest.approx(log_prob, abs=1e-4)
    model.max_length = 3  # a position limit caps every output
    capped = search(model, src, src_lengths, S(beam_size=beam_size, max_len_a=1.0, max_len_b=2))
    assert [len(nbest[0].tokens) for nbest in capped] == [2, 2]


def test_beam_size_one_equals_greedy() -> None:
    model = ToyModel()
    src, src_lengths = batch(SENTENCES)
    greedy = greedy_search(model, src, src_lengths, S(beam_size=1, length_penalty=1.0))
    beam = beam_search(model, src, src_lengths, S(beam_size=1, length_penalty=1.0))
    assert [h.tokens for h in greedy] == [nbest[0].tokens for nbest in beam]
    assert [h.score for h in greedy] == pytest.approx([nbest[0].score for nbest in beam])


@pytest.mark.parametrize("seed", range(4))
def test_beam_scores_are_exact_and_never_worse_than_greedy(seed: int) -> None:
    model = ToyModel(seed=seed)
    src, src_lengths = batch(SENTENCES)
    greedy = greedy_search(model, src, src_lengths, S(beam_size=1, length_penalty=1.0))
    beams = beam_search(model, src, src_lengths, S(beam_size=5, n_best=5, length_penalty=1.0))
    for sentence, best_greedy, nbest in zip(SENTENCES, greedy, beams, strict=True):
        assert nbest[0].score >= best_greedy.score - 1e-5
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in nbest}) == len(nbest) == 5
        for hypothesis in nbest:
            log_prob, _ = forced_decode(model, torch.tensor(sentence), hypothesis.tokens)
            assert hypothesis.log_prob == pytest.approx(log_prob, abs=1e-4)
            penalty = length_normalizer(len(hypothesis.tokens) + 1, 1.0)
            assert hypothesis.score == pytest.approx(log_prob / penalty, abs=1e-4)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_batched_results_equal_one_by_one_results(beam_size: int) -> None:
    model = ToyModel(seed=3)
    src, src_lengths = batch(SENTENCES)
    batched = search(model, src, src_lengths, S(beam_size=beam_size, n_best=beam_size))
    for sentence, nbest in zip(SENTENCES, batched, strict=True):
        alone = search(model, *batch([sentence]), S(beam_size=beam_size, n_best=beam_size))[0]
        assert [h.tokens for h in alone] == [h.tokens for h in nbest]
        assert [h.score for h in alone] == pytest.approx([h.score for h in nbest])


def test_finished_sentences_leave_the_batch_and_search_stops_early() -> None:
    # Short sources finish first; nothing comes near the length limit.
    model = ToyModel(eos_growth=2.0)
    sentences = [[5, 6, 7, EOS], [8, 9, EOS], [4, 4, 9, 10, 11, 5, EOS]]
    beam = 3
    beam_search(model, *batch(sentences), S(beam_size=beam, max_len_a=10.0, max_len_b=50))
    sizes = model.batch_sizes
    assert sizes[:2] == [len(sentences), len(sentences) * beam]  # one row before the first step
    assert sizes[1:] == sorted(sizes[1:], reverse=True) and sizes[-1] < sizes[1]
    assert all(size % beam == 0 for size in sizes[1:])
    assert len(sizes) < 15  # far below the limit of 10 * 3 + 50 steps

    model.batch_sizes.clear()
    greedy_search(model, *batch(sentences), S(beam_size=1, max_len_a=10.0, max_len_b=50))
    assert model.batch_sizes[0] == 3 and model.batch_sizes[-1] < 3 and len(model.batch_sizes) < 15


@pytest.mark.parametrize("beam_size", [1, 3])
def test_attention_only_when_asked_and_it_is_the_models(beam_size: int) -> None:
    model = ToyModel(seed=1)
    src, src_lengths = batch(SENTENCES)
    plain = search(model, src, src_lengths, S(beam_size=beam_size, n_best=beam_size))
    assert all(h.attention is None for nbest in plain for h in nbest)
    with_attention = search(
        model, src, src_lengths, S(beam_size=beam_size, n_best=beam_size, return_attention=True)
    )
    for sentence, nbest, plain_nbest in zip(SENTENCES, with_attention, plain, strict=True):
        assert [h.tokens for h in nbest] == [h.tokens for h in plain_nbest]
        for hypothesis in nbest:
            _, expected = forced_decode(model, torch.tensor(sentence), hypothesis.tokens)
            assert hypothesis.attention.shape == (len(hypothesis.tokens) + 1, len(sentence))
            torch.testing.assert_close(hypothesis.attention, expected)


def test_invalid_beam_settings_are_refused() -> None:
    src, src_lengths = batch(SENTENCES[:1])
    with pytest.raises(ValueError, match="n_best"):
        search(ToyModel(), src, src_lengths, S(beam_size=2, n_best=3))
    with pytest.raises(ValueError, match="beam_size"):
        search(ToyModel(), src, src_lengths, S(beam_size=0))
    with pytest.raises(ValueError, match="beam size 4 needs at least 8 output tokens"):
        search(ToyModel(vocab_size=6), src, src_lengths, S(beam_size=4))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("decoding.batch_size=0", "decoding.batch_size: expected an integer >= 1"),
        ("decoding.n_best=6", "decoding.n_best: expected <= beam_size"),
        ("decoding.max_len_a=-1", "decoding.max_len_a: expected a value >= 0"),
        ("decoding.length_penalty=.inf", "decoding.length_penalty: expected a finite number"),
    ],
)
def test_decoding_config_is_validated(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({}, [override])


# --- tests on the real model families ------------------------------------------------------


def random_model(model_type: str, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    config = config_from_dict({"model": MODEL_SECTIONS[model_type]})
    return build_model(config.model, src_vocab_size=50, tgt_vocab_size=40).eval()


def random_sources(count: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (count,), generator=generator).tolist()
    return [torch.randint(4, 50, (length,), generator=generator).tolist() for length in lengths]


def trained_model(model_type: str) -> LoadedModel:
    return load_model(tiny_checkpoint(model_type))


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
def test_beam_one_equals_greedy_on_real_models(model_type: str) -> None:
    model = random_model(model_type)
    src, src_lengths = encode_source_batch(random_sources(12))
    greedy = greedy_search(model, src, src_lengths, S(beam_size=1))
    beam = beam_search(model, src, src_lengths, S(beam_size=1))
    assert [h.tokens for h in greedy] == [nbest[0].tokens for nbest in beam]
    assert [h.score for h in greedy] == pytest.approx([nbest[0].score for nbest in beam], abs=1e-4)


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
def test_real_model_nbest_lists_are_exact_sorted_and_distinct(model_type: str) -> None:
    model = random_model(model_type, seed=1)
    sources = random_sources(6, seed=1)
    src, src_lengths = encode_source_batch(sources)
    nbest_lists = beam_search(
        model,
        src,
        src_lengths,
        S(beam_size=4, n_best=4, max_len_a=1.0, max_len_b=3, return_attention=True),
    )
    for source, nbest in zip(sources, nbest_lists, strict=True):
        assert len(nbest) == 4
        assert len({tuple(h.tokens) for h in nbest}) == 4
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        for hypothesis in nbest:
            log_prob, attention = forced_decode(
                model, torch.tensor([*source, EOS]), hypothesis.tokens
            )
            assert hypothesis.log_prob == pytest.approx(log_prob, abs=1e-3)
            torch.testing.assert_close(hypothesis.attention, attention, atol=1e-5, rtol=1e-4)
            assert hypothesis.attention.sum(dim=1).tolist() == pytest.approx([1.0] * len(attention))


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_real_model_batched_results_equal_one_by_one(model_type: str, beam_size: int) -> None:
    model = random_model(model_type, seed=2)
    sources = random_sources(8, seed=2)
    batched = search(model, *encode_source_batch(sources), S(beam_size=beam_size, n_best=beam_size))
    for source, nbest in zip(sources, batched, strict=True):
        alone = search(
            model, *encode_source_batch([source]), S(beam_size=beam_size, n_best=beam_size)
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in nbest]
        assert [h.score for h in alone] == pytest.approx([h.score for h in nbest], abs=1e-4)


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
def test_beam_is_never_worse_than_greedy_on_trained_models(model_type: str) -> None:
    loaded = trained_model(model_type)
    # The training sources, plus unseen recombinations of their characters.
    sources = [loaded.src_vocab.encode(zh) for zh, _ in PAIRS]
    sources += [
        a[: len(a) // 2] + b[len(b) // 2 :] for a, b in zip(sources, sources[3:], strict=False)
    ]
    src, src_lengths = encode_source_batch(sources)
    for alpha in (0.0, 1.0):
        greedy = greedy_search(loaded.model, src, src_lengths, S(beam_size=1, length_penalty=alpha))
        beam = beam_search(loaded.model, src, src_lengths, S(beam_size=5, length_penalty=alpha))
        for greedy_best, nbest in zip(greedy, beam, strict=True):
            assert nbest[0].score >= greedy_best.score - 1e-4


class DeviceReads(TorchDispatchMode):
    """Counts the values the host reads from the device, on a machine without one: every
    tensor counts as on the device except those made on the host, from host tensors only
    (the source lengths, and what ``nmt.decoding._on_host`` reads), which this mode follows
    through every operation. A scalar read (``.item()``, ``int(t)``, ``if t.any()``) of a
    device tensor counts one, and so does each call of ``_on_host``: on a GPU each one waits
    for every kernel queued before it."""

    SCALAR_READS = (aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default)

    def __init__(self, *host_tensors: Tensor) -> None:
        super().__init__()
        self.reads = 0
        self.host: dict[int, Tensor] = {}  # by id; holding them keeps the ids unique
        for tensor in host_tensors:
            self.mark_host(tensor)

    def mark_host(self, tensor: Tensor) -> Tensor:
        self.host[id(tensor)] = tensor
        return tensor

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [x for x in tree_leaves((args, kwargs)) if isinstance(x, Tensor)]
        on_host = bool(inputs) and all(id(x) in self.host for x in inputs)
        self.reads += func in self.SCALAR_READS and not on_host
        out = func(*args, **kwargs)
        if on_host:
            for x in tree_leaves(out):
                if isinstance(x, Tensor):
                    self.mark_host(x)
        return out


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
@pytest.mark.parametrize(("beam_size", "reads_per_step"), [(1, 1), (5, 2)])
def test_search_reads_the_device_once_or_twice_per_step(
    model_type: str, beam_size: int, reads_per_step: int, monkeypatch
) -> None:
    """Greedy search reads the device once per step (which sentences ended), beam search
    twice (did an extension end in EOS? which sentences are done?); length limits are kept on
    the host. A read added to the loop (a ``.item()``, an ``if tensor.any()`` on the device)
    fails this."""
    loaded = trained_model(model_type)
    model = loaded.model
    sources = [loaded.src_vocab.encode(zh) for zh, _ in PAIRS]
    sources += [ids[: len(ids) // 2] for ids in sources]  # unseen inputs end at other steps
    src, src_lengths = encode_source_batch(sources)
    with DeviceReads(src_lengths) as encoding, torch.inference_mode():
        model.encode(src, src_lengths)  # the GRU's packing reads its batch sizes
    steps = 0
    decode_step = model.decode_step

    def counted_step(*args, **kwargs):
        nonlocal steps
        steps += 1
        return decode_step(*args, **kwargs)

    def counted_read(tensor: Tensor) -> Tensor:
        searching.reads += 1
        return searching.mark_host(tensor.cpu())

    monkeypatch.setattr(model, "decode_step", counted_step)
    monkeypatch.setattr(decoding, "_on_host", counted_read)
    with DeviceReads(src_lengths) as searching:
        results = search(model, src, src_lengths, S(beam_size=beam_size))
    assert len({len(nbest[0].tokens) for nbest in results}) > 2  # sentences end at many steps
    assert steps > 3
    assert searching.reads - encoding.reads <= reads_per_step * steps


def translator(loaded: LoadedModel) -> Translator:
    return Translator(loaded.model, loaded.config, loaded.src_vocab, loaded.tgt_vocab)


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
def test_translator_reproduces_the_training_pairs(model_type: str) -> None:
    loaded = trained_model(model_type)
    sources = [zh for zh, _ in PAIRS]
    for beam_size in (1, 3):
        translations = translator(loaded).translate(sources, S(beam_size=beam_size, batch_size=3))
        assert [t.text for t in translations] == [en for _, en in PAIRS]


def test_translator_normalises_keeps_order_and_handles_empty_and_long_inputs() -> None:
    loaded = trained_model("transformer")
    loaded.model.max_length = 20  # the checkpoint's is 64
    sentences = [
        "這是一本書。",  # Traditional script
        "",
        "你好吗？",  # full-width question mark
        "   ",
        "我喜欢猫。" * 40,  # longer than max_length
        "我不知道。",
    ]
    settings = S(beam_size=2, n_best=2, batch_size=2, return_attention=True)
    translations = translator(loaded).translate(sentences, settings)
    assert [t.text for t in translations[:4]] == ["This is a book.", "", "How are you?", ""]
    assert translations[5].text == "I don't know."
    assert [t.truncated for t in translations] == [False, False, False, False, True, False]
    assert len(translations[4].source_pieces) == 20 and translations[4].source_pieces[-1] == "</s>"
    assert translations[1].candidates == [] and translations[1].source_pieces == []
    for translation in (translations[0], translations[4]):
        assert len(translation.candidates) == 2
        for candidate in translation.candidates:
            assert len(candidate.pieces) + 1 <= 20
            shape = (len(candidate.pieces) + 1, len(translation.source_pieces))
            assert candidate.attention.shape == shape
    with pytest.raises(TypeError, match="list of sentences"):
        translator(loaded).translate("你好")


def test_translator_restores_the_training_mode() -> None:
    loaded = trained_model("gru")
    loaded.model.train()
    translator(loaded).translate(["你好吗?"], S(beam_size=1))
    assert loaded.model.training
