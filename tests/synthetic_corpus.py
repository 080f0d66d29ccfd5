"""A small, learnable zh-en corpus made from templates, for end-to-end training tests."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

SUBJECTS = [("我", "I"), ("你", "you"), ("他们", "they"), ("我们", "we")]
VERBS = [("有", "have"), ("喜欢", "like"), ("看见", "see"), ("想要", "want")]
NUMBERS = [("两", "two"), ("三", "three"), ("四", "four"), ("五", "five"), ("六", "six")]
NOUNS = [
    ("只猫", "cats"),
    ("条狗", "dogs"),
    ("本书", "books"),
    ("个苹果", "apples"),
    ("辆车", "cars"),
    ("张桌子", "tables"),
]


def sentence_pairs() -> list[tuple[str, str]]:
    """All template combinations (480 pairs), in a fixed shuffled order."""
    pairs = [
        (f"{zs}{zv}{zn}{zo}。", f"{es.capitalize()} {ev} {en} {eo}.")
        for (zs, es), (zv, ev), (zn, en), (zo, eo) in itertools.product(
            SUBJECTS, VERBS, NUMBERS, NOUNS
        )
    ]
    random.Random(0).shuffle(pairs)
    return pairs


def write_corpus(folder: Path, n_dev: int = 20, n_test: int = 20) -> Path:
    """Write train/dev/test ``.zh``/``.en`` files into ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = sentence_pairs()
    splits = {
        "dev": pairs[:n_dev],
        "test": pairs[n_dev : n_dev + n_test],
        "train": pairs[n_dev + n_test :],
    }
    for name, split_pairs in splits.items():
        for side, lang in ((0, "zh"), (1, "en")):
            text = "\n".join(pair[side] for pair in split_pairs) + "\n"
            (folder / f"{name}.{lang}").write_text(text, encoding="utf-8")
    return folder


def tiny_experiment(tmp: Path, model_type: str = "transformer", **training: object) -> dict:
    """A raw config (dict) for a seconds-long training run on :func:`write_corpus` data."""
    corpus = write_corpus(tmp / "corpus")
    model = {
        "transformer": {
            "type": "transformer",
            "transformer": {
                "d_model": 32,
                "heads": 2,
                "ff_size": 64,
                "encoder_layers": 1,
                "decoder_layers": 1,
                "dropout": 0.1,
                "max_positions": 64,
            },
        },
        "gru": {
            "type": "gru",
            "gru": {"embed_dim": 32, "hidden_size": 32, "attention_dim": 32, "dropout": 0.1},
        },
    }[model_type]
    return {
        "name": "tiny",
        "data": {
            "corpus": str(corpus),
            "train": "train",
            "dev": "dev",
            "test": "test",
            "output_dir": str(tmp / "data"),
            "vocab": {"src_size": 60, "tgt_size": 50},
        },
        "model": model,
        "training": {
            "output_dir": str(tmp / "runs"),
            "device": "cpu",
            "threads": 1,
            "seed": 3,
            "max_tokens": 300,
            "lr": 3e-3,
            "warmup_steps": 5,
            "valid_every": 4,
            "log_every": 2,
            "keep_checkpoints": 2,
            "tensorboard": False,
            "deterministic": True,
            **training,
        },
        "decoding": {"beam_size": 2, "batch_size": 8, "max_len_b": 12},
    }
