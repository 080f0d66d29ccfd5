"""Sentencepiece vocabularies: special ids, exact round trips, serialisation."""

import random

import pytest

from nmt.data.normalize import normalize
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary, train_vocabulary
from nmt.errors import DataError

WORDS = "汤姆 喜欢 猫 狗 我们 今天 明天 去 学校 吃饭 很 好 不 想 看 书 電影 說話".split()


@pytest.fixture(scope="module")
def chinese_vocab(tmp_path_factory) -> tuple[Vocabulary, list[str]]:
    rng = random.Random(0)
    raw = ["".join(rng.choices(WORDS, k=rng.randint(2, 8))) + "。" for _ in range(400)]
    raw += ["Ｔｏｍ喜欢１２３个苹果！", "他說 Hello world 了."]
    sentences = [normalize(text, "zh") for text in raw]
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "train.zh").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    vocab = train_vocabulary(
        [folder / "train.zh"], folder / "vocab.zh", vocab_size=120, character_coverage=1.0
    )
    return vocab, sentences


def test_special_ids_are_fixed(chinese_vocab):
    vocab, _ = chinese_vocab
    processor = vocab.processor
    assert (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id()) == (
        PAD_ID,
        UNK_ID,
        BOS_ID,
        EOS_ID,
    )
    assert vocab.pieces([PAD_ID, UNK_ID, BOS_ID, EOS_ID]) == ["<pad>", "<unk>", "<s>", "</s>"]


def test_decoding_an_encoding_gives_the_normalised_text_back(chinese_vocab):
    vocab, sentences = chinese_vocab
    for sentence in sentences:
        ids = vocab.encode(sentence)
        assert BOS_ID not in ids and EOS_ID not in ids
        assert vocab.decode(ids) == sentence
    # Traditional input maps to the same ids as Simplified once normalised.
    assert vocab.encode(normalize("我們說話", "zh")) == vocab.encode("我们说话")


def test_decode_skips_pad_bos_eos_and_pieces_spell_the_text(chinese_vocab):
    vocab, sentences = chinese_vocab
    ids = vocab.encode(sentences[0])
    assert vocab.decode([BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID]) == sentences[0]
    assert "".join(vocab.pieces(ids)).replace("▁", " ").strip() == sentences[0]


def test_unknown_characters_become_unk_without_crashing(chinese_vocab):
    vocab, _ = chinese_vocab
    ids = vocab.encode("猫😀𪚥")
    assert UNK_ID in ids
    assert isinstance(vocab.decode(ids), str)


def test_bytes_round_trip_preserves_the_model(chinese_vocab):
    vocab, sentences = chinese_vocab
    copy = Vocabulary.from_bytes(vocab.to_bytes())
    assert len(copy) == len(vocab) <= 120
    assert copy.encode_batch(sentences[:20]) == [vocab.encode(s) for s in sentences[:20]]


def test_broken_models_are_reported(tmp_path):
    with pytest.raises(DataError, match="not a sentencepiece model"):
        Vocabulary.from_bytes(b"not a model")
    with pytest.raises(DataError, match="vocabulary model not found"):
        Vocabulary.from_file(tmp_path / "missing.model")
