"""The verbs, as plain Python: `train`, `build_cache`, `evaluate`, `evaluate_untrained`, `evaluate_baseline`,
`ablate`, `report`. Each is a few lines over a `Run` (plait.runs); the CLI is a thin layer over these."""

from __future__ import annotations

from pathlib import Path

from plait.config import Config, load_config
from plait.errors import PlaitError
from plait.evaluation.ablation import Ablation
from plait.runs import Run, final, training


def train(config: str | Path | Config | None = None, run_dir: str | Path | None = None, overrides: list[str] = (),
          resume: str | Path | None = None, checkpoint: str | None = None, init_from: str | Path | None = None,
          folds: int | None = None, stratify: str | None = None) -> Path:
    """Train from a config (path or Config) into a new run folder, optionally starting from the weights of another
    run or checkpoint (`init_from`: those whose names and shapes match); or continue the run folder `resume` from its
    `checkpoint` (`last`, the default, `best` or a checkpoint folder), with `overrides` of train.* keys applied.
    `folds` (or a config's `data.split.folds` without `fold`): k-fold cross-validation, one run per fold under one
    folder, stratified by the column `stratify` (see `plait.runs.folds.cross_validate`)."""
    if (config is None) == (resume is None):
        raise PlaitError("give a config to start a run, or a run folder to resume (`--resume DIR`)")
    if resume is not None and (folds is not None or stratify is not None):
        raise PlaitError("--folds starts a new cross-validation; to continue one fold, resume its folder "
                         "(--resume FOLDER/fold-N), then `plait report FOLDER` summarizes the folds again")
    if stratify is not None and folds is None:
        raise PlaitError("--stratify goes with --folds (for a random split, set data.split.stratify)")
    if resume is not None:
        if init_from is not None:
            raise PlaitError("--init-from starts a new run from CONFIG; a resumed run continues from its own checkpoint (--checkpoint)")
        return training.resume(resume, list(overrides), checkpoint or "last")
    if checkpoint is not None:
        raise PlaitError("--checkpoint chooses where a resumed run continues from: use it with --resume DIR")
    config = _config(config, overrides)
    if folds is not None or (config.data.split.folds is not None and config.data.split.fold is None):
        from plait.runs.folds import cross_validate

        return cross_validate(config, folds, stratify, run_dir, init_from)
    return training.train(config, run_dir, init_from=init_from)


def build_cache(config: str | Path | Config, overrides: list[str] = (), skipped_file: str | Path | None = None) -> dict:
    """Decode and store every split's cached inputs (and frozen encoders' embeddings) ahead of training; see
    `plait.runs.training.build_cache`."""
    return training.build_cache(_config(config, overrides), skipped_file)


def summary(config: str | Path | Config, overrides: list[str] = (), depth: int = 3, rows: int = 4):
    """The model a config builds, before training: torchinfo's layer table over one batch of `rows` training rows
    and the parameter table; see `plait.runs.summary.summarize`. Writes nothing but the preprocessing cache."""
    from plait.runs.summary import summarize

    return summarize(_config(config, overrides), depth, rows)


def evaluate(run_dir: str | Path, split: str = "test", which: str = "best") -> dict:
    """Metrics of a trained run on one split (with its outputs' gallery searches); also written to
    `evaluation/<split>.json`. Under a launcher (torchrun, mpirun) the processes share the work, each cell decoded
    once and each batch predicted once, and the first one writes; the metrics are those of one process."""
    run = Run.load(run_dir, which, join_processes=True)
    try:
        evaluation = run.evaluate_split(split, together=True)
        if run.world.is_main:
            run.write_evaluation(evaluation)
    finally:
        run.leave_processes()
    return evaluation.metrics


def evaluate_with_floors(run_dir: str | Path, split: str = "test", which: str = "best", baseline: bool = True,
                         untrained: bool = True) -> dict[str, dict]:
    """`{"trained": metrics, "baseline": ..., "untrained": ...}` of one split, from one loaded run: the trained model
    (written to `evaluation/<split>.json` as `evaluate` does), beside the floors it must clear (see
    `evaluate_baseline` and `evaluate_untrained`). For caption outputs the baseline is the caption of the nearest
    training image by pixels, and `nearest_features` (`nearest_untrained_features`) writes that of the nearest by the
    trained (untrained) image encoder's vectors. `shuffled_inputs` scores the trained model with each row given
    another row's inputs: how much of its score comes from reading them."""
    run = Run.load(run_dir, which)
    splits = run.encode(run.with_galleries(split))
    evaluation = run.evaluate(splits, split)
    run.write_evaluation(evaluation)
    results = {"trained": evaluation.metrics}
    captions = baseline and any(task.generates for task in run.tasks.values())
    train = (splits["train"] if "train" in splits else run.encode(["train"])["train"]) if captions else None
    if baseline:
        results["baseline"] = run.baseline(split)
        results["shuffled_inputs"] = run.score_shuffled(splits[split])
    if captions:
        results["baseline"].update(run.nearest_captions(train, splits[split], "pixels"))
        results["nearest_features"] = run.nearest_captions(train, splits[split], "features")
    if untrained:
        run.reset_weights()
        results["untrained"] = run.evaluate(splits, split).metrics
    if untrained and captions:
        results["nearest_untrained_features"] = run.nearest_captions(train, splits[split], "features")
    return results


def evaluate_untrained(run_dir: str | Path, split: str = "test") -> dict:
    """Metrics of the run's model with fresh random weights drawn with the run's seed: the floor training must clear.
    Pretrained encoders load their weights as in training, so frozen ones' cached embeddings still hold."""
    run = Run.load(run_dir)
    splits = run.encode(run.with_galleries(split))
    run.reset_weights()
    return run.evaluate(splits, split).metrics


def evaluate_baseline(run_dir: str | Path, split: str = "test") -> dict:
    """Metrics on a split of predicting from the training targets alone, whatever the inputs: the most frequent
    class of a category or binned output, the mean of a number. Outputs without such a baseline are left out."""
    run = Run.load(run_dir)
    run.require_split(split)
    return run.baseline(split)


def ablate(run_dir: str | Path, split: str = "test", which: str = "best") -> Ablation:
    """Metrics of a trained run on a split with every input, each input left out, and each kept alone (three inputs
    or more); written to `evaluation/ablation_SPLIT.json`."""
    run = Run.load(run_dir, which)
    ablation = run.ablate(run.encode([split])[split])
    run.write_ablation(ablation)
    return ablation


def report(run_dir: str | Path, split: str | None = None, which: str = "best") -> Path:
    """Write `report.html` for a trained run: `split` (default: the config's `report.split`) is evaluated again, the
    other splits' final metrics are read from `evaluation/`. A cross-validation folder (`fold-N/` runs): its
    folds.json again, and a page of each metric per fold with its mean ± std."""
    from plait.runs import folds

    if not (Path(run_dir) / "config.yaml").is_file() and folds.fold_folders(Path(run_dir)):
        return folds.report(run_dir)
    return final.report(Run.load(run_dir, which), split)


def init_config(table: str | Path, targets: list[str], binned: list[str] = (), output: str | Path | None = None,
                force: bool = False, gpu: bool | None = None) -> str:
    """A commented config for the table at `table` predicting `targets`: each column's role and type decided from a
    sample of its values, with the evidence (see `plait.starter`). Written to `output` when given (replacing a file
    only with `force`); returned either way."""
    from plait.starter import describe_table

    if output is not None and Path(output).exists() and not force:
        raise PlaitError(f"{output} exists; pass --force to replace it, or --output another path")
    text = describe_table(str(table), list(targets), list(binned), gpu)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    return text


def train_table(table: str | Path, targets: list[str], binned: list[str] = (), run_dir: str | Path | None = None,
                overrides: list[str] = ()) -> Path:
    """Train on a table with no config: `init_config` decides one (then `overrides` apply), the run trains, and the
    decided config, with its evidence, is kept in the run folder as `inferred.yaml` beside the `config.yaml` it ran."""
    import yaml

    from plait.config import apply_overrides, validate
    from plait.distributed import world_from_env

    text = init_config(table, targets, binned)
    config = validate(apply_overrides(yaml.safe_load(text), list(overrides)), f"the config inferred from {table}")
    folder = train(config, run_dir=run_dir)
    if world_from_env().is_main:
        (Path(folder) / "inferred.yaml").write_text(text, encoding="utf-8")
    return folder


def _config(config: str | Path | Config, overrides: list[str]) -> Config:
    return config if isinstance(config, Config) else load_config(config, list(overrides))


def tune(config: str | Path | Config | None = None, study_dir: str | Path | None = None, overrides: list[str] = (),
         trials: int | None = None, timeout: str | float | None = None, storage: str | None = None,
         study: str | None = None) -> Path:
    """Search the config's `tune:` space with Optuna into `study_dir` (default: a new studies/NAME-TIMESTAMP), or
    resume the study there (no `config`); `storage` shares the study between processes and machines
    (`postgresql://...`). Returns the study folder (trials.csv, best.yaml, one run folder per trial)."""
    from plait.tuning.study import tune as run_study

    if config is None and study_dir is None:
        raise PlaitError("give a config with a `tune:` section, or the folder of a study to resume")
    if study_dir is None:
        from plait.runs.setup import new_run_dir

        study_dir = new_run_dir(_config(config, overrides), "studies")
    return run_study(config, study_dir, list(overrides), trials, timeout, storage, study)
