"""``nmt translate`` and the :class:`Translator` API, end to end on tiny overfit models."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_checkpoint import PAIRS, tiny_checkpoint, tiny_vocabularies

from nmt.checkpoint import Checkpoint, save_checkpoint
from nmt.cli import main as cli
from nmt.config import DecodingSettings as S
from nmt.config import config_from_dict
from nmt.errors import NmtError
from nmt.models import build_model
from nmt.translator import Translator, attention_labels, read_input_lines

SOURCES = [zh for zh, _ in PAIRS]
TARGETS = [en for _, en in PAIRS]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeStdin:
    """sys.stdin with given bytes, a terminal or a pipe."""

    def __init__(self, data: bytes, tty: bool = False) -> None:
        self.buffer = io.BytesIO(data)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def run(arguments: list[str], stdin: bytes = b"", tty: bool = False) -> tuple[int, str, str]:
    """Run ``nmt`` in this process: exit code, stdout (decoded) and stderr."""
    stdout, stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    saved = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = FakeStdin(stdin, tty), stdout
    try:
        with contextlib.redirect_stderr(stderr):
            code = cli(arguments)
    finally:
        sys.stdin, sys.stdout = saved
    stdout.flush()
    return code, stdout.buffer.getvalue().decode("utf-8"), stderr.getvalue()


def checkpoint_args(model_type: str = "transformer") -> list[str]:
    return ["translate", "--checkpoint", str(tiny_checkpoint(model_type))]


@pytest.mark.parametrize("model_type", ["transformer", "gru"])
def test_sentences_as_arguments_are_translated_exactly(model_type: str) -> None:
    code, out, _ = run([*checkpoint_args(model_type), "--beam", "3", *SOURCES])
    assert code == 0
    assert out.splitlines() == TARGETS


def test_stdin_pipe_stays_line_aligned_through_bad_input() -> None:
    lines = [
        "這是一本書。".encode(),  # Traditional script
        b"",
        "你好吗？".encode(),  # full-width punctuation
        b"\xff\xfe\x80 broken UTF-8 \xc3",
        "🙂🚀 emoji 😀".encode(),
        "控制\x00字符\x07\x1b[31m".encode(),
        "我喜欢猫。".encode() * 30,  # longer than the model's 64 positions
        "我不知道。\r".encode(),  # CRLF line ending
        "line\x0bwith\x0cform\u2028feeds".encode(),  # line breaks other than \n stay inside
        b"   ",
    ]
    code, out, err = run(checkpoint_args("gru") + ["--beam", "2"], b"\n".join(lines) + b"\n")
    assert code == 0
    outputs = out.split("\n")
    assert outputs[-1] == "" and len(outputs) - 1 == len(lines)
    assert outputs[0] == "This is a book." and outputs[2] == "How are you?"
    assert outputs[7] == "I don't know."
    assert outputs[1] == outputs[9] == ""
    # The Transformer has a position limit: the long line is truncated, with a warning.
    code, out, err = run(checkpoint_args("transformer"), b"\n".join(lines))
    assert code == 0 and len(out.split("\n")) - 1 == len(lines)
    assert "input line 7 is longer than the model's 64 subword tokens" in err
    assert err.count("warning") == 1


@settings(max_examples=12, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.binary(max_size=30)), max_size=6))
def test_random_text_and_bytes_never_break_line_alignment(pieces: list[str | bytes]) -> None:
    data = b"\n".join(
        p.encode("utf-8", "surrogatepass") if isinstance(p, str) else p for p in pieces
    )
    code, out, _ = run(checkpoint_args("transformer") + ["--beam", "2"], data)
    assert code == 0
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert out.count("\n") == lines


def test_input_and_output_files(tmp_path: Path) -> None:
    source = tmp_path / "in.zh"
    source.write_text("\n".join(SOURCES[:4]) + "\n\n" + SOURCES[4] + "\n", encoding="utf-8")
    output = tmp_path / "sub" / "out.en"
    code, out, _ = run(checkpoint_args() + ["--input", str(source), "--output", str(output)])
    assert code == 0 and out == ""
    assert output.read_text(encoding="utf-8").split("\n") == [*TARGETS[:4], "", TARGETS[4], ""]


def test_json_lines_with_nbest_scores_and_alignments() -> None:
    arguments = ["--beam", "4", "--n-best", "3", "--json", "--alignments"]
    code, out, _ = run(checkpoint_args("gru") + arguments, "我喜欢猫。\n\n".encode())
    assert code == 0
    first, empty = (json.loads(line) for line in out.splitlines())
    assert first["source"] == "我喜欢猫。" and first["truncated"] is False
    candidates = first["translations"]
    assert len(candidates) == 3 and candidates[0]["text"] == "I like cats."
    scores = [candidate["score"] for candidate in candidates]
    assert scores == sorted(scores, reverse=True)
    assert len({candidate["text"] for candidate in candidates}) == 3
    source_tokens = first["source_tokens"]
    assert source_tokens[-1] == "</s>"
    for candidate in candidates:
        attention = candidate["attention"]
        assert len(attention) == len(candidate["tokens"]) + 1
        assert all(len(row) == len(source_tokens) for row in attention)
        assert all(sum(row) == pytest.approx(1.0, abs=1e-3) for row in attention)
    assert empty == {"source": "", "truncated": False, "source_tokens": [], "translations": []}

    code, out, _ = run(checkpoint_args("gru") + ["--json", "--n-best", "2"], "你好吗?".encode())
    (record,) = (json.loads(line) for line in out.splitlines())
    assert "attention" not in record["translations"][0] and "source_tokens" not in record


@pytest.mark.parametrize(("model_type", "layer"), [("gru", None), ("transformer", "0")])
def test_attention_plots_are_png_files(tmp_path: Path, model_type: str, layer: str | None) -> None:
    arguments = checkpoint_args(model_type) + ["--attention-plot", str(tmp_path / "plots")]
    if layer is not None:
        arguments += ["--attention-layer", layer]
    code, out, _ = run(arguments + [SOURCES[0], "", SOURCES[2]])
    assert code == 0 and out.splitlines() == [TARGETS[0], "", TARGETS[2]]
    plots = sorted((tmp_path / "plots").iterdir())
    assert [plot.name for plot in plots] == ["0001.png", "0003.png"]
    for plot in plots:
        assert plot.read_bytes()[:8] == PNG_MAGIC and plot.stat().st_size > 1000


@pytest.mark.parametrize(
    ("model_type", "options", "panels", "axis_labels"),
    [
        ("transformer", ["--attention-head", "all"], 2, ("source", "output")),
        ("transformer", ["--attention-head", "1", "--attention-layer", "0"], 1, None),
        (
            "transformer",
            ["--attention-kind", "encoder-self", "--attention-head", "all"],
            2,
            ("source (keys)", "source (queries)"),
        ),
        (
            "transformer",
            ["--attention-kind", "decoder-self", "--attention-layer", "-2"],
            1,
            ("output so far (keys)", "output (queries)"),
        ),
        ("gru", ["--attention-head", "all"], 1, ("source", "output")),
    ],
)
def test_attention_plot_options_write_one_image_per_sentence_with_the_right_axes(
    monkeypatch, tmp_path: Path, model_type: str, options: list[str], panels: int, axis_labels
) -> None:
    """Grids (all heads) and single heat maps, for each attention kind: one PNG per
    translated sentence; each panel labelled with the tokens of its keys and queries."""
    import nmt.plotting

    figures = []
    save = nmt.plotting.save_figure
    monkeypatch.setattr(nmt.plotting, "save_figure", lambda f, p: (figures.append(f), save(f, p)))
    directory = tmp_path / "plots"
    arguments = checkpoint_args(model_type) + ["--attention-plot", str(directory), *options]
    code, out, _ = run(arguments + [SOURCES[0], "", SOURCES[2]])
    assert code == 0 and out.splitlines() == [TARGETS[0], "", TARGETS[2]]
    plots = sorted(directory.iterdir())
    assert [plot.name for plot in plots] == ["0001.png", "0003.png"]
    assert all(plot.read_bytes()[:8] == PNG_MAGIC for plot in plots)
    if axis_labels is None:  # cross-attention, one head: the classic alignment plot
        axis_labels = ("source", "output")
    assert len(figures) == 2
    translator = Translator.from_checkpoint(tiny_checkpoint(model_type))
    (translation,) = translator.translate(SOURCES[:1])
    kind = (
        options[options.index("--attention-kind") + 1] if "--attention-kind" in options else "cross"
    )
    rows, columns = attention_labels(translation, kind)
    heat_maps = [axes for axes in figures[0].axes if axes.get_images()]
    assert len(heat_maps) == panels
    for axes in heat_maps:
        assert [label.get_text() for label in axes.get_xticklabels()] == columns
        assert [label.get_text() for label in axes.get_yticklabels()] == rows
        assert (axes.get_xlabel(), axes.get_ylabel()) == axis_labels


def test_attention_maps_are_the_search_attention_per_head() -> None:
    """The teacher-forced maps of plots: their head average is the attention the search
    returns; rows and columns are the labels' tokens."""
    translator = Translator.from_checkpoint(tiny_checkpoint("transformer"))
    translations = translator.translate(SOURCES[:3] + [""], S(beam_size=3, return_attention=True))
    maps = translator.attention_maps(translations)
    assert maps[3] is None  # an empty input has no translation
    for translation, heads in zip(translations[:3], maps[:3], strict=True):
        best = translation.candidates[0]
        assert heads.shape == (2, len(best.pieces) + 1, len(translation.source_pieces))
        torch.testing.assert_close(heads.mean(dim=0), best.attention, atol=1e-5, rtol=0)
    for kind in ("encoder-self", "decoder-self"):
        maps = translator.attention_maps(translations, kind)
        for translation, heads in zip(translations, maps, strict=True):
            if heads is not None:
                rows, columns = attention_labels(translation, kind)
                assert heads.shape == (2, len(rows), len(columns))
                torch.testing.assert_close(heads.sum(dim=-1), torch.ones(2, len(rows)))


def no_attention_checkpoint(tmp_path: Path) -> Path:
    zh_vocab, en_vocab = tiny_vocabularies()
    config = config_from_dict(
        {"model": {"type": "gru", "gru": {"score": "none", "hidden_size": 8}}}
    )
    model = build_model(config.model, len(zh_vocab), len(en_vocab))
    path = tmp_path / "no_attention.pt"
    save_checkpoint(path, Checkpoint(config, model.state_dict(), zh_vocab, en_vocab))
    return path


def test_a_model_without_attention_translates_and_says_it_has_no_attention_to_plot(
    tmp_path: Path,
) -> None:
    arguments = ["translate", "--checkpoint", str(no_attention_checkpoint(tmp_path)), "--beam", "2"]
    code, out, _ = run([*arguments, SOURCES[0]])
    assert code == 0 and len(out.splitlines()) == 1
    for options in (["--attention-plot", str(tmp_path / "plots")], ["--json", "--alignments"]):
        code, out, err = run([*arguments, *options, SOURCES[0]])
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "the model has no attention" in err
    assert not (tmp_path / "plots").exists()


def test_attention_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, _, err = run(checkpoint_args() + ["--attention-plot", str(tmp_path), SOURCES[0]])
    assert code == 2 and "pip install 'nmt[plot]'" in err


def test_undecodable_bytes_in_arguments_and_lone_surrogates_in_the_api() -> None:
    checkpoint = str(tiny_checkpoint("transformer"))
    result = subprocess.run(
        [sys.executable, "-m", "nmt", "translate", "--checkpoint", checkpoint, "--json"]
        + [b"\xff\xfe" + SOURCES[4].encode(), b"\x80"],
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.decode().splitlines())
    assert first["source"] == "\ufffd\ufffd" + SOURCES[4]
    assert first["translations"][0]["text"] == TARGETS[4]
    translator = Translator.from_checkpoint(checkpoint)
    translations = translator.translate(["\udcff" + SOURCES[4], "\ud800"], S(beam_size=2))
    assert translations[0].text == TARGETS[4]


def test_missing_and_corrupt_checkpoints_give_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint().read_bytes()[:2000])  # a truncated file
    for path in (missing, corrupt):
        result = subprocess.run(
            [sys.executable, "-m", "nmt", "translate", "--checkpoint", str(path), "你好"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and str(path) in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--beam", "2", "--n-best", "3", "x"], "--n-best 3: expected <= beam_size, got 3"),
        (["--n-best", "0", "x"], "--n-best 0: expected an integer >= 1, got 0"),
        (["--beam", "0", "x"], "--beam 0: expected an integer >= 1, got 0"),
        (["--alignments", "x"], "--alignments goes with --json"),
        (
            ["--attention-layer", "5", "x"],
            "--attention-layer 5: expected a decoder layer index in [-2, 2)",
        ),
        (["--input", "nowhere.txt", "x"], "not both"),
        (["--attention-head", "all", "x"], "go with --attention-plot"),
        (["--attention-plot", "p", "--attention-head", "2", "x"], "--attention-head 2: expected"),
        (["--attention-plot", "p", "--attention-head", "-1", "x"], "in [0, 2) or all"),
        (
            ["--attention-plot", "p", "--attention-kind", "encoder-self", "--attention-layer", "2"],
            "--attention-layer 2: expected an encoder layer index in [-2, 2)",
        ),
        (["--input", "nowhere.txt"], "cannot read nowhere.txt"),
        (["--device", "gpu0", "x"], "--device gpu0: not a device"),
    ],
)
def test_bad_options_are_reported_in_one_line(arguments: list[str], message: str) -> None:
    code, out, err = run(checkpoint_args() + arguments)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_asking_for_cuda_without_it_is_a_one_line_error() -> None:
    code, _, err = run(checkpoint_args() + ["--device", "cuda", "x"])
    assert code == 2 and "--device cuda: CUDA is not available" in err


def test_interactive_prompt_translates_line_by_line() -> None:
    code, out, err = run(checkpoint_args(), f"{SOURCES[3]}\n\n{SOURCES[5]}\n".encode(), tty=True)
    assert code == 0
    assert out.splitlines() == [TARGETS[3], "", TARGETS[5]]
    assert err.count("> ") == 4  # three lines, then the prompt answered by end of input


def test_python_api() -> None:
    translator = Translator.from_checkpoint(tiny_checkpoint("transformer"), device="cpu")
    translations = translator.translate(SOURCES[:3], translator.settings(beam_size=4, n_best=2))
    assert [t.text for t in translations] == TARGETS[:3]
    for translation in translations:
        assert len(translation.candidates) == 2
        assert translation.candidates[0].score >= translation.candidates[1].score
    greedy = translator.translate(SOURCES, translator.settings(beam_size=1))
    assert [t.text for t in greedy] == TARGETS
    with pytest.raises(TypeError, match="list of sentences"):
        translator.translate("你好吗?")


def test_chinese_output_keeps_chinese_punctuation_and_english_output_ascii() -> None:
    """The tiny models learnt "你好吗?" with an ASCII mark (normalisation folds full-width
    ones); Chinese output gets the full-width mark back, English output keeps its own."""
    to_chinese = Translator.from_checkpoint(tiny_checkpoint("transformer", "en-zh"))
    (question,) = to_chinese.translate(["How are you?"], S(beam_size=2))
    assert question.text == "你好吗？"
    to_english = Translator.from_checkpoint(tiny_checkpoint("transformer", "zh-en"))
    (answer,) = to_english.translate(["你好吗？"], S(beam_size=2))
    assert answer.text == "How are you?"


def test_read_lines_splits_on_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"a\r\nb\x0bc\n\n\xffd")
    assert read_input_lines(path) == ["a", "b\x0bc", "", "\ufffdd"]
    path.write_bytes(b"")
    assert read_input_lines(path) == []


def test_attention_layer_selects_the_transformer_layer_shown() -> None:
    translator = Translator.from_checkpoint(tiny_checkpoint("transformer"))
    attentions = []
    for layer in (0, 1, -1):
        translator.set_attention_layer(layer)
        settings = S(beam_size=2, return_attention=True)
        (translation,) = translator.translate(SOURCES[:1], settings)
        attentions.append(translation.candidates[0].attention)
    assert not torch.allclose(attentions[0], attentions[1])
    torch.testing.assert_close(attentions[1], attentions[2])  # -1 is the last of 2 layers
    gru = Translator.from_checkpoint(tiny_checkpoint("gru"))
    with pytest.raises(NmtError, match="attention_layer: expected a decoder layer index"):
        translator.set_attention_layer(2)
    with pytest.raises(NmtError, match="Transformer models only"):
        gru.set_attention_layer(0)
