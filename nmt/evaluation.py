"""Scoring: translate a test set, score it with sacrebleu (the command: ``nmt evaluate``).

The scores equal what sacrebleu's command line gives for the written hypothesis file and
the reference file: lines are read and right-stripped as it reads them, BLEU tokenises
with ``zh`` for a Chinese target and ``13a`` otherwise (sacrebleu's own default for those
languages), chrF is chrF2 (character 6-grams, beta 2).

Python API: :func:`evaluate` (a :class:`~nmt.translator.Translator` and a test set -> the
hypotheses and the report) and :func:`score` (hypotheses, references -> BLEU and chrF; also
the trainer's dev BLEU).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from sacrebleu.metrics import BLEU, CHRF

from nmt.config import DecodingSettings
from nmt.data.normalize import is_chinese
from nmt.errors import DataError
from nmt.translator import Translator, warn_truncated


def bleu_tokenizer(tgt_lang: str) -> str:
    return "zh" if is_chinese(tgt_lang) else "13a"


def score(hypotheses: Sequence[str], references: Sequence[str], tgt_lang: str) -> dict[str, Any]:
    """Corpus BLEU and chrF with their sacrebleu signatures (one reference per sentence)."""
    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    hypotheses = [line.rstrip() for line in hypotheses]
    references = [[line.rstrip() for line in references]]
    bleu, chrf = BLEU(tokenize=bleu_tokenizer(tgt_lang)), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, references)
    chrf_score = chrf.corpus_score(hypotheses, references)
    return {
        "bleu": bleu_score.score,
        "chrf": chrf_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_details": {
            "precisions": bleu_score.precisions,
            "brevity_penalty": bleu_score.bp,
            "length_ratio": bleu_score.ratio,
            "hypothesis_length": bleu_score.sys_len,
            "reference_length": bleu_score.ref_len,
        },
    }


def evaluate(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[str],
    settings: DecodingSettings | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Translate ``sources``, score them against ``references``: (hypotheses, report).

    ``settings`` default: the checkpoint's. The report's ``seconds`` time the translation
    alone.
    """
    settings = translator.settings() if settings is None else settings
    # One sentence first, untimed: one-off set-up (the Traditional->Simplified tables, the
    # first calls into torch) is not decoding speed.
    translator.translate(sources[:1], settings)
    start = time.perf_counter()
    translations = translator.translate(sources, settings)
    seconds = time.perf_counter() - start
    warn_truncated(translations, translator.max_length, "nmt evaluate")
    hypotheses = [translation.text for translation in translations]
    # Target subwords of the best translations, EOS included: one decoder step each.
    output_tokens = sum(len(t.candidates[0].pieces) + 1 for t in translations if t.candidates)
    data = translator.config.data
    report = {
        **score(hypotheses, references, data.tgt_lang),
        "sentences": len(sources),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(sources) / seconds, 2),
        "output_tokens": output_tokens,
        "tokens_per_second": round(output_tokens / seconds, 1),
        "checkpoint": None if translator.checkpoint is None else str(translator.checkpoint),
        "step": translator.step,
        "model": translator.config.model.type,
        "src_lang": data.src_lang,
        "tgt_lang": data.tgt_lang,
        "decoding": {
            name: getattr(settings, name)
            for name in ("beam_size", "length_penalty", "max_len_a", "max_len_b", "batch_size")
        },
        "engine": translator.engine,
        "device": translator.device,
        "threads": torch.get_num_threads(),
        "truncated_sources": sum(t.truncated for t in translations),
    }
    return hypotheses, report
