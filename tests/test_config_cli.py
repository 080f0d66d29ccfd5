"""Broken configs through the real command line: one line on stderr, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from nmt.cli import main

# (case, file content, overrides, what the one line must contain: the key or "FILE")
MALFORMED = [
    ("syntax", b"training: [unclosed\n", [], "FILE: not valid YAML at line 2, column 1"),
    ("tab", b"training:\n\tlr: 1\n", [], "FILE: not valid YAML at line 2, column 1"),
    ("empty", b"", [], "FILE: empty; expected a mapping of sections"),
    ("comments_only", b"# nothing here\n", [], "FILE: empty"),
    ("list", b"- data\n- model\n", [], "FILE: expected a mapping of sections"),
    ("scalar", b"hello\n", [], "FILE: expected a mapping of sections"),
    ("section_list", b"training: [1, 2]\n", [], "training: expected a mapping of keys"),
    ("wrong_type", b"training:\n  max_tokens: many\n", [], "training.max_tokens: expected int"),
    ("float_type", b"training:\n  lr: fast\n", [], "training.lr: expected float, got str 'fast'"),
    ("half_int", b"training:\n  max_steps: 1.5\n", [], "training.max_steps: expected int"),
    ("unknown_key", b"training:\n  warmup: 10\n", [], "unknown config key 'training.warmup'"),
    ("unknown_section", b"trainer: {}\n", [], "unknown config key 'trainer'"),
    ("bad_enum", b"model:\n  type: lstm\n", [], "model.type: expected one of 'gru'"),
    ("bad_source", b"data:\n  source: web\n", [], "data.source: expected one of 'auto'"),
    ("warmup", b"training:\n  warmup_steps: -1\n", [], "training.warmup_steps: expected an integer >= 0, got -1"),
    ("lr_zero", b"training:\n  lr: 0\n", [], "training.lr: expected a value > 0"),
    ("lr_nan", b"training:\n  lr: .nan\n", [], "training.lr: expected a finite number, got nan"),
    ("minutes_inf", b"training:\n  max_minutes: .inf\n", [], "training.max_minutes: expected a finite number"),
    ("beta", b"training:\n  betas: [0.9, 1.0]\n", [], "training.betas[1]: expected a value in [0, 1)"),
    ("plateau", b"training:\n  plateau_factor: 1\n", [], "training.plateau_factor: expected a value in (0, 1)"),
    ("device", b"training:\n  device: gpu\n", [], "training.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ("dropout", b"model:\n  gru:\n    dropout: 1.5\n", [], "model.gru.dropout: expected a value in [0, 1)"),
    ("vocab", b"data:\n  vocab:\n    src_size: 4\n", [], "data.vocab.src_size: expected an integer >= 8"),
    ("coverage", b"data:\n  vocab:\n    zh_character_coverage: 0.9\n", [], "data.vocab.zh_character_coverage: expected a value in [0.98, 1]"),
    ("dev_size", b"data:\n  dev_size: -5\n", [], "data.dev_size: expected an integer >= 0"),
    ("beam", b"decoding:\n  beam_size: 0\n", [], "decoding.beam_size: expected an integer >= 1"),
    ("latin1", "training:\n  device: café\n".encode("latin-1"), [], "FILE:2: not valid UTF-8 (byte 0xe9)"),
    ("utf16", "training: {}\n".encode("utf-16"), [], "FILE: not a text file"),
    ("binary", bytes(range(256)) * 4, [], "FILE: not a text file (NUL byte at byte 1)"),
    ("control", b"name: a\x07b\n", [], "FILE: not valid YAML at line 1, column 8: character #x0007"),
    ("no_equals", b"{}\n", ["training.lr"], "override 'training.lr': expected section.key=value"),
    ("override_type", b"{}\n", ["training.lr=fast"], "training.lr: expected float, got str 'fast'"),
    ("override_section", b"{}\n", ["nosuchsection.key=1"], "unknown config key 'nosuchsection'"),
    ("override_range", b"{}\n", ["training.valid_every=0"], "training.valid_every: expected an integer >= 1"),
    ("override_yaml", b"{}\n", ["training.betas=[0.9"], "override 'training.betas=[0.9': not a YAML value"),
    ("override_not_section", b"{}\n", ["training.lr.x=1"], "training.lr: expected float, got dict"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "overrides", "expected"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
@pytest.mark.parametrize("command", ["prepare", "train"])
def test_a_malformed_config_is_one_line_naming_the_key_or_file(
    command, content, overrides, expected, tmp_path, capsys
):
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    code = main([command, "--config", str(path), *overrides])
    assert code != 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"nmt {command}: error: {path}")
    assert expected.replace("FILE", str(path)) in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_the_installed_command_prints_one_line_too(tmp_path):
    """The real entry point, in a fresh process: exit status 2 and one line on stderr."""
    binary = tmp_path / "photo.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    result = subprocess.run(
        [sys.executable, "-m", "nmt", "train", "--config", str(binary), "training.lr=5e-4"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"nmt train: error: {binary}: not a text file (NUL byte at byte 9); expected YAML in UTF-8"
    ]
    assert result.stdout == ""
