"""The report's sections other than the gallery: each takes the `ReportData` and returns its HTML ('' to leave the
section out)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from plait.config import config_text, to_dict
from plait.evaluation.per_class import per_class
from plait.evaluation.plots import curve_plot
from plait.html import escape
from plait.models.model import parameter_table
from plait.report.page import figures, number, table
from plait.training.history import metric_keys, per_epoch, training_summary
from plait.training.tracking import read_metrics

GROUP_CURVES_ABOVE = 3  # outputs; with more, one curve plot per metric holds every output's line


def summary(report) -> str:
    """Cards: each output's main metric on the shown split, then how training went."""
    run, split = report.run, report.split.name
    shown = report.metrics.get(split, {})
    cards = []
    for name, task in run.tasks.items():
        key = f"{name}.{task.main_metric}"
        if key in shown:
            cards.append((number(shown[key]), f"{name} · {task.main_metric} ({split})"))
    trained = training_summary(to_dict(run.config), read_metrics(run.folder), run.tasks)
    cards.append((str(trained["epochs"]), "epochs trained"))
    if trained["best_monitored"] is not None:
        cards.append((number(trained["best_monitored"]), f"best {trained['monitor']} (picks the checkpoint)"))
    started, last = run.folder / "config.yaml", run.folder / "checkpoints" / "last"
    if started.is_file() and last.exists():  # config.yaml is written as a run starts, `last` at its end
        cards.append((_duration(last.stat().st_mtime - started.stat().st_mtime), "run time, start to last checkpoint"))
    cards.append((" / ".join(f"{rows:,}" for rows in report.rows.values()), "rows: " + " / ".join(report.rows)))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{escape(value)}</div><div class="label">{escape(label)}</div></div>'
        for value, label in cards) + "</div>"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def final_metrics(report) -> str:
    """Every final metric, one row each, a column per split: the overall loss first, then output by output; then a
    column per baseline of the shown split (a captioner's: the caption of the nearest training image)."""
    columns = {**report.metrics, **{f"{report.split.name}: {name}": values for name, values in report.baselines.items()}}
    keys = list(dict.fromkeys(key for values in report.metrics.values() for key in values))
    rows = [[escape(key), *(values.get(key) for values in columns.values())] for key in keys]
    return table(["metric", *(escape(name) for name in columns)], rows)


def curves(report) -> str:
    """The loss, then each validation metric per epoch: a plot per output and metric (the run's plots/), or, with more
    than GROUP_CURVES_ABOVE outputs (fifteen binned heads), one plot per metric with a line per output."""
    names = {Path(path).stem: Path(path) for path in report.curves}
    tasks = report.run.tasks
    if len(tasks) <= GROUP_CURVES_ABOVE:
        ordered = sorted(names, key=lambda stem: (stem != "loss", stem))
        return figures([(names[stem], "loss per epoch" if stem == "loss" else f"validation {stem} per epoch") for stem in ordered])
    with tempfile.TemporaryDirectory() as folder:  # drawn for the page only; figures() embeds them at once
        items = [(names["loss"], "loss per epoch")] if "loss" in names else []
        for metric, series in metric_series(read_metrics(report.run.folder), tasks).items():
            path = Path(folder) / f"{metric}.png"
            curve_plot(series, str(path), f"validation {metric}", metric)
            items.append((path, f"validation {metric} per epoch, a line per output"))
        return figures(items)


def metric_series(records: list[dict], tasks: dict) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """metric → output → (epoch, value) of every validation metric logged per epoch (the losses left out)."""
    logged = metric_keys(records)
    series: dict = {}
    for key in dict.fromkeys(key for record in records for key in record if key in logged):  # in the order logged
        parts = key.split(".")
        if len(parts) == 3 and parts[1] in tasks:
            series.setdefault(parts[2], {})[parts[1]] = per_epoch(records, key)
    return series


def outputs(report) -> str:
    """Per output: its metrics and plots of the shown split and, for a classifier, precision, recall and F1 per class."""
    run, split = report.run, report.split
    parts = []
    for name, task in run.tasks.items():
        spec = task.spec
        parts.append(f"<h3>{escape(name)} <span class=\"caption\">({escape(spec.type)} of column "
                     f"{escape(spec.column)})</span></h3>")
        scores = {key.removeprefix(f"{name}."): value for key, value in report.metrics.get(split.name, {}).items()
                  if key.startswith(f"{name}.") and isinstance(value, float)}
        parts.append(table(["metric", split.name], [[escape(key), value] for key, value in scores.items()]))
        parts.append(figures([(path, _plot_caption(path, split.name)) for path in report.output_plots.get(name, [])]))
        prediction, names = report.predictions.get(name), task.class_names()
        if names and isinstance(prediction, torch.Tensor) and prediction.dim() == 2 and prediction.shape[1] == len(names):
            rows = per_class(prediction, split.targets[name], names)
            parts.append(table(["class", "precision", "recall", "F1", "support"],
                               [[escape(r["class"]), r["precision"], r["recall"], r["f1"], r["support"]] for r in rows]))
    return "".join(parts)


def _plot_caption(path, split: str) -> str:
    stem = str(path).rsplit("/", 1)[-1].removesuffix(".png")
    kind = ("confusion matrix" if stem.startswith("confusion_") else "embedding map" if stem.startswith("embeddings_")
            else "predicted against true" if stem.startswith("predicted_") else stem)
    return f"{kind} ({split})"


def ablation(report) -> str:
    """Each variant's main metric per output, its change from the fused model, and a bar as long as the change."""
    result = report.ablation
    if result is None:
        return ""
    outputs = list(result.main_metrics)
    largest = max((abs(result.change(v, o) or 0.0) for v in result.metrics for o in outputs), default=0.0) or 1.0
    rows = []
    for variant in result.metrics:
        cells = [escape(variant)]
        for output in outputs:
            value, change, harm = result.metrics[variant].get(result.main_metrics[output]), result.change(variant, output), result.harm(variant, output)
            if value is None:
                cells.append("")
            elif variant == "fused":
                cells.append(f'<span class="num">{number(value)}</span>')
            else:
                width = round(80 * abs(change) / largest)
                tone = "worse" if harm > 0 else "better"
                cells.append(f'{number(value)} ({change:+.4f}) <span class="bar {tone}" style="width:{width}px"></span>')
        rows.append(cells)
    note = ("The trained model evaluated on the " + escape(result.split) + " split with inputs left out: a left-out "
            "input takes the missing-value path (its learned 'missing' vector), as an empty cell does. Red: worse "
            "than with every input; the longer the bar, the more that input mattered.")
    return f'<p class="note">{note}</p>' + table(["inputs", *(result.main_metrics[o] for o in outputs)], rows)


def model(report) -> str:
    run = report.run
    inputs = [[escape(spec.name), escape(spec.type), escape(spec.column), escape(spec.encoder.name),
               "frozen" if spec.encoder.freeze else "trained"] for spec in run.config.inputs]
    return (table(["input", "type", "column", "encoder", ""], inputs)
            + f'<p class="note">fusion: {escape(run.config.fusion.name)}</p>'
            + table(["component", "trainable", "frozen"], [[escape(r[0]), r[1], r[2]] for r in parameter_table(run.model)]))


def config(report) -> str:
    """The resolved config (every default filled in), folded: it is what `config.yaml` in the run folder holds."""
    text = config_text(report.run.config)
    return (f"<details><summary>the resolved config, {text.count(chr(10))} lines (every default filled in; the run "
            f"folder's config.yaml)</summary><pre>{escape(text)}</pre></details>")
