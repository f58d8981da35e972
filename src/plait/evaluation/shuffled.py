"""A floor that measures whether a model reads its inputs: the trained model scored on a split whose rows each
get another row's inputs (another image's, where rows come in groups such as the five captions of one photo),
the targets left in place. A captioner that writes from its previous words alone scores the same either way."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from plait.data.cache import CachedCells
from plait.data.dataset import EncodedSplit


def other_rows(groups: list[str]) -> list[int]:
    """For each row, a row of another group: rows ordered by group, each paired with the row as many places on as
    the largest group holds (so never its own group, unless one group holds more than half the rows)."""
    order = sorted(range(len(groups)), key=lambda row: groups[row])
    largest = max(Counter(groups).values(), default=1)
    shift = largest % len(groups) if len(groups) > 1 else 0
    partner = [0] * len(groups)
    for place, row in enumerate(order):
        partner[row] = order[(place + shift) % len(order)]
    return partner


def with_shuffled_inputs(split: EncodedSplit, groups: list[str] | None = None) -> EncodedSplit:
    """The split with each row's inputs taken from `other_rows(groups)` (groups: None, every row its own)."""
    partner = other_rows(groups if groups is not None else [str(row) for row in range(len(split))])
    inputs = {name: cells.subset(partner) if isinstance(cells, CachedCells) else {key: values[partner] for key, values in cells.items()}
              for name, cells in split.inputs.items()}
    return replace(split, inputs=inputs)
