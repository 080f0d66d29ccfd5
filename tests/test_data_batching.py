"""Encoded corpora, token-budget batches and the padded tensors of a batch."""

import pickle
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data import sampling
from nmt.data.batching import (
    Batch,
    EncodedCorpus,
    TokenBatchSampler,
    collate,
    encode_source_batch,
)
from nmt.data.sampling import CorpusMixture, cut_sorted
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import DataError

SOURCES = [[10, 11, 12], [20], [], [40, 41, 42, 43, 44]]
TARGETS = [[50, 51], [60, 61, 62, 63], [70], [80]]


def small_corpus() -> EncodedCorpus:
    return EncodedCorpus.from_id_lists(SOURCES, TARGETS)


def test_encoded_corpus_stores_pairs_compactly_and_survives_save_and_load(tmp_path):
    corpus = small_corpus()
    assert len(corpus) == 4
    assert corpus.shards[0]["src"].dtype == np.int32 and len(corpus.shards[0]["src"]) == 9
    assert corpus.src_lengths.tolist() == [3, 1, 0, 5]
    assert corpus.tgt_lengths.tolist() == [2, 4, 1, 1]
    corpus.save(tmp_path / "c.ids", shard_pairs=3)  # two shards: 3 pairs, then 1
    loaded = EncodedCorpus.load(tmp_path / "c.ids")
    assert len(loaded.shards) == 2 and isinstance(loaded.src_lengths, np.memmap)
    for index in range(4):
        src, tgt = loaded.pair(index)
        assert src.tolist() == SOURCES[index] and tgt.tolist() == TARGETS[index]


def test_memory_mapped_batches_equal_the_in_memory_ones(tmp_path):
    rng = random.Random(3)
    sources = [[rng.randrange(4, 60000) for _ in range(rng.randint(0, 30))] for _ in range(500)]
    targets = [[rng.randrange(4, 60000) for _ in range(rng.randint(0, 30))] for _ in range(500)]
    in_memory = EncodedCorpus.from_id_lists(sources, targets)
    in_memory.save(tmp_path / "c.ids", shard_pairs=64)  # batches gather across 8 shards
    mapped = EncodedCorpus.load(tmp_path / "c.ids")
    sampler = TokenBatchSampler(mapped.src_lengths, mapped.tgt_lengths, max_tokens=300, seed=5)
    for indices in sampler.batches(0):
        expected, got = collate(in_memory, indices), collate(mapped, indices)
        for name in ("src", "src_lengths", "tgt_in", "tgt_out", "indices"):
            assert torch.equal(getattr(expected, name), getattr(got, name)), name
    assert collate(mapped, [499]).src_lengths.tolist() == [len(sources[499]) + 1]
    # A spawned loader worker gets the corpus by pickle: its folder, opened again.
    copy = pickle.loads(pickle.dumps(mapped))
    assert len(pickle.dumps(mapped)) < 1000
    assert torch.equal(collate(copy, [3, 7]).tgt_out, collate(in_memory, [3, 7]).tgt_out)


def test_a_damaged_encoded_folder_is_a_data_error(tmp_path):
    small_corpus().save(tmp_path / "c.ids")
    shard = tmp_path / "c.ids" / "00000.src.ids"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(DataError, match="corrupt encoded corpus .*00000.src.ids has"):
        EncodedCorpus.load(tmp_path / "c.ids")


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
    return len(batch) * int(sampler.padded_lengths(np.asarray(batch)).max())


def reference_batches(src_lengths, tgt_lengths, max_tokens, shuffle, seed, epoch):
    """The sampler as it was before windows: every batch built in memory, one loop over
    examples. A corpus of one window must give exactly these batches (resume, old runs)."""
    src_lengths = torch.as_tensor(src_lengths, dtype=torch.long)
    padded_lengths = torch.maximum(src_lengths, torch.as_tensor(tgt_lengths)) + 1
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if shuffle:
        order = torch.randperm(len(padded_lengths), generator=generator)
    else:
        order = torch.arange(len(padded_lengths))
    order = order[torch.sort(src_lengths[order], stable=True).indices]
    order = order[torch.sort(padded_lengths[order], stable=True).indices]
    batches, current = [], []
    for index, length in zip(order.tolist(), padded_lengths[order].tolist(), strict=True):
        if current and (len(current) + 1) * length > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


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
        expected = reference_batches(src_lengths, tgt_lengths, max_tokens, shuffle, seed, epoch)
        assert list(batches) == expected  # one window: exactly the historical batches


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), max_size=400), st.integers(1, 300))
def test_cutting_by_runs_equals_the_greedy_loop(lengths, max_tokens):
    lengths = np.sort(np.asarray(lengths, dtype=np.int64))
    expected = [0]
    for position, length in enumerate(lengths.tolist()):
        if position > expected[-1] and (position - expected[-1] + 1) * length > max_tokens:
            expected.append(position)
    expected.append(len(lengths))
    assert cut_sorted(lengths, max_tokens).tolist() == (expected if len(lengths) else [0])


@pytest.fixture
def small_windows(monkeypatch):
    """Windows of 3 blocks of 16 pairs, so a few hundred pairs make several windows."""
    monkeypatch.setattr(sampling, "BLOCK", 16)
    monkeypatch.setattr(sampling, "WINDOW_BLOCKS", 3)


def test_several_windows_cover_every_example_once_within_budget(small_windows):
    rng = random.Random(0)
    src_lengths = [rng.randint(0, 40) for _ in range(500)]
    tgt_lengths = [rng.randint(0, 40) for _ in range(500)]
    sampler = TokenBatchSampler(src_lengths, tgt_lengths, max_tokens=200, seed=3)
    batches = sampler.batches(4)
    assert len(sampler.batches(4)._plan.windows) == 11  # 32 blocks, 3 a window
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(500))
    assert all(padded_tokens(sampler, batch) <= 200 for batch in batches)
    assert list(sampler.batches(4)) == list(batches) != list(sampler.batches(5))
    # Slices are views with list semantics (how ranks share an epoch, resume skips).
    everything = list(batches)
    assert list(batches[1::2]) == everything[1::2] and list(batches[3:9][2:]) == everything[5:9]
    assert batches[-1] == everything[-1] and len(batches[1::2]) == len(everything[1::2])


def test_weighted_sampling_matches_the_weights_over_many_batches(small_windows):
    sizes = (300, 900, 100)  # three corpora, contiguous in the training split
    lengths = [5] * sum(sizes)
    owner = np.repeat([0, 1, 2], sizes)
    for mixture, expected in (
        (CorpusMixture.from_weights(sizes, [3, 1, None]), [900 / 1900, 900 / 1900, 100 / 1900]),
        (CorpusMixture.from_weights(sizes, temperature=2.0), [s**0.5 / 57.32 for s in sizes]),
    ):
        assert mixture.shares == pytest.approx(expected, abs=1e-3)
        sampler = TokenBatchSampler(lengths, lengths, max_tokens=60, seed=1, mixture=mixture)
        counts, examples = np.zeros(3), 0
        for epoch in range(40):
            flat = np.asarray([i for batch in sampler.batches(epoch) for i in batch])
            counts += np.bincount(owner[flat], minlength=3)
            examples += len(flat)
        assert examples / 40 == pytest.approx(sum(sizes), rel=0.02)  # an epoch: N examples
        assert counts / counts.sum() == pytest.approx(expected, abs=0.01)
    # Deterministic: the same epoch twice is the same multiset and order.
    assert list(sampler.batches(7)) == list(sampler.batches(7))


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
