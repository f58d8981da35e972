"""How several processes fill one cache folder between them, so that each cell is decoded (and each frozen
backbone's output computed) once, not once per process.

The processes that see the same cache folder form a group: on one machine that is every process; on several machines
it is every process when the folder is on a shared file system, else the processes of each machine (node-local
caches: each machine decodes every cell once, divided among its own processes). Each member takes every `count`-th
cell of the group's missing cells, writes them to the cache, and `settle` waits until every member has written its
share; from then on every process reads every cell from the cache.

This module knows nothing of torch.distributed: `exchange` is the world's all-gather (every process's value, in rank
order), called by every process the same number of times in the same order, whichever group it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _alone(value) -> list:
    return [value]


@dataclass(frozen=True)
class Division:
    """This process's place in its cache group: member `index` of `count`; `group` names the group (its first rank)."""

    index: int = 0
    count: int = 1
    group: int = 0
    exchange: Callable[[object], list] = field(default=_alone, compare=False, repr=False)

    @property
    def shared(self) -> bool:
        return self.count > 1

    def collect(self, value) -> list:
        """Every member's `value`, in rank order (every process of the world calls it together)."""
        return [found for group, found in self.exchange((self.group, value)) if group == self.group]

    def agree(self, missing: list[str]) -> list[str]:
        """The cells any member of the group found missing, in one order every member sees: the table's (each
        member lists its own in table order), so that rows of a memory-mapped table are read front to back, not
        scattered (a scattered read maps far more of the file than it reads). Called before any member writes, so
        all of them take their shares of the same list."""
        return list(dict.fromkeys(key for found in self.collect(list(missing)) for key in found))

    def mine(self, items: list) -> list:
        """This member's share of `items` (a list every member agreed on)."""
        return items[self.index::self.count]

    def settle(self, failures: dict[str, Exception]) -> dict[str, Exception]:
        """Wait until every member has written its share; returns the cells that failed to decode anywhere in the
        group, with the problem met, so that no other member decodes them again to find it."""
        merged: dict[str, Exception] = {}
        for found in self.collect(failures):
            merged.update(found)
        return merged


ALONE = Division()
