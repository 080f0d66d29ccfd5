"""Attention, following the general attention model: score each key against the query, turn
the scores into an alignment with a softmax over the real (non-padding) keys, and return the
alignment-weighted average of the values.

The recurrent decoder uses one query per step and a pluggable :class:`Score`. The Transformer uses
:class:`MultiHeadAttention`, whose core computation (``softmax(QK^T / sqrt(d)) V`` for
:class:`SoftmaxAttention`) and incremental cache form one swappable :class:`AttentionCore`.
"""

from __future__ import annotations

import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import AttentionScore

# --- recurrent decoder: one query per step ---------------------------------------------------


class Score(nn.Module, ABC):
    """``score(q, k)`` of one query against every key.

    Keys go through :meth:`project_keys` once per sentence, so a decoder step only touches
    the query.
    """

    def project_keys(self, keys: Tensor) -> Tensor:
        return keys

    @abstractmethod
    def forward(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """``query (batch, query_dim)``, keys ``(batch, src_len, *)`` -> ``(batch, src_len)``."""


class AdditiveScore(Score):
    """Bahdanau et al. (2015): ``v^T tanh(W_q q + W_k k)``."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)

    def forward(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        hidden = torch.tanh(projected_keys + self.query_proj(query).unsqueeze(1))
        return self.v(hidden).squeeze(2)


class DotScore(Score):
    """Luong et al. (2015): ``q^T k``, divided by ``sqrt(d)`` when ``scaled``."""

    def __init__(self, scaled: bool = False) -> None:
        super().__init__()
        self.scaled = scaled

    def forward(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        scores = torch.bmm(projected_keys, query.unsqueeze(2)).squeeze(2)
        return scores / math.sqrt(query.size(-1)) if self.scaled else scores


class GeneralScore(Score):
    """Luong et al. (2015), bilinear: ``q^T W k``; ``W k`` is computed once per sentence.

    ``biased``: ``q^T W k + b^T k`` (a learned prior on keys, which a scalar bias would not
    be: it would cancel in the softmax); ``activation``: applied to the score, as in
    ``tanh(q^T W k + b^T k)`` (the "activated general" score).
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        biased: bool = False,
        activation: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)
        self.key_bias = nn.Linear(key_dim, 1, bias=False) if biased else None
        self.activation = activation

    def project_keys(self, keys: Tensor) -> Tensor:
        """``W k``, with ``b^T k`` as one more column when biased."""
        projected = self.key_proj(keys)
        if self.key_bias is None:
            return projected
        return torch.cat([projected, self.key_bias(keys)], dim=-1)

    def forward(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        if self.key_bias is None:
            scores = torch.bmm(projected_keys, query.unsqueeze(2)).squeeze(2)
        else:
            keys, bias = projected_keys[..., :-1], projected_keys[..., -1]
            scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2) + bias
        return scores if self.activation is None else self.activation(scores)


class CosineScore(Score):
    """Content-based addressing (Graves et al., 2014): ``beta cos(q, k)``.

    The cosine alone lies in [-1, 1], which leaves a softmax over ten keys nearly uniform;
    the sharpness ``beta`` (the key strength of the Neural Turing Machine, here one learned
    scalar) starts at ``sqrt(d)``, so that the scores of random vectors start with unit
    spread, as scaled dot-product scores do.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.log_beta = nn.Parameter(torch.tensor(0.5 * math.log(dim)))

    def project_keys(self, keys: Tensor) -> Tensor:
        return F.normalize(keys, dim=-1)

    def forward(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        cosines = torch.bmm(projected_keys, F.normalize(query, dim=-1).unsqueeze(2)).squeeze(2)
        return self.log_beta.exp() * cosines


# "none" is no score: the recurrent decoder then reads a fixed context (models/gru.py).
SCORES: tuple[str, ...] = typing.get_args(AttentionScore)
SAME_SIZE_SCORES = ("dot", "scaled_dot", "cosine")  # compare q and k directly


def make_score(name: str, query_dim: int, key_dim: int, hidden_dim: int) -> Score | None:
    """The score function called ``name`` (one of :data:`SCORES`); None for ``none``."""
    if name in SAME_SIZE_SCORES and query_dim != key_dim:
        raise ValueError(f"{name} attention needs query_dim == key_dim, got {query_dim, key_dim}")
    if name == "none":
        return None
    if name == "additive":
        return AdditiveScore(query_dim, key_dim, hidden_dim)
    if name in ("dot", "scaled_dot"):
        return DotScore(scaled=name == "scaled_dot")
    if name == "general":
        return GeneralScore(query_dim, key_dim)
    if name == "biased_general":
        return GeneralScore(query_dim, key_dim, biased=True)
    if name == "activated_general":
        return GeneralScore(query_dim, key_dim, biased=True, activation=torch.tanh)
    if name == "cosine":
        return CosineScore(query_dim)
    raise ValueError(f"unknown attention score {name!r}; expected one of {', '.join(SCORES)}")


def padding_bias(src_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``0`` at real positions and ``-inf`` on padding: added to scores, it masks the softmax.

    Built once per sentence, so each decoder step masks with one addition.
    """
    return torch.zeros(src_mask.shape, dtype=dtype, device=src_mask.device).masked_fill(
        ~src_mask, float("-inf")
    )


def attend(scores: Tensor, bias: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Alignment ``softmax(scores + bias)`` and context (its weighted average of ``values``).

    ``scores`` and ``bias`` are ``(batch, src_len)``, ``values`` ``(batch, src_len, dim)``.
    """
    weights = torch.softmax(scores + bias, dim=-1)
    context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
    return context, weights


# --- Transformer: multi-head attention with a swappable core --------------------------------

# A core's incremental cache: named tensors, batch first, so beam search reorders any core's
# cache the same way (see :func:`reorder_cache`).
Cache = dict[str, Tensor]


def reorder_cache(cache: Cache, indices: Tensor) -> Cache:
    return {name: tensor.index_select(0, indices) for name, tensor in cache.items()}


class AttentionCore(nn.Module, ABC):
    """What multi-head attention does between its input and output projections.

    Tensors are ``(batch, heads, length, head_dim)``; ``key_mask`` is ``(batch, k_len)``,
    True at real keys. An alternative (``RandomFeatureAttention`` in ``rfa.py``: linear
    attention with a fixed-size recurrent state) implements the same three methods with its
    own cache contents; ``transformer.make_attention_core`` picks one per attention type.
    """

    @abstractmethod
    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Attend with all positions at once; ``causal``: query i sees keys ``<= i`` only."""

    @abstractmethod
    def start_cache(
        self, k: Tensor, v: Tensor, key_mask: Tensor | None = None, need_weights: bool = False
    ) -> Cache:
        """A cache holding keys and values known up front (memory; or an empty prefix).

        ``need_weights``: the steps will ask for attention weights over these keys (a core
        that otherwise keeps no per-key state then keeps what the weights need).
        """

    @abstractmethod
    def step(
        self,
        q: Tensor,
        cache: Cache,
        k: Tensor | None = None,
        v: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Cache, Tensor | None]:
        """One query position: first append ``k``/``v`` (self-attention) to the cache.

        Returns the output ``(batch, heads, 1, head_dim)``, the new cache and, with
        ``need_weights``, the weights ``(batch, heads, 1, k_len)``.
        """

    @abstractmethod
    def attention_weights(
        self, q: Tensor, k: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """The weights ``forward`` uses, ``(batch, heads, q_len, k_len)``: for plots, off the
        fast path (quadratic in length)."""


class SoftmaxAttention(AttentionCore):
    """Scaled dot-product attention; the fused kernels of ``F.scaled_dot_product_attention``
    unless the weights themselves are asked for."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        if causal and key_mask is not None:
            raise ValueError("causal attention takes no key mask (padding sits after the end)")
        mask = None if key_mask is None else key_mask[:, None, None, :]
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal
        )

    def start_cache(
        self, k: Tensor, v: Tensor, key_mask: Tensor | None = None, need_weights: bool = False
    ) -> Cache:
        cache = {"keys": k, "values": v}
        if key_mask is not None:
            cache["key_mask"] = key_mask
        return cache

    def step(
        self,
        q: Tensor,
        cache: Cache,
        k: Tensor | None = None,
        v: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Cache, Tensor | None]:
        if k is not None:
            cache = {
                **cache,
                "keys": torch.cat([cache["keys"], k], dim=2),
                "values": torch.cat([cache["values"], v], dim=2),
            }
        key_mask = cache.get("key_mask")
        if not need_weights:
            return self.forward(q, cache["keys"], cache["values"], key_mask), cache, None
        weights = self.attention_weights(q, cache["keys"], key_mask)
        dropped = F.dropout(weights, self.dropout, self.training)
        return dropped @ cache["values"], cache, weights

    def attention_weights(
        self, q: Tensor, k: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        if causal:
            future = torch.ones(q.size(2), k.size(2), dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        return torch.softmax(scores, dim=-1)


class MultiHeadAttention(nn.Module):
    """Project queries, keys and values into ``heads`` subspaces, attend in each, recombine.

    Keys and values always come from the same input, so one matrix projects both: one larger
    matrix product instead of two, forward and backward.
    """

    def __init__(self, d_model: int, heads: int, core: AttentionCore) -> None:
        super().__init__()
        self.heads = heads  # a divisor of d_model (checked by the config)
        self.head_dim = d_model // heads
        self.query_proj = nn.Linear(d_model, d_model)
        self.key_value_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.core = core

    def _split(self, x: Tensor) -> Tensor:
        """``(batch, len, d_model)`` -> ``(batch, heads, len, head_dim)``."""
        return x.view(x.size(0), x.size(1), self.heads, self.head_dim).transpose(1, 2)

    def _merge(self, x: Tensor) -> Tensor:
        """``(batch, heads, len, head_dim)`` -> ``(batch, len, d_model)``."""
        return x.transpose(1, 2).reshape(x.size(0), x.size(2), self.heads * self.head_dim)

    def _keys_values(self, key_value: Tensor) -> tuple[Tensor, Tensor]:
        keys, values = self.key_value_proj(key_value).chunk(2, dim=-1)
        return self._split(keys), self._split(values)

    def forward(
        self, query: Tensor, key_value: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        q = self._split(self.query_proj(query))
        k, v = self._keys_values(key_value)
        return self.out_proj(self._merge(self.core(q, k, v, key_mask, causal)))

    def attention_weights(
        self, query: Tensor, key_value: Tensor, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Every head's weights in ``forward``, ``(batch, heads, q_len, k_len)`` (for plots)."""
        q = self._split(self.query_proj(query))
        k, _ = self._keys_values(key_value)
        return self.core.attention_weights(q, k, key_mask, causal)

    def memory_cache(
        self, memory: Tensor, memory_mask: Tensor, need_weights: bool = False
    ) -> Cache:
        """Cross-attention cache: the memory's keys and values, projected once per sentence
        (``need_weights``: the steps will ask for attention weights)."""
        return self.core.start_cache(*self._keys_values(memory), memory_mask, need_weights)

    def empty_cache(self, batch_size: int, like: Tensor) -> Cache:
        """Self-attention cache before the first step (``like``: dtype and device)."""
        empty = like.new_zeros(batch_size, self.heads, 0, self.head_dim)
        return self.core.start_cache(empty, empty)

    def step(
        self, query: Tensor, cache: Cache, new_key_value: Tensor | None = None, need_weights=False
    ) -> tuple[Tensor, Cache, Tensor | None]:
        """One position ``(batch, 1, d_model)``; self-attention passes it as ``new_key_value``.

        Returns the output, the new cache and (with ``need_weights``) the weights averaged
        over heads, ``(batch, k_len)``.
        """
        q = self._split(self.query_proj(query))
        k, v = (None, None) if new_key_value is None else self._keys_values(new_key_value)
        out, cache, weights = self.core.step(q, cache, k, v, need_weights)
        if weights is not None:
            weights = weights.mean(dim=1).squeeze(1)
        return self.out_proj(self._merge(out)), cache, weights
