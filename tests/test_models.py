"""Both model families through the one interface: the properties whose failure silently
ruins a translation model (padding leaks, future leaks, incremental decoding that drifts from
training, dead parameters), plus learning, the factory and its config errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from tiny_models import (
    NO_ATTENTION_VARIANTS,
    SRC_VOCAB,
    TGT_VOCAB,
    VARIANTS,
    model_section,
    padded,
    random_batch,
    teacher_forced_log_probs,
    tiny_model,
)

from nmt.config import ConfigError, GRUConfig, ModelConfig, TransformerConfig, config_from_dict
from nmt.data.batching import Batch
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.models import build_model
from nmt.models.base import ATTENTION_KINDS, Seq2Seq
from nmt.models.gru import GRUSeq2Seq
from nmt.models.transformer import Transformer
from nmt.schedules import label_smoothed_nll

# --- padding, causality, incremental decoding ------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padding_does_not_change_any_sentence(variant):
    model = tiny_model(variant).eval()
    batch = random_batch()
    with torch.no_grad():
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        extra = model(
            F.pad(batch["src"], (0, 3)), batch["src_lengths"], F.pad(batch["tgt_in"], (0, 2))
        )
        for i, (src_len, tgt_len) in enumerate(
            zip(batch["src_lengths"], batch["tgt_lengths"], strict=True)
        ):
            alone = model(
                batch["src"][i : i + 1, :src_len],
                src_len[None],
                batch["tgt_in"][i : i + 1, :tgt_len],
            )
            torch.testing.assert_close(alone[0], logits[i, :tgt_len], atol=1e-5, rtol=0)
            torch.testing.assert_close(extra[i, :tgt_len], logits[i, :tgt_len], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "variant", [v for v, (kind, _) in VARIANTS.items() if kind == "transformer"]
)
def test_transformer_decoder_is_causal(variant):
    model = tiny_model(variant).eval()
    batch = random_batch(src_lengths=(5, 6), tgt_lengths=(7, 7))
    changed = batch["tgt_in"].clone()
    position = 4
    changed[:, position] = (changed[:, position] - 4 + 1) % (TGT_VOCAB - 4) + 4
    with torch.no_grad():
        before = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        after = model(batch["src"], batch["src_lengths"], changed)
    torch.testing.assert_close(after[:, :position], before[:, :position], atol=1e-6, rtol=0)
    assert (after[:, position:] - before[:, position:]).abs().amax(dim=-1).min() > 1e-4


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_incremental_decoding_matches_teacher_forcing_also_after_reorder(variant):
    model = tiny_model(variant).eval()
    batch = random_batch(src_lengths=(7, 4, 2), tgt_lengths=(6, 6, 6))
    reorder = torch.tensor([2, 0, 0, 1])  # beam search repeats and drops rows
    # then swaps the two rows of sentence 0: each row keeps its sentence, so the encoder
    # side may stay as it is
    within_sentences = torch.tensor([0, 2, 1, 3])
    with torch.no_grad():
        expected = teacher_forced_log_probs(model, batch)
        state = model.init_state(model.encode(batch["src"], batch["src_lengths"]))
        rows = torch.arange(3)
        for t in range(batch["tgt_in"].size(1)):
            if t == 3:
                state, rows = state.reorder(reorder), rows[reorder]
            if t == 4:
                state = state.reorder(within_sentences, same_sentences=True)
                rows = rows[within_sentences]
            log_probs, state = model.decode_step(batch["tgt_in"][rows, t], state)
            torch.testing.assert_close(log_probs, expected[rows, t], atol=1e-5, rtol=0)


@pytest.mark.parametrize("need_attention", [True, False])
def test_transformer_steps_agree_with_and_without_attention_weights(need_attention):
    """The explicit-weights path (for plots) and the fused path compute the same thing."""
    model = tiny_model("transformer-pre").eval()
    batch = random_batch(tgt_lengths=(4, 4, 4))
    with torch.no_grad():
        expected = teacher_forced_log_probs(model, batch)
        encoder_out = model.encode(batch["src"], batch["src_lengths"])
        state = model.init_state(encoder_out, need_attention=need_attention)
        for t in range(4):
            log_probs, state = model.decode_step(batch["tgt_in"][:, t], state)
            torch.testing.assert_close(log_probs, expected[:, t], atol=1e-5, rtol=0)
            assert (state.attention is not None) == need_attention


def signed_cross_weights(variant: str) -> bool:
    """Cross-attention weights are RFA estimates with trig features: some can be negative."""
    model_type, section = model_section(variant)
    return (
        model_type == "transformer"
        and section.get("cross_attention") == "rfa"
        and section["rfa"].get("feature_map", "trig") == "trig"
    )


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in NO_ATTENTION_VARIANTS])
def test_attention_weights_sum_to_one_over_real_source_and_are_zero_on_padding(variant):
    model = tiny_model(variant).eval()
    batch = random_batch()
    real = batch["src"] != PAD_ID
    with torch.no_grad():
        state = model.init_state(model.encode(batch["src"], batch["src_lengths"]))
        assert state.attention is None
        for t in range(3):
            _, state = model.decode_step(batch["tgt_in"][:, t], state)
            weights = state.attention
            assert weights.shape == batch["src"].shape
            assert torch.all(weights[~real] == 0)
            row_sums = weights.sum(dim=1)
            if signed_cross_weights(variant):
                # Estimates of either sign: a row sums to 1 unless the denominator floor
                # applied, and then to less (docs/rfa.md).
                assert torch.all(row_sums <= 1 + 1e-5)
            else:
                assert torch.all(weights[real] > 0)
                torch.testing.assert_close(row_sums, torch.ones(3))
        reordered = state.reorder(torch.tensor([1, 1]))
        torch.testing.assert_close(reordered.attention, weights[[1, 1]])


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in NO_ATTENTION_VARIANTS])
def test_attention_maps_are_the_weights_the_steps_use(variant):
    """Teacher-forced maps (plots) of every kind and layer: shapes, masks, and the cross-
    attention that incremental decoding exposes (its head average)."""
    model = tiny_model(variant).eval()
    batch = random_batch()
    src, src_lengths, tgt_in = batch["src"], batch["src_lengths"], batch["tgt_in"]
    real_source = src != PAD_ID
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_lengths))
        steps = []
        for t in range(tgt_in.size(1)):
            _, state = model.decode_step(tgt_in[:, t], state)
            steps.append(state.attention)
        shown = getattr(model, "attention_layer", 0)
        cross = model.attention_maps(src, src_lengths, tgt_in, "cross", shown)
        torch.testing.assert_close(cross.mean(dim=1), torch.stack(steps, 1), atol=1e-5, rtol=0)
        heads = model.attention_heads
        kinds = [kind for kind in ATTENTION_KINDS if model.num_attention_layers(kind)]
        assert kinds == (["cross"] if model_section(variant)[0] == "gru" else list(ATTENTION_KINDS))
        for kind in kinds:
            queries, keys = {
                "cross": (tgt_in.size(1), src.size(1)),
                "encoder-self": (src.size(1), src.size(1)),
                "decoder-self": (tgt_in.size(1), tgt_in.size(1)),
            }[kind]
            for layer in range(-model.num_attention_layers(kind), 0):
                maps = model.attention_maps(src, src_lengths, tgt_in, kind, layer)
                assert maps.shape == (len(src), heads, queries, keys)
                if kind == "decoder-self":
                    assert torch.all(maps.triu(1) == 0)  # no look at later outputs
                else:
                    padding_keys = maps.permute(0, 3, 1, 2)[~real_source]
                    assert torch.all(padding_keys == 0)


@pytest.mark.parametrize("variant", NO_ATTENTION_VARIANTS)
def test_no_attention_model_reads_only_the_final_encoder_states(variant):
    """A fixed context: the encoder states (keys of attention) are never read, the final
    states (the bridge's input and the context) are; ``state.attention`` stays None."""
    model = tiny_model(variant).eval()
    assert model.num_attention_layers("cross") == 0
    batch = random_batch()
    with torch.no_grad():
        encoder_out = model.encode(batch["src"], batch["src_lengths"])
        expected = model.decode(encoder_out, batch["tgt_in"])
        perturbed = dataclasses.replace(encoder_out, memory=torch.randn_like(encoder_out.memory))
        torch.testing.assert_close(model.decode(perturbed, batch["tgt_in"]), expected)
        final = dataclasses.replace(encoder_out, final=torch.randn_like(encoder_out.final))
        assert (model.decode(final, batch["tgt_in"]) - expected).abs().max() > 1e-3
        state = model.init_state(encoder_out)
        _, state = model.decode_step(batch["tgt_in"][:, 0], state)
        assert state.attention is None


def test_transformer_attention_comes_from_the_configured_layer():
    first = tiny_model("transformer-pre", attention_layer=0).eval()
    last = tiny_model("transformer-pre", attention_layer=-1).eval()
    last.load_state_dict(first.state_dict())
    batch = random_batch()
    with torch.no_grad():
        states = [
            m.decode_step(
                batch["tgt_in"][:, 0], m.init_state(m.encode(batch["src"], batch["src_lengths"]))
            )
            for m in (first, last)
        ]
    torch.testing.assert_close(states[0][0], states[1][0])  # same log-probabilities
    assert (states[0][1].attention - states[1][1].attention).abs().max() > 1e-3


# --- gradients and learning ------------------------------------------------------------------


def loss_of(model: Seq2Seq, batch: dict) -> torch.Tensor:
    tgt_out = torch.cat(
        [batch["tgt_in"][:, 1:], torch.full_like(batch["tgt_in"][:, :1], PAD_ID)], 1
    )
    rows = torch.arange(len(tgt_out))
    tgt_out[rows, batch["tgt_lengths"] - 1] = EOS_ID
    logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID)


@pytest.mark.parametrize(
    ("variant", "options"),
    [(variant, {}) for variant in VARIANTS]
    + [("transformer-post", {"tie_output_embeddings": False})],
)
def test_every_parameter_receives_a_gradient(variant, options):
    model = tiny_model(variant, **options).train()
    loss_of(model, random_batch()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_optimisation_step_lowers_the_loss(variant):
    model = tiny_model(variant, dropout=0.0)
    batch = random_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = loss_of(model, batch)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_of(model, batch)
    assert after < before - 1e-3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_training_step_never_waits_for_the_device(variant):
    """On a GPU, reading a value of a device tensor on the host (``.item()``, ``int(t)``,
    ``.cpu()``) waits for every queued kernel: one such read per step starves the GPU. Here the
    "device" is ``meta``, whose tensors have no values: any such read in the models, the loss
    or gradient clipping raises. The batch goes through ``Batch.to`` as in the trainer, and
    RFA's redraw counter goes past a redraw (every 2 calls)."""
    model = tiny_model(variant, rfa={"redraw": 2}).train().to("meta")
    raw = random_batch()
    tgt_out = torch.roll(raw["tgt_in"], -1, dims=1)
    batch = Batch(raw["src"], raw["src_lengths"], raw["tgt_in"], tgt_out, torch.arange(3))
    batch = batch.to("meta", non_blocking=True)
    assert batch.src.is_meta and not batch.src_lengths.is_meta  # lengths stay on the host
    for _ in range(3):
        logits = model(batch.src, batch.src_lengths, batch.tgt_in)
        label_smoothed_nll(logits, batch.tgt_out, 0.1, PAD_ID).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)


def greedy(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, steps: int) -> list:
    state = model.init_state(model.encode(src, src_lengths), need_attention=False)
    tokens = torch.full((len(src),), BOS_ID)
    outputs = []
    for _ in range(steps):
        log_probs, state = model.decode_step(tokens, state)
        tokens = log_probs.argmax(dim=-1)
        outputs.append(tokens)
    return torch.stack(outputs, 1).tolist()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_tiny_model_memorises_ten_pairs(variant):
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, 7, (10, 2), generator=generator).tolist()
    pairs = [
        (
            torch.randint(4, SRC_VOCAB, (src_len,), generator=generator).tolist(),
            torch.randint(4, TGT_VOCAB, (tgt_len,), generator=generator).tolist(),
        )
        for src_len, tgt_len in lengths
    ]
    batch = {
        "src": padded([s for s, _ in pairs]),
        "src_lengths": torch.tensor([len(s) for s, _ in pairs]),
        "tgt_in": padded([[BOS_ID] + t for _, t in pairs]),
        "tgt_lengths": torch.tensor([len(t) + 1 for _, t in pairs]),
    }
    # Redrawn random features regularise: noise this 150-step test of capacity does without
    # (learning with them: test_rfa_transformer.py's trained model).
    model = tiny_model(variant, dropout=0.0, rfa={"redraw": "fixed"})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = loss_of(model, batch)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02
    model.eval()
    with torch.no_grad():
        hypotheses = greedy(model, batch["src"], batch["src_lengths"], steps=7)
    for (_, target), hypothesis in zip(pairs, hypotheses, strict=True):
        assert hypothesis[: len(target) + 1] == target + [EOS_ID]


# --- factory, config errors, sizes -----------------------------------------------------------


def test_factory_builds_the_configured_family():
    assert isinstance(build_model(ModelConfig(type="gru"), 50, 60), GRUSeq2Seq)
    model = build_model(ModelConfig(type="transformer"), 50, 60)
    assert isinstance(model, Transformer)
    # The vocabularies' fixed special ids, not a second copy of them.
    assert (model.pad_id, model.bos_id, model.eos_id) == (PAD_ID, BOS_ID, EOS_ID)


@pytest.mark.parametrize(
    ("model_section", "key"),
    [
        ({"type": "lstm"}, "model.type"),
        ({"gru": {"score": "luong"}}, "model.gru.score"),
        ({"gru": {"cell": "transformer"}}, "model.gru.cell"),
        ({"transformer": {"positions": "rotary"}}, "model.transformer.positions"),
        ({"gru": {"hidden_size": 0}}, "model.gru.hidden_size"),
        ({"gru": {"dropout": 1.0}}, "model.gru.dropout"),
        ({"transformer": {"heads": 3}}, "model.transformer.heads"),
        ({"transformer": {"d_model": 27, "heads": 3}}, "model.transformer.d_model"),
        ({"transformer": {"attention_layer": 3}}, "model.transformer.attention_layer"),
        ({"transformer": {"norm": "sandwich"}}, "model.transformer.norm"),
        ({"transformer": {"cross_attention": "sparse"}}, "model.transformer.cross_attention"),
        ({"transformer": {"layers": 6}}, "model.transformer.layers"),
    ],
)
def test_config_errors_name_the_key(model_section, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({"model": model_section})


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (ModelConfig(type="gru", gru=GRUConfig(score="luong")), "model.gru.score"),
        (ModelConfig(type="gru", gru=GRUConfig(cell="lstn")), "model.gru.cell"),
        (ModelConfig(gru=GRUConfig(encoder_layers=0)), "model.gru.encoder_layers"),
        (ModelConfig(transformer=TransformerConfig(dropout=-0.1)), "model.transformer.dropout"),
        (
            ModelConfig(transformer=TransformerConfig(share_embeddings=True)),
            "model.transformer.share_embeddings",
        ),
    ],
)
def test_build_model_validates_configs_made_in_code(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model(config, 50, 60)


def test_transformer_refuses_sequences_beyond_max_positions():
    model = tiny_model("transformer-pre", max_positions=8).eval()
    batch = random_batch(tgt_lengths=(9, 3, 3))
    with pytest.raises(ValueError, match="max_positions=8"):
        model(batch["src"], batch["src_lengths"], batch["tgt_in"])


def transformer_parameters(src: int, tgt: int, d: int, ff: int, enc: int, dec: int) -> int:
    attention = 4 * (d * d + d)
    feed_forward = d * ff + ff + ff * d + d
    norm = 2 * d
    encoder = enc * (attention + feed_forward + 2 * norm)
    decoder = dec * (2 * attention + feed_forward + 3 * norm)
    return src * d + tgt * d + encoder + decoder + 2 * norm  # pre-norm: one final norm each


def gru_parameters(
    src: int, tgt: int, embed: int, hidden: int, attention: int | None, cell: str = "gru"
) -> int:
    """``attention``: the additive score's size, None for no attention."""
    gates = {"gru": 3, "lstm": 4, "rnn": 1}[cell]  # weight blocks per recurrent layer
    decoder = 2 * hidden
    encoder = 2 * gates * (hidden * (embed + hidden) + 2 * hidden)  # one layer, 2 directions
    bridges = 2 if cell == "lstm" else 1  # the LSTM's memory cells have their own
    bridge = bridges * (2 * hidden * decoder + decoder)
    score = 0 if attention is None else decoder * attention + 2 * hidden * attention + attention
    decoder_cell = gates * (decoder * (embed + 2 * hidden) + decoder * decoder + 2 * decoder)
    output = (decoder + 2 * hidden + embed) * embed + embed + embed * tgt + tgt
    return src * embed + encoder + bridge + tgt * embed + score + decoder_cell + output


def test_parameter_counts_of_the_default_models():
    """The defaults as the docs report them (vocabulary 8000 on each side)."""
    transformer = build_model(ModelConfig(type="transformer"), 8000, 8000)
    assert transformer.num_parameters() == transformer_parameters(8000, 8000, 256, 1024, 3, 3)
    assert transformer.num_parameters() == 9_626_624
    untied = build_model(
        ModelConfig(transformer=TransformerConfig(tie_output_embeddings=False)), 8000, 8000
    )
    assert untied.num_parameters() == transformer.num_parameters() + 8000 * 256
    shared = build_model(
        ModelConfig(transformer=TransformerConfig(share_embeddings=True)), 8000, 8000
    )
    assert shared.num_parameters() == transformer.num_parameters() - 8000 * 256
    gru = build_model(ModelConfig(type="gru"), 8000, 8000)
    assert gru.num_parameters() == gru_parameters(8000, 8000, 256, 256, 256) == 9_763_648


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("score", ["additive", "none"])
def test_parameter_counts_of_the_recurrent_cells(cell, score):
    model = build_model(ModelConfig(type="gru", gru=GRUConfig(cell=cell, score=score)), 50, 60)
    attention = 256 if score == "additive" else None
    assert model.num_parameters() == gru_parameters(50, 60, 256, 256, attention, cell)


@pytest.mark.parametrize("share_embeddings", [False, True])
def test_learned_positions_add_one_table_per_embedding(share_embeddings):
    def parameters(positions: str) -> int:
        section = TransformerConfig(
            positions=positions, max_positions=100, share_embeddings=share_embeddings
        )
        return build_model(ModelConfig(transformer=section), 50, 50).num_parameters()

    tables = 1 if share_embeddings else 2  # source and target
    assert parameters("learned") == parameters("sinusoidal") + tables * 100 * 256
