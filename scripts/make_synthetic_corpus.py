"""Write a synthetic Chinese-English corpus of any size, for the data-pipeline benchmark.

The sentences are nonsense but shaped like Tatoeba's: 2-15 English words against 3-25
Chinese characters, with the things cleaning and splitting must handle mixed in: repeated
pairs, sentences shared between pairs, Traditional characters, full-width digits, empty and
over-long lines.

    python scripts/make_synthetic_corpus.py --pairs 2000000 --out /tmp/synthetic/train
    # -> /tmp/synthetic/train.zh and /tmp/synthetic/train.en (or --tsv: train.tsv)
"""

from __future__ import annotations

import argparse
import random
from itertools import accumulate
from pathlib import Path

from nmt.data.normalize import to_simplified

SYLLABLES = "ka ri to mo na shi lu be en or an is ter pro com ing ed ly tion"
TRADITIONAL = "們說話臺灣覆藉後裡電腦學習書讀鐘"


def make_lexicon(rng: random.Random) -> tuple[list[str], list[str]]:
    """Aligned word lists: English word i translates as Chinese word i."""
    syllables = SYLLABLES.split()
    english = list(
        {"".join(rng.choices(syllables, k=rng.randint(1, 3))): None for _ in range(8000)}
    )
    # Simplified characters, as in most real corpora; Traditional ones are mixed in below.
    candidates = [chr(code) for code in range(0x4E00, 0x9FA6)]
    simplified = [char for char in candidates if to_simplified(char) == char]
    characters = rng.sample(simplified, 3500)
    chinese = ["".join(rng.choices(characters, k=rng.choice((1, 2, 2, 3)))) for _ in english]
    return english, chinese


def sentence_pairs(count: int, seed: int):
    """Yield ``count`` (chinese, english) pairs."""
    rng = random.Random(seed)
    english_words, chinese_words = make_lexicon(rng)
    # Zipf's law: the word of rank r is used in proportion to 1 / r, as in real text.
    cumulative = list(accumulate(1 / rank for rank in range(1, len(english_words) + 1)))
    recent: list[tuple[str, str]] = []
    for index in range(count):
        roll = rng.random()
        if recent and roll < 0.01:  # an exact duplicate of a recent pair
            yield rng.choice(recent)
            continue
        words = rng.choices(range(len(english_words)), cum_weights=cumulative, k=rng.randint(2, 15))
        english = " ".join(english_words[w] for w in words).capitalize() + "."
        chinese = "".join(chinese_words[w] for w in words) + "。"
        if recent and roll < 0.04:  # another translation of a recent English sentence
            english = rng.choice(recent)[1]
        elif roll < 0.045:
            chinese = f"{chinese}{rng.randint(0, 99):d}".translate(_FULL_WIDTH_DIGITS)
        elif roll < 0.05:
            chinese = rng.choice(TRADITIONAL) + chinese
        elif roll < 0.051:
            english = ""
        elif roll < 0.052:
            chinese *= 12  # over-long
        pair = (chinese, english)
        if index % 97 == 0:
            recent = [*recent[-999:], pair]
        yield pair


_FULL_WIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, required=True, help="output prefix")
    parser.add_argument("--tsv", action="store_true", help="one TSV (english<TAB>chinese)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pairs = sentence_pairs(args.pairs, args.seed)
    if args.tsv:
        with open(args.out.with_suffix(".tsv"), "w", encoding="utf-8", newline="\n") as tsv:
            for chinese, english in pairs:
                tsv.write(f"{english}\t{chinese}\tsynthetic\n")
    else:
        with (
            open(args.out.with_name(args.out.name + ".zh"), "w", encoding="utf-8") as zh,
            open(args.out.with_name(args.out.name + ".en"), "w", encoding="utf-8") as en,
        ):
            for chinese, english in pairs:
                zh.write(chinese + "\n")
                en.write(english + "\n")


if __name__ == "__main__":
    main()
