"""What became of each input's cells in a split: decoded now, read from the preprocessing cache, missing (and why),
or bad (its row skipped). The four add up to the split's rows, so a count never leaves the user guessing where
the other clips went."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from plait.console import print_table


@dataclass
class CellTally:
    decoded: int = 0
    from_cache: int = 0
    missing: Counter = field(default_factory=Counter)  # reason → cells ("empty cell", "no audio track", ...)
    bad: int = 0

    @property
    def total(self) -> int:
        return self.decoded + self.from_cache + sum(self.missing.values()) + self.bad

    def missing_text(self) -> str:
        """`164 (no audio track 160, empty cell 4)`, or `0`."""
        count = sum(self.missing.values())
        if not count:
            return "0"
        return f"{count:,} ({', '.join(f'{reason} {n:,}' if len(self.missing) > 1 else reason for reason, n in self.missing.most_common())})"


TALLY_COLUMNS = ["split", "input", "rows", "decoded", "from cache", "missing", "bad", "rows skipped"]


def tally_rows(splits) -> list[list]:
    """Table rows for `print_table`, a row per input of each encoded split (its name, `read` rows, `skipped`
    rows and `tallies`)."""
    rows = []
    for split in splits:
        for position, (name, tally) in enumerate(split.tallies.items()):
            first = position == 0
            rows.append([split.name if first else "", name, split.read if first else "", tally.decoded,
                         tally.from_cache, tally.missing_text(), tally.bad, len(split.skipped) if first else ""])
    return rows


def print_tallies(splits) -> None:
    """The table of what became of every input's cells, on stderr."""
    shown = [split for split in splits if split.tallies]
    if shown:
        print_table("cells per input (decoded + from cache + missing + bad = rows)", TALLY_COLUMNS, tally_rows(shown))


def skipped_line(count: int, listed) -> str:
    """`skipped 3 bad rows; see FILE`: what every command that skips rows says."""
    return f"skipped {count} bad row{'s' if count != 1 else ''}; see {listed}"
