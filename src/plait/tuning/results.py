"""What a study leaves in its folder: `trials.csv` (one row per trial: number, state as Optuna names it, the objective,
each parameter, the run folder), `best.yaml` (the full config of the best completed trial, trainable with
`plait train`) and `study.html` (plait/report/study.py); and the summary `plait tune --show DIR` prints."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from plait.config import load_config
from plait.console import print_table
from plait.errors import PlaitError
from plait.files import write_atomic
from plait.report.study import study_page
from plait.tuning.folder import STUDY_CONFIG, storage_url

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for trial in study.trials:
        rows.append({"number": trial.number, "state": trial.state.name, "value": trial.value,
                     **{f"param {path}": value for path, value in trial.user_attrs.get("values", trial.params).items()},
                     "epochs": len(trial.intermediate_values), "run_dir": trial.user_attrs.get("run_dir", ""),
                     "error": trial.user_attrs.get("error", "")})
    return pd.DataFrame(rows)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    return study.best_trial if any(t.state == TrialState.COMPLETE for t in study.trials) else None


def write_results(study: optuna.Study, study_dir: Path, objective: str) -> None:
    """trials.csv, best.yaml and the study page, study.html."""
    trials_table(study).to_csv(study_dir / "trials.csv", index=False)
    write_atomic(study_dir / "study.html", study_page(study, study_dir, objective))
    best = best_trial(study)
    if best is not None:
        shutil.copy2(Path(best.user_attrs["run_dir"]) / "config.yaml", study_dir / "best.yaml")


def shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def show(study_dir: str | Path, storage: str | None = None, study_name: str | None = None) -> pd.DataFrame:
    """Print the study's trials (best first) and its best trial; returns the trials table."""
    study_dir = Path(study_dir)
    if not (study_dir / STUDY_CONFIG).is_file():
        raise PlaitError(f"{study_dir}: no study here ({STUDY_CONFIG} missing)")
    config = load_config(study_dir / STUDY_CONFIG)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name or config.name, storage=storage_url(study_dir, storage))
    table = trials_table(study)
    ordered = table.sort_values("value", ascending=study.direction == optuna.study.StudyDirection.MINIMIZE, na_position="last")
    params = [column for column in table.columns if column.startswith("param ")]
    print_table(f"study {study.study_name} ({study.direction.name.lower()}, {len(table)} trials)",
                ["trial", "state", "value", "epochs", *(p[len("param "):] for p in params)],
                [[int(row["number"]), row["state"], "-" if pd.isna(row["value"]) else float(row["value"]), int(row["epochs"]),
                  *(shown(row[p]) for p in params)] for _, row in ordered.iterrows()],
                to_stdout=True)
    best = best_trial(study)
    if best is not None:
        print(f"best: trial {best.number}, value {best.value:.4f}, run {best.user_attrs.get('run_dir')}; config in {study_dir / 'best.yaml'}")
    return table
