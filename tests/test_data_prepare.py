"""`nmt prepare` end to end on tiny corpora: outputs, policies, cache, corpus location."""

import dataclasses
import gzip
import hashlib
import random
import shutil
import zipfile
from pathlib import Path

import pytest

from nmt.cli import main
from nmt.config import DataConfig, VocabConfig, config_from_dict
from nmt.data import sources
from nmt.data.normalize import normalize
from nmt.data.prepare import SPLITS, PreparedData, prepare_data
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
def _no_mirror(monkeypatch):
    monkeypatch.delenv("DATA_MIRROR", raising=False)


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
    train_pt = tmp_path / "out" / "train.ids" / "meta.json"
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


# --- locating a corpus: mirror, embedded copy, download; checksums ------------------------

KNOWN = sources.KNOWN_CORPORA["tatoeba-zh-en"]
UNREACHABLE = "http://127.0.0.1:9/cmn-eng.zip"  # the discard port: nothing answers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def known_corpus(monkeypatch, url: str, tsv_sha256: str) -> None:
    pinned = dataclasses.replace(KNOWN, url=url, sha256={**KNOWN.sha256, "cmn-eng.txt": tsv_sha256})
    monkeypatch.setitem(sources.KNOWN_CORPORA, "tatoeba-zh-en", pinned)


def no_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(sources.urllib.request, "urlopen", refuse)


@pytest.fixture
def fresh_clone(monkeypatch):
    """A clone with nothing beside it: DATA_MIRROR unset, no ../shared (any path under it
    looks absent), an unreachable download address and no network at all."""
    monkeypatch.delenv("DATA_MIRROR", raising=False)
    shared = sources.REPO_ROOT.parent / "shared"
    for name in ("is_dir", "is_file", "exists"):
        real = getattr(Path, name)

        def absent_under_shared(path, *args, _real=real, **kwargs):
            if path.absolute().is_relative_to(shared):
                return False
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(Path, name, absent_under_shared)
    known_corpus(monkeypatch, UNREACHABLE, KNOWN.sha256["cmn-eng.txt"])
    no_network(monkeypatch)


def test_a_fresh_clone_prepares_the_canonical_split_from_the_embedded_copy(fresh_clone, tmp_path):
    # The default config; small BPE vocabularies keep it quick (about 1 s).
    config = config_from_dict(
        {},
        [
            f"data.output_dir={tmp_path / 'out'}",
            "data.vocab.model_type=bpe",
            "data.vocab.src_size=2700",  # about the number of Chinese characters
            "data.vocab.tgt_size=300",
        ],
    )
    data = prepare_data(config.data)
    summary = data.summary
    assert summary.origin == "embedded canonical split (data/corpora/tatoeba-zh-en)"
    assert "credits.tsv.gz" in summary.credit and "CC-BY 2.0 FR" in summary.credit
    assert summary.pairs_read == 26_055
    assert summary.split_sizes == {"train": 26_036, "dev": 1_000, "test": 2_000}
    for split in ("dev", "test"):
        for path in data.text_paths(split):
            assert sha256(path) == KNOWN.sha256[path.name], path
    assert "embedded canonical split" in summary.format()


def test_the_embedded_files_hold_the_pinned_split_and_its_credits():
    folder = sources.EMBEDDED_DIR / "tatoeba-zh-en"
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(
        ["LICENSE", "credits.tsv.gz"] + [f"{s}.{lang}.gz" for s in SPLITS for lang in ("zh", "en")]
    )
    for split in SPLITS:
        for lang in ("zh", "en"):
            path = folder / f"{split}.{lang}.gz"
            assert sources.content_sha256(path) == KNOWN.sha256[f"{split}.{lang}"]
            assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip -n: no time stamp
    credits = [line.split("\t") for line in read_lines(folder / "credits.tsv.gz")]
    assert [split for split, _ in credits] == ["train"] * 26_055 + ["dev"] * 1_000 + [
        "test"
    ] * 2_000
    assert all(
        credit.startswith("CC-BY 2.0 (France) Attribution: tatoeba.org #") for _, credit in credits
    )
    licence = (folder / "LICENSE").read_text(encoding="utf-8")
    for name in ("tatoeba.org", "manythings.org", "CC BY 2.0 FR", "credits.tsv.gz"):
        assert name in licence


@pytest.mark.skipif(
    not (sources.REPO_ROOT.parent / "shared/data/tatoeba-zh-en/cmn-eng.txt").is_file(),
    reason="needs the mirror's cmn-eng.txt (../shared/data)",
)
def test_the_embedded_credits_are_rebuilt_from_the_mirror():
    mirror = sources.REPO_ROOT.parent / "shared" / "data" / "tatoeba-zh-en"
    rebuilt = list(sources.embedded_credits(mirror))
    embedded = sources.EMBEDDED_DIR / "tatoeba-zh-en" / "credits.tsv.gz"
    assert rebuilt == [line + "\n" for line in read_lines(embedded)]


def write_gzip_aligned(prefix: Path, pairs: list[tuple[str, str]]) -> None:
    for lang, side in (("en", 0), ("zh", 1)):
        text = "".join(f"{pair[side]}\n" for pair in pairs)
        prefix.with_name(f"{prefix.name}.{lang}.gz").write_bytes(
            gzip.compress(text.encode("utf-8"), mtime=0)
        )


@pytest.fixture
def embedded_and_mirror(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """The same small corpus 'tiny' embedded (gzip) and in a mirror (plain)."""
    embedded, mirror = tmp_path / "embedded", tmp_path / "mirror"
    for split, seed, count in (("train", 1, 200), ("dev", 2, 10), ("test", 3, 12)):
        (embedded / "tiny").mkdir(parents=True, exist_ok=True)
        (mirror / "tiny").mkdir(parents=True, exist_ok=True)
        pairs = tiny_pairs(count, seed=seed)
        write_gzip_aligned(embedded / "tiny" / split, pairs)
        write_aligned(mirror / "tiny" / split, pairs)
    monkeypatch.setattr(sources, "EMBEDDED_DIR", embedded)
    return embedded, mirror


def named_config(tmp_path: Path, corpus: str = "tiny", **changes) -> DataConfig:
    config = tiny_config(Path("unused"), tmp_path / "out", train="train", dev="dev", test="test")
    return dataclasses.replace(config, corpus=corpus, **changes)


def test_source_order_mirror_when_set_else_embedded(embedded_and_mirror, tmp_path, monkeypatch):
    embedded, mirror = embedded_and_mirror
    config = named_config(tmp_path)

    built = prepare_data(config)  # DATA_MIRROR unset: the embedded copy
    assert built.summary.origin == f"embedded copy ({embedded / 'tiny'})"
    assert built.summary.train_input == "train.zh.gz + train.en.gz"
    assert not built.summary.reused

    monkeypatch.setenv("DATA_MIRROR", str(mirror))  # set: the mirror, same content
    from_mirror = prepare_data(config)
    assert from_mirror.summary.origin == f"mirror {mirror / 'tiny'} ($DATA_MIRROR)"
    assert from_mirror.summary.reused  # a compressed copy fingerprints like the plain files
    assert from_mirror.summary.train_input == "train.zh + train.en"

    # data.source=embedded ignores the mirror; data.source=mirror needs it.
    forced = prepare_data(dataclasses.replace(config, source="embedded"))
    assert forced.summary.origin.startswith("embedded copy")
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "elsewhere"))
    fallback = prepare_data(config)  # a mirror without the corpus: the embedded copy
    assert fallback.summary.origin.startswith("embedded copy")
    assert f"{tmp_path / 'elsewhere' / 'tiny'} does not exist" in fallback.summary.origin
    with pytest.raises(DataError, match=r"data\.source=mirror.*elsewhere/tiny does not exist"):
        prepare_data(dataclasses.replace(config, source="mirror"), force=True)
    monkeypatch.delenv("DATA_MIRROR")
    with pytest.raises(DataError, match=r"\$DATA_MIRROR is not set"):
        prepare_data(dataclasses.replace(config, source="mirror"), force=True)


def test_an_embedded_file_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    embedded = tmp_path / "embedded"
    shutil.copytree(sources.EMBEDDED_DIR / "tatoeba-zh-en", embedded / "tatoeba-zh-en")
    monkeypatch.setattr(sources, "EMBEDDED_DIR", embedded)
    test_zh = embedded / "tatoeba-zh-en" / "test.zh.gz"
    lines = read_lines(test_zh)
    lines[5] = lines[5].replace("。", "！")
    test_zh.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    config = named_config(tmp_path, corpus="tatoeba-zh-en")
    with pytest.raises(DataError, match=r"checksum mismatch for .*test\.zh\.gz: its decompressed"):
        prepare_data(config)


def test_a_truncated_gzip_file_is_one_clear_error(embedded_and_mirror, tmp_path, capsys):
    embedded, _ = embedded_and_mirror
    train_zh = embedded / "tiny" / "train.zh.gz"
    train_zh.write_bytes(train_zh.read_bytes()[:-20])
    code = main(["prepare", "data.corpus=tiny", f"data.output_dir={tmp_path / 'out'}"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{train_zh}: damaged or truncated gzip file" in error


def test_a_mirror_file_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "tatoeba-zh-en").mkdir(parents=True)
    write_tsv(mirror / "tatoeba-zh-en" / "cmn-eng.txt", tiny_pairs(100))
    monkeypatch.setenv("DATA_MIRROR", str(mirror))
    config = named_config(
        tmp_path, corpus="tatoeba-zh-en", train="cmn-eng.txt", dev=None, test=None
    )
    with pytest.raises(DataError, match=r"checksum mismatch for .*cmn-eng\.txt.*verify_checksums"):
        prepare_data(config)
    config.verify_checksums = False
    assert (
        prepare_data(config).summary.origin == f"mirror {mirror / 'tatoeba-zh-en'} ($DATA_MIRROR)"
    )
    config.verify_checksums = True  # a complete build does not excuse a bad file
    with pytest.raises(DataError, match="checksum mismatch"):
        prepare_data(config)


def test_a_download_is_asked_for_labelled_and_kept_apart(tmp_path, monkeypatch):
    tsv = write_tsv(tmp_path / "cmn.txt", tiny_pairs(150))
    archive = tmp_path / "cmn-eng.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(tsv, "cmn.txt")
    known_corpus(monkeypatch, archive.as_uri(), sha256(tsv))
    config = named_config(tmp_path, corpus="tatoeba-zh-en", source="download")
    assert config.prepared_dir == tmp_path / "out-upstream"
    data = prepare_data(config)
    assert data.output_dir == tmp_path / "out-upstream"
    assert not (tmp_path / "out").exists()  # the canonical folder is never touched
    assert data.summary.origin == (
        f"download of the latest upstream release, {archive.as_uri()} (not the canonical split: "
        "dev and test split off by seed)"
    )
    assert "latest upstream release" in data.summary.format()
    assert data.summary.split_sizes == {
        "train": data.summary.split_sizes["train"],
        "dev": 10,
        "test": 12,
    }
    download = tmp_path / "out-upstream" / "download" / "cmn-eng.txt"
    assert download.read_bytes() == tsv.read_bytes()


def test_a_failed_download_says_what_to_do(tmp_path, monkeypatch):
    known_corpus(monkeypatch, UNREACHABLE, "0" * 64)
    config = named_config(tmp_path, corpus="tatoeba-zh-en", source="download")
    with pytest.raises(DataError) as error:
        prepare_data(config)
    message = str(error.value)
    assert f"download of {UNREACHABLE} failed" in message
    assert str(tmp_path / "out-upstream" / "download" / "cmn-eng.txt") in message
    assert "data.source=auto" in message


def test_when_nothing_works_the_error_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "EMBEDDED_DIR", tmp_path / "no-embedded")
    no_network(monkeypatch)
    config = named_config(tmp_path, corpus="tatoeba-zh-en")
    with pytest.raises(DataError) as error:
        prepare_data(config)
    message = str(error.value)
    assert "$DATA_MIRROR is not set" in message
    assert f"no embedded copy {tmp_path / 'no-embedded' / 'tatoeba-zh-en'}/" in message
    assert "train.zh, train.en, dev.zh, dev.en, test.zh, test.en" in message
    assert "<DIR>/tatoeba-zh-en/ and set DATA_MIRROR=<DIR>" in message
    assert "data.source=download" in message

    with pytest.raises(DataError, match=r"corpus 'mine' not found.*Put its files into <DIR>/mine/"):
        prepare_data(named_config(tmp_path, corpus="mine"))
    with pytest.raises(DataError, match="no download address for corpus 'mine'"):
        prepare_data(named_config(tmp_path, corpus="mine", source="download"))
