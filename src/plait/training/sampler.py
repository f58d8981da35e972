"""The order in which an epoch visits the training rows.

Either order depends only on (seed, epoch), so a resumed run replays it exactly, and each visits every row once.
"""

from __future__ import annotations

from typing import Callable

import torch
from plait.config import SamplerConfig
from plait.errors import PlaitError


def generator_for(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def epoch_order(rows: int, seed: int, epoch: int) -> torch.Tensor:
    """A random permutation of the rows."""
    return torch.randperm(rows, generator=generator_for(seed, epoch))


def m_per_class_order(labels: torch.Tensor, m: int, seed: int, epoch: int) -> torch.Tensor:
    """Row positions grouped `m` at a time by label: whole groups in random order, then the short leftovers.

    `labels` [rows]: a class id per row, -1 for a row without one (such rows end up among the leftovers)."""
    generator = generator_for(seed, epoch)
    full, short = [], []
    for label in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == label).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        for group in rows.split(m):
            (full if label >= 0 and len(group) == m else short).append(group)
    full = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    leftovers = torch.cat(short) if short else torch.empty(0, dtype=torch.long)
    leftovers = leftovers[torch.randperm(len(leftovers), generator=generator)]
    return torch.cat(full + [leftovers])


def make_sampler(config: SamplerConfig, split, tasks: dict, seed: int, batch_size: int) -> Callable[[int], torch.Tensor]:
    """epoch → the order of the training split's rows in that epoch."""
    if config.name == "shuffle":
        return lambda epoch: epoch_order(len(split), seed, epoch)
    if batch_size % config.m:
        raise PlaitError(f"train.sampler: batch_size {batch_size} is not a multiple of m ({config.m}), so groups of one class would straddle batches")
    classed = [name for name, task in tasks.items() if task.spec.type in ("category", "embedding")]
    name = config.output or (classed[0] if classed else None)
    if name not in classed:
        raise PlaitError(f"train.sampler.output: {name!r} is not a category or embedding output "
                         f"(those are: {', '.join(classed) or 'none'})")
    target = split.targets[name]
    labels = torch.where(target["present"], target["value"], torch.full_like(target["value"], -1))
    return lambda epoch: m_per_class_order(labels, config.m, seed, epoch)
