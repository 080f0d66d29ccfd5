"""The Transformer with random feature attention (``nmt/models/rfa.py``): config wiring,
search, checkpoints, learning and the command line, and RFA's own promise, a decoder
self-attention state that does not grow with the output. Padding invariance, causality and
incremental decoding run over the RFA variants in ``test_models.py`` (``tiny_models.VARIANTS``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_checkpoint import PAIRS, tiny_vocabularies
from tiny_models import (
    ALL_RFA,
    SRC_VOCAB,
    TGT_VOCAB,
    TINY_TRANSFORMER,
    padded,
    random_batch,
    tiny_model,
)

from nmt.checkpoint import Checkpoint, load_model, save_checkpoint
from nmt.cli import main as cli
from nmt.config import ConfigError, ModelConfig, RFAConfig, TransformerConfig, config_from_dict
from nmt.config import DecodingSettings as S
from nmt.data.batching import encode_source_batch
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.decoding import beam_search, greedy_search, search
from nmt.models import build_model
from nmt.models.attention import SoftmaxAttention
from nmt.models.base import padding_mask
from nmt.models.rfa import RandomFeatureAttention
from nmt.models.transformer import Transformer

RFA_DECODERS = ["rfa-decoder", "rfa-decoder-gated", "rfa-all"]


# --- the config reaches the cores; bad values name the key ----------------------------------


def test_config_and_command_line_overrides_choose_each_core():
    overrides = [
        "model.transformer.decoder_attention=rfa",
        "model.transformer.cross_attention=rfa",
        "model.transformer.rfa.num_features=8",
        "model.transformer.rfa.gated=true",
        "model.transformer.rfa.redraw=100",
    ]
    # A copy: overrides write into the nested mappings they are given.
    config = config_from_dict(
        {"model": {"transformer": {**TINY_TRANSFORMER, "decoder_layers": 2}}}, overrides
    )
    model = build_model(config.model, SRC_VOCAB, TGT_VOCAB)
    assert isinstance(model.encoder_layers[0].self_attention.core, SoftmaxAttention)
    for layer in model.decoder_layers:
        self_core, cross_core = layer.self_attention.core, layer.cross_attention.core
        assert isinstance(self_core, RandomFeatureAttention) and self_core.gated
        assert isinstance(cross_core, RandomFeatureAttention) and not cross_core.gated
        for core in (self_core, cross_core):
            assert core.projection.shape == (4, 8, 8)  # (heads, num_features, head_dim)
            assert core.redraw_every == 100


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("encoder_attention=linear", "model.transformer.encoder_attention"),
        ("rfa.num_features=0", "model.transformer.rfa.num_features"),
        ("rfa.feature_map=relu", "model.transformer.rfa.feature_map"),
        ("rfa.sigma=0", "model.transformer.rfa.sigma"),
        ("rfa.redraw=sometimes", "model.transformer.rfa.redraw"),
        ("rfa.redraw=0", "model.transformer.rfa.redraw"),
        ("rfa.gated=true", "model.transformer.rfa.gated"),  # decoder self-attention is softmax
        ("rfa.num_feature=8", "model.transformer.rfa.num_feature"),
    ],
)
def test_config_errors_name_the_key(override, key):
    # Every attention type but decoder self-attention is RFA: gating is still refused.
    others = ["model.transformer.encoder_attention=rfa", "model.transformer.cross_attention=rfa"]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({}, [*others, f"model.transformer.{override}"])


@pytest.mark.parametrize(
    ("rfa", "key"),
    [
        (RFAConfig(redraw="sometimes"), "model.transformer.rfa.redraw"),
        (RFAConfig(gated=True), "model.transformer.rfa.gated"),
    ],
)
def test_build_model_validates_rfa_configs_made_in_code(rfa, key):
    config = ModelConfig(transformer=TransformerConfig(cross_attention="rfa", rfa=rfa))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model(config, SRC_VOCAB, TGT_VOCAB)


# --- padding, causality, incremental decoding ------------------------------------------------


def self_cache_shapes(model: Transformer, steps: int) -> list[dict[str, tuple[int, ...]]]:
    """Shapes of every decoder layer's self-attention cache after ``steps`` decoding steps."""
    batch = random_batch()
    with torch.no_grad():
        state = model.init_state(model.encode(batch["src"], batch["src_lengths"]))
        for _ in range(steps):
            _, state = model.decode_step(torch.randint(4, TGT_VOCAB, (3,)), state)
    return [{name: tuple(x.shape) for name, x in cache.items()} for cache in state.self_caches]


@pytest.mark.parametrize("variant", RFA_DECODERS)
def test_decoder_self_attention_state_does_not_grow(variant):
    model = tiny_model(variant).eval()
    after_one, after_ten = self_cache_shapes(model, 1), self_cache_shapes(model, 10)
    assert after_one == after_ten
    # S and z of every head: (batch, heads, 2 * num_features, head_dim + 1), and the key mass.
    assert after_ten[0] == {"kv": (3, 4, 64, 9), "mass": (3, 4, 1, 1)}


def test_softmax_self_attention_cache_grows_with_the_steps():
    """The contrast that the test above relies on: a key/value cache grows by one per step."""
    model = tiny_model("rfa-cross").eval()
    assert self_cache_shapes(model, 10)[0]["keys"] == (3, 4, 10, 8)
    assert self_cache_shapes(model, 1)[0]["keys"] == (3, 4, 1, 8)


@pytest.mark.parametrize("need_attention", [False, True])
def test_cross_attention_keeps_key_features_only_for_the_weights_asked_for(need_attention):
    """Per-key features make a cache (and beam search's copies of it) grow with the source:
    only the layer whose weights ``state.attention`` shows keeps them, and only on request."""
    model = tiny_model("rfa-cross", decoder_layers=3, attention_layer=1).eval()
    batch = random_batch()
    with torch.no_grad():
        encoder_out = model.encode(batch["src"], batch["src_lengths"])
        state = model.init_state(encoder_out, need_attention=need_attention)
        state = model.decode_step(batch["tgt_in"][:, 0], state)[1].reorder(torch.tensor([2, 0]))
    kept = ["key_features" in cache for cache in state.cross_caches]
    assert kept == [False, need_attention, False]
    assert (state.attention is not None) == need_attention


# --- search ----------------------------------------------------------------------------------


def sum_of_log_probs(model: Transformer, src, src_lengths, outputs: list[list[int]]) -> list:
    """Teacher-forced log-probability of each output, EOS appended."""
    tgt_in = padded([[BOS_ID, *tokens] for tokens in outputs])
    tgt_out = padded([[*tokens, EOS_ID] for tokens in outputs])
    # By length, not by PAD: a random model may well output the PAD id.
    real = padding_mask(torch.tensor([len(tokens) + 1 for tokens in outputs]), tgt_out.size(1))
    with torch.no_grad():
        log_probs = model(src, src_lengths, tgt_in).log_softmax(dim=-1)
    picked = log_probs.gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1) * real
    return picked.sum(dim=1).tolist()


@pytest.mark.parametrize("variant", ["rfa-decoder-gated", "rfa-cross", "rfa-all"])
def test_beam_search_scores_are_exact_and_beam_one_equals_greedy(variant):
    model = tiny_model(variant).eval()
    sources = [torch.randint(4, SRC_VOCAB, (n,)).tolist() for n in (6, 3, 9, 1)]
    src, src_lengths = encode_source_batch(sources)
    greedy = greedy_search(model, src, src_lengths, S(beam_size=1))
    beam_one = beam_search(model, src, src_lengths, S(beam_size=1))
    assert [h.tokens for h in greedy] == [nbest[0].tokens for nbest in beam_one]

    nbest_lists = search(
        model, src, src_lengths, S(beam_size=3, n_best=3, length_penalty=0.0, return_attention=True)
    )
    for i, nbest in enumerate(nbest_lists):
        assert len(nbest) == 3
        outputs = [h.tokens for h in nbest]
        expected = sum_of_log_probs(model, src[[i] * 3], src_lengths[[i] * 3], outputs)
        assert [h.score for h in nbest] == pytest.approx(expected, abs=1e-4)
        for h in nbest:
            assert h.attention.shape == (len(h.tokens) + 1, src_lengths[i])
    without_attention = search(model, src, src_lengths, S(beam_size=3, length_penalty=0.0))
    assert [n[0].tokens for n in without_attention] == [n[0].tokens for n in nbest_lists]


# --- learning, checkpoints, the command line -------------------------------------------------

TRAINED_SECTION = {
    "d_model": 32,
    "heads": 2,
    "ff_size": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "dropout": 0.0,
    "max_positions": 64,
    **ALL_RFA,
    # every_step: the checkpoint must hold the projection drawn last, not the first one.
    "rfa": {"num_features": 32, "gated": True, "redraw": "every_step"},
}


@pytest.fixture(scope="module")
def trained_rfa(tmp_path_factory) -> tuple[Path, Transformer, list[float]]:
    """A Transformer with RFA everywhere, overfit on :data:`PAIRS`: its checkpoint, the
    model itself (in eval mode) and its training losses."""
    zh_vocab, en_vocab = tiny_vocabularies()
    config = config_from_dict({"name": "tiny_rfa", "model": {"transformer": TRAINED_SECTION}})
    torch.manual_seed(0)
    model = build_model(config.model, len(zh_vocab), len(en_vocab))
    src, src_lengths = encode_source_batch([zh_vocab.encode(zh) for zh, _ in PAIRS])
    targets = [en_vocab.encode(en) for _, en in PAIRS]
    tgt_in = padded([[BOS_ID, *ids] for ids in targets])
    tgt_out = padded([[*ids, EOS_ID] for ids in targets])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(120):
        logits = model(src, src_lengths, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    path = tmp_path_factory.mktemp("rfa") / "rfa.pt"
    checkpoint = Checkpoint(config, model.state_dict(), zh_vocab, en_vocab, step=len(losses))
    save_checkpoint(path, checkpoint)
    return path, model.eval(), losses


def test_every_parameter_receives_a_gradient():
    model = tiny_model("rfa-all-gated-positive").train()
    batch = random_batch()
    logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"]).flatten(0, 1)
    F.cross_entropy(logits, torch.randint(4, TGT_VOCAB, logits.shape[:1])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_tiny_rfa_model_learns_the_pairs(trained_rfa):
    *_, losses = trained_rfa
    assert losses[0] > 3  # about log(70), the English vocabulary size
    assert losses[-1] < 0.1


def test_checkpoint_round_trip_gives_identical_log_probs(trained_rfa):
    path, model, _ = trained_rfa
    torch.manual_seed(123)  # build_model draws other projections than the saved ones
    loaded = load_model(path)
    src, src_lengths = torch.tensor([[5, 9, 7, 3], [6, 3, 0, 0]]), torch.tensor([4, 2])
    tgt_in = torch.tensor([[BOS_ID, 8, 9, 10], [BOS_ID, 11, 12, 13]])
    with torch.no_grad():
        expected = model(src, src_lengths, tgt_in)
        torch.testing.assert_close(loaded.model(src, src_lengths, tgt_in), expected, atol=0, rtol=0)
        first_step, _ = loaded.model.decode_step(
            torch.tensor([BOS_ID] * 2),
            loaded.model.init_state(loaded.model.encode(src, src_lengths)),
        )
    torch.testing.assert_close(first_step, expected[:, 0].log_softmax(dim=-1), atol=1e-5, rtol=0)
    saved = torch.load(path, weights_only=True)["model"]
    assert sum(name.endswith("core.projection") for name in saved) == 2 + 2 * 2  # every core


def test_checkpoint_translates_plots_and_evaluates_from_the_command_line(
    trained_rfa, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path, *_ = trained_rfa
    sources, targets = [zh for zh, _ in PAIRS], [en for _, en in PAIRS]
    plots = tmp_path / "plots"
    arguments = ["translate", "--checkpoint", str(path), "--beam", "3", "--attention-plot"]
    assert cli([*arguments, str(plots), *sources[:3]]) == 0
    assert capsys.readouterr().out.splitlines() == targets[:3]
    assert sorted(plot.name for plot in plots.iterdir()) == ["0001.png", "0002.png", "0003.png"]

    src, ref = tmp_path / "test.zh", tmp_path / "test.en"
    src.write_text("\n".join(sources) + "\n", encoding="utf-8")
    ref.write_text("\n".join(targets) + "\n", encoding="utf-8")
    report = tmp_path / "report.json"
    arguments = ["evaluate", "--checkpoint", str(path), "--src", str(src), "--ref", str(ref)]
    assert cli([*arguments, "--beam", "2", "--report", str(report)]) == 0
    assert json.loads(report.read_text(encoding="utf-8"))["bleu"] == pytest.approx(100.0)
