"""A run's training history read back from metrics.jsonl: per-epoch series, the metrics it logged, and how far and
how well it trained (used by `plait compare` and the report)."""

from __future__ import annotations

from plait.training.trainer import resolve_monitor


def per_epoch(records: list[dict], key: str) -> list[tuple[int, float]]:
    """(epoch, value) of one key in a run's metrics.jsonl, from the records logged once per epoch."""
    return [(record["epoch"], record[key]) for record in records if "epoch" in record and isinstance(record.get(key), (int, float))]


def metric_keys(records: list[dict]) -> set[str]:
    """The validation metrics of a run's history other than losses (those are in loss.png)."""
    return {key for record in records for key in record if key.startswith("validation.") and not key.endswith("loss")}


def training_summary(config: dict, records: list[dict], tasks: dict) -> dict:
    """Epochs trained, the monitored metric with its best value, and the wall time between the first and the last
    record of metrics.jsonl. `tasks`: output → its task type (class or instance), which says which way is best."""
    has_validation = any(key.startswith("validation.") for record in records for key in record)
    train = config["train"]
    monitor, mode = resolve_monitor(train["monitor"], train["monitor_mode"], tasks, has_validation)
    # without validation the trainer monitors each epoch's mean training loss, logged as train.epoch_loss
    values = [value for _, value in per_epoch(records, "train.epoch_loss" if monitor == "train.loss" else monitor)]
    times = [record["time"] for record in records if "time" in record]
    return {
        "epochs": max((record.get("epoch", 0) for record in records), default=0),
        "monitor": monitor,
        "best_monitored": (max if mode == "max" else min)(values, default=None),
        "wall_time_s": round(max(times) - min(times), 3) if times else None,
    }
