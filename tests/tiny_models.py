"""Tiny models of every variant and random batches, shared by the model tests.

Each variant is a model type plus the options of its config section; the property tests of
``test_models.py`` (padding, causality, incremental decoding) run over all of them, the
Random Feature Attention variants included.
"""

from __future__ import annotations

import torch

from nmt.config import config_from_dict
from nmt.data.vocab import BOS_ID, PAD_ID
from nmt.models import build_model
from nmt.models.base import Seq2Seq

SRC_VOCAB, TGT_VOCAB = 23, 19
TINY_GRU = {"embed_dim": 16, "hidden_size": 12, "encoder_layers": 2, "decoder_layers": 2}
TINY_TRANSFORMER = {"d_model": 32, "heads": 4, "ff_size": 48, "encoder_layers": 2}
# 32 features: with 16, float32 error amplified by RFA's denominator floor reached ~2e-5.
RFA_FEATURES = {"num_features": 32}
ALL_RFA = {"encoder_attention": "rfa", "decoder_attention": "rfa", "cross_attention": "rfa"}
PAPER_RFA = {"decoder_attention": "rfa", "cross_attention": "rfa"}

VARIANTS = {
    "gru-additive": ("gru", {"score": "additive", "attention_dim": 10}),
    "gru-dot": ("gru", {"score": "dot"}),
    "gru-scaled_dot": ("gru", {"score": "scaled_dot"}),
    "gru-general": ("gru", {"score": "general"}),
    "gru-biased_general": ("gru", {"score": "biased_general"}),
    "gru-activated_general": ("gru", {"score": "activated_general"}),
    "gru-cosine": ("gru", {"score": "cosine"}),
    "gru-none": ("gru", {"score": "none"}),
    "lstm-additive": ("gru", {"cell": "lstm", "score": "additive", "attention_dim": 10}),
    "lstm-none": ("gru", {"cell": "lstm", "score": "none"}),
    "rnn-general": ("gru", {"cell": "rnn", "score": "general"}),
    "transformer-pre": ("transformer", {"norm": "pre", "decoder_layers": 2}),
    "transformer-post": ("transformer", {"norm": "post", "decoder_layers": 2}),
    "transformer-learned-positions": (
        "transformer",
        {"decoder_layers": 2, "positions": "learned"},
    ),
    "rfa-encoder": ("transformer", {"decoder_layers": 2, "encoder_attention": "rfa"}),
    "rfa-decoder": ("transformer", {"decoder_layers": 2, "decoder_attention": "rfa"}),
    "rfa-decoder-gated": (
        "transformer",
        {"decoder_layers": 2, "decoder_attention": "rfa", "rfa": {"gated": True}},
    ),
    "rfa-cross": ("transformer", {"decoder_layers": 2, "cross_attention": "rfa"}),
    "rfa-all": ("transformer", {"decoder_layers": 2, **ALL_RFA}),
    "rfa-all-gated-positive": (
        "transformer",
        {"decoder_layers": 2, **ALL_RFA, "rfa": {"gated": True, "feature_map": "positive"}},
    ),
    # The paper's translation setting: RFA in the decoder, softmax in the encoder.
    "rfa-paper-gated-arccos": (
        "transformer",
        {"decoder_layers": 2, **PAPER_RFA, "rfa": {"gated": True, "feature_map": "arccos"}},
    ),
}
NO_ATTENTION_VARIANTS = ["gru-none", "lstm-none"]
MAIN_VARIANTS = ["gru-additive", "transformer-pre", "transformer-post"]


def model_section(variant: str, **overrides) -> tuple[str, dict]:
    """(model type, config section) of ``variant`` with ``overrides`` applied (an ``rfa``
    override applies to Transformers only)."""
    model_type, options = VARIANTS[variant]
    if model_type == "gru":
        overrides.pop("rfa", None)
        return model_type, {**TINY_GRU, **options, **overrides}
    section = {**TINY_TRANSFORMER, **options, **overrides}
    section["rfa"] = {**RFA_FEATURES, **options.get("rfa", {}), **overrides.get("rfa", {})}
    return model_type, section


def tiny_model(variant: str, **overrides) -> Seq2Seq:
    model_type, section = model_section(variant, **overrides)
    config = config_from_dict({"model": {"type": model_type, model_type: section}})
    return build_model(config.model, SRC_VOCAB, TGT_VOCAB)


def padded(sequences: list[list[int]], width: int | None = None) -> torch.Tensor:
    width = max(map(len, sequences)) if width is None else width
    return torch.tensor([s + [PAD_ID] * (width - len(s)) for s in sequences])


def random_batch(src_lengths=(7, 4, 2), tgt_lengths=(5, 6, 3)) -> dict[str, torch.Tensor]:
    """Source ids and the target shifted right (BOS first), padded; no special tokens inside."""
    src = [torch.randint(4, SRC_VOCAB, (n,)).tolist() for n in src_lengths]
    tgt = [[BOS_ID] + torch.randint(4, TGT_VOCAB, (n - 1,)).tolist() for n in tgt_lengths]
    return {
        "src": padded(src),
        "src_lengths": torch.tensor(src_lengths),
        "tgt_in": padded(tgt),
        "tgt_lengths": torch.tensor(tgt_lengths),
    }


def teacher_forced_log_probs(model: Seq2Seq, batch: dict) -> torch.Tensor:
    return model(batch["src"], batch["src_lengths"], batch["tgt_in"]).log_softmax(dim=-1)
