"""scripts/attention_study.py end to end on tiny models: every row trained under the same
budget, decoded, reported with its raw outputs; a seed added to some rows later is reported
with them (mean and each seed), and rows trained differently are refused in one table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from synthetic_corpus import write_corpus

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "model.gru.embed_dim=8",
    "model.gru.hidden_size=8",
    "model.gru.attention_dim=8",
    "model.transformer.d_model=16",
    "model.transformer.heads=2",
    "model.transformer.ff_size=16",
    "model.transformer.encoder_layers=1",
    "model.transformer.decoder_layers=1",
    "training.max_tokens=300",
    "training.valid_every=4",
    "training.valid_max_sentences=8",
    "training.log_every=2",
    "training.max_steps=6",
    "decoding.beam_size=2",
]


def study(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    corpus = write_corpus(tmp_path / "corpus")
    data = [f"data.corpus={corpus}", f"data.output_dir={tmp_path / 'data'}"]
    data += ["data.vocab.src_size=60", "data.vocab.tgt_size=50"]
    command = [sys.executable, "scripts/attention_study.py", "--parallel", "2"]
    command += ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "raw")]
    command += ["--doc", str(tmp_path / "study.md"), "--max-test-sentences", "6"]
    command += ["--src", str(corpus / "test.zh"), "--ref", str(corpus / "test.en")]
    command += [*arguments, "--set", *data, *TINY]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_study_trains_reports_and_adds_a_seed_to_some_rows(tmp_path: Path) -> None:
    variants = ["--variants", "gru-none", "rnn-cosine", "transformer-learned"]
    study(tmp_path, "--minutes", "5", "--tables", "main", *variants)
    rows = json.loads((tmp_path / "raw" / "study.json").read_text())
    assert [row["variant"] for row in rows] == ["gru-none", "rnn-cosine", "transformer-learned"]
    for row in rows:  # each run stopped at max_steps, far inside the budget
        assert row["steps"] == 6 and row["test_sentences"] == 6
        assert row["settings"]["minutes"] == 5 and row["settings"]["threads"] == 1
        raw = tmp_path / "raw" / f"{row['variant']}-s1"
        assert {p.name for p in raw.iterdir()} == {"metrics.jsonl", "study.json", "report.json"}
        report = json.loads((raw / "report.json").read_text())
        assert report["bleu"] == row["test_bleu"]
    text = (tmp_path / "study.md").read_text()
    assert "| GRU, no attention |" in text and "| Transformer, learned positions |" in text
    assert "One seed" in text

    # A second seed for one row only, then the report of every row with the seeds it has.
    study(tmp_path, "--minutes", "5", "--tables", "main", "--seeds", "2", "--variants", "gru-none")
    study(tmp_path, "--minutes", "5", "--tables", "main", "--seeds", "1", "2", *variants,
          "--report-only")  # fmt: skip
    rows = json.loads((tmp_path / "raw" / "study.json").read_text())
    assert sorted((row["variant"], row["seed"]) for row in rows) == [
        ("gru-none", 1), ("gru-none", 2), ("rnn-cosine", 1), ("transformer-learned", 1),
    ]  # fmt: skip
    text = (tmp_path / "study.md").read_text()
    gru_none = next(line for line in text.splitlines() if line.startswith("| GRU, no attention"))
    bleu = sorted(row["test_bleu"] for row in rows if row["variant"] == "gru-none")
    assert f"({bleu[0]:.2f}, {bleu[1]:.2f})" in gru_none or f"({bleu[1]:.2f}, {bleu[0]:.2f})" in (
        gru_none
    )
    assert "seeds 1 (every row), 2 (1 of 3 rows)" in text and "One seed" not in text

    # A row trained under another budget cannot join the table.
    study(
        tmp_path, "--minutes", "7", "--tables", "main", "--seeds", "3", "--variants", "rnn-cosine"
    )
    corpus = tmp_path / "corpus"
    refused = subprocess.run(
        [sys.executable, "scripts/attention_study.py", "--report-only", "--tables", "main",
         "--seeds", "1", "3", *variants, "--runs", str(tmp_path / "runs"),
         "--out", str(tmp_path / "raw"), "--doc", str(tmp_path / "study.md"),
         "--max-test-sentences", "6", "--src", str(corpus / "test.zh"),
         "--ref", str(corpus / "test.en")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0 and "measured differently" in refused.stderr
