"""Several run folders side by side: the settings that differ, the final metrics with the best run marked, how
long and how far each trained, and their validation curves drawn on shared plots."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import plait.components  # noqa: F401  (registers the task types that say which way each metric is better)
from plait.config import flatten, load_config, to_dict
from plait.errors import PlaitError
from plait.evaluation.saved import read_evaluation
from plait.evaluation.plots import _save, curve_plot, plt  # pyplot, on the Agg backend plots selects
from plait.registry import TASKS
from plait.training.history import metric_keys, per_epoch, training_summary
from plait.training.tracking import read_metrics


def compare_runs(folders: list[str | Path], split: str = "test", output: str | Path | None = None) -> dict:
    """Compare trained runs. Returns {"runs", "config_differences", "metrics", "plots"}: one summary per run (its
    name, folder, the split its final metrics come from, epochs, best monitored value, wall time), the flattened
    config keys whose values differ ({key: {run: value}}), the final metrics of `split` (validation where a run has
    no such file) with the best runs per metric, and the plots written into `output` (none when it is None)."""
    folders = [Path(folder) for folder in folders]
    if len(folders) < 2:
        raise PlaitError("compare needs at least two run folders")
    for folder in folders:
        if not (folder / "config.yaml").is_file():
            raise PlaitError(f"{folder}: not a run folder (no config.yaml)")
    names = run_names(folders)
    configs = {name: to_dict(load_config(folder / "config.yaml")) for name, folder in zip(names, folders)}
    histories = {name: read_metrics(folder) for name, folder in zip(names, folders)}
    finals = {name: final_metrics(folder, split) for name, folder in zip(names, folders)}
    tasks = {name: task_types(config) for name, config in configs.items()}
    runs = [{"name": name, "folder": str(folder.resolve()), "split": finals[name][0],
             **training_summary(configs[name], histories[name], tasks[name])} for name, folder in zip(names, folders)]
    every_task = {output: task for run_tasks in tasks.values() for output, task in run_tasks.items()}
    return {
        "runs": runs,
        "config_differences": config_differences({name: flatten(config) for name, config in configs.items()}),
        "metrics": compare_metrics({name: metrics for name, (_, metrics) in finals.items()}, every_task),
        "plots": comparison_plots(histories, Path(output)) if output is not None else [],
    }


def run_names(folders: list[Path]) -> list[str]:
    """A short name per run: its folder's name, or, where two runs share one, the parent folder's name too
    (`md0.0/run`), and ` (2)`, ` (3)`... on the later ones where even that is shared (the same folder twice)."""
    names = [folder.name for folder in folders]
    clashing = {name for name, count in Counter(names).items() if count > 1}
    names = [f"{folder.resolve().parent.name}/{name}" if name in clashing else name for folder, name in zip(folders, names)]
    counts, seen, unique = Counter(names), Counter(), []
    for name in names:
        seen[name] += 1
        unique.append(name if counts[name] == 1 or seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def task_types(config: dict) -> dict[str, type]:
    """Output → its task type (the class, which says which way each of its metrics is better)."""
    return {output["name"]: TASKS.get_or_fail(output["type"]) for output in config["outputs"]}


# ── configs ──────────────────────────────────────────────────────────────────────────────────────
def config_differences(flat_configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{key: {run: value}} for the keys whose values are not the same in every run (a run without the key is left
    out of that key's values)."""
    keys = dict.fromkeys(key for flat in flat_configs.values() for key in flat)
    differences = {}
    for key in keys:
        values = {name: flat[key] for name, flat in flat_configs.items() if key in flat}
        if len(values) < len(flat_configs) or len({json.dumps(value, sort_keys=True) for value in values.values()}) > 1:
            differences[key] = values
    return differences


# ── final metrics ────────────────────────────────────────────────────────────────────────────────
def final_metrics(folder: Path, split: str) -> tuple[str | None, dict]:
    """(the split read, its metrics) from `evaluation/SPLIT.json`, else validation's; (None, {}) when the run
    has neither (it did not finish)."""
    for name in dict.fromkeys([split, "validation"]):
        metrics = read_evaluation(folder, name)
        if metrics is not None:
            return name, metrics
    return None, {}


def compare_metrics(metrics_by_run: dict[str, dict], tasks: dict[str, type]) -> dict[str, dict]:
    """{metric: {"values": {run: value}, "higher_is_better", "best": [runs]}} over the union of the runs' metrics;
    `best` holds every run that ties for the best value, and is empty for a metric that is not a number. `tasks`:
    output → its task type."""
    keys = dict.fromkeys(key for metrics in metrics_by_run.values() for key in metrics)
    compared = {}
    for key in keys:
        values = {name: metrics[key] for name, metrics in metrics_by_run.items() if key in metrics}
        numbers = {name: value for name, value in values.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
        higher = higher_is_better(key, tasks)
        best_value = (max if higher else min)(numbers.values(), default=None)
        best = [name for name, value in numbers.items() if value == best_value]
        compared[key] = {"values": values, "higher_is_better": higher, "best": best}
    return compared


def higher_is_better(key: str, tasks: dict[str, type]) -> bool:
    """Whether a larger value of a saved metric (`label.accuracy`, `validation.similar.vs_train.recall_at_5`) is
    better, as the task type of the output it names says; a loss, or a key that names no output, is better lower."""
    *path, metric = key.split(".")
    task = next((tasks[part] for part in path if part in tasks), None)
    return task is not None and task.metric_mode(metric) == "max"


# ── curves ───────────────────────────────────────────────────────────────────────────────────────
def comparison_plots(histories: dict[str, list[dict]], folder: Path) -> list[str]:
    """`loss.png` (each run's validation loss per epoch, its training loss dashed) and one `<metric>.png` per
    validation metric every run logged, a line per run."""
    paths = [str(folder / "loss.png")]
    loss_plot(histories, paths[0])
    shared = set.intersection(*(metric_keys(records) for records in histories.values()))
    for key in sorted(shared):
        metric = key.removeprefix("validation.")
        paths.append(str(folder / f"{metric}.png"))
        curve_plot({name: per_epoch(records, key) for name, records in histories.items()}, paths[-1], metric, metric.split(".")[-1])
    return paths


def loss_plot(histories: dict[str, list[dict]], path: str) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    for index, (name, records) in enumerate(histories.items()):
        colour = f"C{index % 10}"  # one colour per run, shared by its two lines
        for key, style, kind in (("validation.loss", "-", "validation"), ("train.epoch_loss", "--", "train")):
            points = per_epoch(records, key)
            if points:
                axes.plot(*zip(*points), linestyle=style, color=colour, marker="o", markersize=3, label=f"{name} {kind}")
    axes.set(title="loss", xlabel="epoch", ylabel="loss")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)
