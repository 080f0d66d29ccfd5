"""Corpus readers: both formats, their line handling, and their errors."""

import gzip
from pathlib import Path

import pytest

from nmt.data.readers import (
    CorpusInput,
    SentencePair,
    count_lines,
    read_aligned,
    read_lines,
    read_pairs,
    read_tsv,
    resolve_input,
)
from nmt.errors import DataError

CREDIT = "CC-BY 2.0 (France) Attribution: tatoeba.org #1 (a) & #2 (b)"


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_tsv_with_bom_keeps_attribution_and_orders_by_direction(tmp_path):
    tsv = write(tmp_path / "c.txt", f"\ufeffHi.\t嗨。\t{CREDIT}\nRun!\t跑！\n")
    assert list(read_tsv(tsv, "zh", "en")) == [
        SentencePair("嗨。", "Hi.", CREDIT),
        SentencePair("跑！", "Run!", ""),
    ]
    assert list(read_tsv(tsv, "en", "zh"))[0] == SentencePair("Hi.", "嗨。", CREDIT)


def test_tsv_blank_line_is_an_empty_pair_and_a_bad_line_names_file_and_line(tmp_path):
    tsv = write(tmp_path / "c.txt", "Hi.\t嗨。\n\nno tab here\n")
    pairs = read_tsv(tsv, "zh", "en")
    assert next(pairs) == SentencePair("嗨。", "Hi.")
    assert next(pairs) == SentencePair("", "")
    with pytest.raises(DataError, match=r"c\.txt:3: expected .*found 1 tab-separated"):
        next(pairs)


def test_tsv_needs_english_on_one_side(tmp_path):
    tsv = write(tmp_path / "c.txt", "Hi.\t嗨。\n")
    with pytest.raises(DataError, match="English"):
        list(read_tsv(tsv, "zh", "ja"))


def test_aligned_files_read_line_by_line(tmp_path):
    zh = write(tmp_path / "t.zh", "你好。\r\n再见\u2028朋友。\n")  # CRLF; U+2028 is no line end
    en = write(tmp_path / "t.en", "Hello.\nGoodbye, friend.")  # no final newline
    assert list(read_aligned(zh, en)) == [
        SentencePair("你好。", "Hello."),
        SentencePair("再见\u2028朋友。", "Goodbye, friend."),
    ]
    assert count_lines(zh) == count_lines(en) == 2
    assert read_lines(zh) == ["你好。", "再见\u2028朋友。"]


def test_misaligned_files_are_refused_naming_both_files_and_counts(tmp_path):
    zh = write(tmp_path / "t.zh", "一\n二\n三\n")
    en = write(tmp_path / "t.en", "one\ntwo\n")
    with pytest.raises(DataError) as error:
        list(read_aligned(zh, en))
    message = str(error.value)
    assert str(zh) in message and str(en) in message
    assert "3 lines" in message and "has 2" in message


def test_invalid_utf8_names_file_and_line(tmp_path):
    zh = write(tmp_path / "t.zh", "好\n".encode() + "坏\n".encode("gb18030"))
    en = write(tmp_path / "t.en", "good\nbad\n")
    with pytest.raises(DataError, match=r"t\.zh:2: not valid UTF-8"):
        list(read_aligned(zh, en))


def test_count_lines_of_empty_file(tmp_path):
    assert count_lines(write(tmp_path / "empty.en", "")) == 0


def test_resolve_input_finds_aligned_prefix_or_tsv(tmp_path):
    write(tmp_path / "train.zh", "你好\n")
    write(tmp_path / "train.en", "hello\n")
    write(tmp_path / "all.tsv", "hello\t你好\n")
    write(tmp_path / "half.zh", "你好\n")

    aligned = resolve_input("train", tmp_path, "zh", "en")
    assert aligned == CorpusInput(
        "aligned", (tmp_path / "train.zh", tmp_path / "train.en"), "zh", "en"
    )
    assert list(read_pairs(aligned)) == [SentencePair("你好", "hello")]

    tsv = resolve_input(str(tmp_path / "all.tsv"), Path("/elsewhere"), "zh", "en")
    assert tsv.kind == "tsv"
    assert list(read_pairs(tsv)) == [SentencePair("你好", "hello")]

    with pytest.raises(DataError, match="half.zh but not its aligned partner"):
        resolve_input("half", tmp_path, "zh", "en")
    with pytest.raises(DataError, match="no corpus 'missing'"):
        resolve_input("missing", tmp_path, "zh", "en")


# --- gzip-compressed files ---------------------------------------------------------------


def write_gz(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw, mtime=0))
    return path


def test_gzip_files_are_read_with_the_same_line_rules(tmp_path):
    zh = write_gz(tmp_path / "t.zh.gz", "\ufeff你好。\r\n再见\u2028朋友。\n")
    en = write(tmp_path / "t.en", "Hello.\nGoodbye, friend.")  # a plain partner is fine
    corpus = resolve_input("t", tmp_path, "zh", "en")
    assert corpus == CorpusInput("aligned", (zh, en), "zh", "en")
    assert list(read_pairs(corpus)) == [
        SentencePair("你好。", "Hello."),
        SentencePair("再见\u2028朋友。", "Goodbye, friend."),
    ]
    assert count_lines(zh) == 2 and read_lines(zh) == ["你好。", "再见\u2028朋友。"]
    tsv = write_gz(tmp_path / "c.tsv.gz", f"Hi.\t嗨。\t{CREDIT}\n")
    assert list(read_tsv(tsv, "zh", "en")) == [SentencePair("嗨。", "Hi.", CREDIT)]


def test_a_plain_file_is_preferred_to_its_gzip_copy(tmp_path):
    write(tmp_path / "t.zh", "一\n")
    write_gz(tmp_path / "t.zh.gz", "二\n")
    write_gz(tmp_path / "t.en.gz", "one\n")
    corpus = resolve_input("t", tmp_path, "zh", "en")
    assert corpus.paths == (tmp_path / "t.zh", tmp_path / "t.en.gz")
    write_gz(tmp_path / "half.zh.gz", "一\n")
    with pytest.raises(DataError, match=r"half\.zh\.gz but not its aligned partner .*half\.en"):
        resolve_input("half", tmp_path, "zh", "en")


def test_gzip_text_that_is_not_utf8_names_file_and_line(tmp_path):
    zh = write_gz(tmp_path / "t.zh.gz", "好\n".encode() + "坏\n".encode("gb18030"))
    with pytest.raises(DataError, match=r"t\.zh\.gz:2: not valid UTF-8"):
        read_lines(zh)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not_gzip", "empty"])
def test_a_damaged_gzip_file_is_a_data_error_naming_it(tmp_path, damage):
    text = "".join(f"第{i}句。\n" for i in range(5000)).encode("utf-8")
    packed = gzip.compress(text, mtime=0)
    if damage == "truncated":
        packed = packed[: len(packed) // 2]
    elif damage == "flipped":  # garbage in the middle: caught by the checksum at the end
        middle = len(packed) // 2
        packed = packed[:middle] + bytes([packed[middle] ^ 0xFF]) + packed[middle + 1 :]
    elif damage == "not_gzip":
        packed = text
    else:  # an interrupted write: not even a gzip header
        packed = b""
    zh = write(tmp_path / "t.zh.gz", packed)
    en = write(tmp_path / "t.en", "x\n" * 5000)
    reads = [
        lambda: count_lines(zh),
        lambda: read_lines(zh),
        lambda: list(read_aligned(zh, en)),
    ]
    for read in reads:
        with pytest.raises(DataError, match=rf"{zh}: damaged or truncated gzip file"):
            read()
