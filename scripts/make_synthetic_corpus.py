"""Write a synthetic Chinese-English corpus of any size, for the data-pipeline benchmarks.

The sentences are nonsense but shaped like real ones: 2-15 English words (real words, from
the embedded Tatoeba training split, used with Zipf frequencies, so language identification
sees English) against 3-25 Chinese characters, with the things cleaning and splitting must
handle mixed in: repeated pairs, sentences shared between pairs, Traditional characters,
full-width digits, empty and over-long lines; and, with the defaults, messy input:

* ``--malformed 0.01`` (TSV only): lines that are not a valid pair (1 or 4 fields, or bytes
  that are not UTF-8);
* ``--wrong-language 0.02``: a Chinese sentence in the English column, English in the
  Chinese column, or a French or German sentence in the English column.

    python scripts/make_synthetic_corpus.py --pairs 20000000 --out /tmp/scale/train --tsv --gzip
    # -> /tmp/scale/train.tsv.gz (english<TAB>chinese<TAB>credit), plus dev/test files
    #    /tmp/scale/dev.{zh,en} and /tmp/scale/test.{zh,en} (--held-out pairs each)
    python scripts/make_synthetic_corpus.py --pairs 2000000 --out /tmp/s/train  # train.zh/.en
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
from collections import Counter
from itertools import accumulate
from pathlib import Path

from nmt.data.normalize import to_simplified
from nmt.data.readers import read_lines
from nmt.data.sources import EMBEDDED_DIR

TRADITIONAL = "們說話臺灣覆藉後裡電腦學習書讀鐘"
FRENCH = (
    "le la les un une des et est dans pour avec sur pas plus que qui nous vous ils elle très bien"
)
GERMAN = "der die das und ist nicht ein eine mit auf für von sich auch noch wir sie ich schon sehr"


def make_lexicon(rng: random.Random) -> tuple[list[str], list[str]]:
    """Aligned word lists, most frequent first: English word i translates as Chinese word i."""
    english_text = read_lines(EMBEDDED_DIR / "tatoeba-zh-en" / "train.en.gz")
    counts = Counter(word for line in english_text for word in re.findall(r"[a-z]+", line.lower()))
    english = [word for word, _ in counts.most_common(8000)]
    # Simplified characters, as in most real corpora; Traditional ones are mixed in below.
    candidates = [chr(code) for code in range(0x4E00, 0x9FA6)]
    simplified = [char for char in candidates if to_simplified(char) == char]
    characters = rng.sample(simplified, 3500)
    chinese = ["".join(rng.choices(characters, k=rng.choice((1, 2, 2, 3)))) for _ in english]
    return english, chinese


def sentence_pairs(count: int, seed: int, wrong_language: float = 0.0):
    """Yield ``count`` (chinese, english) pairs, ``wrong_language`` of them in a wrong column."""
    rng = random.Random(seed)
    english_words, chinese_words = make_lexicon(random.Random(0))  # one lexicon for all seeds
    foreign = [FRENCH.split(), GERMAN.split()]
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
        elif roll < 0.052 + wrong_language:
            kind = rng.randrange(4)
            # Another sentence in the wrong column (the same one would be an identical pair).
            other = rng.choices(range(len(english_words)), cum_weights=cumulative, k=len(words))
            if kind == 0:  # Chinese in the English column
                english = "".join(chinese_words[w] for w in other) + "。"
            elif kind == 1:  # English in the Chinese column
                chinese = " ".join(english_words[w] for w in other).capitalize() + "."
            else:  # French or German in the English column
                vocabulary = foreign[kind - 2]
                english = " ".join(rng.choices(vocabulary, k=len(words) + 4)).capitalize() + "."
        pair = (chinese, english)
        if index % 97 == 0:
            recent = [*recent[-999:], pair]
        yield pair


_FULL_WIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def malformed_line(rng: random.Random, english: str, chinese: str) -> bytes:
    """A line no reader accepts as a pair: 1 or 4 tab-separated fields, or GB18030 bytes."""
    kind = rng.randrange(3)
    if kind == 0:
        return f"{english} {chinese}\n".encode()
    if kind == 1:
        return f"{english}\t{chinese}\tsynthetic\textra\n".encode()
    return f"{english}\t{chinese}\tsynthetic\n".encode("gb18030")


def write_tsv(path: Path, pairs, malformed: float, seed: int, opener) -> None:
    rng = random.Random(seed + 1)
    with opener(path) as out:
        chunk = []
        for chinese, english in pairs:
            if rng.random() < malformed:
                chunk.append(malformed_line(rng, english, chinese))
            else:
                chunk.append(f"{english}\t{chinese}\tsynthetic\n".encode())
            if len(chunk) == 10_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


def write_aligned(prefix: Path, pairs, suffix: str, opener) -> None:
    with (
        opener(prefix.with_name(f"{prefix.name}.zh{suffix}")) as zh,
        opener(prefix.with_name(f"{prefix.name}.en{suffix}")) as en,
    ):
        for chinese, english in pairs:
            zh.write(f"{chinese}\n".encode())
            en.write(f"{english}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, required=True, help="output prefix")
    parser.add_argument(
        "--tsv", action="store_true", help="one TSV (english<TAB>chinese<TAB>credit)"
    )
    parser.add_argument("--gzip", action="store_true", help="gzip the training file(s)")
    parser.add_argument("--malformed", type=float, default=0.01, help="share of bad TSV lines")
    parser.add_argument("--wrong-language", type=float, default=0.02, help="share of pairs")
    parser.add_argument("--held-out", type=int, default=0, help="dev and test pairs each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # gzip level 1: 3x faster than the default and within 15% of its size on this text.
    opener = (
        (lambda path: gzip.open(path, "wb", compresslevel=1))
        if args.gzip
        else (lambda path: open(path, "wb"))
    )
    suffix = ".gz" if args.gzip else ""
    pairs = sentence_pairs(args.pairs, args.seed, args.wrong_language)
    if args.tsv:
        write_tsv(
            args.out.with_name(f"{args.out.name}.tsv{suffix}"),
            pairs,
            args.malformed,
            args.seed,
            opener,
        )
    else:
        write_aligned(args.out, pairs, suffix, opener)
    if args.held_out:
        # Other seeds: fresh sentences (a few may repeat training ones; cleaning removes those).
        for name, seed in (("dev", args.seed + 101), ("test", args.seed + 202)):
            held_out = sentence_pairs(args.held_out, seed)
            write_aligned(args.out.with_name(name), held_out, "", lambda path: open(path, "wb"))


if __name__ == "__main__":
    main()
