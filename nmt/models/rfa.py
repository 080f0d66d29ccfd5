"""Random Feature Attention (Peng et al., "Random Feature Attention", ICLR 2021).

Softmax attention weighs value ``v_i`` by ``exp(q.k_i) / sum_j exp(q.k_j)``, which costs
``T_q x T_k``. RFA replaces the kernel ``exp(q.k)`` by a dot product of random features,
``phi(q).phi(k)``, so the sums over keys factor out and are computed once::

    out = phi(q)^T S / phi(q)^T z,    S = sum_i phi(k_i) v_i^T,    z = sum_i phi(k_i)

Time and memory are linear in length, and causal attention becomes a recurrence over a
constant-size state ``(S, z)``, optionally gated: ``S_t = g_t S_{t-1} + (1 - g_t) phi(k_t) v_t^T``.
See ``docs/rfa.md`` for the derivation, the options and the numerical choices.

:class:`RandomFeatureAttention` is an attention *core* (an ``AttentionCore`` of
``nmt/models/attention.py``): it works between the query/key/value projections and the output
projection of multi-head attention, and the Transformer selects it per attention type with
``model.transformer.{encoder,decoder,cross}_attention: rfa``. The contract:

- ``q``, ``k``, ``v`` are ``(batch, heads, length, head_dim)``; the output is
  ``(batch, heads, q_len, head_dim)``.
- ``key_mask`` is ``(batch, k_len)`` bool, True at real keys (as ``base.padding_mask`` makes);
  padding keys contribute nothing.
- ``forward(q, k, v, key_mask, causal)`` attends with whole sequences; ``causal=True`` (needs
  ``q_len == k_len``) lets position t see keys ``<= t``.
- ``start_cache(k, v, key_mask)`` summarises keys known up front: the encoder memory for
  cross-attention (then each ``step`` costs O(1) in source length), or an empty prefix
  ``(batch, heads, 0, head_dim)`` for self-attention.
- ``step(q, cache, k, v, need_weights)`` reads one query position; self-attention passes the
  new ``k``/``v``, which are first added to the state. Returns ``(out, new_cache, weights)``.
- A cache is a dict of batch-first tensors, so beam search reorders it with
  ``index_select(0, indices)`` on every entry (``attention.reorder_cache``).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import FeatureMap, RFAConfig
from nmt.models.attention import AttentionCore, Cache

# Default denominator floors by the config's denominator_floor (see
# RandomFeatureAttention._safe_denominator). Trig estimates can be ~0 or negative: relative,
# 0.1 of an orthogonal key's kernel (0.037 at sigma = 1; 0.0105 at sigma = 1.5, about the
# absolute 0.01, which keeps few features as accurate as it did: bench_attention.py).
# Positive and arc-cosine estimates are >= 0, so the weights are a convex combination
# whatever the denominator: relative, they are floored only against 0 / 0. (At large sigma a
# finite sample of positive features underestimates the kernel by orders of magnitude, so
# any floor in kernel units would bind.)
DEFAULT_DENOMINATOR_EPS = {
    "relative": {"trig": 1e-1, "positive": 0.0, "arccos": 0.0},
    "absolute": {"trig": 1e-2, "positive": 1e-6, "arccos": 1e-6},
}
HALF_PRECISION = (torch.float16, torch.bfloat16)
Method = TypeVar("Method", bound=Callable)


def full_precision(method: Method) -> Method:
    """Run ``method`` in float32 with autocast off when given 16-bit tensors.

    Sines of large angles and running sums over thousands of keys lose too much in 16 bits.
    Tensors returned (not caches) come back in the input dtype; caches stay float32.
    """

    def upcast(x):
        return x.float() if isinstance(x, Tensor) and x.dtype in HALF_PRECISION else x

    @functools.wraps(method)
    def wrapper(self, first: Tensor, *args, **kwargs):
        # Devices without autocast (the tests' "meta") have none to turn off.
        device_type = first.device.type
        autocast = torch.amp.is_autocast_available(device_type)
        with torch.autocast(device_type, enabled=False) if autocast else contextlib.nullcontext():
            result = method(
                self, upcast(first), *map(upcast, args), **{n: upcast(a) for n, a in kwargs.items()}
            )
        if first.dtype not in HALF_PRECISION:
            return result
        if isinstance(result, Tensor):
            return result.to(first.dtype)
        if isinstance(result, tuple):
            return tuple(x.to(first.dtype) if isinstance(x, Tensor) else x for x in result)
        return result

    return wrapper


def random_features(x: Tensor, projection: Tensor, feature_map: FeatureMap = "trig") -> Tensor:
    """``phi(x)`` whose dot products ``phi(x) . phi(y)`` estimate a kernel without bias.

    ``x`` is ``(batch, heads, length, head_dim)``; ``projection`` is ``(heads, num_features,
    head_dim)`` of standard normal rows ``w``. Returns ``(batch, heads, length, 2 *
    num_features)``:

    - ``trig``: ``sqrt(1/D) [sin(w.x), cos(w.x)]``, the paper's random Fourier features, for
      the Gaussian kernel ``exp(-|x - y|^2 / 2)``; ``|phi(x)| = 1``, but an estimate
      ``phi(x).phi(y)`` can be negative.
    - ``positive``: ``sqrt(1/2D) exp(-|x|^2) [exp(w.x), exp(-w.x)]``, positive features
      (Choromanski et al., 2021) rescaled to the same Gaussian kernel: estimates are > 0.
    - ``arccos``: ``sqrt(1/D) [relu(w.x), relu(-w.x)]``, the paper's ``phi_arccos`` with
      antithetic pairs, for the arc-cosine kernel of degree 1 (Cho and Saul, 2009),
      ``|x| |y| (sin t + (pi - t) cos t) / pi`` at angle ``t``: estimates are >= 0.

    The core uses this definition with stabilisers that cancel in its ratios (see
    ``RandomFeatureAttention._query_features``).
    """
    angles = torch.einsum("bhtd,hfd->bhtf", x, projection)
    if feature_map == "positive":
        return _exp_features(angles, -x.pow(2).sum(dim=-1, keepdim=True))
    num_features = projection.size(1)
    if feature_map == "trig":
        features = torch.cat([angles.sin(), angles.cos()], dim=-1)
    else:
        features = torch.cat([angles.relu(), (-angles).relu()], dim=-1)
    # In place: autograd keeps no copy of cat's output, so this saves a tensor of features.
    return features.mul_(num_features**-0.5)


def _exp_features(angles: Tensor, log_shift: Tensor) -> Tensor:
    """``sqrt(1/2D) exp(log_shift) [exp(w.x), exp(-w.x)]`` from the ``angles`` ``w.x``."""
    features = torch.cat([(angles + log_shift).exp(), (log_shift - angles).exp()], dim=-1)
    return features.mul_((2 * angles.size(-1)) ** -0.5)


def causal_linear_attention(
    query_features: Tensor,
    key_features: Tensor,
    values: Tensor,
    log_gates: Tensor | None,
    chunk_size: int,
) -> Tensor:
    """``out_t = query_features_t^T S_t`` for every t, where ``S_t = g_t S_{t-1} + key_features_t
    values_t^T`` and ``S_{-1} = 0`` (``g = 1`` when ``log_gates`` is None).

    ``query_features``, ``key_features``: ``(batch, heads, T, F)``; ``values``: ``(batch, heads,
    T, E)``; ``log_gates``: ``(batch, heads, T)``. Returns ``(batch, heads, T, E)``.

    A prefix sum over chunks: inside a chunk of ``chunk_size`` positions the sum is a masked
    ``C x C`` product; across chunks a running state carries the rest. This never materialises
    the ``(T, F, E)`` per-position states of a plain ``cumsum``, so memory is O(T (C + F + E)).
    Gate products are differences of log-gate cumsums within one chunk, all ``<= 0``, so they
    cannot overflow however long the sequence.
    """
    length = query_features.size(2)
    if length == 0:
        return values.clone()
    # A sequence shorter than a chunk is one chunk of its own length: padding it to
    # chunk_size would multiply the work and memory of short sentences (NMT's usual case).
    chunk_size = min(chunk_size, length)
    padding = -length % chunk_size
    if padding:
        # Padded positions have zero features and a gate of 1: they change nothing.
        query_features = F.pad(query_features, (0, 0, 0, padding))
        key_features = F.pad(key_features, (0, 0, 0, padding))
        values = F.pad(values, (0, 0, 0, padding))
        log_gates = None if log_gates is None else F.pad(log_gates, (0, padding))
    chunks = (length + padding) // chunk_size
    q = query_features.unflatten(2, (chunks, chunk_size))  # (B, H, N, C, F)
    k = key_features.unflatten(2, (chunks, chunk_size))
    v = values.unflatten(2, (chunks, chunk_size))  # (B, H, N, C, E)
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()

    if log_gates is None:
        within_chunk = causal.to(q.dtype)
        q_from_start, k_to_end, chunk_gate = q, k, None
    else:
        # gated[t] = log prod of the gates from the chunk start up to and including t.
        gated = log_gates.unflatten(2, (chunks, chunk_size)).cumsum(dim=-1)  # (B, H, N, C)
        # Key i reaches query t (i <= t) scaled by the gates after it: prod_{i<j<=t} g_j.
        decay = gated.unsqueeze(-1) - gated.unsqueeze(-2)
        within_chunk = decay.masked_fill(~causal, float("-inf")).exp()  # (B, H, N, C, C)
        q_from_start = q * gated.exp().unsqueeze(-1)  # state from before the chunk decays too
        k_to_end = k * (gated[..., -1:] - gated).exp().unsqueeze(-1)
        chunk_gate = gated[..., -1].exp()  # (B, H, N)

    inside = ((q @ k.transpose(-1, -2)) * within_chunk) @ v
    chunk_sums = k_to_end.transpose(-1, -2) @ v  # (B, H, N, F, E)
    # unbind, not indexing: the backward of chunk_sums[:, :, i] would write a full-size
    # gradient per chunk, quadratic in the number of chunks.
    chunk_gates = [1.0] * chunks if chunk_gate is None else chunk_gate[..., None, None].unbind(2)
    state = chunk_sums.new_zeros(chunk_sums[:, :, 0].shape)
    states_before = []
    for chunk_sum, gate in zip(chunk_sums.unbind(2), chunk_gates, strict=True):
        states_before.append(state)
        state = gate * state + chunk_sum
    before = q_from_start @ torch.stack(states_before, dim=2)
    return (inside + before).flatten(2, 3)[:, :, :length]


class RandomFeatureAttention(AttentionCore):
    """Random feature attention core for ``heads`` heads of size ``head_dim``.

    ``config`` (:class:`~nmt.config.RFAConfig`, the ``model.transformer.rfa`` section):

    - ``num_features``: random vectors per head (the feature dimension is twice that).
    - ``feature_map``: ``trig`` or ``arccos`` (the paper's two), or ``positive`` (see
      :func:`random_features`).
    - ``sigma``, ``learn_sigma``: queries and keys are l2-normalised per head and scaled by
      ``sigma`` per head and dimension (the paper's reparameterisation ``w = sigma * eps``),
      learned or fixed. For the Gaussian kernel (trig, positive) the weights are then
      ``softmax_i(x.y_i - |y_i|^2 / 2)`` with ``x = sigma * q^``, ``y_i = sigma * k_i^``:
      with one sigma per head ``|y_i|`` is the same for every key and this is
      ``softmax(sigma^2 q^.k^)``, sigma^2 the inverse temperature (docs/rfa.md).
    - ``gated``: the paper's gated recurrence for causal attention, gate
      ``g_t = sigmoid(w_h . k_t + b_h)`` from each head's (unnormalised) key.
    - ``redraw``: ``"every_step"`` (the default, the paper's setting), or an int N: draw a new
      projection every N forward calls in training mode (from the torch RNG), after the N-th
      call, for the calls that follow; ``"fixed"``: one random projection per model. The
      projection in use is saved in checkpoints. Eval mode, ``start_cache`` and ``step`` never
      redraw.

    Implementation settings, not in the config:

    - ``chunk_size``: positions per chunk of the parallel causal form.
    - ``denominator_eps``: floor of the mean kernel estimate, as a fraction of the kernel of
      a key orthogonal to the query (``denominator_floor: relative``, scale-free), or of
      the kernel's largest value (``absolute``); None picks :data:`DEFAULT_DENOMINATOR_EPS`.
    """

    def __init__(
        self,
        heads: int,
        head_dim: int,
        config: RFAConfig | None = None,
        chunk_size: int = 64,
        denominator_eps: float | None = None,
    ) -> None:
        super().__init__()
        config = RFAConfig() if config is None else config
        config.validate()  # the one place its options are checked
        for name, value in [("heads", heads), ("head_dim", head_dim), ("chunk_size", chunk_size)]:
            _require(value >= 1, name, "an integer >= 1", value)
        feature_map, num_features = config.feature_map, config.num_features
        if denominator_eps is None:
            denominator_eps = DEFAULT_DENOMINATOR_EPS[config.denominator_floor][feature_map]
        _require(denominator_eps >= 0, "denominator_eps", "a number >= 0", denominator_eps)
        self.feature_map = feature_map
        self.chunk_size = chunk_size
        self.denominator_eps = denominator_eps
        self.relative_floor = config.denominator_floor == "relative"
        self.redraw_every = {"fixed": 0, "every_step": 1}.get(config.redraw, config.redraw)
        if self.redraw_every:
            # Training forward calls so far; a buffer, so that checkpoints keep it and a
            # resumed run redraws on the same schedule as an uninterrupted one.
            self.register_buffer("train_calls", torch.zeros((), dtype=torch.long))
        # The same count on the host (set from the state dict on load), so that deciding to
        # redraw never waits for the GPU, as reading the buffer would at every call.
        self._host_train_calls = 0

        self.register_buffer("projection", torch.randn(heads, num_features, head_dim))
        log_sigma = torch.full((heads, 1, head_dim), math.log(config.sigma))
        if config.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        if config.gated:
            self.gate_weight = nn.Parameter(torch.empty(heads, head_dim).normal_(0, head_dim**-0.5))
            self.gate_bias = nn.Parameter(torch.zeros(heads))
        else:
            self.gate_weight = self.gate_bias = None

    @property
    def gated(self) -> bool:
        return self.gate_weight is not None

    def extra_repr(self) -> str:
        heads, num_features, head_dim = self.projection.shape
        return (
            f"heads={heads}, head_dim={head_dim}, num_features={num_features}, "
            f"feature_map={self.feature_map}, gated={self.gated}, redraw_every={self.redraw_every}"
        )

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # A run resumed with another redraw setting (the default became every_step): the
        # counter starts from 0, or is dropped. The projection itself is always loaded.
        counter = prefix + "train_calls"
        if self.redraw_every:
            state_dict.setdefault(counter, torch.zeros((), dtype=torch.long))
            self._host_train_calls = int(state_dict[counter])
        else:
            state_dict.pop(counter, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- whole sequences ---------------------------------------------------------------------

    @full_precision
    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Attend with all positions at once; ``causal``: query t sees keys ``<= t`` only."""
        self._check(q, k, v, key_mask, causal)
        out = self._attend(q, k, v, key_mask, causal)
        # A redraw comes after the call that completes the count, for the calls after it:
        # the projection a call uses is the one the module holds when the call starts, which
        # DistributedDataParallel broadcasts from rank 0, so all ranks use the same one.
        if self.training and self.redraw_every and self._count_train_call():
            self.redraw_projection()
        return out

    def _attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, causal: bool
    ) -> Tensor:
        query_features, log_unit = self._query_features(q)
        if not causal:
            memory = self.start_cache(k, v, key_mask)
            return self._read(query_features, log_unit, memory)[0]
        write, log_gates = self._write_weights(k, key_mask)
        sums = causal_linear_attention(
            query_features,
            self._key_features(k),
            _weighted_values(v, write),
            log_gates,
            self.chunk_size,
        )
        return sums[..., :-1] / self._safe_denominator(
            sums[..., -1:], _causal_mass(write, log_gates), log_unit
        )

    @full_precision
    def attention_weights(
        self, q: Tensor, k: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Normalised weights ``(batch, heads, q_len, k_len)``: ``phi(q).phi(k_i) / sum_j``.

        For plots: quadratic in length. Unlike softmax weights, some can be negative (trig
        features), and rows sum to less than 1 where the denominator floor applies.
        """
        self._check(q, k, k, key_mask, causal)
        write, log_gates = self._write_weights(k, key_mask)
        query_features, log_unit = self._query_features(q)
        kernel = query_features @ (self._key_features(k) * write.unsqueeze(-1)).transpose(-1, -2)
        if causal:
            length = q.size(2)
            earlier = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
            if log_gates is None:
                kernel = kernel * earlier
            else:
                gated = log_gates.cumsum(dim=-1)
                decay = gated.unsqueeze(-1) - gated.unsqueeze(-2)
                kernel = kernel * decay.masked_fill(~earlier, float("-inf")).exp()
            mass = _causal_mass(write, log_gates)
        else:
            mass = write.sum(dim=-1)[..., None, None]
        return kernel / self._safe_denominator(kernel.sum(dim=-1, keepdim=True), mass, log_unit)

    # --- incremental decoding ----------------------------------------------------------------

    @full_precision
    def start_cache(
        self, k: Tensor, v: Tensor, key_mask: Tensor | None = None, need_weights: bool = False
    ) -> Cache:
        """The state after reading keys ``k`` and values ``v`` ``(batch, heads, k_len, *)``.

        Entries: ``kv`` ``(batch, heads, F, head_dim + 1)``, the sum ``S`` with ``z`` as its
        last column; ``mass`` ``(batch, heads, 1, 1)``, the total weight of the keys (their
        number without gating); only with ``need_weights``, ``key_features`` ``(batch, heads,
        k_len, F)`` for attention weights. Without it the cache is O(1) in ``k_len``, and so is
        beam search's reordering of it.
        """
        _check_shapes(k, k, v, key_mask, causal=False)
        write, log_gates = self._write_weights(k, key_mask)
        if log_gates is not None:
            # What each key is worth after the gates of all the keys after it.
            gated = log_gates.cumsum(dim=-1)
            write = write * (gated[..., -1:] - gated).exp()
        key_features = self._key_features(k)
        cache = {
            "kv": key_features.transpose(-1, -2) @ _weighted_values(v, write),
            "mass": write.sum(dim=-1)[..., None, None],
        }
        if need_weights:
            cache["key_features"] = key_features * write.unsqueeze(-1)
        return cache

    @full_precision
    def step(
        self,
        q: Tensor,
        cache: Cache,
        k: Tensor | None = None,
        v: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Cache, Tensor | None]:
        """One query position ``(batch, heads, 1, head_dim)``; with ``k`` and ``v`` (causal
        self-attention) they are added to the state first.

        Returns the output ``(batch, heads, 1, head_dim)``, the new cache and, with
        ``need_weights``, the weights ``(batch, heads, 1, k_len)`` over the cached keys
        (cross-attention only: the recurrent state keeps no per-key information).
        """
        if q.dim() != 4 or q.size(2) != 1:
            raise ValueError(
                f"step: expected q of shape (batch, heads, 1, head_dim), got {tuple(q.shape)}"
            )
        if (k is None) != (v is None):
            raise ValueError("step: pass both k and v (self-attention) or neither")
        if k is not None:
            _check_shapes(q, k, v, None, causal=True)
            key_update = self._key_features(k).transpose(-1, -2) @ _append_ones(v)  # (B, H, F, E)
            if self.gated:
                logits = self._gate_logits(k).unsqueeze(-1)  # (B, H, 1, 1)
                gate, write = torch.sigmoid(logits), torch.sigmoid(-logits)
                kv = gate * cache["kv"] + write * key_update
                mass = gate * cache["mass"] + write
            else:
                kv, mass = cache["kv"] + key_update, cache["mass"] + 1
            cache = {"kv": kv, "mass": mass}  # key features of earlier steps are not kept
        query_features, log_unit = self._query_features(q)
        out, denominator = self._read(query_features, log_unit, cache)
        weights = None
        if need_weights:
            if "key_features" not in cache:
                raise ValueError(
                    "step: attention weights need a cache from start_cache(need_weights=True)"
                    " that no step has added keys to"
                )
            weights = query_features @ cache["key_features"].transpose(-1, -2) / denominator
        return out, cache, weights

    # --- pieces ------------------------------------------------------------------------------

    def _check(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, causal: bool
    ) -> None:
        _check_shapes(q, k, v, key_mask, causal)
        if self.gated and not causal:
            raise ValueError("gated random feature attention is a recurrence: needs causal=True")

    def redraw_projection(self) -> None:
        # A new tensor, not an in-place copy: autograd may still hold the old one.
        self.projection = torch.randn_like(self.projection)

    def _count_train_call(self) -> bool:
        """Count a training forward call; True when the projection is due to be redrawn."""
        self._host_train_calls += 1
        self.train_calls.add_(1)
        return self._host_train_calls % self.redraw_every == 0

    def _scaled(self, x: Tensor) -> Tensor:
        """``sigma * x / |x|`` (per head and dimension)."""
        return F.normalize(x, dim=-1) * self.log_sigma.exp()

    def _mean_sigma_squared(self) -> Tensor:
        """``s^2``, the mean of ``sigma^2`` over a head's dimensions, ``(heads, 1, 1)``: the
        squared norm of a scaled query or key, exactly with one sigma per head."""
        return (2 * self.log_sigma).exp().mean(dim=-1, keepdim=True)

    def _key_features(self, k: Tensor) -> Tensor:
        y = self._scaled(k)
        if self.feature_map != "positive":
            return random_features(y, self.projection, self.feature_map)
        # exp(-|y|^2) underflows once sigma grows: exp(s^2 - |y|^2) instead, the same up to
        # the per-head constant exp(s^2), which cancels between numerator and denominator.
        angles = torch.einsum("bhtd,hfd->bhtf", y, self.projection)
        return _exp_features(angles, self._mean_sigma_squared() - y.pow(2).sum(-1, keepdim=True))

    def _query_features(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Features of the queries and, per query, the log of the unit of the denominator
        floor in the kernel estimates of these features (:meth:`_safe_denominator`).

        The features are :func:`random_features` times a per-query factor, which cancels in
        each query's weights: for ``positive``, ``exp(|x|^2 - m)`` with ``m`` the query's
        largest ``|w.x|``, so that its largest feature is 1 however large sigma grows; the
        key features (:meth:`_key_features`) add a per-head factor ``exp(s^2)``. The unit is
        the product of those factors and, for a relative floor, the kernel of a key
        orthogonal to the query with ``|y|^2 = s^2``.
        """
        x = self._scaled(q)
        squared_norm, mean_sigma_squared = (
            x.pow(2).sum(-1, keepdim=True),
            self._mean_sigma_squared(),
        )
        if self.feature_map == "positive":
            angles = torch.einsum("bhtd,hfd->bhtf", x, self.projection)
            shift = angles.detach().abs().amax(dim=-1, keepdim=True)
            features = _exp_features(angles, -shift)
            log_unit = squared_norm + mean_sigma_squared - shift
        else:
            features = random_features(x, self.projection, self.feature_map)
            log_unit = torch.zeros_like(squared_norm)
        if not self.relative_floor:
            return features, log_unit
        if self.feature_map == "arccos":  # |x| s / pi (clamped: log(0) has no gradient)
            product = (squared_norm * mean_sigma_squared).clamp(min=torch.finfo(x.dtype).tiny)
            return features, log_unit + 0.5 * product.log() - math.log(math.pi)
        # Gaussian kernel: exp(-(|x|^2 + s^2) / 2)
        return features, log_unit - (squared_norm + mean_sigma_squared) / 2

    def _gate_logits(self, k: Tensor) -> Tensor:
        """``(batch, heads, length)``."""
        return torch.einsum("bhtd,hd->bht", k, self.gate_weight) + self.gate_bias[:, None]

    def _write_weights(self, k: Tensor, key_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """How much each key adds to the state, ``(batch, heads, k_len)``: ``1 - g_t`` (or 1),
        0 at padding; and the log gates, 0 at padding so that it leaves the state alone."""
        batch, heads, length, _ = k.shape
        keep = k.new_ones(batch, 1, length) if key_mask is None else key_mask[:, None].to(k.dtype)
        if not self.gated:
            return keep.expand(batch, heads, length), None
        logits = self._gate_logits(k)
        return torch.sigmoid(-logits) * keep, F.logsigmoid(logits) * keep

    def _read(
        self, query_features: Tensor, log_unit: Tensor, cache: Cache
    ) -> tuple[Tensor, Tensor]:
        """Output and (floored) denominator of queries against a state."""
        sums = query_features @ cache["kv"]
        denominator = self._safe_denominator(sums[..., -1:], cache["mass"], log_unit)
        return sums[..., :-1] / denominator, denominator

    def _safe_denominator(self, denominator: Tensor, mass: Tensor, log_unit: Tensor) -> Tensor:
        """Floor ``phi(q).z`` at ``eps * mass * exp(log_unit)``: with a relative floor, the
        mean kernel estimate is at least ``eps`` times the kernel of a key orthogonal to the
        query; with an absolute one, at least ``eps``.

        Trig features can make the estimate ~0 or negative. The floor keeps outputs finite
        (``|out| <= max|v| / (eps exp(log_unit))``, as ``|phi(q).phi(k)| <= 1``) and scales
        with the key weight, so it means the same with 5 keys or 5000, gated or not. The
        relative floor scales with the kernel too: the absolute one binds on exact estimates
        once sigma grows (the Gaussian kernel of orthogonal keys, ``exp(-sigma^2)``, is below
        0.01 from sigma = 2.1 on). ``log_unit`` is capped so that the floor stays finite. With
        ``eps = 0`` only a denominator of exactly 0 (every weight 0) is floored.
        """
        floor = self.denominator_eps * mass * log_unit.clamp(max=60.0).exp()
        return torch.maximum(denominator, floor.clamp(min=torch.finfo(mass.dtype).tiny))


def _append_ones(values: Tensor) -> Tensor:
    """``[v, 1]``: one product then yields both ``sum phi(k) v^T`` and ``z = sum phi(k)``."""
    return torch.cat([values, values.new_ones(*values.shape[:-1], 1)], dim=-1)


def _weighted_values(values: Tensor, write: Tensor) -> Tensor:
    """``write_i [v_i, 1]``: the weight of key i goes on its value, the narrower side of
    ``phi(k_i) [v_i, 1]^T``."""
    return _append_ones(values) * write.unsqueeze(-1)


def _causal_mass(write: Tensor, log_gates: Tensor | None) -> Tensor:
    """Total key weight seen by each position, ``(batch, heads, T, 1)``.

    Ungated: the number of real keys so far. Gated: ``sum_i (1 - g_i) prod_{i<j<=t} g_j``,
    which telescopes to ``1 - prod_{j<=t} g_j``.
    """
    if log_gates is None:
        return write.cumsum(dim=-1).unsqueeze(-1)
    return -torch.expm1(log_gates.cumsum(dim=-1)).unsqueeze(-1)


def _require(condition: bool, name: str, expected: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


def _check_shapes(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, causal: bool) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v: expected (batch, heads, length, head_dim), got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.size(3) != k.size(3):
        raise ValueError(
            f"q, k, v: shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} do not match"
        )
    if causal and q.size(2) != k.size(2):
        raise ValueError(f"causal attention needs q_len == k_len, got {q.size(2)} and {k.size(2)}")
    expected = (k.size(0), k.size(2))
    if key_mask is not None and (key_mask.dtype != torch.bool or key_mask.shape != expected):
        raise ValueError(
            f"key_mask: expected a bool tensor of shape (batch, k_len) = {expected}, "
            f"got {key_mask.dtype} {tuple(key_mask.shape)}"
        )
