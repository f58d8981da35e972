"""`plait cache build | info | clear`: the preprocessing cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


cache_app = typer.Typer(no_args_is_help=True, help="The preprocessing cache: decoded media stored once, memory-mapped.")


@cache_app.command("build")
def cache_build(
    config: Path = typer.Argument(..., help="The YAML config whose inputs to decode and store."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set data.cache_dir=/fast/disk."),
    skipped: Optional[Path] = typer.Option(None, "--skipped", help="Where to list rows passed over under "
                                           "data.on_bad_sample: skip (default: skipped-NAME.jsonl in the cache folder)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Decode in this many processes on this machine (hands over to "
                              "torchrun, as plait train --nproc does): each cell is decoded once, by one of them."),
):
    """Decode every split's cached inputs (and frozen encoders' embeddings) now, so training starts warm."""
    from plait import api
    from plait.console import say
    from plait.data.tally import skipped_line
    from plait.distributed import world_from_env

    if nproc > 1:
        from plait.training.launch import run_torchrun

        args = [str(config), *(f"--set={text}" for text in set_), *([f"--skipped={skipped}"] if skipped else [])]
        raise typer.Exit(run_torchrun(nproc, ["cache", "build", *args]))
    built = api.build_cache(config, set_, skipped)
    if not world_from_env().is_main:
        return
    _print_cache(built["namespaces"])
    if built["skipped"]:
        say(f"[yellow]{skipped_line(built['skipped'], built['skipped_file'])}[/yellow]")


@cache_app.command("info")
def cache_info(
    folder: Optional[Path] = typer.Option(None, "--dir", help="Cache folder (default: $PLAIT_CACHE_DIR or ~/.cache/plait)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
):
    """Size, cell count and hit rate of every namespace (a feature type + its preprocessing settings)."""
    from plait.data.cache_folder import cache_folder, summarise

    root = cache_folder(str(folder) if folder else None)
    rows = summarise(root) if root.is_dir() else []
    if as_json:
        typer.echo(json.dumps({"folder": str(root), "namespaces": rows}, indent=2))
    else:
        typer.echo(f"cache folder: {root}")
        _print_cache(rows)


@cache_app.command("clear")
def cache_clear(
    folder: Optional[Path] = typer.Option(None, "--dir", help="Cache folder (default: $PLAIT_CACHE_DIR or ~/.cache/plait)."),
):
    """Delete everything in the cache folder (it refills on the next run)."""
    import shutil

    from plait.data.cache_folder import cache_folder, folder_bytes

    root = cache_folder(str(folder) if folder else None)
    if not root.is_dir():
        typer.echo(f"{root}: no cache here")
        return
    size = folder_bytes(root)
    shutil.rmtree(root)
    typer.echo(f"removed {root} ({size / 2**20:.1f} MiB)")


def _print_cache(rows: list[dict]) -> None:
    from plait.console import print_table

    def rate(row):
        return "-" if row["hit_rate"] is None else f"{100 * row['hit_rate']:.1f}%"

    table = [[r["namespace"], r["cells"], r["shards"], f"{r['bytes'] / 2**20:.1f}", r["hits"], r["misses"], rate(r)] for r in rows]
    if rows:
        total_bytes = sum(r["bytes"] for r in rows)
        hits, misses = sum(r["hits"] for r in rows), sum(r["misses"] for r in rows)
        overall = {"hit_rate": hits / (hits + misses) if hits + misses else None}
        table.append(["total", sum(r["cells"] for r in rows), sum(r["shards"] for r in rows), f"{total_bytes / 2**20:.1f}", hits, misses, rate(overall)])
    print_table("preprocessing cache", ["namespace", "cells", "shards", "MiB", "hits", "misses", "hit rate"], table, to_stdout=True)


