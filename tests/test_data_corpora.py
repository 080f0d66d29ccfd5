"""Several corpora at once, malformed lines, and standard corpora by name from a mirror."""

import bz2
import dataclasses
import gzip
import json
import lzma
from pathlib import Path

import pytest

from nmt.config import CorpusConfig, DataConfig
from nmt.data.normalize import normalize
from nmt.data.prepare import prepare_data
from nmt.data.readers import CorpusNotFoundError, read_lines
from nmt.data.standard import OFFLINE_ENV
from tests.test_data_prepare import tiny_config, tiny_pairs


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, no mirror, and a sacrebleu cache of the test's own."""
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.delenv("DATA_MIRROR", raising=False)
    monkeypatch.setenv("SACREBLEU", str(tmp_path / "sacrebleu-cache"))


def write_lines(path: Path, lines: list[str], compress=None) -> None:
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(compress(data) if compress else data)


def config(folder: Path, output: Path, train, **changes) -> DataConfig:
    return tiny_config(folder, output, train=train, dev_size=8, test_size=8, **changes)


@pytest.fixture
def three_corpora(tmp_path) -> Path:
    """news (aligned .gz), web (TSV .bz2, columns zh/en/score), un (TMX .xz); web repeats
    two news pairs and has English in its Chinese column."""
    folder = tmp_path / "corpora"
    folder.mkdir()
    news = tiny_pairs(120, seed=1)
    write_lines(folder / "news.zh.gz", [zh for _, zh in news], gzip.compress)
    write_lines(folder / "news.en.gz", [en for en, _ in news], gzip.compress)
    web = tiny_pairs(60, seed=2) + news[:2] + [("Hello there, friend.", "Hello there, friend!")]
    write_lines(folder / "web.tsv.bz2", [f"{zh}\t{en}\t0.5" for en, zh in web], bz2.compress)
    units = "".join(
        f'<tu><tuv xml:lang="en"><seg>{en}</seg></tuv><tuv xml:lang="zh"><seg>{zh}</seg></tuv></tu>\n'
        for en, zh in tiny_pairs(40, seed=3)
    )
    tmx = f'<?xml version="1.0"?>\n<tmx version="1.4"><header/><body>\n{units}</body></tmx>\n'
    (folder / "un.tmx.xz").write_bytes(lzma.compress(tmx.encode("utf-8")))
    return folder


def test_several_corpora_are_cleaned_together_and_counted_apart(three_corpora, tmp_path):
    train = [
        CorpusConfig("news", weight=2),
        CorpusConfig("web.tsv.bz2", columns=["zh", "en", "-"]),
        "un.tmx.xz",
    ]
    data = prepare_data(config(three_corpora, tmp_path / "out", train))
    corpora = {corpus["name"]: corpus for corpus in data.summary.corpora}
    assert [corpus["pairs_read"] for corpus in corpora.values()] == [120, 63, 40]
    # The two news pairs repeated in web are duplicates there (across corpora), and the
    # English sentence in web's Chinese column is caught by the script filter.
    assert corpora["web.tsv.bz2"]["removed"]["duplicate"] >= 2
    assert (
        corpora["web.tsv.bz2"]["removed"]["no_cjk"]
        + corpora["web.tsv.bz2"]["removed"]["wrong_script"]
        == 1
    )
    train_pairs = sum(corpus["train"] for corpus in corpora.values())
    assert train_pairs == data.summary.split_sizes["train"] == len(data.encoded("train"))

    # Dev and test are split off all corpora together, without leaks.
    texts = {}
    for split in ("train", "dev", "test"):
        source, reference = (read_lines(path) for path in data.text_paths(split))
        texts[split] = {normalize(line, "zh") for line in source}
    assert not texts["train"] & (texts["dev"] | texts["test"])

    # Weights: news has weight 2, the others 1, so news gets 2 x its size in the shares.
    sizes = [corpus["train"] for corpus in corpora.values()]
    expected = [2 * sizes[0], sizes[1], sizes[2]]
    mixture = data.encoded("train").mixture
    assert mixture.shares == pytest.approx([e / sum(expected) for e in expected])
    printed = data.summary.format()
    assert "corpus      news: read 120" in printed and "of an epoch" in printed

    # Weights act at training time: changing them reuses the prepared data.
    reweighted = ["news", *train[1:]]  # no explicit weight: a temperature instead
    settings = config(three_corpora, tmp_path / "out", reweighted, sampling_temperature=2.0)
    again = prepare_data(settings)
    assert again.summary.reused
    assert again.encoded("train").mixture.shares == pytest.approx(
        [s**0.5 / sum(t**0.5 for t in sizes) for s in sizes]
    )


def test_skip_policy_in_a_build_reports_files_and_line_numbers(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    lines = [f"{en}\t{zh}" for en, zh in tiny_pairs(80)]
    lines[4] = "no tab"
    lines[9] = "a\tb\tc\td"
    write_lines(folder / "c.tsv.gz", lines, gzip.compress)
    settings = config(folder, tmp_path / "out", "c.tsv.gz")
    with pytest.raises(Exception, match=r"c\.tsv\.gz:5: expected"):
        prepare_data(settings)
    data = prepare_data(dataclasses.replace(settings, on_error="skip"))
    ((count, numbers),) = data.summary.malformed.values()
    assert (count, numbers) == (2, [5, 10])
    assert "malformed   2 lines skipped" in data.summary.format()
    log = read_lines(tmp_path / "out" / "malformed.tsv")
    assert [line.split("\t")[1] for line in log] == ["5", "10"]


def write_mirror(mirror: Path) -> None:
    """A mirror with one mtdata corpus (compressed) and sacrebleu's wmt20 zh-en."""
    (mirror / "mtdata").mkdir(parents=True)
    pairs = tiny_pairs(150, seed=4)
    dataset = "Statmt-news_commentary-16-eng-zho"
    write_lines(mirror / "mtdata" / f"{dataset}.zh.gz", [zh for _, zh in pairs], gzip.compress)
    write_lines(mirror / "mtdata" / f"{dataset}.en.gz", [en for en, _ in pairs], gzip.compress)
    for name, seed in (("wmt19", 5), ("wmt20", 6)):
        folder = mirror / "sacrebleu" / name
        folder.mkdir(parents=True)
        test = tiny_pairs(10, seed=seed)
        write_lines(folder / f"{name}.zh-en.src", [zh for _, zh in test])
        write_lines(folder / f"{name}.zh-en.ref", [en for en, _ in test])


def test_standard_corpora_by_name_come_from_the_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_mirror(mirror)
    monkeypatch.setenv("DATA_MIRROR", str(mirror))
    settings = config(
        tmp_path / "nowhere",  # no local file is named: the corpus folder is never needed
        tmp_path / "out",
        ["mtdata:Statmt-news_commentary-16-eng-zho"],
        dev="sacrebleu:wmt19",
        test="sacrebleu:wmt20",
    )
    data = prepare_data(settings)
    assert data.summary.split_sizes == {
        "train": data.summary.split_sizes["train"],
        "dev": 10,
        "test": 10,
    }
    assert (
        data.text_paths("test")[0].read_bytes()
        == (mirror / "sacrebleu" / "wmt20" / "wmt20.zh-en.src").read_bytes()
    )


def test_a_standard_corpus_found_nowhere_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "mirror"))
    settings = config(tmp_path, tmp_path / "out", ["mtdata:Statmt-news_commentary-16-eng-zho"])
    with pytest.raises(CorpusNotFoundError) as error:
        prepare_data(settings)
    message = str(error.value)
    assert "mtdata get -l eng-zho --train Statmt-news_commentary-16-eng-zho" in message
    assert f"{tmp_path / 'mirror' / 'mtdata'}/" in message
    assert (
        "Statmt-news_commentary-16-eng-zho.zh and Statmt-news_commentary-16-eng-zho.en" in message
    )

    write_mirror(tmp_path / "mirror")
    settings = dataclasses.replace(settings, test="sacrebleu:wmt18")
    with pytest.raises(CorpusNotFoundError) as error:
        prepare_data(settings)
    message = str(error.value)
    assert "sacrebleu -t wmt18 -l zh-en --echo src" in message
    assert "wmt18.zh-en.src and wmt18.zh-en.ref" in message
    assert f"{tmp_path / 'mirror' / 'sacrebleu' / 'wmt18'}/" in message


def test_corpus_settings_are_checked_with_the_key_named():
    from nmt.config import ConfigError, config_from_dict

    parsed = config_from_dict(
        {"data": {"train": ["a", {"path": "b", "weight": 2, "columns": ["zh", "en"]}]}}
    )
    assert [c.path for c in parsed.data.train_corpora] == ["a", "b"]
    assert parsed.data.train_corpora[1].columns == ["zh", "en"]
    for data, message in (
        (
            {"train": [{"path": "b", "weight": 0}]},
            r"data\.train\[0\]\.weight: expected a value > 0",
        ),
        ({"train": []}, r"data\.train: expected at least one corpus"),
        (
            {"train": [{"path": "b", "weight": 1}], "sampling_temperature": 2},
            r"data\.sampling_temperature: expected null when corpora have explicit weights",
        ),
        ({"on_error": "ignore"}, r"data\.on_error: expected one of 'stop' \| 'skip'"),
    ):
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"data": data})


def test_a_folder_of_the_previous_pipeline_version_is_rebuilt_not_read(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    write_lines(folder / "c.tsv", [f"{en}\t{zh}" for en, zh in tiny_pairs(60)])
    settings = config(folder, tmp_path / "out", "c.tsv")
    prepare_data(settings)
    manifest = tmp_path / "out" / "manifest.json"
    old = json.loads(manifest.read_text(encoding="utf-8"))
    del old["pipeline"]  # version 1 wrote no version, and train.pt files
    manifest.write_text(json.dumps(old), encoding="utf-8")
    (tmp_path / "out" / "train.pt").write_bytes(b"old")
    data = prepare_data(settings)
    assert not data.summary.reused and not (tmp_path / "out" / "train.pt").exists()
