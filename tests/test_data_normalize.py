"""Normalisation: width, controls, whitespace and Traditional -> Simplified."""

import opencc
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.normalize import is_chinese, normalize, to_simplified


def test_full_width_letters_digits_and_punctuation_become_half_width():
    assert normalize("Ｔｏｍ　ｈａｓ　１２３ ｃａｔｓ！", "en") == "Tom has 123 cats!"
    assert normalize("你好，汤姆？（１２）", "zh") == "你好,汤姆?(12)"


def test_control_and_format_characters_are_dropped_and_whitespace_collapsed():
    text = "\ufeff请\u200b\u200b借我\x07你的书。\t\n  Thanks\u00a0 a\u3000lot. "
    assert normalize(text, "zh") == "请借我你的书。 Thanks a lot."


def test_traditional_chinese_becomes_simplified_only_when_asked_and_only_for_chinese():
    assert normalize("我們說話。臺灣很漂亮。", "zh") == "我们说话。台湾很漂亮。"
    assert normalize("我們說話。", "zh", traditional_to_simplified=False) == "我們說話。"
    assert normalize("我們說話。", "en") == "我們說話。"  # an English side is left alone


def test_phrase_level_conversions_survive_the_fast_path():
    # 沈 alone is a surname and stays; in 沈默 it is the Traditional form of 沉.
    assert to_simplified("沈先生很沈默。") == "沈先生很沉默。"
    assert to_simplified("汤姆在吗?") == "汤姆在吗?"


def test_language_codes():
    assert is_chinese("zh") and is_chinese("zh-TW") and is_chinese("cmn")
    assert not is_chinese("en") and not is_chinese("zu")


# Characters that take every path: Traditional, Simplified, phrase-table members, Latin.
_ALPHABET = "沈默船們說話臺灣覆蓋藉口瞭解乾隆后後面里裡一不以回么汤姆你好我们 ,.!?Aa1"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=12))
def test_fast_path_agrees_with_opencc(text):
    assert to_simplified(text) == opencc.OpenCC("t2s").convert(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.sampled_from(["zh", "en"]))
def test_normalize_is_idempotent_apart_from_opencc(text, lang):
    # OpenCC's tables chain in a few places (薴 -> 苧 -> 苎), so only one pass of the
    # conversion is defined; training and translation both apply exactly one, to raw text.
    once = normalize(text, lang, traditional_to_simplified=False)
    assert normalize(once, lang, traditional_to_simplified=False) == once
    assert once == once.strip() and "  " not in once
