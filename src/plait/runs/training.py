"""Training a `Run` end to end (join the processes, fit the preprocessing, encode, train, evaluate, report), and
building its cache ahead of training."""

from __future__ import annotations

from pathlib import Path

from plait.config import Config, config_hash, load_config, save_config, to_dict
from plait.console import print_table, say
from plait.data.balancing import add_generated_rows, summary as generated_summary
from plait.data.cache_folder import summarise
from plait.data.dataset import write_skipped
from plait.data.tally import print_tallies, skipped_line
from plait.errors import PlaitError
from plait.models.frozen import embedded_inputs, frozen_notes
from plait.models.model import parameter_table, require_trainable
from plait.runs.final import finish
from plait.runs.resume import (announce_resume, check_overrides, init_source, resume_checkpoint, resume_plan,
                                warm_start)
from plait.runs.run import Run
from plait.runs.setup import chosen_checkpoint, new_run_dir
import plait.distributed as distributed
from plait.training.checkpoint import load_preprocessing, load_weights
from plait.training.optim import component_settings
from plait.training.tracking import NullTracker, Tracker, require_trackers
from plait.training.trainer import Trainer

CACHE_SKIP_HINT = "set data.on_bad_sample: skip, or add --set data.on_bad_sample=skip, to leave such rows out"


def train(config: Config, run_dir: str | Path | None = None, resume: bool = False, checkpoint: str = "last",
          init_from: str | Path | None = None, on_validation=None) -> Path:
    """Train `config` into `run_dir` (default: a new runs/NAME-TIMESTAMP), or continue the run in `run_dir`
    (`resume`) from its checkpoint `checkpoint` (`last`, `best` or a checkpoint folder). A new run may start from the
    weights of another run or checkpoint (`init_from`) where names and shapes match. Under a launcher every process
    trains and the first alone writes. `on_validation(epoch, monitored)` hears the monitored metric after each
    validation (`plait tune` reports it to Optuna, and may stop the run by raising). Returns the run folder."""
    require_trackers(config.tracking)  # a missing tracker package fails before any data work
    run = Run.start(config, join_processes=True)  # several processes under torchrun or mpirun
    try:
        _place(run, run_dir, resume)
        source = resume_checkpoint(run.folder, checkpoint) if resume else None
        if not distributed.share(source is not None):  # every rank resumes, or none does
            source = None
        if resume and source is None and run.world.is_main:  # nothing to continue: it starts cleanly, as configured
            save_config(run.config, run.folder / "config.yaml")
        _train(run, source, init_source(init_from) if init_from is not None else None, on_validation)
    finally:
        run.leave_processes()
    return run.folder


def resume(run_dir: str | Path, overrides: list[str] = (), checkpoint: str = "last") -> Path:
    """Continue the run in `run_dir` from its checkpoint `checkpoint`, with `overrides` of train.* keys (more
    epochs, another schedule...) applied and written to its config.yaml. Other keys, and train keys the checkpoint
    cannot continue with (see `plait.runs.resume.REFUSED`), are errors that name the key."""
    check_overrides(list(overrides))
    config = load_config(Path(run_dir) / "config.yaml", list(overrides))
    source = resume_checkpoint(Path(run_dir), checkpoint)
    if source is not None:
        resume_plan(Path(run_dir), source, config)  # refuses a change the checkpoint cannot continue with, before any data work
    return train(config, run_dir, resume=True, checkpoint=checkpoint)


def _place(run: Run, run_dir: str | Path | None, resume: bool) -> None:
    """The run's folder: `run_dir`, or one named by the first process; a new run's config is saved in it."""
    if resume:
        run.folder = Path(run_dir)
        return
    run.folder = distributed.share(Path(run_dir) if run_dir else new_run_dir(run.config))
    if run.world.is_main:
        run.folder.mkdir(parents=True, exist_ok=True)
        save_config(run.config, run.folder / "config.yaml")


def _train(run: Run, source: Path | None, init_from: Path | None, on_validation=None) -> None:
    """Every rank trains, continuing the checkpoint `source` if any, or starting from the weights in `init_from`;
    rank 0 alone writes."""
    config, world, resuming = run.config, run.world, source is not None
    say(f"run folder: {run.folder}  (config {config_hash(config)}{', resuming' if resuming else ''})"
        + (f"  {world.size} processes" if world.is_distributed else ""))
    previous, progress = None, None
    if resuming:
        previous, changed, notes, progress = resume_plan(run.folder, source, config)
        announce_resume(run.folder, source, progress, changed, notes, write=world.is_main)
        if changed and world.is_main:
            save_config(config, run.folder / "config.yaml")
    real_rows = _add_generated_rows(run)
    if world.is_main:
        run.write_splits()
    if resuming:
        run.preprocessor.load_state_dict(load_preprocessing(source))
    else:
        _fit_preprocessing(run)
    splits = run.encode(run.splits())
    skipped = write_skipped(list(splits.values()), run.folder / "skipped.jsonl") if world.is_main else 0
    print_tallies(splits.values())
    if skipped:
        say(f"[yellow]{skipped_line(skipped, run.folder / 'skipped.jsonl')}[/yellow]")
    say("rows: " + ", ".join(f"{name} {len(split)}" for name, split in splits.items()))

    model = run.build_model()
    if init_from is not None:  # before the frozen encoders embed their inputs: their weights may be among those loaded
        warm_start(model, init_from, run.folder, write=world.is_main)
    print_table("parameters", ["component", "trainable", "frozen", "lr", "weight decay"],
                parameter_table(model, component_settings(model, config.train.optimizer)))
    require_trainable(model)
    for spec in config.inputs:
        encoder = model.encoders[spec.name]
        for note in encoder.notes() + frozen_notes(spec, encoder, warm_started=init_from is not None):
            say(f"[yellow]inputs.{spec.name}.encoder: {note}[/yellow]")
    run.embed_frozen(splits)
    tracker = NullTracker()
    if world.is_main:
        tracker = Tracker(run.folder, resume_step=progress["step"] if resuming else None,
                          backends=config.tracking, config=to_dict(config), name=run.folder.name)
    try:
        trainer = Trainer(model, run.features, run.tasks, splits["train"], splits.get("validation"), config.train,
                          run.folder, run.preprocessor.state_dict(), run.device, tracker, on_validation)
        if resuming:
            trainer.restore(source, previous)
        trainer.fit()
        if world.is_main:
            run.checkpoint = chosen_checkpoint(run.folder, "best")
            load_weights(run.checkpoint, model)
        distributed.broadcast_weights(model)  # the best weights, without the other machines reading the run folder
        finish(run, splits, real_rows, tracker)
    finally:
        tracker.close()
    distributed.barrier()
    say(f"done: {run.folder}")


def _add_generated_rows(run: Run) -> int:
    """The table with the rows `data.augment.generated` asks for added after the real ones; returns how many
    real rows there are."""
    real_rows = len(run.data.table)
    if run.data.filter_note:
        say(run.data.filter_note)
    if run.config.data.augment.generated is not None:
        run.data, report = add_generated_rows(run.data, run.config)
        if run.world.is_main:
            run.write_json("augmentation.json", report)
        say(generated_summary(report))
    if not run.data.count("train"):
        raise PlaitError(f"{run.data.source}: no row is in the training split")
    return real_rows


def _fit_preprocessing(run: Run) -> None:
    """Fit the preprocessing on the training rows; the first process saves the tasks' files (e.g. a tokenizer)."""
    run.preprocessor.fit(run.data.rows("train"))
    if run.world.is_main:
        for task in run.tasks.values():
            task.save_files(run.folder)


def build_cache(config: Config, skipped_file: str | Path | None = None) -> dict:
    """Decode and store every split's cached inputs (and frozen encoders' embeddings) ahead of training; under a
    launcher the processes divide the work, each cell decoded once. Returns the cache summary of the namespaces this
    config uses (`namespaces`), and the count of bad rows passed over under `skip` (`skipped`), listed in
    `skipped_file` (default: `skipped-NAME.jsonl` in the cache folder); the first process alone writes that list."""
    if not config.data.cache:
        raise PlaitError("data.cache is false in this config: there is no cache to build")
    run = Run.start(config, join_processes=True)
    try:
        run.preprocessor.fit(run.data.rows("train"))  # fitted state (e.g. a text vocabulary) is part of a cache key
        splits = run.encode(run.splits(), CACHE_SKIP_HINT)
        print_tallies(splits.values())
        if embedded_inputs(config):
            run.build_model()
            run.embed_frozen(splits)
        used = set(run.cache.stores)  # the namespaces this config read or wrote
        skipped_file = Path(skipped_file) if skipped_file else run.cache.folder / f"skipped-{config.name}.jsonl"
        skipped = write_skipped(list(splits.values()), skipped_file) if run.world.is_main else 0
        distributed.barrier()  # every process's stats are saved before the summary reads them
    finally:
        run.leave_processes()
    return {"namespaces": [row for row in summarise(run.cache.folder) if row["namespace"] in used], "skipped": skipped,
            "skipped_file": str(skipped_file) if skipped else None}
