"""`plait train`, `plait init`, `plait validate`, `plait demo`: start (or resume) training, write a config for a
table, check a config, run a demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer



def train(
    config: Optional[Path] = typer.Argument(None, help="The YAML config."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: runs/NAME-TIMESTAMP)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.epochs=3 (repeatable)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run folder exactly where it stopped; "
                                          "--set may change train.* keys (more epochs, another schedule), nothing else."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="With --resume: continue from last (default), "
                                             "best, or the checkpoint folder at this path."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start the new run from the weights of this run "
                                             "(its best checkpoint) or checkpoint folder, where names and shapes match."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="k-fold cross-validation: one run per fold "
                                        "under one folder (fold-1/ ... fold-K/), each validating on one fold of the rows "
                                        "outside the test split; writes folds.json with each metric's mean ± std."),
    stratify: Optional[str] = typer.Option(None, "--stratify", help="With --folds: the column whose class mix each "
                                           "fold keeps (data.split.stratify)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train in this many processes on this machine (DDP; hands over "
                              "to torchrun: one per GPU, or CPU processes with gloo). train.batch_size stays the global batch."),
    target: list[str] = typer.Option([], "--target", help="Train on a table with no config: CONFIG is the table, this "
                                     "the column to predict (repeatable); the config `plait init` would write is "
                                     "used and kept in the run folder as inferred.yaml."),
    binned: list[str] = typer.Option([], "--binned", help="With --target: a numeric target to predict as bins."),
):
    """Train a model; prints progress and ends with the run folder."""
    from plait import api
    from plait.errors import PlaitError

    if target and (resume is not None or folds is not None or init_from is not None):
        raise PlaitError("--target trains a new run from a table: it goes without --resume, --folds and --init-from")
    if binned and not target:
        raise PlaitError("--binned goes with --target (in a config, set the output's type: binned)")

    if nproc > 1 and folds is not None:
        raise PlaitError("--folds trains its folds one after another in one process, not with --nproc: train each fold "
                         "with --set data.split.folds=K --set data.split.fold=N --run-dir FOLDER/fold-N --nproc "
                         f"{nproc}, then `plait report FOLDER` summarizes them")
    if nproc > 1:
        from plait.training.launch import run_torchrun

        args = [str(config)] if config else []
        args += [f"--run-dir={run_dir}"] if run_dir else []
        args += [f"--resume={resume}"] if resume else []
        args += [f"--checkpoint={checkpoint}"] if checkpoint else []
        args += [f"--init-from={init_from}"] if init_from else []
        args += [f"--set={text}" for text in set_]
        args += [f"--target={name}" for name in target] + [f"--binned={name}" for name in binned]
        raise typer.Exit(run_torchrun(nproc, ["train", *args]))

    from plait.distributed import world_from_env

    from plait.sagemaker import in_sagemaker, train_in_sagemaker

    if target:
        folder = api.train_table(config, target, binned, run_dir=run_dir, overrides=set_)
    elif in_sagemaker() and config is not None and run_dir is None and resume is None and init_from is None and folds is None:  # a SageMaker training job
        folder = train_in_sagemaker(config, set_)
    else:
        folder = api.train(config, run_dir=run_dir, overrides=set_, resume=resume, checkpoint=checkpoint, init_from=init_from,
                           folds=folds, stratify=stratify)
    if world_from_env().is_main:
        typer.echo(str(folder))


def init(
    table: str = typer.Argument(..., help="The table: a CSV, JSON lines or parquet file; or a MELD, Flickr30k, COCO, "
                                "npy or pickle folder."),
    target: list[str] = typer.Option(..., "--target", help="The column to predict (repeatable)."),
    binned: list[str] = typer.Option([], "--binned", help="A numeric --target to predict as one of 10 bins (repeatable)."),
    output: str = typer.Option("config.yaml", "--output", "-o", help="Where to write the config; - prints it."),
    force: bool = typer.Option(False, "--force", help="Replace OUTPUT when it exists."),
):
    """Write a commented config for a table: each column's type decided from a sample of its values, with the
    evidence; the targets' tasks from theirs."""
    from plait import api

    text = api.init_config(table, target, binned, None if output == "-" else output, force)
    if output == "-":
        typer.echo(text, nl=False)
        return
    typer.echo(f"wrote {output}; check it, then: plait train {output}")


def validate(
    config: Path = typer.Argument(..., help="The YAML config."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.epochs=3."),
):
    """Check a config against the schema (and its `tune:` space against the config): prints OK, or one line per problem."""
    from plait.config import load_config
    from plait.tuning.space import check_space

    check_space(load_config(config, set_), str(config))
    typer.echo("OK")


def demo(
    folder: Optional[Path] = typer.Option(None, help="Where to generate the data and the run (default: a temporary folder)."),
    rows: Optional[int] = typer.Option(None, help="Rows of generated data (default: 1500 multimodal, 400 sentiment, "
                                       "3000 captioning, i.e. 600 images with 5 captions each, 250 grounding, 600 attention, 2000 spectra, 1200 retrieval)."),
    recipe: str = typer.Option("multimodal", help="multimodal (photo + note + reading, seconds), sentiment (MELD-layout "
                               "clips: video + audio + text, under a minute on a CPU), captioning (Flickr30k-layout shapes: "
                               "image → caption, minutes on a CPU), grounding (84 object kinds, a few photos each, one caption each: "
                               "does the captioner beat the nearest training image's caption?), attention (pickled signals → LSTMs + attention → "
                               "a number), spectra (.npy spectra → CNN-LSTM → 15 binned parameters) or retrieval (photos, sounds and "
                               "descriptions → a metric-learning embedding, searched with FAISS)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key, e.g. --set train.epochs=3."),
):
    """Generate data in a real layout, train an embedded recipe on it, and show fusion against each input left out."""
    from plait.demo.runner import run_demo

    run_demo(folder, rows, set_, recipe)


