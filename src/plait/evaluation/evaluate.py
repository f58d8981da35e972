"""Run a model over an encoded split and score every output; outputs that generate (captions) are also written
out once per group of rows (per image) and scored against all of that group's references.

Several processes (`world`) share the work: batch k of a split goes to process k mod N, and the predictions are
gathered on every process in batch order. Each batch holds the same rows as in one process, so the predictions,
and the metrics computed from them, are the same to the bit."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from plait.console import progress_bar
from plait.data.dataset import EncodedSplit, load_batch, prepare_inputs, to_device
import plait.distributed as distributed
from plait.distributed import World


@dataclass
class Generated:
    """One generated output per group of rows: the first row of each group, its text, and the group's references."""

    rows: list[int]  # positions in the split
    groups: list[str]
    texts: list[str]
    references: list[list[str]]


def to_cpu(tree):
    if isinstance(tree, dict):
        return {key: to_cpu(value) for key, value in tree.items()}
    return tree.detach().float().cpu()


def concatenate(parts: list):
    if isinstance(parts[0], dict):
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return torch.cat(parts)


def my_batches(batches: tuple, world: World | None) -> list[int]:
    """The numbers of the batches this process runs."""
    world = world or World()
    return list(range(world.rank, len(batches), world.size))


def in_batch_order(mine: dict[int, object], world: World | None) -> list:
    """Every process's results per batch number (`mine`: this process's), in batch order."""
    if world is not None and world.is_distributed:
        mine = {number: part for parts in distributed.gather(mine, world) for number, part in parts.items()}
    return [mine[number] for number in sorted(mine)]


@torch.no_grad()
def predict_split(model, features: dict, tasks: dict, split: EncodedSplit, batch_size: int, device,
                  drop=frozenset(), world: World | None = None) -> dict[str, torch.Tensor | dict]:
    """Raw predictions per output for every row of the split, in order (each task's `reduce` of them, when the split
    has targets), on every process of `world`, each of which predicts a share of the batches. A generating output
    appears only when the split has its targets. `drop` leaves inputs out."""
    was_training = model.training
    model.eval()
    batches = torch.arange(len(split)).split(batch_size)
    mine = {}
    for number in my_batches(batches, world):
        batch = load_batch(split, batches[number], tasks, device)
        targets = batch["targets"] or None
        outputs = model(prepare_inputs(features, batch["inputs"], training=False), drop=frozenset(drop), targets=targets)
        mine[number] = {name: to_cpu(tasks[name].reduce(prediction, targets[name]) if targets and name in targets
                                     else prediction) for name, prediction in outputs.items()}
    model.train(was_training)
    parts = in_batch_order(mine, world)
    return {name: concatenate([part[name] for part in parts]) for name in (parts[0] if parts else {})}


@torch.no_grad()
def generate_rows(model, features: dict, output: str, split: EncodedSplit, rows: list[int], batch_size: int, device,
                  drop=frozenset(), world: World | None = None, **options) -> list[list[int]]:
    """Token ids the head of `output` writes for `rows` of the split (options: beam_size, length_penalty, max_length),
    on every process of `world`, each of which writes a share of the batches."""
    was_training = model.training
    model.eval()
    batches = torch.tensor(rows, dtype=torch.long).split(batch_size)
    numbers = my_batches(batches, world)
    mine = {}
    for number in progress_bar(numbers, f"generating {output} ({split.name})", total=len(numbers)):
        inputs = to_device(split.batch(batches[number])["inputs"], device)
        mine[number] = model.generate(prepare_inputs(features, inputs, training=False), output, frozenset(drop), **options)
    model.train(was_training)
    return [ids for part in in_batch_order(mine, world) for ids in part]


def generate_for_groups(model, features, task, output: str, split: EncodedSplit, batch_size: int, device,
                        drop=frozenset(), world: World | None = None) -> Generated:
    """One generated text per group (image) of the split, with every reference text of that group."""
    first, references = caption_groups(split.row_info[output])
    groups = list(first)
    ids = generate_rows(model, features, output, split, [first[g] for g in groups], batch_size, device, drop, world)
    return Generated([first[g] for g in groups], groups, task.decode_ids(ids), [references[g] for g in groups])


def caption_groups(info: dict[str, list]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """A caption output's rows grouped by image (its `row_info`): each group's first row, and its reference texts."""
    first: dict[str, int] = {}
    references: dict[str, list[str]] = defaultdict(list)
    for position, (group, text) in enumerate(zip(info["group"], info["caption"])):
        first.setdefault(group, position)
        references[group].append(text)
    return first, references


def score(tasks: dict, predictions: dict, split: EncodedSplit) -> dict[str, float]:
    """`loss` (weighted total), and per output `NAME.loss` and `NAME.METRIC`."""
    metrics: dict[str, float] = {}
    total = 0.0
    for name, task in tasks.items():
        target = split.targets[name]
        loss = float(task.evaluation_loss(predictions[name], target))
        total += task.spec.loss_weight * loss
        metrics[f"{name}.loss"] = loss
        metrics.update({f"{name}.{key}": value for key, value in task.metrics(predictions[name], target).items()})
    return {"loss": total, **metrics}


def evaluate_split(model, features, tasks, split, batch_size, device, drop=frozenset(),
                   world: World | None = None) -> tuple[dict[str, float], dict]:
    """Metrics of every output on a split, and the predictions behind them (a generating output's also hold its
    `Generated` texts under `generated`), on every process of `world`, which share the work."""
    predictions = predict_split(model, features, tasks, split, batch_size, device, drop, world)
    metrics = score(tasks, predictions, split)
    for name, task in tasks.items():
        if task.generates:
            generated = generate_for_groups(model, features, task, name, split, batch_size, device, drop, world)
            metrics.update({f"{name}.{key}": value for key, value in task.text_metrics(generated.texts, generated.references).items()})
            predictions[name] = {**predictions[name], "generated": generated}
    return metrics, predictions


def embeddings_of(prediction) -> torch.Tensor:
    """An embedding output's vectors, whether evaluation kept them with their losses (a dict) or not."""
    return prediction["embedding"] if isinstance(prediction, dict) else prediction


def search_gallery(tasks: dict, predictions: dict, split: EncodedSplit, gallery: EncodedSplit,
                   gallery_predictions: dict) -> dict[str, float]:
    """`NAME.vs_GALLERY.METRIC` for each output that searches the split's rows among the gallery split's
    (`gallery: train` on an embedding output)."""
    metrics: dict[str, float] = {}
    for name, task in tasks.items():
        if getattr(task.spec, "gallery", None) == gallery.name and split is not gallery:
            found = task.gallery_metrics(predictions[name], split.targets[name], gallery_predictions[name], gallery.targets[name])
            metrics.update({f"{name}.vs_{gallery.name}.{key}": value for key, value in found.items()})
    return metrics


def uses_gallery(outputs: list) -> set[str]:
    """The splits some output (of the config's `outputs`) searches as its gallery."""
    return {spec.gallery for spec in outputs if getattr(spec, "gallery", None)}
