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
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train in this many processes on this machine (DDP; hands over "
                              "to torchrun: one per GPU, or CPU processes with gloo). train.batch_size stays the global batch."),
):
    """Train a model; prints progress and ends with the run folder."""
    from plait import api

    if nproc > 1:
        from plait.training.launch import run_torchrun

        args = [str(config)] if config else []
        args += [f"--run-dir={run_dir}"] if run_dir else []
        args += [f"--resume={resume}"] if resume else []
        args += [f"--set={text}" for text in set_]
        raise typer.Exit(run_torchrun(nproc, ["train", *args]))

    from plait.training.distributed import world_from_env

    from plait.sagemaker import in_sagemaker, train_in_sagemaker

    if in_sagemaker() and config is not None and run_dir is None and resume is None:  # a SageMaker training job
        folder = train_in_sagemaker(config, set_)
    else:
        folder = api.train(config, run_dir=run_dir, overrides=set_, resume=resume)
    if world_from_env().is_main:
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
def ablate(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    split: str = typer.Option("test", help="train, validation or test."),
    checkpoint: str = typer.Option("best", help="best or last."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
):
    """What each input contributes: the split evaluated with every input, with each input masked in turn (the
    missing-value path), and with one input kept alone; shows each output's main metric and its change
    (also written to evaluation/ablation_SPLIT.json)."""
    from plait import api
    from plait.console import print_table

    result = api.ablate(run_dir, split, checkpoint)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        headers, rows = result.table()
        print_table(f"{split} split by inputs used (change from fused in brackets)", headers, rows, to_stdout=True)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    split: Optional[str] = typer.Option(None, help="The split to show (default: the config's report.split: test, else validation)."),
    checkpoint: str = typer.Option("best", help="best or last."),
    open_page: bool = typer.Option(False, "--open", help="Also open the page in the default web browser."),
):
    """Write report.html into the run folder: one self-contained page with the config, curves, metrics, confusion
    matrices, per-class scores, sample predictions with their inputs, embedding maps and the modality ablation."""
    from plait import api

    path = api.report(run_dir, split, checkpoint)
    typer.echo(str(path))
    if open_page:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


BEAM_HELP = "Beams when writing captions (1: greedy; default: the run's generation.beam_size)."


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run folder (or a folder written by `plait export`)."),
    input: str = typer.Option(..., "--input", help="Rows to predict: .csv, .jsonl or .parquet with the input columns, "
                              "or a folder of files when the run reads one file input (photos to caption)."),
    output: str = typer.Option(..., "--output", help="Where to write predictions: .csv, .jsonl or .parquet."),
    checkpoint: str = typer.Option("best", help="best or last."),
    on_bad_sample: Optional[str] = typer.Option(None, help="error or skip (default: the run's setting)."),
    beam_size: Optional[int] = typer.Option(None, min=1, help=BEAM_HELP),
):
    """Write predictions in user values: labels with class probabilities, numbers in original units, captions."""
    from plait.inference.predict import predict_file
    from plait.runs import load_run

    result = predict_file(load_run(run_dir, checkpoint), input, output, on_bad_sample, beam_size=beam_size)
    typer.echo(f"wrote {len(result)} predictions to {output}")


@app.command()
def index(
    run_dir: Path = typer.Argument(..., help="A run folder with an embedding output."),
    split: str = typer.Option("train", help="The split whose rows become the gallery."),
    output: Optional[str] = typer.Option(None, help="The embedding output (default: the run's only one)."),
    kind: str = typer.Option("auto", help="flat (exact), ivf (inverted lists: faster on large galleries, "
                             "approximate) or auto (ivf from 50,000 rows)."),
    nlist: Optional[int] = typer.Option(None, min=1, help="ivf: number of lists (default about 4·√rows)."),
    nprobe: Optional[int] = typer.Option(None, min=1, help="ivf: lists searched per query (default nlist / 8)."),
    checkpoint: str = typer.Option("best", help="best or last."),
):
    """Build a FAISS index of one split's embeddings in RUN_DIR/index/ (vectors, rows, labels, file paths)."""
    from plait.inference.retrieval import build_index

    if kind not in ("auto", "flat", "ivf"):
        raise PlaitError(f"--kind {kind}: choose auto, flat or ivf")
    typer.echo(f"wrote {build_index(run_dir, split, output, kind, nlist, nprobe, checkpoint)}")


@app.command()
def search(
    run_dir: Path = typer.Argument(..., help="A run folder with an index (see `plait index`)."),
    input: str = typer.Option(..., "--input", help="Query rows: a table with the input columns, or a folder of files."),
    k: int = typer.Option(10, "--k", min=1, help="Neighbours per query."),
    output: Optional[str] = typer.Option(None, "--output", help="Write the neighbours to this .csv, .jsonl or .parquet "
                                         "file instead of printing them."),
    index_name: Optional[str] = typer.Option(None, "--index", help="Which index of the run (default: its only one)."),
    checkpoint: str = typer.Option("best", help="best or last."),
):
    """The k nearest indexed rows of each query: rank, cosine score, and the neighbour's row, label and files."""
    from plait.inference.predict import write_table
    from plait.inference.retrieval import search as search_index

    found = search_index(run_dir, input, k, index_name, checkpoint)
    if output:
        write_table(found, output)
        typer.echo(f"wrote {len(found)} neighbours to {output}")
    else:
        typer.echo(found.to_string(index=False))


@app.command()
def embed(
    run_dir: Path = typer.Argument(..., help="A run folder (or a folder written by `plait export`)."),
    input: str = typer.Option(..., "--input", help="Rows to embed: a table with the input columns, or a folder of files."),
    output: str = typer.Option(..., "--output", help="Where to write the vectors: .parquet (a vector per cell), "
                               ".jsonl, or .csv (a column per component)."),
    only: list[str] = typer.Option([], "--only", help="Keep only these vectors: an input's name, fused, or an "
                                   "embedding output's name (repeatable; default: all)."),
    checkpoint: str = typer.Option("best", help="best or last."),
):
    """Export feature vectors: every input's encoder output, the fused vector and the embedding outputs."""
    from plait.inference.retrieval import embed_file

    result = embed_file(run_dir, input, output, only or None, checkpoint)
    typer.echo(f"wrote {len(result)} rows ({', '.join(c for c in result.columns if c != 'row')}) to {output}")


@app.command()
def caption(
    run_dir: Path = typer.Argument(..., help="A captioning run folder (or a folder written by `plait export`)."),
    files: list[Path] = typer.Argument(..., help="Image files to caption."),
    checkpoint: str = typer.Option("best", help="best or last."),
    beam_size: Optional[int] = typer.Option(None, min=1, help=BEAM_HELP),
    length_penalty: Optional[float] = typer.Option(None, help="Default: the run's generation.length_penalty."),
    max_length: Optional[int] = typer.Option(None, min=1, help="Most tokens per caption (default: the run's)."),
):
    """Print a caption for each image: the caption alone for one file, FILE<TAB>caption for several."""
    from plait.inference.predict import predict_paths
    from plait.runs import load_run

    run = load_run(run_dir, checkpoint)
    outputs = [name for name, task in run.preprocessor.tasks.items() if task.generates]
    if not outputs:
        raise PlaitError(f"{run_dir}: this run has no caption output")
    result = predict_paths(run, [str(path) for path in files], "error", beam_size=beam_size,
                           length_penalty=length_penalty, max_length=max_length)
    captions = result[f"{outputs[0]}_pred"].tolist()
    for path, text in zip(files, captions):
        typer.echo(text if len(files) == 1 else f"{path}\t{text}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    out: Optional[Path] = typer.Argument(None, help="New folder to write (default: RUN_DIR/export-hf)."),
    format: str = typer.Option("hf", "--format", help="hf: a Hugging Face Hub model folder (weights, config, tokenizer, model card)."),
    checkpoint: str = typer.Option("best", help="best or last."),
    push: Optional[str] = typer.Option(None, "--push", help="Also upload the folder to this Hub repository (user/name); needs the network and a token."),
    private: bool = typer.Option(False, help="With --push: create the repository as private."),
):
    """Write a trained run as a self-contained folder for the Hugging Face Hub, and optionally upload it."""
    from plait.inference.export import export_hf, push_to_hub

    if format != "hf":
        raise PlaitError(f"--format {format}: the only export format is hf")
    folder = export_hf(run_dir, out or run_dir / "export-hf", checkpoint)
    typer.echo(f"wrote {folder}")
    if push:
        typer.echo(f"uploaded to {push_to_hub(folder, push, private)}")


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
    rows: Optional[int] = typer.Option(None, help="Rows of generated data (default: 1500 multimodal, 400 sentiment, "
                                       "3000 captioning, i.e. 600 images with 5 captions each, 600 attention, 2000 spectra, 1200 retrieval)."),
    recipe: str = typer.Option("multimodal", help="multimodal (photo + note + reading, seconds), sentiment (MELD-layout "
                               "clips: video + audio + text, under a minute on a CPU), captioning (Flickr30k-layout shapes: "
                               "image → caption, minutes on a CPU), attention (pickled signals → LSTMs + attention → "
                               "a number), spectra (.npy spectra → CNN-LSTM → 15 binned parameters) or retrieval (photos, sounds and "
                               "descriptions → a metric-learning embedding, searched with FAISS)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key, e.g. --set train.epochs=3."),
):
    """Generate data in a real layout, train an embedded recipe on it, and show fusion against each input left out."""
    from plait.demo import run_demo

    run_demo(folder, rows, set_, recipe)


from plait.cli_augment import augment_app  # noqa: E402  (a sub-app, like `cache` below)

app.add_typer(augment_app, name="augment")

from plait.cli_sagemaker import sagemaker  # noqa: E402

app.command("sagemaker")(sagemaker)

from plait.cli_compare import compare  # noqa: E402

app.command("compare")(compare)

cache_app = typer.Typer(no_args_is_help=True, help="The preprocessing cache: decoded media stored once, memory-mapped.")
app.add_typer(cache_app, name="cache")


@cache_app.command("build")
def cache_build(
    config: Path = typer.Argument(..., help="The YAML config whose inputs to decode and store."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set data.cache_dir=/fast/disk."),
):
    """Decode every split's cached inputs (and frozen encoders' embeddings) now, so training starts warm."""
    from plait import api

    _print_cache(api.build_cache(config, set_))


@cache_app.command("info")
def cache_info(
    folder: Optional[Path] = typer.Option(None, "--dir", help="Cache folder (default: $PLAIT_CACHE_DIR or ~/.cache/plait)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
):
    """Size, cell count and hit rate of every namespace (a feature type + its preprocessing settings)."""
    from plait.data.cache import cache_folder, summarise

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

    from plait.data.cache import cache_folder, folder_bytes

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


def main() -> None:
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(code) comes back as its return value
        if isinstance(code, int) and code:
            sys.exit(code)
    except PlaitError as error:
        from plait.training.distributed import world_from_env

        world = world_from_env()
        typer.echo(f"error{f' (rank {world.rank} of {world.size})' if world.is_distributed else ''}: {error}", err=True)
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
