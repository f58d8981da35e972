"""`plait tune`: a hyperparameter search over the config's `tune:` space (Optuna)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def tune(
    config: Optional[Path] = typer.Argument(None, help="The YAML config, with a `tune:` section (leave out to resume --study-dir)."),
    study_dir: Optional[Path] = typer.Option(None, "--study-dir", help="The study folder: one run folder per trial, the "
                                             "results, and (by default) the study's SQLite file. Default: studies/NAME-TIMESTAMP."),
    trials: Optional[int] = typer.Option(None, min=1, help="Finished trials to reach (default: tune.trials)."),
    timeout: Optional[str] = typer.Option(None, help="Stop starting trials after this long: 90m, 2h, 45s (default: tune.timeout)."),
    storage: Optional[str] = typer.Option(None, help="An Optuna storage URL shared by every worker, e.g. "
                                          "postgresql://user:pass@host:5432/db (default: sqlite in the study folder)."),
    study: Optional[str] = typer.Option(None, help="The study's name in the storage (default: the config's name)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key of the config, e.g. --set train.epochs=5."),
    show: Optional[Path] = typer.Option(None, "--show", help="Print the trials and the best of the study in this folder, and stop."),
):
    """Search the config's `tune:` space: each trial trains a run folder under the study folder, is pruned when its
    validation metric falls behind, and the study ends with trials.csv and best.yaml (a config `plait train` takes)."""
    from plait.tuning.results import show as show_study

    if show is not None:
        show_study(show, storage, study)
        return
    from plait import api

    folder = api.tune(config, study_dir, set_, trials, timeout, storage, study)
    show_study(folder, storage, study)
    typer.echo(str(folder))
