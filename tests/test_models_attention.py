"""Attention pieces against plain reference computations: the GRU's score functions and
alignment, scaled dot-product attention (fused and explicit paths) and multi-head attention."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nmt.config import GRUConfig, ModelConfig
from nmt.models import build_model
from nmt.models.attention import (
    MultiHeadAttention,
    SoftmaxAttention,
    attend,
    make_score,
    padding_bias,
)
from nmt.models.base import padding_mask

BATCH, SRC_LEN, QUERY_DIM, KEY_DIM = 3, 5, 6, 4
SRC_LENGTHS = torch.tensor([5, 3, 1])


SCORES = ["additive", "dot", "scaled_dot", "general", "biased_general", "activated_general"]
SCORES += ["cosine"]


def reference_score(name: str, score: nn.Module, query: torch.Tensor, key: torch.Tensor) -> float:
    """One query-key pair, written as in the papers."""
    if name == "additive":
        hidden = torch.tanh(score.query_proj.weight @ query + score.key_proj.weight @ key)
        return float(score.v.weight[0] @ hidden)
    if name == "general":
        return float(query @ score.key_proj.weight @ key)
    if name in ("biased_general", "activated_general"):
        value = query @ score.key_proj.weight @ key + score.key_bias.weight[0] @ key
        return float(torch.tanh(value) if name == "activated_general" else value)
    if name == "cosine":
        return float(score.log_beta.exp() * query @ key / (query.norm() * key.norm()))
    scale = math.sqrt(query.numel()) if name == "scaled_dot" else 1.0
    return float(query @ key) / scale


@pytest.mark.parametrize("name", SCORES)
def test_scores_match_their_formulas(name):
    key_dim = QUERY_DIM if name in ("dot", "scaled_dot", "cosine") else KEY_DIM
    score = make_score(name, QUERY_DIM, key_dim, hidden_dim=7)
    query, keys = torch.randn(BATCH, QUERY_DIM), torch.randn(BATCH, SRC_LEN, key_dim)
    with torch.no_grad():
        scores = score(query, score.project_keys(keys))
        expected = torch.tensor(
            [
                [reference_score(name, score, query[b], keys[b, s]) for s in range(SRC_LEN)]
                for b in range(BATCH)
            ]
        )
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)


def test_scores_on_hand_made_tensors():
    """Values worked out by hand: q = (1, 2); keys (3, 0), (0, 1), (-1, 1);
    W = [[1, 0], [1, 1]] (W k for the general scores), b = (1, -1)."""
    query = torch.tensor([[1.0, 2.0]])
    keys = torch.tensor([[[3.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]])
    expected = {
        "dot": [3.0, 2.0, 1.0],
        "scaled_dot": [3.0 / math.sqrt(2), 2.0 / math.sqrt(2), 1.0 / math.sqrt(2)],
        # W k = (3, 3), (0, 1), (-1, 0); q . W k = 9, 2, -1
        "general": [9.0, 2.0, -1.0],
        # + b . k = 3, -1, -2
        "biased_general": [12.0, 1.0, -3.0],
        "activated_general": [math.tanh(12.0), math.tanh(1.0), math.tanh(-3.0)],
        # |q| = sqrt 5; |k| = 3, 1, sqrt 2; beta = 2
        "cosine": [2 / math.sqrt(5), 4 / math.sqrt(5), 2 / math.sqrt(10)],
    }
    for name, values in expected.items():
        score = make_score(name, 2, 2, hidden_dim=3)
        with torch.no_grad():
            if "general" in name:
                score.key_proj.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
            if name in ("biased_general", "activated_general"):
                score.key_bias.weight.copy_(torch.tensor([[1.0, -1.0]]))
            if name == "cosine":
                score.log_beta.fill_(math.log(2.0))
            scores = score(query, score.project_keys(keys))
        torch.testing.assert_close(scores, torch.tensor([values]), msg=name)


def test_cosine_sharpness_starts_at_the_scale_of_scaled_dot_scores():
    assert make_score("cosine", 64, 64, 8).log_beta.exp().item() == pytest.approx(8.0)
    assert make_score("none", 64, 64, 8) is None


def test_dot_scores_need_matching_sizes():
    with pytest.raises(ValueError, match="query_dim == key_dim"):
        make_score("dot", 6, 4, 7)


def test_alignment_is_a_softmax_over_real_positions_and_context_its_average():
    scores, values = torch.randn(BATCH, SRC_LEN), torch.randn(BATCH, SRC_LEN, KEY_DIM)
    mask = padding_mask(SRC_LENGTHS, SRC_LEN)
    context, weights = attend(scores, padding_bias(mask, scores.dtype), values)
    for b, length in enumerate(SRC_LENGTHS):
        expected = torch.softmax(scores[b, :length], dim=0)
        torch.testing.assert_close(weights[b, :length], expected)
        assert torch.all(weights[b, length:] == 0)
        torch.testing.assert_close(context[b], expected @ values[b, :length])


@pytest.mark.parametrize(("score", "cell"), [(s, "gru") for s in SCORES] + [("dot", "lstm")])
def test_gru_decoder_queries_with_the_previous_top_layer_state(score, cell):
    """Step t attends with s(t-1): the first step's alignment comes from the bridge state."""
    gru = GRUConfig(embed_dim=8, hidden_size=6, decoder_layers=2, score=score, cell=cell)
    config = ModelConfig(type="gru", gru=gru)
    model = build_model(config, 20, 20).eval()
    src = torch.randint(4, 20, (BATCH, SRC_LEN)).masked_fill(~padding_mask(SRC_LENGTHS), 0)
    with torch.no_grad():
        state = model.init_state(model.encode(src, SRC_LENGTHS))
        previous = state.hidden[-1]
        _, state = model.decode_step(torch.full((BATCH,), 2), state)
        keys, bias = state.source["keys"], state.source["bias"]
        expected = torch.softmax(model.score(previous, keys) + bias, dim=-1)
    torch.testing.assert_close(state.attention, expected)


# --- scaled dot-product attention ------------------------------------------------------------


def reference_attention(q, k, v, key_mask=None, causal=False):
    """softmax(Q K^T / sqrt(d)) V with -inf at masked keys; also returns the weights."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    if causal:
        future = torch.ones(q.size(2), k.size(2), dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def qkv(q_len: int, k_len: int, heads: int = 2, head_dim: int = 8):
    return (
        torch.randn(BATCH, heads, q_len, head_dim),
        torch.randn(BATCH, heads, k_len, head_dim),
        torch.randn(BATCH, heads, k_len, head_dim),
    )


def test_scaled_dot_product_attention_matches_the_reference():
    core = SoftmaxAttention().eval()
    q, k, v = qkv(4, SRC_LEN)
    mask = padding_mask(SRC_LENGTHS, SRC_LEN)
    torch.testing.assert_close(core(q, k, v), reference_attention(q, k, v)[0])
    torch.testing.assert_close(core(q, k, v, mask), reference_attention(q, k, v, mask)[0])
    q, k, v = qkv(6, 6)
    expected = reference_attention(q, k, v, causal=True)[0]
    torch.testing.assert_close(core(q, k, v, causal=True), expected)


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_step_over_memory_matches_the_reference(need_weights):
    core = SoftmaxAttention().eval()
    q, k, v = qkv(1, SRC_LEN)
    mask = padding_mask(SRC_LENGTHS, SRC_LEN)
    out, cache, weights = core.step(q, core.start_cache(k, v, mask), need_weights=need_weights)
    expected_out, expected_weights = reference_attention(q, k, v, mask)
    torch.testing.assert_close(out, expected_out)
    if need_weights:
        torch.testing.assert_close(weights, expected_weights)
    else:
        assert weights is None


def test_attention_steps_appending_keys_equal_causal_attention():
    core = SoftmaxAttention().eval()
    q, k, v = qkv(5, 5)
    cache = core.start_cache(k[:, :, :0], v[:, :, :0])
    outputs = []
    for t in range(5):
        out, cache, _ = core.step(q[:, :, t : t + 1], cache, k[:, :, t : t + 1], v[:, :, t : t + 1])
        outputs.append(out)
    expected = reference_attention(q, k, v, causal=True)[0]
    torch.testing.assert_close(torch.cat(outputs, dim=2), expected)


def test_multi_head_attention_matches_torch_multihead_attention():
    d_model, heads = 16, 4
    ours = MultiHeadAttention(d_model, heads, SoftmaxAttention()).eval()
    theirs = nn.MultiheadAttention(d_model, heads, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.query_proj.weight, ours.key_value_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.query_proj.bias, ours.key_value_proj.bias]))
        theirs.out_proj.load_state_dict(ours.out_proj.state_dict())
    query, memory = torch.randn(BATCH, 4, d_model), torch.randn(BATCH, SRC_LEN, d_model)
    mask = padding_mask(SRC_LENGTHS, SRC_LEN)
    expected, expected_weights = theirs(query, memory, memory, key_padding_mask=~mask)
    torch.testing.assert_close(ours(query, memory, mask), expected, atol=1e-6, rtol=1e-5)

    cache = ours.memory_cache(memory, mask)
    out, _, weights = ours.step(query[:, :1], cache, need_weights=True)
    torch.testing.assert_close(out, expected[:, :1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights[:, 0], atol=1e-6, rtol=1e-5)
