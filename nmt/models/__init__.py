"""Model families behind one interface (see ``base.py``), built from the ``model:`` section."""

from __future__ import annotations

from nmt.config import ConfigError, ModelConfig
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.models.base import DecoderState, EncoderOutput, Seq2Seq
from nmt.models.gru import GRUSeq2Seq
from nmt.models.transformer import Transformer

__all__ = ["DecoderState", "EncoderOutput", "Seq2Seq", "build_model"]


def build_model(
    config: ModelConfig,
    src_vocab_size: int,
    tgt_vocab_size: int,
    pad_id: int = PAD_ID,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> Seq2Seq:
    """The model that ``config.type`` names, sized by its section of the config."""
    config.validate()
    if min(src_vocab_size, tgt_vocab_size) < 1:
        raise ValueError(f"empty vocabulary: sizes {src_vocab_size} and {tgt_vocab_size}")
    ids = {"pad_id": pad_id, "bos_id": bos_id, "eos_id": eos_id}
    if config.type == "gru":
        gru = config.gru
        return GRUSeq2Seq(
            src_vocab_size,
            tgt_vocab_size,
            embed_dim=gru.embed_dim,
            hidden_size=gru.hidden_size,
            encoder_layers=gru.encoder_layers,
            decoder_layers=gru.decoder_layers,
            dropout=gru.dropout,
            score=gru.score,
            attention_dim=gru.attention_dim,
            **ids,
        )
    tr = config.transformer
    if tr.share_embeddings and src_vocab_size != tgt_vocab_size:
        raise ConfigError(
            "model.transformer.share_embeddings: needs one joint vocabulary, but the source has "
            f"{src_vocab_size} entries and the target {tgt_vocab_size}"
        )
    return Transformer(
        src_vocab_size,
        tgt_vocab_size,
        d_model=tr.d_model,
        heads=tr.heads,
        ff_size=tr.ff_size,
        encoder_layers=tr.encoder_layers,
        decoder_layers=tr.decoder_layers,
        dropout=tr.dropout,
        attention_dropout=tr.attention_dropout,
        pre_norm=tr.norm == "pre",
        tie_output_embeddings=tr.tie_output_embeddings,
        share_embeddings=tr.share_embeddings,
        max_positions=tr.max_positions,
        attention_layer=tr.attention_layer,
        encoder_attention=tr.encoder_attention,
        decoder_attention=tr.decoder_attention,
        cross_attention=tr.cross_attention,
        rfa_options={
            "num_features": tr.rfa.num_features,
            "feature_map": tr.rfa.feature_map,
            "sigma": tr.rfa.sigma,
            "learn_sigma": tr.rfa.learn_sigma,
            "redraw": tr.rfa.redraw,
        },
        rfa_gated=tr.rfa.gated,
        **ids,
    )
