"""`plait summary`: the model's layer table before training."""

from __future__ import annotations

from pathlib import Path

import typer


def summary(
    config: Path = typer.Argument(..., help="The YAML config."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set fusion.hidden=[256] (repeatable)."),
    depth: int = typer.Option(3, "--depth", min=0, help="How many levels of nested modules the layer table shows."),
    rows: int = typer.Option(4, "--rows", min=1, help="Training rows in the batch followed through the model."),
):
    """Print the model a config builds, before training: each layer's output shape, parameters and whether they
    train (torchinfo, over one real batch of training rows), then the trainable and frozen counts per component.
    Fits the preprocessing on the training rows as training does; writes no run folder."""
    from plait import api
    from plait.console import print_table

    result = api.summary(config, set_, depth, rows)
    typer.echo(f"layers, over a batch of {result.rows} training rows (torchinfo):")
    typer.echo(result.layers)
    print_table("parameters", ["component", "trainable", "frozen"], result.parameters, to_stdout=True)
