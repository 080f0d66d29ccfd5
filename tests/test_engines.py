"""``nmt export --format ctranslate2`` and the CTranslate2 engine (``--engine ctranslate2``).

Parity is the point: a float32 export of a model must search like the model itself. Random
models (which never emit EOS, so every output runs to the length limit) check the weight
mapping of each Transformer variant and the length limit; the tiny overfit model checks
scores, beam search, n-best lists and attention. Skipped when ctranslate2 is not installed
(``pip install -e '.[export]'``; ``make test`` installs it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_translate import run
from tiny_checkpoint import PAIRS, tiny_checkpoint, tiny_vocabularies
from tiny_models import model_section

from nmt.checkpoint import Checkpoint, save_checkpoint
from nmt.config import config_from_dict
from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.engines import load_translator
from nmt.engines.ctranslate2_export import METADATA_FILE, export_ctranslate2
from nmt.errors import NmtError
from nmt.models import build_model
from nmt.translator import Translator

pytest.importorskip("ctranslate2")

SOURCES = [zh for zh, _ in PAIRS]
TARGETS = [en for _, en in PAIRS]
# Sources of many lengths, so that a batch holds several length limits.
RANDOM_SOURCES = SOURCES + [
    "我",
    "",
    "猫猫猫猫猫猫猫猫猫猫猫猫猫",
    "他在看书。我们是朋友。天气很好。",
]

TRANSFORMER_VARIANTS = {
    "pre-norm, tied": ("transformer-pre", {}),
    "post-norm, tied": ("transformer-post", {}),
    "pre-norm, untied output": ("transformer-pre", {"tie_output_embeddings": False}),
    "post-norm, shared source/target table": ("transformer-post", {"share_embeddings": True}),
    "3 heads, first layer's attention": (
        "transformer-pre",
        {"d_model": 24, "heads": 3, "encoder_layers": 1, "attention_layer": 0},
    ),
}


def random_checkpoint(directory: Path, variant: str, **overrides) -> Path:
    """An untrained model of a tiny_models variant, with the tiny sentencepiece models."""
    zh_vocab, en_vocab = tiny_vocabularies()
    model_type, section = model_section(variant, **overrides)
    joint = bool(overrides.get("share_embeddings"))
    config = config_from_dict(
        {
            "data": {"vocab": {"joint": joint}},
            "model": {"type": model_type, model_type: section},
            "decoding": {"max_len_b": 5},
        }
    )
    tgt_vocab = zh_vocab if joint else en_vocab  # a joint vocabulary: one model for both
    torch.manual_seed(1)
    model = build_model(config.model, len(zh_vocab), len(tgt_vocab))
    path = directory / f"{variant}.pt"
    save_checkpoint(path, Checkpoint(config, model.state_dict(), zh_vocab, tgt_vocab))
    return path


def both_engines(checkpoint: Path, export_dir: Path, quantization: str = "float32"):
    export_ctranslate2(checkpoint, export_dir, quantization)
    return Translator.from_checkpoint(checkpoint), load_translator(export_dir)


def best_ids(translator: Translator, sources: list[str], **settings) -> list[list[str]]:
    translations = translator.translate(sources, translator.settings(**settings))
    return [t.candidates[0].pieces if t.candidates else [] for t in translations]


def teacher_forced_log_probs(translator: Translator, source: str, target: list[str]) -> list[float]:
    """Our model's log-probability of each target piece, then of EOS, given the source."""
    src_vocab, tgt_vocab = translator.src_vocab, translator.tgt_vocab
    src_ids = src_vocab.encode(source) + [EOS_ID]
    tgt_ids = [tgt_vocab.processor.piece_to_id(piece) for piece in target] + [EOS_ID]
    src = torch.tensor([src_ids])
    with torch.no_grad():
        logits = translator.model(
            src, torch.tensor([len(src_ids)]), torch.tensor([[BOS_ID] + tgt_ids[:-1]])
        )
    return (
        logits.log_softmax(-1)[0].gather(1, torch.tensor(tgt_ids).unsqueeze(1)).squeeze(1).tolist()
    )


@pytest.mark.parametrize("variant", TRANSFORMER_VARIANTS)
def test_float32_export_of_random_models_scores_and_searches_like_ours(tmp_path, variant) -> None:
    """Teacher-forced log-probabilities equal to 1e-4 would catch any weight wrongly mapped
    (norms and their epsilon, fused projections, positions, tying, embedding scale); equal
    greedy outputs, which run to their length limits, a limit off by one."""
    name, overrides = TRANSFORMER_VARIANTS[variant]
    ours, exported = both_engines(random_checkpoint(tmp_path, name, **overrides), tmp_path / "ct2")
    expected = best_ids(ours, RANDOM_SOURCES, beam_size=1, batch_size=5)
    assert best_ids(exported, RANDOM_SOURCES, beam_size=1, batch_size=5) == expected
    assert any(len(pieces) > 5 for pieces in expected)  # outputs ran to their limits
    sources = [s for s in RANDOM_SOURCES if s]
    targets = [pieces for pieces, s in zip(expected, RANDOM_SOURCES, strict=True) if s]
    scored = exported.ct2.score_batch(
        [ours.src_vocab.pieces(ours.src_vocab.encode(s)) + ["</s>"] for s in sources], targets
    )
    for source, target, result in zip(sources, targets, scored, strict=True):
        mine = teacher_forced_log_probs(ours, source, target)
        assert result.log_probs == pytest.approx(mine, abs=1e-4)


def test_overfit_model_translates_the_same_with_scores_nbest_and_attention(tmp_path) -> None:
    ours, exported = both_engines(tiny_checkpoint("transformer"), tmp_path / "ct2")
    for beam in (1, 3):
        settings = ours.settings(beam_size=beam, n_best=beam, return_attention=True)
        expected, actual = ours.translate(SOURCES, settings), exported.translate(SOURCES, settings)
        assert [t.text for t in actual] == TARGETS
        for mine, theirs in zip(expected, actual, strict=True):
            assert theirs.source_pieces == mine.source_pieces
            # The best candidate: same tokens, log-probability, GNMT score and attention
            # (rows for each token and EOS, all heads of the last layer averaged).
            best, other = mine.candidates[0], theirs.candidates[0]
            assert other.pieces == best.pieces
            assert other.log_prob == pytest.approx(best.log_prob, abs=1e-4)
            assert other.score == pytest.approx(best.score, abs=1e-4)
            assert torch.allclose(other.attention, best.attention, atol=1e-5)
            # n-best lists: sorted by our score, distinct.
            scores = [c.score for c in theirs.candidates]
            assert len(theirs.candidates) == beam and scores == sorted(scores, reverse=True)
            assert len({tuple(c.pieces) for c in theirs.candidates}) == beam


def test_int8_export_is_smaller_and_still_translates(tmp_path) -> None:
    checkpoint = tiny_checkpoint("transformer")
    export_ctranslate2(checkpoint, tmp_path / "f32")
    _, int8 = both_engines(checkpoint, tmp_path / "int8", "int8")
    size = (tmp_path / "int8" / "model.bin").stat().st_size
    assert size < 0.6 * (tmp_path / "f32" / "model.bin").stat().st_size
    correct = sum(
        t.text == target for t, target in zip(int8.translate(SOURCES), TARGETS, strict=True)
    )
    assert correct >= 8, correct
    assert json.loads((tmp_path / "int8" / METADATA_FILE).read_text())["quantization"] == "int8"


@pytest.mark.parametrize(
    ("variant", "overrides", "message"),
    [
        ("gru-additive", {}, "CTranslate2 does not support the GRU"),
        ("rfa-cross", {}, "does not support Random Feature Attention (model.transformer.cross"),
    ],
)
def test_models_the_engine_cannot_run_are_refused(tmp_path, variant, overrides, message) -> None:
    checkpoint = random_checkpoint(tmp_path, variant, **overrides)
    with pytest.raises(NmtError, match=message.replace("(", r"\(")):
        export_ctranslate2(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    code, _, err = run(["export", "--checkpoint", str(checkpoint), str(tmp_path / "out")])
    assert code == 2 and "--engine torch" in err and "Traceback" not in err


def test_export_command_and_engine_option_through_translate_and_evaluate(tmp_path) -> None:
    checkpoint, out = str(tiny_checkpoint("transformer")), tmp_path / "model"
    code, stdout, err = run(
        ["export", "--checkpoint", checkpoint, "--quantization", "int8", str(out)]
    )
    assert code == 0, err
    assert str(out) in stdout
    assert {"model.bin", "config.json", "source.spm", "target.spm", METADATA_FILE} <= {
        p.name for p in out.iterdir()
    }
    # An export directory is detected; --engine ctranslate2 on a checkpoint converts it.
    for arguments in ([str(out)], [checkpoint, "--engine", "ctranslate2"]):
        code, stdout, err = run(["translate", "--checkpoint", *arguments, "--beam", "3", *SOURCES])
        assert code == 0, err
        assert sum(a == b for a, b in zip(stdout.splitlines(), TARGETS, strict=True)) >= 8
    src, ref = tmp_path / "src.zh", tmp_path / "ref.en"
    src.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    ref.write_text("\n".join(TARGETS) + "\n", encoding="utf-8")
    report = tmp_path / "report.json"
    arguments = ["--src", str(src), "--ref", str(ref), "--report", str(report)]
    code, _, err = run(
        ["evaluate", "--checkpoint", checkpoint, "--engine", "ctranslate2", *arguments]
    )
    assert code == 0, err
    result = json.loads(report.read_text())
    assert result["engine"] == "ctranslate2" and result["bleu"] > 99


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--engine", "torch"], "the torch engine takes the checkpoint file"),
        (["--attention-layer", "0"], "--attention-layer needs --engine torch"),
        (["--attention-plot", "plots"], "--attention-plot needs --engine torch"),
        (["--device", "mps"], "the CTranslate2 engine runs on cpu, cuda or cuda:N"),
    ],
)
def test_engine_misuse_is_a_one_line_error(tmp_path, arguments, message) -> None:
    export_ctranslate2(tiny_checkpoint("transformer"), tmp_path / "model")
    code, _, err = run(["translate", "--checkpoint", str(tmp_path / "model"), *arguments, "你好"])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_directory_that_is_not_an_export_is_refused(tmp_path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    code, _, err = run(["translate", "--checkpoint", str(tmp_path / "other"), "你好"])
    assert code == 2 and "not an nmt CTranslate2 export" in err
    code, _, err = run(
        ["export", "--checkpoint", str(tiny_checkpoint("transformer")), str(tmp_path / "other")]
    )
    assert code == 2 and "is not an nmt export" in err
