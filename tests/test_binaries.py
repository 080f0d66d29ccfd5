"""The whole chain through the real command line, the way fairseq's ``test_binaries`` does it:
``nmt prepare`` -> ``nmt train`` -> ``nmt average`` -> ``nmt evaluate`` -> ``nmt translate``
on tiny generated data, each step consuming what the previous one wrote, for both model
families."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sacrebleu.metrics import BLEU
from synthetic_corpus import tiny_experiment

REPO = Path(__file__).resolve().parent.parent


def nmt(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m nmt`` as a user would; fail with its stderr if it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "nmt", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, f"nmt {' '.join(arguments)}:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
def test_prepare_train_average_evaluate_translate(tmp_path: Path, model_type: str) -> None:
    raw = tiny_experiment(tmp_path, model_type, max_steps=120, valid_every=20, keep_checkpoints=3)
    raw["training"]["lr"] = 1e-2
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    data, run = tmp_path / "data", tmp_path / "runs" / "tiny"

    # prepare: vocabularies, splits and the encoded cache, with a summary.
    prepared = nmt("prepare", "--config", str(config))
    assert "train" in prepared.stdout and (data / "manifest.json").is_file()

    # train: reuses the prepared data; checkpoints at every validation.
    trained = nmt("train", "--config", str(config))
    assert "done: 120 steps" in trained.stderr
    assert {"step-80.pt", "step-100.pt", "step-120.pt", "best.pt", "last.pt"} <= {
        path.name for path in run.iterdir()
    }

    # average: the last three step checkpoints.
    averaged = nmt("average", str(run), "-k", "3")
    assert "step-80.pt, step-100.pt, step-120.pt" in averaged.stdout

    # evaluate the averaged model on the test split of the data it was trained on.
    src, ref = data / "test.zh", data / "test.en"
    hyp, report_path = tmp_path / "test.hyp", tmp_path / "report.json"
    evaluated = nmt(
        "evaluate", "--checkpoint", str(run / "averaged.pt"), "--split", "test",
        "--out", str(hyp), "--report", str(report_path),
    )  # fmt: skip
    assert report_path.read_text().count(str(src)) == 1  # the split's files were scored
    report = json.loads(report_path.read_text(encoding="utf-8"))
    hypotheses = hyp.read_text(encoding="utf-8").splitlines()
    references = ref.read_text(encoding="utf-8").splitlines()
    assert len(hypotheses) == len(references) == report["sentences"] == 20
    assert report["bleu"] == pytest.approx(BLEU().corpus_score(hypotheses, [references]).score)
    assert report["bleu"] > 5, report["bleu"]  # 120 steps learn the templates in part
    assert f"BLEU = {report['bleu']:.2f}" in evaluated.stdout

    # translate the same sentences: arguments, stdin, files and JSON agree with evaluate.
    checkpoint = ["translate", "--checkpoint", str(run / "averaged.pt")]
    sources = src.read_text(encoding="utf-8").splitlines()
    as_arguments = nmt(*checkpoint, *sources[:3]).stdout.splitlines()
    assert as_arguments == hypotheses[:3]
    from_stdin = nmt(*checkpoint, stdin="\n".join(sources) + "\n").stdout.splitlines()
    assert from_stdin == hypotheses
    output = tmp_path / "out.en"
    nmt(*checkpoint, "--input", str(src), "--output", str(output))
    assert output.read_text(encoding="utf-8").splitlines() == hypotheses
    records = [
        json.loads(line) for line in nmt(*checkpoint, "--json", sources[0]).stdout.splitlines()
    ]
    assert records[0]["source"] == sources[0]
    assert records[0]["translations"][0]["text"] == hypotheses[0]
