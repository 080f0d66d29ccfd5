"""`nmt prepare` end to end on tiny corpora: outputs, policies, cache, corpus location."""

import dataclasses
import hashlib
import random
import zipfile
from pathlib import Path

import pytest

from nmt.cli import main
from nmt.config import DataConfig, VocabConfig
from nmt.data import sources
from nmt.data.normalize import normalize
from nmt.data.prepare import PreparedData, prepare_data
from nmt.data.readers import read_lines
from nmt.errors import DataError

LEXICON = [
    ("Tom", "汤姆"), ("likes", "喜欢"), ("cats", "猫"), ("dogs", "狗"), ("we", "我们"),
    ("today", "今天"), ("tomorrow", "明天"), ("go", "去"), ("school", "学校"), ("eat", "吃饭"),
    ("very", "很"), ("good", "好"), ("not", "不"), ("want", "想"), ("read", "看"), ("books", "书"),
]  # fmt: skip
CREDIT = "CC-BY 2.0 (France) Attribution: tatoeba.org #{} (a) & #{} (b)"


def tiny_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(english, chinese) pairs; some share a sentence, as in Tatoeba."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = rng.choices(LEXICON, k=rng.randint(2, 6))
        english = " ".join(en for en, _ in words).capitalize() + "."
        chinese = "".join(zh for _, zh in words) + "。"
        pairs.append((english, chinese))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    lines = [f"{en}\t{zh}\t{CREDIT.format(i, i + 1)}" for i, (en, zh) in enumerate(pairs)]
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_aligned(prefix: Path, pairs: list[tuple[str, str]]) -> None:
    prefix.with_name(prefix.name + ".en").write_text(
        "".join(f"{en}\n" for en, _ in pairs), encoding="utf-8"
    )
    prefix.with_name(prefix.name + ".zh").write_text(
        "".join(f"{zh}\n" for _, zh in pairs), encoding="utf-8"
    )


def tiny_config(corpus: Path, output: Path, **changes) -> DataConfig:
    config = DataConfig(
        corpus=str(corpus),
        train="corpus.tsv",
        dev=None,
        test=None,
        dev_size=10,
        test_size=12,
        output_dir=str(output),
        threads=1,
        vocab=VocabConfig(src_size=60, tgt_size=60, joint_size=90),
    )
    return dataclasses.replace(config, **changes)


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "no-mirror"))


@pytest.fixture
def tsv_corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    pairs = tiny_pairs(300)
    pairs += [
        ("We talk.", "我們說話。"),  # Traditional: normalised to 我们说话。
        ("Tom has １２ books.", "汤姆有１２本书。"),  # full width
        ("", "空的。"),  # empty
        ("OK.", "OK."),  # identical
        ("Hi.", "Hi!"),  # no Chinese character
        pairs[0],  # duplicate
    ]
    write_tsv(folder / "corpus.tsv", pairs)
    return folder


def test_cli_prepares_a_tsv_corpus_with_a_leak_free_split(tsv_corpus, tmp_path, capsys):
    output = tmp_path / "out"
    code = main(
        [
            "prepare",
            f"data.corpus={tsv_corpus}",
            "data.train=corpus.tsv",
            "data.dev=null",
            "data.test=null",
            "data.dev_size=10",
            "data.test_size=12",
            f"data.output_dir={output}",
            "data.vocab.src_size=60",
            "data.vocab.tgt_size=60",
            "data.vocab.zh_character_coverage=1.0",  # keep rare characters: exact round trip
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "read        306 pairs from corpus.tsv" in printed
    for count in ("empty 1", "identical 1", "no_cjk 1", "duplicate"):
        assert count in printed
    assert "dev 10 (split off" in printed and "test 12 (split off" in printed

    data = PreparedData.load(output)
    assert data.splits == ("train", "dev", "test")
    sentences = {}
    for split in data.splits:
        source_path, reference_path = data.text_paths(split)
        sources_, references = read_lines(source_path), read_lines(reference_path)
        attribution = read_lines(output / f"{split}.attribution")
        assert len(sources_) == len(references) == len(attribution) == len(data.encoded(split))
        sentences[split] = (
            {normalize(s, "zh") for s in sources_},
            {normalize(r, "en") for r in references},
        )
    for side in (0, 1):  # no dev/test source or reference occurs in training
        assert not sentences["train"][side] & sentences["dev"][side]
        assert not sentences["train"][side] & sentences["test"][side]
        assert not sentences["dev"][side] & sentences["test"][side]
    assert "我们说话。" in sentences["train"][0] | sentences["dev"][0] | sentences["test"][0]

    train = data.encoded("train")
    train_sources, train_targets = (read_lines(path) for path in data.text_paths("train"))
    assert "我們說話。" not in train_sources and "Tom has 12 books." in train_targets
    for index in range(len(train)):
        src, tgt = train.pair(index)
        assert data.src_vocab.decode(src) == train_sources[index]
        assert data.tgt_vocab.decode(tgt) == train_targets[index]


@pytest.fixture
def aligned_corpus(tmp_path) -> Path:
    folder = tmp_path / "aligned"
    folder.mkdir()
    train = tiny_pairs(200, seed=1)
    test = tiny_pairs(6, seed=2) + [("", "空的。"), ("Tom " * 80, "汤姆。")]
    train.append((test[0][0], "一个不同的翻译。"))  # shares a reference with test
    write_aligned(folder / "train", train)
    write_aligned(folder / "dev", tiny_pairs(5, seed=3))
    write_aligned(folder / "test", test)
    return folder


def test_given_dev_and_test_are_kept_as_they_are_and_excluded_from_training(
    aligned_corpus, tmp_path
):
    config = tiny_config(aligned_corpus, tmp_path / "out", train="train", dev="dev", test="test")
    data = prepare_data(config)
    for split in ("dev", "test"):
        for given, copied in zip(
            (f"{split}.zh", f"{split}.en"), data.text_paths(split), strict=True
        ):
            assert copied.read_bytes() == (aligned_corpus / given).read_bytes()
    assert len(data.encoded("test")) == 8  # the empty and the over-long pair included
    assert data.summary.removed["in_dev_or_test"] >= 1
    train_references = set(read_lines(data.text_paths("train")[1]))
    assert not train_references & set(read_lines(aligned_corpus / "test.en"))
    assert data.summary.split_notes["test"] == "given, unfiltered"


def test_the_cache_is_reused_until_inputs_or_settings_change(tsv_corpus, tmp_path):
    config = tiny_config(tsv_corpus, tmp_path / "out")
    first = prepare_data(config)
    train_pt = tmp_path / "out" / "train.pt"
    built_at = train_pt.stat().st_mtime_ns

    again = prepare_data(config)
    assert again.summary.reused and train_pt.stat().st_mtime_ns == built_at
    assert len(again.encoded("train")) == len(first.encoded("train"))

    changed = prepare_data(dataclasses.replace(config, max_chars=30))
    assert not changed.summary.reused
    assert len(changed.encoded("train")) < len(first.encoded("train"))

    with open(tsv_corpus / "corpus.tsv", "a", encoding="utf-8") as tsv:
        tsv.write("Cats read books.\t猫看书。\n")
    assert not prepare_data(config).summary.reused
    assert prepare_data(config).summary.reused
    assert not prepare_data(config, force=True).summary.reused

    train_pt.unlink()  # an incomplete folder is rebuilt, not trusted
    assert not prepare_data(config).summary.reused and train_pt.is_file()


def test_a_complete_build_is_reused_when_its_inputs_are_gone(tsv_corpus, tmp_path):
    config = tiny_config(tsv_corpus, tmp_path / "out")
    prepare_data(config)
    (tsv_corpus / "corpus.tsv").unlink()
    data = prepare_data(config)
    assert "inputs not found" in data.summary.notes[0]
    with pytest.raises(DataError, match="no corpus 'corpus.tsv'"):
        prepare_data(config, force=True)


def test_joint_vocabulary_serves_both_languages(tsv_corpus, tmp_path):
    config = tiny_config(tsv_corpus, tmp_path / "out")
    config.vocab.joint = True
    data = prepare_data(config)
    assert data.src_vocab is data.tgt_vocab
    assert list(data.summary.vocab_sizes) == ["joint"]
    assert (tmp_path / "out" / "vocab.joint.model").is_file()
    vocab = data.src_vocab
    assert vocab.decode(vocab.encode("汤姆喜欢猫。")) == "汤姆喜欢猫。"
    assert vocab.decode(vocab.encode("Tom likes cats.")) == "Tom likes cats."


def test_missing_split_is_reported(tsv_corpus, tmp_path):
    data = prepare_data(tiny_config(tsv_corpus, tmp_path / "out", test_size=0))
    assert data.splits == ("train", "dev")
    with pytest.raises(DataError, match="no 'test' split"):
        data.encoded("test")


def test_misaligned_training_files_fail_with_one_line(tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "train.zh").write_text("一\n二\n", encoding="utf-8")
    (folder / "train.en").write_text("one\n", encoding="utf-8")
    code = main(
        ["prepare", f"data.corpus={folder}", "data.dev=null", "data.test=null",
         f"data.output_dir={tmp_path / 'out'}"]
    )  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "train.zh has 2 lines but" in error and "train.en has 1" in error


# --- locating a known corpus: mirror, checksum, download ----------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def known_corpus(monkeypatch, url: str, tsv_sha256: str) -> None:
    known = sources.KNOWN_CORPORA["tatoeba-zh-en"]
    pinned = dataclasses.replace(known, url=url, sha256={**known.sha256, "cmn-eng.txt": tsv_sha256})
    monkeypatch.setitem(sources.KNOWN_CORPORA, "tatoeba-zh-en", pinned)


def test_a_mirror_file_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "tatoeba-zh-en").mkdir(parents=True)
    write_tsv(mirror / "tatoeba-zh-en" / "cmn-eng.txt", tiny_pairs(100))
    monkeypatch.setenv("DATA_MIRROR", str(mirror))
    config = tiny_config(Path("tatoeba-zh-en"), tmp_path / "out", train="cmn-eng.txt")
    config.corpus = "tatoeba-zh-en"
    with pytest.raises(DataError, match=r"checksum mismatch for .*cmn-eng\.txt.*verify_checksums"):
        prepare_data(config)
    config.verify_checksums = False
    assert prepare_data(config).summary.origin == f"folder {mirror / 'tatoeba-zh-en'}"
    config.verify_checksums = True  # a complete build does not excuse a bad file
    with pytest.raises(DataError, match="checksum mismatch"):
        prepare_data(config)


def test_without_a_mirror_the_archive_is_downloaded_and_split(tmp_path, monkeypatch):
    tsv = write_tsv(tmp_path / "cmn.txt", tiny_pairs(150))
    archive = tmp_path / "cmn-eng.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(tsv, "cmn.txt")
    known_corpus(monkeypatch, archive.as_uri(), sha256(tsv))
    config = tiny_config(Path("unused"), tmp_path / "out", train="train", dev="dev", test="test")
    config.corpus = "tatoeba-zh-en"
    data = prepare_data(config)
    assert data.summary.origin == f"download {archive.as_uri()}"
    assert data.summary.split_sizes == {
        "train": data.summary.split_sizes["train"],
        "dev": 10,
        "test": 12,
    }
    assert (tmp_path / "out" / "download" / "cmn-eng.txt").read_bytes() == tsv.read_bytes()


def test_when_nothing_works_the_error_says_what_to_put_where(tmp_path, monkeypatch):
    known_corpus(monkeypatch, (tmp_path / "absent.zip").as_uri(), "0" * 64)
    config = tiny_config(Path("unused"), tmp_path / "out", train="train")
    config.corpus = "tatoeba-zh-en"
    with pytest.raises(DataError) as error:
        prepare_data(config)
    message = str(error.value)
    assert "download of" in message and "failed" in message
    assert "train.zh, train.en, dev.zh, dev.en, test.zh, test.en" in message
    assert f"{tmp_path / 'no-mirror'}/tatoeba-zh-en/" in message
    assert str(tmp_path / "out" / "download" / "cmn-eng.txt") in message
