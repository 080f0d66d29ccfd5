"""A :class:`~nmt.translator.Translator` whose search runs in CTranslate2.

Text handling is the translator's (normalisation, sentencepiece, truncation, sorting into
batches, n-best lists in input order); only the search of each batch goes to
``ctranslate2.Translator.translate_batch``, on a model that :mod:`ctranslate2_export`
wrote. Our search semantics (``nmt/decoding.py``) are kept where CTranslate2 allows:

* **Length limit.** Ours is per sentence (``max_len_a * source_length + max_len_b``, EOS
  included) and forces EOS at the last step; CTranslate2 takes one ``max_decoding_length``
  per call. Sentences of a batch are grouped by their limit, one call per group, and a
  hypothesis that reaches the limit without EOS has its last token turned into the EOS our
  search would have forced (same tokens as ours; its log-probability counts that last token
  instead of EOS's).
* **Length penalty.** Ours is GNMT's, ``log_prob / ((5 + length) / 6) ** alpha``;
  CTranslate2's is ``log_prob / length ** alpha``. CTranslate2 searches with its own
  (``length_penalty=alpha``) and returns all ``beam_size`` finished hypotheses; their
  log-probabilities are recovered from its scores and they are re-ranked with ours, so
  ``score`` means what it means with the torch engine. With ``alpha = 0`` both are the same.
* **Beam search stopping.** CTranslate2 stops a sentence once ``beam_size`` hypotheses have
  finished (or, with ``alpha = 0``, as soon as the best one has); ours once no unfinished one
  could beat them. Greedy search is the same in both: the float32 export gives our tokens.
* **Empty outputs** are allowed, as in ours (``min_decoding_length=0``).
* **Attention** (``return_attention``): the cross-attention of the exported
  ``model.transformer.attention_layer``, averaged over all heads, as ours; one row per
  output token plus the EOS row, one column per source token. With beam search, sentences
  are then decoded one at a time (see ``search_batch``).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from nmt.config import Config, DecodingSettings, config_from_dict
from nmt.data.vocab import Vocabulary
from nmt.decoding import Hypothesis, length_normalizer, max_output_lengths
from nmt.engines.ctranslate2_export import (
    EXPORT_FORMAT,
    METADATA_FILE,
    SOURCE_SPM,
    TARGET_SPM,
    export_to_temporary_directory,
    require_ctranslate2,
)
from nmt.errors import CheckpointError, NmtError
from nmt.translator import EOS_PIECE, Translator


class CTranslate2Translator(Translator):
    """An exported model (``nmt export --format ctranslate2``) translating lists of sentences,
    with :class:`~nmt.translator.Translator`'s interface."""

    engine = "ctranslate2"

    def __init__(
        self,
        ct2_translator: Any,
        config: Config,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        directory: Path,
        step: int = 0,
        device: str = "cpu",
    ) -> None:
        super().__init__(None, config, src_vocab, tgt_vocab, directory, step)  # type: ignore[arg-type]
        self.ct2 = ct2_translator
        self._device = device
        # A temporary export (from_checkpoint), removed when this object is.
        self._keep_alive: tempfile.TemporaryDirectory | None = None

    @classmethod
    def from_directory(cls, path: str | Path, device: str = "cpu") -> CTranslate2Translator:
        """Load an export onto ``device`` (cpu, cuda, cuda:N, auto), with as many CPU
        threads as torch uses (so that both engines get the same)."""
        ctranslate2 = require_ctranslate2()
        path = Path(path)
        metadata = read_export_metadata(path)
        try:
            config = config_from_dict(metadata["config"])
        except (NmtError, KeyError) as error:
            raise CheckpointError(f"{path / METADATA_FILE}: bad config ({error})") from None
        device_type, index = _ct2_device(device, ctranslate2)
        try:
            ct2_translator = ctranslate2.Translator(
                str(path),
                device=device_type,
                device_index=index,
                intra_threads=torch.get_num_threads(),
            )
        except (RuntimeError, ValueError) as error:
            raise CheckpointError(f"CTranslate2 cannot load {path}: {error}") from None
        return cls(
            ct2_translator,
            config,
            Vocabulary.from_file(path / SOURCE_SPM),
            Vocabulary.from_file(path / TARGET_SPM),
            path,
            int(metadata.get("step", 0)),
            device_type if index == 0 else f"{device_type}:{index}",
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> CTranslate2Translator:
        """Convert a checkpoint (float32, into a temporary directory) and load that."""
        directory = export_to_temporary_directory(path)
        translator = cls.from_directory(directory.name, device)
        translator._keep_alive = directory
        translator.checkpoint = Path(path)
        return translator

    @property
    def max_length(self) -> int:
        return self.config.model.transformer.max_positions

    @property
    def device(self) -> str:
        return self._device

    def attention_layer(self, kind: str = "cross", layer: int | None = None) -> int:
        """Only the cross-attention layer chosen at export (for ``--alignments``)."""
        exported = self.config.model.transformer.attention_layer
        if kind == "cross" and layer is None:
            return exported % self.config.model.transformer.decoder_layers
        self.set_attention_layer(layer)  # refuses, saying why

    def set_attention_layer(self, layer: int) -> None:
        exported = self.config.model.transformer.attention_layer
        raise NmtError(
            f"--attention-layer needs --engine torch: a CTranslate2 model returns the layer "
            f"chosen at export (model.transformer.attention_layer = {exported})"
        )

    def search_batch(
        self, id_lists: list[list[int]], settings: DecodingSettings
    ) -> list[list[Hypothesis]]:
        """One CTranslate2 call at the batch's longest length limit; the sentences whose
        output went past their own limit (where our search forces EOS) are decoded again at
        it, grouped by limit, so every output respects its sentence's limit."""
        source_lengths = torch.tensor([len(ids) + 1 for ids in id_lists])  # with EOS
        limits = max_output_lengths(source_lengths, settings, self.max_length).tolist()
        everything = list(range(len(id_lists)))
        if settings.return_attention and settings.beam_size > 1:
            # CTranslate2 4.8's beam search mixes up the attention rows of the sentences
            # left in a batch once one has finished (tests/test_engines.py): one at a time.
            calls = [(limits[p], [p]) for p in everything]
        else:
            calls = [(max(limits), everything)]
        results: list[list[Hypothesis]] = [[] for _ in id_lists]
        for limit, positions in calls:
            outputs = self._translate(id_lists, positions, limit, settings)
            too_long: dict[int, list[int]] = defaultdict(list)
            for position, output in zip(positions, outputs, strict=True):
                if limit > limits[position] and any(
                    len(tokens) > limits[position] for tokens in output.hypotheses
                ):
                    too_long[limits[position]].append(position)
                else:
                    results[position] = self._nbest(output, settings)
            for own_limit, again in too_long.items():  # rare for a trained model
                outputs = self._translate(id_lists, again, own_limit, settings)
                for position, output in zip(again, outputs, strict=True):
                    results[position] = self._nbest(output, settings)
        return results

    def _translate(
        self,
        id_lists: list[list[int]],
        positions: list[int],
        limit: int,
        settings: DecodingSettings,
    ) -> list[Any]:
        return self.ct2.translate_batch(
            [self.src_vocab.pieces(id_lists[p]) + [EOS_PIECE] for p in positions],
            beam_size=settings.beam_size,
            num_hypotheses=settings.beam_size,  # all finished ones, re-ranked below
            length_penalty=settings.length_penalty,
            max_decoding_length=limit,
            min_decoding_length=0,
            max_input_length=0,  # the translator truncated to the model's limit already
            return_end_token=True,
            return_scores=True,
            return_attention=settings.return_attention,
        )

    def _nbest(self, output: Any, settings: DecodingSettings) -> list[Hypothesis]:
        """One sentence's hypotheses in our terms, best first by our score."""
        alpha = settings.length_penalty
        hypotheses = []
        for k, tokens in enumerate(output.hypotheses):
            # CTranslate2's score is log_prob / len(tokens) ** alpha (its EOS counted).
            log_prob = output.scores[k] * len(tokens) ** alpha
            # Ending in EOS or cut at the length limit (where ours forces EOS): either way,
            # the last token is the EOS, and the attention keeps a row for it.
            ids = [self.tgt_vocab.processor.piece_to_id(piece) for piece in tokens[:-1]]
            attention = None
            if settings.return_attention:
                attention = torch.tensor(output.attention[k], dtype=torch.float32)
            score = log_prob / length_normalizer(len(ids) + 1, alpha)
            hypotheses.append(Hypothesis(ids, score, log_prob, attention))
        hypotheses.sort(key=lambda hypothesis: hypothesis.score, reverse=True)
        return hypotheses[: settings.n_best]


def read_export_metadata(path: Path) -> dict[str, Any]:
    """``nmt_export.json`` of an export directory; errors say what the directory lacks."""
    metadata_path = path / METADATA_FILE
    if not metadata_path.is_file():
        raise CheckpointError(
            f"{path} is not an nmt CTranslate2 export (no {METADATA_FILE}); "
            "make one with: nmt export --checkpoint CHECKPOINT --format ctranslate2 DIR"
        )
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {metadata_path}: {error}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{metadata_path} is not an nmt export description")
    return metadata


def _ct2_device(device: str, ctranslate2: Any) -> tuple[str, int]:
    """(CTranslate2 device, index) for our device names: cpu, cuda, cuda:N, auto."""
    if device == "auto":
        return ("cuda", 0) if ctranslate2.get_cuda_device_count() > 0 else ("cpu", 0)
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu", 0
    if kind == "cuda" and (not index or index.isdigit()):
        if ctranslate2.get_cuda_device_count() == 0:
            raise NmtError(f"--device {device}: CTranslate2 finds no CUDA device")
        return "cuda", int(index or 0)
    raise NmtError(f"--device {device}: the CTranslate2 engine runs on cpu, cuda or cuda:N")
