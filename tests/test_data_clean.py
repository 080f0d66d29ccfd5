"""Every cleaning filter, its count, and the order in which filters apply."""

import pytest

from nmt.data.clean import FILTERS, PairFilter, has_cjk, sentence_key


def run(pair_filter: PairFilter, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (source, target)
        for source, target in pairs
        if pair_filter.keep(source, target, sentence_key(source), sentence_key(target))
    ]


def zh_en_filter(**kwargs) -> PairFilter:
    options = {"max_chars": 20, "max_length_ratio": 4.0, "chinese_side": "source", **kwargs}
    return PairFilter(**options)


@pytest.mark.parametrize(
    ("name", "pair"),
    [
        ("empty", ("", "Hello.")),
        ("empty", ("你好。", "")),
        ("too_long", ("你" * 21, "You " * 5)),
        ("too_long", ("你好。", "x" * 21)),
        ("length_ratio", ("好。", "It is a fine day.")),  # 17 > 4 * 2
        ("identical", ("OK", "OK")),
        ("no_cjk", ("Tom.", "Tom!")),
    ],
)
def test_each_filter_removes_its_pair_and_counts_it(name, pair):
    pair_filter = zh_en_filter()
    assert run(pair_filter, [("你好。", "Hello."), pair]) == [("你好。", "Hello.")]
    assert pair_filter.removed == {**dict.fromkeys(FILTERS, 0), name: 1}


def test_duplicates_are_removed_after_their_first_occurrence():
    pair_filter = zh_en_filter()
    pairs = [("你好。", "Hello."), ("你好。", "Hi."), ("你好。", "Hello."), ("你好。", "Hello.")]
    assert run(pair_filter, pairs) == [("你好。", "Hello."), ("你好。", "Hi.")]
    assert pair_filter.removed["duplicate"] == 2


def test_pairs_sharing_a_sentence_with_dev_or_test_are_removed():
    pair_filter = zh_en_filter(
        held_out_sources={sentence_key("我累了。")}, held_out_targets={sentence_key("Hello.")}
    )
    pairs = [("我累了。", "I'm tired."), ("你好。", "Hello."), ("你好!", "Hi!")]
    assert run(pair_filter, pairs) == [("你好!", "Hi!")]
    assert pair_filter.removed["in_dev_or_test"] == 2


def test_a_pair_is_counted_once_under_its_first_failing_filter():
    pair_filter = zh_en_filter()
    run(pair_filter, [("Hello hello hello hello!", "Hello hello hello hello!")])  # 24 > 20
    assert pair_filter.removed["too_long"] == 1
    assert sum(pair_filter.removed.values()) == 1


def test_no_cjk_applies_to_the_chinese_side_only():
    english_source = zh_en_filter(chinese_side="target")
    assert run(english_source, [("Hello.", "你好。")]) == [("Hello.", "你好。")]
    assert run(english_source, [("Hello.", "Hallo.")]) == []
    neither = zh_en_filter(chinese_side=None)
    assert run(neither, [("Hello.", "Hallo.")]) == [("Hello.", "Hallo.")]


def test_cjk_detection():
    assert has_cjk("OK了") and has_cjk("𠀀") and not has_cjk("OK, 123!") and not has_cjk("")


def test_sentence_keys_are_stable_64_bit_integers():
    assert sentence_key("你好") == sentence_key("你好") != sentence_key("你好。")
    assert -(2**63) <= sentence_key("Hello.") < 2**63
    # Fixed across processes and versions (unlike hash()): a split must not depend on
    # PYTHONHASHSEED. The value is blake2b-64 of the UTF-8 bytes.
    assert sentence_key("Hello.") == -5234276294385792277
