"""The seeded split: groups of pairs that share a sentence never straddle two splits."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.clean import sentence_key
from nmt.data.split import TRAIN, assign_splits, connected_groups
from nmt.errors import DataError


def keys(sentences: list[str]) -> torch.Tensor:
    return torch.tensor([sentence_key(s) for s in sentences], dtype=torch.int64)


def test_pairs_chained_through_shared_sentences_form_one_group():
    sources = ["a", "b", "b", "c", "d", "a"]
    targets = ["1", "1", "2", "2", "3", "4"]
    labels = connected_groups(keys(sources), keys(targets)).tolist()
    assert labels[0] == labels[1] == labels[2] == labels[3] == labels[5]
    assert labels[4] != labels[0]


def test_long_chain_converges_to_one_group():
    count = 500  # pair i shares its source with pair i-1 and its target with pair i+1
    sources = [f"s{(i + 1) // 2}" for i in range(count)]
    targets = [f"t{i // 2}" for i in range(count)]
    labels = connected_groups(keys(sources), keys(targets))
    assert len(set(labels.tolist())) == 1


def test_singletons_fill_the_requested_sizes_exactly():
    sentences = [f"sentence {i}" for i in range(100)]
    codes = assign_splits(keys(sentences), keys(sentences), [10, 20], seed=3)
    assert torch.bincount(codes.long(), minlength=3).tolist() == [70, 10, 20]


def test_too_small_a_corpus_is_refused():
    with pytest.raises(DataError, match="cannot split 5 pairs"):
        assign_splits(keys(list("abcde")), keys(list("vwxyz")), [3, 2], seed=0)


sentence_pairs = st.lists(
    st.tuples(st.sampled_from("abcdefghijklmnop"), st.sampled_from("0123456789")),
    min_size=8,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(sentence_pairs, st.integers(0, 2**31), st.integers(1, 3), st.integers(1, 3))
def test_no_sentence_appears_in_two_splits(pairs, seed, dev_size, test_size):
    sources = [source for source, _ in pairs]
    targets = [target for _, target in pairs]
    codes = assign_splits(keys(sources), keys(targets), [dev_size, test_size], seed).tolist()

    for sentences in (sources, targets):
        split_of: dict[str, int] = {}
        for sentence, code in zip(sentences, codes, strict=True):
            assert split_of.setdefault(sentence, code) == code, f"{sentence!r} leaks"
    assert codes.count(1) <= dev_size and codes.count(2) <= test_size
    assert codes.count(TRAIN) >= 1
    # The same inputs and seed give the same split.
    assert (
        assign_splits(keys(sources), keys(targets), [dev_size, test_size], seed).tolist() == codes
    )


def test_different_seeds_give_different_splits():
    sentences = [f"sentence {i}" for i in range(200)]
    first = assign_splits(keys(sentences), keys(sentences), [20, 20], seed=1)
    second = assign_splits(keys(sentences), keys(sentences), [20, 20], seed=2)
    assert not torch.equal(first, second)
