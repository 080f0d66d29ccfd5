"""Corpus readers: both formats, their line handling, and their errors."""

import bz2
import gzip
import lzma
from pathlib import Path

import pytest
import zstandard

from nmt.data.readers import (
    CorpusInput,
    MalformedLines,
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


# --- every compression format, TSV columns, TMX, the skip policy -------------------------

COMPRESSORS = {
    ".gz": lambda data: gzip.compress(data, mtime=0),
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    # Two frames: a corpus concatenated from parts is still one stream.
    ".zst": lambda data: b"".join(
        zstandard.ZstdCompressor().compress(part) for part in (data[:100], data[100:])
    ),
}


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_every_compression_format_streams_the_same_lines(tmp_path, suffix):
    lines = [f"第{i}句，\u2028还是这一行。" for i in range(300)]
    text = ("\ufeff" + "\r\n".join(lines) + "\n").encode("utf-8")
    zh = write(tmp_path / f"t.zh{suffix}", COMPRESSORS[suffix](text))
    write(tmp_path / "t.en", "".join(f"sentence {i}\n" for i in range(300)))
    corpus = resolve_input("t", tmp_path, "zh", "en")
    assert corpus.paths[0] == zh
    assert read_lines(zh) == lines and count_lines(zh) == 300
    assert [pair.source for pair in read_pairs(corpus)] == lines


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_a_truncated_archive_is_a_clear_error_not_a_hang(tmp_path, suffix):
    text = "".join(f"第{i}句。\n" for i in range(5000)).encode("utf-8")
    packed = COMPRESSORS[suffix](text)
    zh = write(tmp_path / f"t.zh{suffix}", packed[: len(packed) // 2])
    for read in (lambda: count_lines(zh), lambda: read_lines(zh)):
        with pytest.raises(DataError, match=rf"{zh}: damaged or truncated"):
            read()


def test_tsv_columns_select_and_order_the_sides(tmp_path):
    write(tmp_path / "c.tsv", "0.9\t你好。\tHello.\n0.8\t再见。\tBye.\n")
    corpus = resolve_input("c.tsv", tmp_path, "en", "zh", columns=["-", "zh", "en"])
    assert list(read_pairs(corpus)) == [
        SentencePair("Hello.", "你好。"),
        SentencePair("Bye.", "再见。"),
    ]
    with pytest.raises(DataError, match="must name 'en' exactly once"):
        resolve_input("c.tsv", tmp_path, "zh", "en", columns=["-", "zh", "de"])


def test_skip_policy_reports_exact_line_numbers_per_file(tmp_path):
    tsv = write(
        tmp_path / "c.tsv",
        b"Hi.\t\xe5\x97\xa8\xe3\x80\x82\n"  # 1: fine
        b"one field only\n"  # 2: malformed
        b"Bad\t\xff\xfe\n"  # 3: not UTF-8
        b"Run!\t\xe8\xb7\x91\n"  # 4: fine
        b"a\tb\tc\td\n",  # 5: four fields
    )
    errors = MalformedLines("skip")
    pairs = list(read_tsv(tsv, "zh", "en", errors=errors))
    assert pairs == [SentencePair("嗨。", "Hi."), SentencePair("跑", "Run!")]
    assert errors.counts == {str(tsv): 3} and errors.lines == {str(tsv): [2, 3, 5]}
    with pytest.raises(DataError, match=r"c\.tsv:2: expected"):
        list(read_tsv(tsv, "zh", "en"))  # stop, the default, names the first one

    zh = write(tmp_path / "t.zh", "一\n".encode() + b"\xff\n" + "三\n".encode())
    en = write(tmp_path / "t.en", b"one\ntwo\n\xfe three\n")
    errors = MalformedLines("skip")
    assert list(read_aligned(zh, en, errors)) == [SentencePair("一", "one")]
    assert errors.lines == {str(zh): [2], str(en): [3]}


TMX = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header srclang="en" datatype="plaintext"/>
<body>
<tu><tuv xml:lang="en"><seg>Hello &amp; welcome.</seg></tuv>
    <tuv xml:lang="zh-CN"><seg>你好，<bpt i="1">&lt;b&gt;</bpt>欢迎<ept i="1">&lt;/b&gt;</ept>。</seg></tuv></tu>
<tu><tuv xml:lang="en"><seg>Only English.</seg></tuv></tu>
<tu><tuv lang="EN-us"><seg>Two
lines.</seg></tuv><tuv xml:lang="ZHO"><seg><hi>两</hi>行。</seg></tuv></tu>
</body></tmx>
"""


def test_tmx_units_stream_with_languages_matched_by_primary_subtag(tmp_path):
    tmx = write(tmp_path / "c.tmx.xz", lzma.compress(TMX.encode("utf-8")))
    corpus = resolve_input("c.tmx.xz", tmp_path, "zh", "en")
    assert corpus.kind == "tmx"
    errors = MalformedLines("skip")
    assert list(read_pairs(corpus, errors)) == [
        SentencePair("你好，欢迎。", "Hello & welcome."),  # native codes dropped
        SentencePair("两行。", "Two lines."),  # one line per sentence
    ]
    assert errors.lines == {str(tmx): [6]}  # the unit without Chinese, at its <tu>
    write(tmp_path / "b.tmx", TMX.replace("</tu>\n<tu><tuv lang", "</tuv>\n<tu><tuv lang"))
    with pytest.raises(DataError, match=r"b\.tmx:\d+: not a well-formed TMX file"):
        list(read_pairs(resolve_input("b.tmx", tmp_path, "zh", "en")))
