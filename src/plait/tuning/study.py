"""`plait tune`: an Optuna study over the config's `tune:` space, each trial an ordinary plait run folder.

A trial samples a value for every path of the space, sets them as `--set` would, and trains the result into
`STUDY/trial-NNNN/`, reporting the monitored validation metric after each validation; the pruner may stop it there
(the run folder stays, with the checkpoints it reached). The objective is the run's best monitored value, in the
direction its task declares (`train.monitor` and `monitor_mode`, as training resolves them).

The study lives in an Optuna RDB storage: an SQLite file in the study folder by default, or any URL (`postgresql://`)
that several `plait tune` processes share. Trials send heartbeats, so a worker killed mid-trial leaves that trial
FAIL rather than RUNNING forever; every worker stops once `tune.trials` trials have finished (COMPLETE or PRUNED),
so a failed or killed trial is made up for, and `plait tune` on an existing study folder resumes the study.
"""

from __future__ import annotations

import logging
import math
import random
import time
import traceback
import warnings
from pathlib import Path

from plait.config import Config, load_config, save_config, validate, with_values
from plait.console import say
from plait.errors import PlaitError
from plait.registry import TASKS
from plait.settings.tune import Choice, IntRange, LogUniform, TuneConfig, Uniform, seconds_of
from plait.training.trainer import resolve_monitor
from plait.tuning.folder import STUDY_CONFIG, storage_url
from plait.tuning.results import FINISHED, write_results
from plait.tuning.space import check_space, contains, searched_config, value_at

FAILURES_IN_A_ROW = 3  # a worker whose trials keep failing (a missing table, a broken value) stops and says why

def monitor_of(config: Config) -> tuple[str, str]:
    """The monitored metric and `minimize` or `maximize`, as the trainer resolves them (with a validation split)."""
    tasks = {spec.name: TASKS.get_or_fail(spec.type) for spec in config.outputs}
    name, mode = resolve_monitor(config.train.monitor, config.train.monitor_mode, tasks, has_validation=True)
    return name, "minimize" if mode == "min" else "maximize"


def suggest(trial, path: str, distribution):
    if isinstance(distribution, Uniform):
        return trial.suggest_float(path, *distribution.uniform)
    if isinstance(distribution, LogUniform):
        return trial.suggest_float(path, *distribution.loguniform, log=True)
    if isinstance(distribution, IntRange):
        return trial.suggest_int(path, *distribution.int, step=distribution.step, log=distribution.log)
    assert isinstance(distribution, Choice)
    if plain(distribution):
        return trial.suggest_categorical(path, distribution.choice)
    return distribution.choice[trial.suggest_categorical(path, list(range(len(distribution.choice))))]


def plain(choice: Choice) -> bool:
    """Whether Optuna can store the choices as they are; lists and mappings go by their index, looked up again."""
    return all(value is None or isinstance(value, (bool, int, float, str)) for value in choice.choice)


def make_sampler(tune: TuneConfig, seed: int):
    import optuna

    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if tune.sampler == "grid":
        space = {}
        for path, distribution in tune.space.items():
            if isinstance(distribution, IntRange):
                low, high = distribution.int
                space[path] = list(range(low, high + 1, distribution.step))
            else:
                space[path] = distribution.choice if plain(distribution) else list(range(len(distribution.choice)))
        return optuna.samplers.GridSampler(space, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(tune: TuneConfig):
    import optuna

    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=tune.warmup_epochs)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(study_dir: Path, config: Config, storage: str | None, name: str | None):
    """The study in `storage` (created, or joined when it exists), with the config's sampler and pruner."""
    import optuna
    from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats are, in Optuna 5
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(study_dir, storage)
    grace = max(2, round(seconds_of(config.tune.stale_after)))  # a worker beats 4 times within it
    try:
        rdb = retried(lambda: RDBStorage(url, heartbeat_interval=max(1, grace // 4), grace_period=grace,
                                         engine_kwargs={"pool_pre_ping": True}))
    except ModuleNotFoundError as error:
        raise PlaitError(f"cannot open the study storage {url}: its database driver is not installed ({error}); for "
                         "PostgreSQL: pip install 'plait[postgres]' (psycopg)") from None
    except Exception as error:  # a bad URL, an unreachable server: the user's to fix
        raise PlaitError(f"cannot open the study storage {url}: {error}") from None
    return optuna.create_study(storage=rdb, sampler=make_sampler(config.tune, config.train.seed), pruner=make_pruner(config.tune),
                               study_name=name or config.name, direction=monitor_of(config)[1], load_if_exists=True)


def retried(open_storage, attempts: int = 6):
    """`open_storage()`, tried again after a database error: workers that start together on an empty database race
    to create Optuna's tables, and the losers fail on a duplicate (the tables exist once the winner is done)."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(attempts):
        try:
            return open_storage()
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())


def study_config(config_path, study_dir: Path, overrides: list[str]) -> Config:
    """The config of a new study (saved as study.yaml), or of the study already in `study_dir` (resumed as it was)."""
    saved = study_dir / STUDY_CONFIG
    if config_path is None:
        if not saved.is_file():
            raise PlaitError(f"{study_dir}: no study here ({STUDY_CONFIG} missing); give a CONFIG to start one")
        return load_config(saved, overrides)
    config = config_path if isinstance(config_path, Config) else load_config(config_path, overrides)
    if config.tune is None:
        raise PlaitError(f"{config_path}: no `tune:` section; add one with a `space` to search")
    return config


def tune(config_path, study_dir: str | Path, overrides: list[str] = (), trials: int | None = None,
         timeout: str | float | None = None, storage: str | None = None, study_name: str | None = None) -> Path:
    """Run trials until the study has `trials` finished ones (or `timeout` passes); write the results. Returns the
    study folder."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study_dir = Path(study_dir)
    config = study_config(config_path, study_dir, list(overrides))
    check_space(config, str(config_path or study_dir / STUDY_CONFIG))
    tune_settings = config.tune.model_copy(update={k: v for k, v in (("trials", trials), ("timeout", timeout)) if v is not None})
    study_dir.mkdir(parents=True, exist_ok=True)
    if not (study_dir / STUDY_CONFIG).is_file():
        save_config(config, study_dir / STUDY_CONFIG)
    study = open_study(study_dir, config, storage, study_name)
    base = searched_config(config)
    if not study.trials and tune_settings.sampler != "grid":  # a grid holds every combination, the config's own too
        enqueue_own_values(study, base, tune_settings)

    def objective(trial) -> float:
        return run_trial(trial, base, tune_settings, study_dir)

    def progress(study, trial) -> None:
        counts = {state: sum(t.state == state for t in study.trials) for state in (*FINISHED, TrialState.FAIL)}
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})" if counts[TrialState.COMPLETE] else "no trial completed yet"
        say(f"trial {trial.number} {trial.state.name}: {counts[TrialState.COMPLETE]} completed, {counts[TrialState.PRUNED]} "
            f"pruned, {counts[TrialState.FAIL]} failed of {tune_settings.trials}; {best}")

    failed: list = []  # this worker's failed trials since its last finished one

    def stop_when_failing(study, trial) -> None:
        failed[:] = [*failed, trial] if trial.state == TrialState.FAIL else []
        if len(failed) >= FAILURES_IN_A_ROW:
            study.stop()

    if sum(t.state in FINISHED for t in study.trials) < tune_settings.trials:
        study.optimize(objective, timeout=seconds_of(tune_settings.timeout), catch=(Exception,), gc_after_trial=True,
                       callbacks=[MaxTrialsCallback(tune_settings.trials, states=FINISHED), progress, stop_when_failing])
    else:
        say(f"{study_dir}: the study already has {tune_settings.trials} finished trials")
    write_results(study, study_dir, monitor_of(config)[0])
    if len(failed) >= FAILURES_IN_A_ROW:
        raise PlaitError(f"{len(failed)} trials in a row failed, so this worker stopped; the last: "
                         f"{failed[-1].user_attrs.get('error', 'see its run folder')} (all in {study_dir / 'trials.csv'})")
    return study_dir


def enqueue_own_values(study, base: dict, tune_settings: TuneConfig) -> None:
    """The config's own values of the searched paths become the first trial (those the space can give): the study
    never ends with a config worse than the one it started from."""
    own = {}
    for path, distribution in tune_settings.space.items():
        value = value_at(base, path)
        if contains(distribution, value):
            own[path] = value if not isinstance(distribution, Choice) or plain(distribution) else distribution.choice.index(value)
    if own:
        study.enqueue_trial(own, skip_if_exists=True)


def run_trial(trial, base: dict, tune_settings: TuneConfig, study_dir: Path) -> float:
    """One trial: its values set into the config, trained into its own run folder, pruned between epochs if the
    pruner says so; returns the best monitored value."""
    import optuna

    from plait.runs import training

    values = {path: suggest(trial, path, distribution) for path, distribution in tune_settings.space.items()}
    run_dir = study_dir / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("values", values)  # as set in the config: a list choice by value, not by its index
    say(f"trial {trial.number}: " + ", ".join(f"{path}={value!r}" for path, value in values.items()))
    seen: list[float] = []

    def report(epoch: int, monitored: float) -> None:
        seen.append(monitored)
        trial.report(monitored, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    try:
        config = validate(with_values(base, [(path.split("."), value, f"{path}={value}") for path, value in values.items()]),
                          f"trial {trial.number}")
        training.train(config, run_dir, on_validation=report)
    except optuna.TrialPruned:
        raise
    except Exception as error:  # the trial fails, the study goes on; its folder holds what it reached
        trial.set_user_attr("error", f"{type(error).__name__}: {error}")
        say(f"[red]trial {trial.number} failed: {error}[/red]")
        logging.getLogger("plait.tune").debug(traceback.format_exc())
        raise
    finite = [value for value in seen if not math.isnan(value)]
    if not finite:
        raise PlaitError(f"trial {trial.number}: no finite validation value of the monitored metric")
    return min(finite) if monitor_of(config)[1] == "minimize" else max(finite)
