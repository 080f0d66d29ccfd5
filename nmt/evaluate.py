"""``nmt evaluate``: translate a test set, score it with sacrebleu, write a JSON report.

The scores equal what sacrebleu's command line gives for the written hypothesis file and
the reference file: lines are read and right-stripped as it reads them, BLEU tokenises
with ``zh`` for a Chinese target and ``13a`` otherwise (sacrebleu's own default for those
languages), chrF is chrF2 (character 6-grams, beta 2).

Python API: :func:`evaluate` (a :class:`~nmt.translate.Translator` and a test set -> the
hypotheses and the report), :func:`translate_corpus` (a model and sentences -> their best
translations; the trainer's dev BLEU) and :func:`score` (hypotheses, references -> BLEU and
chrF).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from sacrebleu.metrics import BLEU, CHRF

from nmt.data.normalize import is_chinese
from nmt.data.vocab import Vocabulary
from nmt.decoding import translate_sentences
from nmt.errors import DataError
from nmt.models.base import Seq2Seq
from nmt.translate import Translator, add_decoding_arguments, read_input_lines, warn_truncated


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


def translate_corpus(
    model: Seq2Seq,
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    sentences: Sequence[str],
    src_lang: str,
    beam_size: int = 1,
    length_penalty: float = 1.0,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    batch_size: int = 64,
    traditional_to_simplified: bool = True,
    max_length: int | None = None,
) -> list[str]:
    """The best translation of each sentence, in input order (the model is left in the
    training mode it was in)."""
    translations = translate_sentences(
        model,
        src_vocab,
        tgt_vocab,
        sentences,
        src_lang,
        beam_size=beam_size,
        length_penalty=length_penalty,
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        batch_size=batch_size,
        max_length=max_length,
        traditional_to_simplified=traditional_to_simplified,
    )
    return [translation.text for translation in translations]


# --- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="the model")
    parser.add_argument(
        "--src", required=True, type=Path, metavar="FILE", help="one sentence a line"
    )
    parser.add_argument(
        "--ref",
        required=True,
        type=Path,
        metavar="FILE",
        help="references, line-aligned with --src",
    )
    add_decoding_arguments(parser)
    parser.add_argument("--out", type=Path, metavar="HYP", help="write the translations to HYP")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="REPORT.json",
        help="write scores, settings and speed as JSON",
    )


def evaluate(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[str],
    beam_size: int | None = None,
    length_penalty: float | None = None,
    batch_size: int | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Translate ``sources``, score them against ``references``: (hypotheses, report).

    Settings left as None come from the checkpoint's config. The report's ``seconds`` time
    the translation alone.
    """
    decoding = translator.config.decoding
    beam_size = decoding.beam_size if beam_size is None else beam_size
    length_penalty = decoding.length_penalty if length_penalty is None else length_penalty
    batch_size = decoding.batch_size if batch_size is None else batch_size

    # One sentence first, untimed: one-off set-up (the Traditional->Simplified tables, the
    # first calls into torch) is not decoding speed.
    translator.translate(sources[:1], beam_size=beam_size)
    start = time.perf_counter()
    translations = translator.translate(
        sources, beam_size=beam_size, length_penalty=length_penalty, batch_size=batch_size
    )
    seconds = time.perf_counter() - start
    warn_truncated(translations, translator.max_length, "nmt evaluate")
    hypotheses = [translation.text for translation in translations]
    # Target subwords of the best translations, EOS included: one decoder step each.
    output_tokens = sum(len(t.candidates[0].pieces) + 1 for t in translations if t.candidates)
    report = {
        **score(hypotheses, references, translator.config.data.tgt_lang),
        "sentences": len(sources),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(sources) / seconds, 2),
        "output_tokens": output_tokens,
        "tokens_per_second": round(output_tokens / seconds, 1),
        "checkpoint": None if translator.checkpoint is None else str(translator.checkpoint),
        "step": translator.step,
        "model": translator.config.model.type,
        "src_lang": translator.config.data.src_lang,
        "tgt_lang": translator.config.data.tgt_lang,
        "decoding": {
            "beam_size": beam_size,
            "length_penalty": length_penalty,
            "max_len_a": decoding.max_len_a,
            "max_len_b": decoding.max_len_b,
            "batch_size": batch_size,
        },
        "device": str(next(translator.model.parameters()).device),
        "threads": torch.get_num_threads(),
        "truncated_sources": sum(t.truncated for t in translations),
    }
    return hypotheses, report


def main(args: argparse.Namespace) -> int:
    for option, value in (("--beam", args.beam), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise DataError(f"{option} {value}: must be at least 1")
    sources, references = read_input_lines(args.src), read_input_lines(args.ref)
    if not sources:
        raise DataError(f"{args.src} has no sentences")
    if len(sources) != len(references):
        raise DataError(f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}")
    translator = Translator.from_checkpoint(args.checkpoint, args.device)
    hypotheses, report = evaluate(
        translator, sources, references, args.beam, args.length_penalty, args.batch_size
    )
    hyp = None if args.out is None else str(args.out)
    report.update(src=str(args.src), ref=str(args.ref), hyp=hyp)

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(line + "\n" for line in hypotheses), encoding="utf-8")
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"BLEU = {report['bleu']:.2f}  ({report['bleu_signature']})")
    print(f"chrF = {report['chrf']:.2f}  ({report['chrf_signature']})")
    print(
        f"{report['sentences']} sentences in {report['seconds']:.2f} s: "
        f"{report['sentences_per_second']} sentences/s, {report['tokens_per_second']} tokens/s "
        f"(beam {report['decoding']['beam_size']}, {report['device']})"
    )
    return 0
