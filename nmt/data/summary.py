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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrepareSummary:
        return cls(**data)

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
            f"splits      {splits}",
            f"vocabulary  {vocabularies}",
            f"output      {self.output_dir}/: {', '.join(self.files)}",
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
