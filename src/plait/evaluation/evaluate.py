"""Run a model over an encoded split and score every output."""

from __future__ import annotations

from collections import defaultdict

import torch

from plait.data.dataset import EncodedSplit, prepare_inputs, to_device


@torch.no_grad()
def predict_split(model, features: dict, split: EncodedSplit, batch_size: int, device, drop=frozenset()) -> dict[str, torch.Tensor]:
    """Raw predictions per output for every row of the split, in order. `drop` leaves inputs out (masked)."""
    was_training = model.training
    model.eval()
    collected = defaultdict(list)
    for indices in torch.arange(len(split)).split(batch_size):
        batch = to_device(split.batch(indices), device)
        outputs = model(prepare_inputs(features, batch["inputs"], training=False), drop=frozenset(drop))
        for name, prediction in outputs.items():
            collected[name].append(prediction.float().cpu())
    model.train(was_training)
    return {name: torch.cat(parts) for name, parts in collected.items()}


def score(tasks: dict, predictions: dict[str, torch.Tensor], split: EncodedSplit) -> dict[str, float]:
    """`loss` (weighted total), and per output `NAME.loss` and `NAME.METRIC`."""
    metrics: dict[str, float] = {}
    total = 0.0
    for name, task in tasks.items():
        target = split.targets[name]
        loss = float(task.loss(predictions[name], target))
        total += task.spec.loss_weight * loss
        metrics[f"{name}.loss"] = loss
        metrics.update({f"{name}.{key}": value for key, value in task.metrics(predictions[name], target).items()})
    return {"loss": total, **metrics}


def evaluate_split(model, features, tasks, split, batch_size, device, drop=frozenset()) -> tuple[dict[str, float], dict]:
    predictions = predict_split(model, features, split, batch_size, device, drop)
    return score(tasks, predictions, split), predictions
