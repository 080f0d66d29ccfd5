"""``nmt export --format ctranslate2``: a checkpoint as a CTranslate2 model directory.

CTranslate2 (https://github.com/OpenNMT/CTranslate2) is the C++ inference engine behind
OPUS-MT, Argos Translate and LibreTranslate: quantised (int8, float16) CPU and GPU decoding.
Its model-specification API (``ctranslate2.specs.TransformerSpec``) describes a standard
Transformer; this module fills one with our weights:

* pre-norm (a final LayerNorm on each stack) or post-norm (none): ``pre_norm``;
* embeddings times ``sqrt(d_model)`` (``scale_embeddings``, the spec's default) plus our
  sinusoidal table, written out as the position encodings: ours interleaves sine and
  cosine (``PE[pos, 2i]``, ``PE[pos, 2i+1]``), CTranslate2's built-in table does not;
* self-attention: our query projection and fused key-value projection concatenated into
  the spec's fused query-key-value matrix (keys then values, as ``chunk(2)`` splits them);
  cross-attention: query, then our key-value matrix as it is;
* the output layer (tied to the target embeddings or not), shared source/target tables;
* LayerNorm epsilon: torch's, stored in the model config.

The directory gets CTranslate2's ``model.bin``, ``config.json`` and vocabularies (our
sentencepiece pieces in id order, so CTranslate2's ids are ours: PAD=0 ``<pad>``, UNK=1
``<unk>``, BOS=2 ``<s>`` (the decoder start token), EOS=3 ``</s>``), our sentencepiece
models as ``source.spm`` and ``target.spm``, and ``nmt_export.json`` (our experiment config
and the checkpoint's step), which :mod:`nmt.engines.ctranslate2_translator` reads back.

Only the softmax Transformer converts: the GRU and Random Feature Attention have no
CTranslate2 counterpart, and are refused with a message saying so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nmt.checkpoint import LoadedModel, load_model
from nmt.config import Config
from nmt.data.vocab import Vocabulary
from nmt.errors import NmtError
from nmt.models.attention import MultiHeadAttention
from nmt.models.transformer import Embeddings, FeedForward, Transformer

EXPORT_FORMAT = "nmt-ctranslate2"
EXPORT_VERSION = 1
METADATA_FILE = "nmt_export.json"
SOURCE_SPM, TARGET_SPM = "source.spm", "target.spm"
# Quantisations `nmt export` offers (CTranslate2 converts at load time if the device lacks one).
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "float16", "bfloat16")


def require_ctranslate2() -> Any:
    """The ``ctranslate2`` module, or an error naming the install command."""
    try:
        import ctranslate2
    except ImportError:
        raise NmtError(
            "the CTranslate2 engine needs the ctranslate2 package: pip install 'nmt[export]' "
            "(or pip install ctranslate2)"
        ) from None
    return ctranslate2


def check_exportable(config: Config) -> None:
    """Refuse, with the reason, a model CTranslate2 cannot run."""
    model = config.model
    if model.type != "transformer":
        raise NmtError(
            f"CTranslate2 does not support the {model.type.upper()} model family (only the "
            "Transformer converts); decode it with --engine torch"
        )
    section = model.transformer
    kinds = {
        "encoder_attention": section.encoder_attention,
        "decoder_attention": section.decoder_attention,
        "cross_attention": section.cross_attention,
    }
    rfa = [key for key, kind in kinds.items() if kind != "softmax"]
    if rfa:
        raise NmtError(
            "CTranslate2 does not support Random Feature Attention (model.transformer."
            f"{', '.join(rfa)} = rfa); decode this model with --engine torch"
        )


def export_ctranslate2(
    checkpoint_path: str | Path, out_dir: str | Path, quantization: str = "float32"
) -> Path:
    """Convert ``checkpoint_path`` into a CTranslate2 model in ``out_dir`` (created; an
    earlier export there is replaced); returns ``out_dir``."""
    if quantization not in QUANTIZATIONS:
        raise NmtError(f"unknown quantization {quantization!r}; one of {', '.join(QUANTIZATIONS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / METADATA_FILE).is_file() and any(out_dir.iterdir()):
        raise NmtError(f"{out_dir} exists and is not an nmt export: give a new or empty directory")
    loaded = load_model(checkpoint_path)
    check_exportable(loaded.config)
    spec = transformer_spec(loaded)
    spec.validate()
    spec.optimize(quantization=quantization)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    (out_dir / SOURCE_SPM).write_bytes(loaded.src_vocab.to_bytes())
    (out_dir / TARGET_SPM).write_bytes(loaded.tgt_vocab.to_bytes())
    metadata = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "checkpoint": str(checkpoint_path),
        "step": loaded.step,
        "quantization": quantization,
        "config": loaded.config.to_dict(),
    }
    text = json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    (out_dir / METADATA_FILE).write_text(text, encoding="utf-8")
    return out_dir


def export_to_temporary_directory(checkpoint_path: str | Path) -> tempfile.TemporaryDirectory:
    """A float32 export in a temporary directory (``--engine ctranslate2`` given a
    checkpoint); the directory goes when the returned object is cleaned up or collected."""
    directory = tempfile.TemporaryDirectory(prefix="nmt-ct2-")
    try:
        export_ctranslate2(checkpoint_path, directory.name)
    except BaseException:
        directory.cleanup()
        raise
    return directory


@torch.no_grad()
def transformer_spec(loaded: LoadedModel) -> Any:
    """The ``TransformerSpec`` of a loaded softmax Transformer, weights filled in."""
    ctranslate2 = require_ctranslate2()
    model, section = loaded.model, loaded.config.model.transformer
    assert isinstance(model, Transformer)
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (section.encoder_layers, section.decoder_layers),
        section.heads,
        pre_norm=section.norm == "pre",
        alignment_layer=model.attention_layer,
        alignment_heads=section.heads,  # all heads, averaged: the attention our plots show
    )
    encoder, decoder = spec.encoder, spec.decoder
    _set_embeddings(encoder, model.src_embed)
    _set_embeddings(decoder, model.tgt_embed)
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers, strict=True):
        _set_attention(
            layer_spec.self_attention, layer.self_attention, layer.attention_residual.norm
        )
        _set_feed_forward(layer_spec.ffn, layer.feed_forward, layer.ff_residual.norm)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attention, layer.self_residual.norm)
        _set_attention(layer_spec.attention, layer.cross_attention, layer.cross_residual.norm)
        _set_feed_forward(layer_spec.ffn, layer.feed_forward, layer.ff_residual.norm)
    if section.norm == "pre":
        _set_layer_norm(encoder.layer_norm, model.encoder_norm)
        _set_layer_norm(decoder.layer_norm, model.decoder_norm)
    decoder.projection.weight = _tensor(model.output.weight)  # tied or not
    # Every LayerNorm of the model has torch's default epsilon; CTranslate2 takes one value.
    spec.config.layer_norm_epsilon = model.encoder_layers[0].ff_residual.norm.eps
    spec.register_source_vocabulary(_pieces(loaded.src_vocab))
    spec.register_target_vocabulary(_pieces(loaded.tgt_vocab))
    return spec


def _pieces(vocab: Vocabulary) -> list[str]:
    """The vocabulary in id order: CTranslate2 numbers tokens by their position."""
    return vocab.pieces(range(len(vocab)))


def _tensor(parameter: torch.Tensor) -> torch.Tensor:
    return parameter.detach().float().contiguous()


def _set_embeddings(stack_spec: Any, embeddings: Embeddings) -> None:
    """Token table (scaled by ``sqrt(d_model)`` in both) and our sinusoidal position table."""
    table = stack_spec.embeddings  # the encoder has a list: one table per source factor
    table = table[0] if isinstance(table, list) else table
    table.weight = _tensor(embeddings.tokens.weight)
    stack_spec.position_encodings.encodings = _tensor(embeddings.positions)


def _set_linear(spec: Any, weight: torch.Tensor, bias: torch.Tensor) -> None:
    spec.weight, spec.bias = _tensor(weight), _tensor(bias)


def _set_layer_norm(spec: Any, norm: nn.Module) -> None:
    assert isinstance(norm, nn.LayerNorm)
    spec.gamma, spec.beta = _tensor(norm.weight), _tensor(norm.bias)


def _set_attention(spec: Any, attention: MultiHeadAttention, norm: nn.Module) -> None:
    """Self-attention specs (two linear layers) take one fused query-key-value matrix, cross-
    attention specs (three) a query matrix and a fused key-value one: ours keeps keys and
    values fused in that order already."""
    query, key_value, out = attention.query_proj, attention.key_value_proj, attention.out_proj
    if len(spec.linear) == 2:
        weight = torch.cat([query.weight, key_value.weight])
        _set_linear(spec.linear[0], weight, torch.cat([query.bias, key_value.bias]))
    else:
        _set_linear(spec.linear[0], query.weight, query.bias)
        _set_linear(spec.linear[1], key_value.weight, key_value.bias)
    _set_linear(spec.linear[-1], out.weight, out.bias)
    _set_layer_norm(spec.layer_norm, norm)


def _set_feed_forward(spec: Any, feed_forward: FeedForward, norm: nn.Module) -> None:
    first, _, second = feed_forward.layers  # Linear, ReLU, Linear
    _set_linear(spec.linear_0, first.weight, first.bias)
    _set_linear(spec.linear_1, second.weight, second.bias)
    _set_layer_norm(spec.layer_norm, norm)
