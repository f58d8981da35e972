"""k-fold cross-validation: one ordinary run per fold (`FOLDER/fold-1/` ... `fold-k/`, each config.yaml naming its
`data.split.fold`), then `folds.json`: each fold's rows and final metrics, and each metric's mean ± std over folds."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from plait.config import Config, apply_overrides, to_dict, validate
from plait.console import print_table, say
from plait.errors import PlaitError
from plait.evaluation.saved import read_evaluation
from plait.files import write_atomic
from plait.runs.setup import new_run_dir, write_json

SUMMARY_SPLITS = ("validation", "test")


def fold_config(config: Config, folds: int, fold: int, stratify: str | None = None) -> Config:
    """`config` with `data.split` set to validate on fold `fold` of `folds` (and stratified by `stratify`)."""
    overrides = [f"data.split.folds={folds}", f"data.split.fold={fold}"]
    overrides += [f"data.split.stratify={stratify}"] if stratify else []
    return validate(apply_overrides(to_dict(config), overrides), "config")


def cross_validate(config: Config, folds: int | None = None, stratify: str | None = None,
                   run_dir: str | Path | None = None, init_from: str | Path | None = None) -> Path:
    """Train one run per fold into `run_dir` (default: a new runs/NAME-TIMESTAMP), `folds` (default: the config's
    `data.split.folds`) of them, then write and print the summary (`summarize`). Returns the folder."""
    from plait.runs import training

    from plait.distributed import world_from_env

    if world_from_env().is_distributed:
        raise PlaitError("cross-validation (--folds, or data.split.folds without fold) trains in one process: under "
                         "torchrun or --nproc, train each fold with --set data.split.fold=N --run-dir FOLDER/fold-N, "
                         "then `plait report FOLDER` summarizes them")
    folds = folds or config.data.split.folds
    if not folds or folds < 2:
        raise PlaitError(f"--folds needs at least 2 folds (got {folds})")
    folder = Path(run_dir) if run_dir else new_run_dir(config)
    if folder.exists() and any(folder.iterdir()):
        raise PlaitError(f"{folder}: the folds' folder must be new or empty")
    configs = [fold_config(config, folds, fold, stratify) for fold in range(1, folds + 1)]  # every one valid before any trains
    for fold, one in enumerate(configs, start=1):
        say(f"[bold]fold {fold} of {folds}[/bold]")
        training.train(one, folder / f"fold-{fold}", init_from=init_from)
    summary = summarize(folder)
    print_summary(summary)
    return folder


def fold_folders(folder: Path) -> list[Path]:
    """The `fold-N/` run folders of a cross-validation folder, in fold order ([] for any other folder)."""
    found = [path for path in Path(folder).glob("fold-*") if (path / "config.yaml").is_file() and path.name[5:].isdigit()]
    return sorted(found, key=lambda path: int(path.name[5:]))


def summarize(folder: str | Path) -> dict:
    """Read each fold's splits.csv and evaluation/*.json, write `folds.json` and return it: `folds` (per fold: its
    folder, the table rows (`row` of splits.csv) it validated on, its row count per split, its final metrics per
    split) and `metrics` ({split: {metric: {mean, std, values}}}, std being the sample standard deviation over the
    folds, 0 for one fold), over the numeric metrics every finished fold has."""
    folder = Path(folder)
    folders = fold_folders(folder)
    if not folders:
        raise PlaitError(f"{folder}: no fold-N/ run folders (made by plait train --folds)")
    folds = []
    for path in folders:
        splits = pd.read_csv(path / "splits.csv") if (path / "splits.csv").is_file() else None
        counts = splits["split"].value_counts().to_dict() if splits is not None else {}
        folds.append({
            "fold": int(path.name[5:]), "folder": path.name,
            "rows": {name: int(counts.get(name, 0)) for name in ("train", "validation", "test")},
            "validation_rows": splits.loc[splits["split"] == "validation", "row"].astype(int).tolist() if splits is not None else [],
            "metrics": {name: metrics for name in SUMMARY_SPLITS if (metrics := read_evaluation(path, name)) is not None},
        })
    summary = {"folds": folds, "metrics": {name: mean_std([fold["metrics"].get(name) for fold in folds])
                                            for name in SUMMARY_SPLITS}}
    summary["metrics"] = {name: metrics for name, metrics in summary["metrics"].items() if metrics}
    write_json(folder / "folds.json", summary)
    return summary


def mean_std(metrics_per_fold: list[dict | None]) -> dict[str, dict]:
    """{metric: {mean, std, values}} over the folds that have metrics, for each numeric metric all of them have."""
    present = [metrics for metrics in metrics_per_fold if metrics]
    if not present:
        return {}
    keys = [key for key, value in present[0].items() if _is_number(value) and all(_is_number(m.get(key)) for m in present)]
    result = {}
    for key in keys:
        values = [float(metrics[key]) for metrics in present]
        result[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                       "values": values}
    return result


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_std_text(entry: dict) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def print_summary(summary: dict) -> None:
    """One table: each metric's mean ± std over the folds, per split."""
    splits = list(summary["metrics"])
    keys = list(dict.fromkeys(key for split in splits for key in summary["metrics"][split]))
    rows = [[key, *(mean_std_text(summary["metrics"][split][key]) if key in summary["metrics"][split] else ""
                    for split in splits)] for key in keys]
    print_table(f"{len(summary['folds'])} folds: mean ± std", ["metric", *splits], rows)


def report(folder: str | Path) -> Path:
    """Summarize the folds again (a fold resumed since is counted as it is now) and write `report.html`: a table
    per split of each fold's metrics and their mean ± std, with links to each fold's own report."""
    from plait.report.folds import folds_page

    folder = Path(folder)
    summary = summarize(folder)
    path = folder / "report.html"
    write_atomic(path, folds_page(folder.name, summary))
    say(f"report: {path}")
    return path
