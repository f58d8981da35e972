"""The verbs, as plain Python: `train`, `evaluate`, `predict`. The CLI is a thin layer over these."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from plait.config import Config, config_hash, load_config, save_config, to_dict
from plait.console import console, print_table, say
from plait.data.balancing import add_generated_rows, summary as generated_summary
from plait.data.dataset import write_skipped
from plait.data.tally import print_tallies, skipped_line
from plait.data.columns import is_missing
from plait.errors import BadSample, MissingValue, PlaitError
from plait.evaluation.ablation import Ablation, ablate as ablate_inputs
from plait.evaluation.captions import write_samples
from plait.evaluation.evaluate import evaluate_split, predict_split, score, search_gallery, uses_gallery
from plait.evaluation.plots import history_plots
from plait.report.build import ReportData, write_report
from plait.data.cache_folder import summarise
from plait.models.frozen import embed_frozen_inputs, embedded_inputs
from plait.models.model import MultimodalModel, parameter_table
from plait.runs import (TrainedRun, chosen_checkpoint, configure_torch, encode_split, load_run, make_cache, make_preprocessor,
                        new_run_dir, nonempty_splits, read_data, write_json)
from plait.training.checkpoint import has_checkpoint, load_preprocessing, load_state, load_weights
from plait.training import distributed
from plait.training.tracking import NullTracker, Tracker, read_metrics, require_trackers
from plait.training.trainer import Trainer


def train(config: str | Path | Config | None = None, run_dir: str | Path | None = None, overrides: list[str] = (),
          resume: str | Path | None = None) -> Path:
    """Train from a config (path or Config) into a new run folder, or continue the run folder `resume`."""
    if (config is None) == (resume is None):
        raise PlaitError("give a config to start a run, or a run folder to resume (`--resume DIR`)")
    if resume is not None:
        run_dir = Path(resume)
        config = load_config(run_dir / "config.yaml")
    else:
        config = config if isinstance(config, Config) else load_config(config, list(overrides))
    device = configure_torch(config.train)
    world = distributed.start(address=config.train.master_address, port=config.train.master_port,
                              use_cuda=device.type == "cuda")  # several processes under torchrun or mpirun
    if device.type == "cuda" and world.is_distributed:
        device = torch.device("cuda", world.local_rank)
    console.quiet = not world.is_main
    try:
        return _train(config, run_dir, resume is not None, device, world)
    finally:
        console.quiet = False
        distributed.stop()


def _train(config: Config, run_dir, resume: bool, device, world) -> Path:
    """`train` once the processes are joined: every rank trains, rank 0 alone writes."""
    if not resume:
        run_dir = distributed.share(Path(run_dir) if run_dir else new_run_dir(config))  # one folder, named by rank 0
        if world.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, run_dir / "config.yaml")
    last = run_dir / "checkpoints" / "last"
    resuming = distributed.share(resume and has_checkpoint(last))  # every rank resumes, or none does
    say(f"run folder: {run_dir}  (config {config_hash(config)}{', resuming' if resuming else ''})"
        + (f"  {world.size} processes" if world.is_distributed else ""))
    require_trackers(config.tracking)  # a missing tracker package fails before any data work

    preprocessor = make_preprocessor(config)
    data = read_data(config, preprocessor)
    real_rows = len(data.table)  # generated rows (data.augment) come after these
    if config.data.augment.generated is not None:
        data, report = add_generated_rows(data, config)
        if world.is_main:
            write_json(run_dir / "augmentation.json", report)
        say(generated_summary(report))
    if not (data.split_of_row == "train").any():
        raise PlaitError(f"{data.source}: no row is in the training split")
    if resuming:
        preprocessor.load_state_dict(load_preprocessing(last))
    else:
        preprocessor.fit(data.rows("train"))
        for task in preprocessor.tasks.values():
            if world.is_main:
                task.save_files(run_dir)
    cache = make_cache(config)  # one per run: its stores index the shards once for every split
    splits = {name: encode_split(data, preprocessor, name, config, cache) for name in nonempty_splits(data)}
    skipped = write_skipped(list(splits.values()), run_dir / "skipped.jsonl") if world.is_main else 0
    print_tallies(splits.values())
    if skipped:
        say(f"[yellow]{skipped_line(skipped, run_dir / 'skipped.jsonl')}[/yellow]")
    say("rows: " + ", ".join(f"{name} {len(split)}" for name, split in splits.items()))

    model = MultimodalModel(config, preprocessor.features, preprocessor.tasks).to(device)
    print_table("parameters", ["component", "trainable", "frozen"], parameter_table(model))
    embed_frozen_inputs(model, preprocessor.features, config, splits, cache, device)
    tracker = NullTracker()
    if world.is_main:
        tracker = Tracker(run_dir, resume_step=load_state(last)["progress"]["step"] if resuming else None,
                          backends=config.tracking, config=to_dict(config), name=run_dir.name)
    try:
        trainer = Trainer(model, preprocessor.features, preprocessor.tasks, splits["train"], splits.get("validation"),
                          config.train, run_dir, preprocessor.state_dict(), device, tracker)
        if resuming:
            trainer.restore(last)
        trainer.fit()
        if world.is_main:
            best = chosen_checkpoint(run_dir, "best")
            load_weights(best, model)
            finish(TrainedRun(run_dir, config, preprocessor, model, device, best), splits, data, real_rows, tracker)
    finally:
        tracker.close()
    distributed.barrier()
    say(f"done: {run_dir}")
    return run_dir


CACHE_SKIP_HINT = "set data.on_bad_sample: skip, or add --set data.on_bad_sample=skip, to leave such rows out"


def build_cache(config: str | Path | Config, overrides: list[str] = (), skipped_file: str | Path | None = None) -> dict:
    """Decode and store every split's cached inputs (and frozen encoders' embeddings) ahead of training.
    Returns the cache summary of the namespaces this config uses (`namespaces`), and the count of bad rows passed
    over under `skip` (`skipped`), listed in `skipped_file` (default: `skipped-NAME.jsonl` in the cache folder)."""
    config = config if isinstance(config, Config) else load_config(config, list(overrides))
    if not config.data.cache:
        raise PlaitError("data.cache is false in this config: there is no cache to build")
    device = configure_torch(config.train)
    preprocessor = make_preprocessor(config)
    data = read_data(config, preprocessor)
    preprocessor.fit(data.rows("train"))  # fitted state (e.g. a text vocabulary) is part of a cache key
    cache = make_cache(config)
    splits = {name: encode_split(data, preprocessor, name, config, cache, CACHE_SKIP_HINT) for name in nonempty_splits(data)}
    print_tallies(splits.values())
    if embedded_inputs(config):
        model = MultimodalModel(config, preprocessor.features, preprocessor.tasks).to(device)
        embed_frozen_inputs(model, preprocessor.features, config, splits, cache, device)
    used = set(cache.stores)  # the namespaces this config read or wrote
    skipped_file = Path(skipped_file) if skipped_file else cache.folder / f"skipped-{config.name}.jsonl"
    skipped = write_skipped(list(splits.values()), skipped_file)
    return {"namespaces": [row for row in summarise(cache.folder) if row["namespace"] in used], "skipped": skipped,
            "skipped_file": str(skipped_file) if skipped else None}


def finish(run: TrainedRun, splits: dict, data, real_rows: int | None = None, tracker=NullTracker()) -> None:
    """With the best weights loaded: evaluate validation and test, write evaluation/<split>.json, the plots and
    report.html, and hand the final metrics and files to the trackers. Rows from `real_rows` on were generated
    (data.augment): trained on, but never part of a retrieval gallery."""
    run_dir = run.folder
    plots = run_dir / "plots"
    curves = history_plots(read_metrics(run_dir), str(plots))
    galleries = {name: _gallery(run, splits[name], real_rows) for name in uses_gallery(run.config.outputs) if name in splits}
    shown = report_split(run.config, [name for name in splits if len(splits[name])])
    metrics_by_split, output_plots = {}, {}
    for name in ("validation", "test"):
        if name in splits and len(splits[name]):
            metrics, predictions = _evaluate_encoded(run, splits[name])
            for gallery, gallery_predictions in galleries.values():
                metrics.update(search_gallery(run.preprocessor.tasks, predictions, splits[name], gallery, gallery_predictions))
            write_evaluation(run, name, metrics, predictions)
            metrics_by_split[name] = metrics
            if name == shown:
                shown_predictions, output_plots = predictions, _output_plots(run, splits[name], predictions)
    files = sorted(plots.glob("*.png"))
    if run.config.report.write and shown not in metrics_by_split:
        say("[yellow]report.html not written: the run has no validation or test rows to show[/yellow]")
    elif run.config.report.write:
        rows = {name: len(split) for name, split in splits.items()}
        files.append(_write_report(run, data.table, splits, shown, rows, metrics_by_split, shown_predictions, curves,
                                   output_plots, {name: galleries[name] for name in galleries if name != shown}))
    final = {f"{split}.{key}": value for split, metrics in metrics_by_split.items() for key, value in metrics.items()}
    tracker.log_final(final, files, run.checkpoint)


def _output_plots(run, split, predictions: dict) -> dict[str, list[str]]:
    """Each output's plots of a split (confusion matrix, scatter, embedding map) in the run's plots/."""
    return {name: task.plot(predictions[name], split.targets[name], str(run.folder / "plots"), split.name)
            for name, task in run.preprocessor.tasks.items()}


def report_split(config: Config, splits: list[str]) -> str | None:
    """The split the report shows: `report.split`, or (`auto`, or the chosen one is empty) test, else validation."""
    preferred = [config.report.split] if config.report.split != "auto" else []
    return next((name for name in [*preferred, "test", "validation"] if name in splits), None)


def _write_report(run, table, splits: dict, shown: str, rows: dict, metrics_by_split: dict, predictions: dict,
                  curves: list, output_plots: dict, galleries: dict) -> Path:
    """report.html, with the modality ablation of the shown split (also written to evaluation/ablation_SPLIT.json)."""
    ablation = None
    if run.config.report.ablation and len(run.preprocessor.features) > 1:
        ablation = ablate_encoded(run, splits[shown], metrics_by_split[shown])
        write_json(run.folder / "evaluation" / f"ablation_{shown}.json", ablation.to_json())
    path = write_report(ReportData(run, table, splits[shown], predictions, metrics_by_split, rows, curves, output_plots,
                                   ablation, galleries))
    say(f"report: {path}")
    return path


def report(run_dir: str | Path, split: str | None = None, which: str = "best") -> Path:
    """Write `report.html` for a trained run: `split` (default: the config's `report.split`) is evaluated again, the
    other splits' final metrics are read from `evaluation/`."""
    run = load_run(run_dir, which)
    data = read_data(run.config, run.preprocessor)
    present = [name for name in ("train", "validation", "test") if (data.split_of_row == name).any()]
    shown = split or report_split(run.config, present)
    if shown not in present:
        raise PlaitError(f"{data.source}: no rows in split {shown!r}")
    splits = encode_splits(run, data, _with_galleries(run.config, shown))
    metrics, predictions, galleries = _evaluate_with_galleries(run, splits, shown)
    metrics_by_split = {}
    for name in ("train", "validation", "test"):
        saved = run.folder / "evaluation" / f"{name}.json"
        if name == shown:
            metrics_by_split[name] = metrics
        elif saved.is_file():
            metrics_by_split[name] = json.loads(saved.read_text(encoding="utf-8"))
    curves = history_plots(read_metrics(run.folder), str(run.folder / "plots"))
    output_plots = _output_plots(run, splits[shown], predictions)
    rows = {name: int((data.split_of_row == name).sum()) for name in present}  # before any bad row is skipped
    return _write_report(run, data.table, splits, shown, rows, metrics_by_split, predictions, curves, output_plots, galleries)


def write_evaluation(run: TrainedRun, split: str, metrics: dict, predictions: dict) -> None:
    """`evaluation/SPLIT.json`, and for each generating output a sample of what it wrote next to the references
    (`evaluation/SPLIT_OUTPUT_samples.json`)."""
    folder = run.folder / "evaluation"
    write_json(folder / f"{split}.json", metrics)
    for name, task in run.preprocessor.tasks.items():
        generated = predictions[name].get("generated") if isinstance(predictions.get(name), dict) else None
        if generated is not None and task.spec.samples:
            write_samples(folder / f"{split}_{name}_samples.json", generated.groups, generated.texts, generated.references,
                          task.spec.samples)


def _evaluate_encoded(run, split, drop=frozenset()):
    return evaluate_split(run.model, run.preprocessor.features, run.preprocessor.tasks, split,
                          run.config.train.evaluation_batch_size, run.device, drop)


def _gallery(run, split, real_rows: int | None = None):
    """A split searched as a gallery and its predictions, without the rows from `real_rows` on (generated ones):
    their targets count as absent."""
    predictions = predict_encoded(run, split)
    if real_rows is not None:
        real = torch.tensor(split.rows) < real_rows
        targets = {name: {**target, "present": target["present"] & real} for name, target in split.targets.items()}
        split = SimpleNamespace(name=split.name, targets=targets, rows=split.rows)
    return split, predictions


def predict_encoded(run, split):
    """A trained run's raw predictions for every row of an encoded split."""
    return predict_split(run.model, run.preprocessor.features, run.preprocessor.tasks, split,
                         run.config.train.evaluation_batch_size, run.device)


def load_splits(run_dir: str | Path, names: list[str], which: str = "best"):
    """A trained run, some splits of its table encoded with the run's preprocessing, and the table."""
    run = load_run(run_dir, which)
    data = read_data(run.config, run.preprocessor)
    for split in names:
        if not (data.split_of_row == split).any():
            raise PlaitError(f"{data.source}: no rows in split {split!r}")
    return run, encode_splits(run, data, names), data


def encode_splits(run, data, names: list[str]) -> dict:
    """Splits of a trained run's table, encoded with its preprocessing (and its frozen encoders' embeddings)."""
    cache = make_cache(run.config)
    splits = {split: encode_split(data, run.preprocessor, split, run.config, cache) for split in dict.fromkeys(names)}
    embed_frozen_inputs(run.model, run.preprocessor.features, run.config, splits, cache, run.device)
    return splits


def _load_split(run_dir: str | Path, split: str, which: str = "best"):
    run, splits, _ = load_splits(run_dir, [split], which)
    return run, splits[split]


def evaluate(run_dir: str | Path, split: str = "test", which: str = "best") -> dict:
    """Metrics of a trained run on one split (with its outputs' gallery searches); also written to
    `evaluation/<split>.json`."""
    run, splits = _load_with_galleries(run_dir, split, which)
    metrics, predictions, _ = _evaluate_with_galleries(run, splits, split)
    write_evaluation(run, split, metrics, predictions)
    return metrics


def evaluate_untrained(run_dir: str | Path, split: str = "test") -> dict:
    """Metrics of the run's model with fresh random weights drawn with the run's seed: the floor training must clear.
    Pretrained encoders load their weights as in training, so frozen ones' cached embeddings still hold."""
    run, splits = _load_with_galleries(run_dir, split)
    torch.manual_seed(run.config.train.seed)
    run.model = MultimodalModel(run.config, run.preprocessor.features, run.preprocessor.tasks).to(run.device)
    return _evaluate_with_galleries(run, splits, split)[0]


def _load_with_galleries(run_dir: str | Path, split: str, which: str = "best"):
    """A trained run with `split` and every split its outputs search as a gallery, encoded."""
    run, splits, _ = load_splits(run_dir, _with_galleries(load_config(Path(run_dir) / "config.yaml"), split), which)
    return run, splits


def _with_galleries(config: Config, split: str) -> list[str]:
    """`split`, then every other split the config's outputs search as a gallery."""
    return [split, *sorted(uses_gallery(config.outputs) - {split})]


def _evaluate_with_galleries(run, splits: dict, split: str) -> tuple[dict, dict, dict]:
    """Metrics and predictions of `split`, searched among the other splits given (galleries), and those galleries
    with their predictions."""
    metrics, predictions = _evaluate_encoded(run, splits[split])
    galleries = {name: _gallery(run, splits[name]) for name in splits if name != split}
    for gallery, gallery_predictions in galleries.values():
        metrics.update(search_gallery(run.preprocessor.tasks, predictions, splits[split], gallery, gallery_predictions))
    return metrics, predictions, galleries


def target_cells(task, values) -> dict:
    """One output's target cells of some rows, stacked; an unusable cell counts as missing."""
    cells = []
    for value in values:
        try:
            cells.append(None if is_missing(value) else task.encode(value))
        except (BadSample, MissingValue):
            cells.append(None)
    return task.stack(cells)


def evaluate_baseline(run_dir: str | Path, split: str = "test") -> dict:
    """Metrics on a split of predicting from the training targets alone, whatever the inputs: the most frequent
    class of a category or binned output, the mean of a number. Outputs without such a baseline are left out."""
    run = load_run(run_dir)
    data = read_data(run.config, run.preprocessor)
    if not (data.split_of_row == split).any():
        raise PlaitError(f"{data.source}: no rows in split {split!r}")
    tasks, predictions, targets = {}, {}, {}
    for name, task in run.preprocessor.tasks.items():
        column = task.spec.column
        target = target_cells(task, data.rows(split)[column].tolist())
        prediction = task.baseline(target_cells(task, data.rows("train")[column].tolist()), len(target["present"]))
        if prediction is not None:
            tasks[name], predictions[name], targets[name] = task, prediction, target
    return score(tasks, predictions, SimpleNamespace(targets=targets))


def ablate(run_dir: str | Path, split: str = "test", which: str = "best") -> Ablation:
    """Metrics of a trained run on a split with every input, each input left out, and each kept alone (three inputs
    or more); written to `evaluation/ablation_SPLIT.json`."""
    run, encoded = _load_split(run_dir, split, which)
    result = ablate_encoded(run, encoded)
    write_json(run.folder / "evaluation" / f"ablation_{split}.json", result.to_json())
    return result


def ablate_encoded(run, split, fused: dict | None = None) -> Ablation:
    return ablate_inputs(lambda drop: _evaluate_encoded(run, split, drop)[0], list(run.preprocessor.features),
                         run.preprocessor.tasks, split.name, fused)
