"""Model families behind one interface (see ``base.py``), built from the ``model:`` section."""

from __future__ import annotations

from nmt.config import ModelConfig
from nmt.models.base import DecoderState, EncoderOutput, Seq2Seq
from nmt.models.gru import GRUSeq2Seq
from nmt.models.transformer import Transformer

__all__ = ["DecoderState", "EncoderOutput", "Seq2Seq", "build_model"]

# model.type -> the class built from the config section of the same name.
FAMILIES: dict[str, type[Seq2Seq]] = {"gru": GRUSeq2Seq, "transformer": Transformer}


def build_model(config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model that ``config.type`` names, sized by its section of the config."""
    config.validate()
    if min(src_vocab_size, tgt_vocab_size) < 1:
        raise ValueError(f"empty vocabulary: sizes {src_vocab_size} and {tgt_vocab_size}")
    return FAMILIES[config.type](getattr(config, config.type), src_vocab_size, tgt_vocab_size)
