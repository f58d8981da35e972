"""A trained run's final outputs: `evaluation/SPLIT.json` of validation and test, the plots and `report.html`, written
at the end of training (`finish`) or again for any run folder (`report`)."""

from __future__ import annotations

from pathlib import Path

from plait.console import say
from plait.evaluation.evaluate import uses_gallery
from plait.evaluation.plots import history_plots
from plait.evaluation.saved import read_evaluation
from plait.report.build import ReportData, write_report
from plait.runs.run import Evaluation, Run
from plait.training.tracking import NullTracker, read_metrics


def finish(run: Run, splits: dict, real_rows: int | None = None, tracker=NullTracker()) -> None:
    """With the best weights loaded: evaluate validation and test (every process of the run's world calls it, and
    each evaluates a share), then the first process writes evaluation/<split>.json, the plots and report.html, and
    hands the final metrics and files to the trackers. Rows from `real_rows` on were generated (data.augment):
    trained on, but never part of a retrieval gallery."""
    galleries = {name: run.gallery(splits[name], real_rows, together=True)
                 for name in uses_gallery(run.config.outputs) if name in splits}
    evaluations = {name: run.evaluate(splits, name, galleries, together=True)
                   for name in ("validation", "test") if name in splits and len(splits[name])}
    if not run.world.is_main:
        return
    for evaluation in evaluations.values():
        run.write_evaluation(evaluation)
    plots = run.folder / "plots"
    curves = history_plots(read_metrics(run.folder), str(plots))
    shown = report_split(run, [name for name in splits if len(splits[name])])
    metrics_by_split = {name: evaluation.metrics for name, evaluation in evaluations.items()}
    output_plots = run.output_plots(evaluations[shown]) if shown in evaluations else {}
    files = sorted(plots.glob("*.png"))
    if run.config.report.write and shown not in evaluations:
        say("[yellow]report.html not written: the run has no validation or test rows to show[/yellow]")
    elif run.config.report.write:
        shown_evaluation = evaluations[shown]
        shown_evaluation.galleries = {name: gallery for name, gallery in galleries.items() if name != shown}
        rows = {name: len(split) for name, split in splits.items()}
        baselines = caption_baselines(run, splits.get("train"), shown_evaluation)
        files.append(_write_report(run, shown_evaluation, metrics_by_split, rows, curves, output_plots, baselines))
    final = {f"{split}.{key}": value for split, metrics in metrics_by_split.items() for key, value in metrics.items()}
    tracker.log_final(final, files, run.checkpoint)


def report(run: Run, split: str | None = None) -> Path:
    """Write `report.html` for a trained run: `split` (default: the config's `report.split`) is evaluated again, the
    other splits' final metrics are read from `evaluation/`."""
    present = run.splits()
    shown = split or report_split(run, present)
    run.require_split(shown)
    splits = run.encode([name for name in run.with_galleries(shown) if name in present])
    evaluation = run.evaluate(splits, shown)
    metrics_by_split = {}
    for name in ("train", "validation", "test"):
        saved = read_evaluation(run.folder, name)
        if name == shown:
            metrics_by_split[name] = evaluation.metrics
        elif saved is not None:
            metrics_by_split[name] = saved
    curves = history_plots(read_metrics(run.folder), str(run.folder / "plots"))
    rows = {name: run.data.count(name) for name in present}  # before any bad row is skipped
    train = None
    if _writes_captions(run) and "train" in present:
        train = splits["train"] if "train" in splits else run.encode(["train"])["train"]
    return _write_report(run, evaluation, metrics_by_split, rows, curves, run.output_plots(evaluation),
                         caption_baselines(run, train, evaluation))


def report_split(run: Run, splits: list[str]) -> str | None:
    """The split the report shows: `report.split`, or (`auto`, or the chosen one is empty) test, else validation."""
    preferred = [run.config.report.split] if run.config.report.split != "auto" else []
    return next((name for name in [*preferred, "test", "validation"] if name in splits), None)


def caption_baselines(run: Run, train, shown: Evaluation) -> dict[str, dict]:
    """The floors a captioner must clear on the shown split: the caption of the nearest training image, by pixels and
    by the trained image encoder ({} without a caption output, an image input or training rows)."""
    if train is None or not _writes_captions(run):
        return {}
    found = {"nearest training image (pixels)": run.nearest_captions(train, shown.split, "pixels"),
             "nearest training image (encoder)": run.nearest_captions(train, shown.split, "features")}
    return {name: metrics for name, metrics in found.items() if metrics}


def _writes_captions(run: Run) -> bool:
    return any(task.generates for task in run.tasks.values())


def _write_report(run: Run, shown: Evaluation, metrics_by_split: dict, rows: dict, curves: list,
                  output_plots: dict, baselines: dict) -> Path:
    """report.html of the shown split, with its modality ablation (also written to evaluation/ablation_SPLIT.json)."""
    ablation = None
    if run.config.report.ablation and len(run.features) > 1:
        ablation = run.ablate(shown.split, metrics_by_split[shown.split.name])
        run.write_ablation(ablation)
    path = write_report(ReportData(run, run.data.table, shown.split, shown.predictions, metrics_by_split, rows, curves,
                                   output_plots, ablation, shown.galleries, baselines))
    say(f"report: {path}")
    return path
