"""`plait compare DIR1 DIR2 ...`: trained runs side by side (the comparison itself lives in plait.report.compare)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def compare(
    folders: list[Path] = typer.Argument(..., help="Two or more run folders."),
    output: Path = typer.Option(Path("compare"), "--output", help="Folder for the comparison plots."),
    split: str = typer.Option("test", "--split", help="The split whose final metrics to compare (validation where a "
                              "run has no evaluation of it)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of the tables."),
):
    """The settings that differ between runs, their final metrics with the best run per metric, epochs, best
    monitored value and wall time, and their validation curves on shared plots (loss.png, one PNG per metric)."""
    from plait.report.compare import compare_runs

    result = compare_runs(folders, split, output)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    names = [run["name"] for run in result["runs"]]
    print_config_differences(result["config_differences"], names)
    print_metrics(result["metrics"], result["runs"])
    print_runs(result["runs"])
    typer.echo(f"plots: {', '.join(Path(path).name for path in result['plots'])} in {output}")


def print_config_differences(differences: dict[str, dict], names: list[str]) -> None:
    from plait.console import print_table

    if not differences:
        typer.echo("config: the runs' settings are the same")
        return
    rows = [[key, *(shown(values[name]) if name in values else "" for name in names)] for key, values in differences.items()]
    print_table("config differences", ["key", *names], rows, to_stdout=True)


def print_metrics(metrics: dict[str, dict], runs: list[dict]) -> None:
    """One row per metric, a column per run (headed by the split it came from), and the best runs."""
    from plait.console import print_table

    headers = [f"{run['name']} ({run['split'] or 'no evaluation'})" for run in runs]
    rows = [[key, *(compared["values"].get(run["name"], "") for run in runs),
             f"{', '.join(compared['best'])} {'↑' if compared['higher_is_better'] else '↓'}" if compared["best"] else ""]
            for key, compared in metrics.items()]
    print_table("final metrics", ["metric", *headers, "best"], rows, to_stdout=True)


def print_runs(runs: list[dict]) -> None:
    from plait.console import print_table

    rows = [[run["name"], run["epochs"], run["monitor"], "" if run["best_monitored"] is None else run["best_monitored"],
             "" if run["wall_time_s"] is None else f"{run['wall_time_s']:.1f} s"] for run in runs]
    print_table("training", ["run", "epochs", "monitored", "best", "wall time"], rows, to_stdout=True)


def shown(value) -> str:
    """A config value as it reads in YAML, lists on one line: `adamw`, `0.001`, `[32, 16]`, `null`."""
    return value if isinstance(value, str) else json.dumps(value)
