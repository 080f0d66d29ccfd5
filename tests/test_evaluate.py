"""Scores equal sacrebleu's command line; ``nmt evaluate`` end to end on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_checkpoint import PAIRS, tiny_checkpoint

from nmt.cli import main as cli
from nmt.data.normalize import restore_chinese_punctuation
from nmt.errors import DataError
from nmt.evaluation import score

SACREBLEU = Path(sys.executable).with_name("sacrebleu")

ENGLISH_HYPOTHESES = [
    "Let's go to the park tomorrow .",
    "He is reading the book.  ",  # trailing spaces: sacrebleu's reader strips them
    "This is a book!",
    "",
    "I like dogs, and cats.",
]
ENGLISH_REFERENCES = [
    "Let's go to the park tomorrow.",
    "He is reading a book.",
    "This is a book.",
    "How are you?",
    "I like cats.",
]
CHINESE_HYPOTHESES = ["我们明天去公园。", "他在看一本书。", "这是书。", "你好!", "我喜欢狗和猫。"]
CHINESE_REFERENCES = ["我们明天去公园吧。", "他在看书。", "这是一本书。", "你好吗?", "我喜欢猫。"]


def sacrebleu_cli(hypothesis_file: Path, reference_file: Path, language_pair: str) -> dict:
    """BLEU and chrF from sacrebleu's command line, which picks the tokenizer itself."""
    command = [str(SACREBLEU), str(reference_file), "-i", str(hypothesis_file)]
    command += ["-m", "bleu", "chrf", "-w", "6", "-l", language_pair]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("hypotheses", "references", "language_pair", "tokenizer"),
    [
        (ENGLISH_HYPOTHESES, ENGLISH_REFERENCES, "zh-en", "13a"),
        (CHINESE_HYPOTHESES, CHINESE_REFERENCES, "en-zh", "zh"),
    ],
)
def test_scores_equal_the_sacrebleu_command_line(
    tmp_path: Path, hypotheses: list[str], references: list[str], language_pair: str, tokenizer: str
) -> None:
    tgt_lang = language_pair.split("-")[1]
    scores = score(hypotheses, references, tgt_lang)
    expected = sacrebleu_cli(
        write_lines(tmp_path / "hyp", hypotheses),
        write_lines(tmp_path / "ref", references),
        language_pair,
    )
    assert 0 < scores["bleu"] < 100
    assert scores["bleu"] == pytest.approx(expected["BLEU"]["score"], abs=1e-5)
    assert scores["chrf"] == pytest.approx(expected["chrF2"]["score"], abs=1e-5)
    assert scores["bleu_signature"] == expected["BLEU"]["signature"]
    assert scores["chrf_signature"] == expected["chrF2"]["signature"]
    assert f"tok:{tokenizer}" in scores["bleu_signature"]


def test_score_refuses_misaligned_lists() -> None:
    with pytest.raises(DataError, match="2 hypotheses but 1 references"):
        score(["a", "b"], ["a"], "en")


@pytest.mark.parametrize(("model_type", "direction"), [("transformer", "zh-en"), ("gru", "en-zh")])
def test_evaluate_command_writes_hypotheses_and_a_report_matching_sacrebleu(
    tmp_path: Path, model_type: str, direction: str, capsys: pytest.CaptureFixture
) -> None:
    src_side = 0 if direction == "zh-en" else 1
    sources = [pair[src_side] for pair in PAIRS]
    targets = [pair[1 - src_side] for pair in PAIRS]
    # References that differ from what the model learnt, so BLEU is neither 0 nor 100.
    references = [t if i % 3 else t[: len(t) // 2] for i, t in enumerate(targets)]
    src = write_lines(tmp_path / "test.src", sources)
    ref = write_lines(tmp_path / "test.ref", references)
    hyp, report_path = tmp_path / "out" / "test.hyp", tmp_path / "out" / "report.json"
    checkpoint = tiny_checkpoint(model_type, direction)
    arguments = ["evaluate", "--checkpoint", str(checkpoint), "--src", str(src), "--ref", str(ref)]
    assert cli([*arguments, "--beam", "2", "--out", str(hyp), "--report", str(report_path)]) == 0

    if direction == "en-zh":  # Chinese output gets its full-width punctuation back
        targets = [restore_chinese_punctuation(t) for t in targets]
    assert hyp.read_text(encoding="utf-8").splitlines() == targets
    report = json.loads(report_path.read_text(encoding="utf-8"))
    expected = sacrebleu_cli(hyp, ref, direction)
    assert 0 < report["bleu"] < 100
    assert report["bleu"] == pytest.approx(expected["BLEU"]["score"], abs=1e-5)
    assert report["chrf"] == pytest.approx(expected["chrF2"]["score"], abs=1e-5)
    assert report["bleu_signature"] == expected["BLEU"]["signature"]
    assert report["chrf_signature"] == expected["chrF2"]["signature"]
    assert report["sentences"] == len(PAIRS)
    assert report["seconds"] > 0 and report["sentences_per_second"] > 0
    assert report["tokens_per_second"] > 0
    assert report["decoding"]["beam_size"] == 2
    assert report["checkpoint"] == str(checkpoint)
    assert report["model"] == model_type
    assert f"BLEU = {report['bleu']:.2f}" in capsys.readouterr().out


def test_evaluate_command_errors_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = write_lines(tmp_path / "test.zh", ["你好吗?", "我不知道。"])
    ref = write_lines(tmp_path / "test.en", ["How are you?"])
    checkpoint = str(tiny_checkpoint("transformer"))
    assert cli(["evaluate", "--checkpoint", checkpoint, "--src", str(src), "--ref", str(ref)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{src} has 2 lines but {ref} has 1" in error

    missing = tmp_path / "missing.pt"
    assert (
        cli(["evaluate", "--checkpoint", str(missing), "--src", str(src), "--ref", str(src)]) == 2
    )
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(missing) in error
