"""Every cleaning filter, its count, and the order in which filters apply."""

import numpy as np
import pytest

from nmt.data.clean import FILTERS, PairFilter, first_occurrences, has_cjk, sentence_key
from nmt.data.langid import wrong_script


def run(pair_filter: PairFilter, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (source, target)
        for source, target in pairs
        if pair_filter.keep(source, target, sentence_key(source), sentence_key(target))
    ]


def zh_en_filter(**kwargs) -> PairFilter:
    options = {"max_chars": 20, "max_length_ratio": 4.0, "languages": ("zh", "en"), **kwargs}
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
        ("wrong_script", ("你好Hello there", "Hello there")),  # 10 Latin letters > 4 x 2
        ("wrong_script", ("你好。", "你好吗?")),  # Chinese in the English column
    ],
)
def test_each_filter_removes_its_pair_and_counts_it(name, pair):
    pair_filter = zh_en_filter()
    assert run(pair_filter, [("你好。", "Hello."), pair]) == [("你好。", "Hello.")]
    assert pair_filter.removed == {**dict.fromkeys(FILTERS, 0), name: 1}


def test_duplicates_are_removed_after_their_first_occurrence():
    pairs = [("你好。", "Hello."), ("你好。", "Hi."), ("你好。", "Hello."), ("再见", "Hello.")]
    pairs += [("你好。", "Hello.")]
    sources = np.asarray([sentence_key(source) for source, _ in pairs], dtype=np.int64)
    targets = np.asarray([sentence_key(target) for _, target in pairs], dtype=np.int64)
    # Only equal pairs are duplicates (a shared source or target is not), the first stays.
    assert first_occurrences(sources, targets).tolist() == [True, True, False, True, False]
    assert first_occurrences(sources[:0], targets[:0]).tolist() == []


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
    english_source = zh_en_filter(languages=("en", "zh"))
    assert run(english_source, [("Hello.", "你好。")]) == [("Hello.", "你好。")]
    assert run(english_source, [("Hello.", "Hallo.")]) == []
    neither = zh_en_filter(languages=("de", "en"))
    assert run(neither, [("Hallo.", "Hello.")]) == [("Hallo.", "Hello.")]


@pytest.mark.parametrize(
    ("text", "lang", "wrong"),
    [
        # Chinese side: Latin names and brands are fine, up to 4 letters per character.
        ("我用Twitter。", "zh", False),
        ("Tom帮Mary买了点果汁。", "zh", False),
        ("我叫Tom。", "zh", False),
        ("This is an English sentence.", "zh", True),
        ("I like 猫 very much.", "zh", True),
        ("私は学生です。", "zh", True),  # kana: Japanese
        ("저는 학생입니다.", "zh", True),  # hangul: Korean
        ("Это русский текст.", "zh", True),  # Cyrillic
        ("2024年3月", "zh", False),  # digits are no letters
        # Latin-script side: a quoted character is fine, a Chinese sentence is not.
        ('How do you say "猫" in Chinese?', "en", False),
        ("Café au lait, s'il vous plaît.", "en", False),  # accents are Latin (French: langid)
        ("我们明天去公园吧。", "en", True),
        ("Tom 是我的朋友", "en", True),  # 4 x 5 > 3
        ("Это русский текст.", "en", True),
        ("12:30", "en", False),
        ("안녕하세요", "ja", False),  # a language without a known script is not checked
    ],
)
def test_script_filter_on_hand_picked_lines(text, lang, wrong):
    assert wrong_script(text, lang) is wrong


def test_script_filter_can_be_switched_off():
    pair_filter = zh_en_filter(script_filter=False)
    assert run(pair_filter, [("你好。", "你好吗?")]) == [("你好。", "你好吗?")]


def test_cjk_detection():
    assert has_cjk("OK了") and has_cjk("𠀀") and not has_cjk("OK, 123!") and not has_cjk("")


def test_sentence_keys_are_stable_64_bit_integers():
    assert sentence_key("你好") == sentence_key("你好") != sentence_key("你好。")
    assert -(2**63) <= sentence_key("Hello.") < 2**63
    # Fixed across processes and versions (unlike hash()): a split must not depend on
    # PYTHONHASHSEED. The value is blake2b-64 of the UTF-8 bytes.
    assert sentence_key("Hello.") == -5234276294385792277


def test_language_identification_on_hand_picked_lines():
    pytest.importorskip("lingua")
    from nmt.data.langid import LanguageIdentifier

    identifier = LanguageIdentifier(["en"])
    lines = [
        "The weather is very nice today, isn't it?",  # English
        "Le chat dort sur le canapé depuis ce matin.",  # French
        "Ich habe heute keine Zeit für solche Dinge.",  # German
        "¿Dónde está la estación de tren más cercana?",  # Spanish
        "Kiss me.",  # too short to judge: kept ("Kiss me." reads as French to lingua)
        "Tom and Mary went to the market together yesterday.",
    ]
    assert identifier.wrong(lines, "en") == [False, True, True, True, False, False]
