"""`plait evaluate`, `plait ablate`, `plait report`: look at a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from plait.cli.choices import Checkpoint, Split



def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    split: Split = typer.Option(Split.test, help="The split to evaluate."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
    baseline: bool = typer.Option(False, "--baseline", help="Also score predicting from the training targets alone "
                                  "(the most frequent class, the mean) and, for captions, writing the caption of the "
                                  "nearest training image (by pixels, and by the image encoder's vectors); and the trained model "
                                  "given each row another row's inputs (shuffled_inputs: how much it reads them)."),
    untrained: bool = typer.Option(False, "--untrained", help="Also score the same model with fresh random weights: "
                                   "what training adds."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Evaluate in this many processes on this machine (hands over to "
                              "torchrun): each predicts a share of the batches; the metrics equal one process's."),
):
    """Metrics of a trained run on one split (also written to evaluation/SPLIT.json); with --baseline or --untrained,
    beside the floors it must clear (as JSON: {"trained": ..., "baseline": ..., "untrained": ...})."""
    from plait import api
    from plait.errors import PlaitError
    from plait.distributed import world_from_env

    if nproc > 1 and (baseline or untrained):
        raise PlaitError("--baseline and --untrained are evaluated in one process: leave out --nproc")
    if nproc > 1:
        from plait.training.launch import run_torchrun

        args = [str(run_dir), f"--split={split.value}", f"--checkpoint={checkpoint.value}", *(["--json"] if as_json else [])]
        raise typer.Exit(run_torchrun(nproc, ["evaluate", *args]))
    if not (baseline or untrained):
        metrics = api.evaluate(run_dir, split.value, checkpoint.value)
        if world_from_env().is_main:
            show(metrics, as_json, f"{split.value} metrics", ["metric", "value"], [[k, v] for k, v in metrics.items()])
        return
    results = api.evaluate_with_floors(run_dir, split.value, checkpoint.value, baseline, untrained)
    rows = [[key, *(scores.get(key, "") for scores in results.values())] for key in results["trained"]]
    show(results, as_json, f"{split.value} metrics", ["metric", *results], rows)


def ablate(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    split: Split = typer.Option(Split.test, help="The split to evaluate."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
):
    """What each input contributes: the split evaluated with every input, with each input masked in turn (the
    missing-value path), and with one input kept alone; shows each output's main metric and its change
    (also written to evaluation/ablation_SPLIT.json)."""
    from plait import api

    result = api.ablate(run_dir, split.value, checkpoint.value)
    headers, rows = result.table()
    show(result.to_json(), as_json, f"{split.value} split by inputs used (change from fused in brackets)", headers, rows)


def show(value, as_json: bool, title: str, headers: list[str], rows: list[list]) -> None:
    """`value` as JSON on stdout, or the table (`headers`, `rows`)."""
    if as_json:
        typer.echo(json.dumps(value, indent=2))
    else:
        from plait.console import print_table

        print_table(title, headers, rows, to_stdout=True)


def report(
    run_dir: Path = typer.Argument(..., help="A run folder, or a cross-validation folder (plait train --folds): "
                                   "its page shows each fold's metrics and their mean ± std."),
    split: Optional[Split] = typer.Option(None, help="The split to show (default: the config's report.split: test, else validation)."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
    open_page: bool = typer.Option(False, "--open", help="Also open the page in the default web browser."),
):
    """Write report.html into the run folder: one self-contained page with the config, curves, metrics, confusion
    matrices, per-class scores, sample predictions with their inputs, embedding maps and the modality ablation."""
    from plait import api

    path = api.report(run_dir, split.value if split else None, checkpoint.value)
    typer.echo(str(path))
    if open_page:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


