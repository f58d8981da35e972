"""The order in which an epoch visits the training rows.

Every order depends only on (seed, epoch), so a resumed run replays it exactly. `shuffle` and `m_per_class` visit
every row once; `balanced` visits every class equally often, repeating rare classes' rows and leaving out some of the
frequent classes', in an epoch of the same length. The order is the whole epoch's: under several processes the
trainer cuts each batch of it into the ranks' shares.
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


def balanced_order(labels: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """Row positions, as many as there are rows, in which every class is visited equally often, in random order.

    `labels` [rows]: a class id per row, -1 for a row without one. Each unlabelled row is visited once; the other
    places are shared among the classes, `labelled // classes` each and one more for `labelled % classes` classes
    drawn at random. A class's quota goes round its rows as evenly as possible: every row the same whole number of
    times, the rest drawn without replacement, so a rare class's rows repeat and a frequent class's are subsampled."""
    generator = generator_for(seed, epoch)
    unlabelled = torch.nonzero(labels < 0).flatten()
    classes = [label for label in torch.unique(labels).tolist() if label >= 0]
    parts = [unlabelled]
    if classes:
        quota, extra = divmod(len(labels) - len(unlabelled), len(classes))
        lucky = set(torch.randperm(len(classes), generator=generator)[:extra].tolist())
        for position, label in enumerate(classes):
            rows = torch.nonzero(labels == label).flatten()
            wanted = quota + (position in lucky)
            rounds, rest = divmod(wanted, len(rows))
            parts += [rows] * rounds + [rows[torch.randperm(len(rows), generator=generator)[:rest]]]
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=generator)]


def classified_labels(split, tasks: dict, output: str | None, types: tuple[str, ...], sampler: str) -> torch.Tensor:
    """The class id per training row of `output` (default: the first output of one of `types`), -1 where it is missing."""
    classed = [name for name, task in tasks.items() if task.spec.type in types]
    name = output or (classed[0] if classed else None)
    if name not in classed:
        raise PlaitError(f"train.sampler.output: {name!r} is not a {' or '.join(types)} output, which `{sampler}` needs "
                         f"(those are: {', '.join(classed) or 'none'})")
    target = split.targets[name]
    return torch.where(target["present"], target["value"], torch.full_like(target["value"], -1))


def make_sampler(config: SamplerConfig, split, tasks: dict, seed: int, batch_size: int) -> Callable[[int], torch.Tensor]:
    """epoch → the order of the training split's rows in that epoch."""
    if config.name == "shuffle":
        return lambda epoch: epoch_order(len(split), seed, epoch)
    if config.name == "balanced":
        labels = classified_labels(split, tasks, config.output, ("category", "binned"), "balanced")
        return lambda epoch: balanced_order(labels, seed, epoch)
    if batch_size % config.m:
        raise PlaitError(f"train.sampler: batch_size {batch_size} is not a multiple of m ({config.m}), so groups of one class would straddle batches")
    labels = classified_labels(split, tasks, config.output, ("category", "embedding"), "m_per_class")
    return lambda epoch: m_per_class_order(labels, config.m, seed, epoch)
