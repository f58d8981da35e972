"""The page of a cross-validation folder (`plait train --folds`): per split, each metric's value in every fold and
its mean ± std, and a link to each fold's own report."""

from __future__ import annotations

import time

from plait.html import escape
from plait.report.page import number, page, table


def folds_page(name: str, summary: dict) -> str:
    """The whole document, from the summary `plait.runs.folds.summarize` writes to folds.json."""
    folds = summary["folds"]
    sections = [(f"metrics-{split}", f"{split.capitalize()} metrics over the folds", _metrics_table(folds, split, metrics))
                for split, metrics in summary["metrics"].items()]
    sections.append(("folds", "Folds", _folds_table(folds)))
    facts = [f"{len(folds)} folds", "std: sample standard deviation over the folds",
             f"written {time.strftime('%Y-%m-%d %H:%M')}"]
    return page(f"{name}: cross-validation", facts, sections)


def _metrics_table(folds: list[dict], split: str, metrics: dict) -> str:
    headers = ["metric", *(f"fold {fold['fold']}" for fold in folds if split in fold["metrics"]), "mean ± std"]
    rows = [[escape(key), *(fold["metrics"][split].get(key) for fold in folds if split in fold["metrics"]),
             f"{number(entry['mean'])} ± {number(entry['std'])}"] for key, entry in metrics.items()]
    return table(headers, rows)


def _folds_table(folds: list[dict]) -> str:
    rows = [[f'<a href="{escape(fold["folder"])}/report.html">{escape(fold["folder"])}</a>',
             fold["rows"]["train"], fold["rows"]["validation"], fold["rows"]["test"]] for fold in folds]
    return table(["run", "train rows", "validation rows", "test rows"], rows)
