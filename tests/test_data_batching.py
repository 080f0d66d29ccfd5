"""Encoded corpora, token-budget batches and the padded tensors of a batch."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.batching import (
    Batch,
    EncodedCorpus,
    TokenBatchSampler,
    collate,
    encode_source_batch,
)
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID

SOURCES = [[10, 11, 12], [20], [], [40, 41, 42, 43, 44]]
TARGETS = [[50, 51], [60, 61, 62, 63], [70], [80]]


def small_corpus() -> EncodedCorpus:
    return EncodedCorpus.from_id_lists(SOURCES, TARGETS)


def test_encoded_corpus_stores_pairs_compactly_and_survives_save_and_load(tmp_path):
    corpus = small_corpus()
    assert len(corpus) == 4
    assert corpus.src_ids.dtype == torch.int32 and corpus.src_ids.numel() == 9
    assert corpus.src_lengths.tolist() == [3, 1, 0, 5]
    assert corpus.tgt_lengths.tolist() == [2, 4, 1, 1]
    corpus.save(tmp_path / "c.pt")
    loaded = EncodedCorpus.load(tmp_path / "c.pt")
    for index in range(4):
        src, tgt = loaded.pair(index)
        assert src.tolist() == SOURCES[index] and tgt.tolist() == TARGETS[index]


def test_collate_adds_eos_to_source_and_bos_eos_to_target():
    batch = collate(small_corpus(), [0, 2, 1])
    assert batch.src.tolist() == [
        [10, 11, 12, EOS_ID],
        [EOS_ID, PAD_ID, PAD_ID, PAD_ID],
        [20, EOS_ID, PAD_ID, PAD_ID],
    ]
    assert batch.src_lengths.tolist() == [4, 1, 2]
    assert batch.tgt_in.tolist() == [
        [BOS_ID, 50, 51, PAD_ID, PAD_ID],
        [BOS_ID, 70, PAD_ID, PAD_ID, PAD_ID],
        [BOS_ID, 60, 61, 62, 63],
    ]
    assert batch.tgt_out.tolist() == [
        [50, 51, EOS_ID, PAD_ID, PAD_ID],
        [70, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
        [60, 61, 62, 63, EOS_ID],
    ]
    assert batch.indices.tolist() == [0, 2, 1]
    assert batch.ntokens == 3 + 2 + 5
    assert batch.src.dtype == torch.long and len(batch) == 3


def test_encode_source_batch_matches_the_collate_convention():
    corpus = small_corpus()
    src, src_lengths = encode_source_batch([SOURCES[0], SOURCES[2], SOURCES[1]])
    batch = collate(corpus, [0, 2, 1])
    assert torch.equal(src, batch.src) and torch.equal(src_lengths, batch.src_lengths)


def test_batch_moves_to_a_device_whole():
    batch = collate(small_corpus(), [3]).to("cpu")
    assert isinstance(batch, Batch) and batch.src.device.type == "cpu"


def padded_tokens(sampler: TokenBatchSampler, batch: list[int]) -> int:
    return len(batch) * int(sampler.padded_lengths[batch].max())


lengths = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=300)


@settings(max_examples=100, deadline=None)
@given(lengths, st.integers(41, 400), st.integers(0, 1000), st.booleans())
def test_batches_respect_the_budget_and_cover_every_example_once(pairs, max_tokens, seed, shuffle):
    src_lengths = [source for source, _ in pairs]
    tgt_lengths = [target for _, target in pairs]
    sampler = TokenBatchSampler(src_lengths, tgt_lengths, max_tokens, shuffle=shuffle, seed=seed)
    for epoch in (0, 1):
        batches = sampler.batches(epoch)
        assert sorted(i for batch in batches for i in batch) == list(range(len(pairs)))
        for batch in batches:
            assert padded_tokens(sampler, batch) <= max_tokens
            # The padded length is the larger side plus BOS/EOS.
            longest = max(max(src_lengths[i], tgt_lengths[i]) for i in batch) + 1
            assert len(batch) * longest <= max_tokens
        assert sampler.batches(epoch) == batches  # deterministic for (seed, epoch)


def test_an_example_over_budget_gets_a_batch_of_its_own():
    sampler = TokenBatchSampler([3, 50, 2], [3, 10, 2], max_tokens=20, shuffle=False)
    assert sampler.batches(0) == [[2, 0], [1]]  # by length; the long one alone


def test_grouping_by_length_keeps_padding_small():
    generator = torch.Generator().manual_seed(0)
    src_lengths = torch.randint(1, 60, (2000,), generator=generator)
    tgt_lengths = (src_lengths + torch.randint(-3, 4, (2000,), generator=generator)).clamp(min=1)
    sampler = TokenBatchSampler(src_lengths, tgt_lengths, max_tokens=1000, seed=1)
    batches = sampler.batches(0)
    real = int((torch.maximum(src_lengths, tgt_lengths) + 1).sum())
    padded = sum(padded_tokens(sampler, batch) for batch in batches)
    assert real / padded > 0.95


def test_epochs_are_shuffled_differently_and_unshuffled_order_is_by_length():
    src_lengths = list(range(1, 201))
    sampler = TokenBatchSampler(src_lengths, src_lengths, max_tokens=400, seed=7)
    assert sampler.batches(0) != sampler.batches(1)
    ordered = TokenBatchSampler(src_lengths, src_lengths, max_tokens=400, shuffle=False)
    flat = [i for batch in ordered.batches(0) for i in batch]
    assert flat == sorted(flat, key=lambda i: src_lengths[i])
