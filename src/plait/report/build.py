"""`report.html`: everything the page shows is gathered in `ReportData` (by plait.runs.final, at the end of training or
by `plait report DIR` for any run), then each section renders its part of it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from plait.config import config_hash
from plait.evaluation.ablation import Ablation
from plait.files import write_atomic
from plait.report import gallery, sections
from plait.report.page import page


@dataclass
class ReportData:
    run: object  # a plait.runs.Run with its best weights loaded
    table: pd.DataFrame  # the data table: the raw cells the gallery shows
    split: object  # the EncodedSplit the predictions, per-class tables, gallery and ablation are of
    predictions: dict  # that split's predictions per output
    metrics: dict[str, dict[str, float]]  # split name → its final metrics
    rows: dict[str, int]  # split name → rows encoded
    curves: list[Path]  # training curves (plots/loss.png, plots/METRIC.png)
    output_plots: dict[str, list[str]]  # output → its plots of the split (confusion matrix, scatter, embedding map)
    ablation: Ablation | None = None
    galleries: dict[str, tuple] = field(default_factory=dict)  # split name → (split, predictions) searched by embeddings
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # a floor's name → its metrics on the split


def write_report(report: ReportData, path: Path | None = None) -> Path:
    """Render the page and write it (under a temporary name, then renamed); returns its path."""
    run = report.run
    path = Path(path) if path else run.folder / "report.html"
    facts = [f"{_count(len(run.config.inputs), 'input')} → {_count(len(run.config.outputs), 'output')}", f"config {config_hash(run.config)}",
             f"checkpoint {run.checkpoint.name}", f"shown: {report.split.name} split",
             f"written {time.strftime('%Y-%m-%d %H:%M')}"]
    document = page(f"{run.config.name}: {run.folder.name}", facts, [
        ("summary", "Summary", sections.summary(report)),
        ("metrics", "Final metrics", sections.final_metrics(report)),
        ("curves", "Training curves", sections.curves(report)),
        ("outputs", "Outputs", sections.outputs(report)),
        ("samples", "Sample predictions", gallery.samples(report)),
        ("ablation", "Modality ablation", sections.ablation(report)),
        ("model", "Model", sections.model(report)),
        ("config", "Config", sections.config(report)),
    ])
    write_atomic(path, document)
    return path


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
