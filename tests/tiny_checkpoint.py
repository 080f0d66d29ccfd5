"""A tiny zh->en checkpoint, trained in seconds to reproduce a few pairs exactly.

Shared by the decoding, evaluation and translation tests (built once per test session and
model type, under a temporary directory): sentencepiece vocabularies trained on the pairs, a
small model overfit with plain Adam, saved with :func:`nmt.checkpoint.save_checkpoint` (the
format the trainer writes, less the training state).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch

from nmt.checkpoint import Checkpoint, save_checkpoint
from nmt.config import config_from_dict
from nmt.data.batching import encode_source_batch
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary, train_vocabulary
from nmt.models import build_model

PAIRS = [
    ("我们明天去公园吧。", "Let's go to the park tomorrow."),
    ("他在看书。", "He is reading a book."),
    ("这是一本书。", "This is a book."),
    ("我喜欢猫。", "I like cats."),
    ("你好吗?", "How are you?"),
    ("汤姆很高兴。", "Tom is very happy."),
    ("天气很好。", "The weather is nice."),
    ("我不知道。", "I don't know."),
    ("她喜欢喝茶。", "She likes to drink tea."),
    ("我们是朋友。", "We are friends."),
]

MODEL_SECTIONS = {
    "transformer": {
        "type": "transformer",
        "transformer": {
            "d_model": 32,
            "heads": 2,
            "ff_size": 64,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "dropout": 0.0,
            "max_positions": 64,
        },
    },
    "gru": {
        "type": "gru",
        "gru": {"embed_dim": 32, "hidden_size": 32, "dropout": 0.0, "attention_dim": 32},
    },
}

_directory = Path(tempfile.mkdtemp(prefix="nmt-tiny-"))
atexit.register(shutil.rmtree, _directory, ignore_errors=True)


@functools.cache
def tiny_vocabularies() -> tuple[Vocabulary, Vocabulary]:
    """Chinese and English sentencepiece models trained on :data:`PAIRS`."""
    vocabularies = []
    for side, size in ((0, 60), (1, 70)):
        text = _directory / f"train.{side}"
        text.write_text("\n".join(pair[side] for pair in PAIRS) + "\n", encoding="utf-8")
        prefix = _directory / f"spm.{side}"
        vocabularies.append(train_vocabulary([text], prefix, size, threads=1))
    return vocabularies[0], vocabularies[1]


@functools.cache
def tiny_checkpoint(model_type: str = "transformer", direction: str = "zh-en") -> Path:
    """Path of a checkpoint of ``model_type`` trained until it translates every source of
    :data:`PAIRS` into its target (the tests check that it does); ``direction`` is zh-en or
    en-zh."""
    src_lang, tgt_lang = direction.split("-")
    zh_vocab, en_vocab = tiny_vocabularies()
    src_vocab, tgt_vocab = (zh_vocab, en_vocab) if src_lang == "zh" else (en_vocab, zh_vocab)
    pairs = PAIRS if src_lang == "zh" else [(en, zh) for zh, en in PAIRS]
    raw = {
        "name": f"tiny_{model_type}",
        "data": {"src_lang": src_lang, "tgt_lang": tgt_lang},
        "model": MODEL_SECTIONS[model_type],
        "decoding": {"beam_size": 3, "batch_size": 4},
    }
    config = config_from_dict(raw)
    torch.manual_seed(0)
    model = build_model(config.model, len(src_vocab), len(tgt_vocab))
    src, src_lengths = encode_source_batch([src_vocab.encode(source) for source, _ in pairs])
    tgt_in, tgt_out = _target_batch([tgt_vocab.encode(target) for _, target in pairs])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    steps = 100
    for _ in range(steps):
        logits = model(src, src_lengths, tgt_in)
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = _directory / f"{model_type}-{direction}.pt"
    save_checkpoint(path, Checkpoint(config, model.state_dict(), src_vocab, tgt_vocab, step=steps))
    return path


def _target_batch(id_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing input (BOS + ids) and output (ids + EOS), PAD-padded."""
    width = max(len(ids) for ids in id_lists) + 1
    tgt_in = torch.full((len(id_lists), width), PAD_ID)
    tgt_out = torch.full((len(id_lists), width), PAD_ID)
    for row, ids in enumerate(id_lists):
        tgt_in[row, : len(ids) + 1] = torch.tensor([BOS_ID, *ids])
        tgt_out[row, : len(ids) + 1] = torch.tensor([*ids, EOS_ID])
    return tgt_in, tgt_out
