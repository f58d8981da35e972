"""The command line: the same verbs as `plait.api`, with errors printed as one clear message, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from plait.errors import PlaitError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train multimodal models from one YAML file.")


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, help="The YAML config."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: runs/NAME-TIMESTAMP)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.epochs=3 (repeatable)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run folder exactly where it stopped."),
):
    """Train a model; prints progress and ends with the run folder."""
    from plait import api

    folder = api.train(config, run_dir=run_dir, overrides=set_, resume=resume)
    typer.echo(str(folder))


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    split: str = typer.Option("test", help="train, validation or test."),
    checkpoint: str = typer.Option("best", help="best or last."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
):
    """Metrics of a trained run on one split (also written to evaluation/SPLIT.json)."""
    from plait import api
    from plait.console import print_table

    metrics = api.evaluate(run_dir, split, checkpoint)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        print_table(f"{split} metrics", ["metric", "value"], [[k, v] for k, v in metrics.items()], to_stdout=True)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    input: str = typer.Option(..., "--input", help="Rows to predict: .csv, .jsonl or .parquet with the input columns."),
    output: str = typer.Option(..., "--output", help="Where to write predictions: .csv, .jsonl or .parquet."),
    checkpoint: str = typer.Option("best", help="best or last."),
    on_bad_sample: Optional[str] = typer.Option(None, help="error or skip (default: the run's setting)."),
):
    """Write predictions in user values: labels with class probabilities, numbers in original units."""
    from plait.inference.predict import predict_file
    from plait.runs import load_run

    result = predict_file(load_run(run_dir, checkpoint), input, output, on_bad_sample)
    typer.echo(f"wrote {len(result)} predictions to {output}")


@app.command()
def validate(
    config: Path = typer.Argument(..., help="The YAML config."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.epochs=3."),
):
    """Check a config against the schema: prints OK, or one line per problem."""
    from plait.config import load_config

    load_config(config, set_)
    typer.echo("OK")


@app.command()
def demo(
    folder: Optional[Path] = typer.Option(None, help="Where to generate the data and the run (default: a temporary folder)."),
    rows: int = typer.Option(1500, help="Rows of generated data."),
):
    """Generate the multimodal demo data, train on it, and show fusion against each input left out."""
    from plait.demo import run_demo

    run_demo(folder, rows)


def main() -> None:
    try:
        app(standalone_mode=False)
    except PlaitError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # click usage errors and the like
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise


if __name__ == "__main__":
    main()
