"""The one block of figures that data preparation ends with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nmt.data.clean import FILTERS


@dataclass
class PrepareSummary:
    corpus: str
    direction: str  # "zh -> en"
    origin: str  # where the inputs were found
    train_input: str  # the training input's file(s)
    credit: str  # licence / attribution of the corpus, if known
    pairs_read: int  # pairs of the training input, before cleaning and splitting
    removed: dict[str, int]  # filter -> pairs it removed
    split_sizes: dict[str, int]
    split_notes: dict[str, str]  # how each split was made
    vocab_sizes: dict[str, list[int]]  # vocabulary name -> [asked, got]
    output_dir: str
    files: list[str]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    reused: bool = False
    notes: list[str] = field(default_factory=list)
    # Per training corpus: name, pairs_read, removed (filter -> count), kept, train.
    corpora: list[dict[str, Any]] = field(default_factory=list)
    # data.on_error=skip: file -> [lines skipped, first line numbers]; the log file's name.
    malformed: dict[str, list] = field(default_factory=dict)
    malformed_log: str = ""
    shares: list[float] = field(default_factory=list)  # each corpus's share of an epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrepareSummary:
        return cls(**data)

    def _corpus_line(self, index: int) -> str:
        corpus = self.corpora[index]
        removed = {name: count for name, count in corpus["removed"].items() if count}
        listed = ", ".join(f"{name} {count:,}" for name, count in removed.items()) or "none"
        share = f", {self.shares[index]:.1%} of an epoch" if len(self.shares) > index else ""
        return (
            f"corpus      {corpus['name']}: read {corpus['pairs_read']:,}, removed "
            f"{sum(removed.values()):,} ({listed}), train {corpus['train']:,}{share}"
        )

    def _malformed_line(self) -> str:
        total = sum(count for count, _ in self.malformed.values())
        files = "; ".join(
            f"{name} {count:,} (line{'s' if count > 1 else ''} "
            f"{', '.join(map(str, numbers))}{', ...' if count > len(numbers) else ''})"
            for name, (count, numbers) in self.malformed.items()
        )
        where = f"; all in {self.malformed_log}" if self.malformed_log else ""
        return f"malformed   {total:,} lines skipped (data.on_error=skip): {files}{where}"

    def format(self) -> str:
        removed_total = sum(self.removed.values())
        share = removed_total / self.pairs_read if self.pairs_read else 0.0
        per_filter = ", ".join(f"{name} {self.removed.get(name, 0):,}" for name in FILTERS)
        splits = " | ".join(
            f"{name} {size:,} ({self.split_notes[name]})" for name, size in self.split_sizes.items()
        )
        vocabularies = " | ".join(
            f"{name} {got:,} pieces" + (f" (asked {asked:,})" if got != asked else "")
            for name, (asked, got) in self.vocab_sizes.items()
        )
        lines = [
            f"== nmt prepare: {self.corpus} ({self.direction}) ==",
            f"source      {self.origin}",
        ]
        if self.credit:
            lines.append(f"credit      {self.credit}")
        lines += [
            f"read        {self.pairs_read:,} pairs from {self.train_input}",
            f"removed     {removed_total:,} ({share:.1%}): {per_filter}",
        ]
        if len(self.corpora) > 1:
            lines += [self._corpus_line(index) for index in range(len(self.corpora))]
        if self.malformed:
            lines.append(self._malformed_line())
        lines += [
            f"splits      {splits}",
            f"vocabulary  {vocabularies}",
            f"output      {self.output_dir}/: {', '.join(_folded(self.files))}",
        ]
        if self.reused:
            lines.append(
                f"time        reused, unchanged inputs and settings (built in {self.seconds:.1f} s)"
            )
        else:
            stages = ", ".join(
                f"{name} {seconds:.1f}" for name, seconds in self.stage_seconds.items()
            )
            lines.append(f"time        {self.seconds:.1f} s ({stages})")
        lines += [f"note        {note}" for note in self.notes]
        return "\n".join(lines)


def _folded(files: list[str]) -> list[str]:
    """File names with each folder's files shown once as ``folder/``."""
    shown: dict[str, None] = {}
    for name in files:
        shown[name.split("/")[0] + "/" if "/" in name else name] = None
    return list(shown)
