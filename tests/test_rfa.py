"""Random feature attention: the kernel and softmax approximations, the parallel and
recurrent causal forms, masks, caches, projection redraws and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nmt.config import RFAConfig
from nmt.models.rfa import RandomFeatureAttention, causal_linear_attention, random_features

BATCH, HEADS, HEAD_DIM = 2, 3, 16


def make_core(
    heads: int,
    head_dim: int,
    num_features: int = 64,
    feature_map: str = "trig",
    chunk_size: int = 64,
    denominator_eps: float | None = None,
    **options,
) -> RandomFeatureAttention:
    """A core with the config section's options given as keywords; its projection stays
    fixed unless ``redraw`` says otherwise (these tests compare outputs across calls)."""
    options.setdefault("redraw", "fixed")
    config = RFAConfig(num_features=num_features, feature_map=feature_map, **options)
    return RandomFeatureAttention(heads, head_dim, config, chunk_size, denominator_eps)


def make_qkv(length: int, key_length: int | None = None) -> tuple[torch.Tensor, ...]:
    key_length = length if key_length is None else key_length
    q = torch.randn(BATCH, HEADS, length, HEAD_DIM)
    k = torch.randn(BATCH, HEADS, key_length, HEAD_DIM)
    v = torch.randn(BATCH, HEADS, key_length, HEAD_DIM)
    return q, k, v


def softmax_attention(q, k, v, sigma: float, causal: bool = False) -> torch.Tensor:
    """What RFA approximates: ``softmax(sigma^2 q.k)`` over l2-normalised queries and keys."""
    scores = sigma**2 * F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)
    if causal:
        future = torch.ones(q.size(2), k.size(2), dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1) @ v


def run_steps(core: RandomFeatureAttention, q, k, v, cache=None):
    """Causal self-attention one position at a time, from an empty prefix by default."""
    if cache is None:
        cache = core.start_cache(k[:, :, :0], v[:, :, :0])
    outputs = []
    for t in range(q.size(2)):
        out, cache, _ = core.step(q[:, :, t : t + 1], cache, k[:, :, t : t + 1], v[:, :, t : t + 1])
        outputs.append(out)
    return torch.cat(outputs, dim=2), cache


# --- approximation -------------------------------------------------------------------------


@pytest.mark.parametrize("feature_map", ["trig", "positive"])
def test_kernel_estimate_converges_to_gaussian_kernel(feature_map):
    sigma = 1.5
    x = sigma * F.normalize(torch.randn(1, HEADS, 50, HEAD_DIM), dim=-1)
    y = sigma * F.normalize(torch.randn(1, HEADS, 50, HEAD_DIM), dim=-1)
    # For unit vectors this is exp(sigma^2 (x.y - 1)): proportional to the softmax kernel.
    exact = torch.exp(-(torch.cdist(x, y) ** 2) / 2)
    errors = []
    for num_features in (16, 256, 2048):
        projection = torch.randn(HEADS, num_features, HEAD_DIM)
        estimate = random_features(x, projection, feature_map) @ random_features(
            y, projection, feature_map
        ).transpose(-1, -2)
        errors.append((estimate - exact).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[2] > 5  # ~ sqrt(2048 / 16) = 11 for a Monte Carlo estimate
    assert errors[2] < 0.025


@pytest.mark.parametrize("feature_map", ["trig", "positive"])
@pytest.mark.parametrize("causal", [False, True])
def test_output_approaches_softmax_attention_with_more_features(feature_map, causal):
    sigma = 1.5
    q, k, v = make_qkv(24)
    expected = softmax_attention(q, k, v, sigma, causal)
    errors = []
    for num_features in (16, 256, 2048):
        core = make_core(HEADS, HEAD_DIM, num_features, feature_map, sigma=sigma, learn_sigma=False)
        errors.append((core(q, k, v, causal=causal) - expected).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def arc_cosine_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cho and Saul's (2009) arc-cosine kernel of degree 1: ``|x||y| (sin t + (pi - t) cos t)
    / pi`` at the angle ``t`` between ``x`` and ``y`` (the rows of ``x`` against those of
    ``y``)."""
    norms = x.norm(dim=-1, keepdim=True) * y.norm(dim=-1, keepdim=True).transpose(-1, -2)
    cosines = (x @ y.transpose(-1, -2) / norms).clamp(-1, 1)
    angles = torch.acos(cosines)
    return norms * (torch.sin(angles) + (math.pi - angles) * cosines) / math.pi


def test_arc_cosine_features_approach_their_kernel():
    x = 1.5 * F.normalize(torch.randn(1, HEADS, 50, HEAD_DIM), dim=-1)
    y = 1.5 * F.normalize(torch.randn(1, HEADS, 50, HEAD_DIM), dim=-1)
    exact = arc_cosine_kernel(x, y)
    errors = []
    for num_features in (16, 256, 4096):
        projection = torch.randn(HEADS, num_features, HEAD_DIM)
        features = [random_features(z, projection, "arccos") for z in (x, y)]
        assert all((f >= 0).all() for f in features)
        errors.append((features[0] @ features[1].transpose(-1, -2) - exact).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[2] > 8  # ~ sqrt(4096 / 16) = 16 for a Monte Carlo estimate
    assert errors[2] < 0.03 * exact.mean()


@pytest.mark.parametrize("causal", [False, True])
def test_arccos_output_approaches_arc_cosine_kernel_attention(causal):
    q, k, v = make_qkv(24)
    # Homogeneous kernel: a sigma per head cancels; the normalised inputs are what count.
    scores = arc_cosine_kernel(F.normalize(q, dim=-1), F.normalize(k, dim=-1))
    if causal:
        scores = scores.tril()
    expected = (scores / scores.sum(dim=-1, keepdim=True)) @ v
    errors = []
    for num_features in (16, 256, 4096):
        core = make_core(HEADS, HEAD_DIM, num_features, "arccos", sigma=2.0, learn_sigma=False)
        errors.append((core(q, k, v, causal=causal) - expected).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


@pytest.mark.parametrize("feature_map", ["trig", "positive"])
def test_learned_sigma_per_dimension_approximates_the_corrected_softmax(feature_map):
    """With a sigma per dimension, |y_i|^2 differs from key to key and does not cancel:
    RFA approximates softmax(x.y_i - |y_i|^2 / 2), not softmax(x.y_i) (docs/rfa.md)."""
    q, k, v = make_qkv(24)
    log_sigma = 0.6 * torch.randn(HEADS, 1, HEAD_DIM)  # as training may leave it
    x, y = (F.normalize(t, dim=-1) * log_sigma.exp() for t in (q, k))
    dot = x @ y.transpose(-1, -2)
    corrected = (dot - y.pow(2).sum(-1).unsqueeze(-2) / 2).softmax(dim=-1) @ v
    uncorrected = dot.softmax(dim=-1) @ v
    errors = []
    for num_features in (64, 16384):
        core = make_core(HEADS, HEAD_DIM, num_features, feature_map)  # sigma learned
        with torch.no_grad():
            core.log_sigma.copy_(log_sigma)
            errors.append((core(q, k, v) - corrected).abs().mean())
    assert errors[1] < errors[0] / 3
    assert errors[1] < (corrected - uncorrected).abs().mean() / 3


# --- causal forms --------------------------------------------------------------------------


@pytest.mark.parametrize("feature_map", ["trig", "positive", "arccos"])
@pytest.mark.parametrize("gated", [False, True])
def test_parallel_causal_form_equals_recurrence(feature_map, gated):
    q, k, v = make_qkv(37)
    core = make_core(HEADS, HEAD_DIM, 32, feature_map, gated=gated, chunk_size=8)
    with torch.no_grad():
        parallel = core(q, k, v, causal=True)
        recurrent, _ = run_steps(core, q, k, v)
        # start_cache over a prefix, then steps: the same as stepping from the start.
        prefix = core.start_cache(k[:, :, :10], v[:, :, :10])
        continued, _ = run_steps(core, q[:, :, 10:], k[:, :, 10:], v[:, :, 10:], prefix)
    assert (parallel - recurrent).abs().max() < 1e-5
    assert (parallel[:, :, 10:] - continued).abs().max() < 1e-5


@pytest.mark.parametrize("gated", [False, True])
def test_chunk_size_does_not_change_causal_output(gated):
    q, k, v = make_qkv(29)
    core = make_core(HEADS, HEAD_DIM, 32, gated=gated)
    outputs = []
    for chunk_size in (1, 5, 64):
        core.chunk_size = chunk_size
        outputs.append(core(q, k, v, causal=True))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    assert torch.allclose(outputs[0], outputs[2], atol=1e-5)


@pytest.mark.parametrize("gated", [False, True])
def test_causal_output_does_not_depend_on_the_future(gated):
    q, k, v = make_qkv(40)
    core = make_core(HEADS, HEAD_DIM, 32, gated=gated, chunk_size=16)
    before = core(q, k, v, causal=True)
    changed = [x.clone() for x in (q, k, v)]
    for x in changed:
        x[:, :, 20:] = torch.randn_like(x[:, :, 20:])
    after = core(*changed, causal=True)
    assert torch.equal(before[:, :, :20], after[:, :, :20])
    assert not torch.allclose(before[:, :, 20:], after[:, :, 20:])


def naive_causal_linear_attention(query_features, key_features, values, log_gates):
    """``out_t = sum_{i <= t} (q_t . k_i) prod_{i < j <= t} g_j v_i``, as a quadratic loop."""
    length = query_features.size(2)
    outputs = []
    for t in range(length):
        total = torch.zeros_like(values[:, :, 0])
        for i in range(t + 1):
            decay = log_gates[:, :, i + 1 : t + 1].sum(dim=-1).exp().unsqueeze(-1)
            weight = (query_features[:, :, t] * key_features[:, :, i]).sum(-1, keepdim=True)
            total = total + weight * decay * values[:, :, i]
        outputs.append(total)
    return torch.stack(outputs, dim=2)


def test_gated_chunked_form_has_the_gradients_of_the_quadratic_reference():
    """Double precision: values and gradients of the chunked prefix sums (three chunks, the
    last partial) against the plain quadratic sum, and torch's numerical gradient check."""
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True)

    q, k, v = tensor(2, 2, 7, 4), tensor(2, 2, 7, 4), tensor(2, 2, 7, 3)
    log_gates = F.logsigmoid(tensor(2, 2, 7)).detach().requires_grad_()
    inputs = (q, k, v, log_gates)
    chunked = causal_linear_attention(q, k, v, log_gates, chunk_size=3)
    naive = naive_causal_linear_attention(q, k, v, log_gates)
    torch.testing.assert_close(chunked, naive, atol=1e-12, rtol=1e-10)
    upstream = torch.randn(chunked.shape, generator=generator, dtype=torch.float64)
    chunked_grads = torch.autograd.grad(chunked, inputs, upstream)
    naive_grads = torch.autograd.grad(naive, inputs, upstream)
    for name, ours, reference in zip("qkvg", chunked_grads, naive_grads, strict=True):
        torch.testing.assert_close(ours, reference, atol=1e-10, rtol=1e-8, msg=name)
    assert torch.autograd.gradcheck(
        lambda *x: causal_linear_attention(*x, chunk_size=3), inputs, eps=1e-6, atol=1e-8
    )


# --- masks and caches ----------------------------------------------------------------------


def test_padding_keys_change_nothing():
    q, k, v = make_qkv(7, key_length=10)
    core = make_core(HEADS, HEAD_DIM, 32)
    expected = core(q, k, v)
    garbage = torch.randn(BATCH, HEADS, 4, HEAD_DIM) * 100
    padded_k, padded_v = torch.cat([k, garbage], dim=2), torch.cat([v, -garbage], dim=2)
    key_mask = torch.arange(14) < 10
    key_mask = key_mask.expand(BATCH, 14)
    assert torch.allclose(core(q, padded_k, padded_v, key_mask), expected, atol=1e-6)
    assert not torch.allclose(core(q, padded_k, padded_v), expected, atol=1e-3)
    weights = core.attention_weights(q, padded_k, key_mask)
    assert torch.equal(weights[..., 10:], torch.zeros_like(weights[..., 10:]))


@pytest.mark.parametrize("gated", [False, True])
def test_causal_key_mask_skips_left_padding(gated):
    q, k, v = make_qkv(12)
    core = make_core(HEADS, HEAD_DIM, 32, gated=gated, chunk_size=4)
    expected = core(q, k, v, causal=True)
    pad = torch.randn(BATCH, HEADS, 3, HEAD_DIM)
    padded = [torch.cat([pad, x], dim=2) for x in (q, k, v)]
    key_mask = (torch.arange(15) >= 3).expand(BATCH, 15)
    assert torch.allclose(core(*padded, key_mask, causal=True)[:, :, 3:], expected, atol=1e-5)
    # Padding after a prefix passes the state on unchanged (gates of padding are 1).
    prefix = core.start_cache(k, v)
    right_padded = [torch.cat([x, pad], dim=2) for x in (k, v)]
    padded_prefix = core.start_cache(*right_padded, key_mask.flip(-1), need_weights=False)
    for name in ("kv", "mass"):
        assert torch.allclose(padded_prefix[name], prefix[name], atol=1e-6)


def test_memory_cache_steps_match_forward_and_expose_weights():
    q, k, v = make_qkv(6, key_length=9)
    key_mask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    core = make_core(HEADS, HEAD_DIM, 32)
    expected = core(q, k, v, key_mask)
    assert "key_features" not in core.start_cache(k, v, key_mask)  # kept only on request
    memory = core.start_cache(k, v, key_mask, need_weights=True)
    for t in range(q.size(2)):
        out, same_memory, weights = core.step(q[:, :, t : t + 1], memory, need_weights=True)
        assert same_memory is memory
        assert torch.allclose(out, expected[:, :, t : t + 1], atol=1e-5)
        # The weights are the ones actually used: they reproduce the output.
        assert torch.allclose(weights @ v, out, atol=1e-5)
        assert torch.equal(weights[1, ..., 5:], torch.zeros_like(weights[1, ..., 5:]))
    full = core.attention_weights(q, k, key_mask)
    assert torch.allclose(full[:, :, -1:], weights, atol=1e-6)


@pytest.mark.parametrize("gated", [False, True])
def test_attention_weights_reproduce_causal_output(gated):
    q, k, v = make_qkv(20)
    core = make_core(HEADS, HEAD_DIM, 32, gated=gated, chunk_size=8)
    weights = core.attention_weights(q, k, causal=True)
    assert torch.equal(weights.triu(1), torch.zeros_like(weights))
    assert torch.allclose(weights @ v, core(q, k, v, causal=True), atol=1e-5)


def test_reordered_caches_match_reordered_inputs():
    """Beam search: reordering a cache is the same as decoding the reordered batch."""
    rows = torch.tensor([1, 1, 0])

    def select(*tensors):
        return [x.index_select(0, rows) for x in tensors]

    q, k, v = make_qkv(6)
    core = make_core(HEADS, HEAD_DIM, 32, gated=True)
    _, cache = run_steps(core, q[:, :, :5], k[:, :, :5], v[:, :, :5])
    reordered = {name: tensor.index_select(0, rows) for name, tensor in cache.items()}
    out, _ = run_steps(core, *select(q[:, :, 5:], k[:, :, 5:], v[:, :, 5:]), cache=reordered)
    expected, _ = run_steps(core, *select(q, k, v))
    assert torch.allclose(out, expected[:, :, 5:], atol=1e-6)
    assert not torch.allclose(out[0], out[2], atol=1e-3)  # the rows really differ

    memory = core.start_cache(k, v, need_weights=True)
    reordered = {name: tensor.index_select(0, rows) for name, tensor in memory.items()}
    (q_rows,) = select(q[:, :, :1])
    out, _, weights = core.step(q_rows, reordered, need_weights=True)
    expected, _, expected_weights = core.step(
        q_rows, core.start_cache(*select(k, v), need_weights=True), need_weights=True
    )
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(weights, expected_weights, atol=1e-6)


# --- random projection ---------------------------------------------------------------------


def test_fixed_projection_is_kept_and_saved():
    q, k, v = make_qkv(8)
    core = make_core(HEADS, HEAD_DIM, 16, redraw="fixed")
    projection = core.projection
    for _ in range(3):
        core(q, k, v).sum().backward()
    assert core.projection is projection
    assert "projection" in core.state_dict()
    restored = make_core(HEADS, HEAD_DIM, 16)
    assert not torch.equal(restored.projection, projection)
    restored.load_state_dict(core.state_dict())
    assert torch.equal(restored(q, k, v), core(q, k, v))


def test_every_step_redraws_in_training_only():
    q, k, v = make_qkv(8)
    core = make_core(HEADS, HEAD_DIM, 16, redraw="every_step", gated=True)
    first = core.projection
    output = core(q, k, v, causal=True)
    second = core.projection
    core(q, k, v, causal=True)
    assert not torch.equal(first, second)
    assert not torch.equal(second, core.projection)
    output.sum().backward()  # the graph still holds the projection it was built with

    core.eval()
    frozen = core.projection
    core(q, k, v, causal=True)
    run_steps(core, q, k, v)
    assert core.projection is frozen


def test_a_loaded_core_redraws_on_the_saved_schedule():
    """With ``redraw: 3`` a core redraws after calls 3, 6, 9...; one loaded from a state saved
    after call 4 must redraw after its 2nd call (call 6), as the uninterrupted one does, not
    after its 3rd (the count is kept on the host too, and must come from the state dict)."""
    q, k, v = make_qkv(8)

    def redraws(core: RandomFeatureAttention, calls: int) -> list[bool]:
        changed = []
        for _ in range(calls):
            before = core.projection
            core(q, k, v)
            changed.append(core.projection is not before)
        return changed

    uninterrupted = make_core(HEADS, HEAD_DIM, 16, redraw=3)
    assert redraws(uninterrupted, 4) == [False, False, True, False]
    resumed = make_core(HEADS, HEAD_DIM, 16, redraw=3)
    resumed.load_state_dict(uninterrupted.state_dict())
    assert redraws(resumed, 5) == redraws(uninterrupted, 5) == [False, True, False, False, True]


def test_projection_loads_across_redraw_settings():
    """A run resumed under the other redraw setting (the default became every_step): the
    projection carries over; the redraw counter starts at 0, or is dropped."""
    fixed = make_core(HEADS, HEAD_DIM, 16, redraw="fixed")
    redrawn = make_core(HEADS, HEAD_DIM, 16, redraw="every_step")
    redrawn.load_state_dict(fixed.state_dict())
    assert torch.equal(redrawn.projection, fixed.projection) and redrawn.train_calls == 0
    redrawn.train_calls.fill_(7)
    fixed.load_state_dict(redrawn.state_dict())
    assert "train_calls" not in fixed.state_dict()


def test_a_training_call_uses_the_projection_held_when_it_starts():
    """DistributedDataParallel broadcasts rank 0's buffers before each forward call: a
    projection drawn during a call would differ between ranks (each has its own seed)."""
    q, k, v = make_qkv(8)
    core = make_core(HEADS, HEAD_DIM, 16, redraw=2)
    fixed = make_core(HEADS, HEAD_DIM, 16, redraw="fixed")
    for _ in range(4):
        fixed.projection = core.projection.clone()
        torch.testing.assert_close(core(q, k, v), fixed(q, k, v), rtol=0, atol=0)


def test_redraw_every_n_steps_is_deterministic():
    def projections_seen(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        core = make_core(HEADS, HEAD_DIM, 16, redraw=3)
        seen = []
        for _ in range(6):
            core(*make_qkv(4))
            seen.append(core.projection)
        return seen

    seen = projections_seen(seed=1)
    changed = [not torch.equal(a, b) for a, b in zip(seen, seen[1:], strict=False)]
    assert changed == [False, True, False, False, True]
    assert all(torch.equal(a, b) for a, b in zip(seen, projections_seen(seed=1), strict=True))


# --- training and numerical safety ---------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_gradients_reach_every_parameter(causal):
    q, k, v = (x.requires_grad_() for x in make_qkv(20))
    core = make_core(HEADS, HEAD_DIM, 16, gated=causal, chunk_size=8)
    core(q, k, v, causal=causal).pow(2).sum().backward()
    named = dict(core.named_parameters()) | {"q": q, "k": k, "v": v}
    assert set(named) >= {"log_sigma", "q", "k", "v"}
    if causal:
        assert set(named) >= {"gate_weight", "gate_bias"}
    for name, tensor in named.items():
        assert tensor.grad is not None, name
        assert torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


def test_denominator_floor_bounds_outputs_of_unreliable_estimates():
    # Two features: many estimates phi(q).z are ~0 or negative.
    q, k, v = make_qkv(30)
    eps, sigma = 1e-2, 1.5
    core = make_core(HEADS, HEAD_DIM, 2, sigma=sigma, denominator_eps=eps)
    # The floor is eps times the kernel of an orthogonal key, exp(-sigma^2) with one sigma.
    orthogonal_kernel = torch.exp(torch.tensor(-(sigma**2)))
    for causal in (False, True):
        row_sums = core.attention_weights(q, k, causal=causal).sum(dim=-1)
        assert (row_sums < 0.99).any()  # the floor was needed and used
        out = core(q, k, v, causal=causal)
        assert torch.isfinite(out).all()
        assert out.abs().max() <= v.abs().max() / (eps * orthogonal_kernel) * (1 + 1e-5)


@pytest.mark.parametrize("gated", [False, True])
def test_denominator_floor_is_the_same_in_parallel_and_recurrent_forms(gated):
    q, k, v = make_qkv(30)
    core = make_core(HEADS, HEAD_DIM, 2, sigma=1.5, gated=gated, chunk_size=8)
    with torch.no_grad():
        assert (core.attention_weights(q, k, causal=True).sum(dim=-1) < 0.99).any()
        parallel = core(q, k, v, causal=True)
        recurrent, _ = run_steps(core, q, k, v)
    assert torch.allclose(parallel, recurrent, rtol=1e-4, atol=1e-4)


LONG = 4096  # tokens in the large-sigma tests


def strongly_gated(core: RandomFeatureAttention) -> RandomFeatureAttention:
    """Gates spread from ~0 (forget at once) to ~1 (keep all) across keys."""
    with torch.no_grad():
        core.gate_weight.mul_(8.0)
        core.gate_bias.fill_(2.0)
    return core


def exact_causal_kernel_weights(core, q, k, kernel) -> torch.Tensor:
    """Float64 causal weights ``write_i decay_ti kernel(x_t, y_i)`` before normalising, for
    the scaled inputs of ``core`` (gated or not), as plain quadratic products."""
    sigma = core.log_sigma.double().exp()
    x, y = (F.normalize(t.double(), dim=-1) * sigma for t in (q, k))
    weights = kernel(x, y).tril()
    if core.gated:
        logits = torch.einsum("bhtd,hd->bht", k.double(), core.gate_weight.double())
        logits = logits + core.gate_bias.double()[:, None]
        gated = F.logsigmoid(logits).cumsum(dim=-1)
        decay = (gated.unsqueeze(-1) - gated.unsqueeze(-2)).tril().exp().tril()
        weights = weights * decay * torch.sigmoid(-logits).unsqueeze(-2)
    return weights


@pytest.mark.parametrize("gated", [False, True])
def test_relative_floor_leaves_exact_estimates_alone_at_large_sigma(gated):
    """Sigma 3, 4096 unrelated keys: the exact Gaussian-kernel denominator is ~1e-3 of the
    key weight, below the absolute floor (0.01 of it), which would bias exact outputs; the
    relative floor (0.1 of an orthogonal key's kernel, exp(-9)) stays below it."""
    q, k, _ = (x[:, :1] for x in make_qkv(LONG))
    options = {"sigma": 3.0, "learn_sigma": False, "gated": gated}
    relative = make_core(1, HEAD_DIM, 32, **options)
    absolute = make_core(1, HEAD_DIM, 32, denominator_floor="absolute", **options)
    if gated:
        absolute.load_state_dict(strongly_gated(relative).state_dict())

    def gaussian(x, y):
        return torch.exp(-(torch.cdist(x, y) ** 2) / 2)

    def ones(x, y):
        return x.new_ones(x.size(-2), y.size(-2))

    with torch.no_grad():
        exact = exact_causal_kernel_weights(relative, q, k, gaussian).sum(-1, keepdim=True)
        # the key weight up to each position: t + 1, or 1 - prod g with gates
        mass = exact_causal_kernel_weights(relative, q, k, ones).sum(-1, keepdim=True)
        floors = [
            core.denominator_eps * mass * core._query_features(q)[1].double().exp()
            for core in (relative, absolute)
        ]
    binds = [(floor > exact).float().mean().item() for floor in floors]
    # Relative: nowhere without gates. With strong gates, which leave a key or two in view,
    # where those point away from the query (their kernel below 0.1 of an orthogonal key's,
    # at any sigma: cos < -0.26 at sigma 3), 6 % of the positions here. Absolute: most.
    assert binds[0] < (0.1 if gated else 1e-9)
    assert binds[1] > 0.5  # the bias the relative floor removes


@pytest.mark.parametrize(
    ("feature_map", "sigma"), [("positive", 3.0), ("positive", 10.0), ("arccos", 3.0)]
)
@pytest.mark.parametrize("gated", [False, True])
def test_nonnegative_features_stay_exact_at_large_sigma_over_long_sequences(
    feature_map, sigma, gated
):
    """4096 tokens, strong gates: float32 outputs (parallel and recurrent) equal the same
    estimator in float64 without any floor. Without a stabiliser, positive features
    exp(w.x - |x|^2) underflow to 0 at sigma 10 (exp(-100)), and so would the outputs."""
    q, k, v = (x[:, :1] for x in make_qkv(LONG))
    core = make_core(1, HEAD_DIM, 32, feature_map, sigma=sigma, learn_sigma=False, gated=gated)
    if gated:
        strongly_gated(core)
    projection = core.projection.double()

    def estimate(x, y):
        return random_features(x, projection, feature_map) @ random_features(
            y, projection, feature_map
        ).transpose(-1, -2)

    with torch.no_grad():
        weights = exact_causal_kernel_weights(core, q, k, estimate)
        expected = (weights / weights.sum(dim=-1, keepdim=True)) @ v.double()
        parallel = core(q, k, v, causal=True)
        recurrent, _ = run_steps(core, q[:, :, :300], k[:, :, :300], v[:, :, :300])
    torch.testing.assert_close(parallel.double(), expected, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(recurrent, parallel[:, :, :300], atol=2e-4, rtol=1e-3)


def test_positive_features_give_nonnegative_weights_summing_to_one():
    q, k, v = make_qkv(15)
    core = make_core(HEADS, HEAD_DIM, 8, "positive", sigma=2.0)
    for causal in (False, True):
        weights = core.attention_weights(q, k, causal=causal)
        assert (weights >= 0).all()
        assert torch.allclose(weights.sum(dim=-1), torch.ones(()), atol=1e-5)


def test_half_precision_inputs_are_computed_in_float32():
    q, k, v = (x.bfloat16() for x in make_qkv(200))
    core = make_core(HEADS, HEAD_DIM, 32, gated=True, sigma=2.0)
    expected = core(q.float(), k.float(), v.float(), causal=True)
    out = core(q, k, v, causal=True)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), expected, rtol=1e-2, atol=1e-2)  # output rounding only
    _, cache, _ = core.step(
        q[:, :, :1], core.start_cache(k[:, :, :0], v[:, :, :0]), k[:, :, :1], v[:, :, :1]
    )
    assert cache["kv"].dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(core(q.float(), k.float(), v.float(), causal=True), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"redraw": "sometimes"}, "redraw"),
        ({"redraw": 0}, "redraw"),  # the config's bound, not a second one
        ({"feature_map": "relu"}, "feature_map"),
        ({"num_features": 0}, "num_features"),
        ({"sigma": 0.0}, "sigma"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_options_are_refused_by_name(kwargs, message):
    options = {"heads": HEADS, "head_dim": HEAD_DIM, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_core(**options)


def test_bad_inputs_are_refused():
    q, k, v = make_qkv(4, key_length=6)
    core = make_core(HEADS, HEAD_DIM, 8)
    with pytest.raises(ValueError, match="key_mask"):
        core(q, k, v, torch.ones(BATCH, 6))  # not bool
    with pytest.raises(ValueError, match="q_len == k_len"):
        core(q, k, v, causal=True)
    with pytest.raises(ValueError, match=r"\(batch, heads, 1, head_dim\)"):
        core.step(q, core.start_cache(k, v))
    with pytest.raises(ValueError, match="both k and v"):
        core.step(q[:, :, :1], core.start_cache(k, v), k=k[:, :, :1])
    gated = make_core(HEADS, HEAD_DIM, 8, gated=True)
    with pytest.raises(ValueError, match="causal=True"):
        gated(q, k, v)
    _, cache = run_steps(core, q, q, q)
    with pytest.raises(ValueError, match="need_weights"):
        core.step(q[:, :, :1], cache, need_weights=True)
