"""Text in, text out: a model and its vocabularies translating lists of sentences.

:class:`Translator` is the Python API, and what ``nmt translate``, ``nmt evaluate`` and the
trainer's dev BLEU all use::

    translator = Translator.from_checkpoint("runs/tatoeba_zh_en_transformer/best.pt")
    settings = translator.settings(beam_size=5, n_best=2)
    for translation in translator.translate(["我们明天去公园吧。"], settings):
        print(translation.text, [c.score for c in translation.candidates])

A sentence is normalised as in data preparation, encoded with the source vocabulary, sorted
by length into batches of ``settings.batch_size`` sentences, searched (``nmt/decoding.py``)
and decoded back to text (Chinese output with its full-width punctuation restored, which
normalisation folded to ASCII); results come back in input order, one per input.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from nmt.checkpoint import load_model
from nmt.config import Config, DecodingSettings
from nmt.data.batching import encode_source_batch
from nmt.data.normalize import is_chinese, normalize, restore_chinese_punctuation
from nmt.data.vocab import BOS_ID, PAD_ID, Vocabulary
from nmt.decoding import Hypothesis, search
from nmt.devices import resolve_device
from nmt.errors import DataError, NmtError
from nmt.models.base import AttentionKind, Seq2Seq

EOS_PIECE = "</s>"  # how the source's EOS is labelled in source_pieces
BOS_PIECE = "<s>"  # how the decoder's first input is labelled (decoder self-attention)


@dataclass
class Candidate:
    """One output sentence."""

    text: str  # detokenised
    pieces: list[str]  # target subwords, without EOS
    score: float
    log_prob: float
    attention: Tensor | None = None  # (len(pieces) + 1, len(source_pieces)), EOS row last
    ids: list[int] = field(default_factory=list)  # the pieces' ids


@dataclass
class Translation:
    """One input sentence and its n-best outputs, best first."""

    source_pieces: list[str]  # the source subwords the model read, EOS last
    candidates: list[Candidate]  # empty for an empty input
    truncated: bool = False  # the source was cut to the model's maximum length
    source_ids: list[int] = field(default_factory=list)  # the source pieces' ids, without EOS

    @property
    def text(self) -> str:
        return self.candidates[0].text if self.candidates else ""


class Translator:
    """A model with its vocabularies and config, translating lists of sentences."""

    engine = "torch"  # the inference engine; nmt/engines has the others

    def __init__(
        self,
        model: Seq2Seq,
        config: Config,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        checkpoint: Path | None = None,
        step: int = 0,
    ) -> None:
        self.model = model
        self.config = config  # its data and decoding sections supply the defaults
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.checkpoint = checkpoint
        self.step = step

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Translator:
        """Load ``path`` onto ``device`` (``auto``: CUDA when available, else CPU)."""
        loaded = load_model(path, resolve_device(device))
        return cls(
            loaded.model,
            loaded.config,
            loaded.src_vocab,
            loaded.tgt_vocab,
            loaded.path,
            loaded.step,
        )

    @property
    def max_length(self) -> int | None:
        """The longest source (with EOS) or output the model takes; None: no limit."""
        return self.model.max_length

    def settings(self, **options: Any) -> DecodingSettings:
        """The checkpoint's decoding settings with ``options`` (DecodingSettings field names)
        replacing them where not None."""
        return DecodingSettings.from_config(self.config.decoding, **options)

    def set_attention_layer(self, layer: int) -> None:
        """Which decoder layer's cross-attention (head average) Transformer plots show."""
        if self.config.model.type != "transformer":
            raise NmtError("--attention-layer applies to Transformer models only")
        section = dataclasses.replace(self.config.model.transformer, attention_layer=layer)
        section.validate()  # the config's range check, naming model.transformer.attention_layer
        self.config.model.transformer = section
        self.model.attention_layer = layer % section.decoder_layers

    def attention_layer(self, kind: AttentionKind = "cross", layer: int | None = None) -> int:
        """The index (from 0) of the layer of ``kind`` attention that :meth:`attention_maps`
        shows: ``layer`` (negative: from the last), by default the last one, or for
        cross-attention the one that ``state.attention`` exposes. Errors name the options of
        ``nmt translate``."""
        count = self.model.num_attention_layers(kind)
        if count == 0:
            if self.model.num_attention_layers("cross") == 0:
                raise NmtError(
                    "the model has no attention (a fixed context vector, model.gru.score: "
                    "none): there are no attention weights to show"
                )
            raise NmtError(
                f"--attention-kind {kind}: the model has cross-attention only (self-attention "
                "is a Transformer's)"
            )
        if layer is None:
            return (
                getattr(self.model, "attention_layer", count - 1) if kind == "cross" else count - 1
            )
        if not -count <= layer < count:
            stack = "an encoder" if kind == "encoder-self" else "a decoder"
            raise NmtError(
                f"--attention-layer {layer}: expected {stack} layer index in [{-count}, {count})"
            )
        return layer % count

    def attention_maps(
        self,
        translations: Sequence[Translation],
        kind: AttentionKind = "cross",
        layer: int | None = None,
    ) -> list[Tensor | None]:
        """Every head's attention of one kind and layer (see :meth:`attention_layer`) for each
        translation's best candidate: ``(heads, rows, columns)`` on the CPU, None for an empty
        translation. From a teacher-forced pass over the output, so translating never pays
        for weights: rows and columns are :func:`attention_labels`.
        """
        layer = self.attention_layer(kind, layer)
        device = next(self.model.parameters()).device
        maps: list[Tensor | None] = [None] * len(translations)
        shown = [i for i, translation in enumerate(translations) if translation.candidates]
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(shown), self.config.decoding.batch_size):
                indices = shown[start : start + self.config.decoding.batch_size]
                src, src_lengths = encode_source_batch(
                    [translations[i].source_ids for i in indices]
                )
                tgt_in = _decoder_inputs([translations[i].candidates[0].ids for i in indices])
                with torch.inference_mode():
                    batch_maps = self.model.attention_maps(
                        src.to(device), src_lengths, tgt_in.to(device), kind, layer
                    ).float()
                for row, i in enumerate(indices):
                    rows, columns = attention_labels(translations[i], kind)
                    maps[i] = batch_maps[row, :, : len(rows), : len(columns)].cpu()
        finally:
            self.model.train(was_training)
        return maps

    def translate(
        self, sentences: Sequence[str], settings: DecodingSettings | None = None
    ) -> list[Translation]:
        """Translations in input order (``settings`` default: the checkpoint's).

        Sources longer than the model's ``max_length`` are truncated and marked; an empty (or
        all-whitespace) sentence gets an empty translation without a search.
        """
        if isinstance(sentences, str):
            raise TypeError("translate takes a list of sentences, not one string")
        settings = self.settings() if settings is None else settings
        data = self.config.data
        id_lists = [
            self.src_vocab.encode(
                normalize(_valid_unicode(s), data.src_lang, data.traditional_to_simplified)
            )
            for s in sentences
        ]
        max_length = self.max_length
        truncated = [max_length is not None and len(ids) >= max_length for ids in id_lists]
        if max_length is not None:
            id_lists = [ids[: max_length - 1] for ids in id_lists]  # room for the EOS
        results = [Translation([], [], cut) for cut in truncated]
        order = sorted((i for i, ids in enumerate(id_lists) if ids), key=lambda i: len(id_lists[i]))
        for start in range(0, len(order), settings.batch_size):
            indices = order[start : start + settings.batch_size]
            nbest_lists = self.search_batch([id_lists[i] for i in indices], settings)
            for i, nbest in zip(indices, nbest_lists, strict=True):
                results[i] = Translation(
                    self.src_vocab.pieces(id_lists[i]) + [EOS_PIECE],
                    [self._candidate(hypothesis) for hypothesis in nbest],
                    truncated[i],
                    id_lists[i],
                )
        return results

    # The engine's part: an inference engine other than torch (nmt/engines) overrides these.

    @property
    def device(self) -> str:
        return str(next(self.model.parameters()).device)

    def search_batch(
        self, id_lists: list[list[int]], settings: DecodingSettings
    ) -> list[list[Hypothesis]]:
        """n-best lists for one batch of encoded sources (without EOS), in model eval mode
        (its previous mode restored after)."""
        device = next(self.model.parameters()).device
        src, src_lengths = encode_source_batch(id_lists)
        was_training = self.model.training
        self.model.eval()
        try:
            # Lengths stay on the host, where the search reads them (models copy them for masks).
            return search(self.model, src.to(device), src_lengths, settings)
        finally:
            self.model.train(was_training)

    def _candidate(self, hypothesis: Hypothesis) -> Candidate:
        text = self.tgt_vocab.decode(hypothesis.tokens)
        if is_chinese(self.config.data.tgt_lang):
            # Normalisation folded the corpus's full-width punctuation to ASCII; put it back.
            text = restore_chinese_punctuation(text)
        return Candidate(
            text=text,
            pieces=self.tgt_vocab.pieces(hypothesis.tokens),
            score=hypothesis.score,
            log_prob=hypothesis.log_prob,
            attention=hypothesis.attention,
            ids=hypothesis.tokens,
        )


def attention_labels(translation: Translation, kind: AttentionKind) -> tuple[list[str], list[str]]:
    """Labels of the rows (queries) and columns (keys) of an attention map of ``kind`` for a
    translation's best candidate: the output (with EOS) over the source (with EOS) for
    cross-attention, the source over itself, or the output over the decoder's inputs (BOS,
    then the output)."""
    source = translation.source_pieces
    output = translation.candidates[0].pieces
    if kind == "encoder-self":
        return source, source
    if kind == "decoder-self":
        return output + [EOS_PIECE], [BOS_PIECE, *output]
    return output + [EOS_PIECE], source


def _decoder_inputs(outputs: list[list[int]]) -> Tensor:
    """Teacher forcing's decoder input: BOS, then each output, padded: ``(batch, len + 1)``."""
    tgt_in = torch.full((len(outputs), max(map(len, outputs)) + 1), PAD_ID)
    for row, ids in enumerate(outputs):
        tgt_in[row, : len(ids) + 1] = torch.tensor([BOS_ID, *ids])
    return tgt_in


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (which sentencepiece cannot take) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def read_input_lines(source: str | Path | BinaryIO) -> list[str]:
    """Lines of a file (or binary stream) as text: UTF-8 with invalid bytes replaced, split on
    ``\\n`` only (so other line-break characters stay inside their line), ``\\r`` stripped.

    Lenient on purpose (unlike the corpus readers): no input line can stop a translation run.
    """
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise DataError(f"cannot read {source}: {error.strerror}") from None
    else:
        data = source.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def warn_truncated(
    translations: list[Translation],
    max_length: int | None,
    command: str,
    where: str | Path = "input",
    first_line: int = 1,
) -> None:
    """One warning on stderr per source that was cut to the model's maximum length."""
    for offset, translation in enumerate(translations):
        if translation.truncated:
            print(
                f"{command}: warning: {where} line {first_line + offset} is longer than the "
                f"model's {max_length} subword tokens; only its beginning was translated",
                file=sys.stderr,
            )
