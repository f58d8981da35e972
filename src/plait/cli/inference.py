"""`plait predict`, `caption`, `embed`, `index`, `search`, `export`: use a trained run on new rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from plait.cli.choices import BadSamplePolicy, Checkpoint, ExportFormat, IndexKind, Split

from plait.errors import PlaitError

BEAM_HELP = "Beams when writing captions (1: greedy; default: the run's generation.beam_size)."


def predict(
    run_dir: Path = typer.Argument(..., help="A run folder (or a folder written by `plait export`)."),
    input: str = typer.Option(..., "--input", help="Rows to predict: .csv, .jsonl or .parquet with the input columns, "
                              "or a folder of files when the run reads one file input (photos to caption)."),
    output: str = typer.Option(..., "--output", help="Where to write predictions: .csv, .jsonl or .parquet."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
    on_bad_sample: Optional[BadSamplePolicy] = typer.Option(None, help="error: stop at the first bad row, naming it; "
                                                            "skip: leave bad rows out and list them (default: the run's data.on_bad_sample)."),
    skipped: Optional[str] = typer.Option(None, "--skipped", help="Where to list the rows left out under skip "
                                          "(default: beside OUTPUT, e.g. predictions.skipped.jsonl)."),
    beam_size: Optional[int] = typer.Option(None, min=1, help=BEAM_HELP),
    chunk_rows: int = typer.Option(4096, "--chunk-rows", min=1, help="Read, predict and write this many rows at a time "
                                   "(memory stays flat however long the input)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Predict in this many processes on this machine (hands over to "
                              "torchrun: one per GPU, or CPU processes); chunk k goes to process k % N, the output "
                              "keeps the input's order."),
):
    """Write predictions in user values: labels with class probabilities, numbers in original units, captions."""
    if nproc > 1:
        from plait.training.launch import run_torchrun

        args = [str(run_dir), f"--input={input}", f"--output={output}", f"--checkpoint={checkpoint.value}",
                f"--chunk-rows={chunk_rows}"]
        args += [f"--on-bad-sample={on_bad_sample.value}"] if on_bad_sample else []
        args += [f"--skipped={skipped}"] if skipped else []
        args += [f"--beam-size={beam_size}"] if beam_size else []
        raise typer.Exit(run_torchrun(nproc, ["predict", *args]))

    from plait.inference.predict import load_joined, predict_file
    import plait.distributed as distributed

    run = load_joined(run_dir, checkpoint.value)  # with a launcher's processes (torchrun, mpirun), in their group
    try:
        written = predict_file(run, input, output, on_bad_sample.value if on_bad_sample else None, skipped, chunk_rows,
                               beam_size=beam_size)
    finally:
        distributed.stop()
    if not run.world.is_main:
        return
    typer.echo(f"wrote {written.rows} predictions to {output}")
    if written.skipped:
        from plait.data.tally import skipped_line

        typer.echo(skipped_line(written.skipped, written.skipped_file), err=True)


def index(
    run_dir: Path = typer.Argument(..., help="A run folder with an embedding output."),
    split: Split = typer.Option(Split.train, help="The split whose rows become the gallery."),
    output: Optional[str] = typer.Option(None, help="The embedding output (default: the run's only one)."),
    kind: IndexKind = typer.Option(IndexKind.auto, help="flat (exact), ivf (inverted lists: faster on large galleries, "
                                   "approximate) or auto (ivf from 50,000 rows)."),
    nlist: Optional[int] = typer.Option(None, min=1, help="ivf: number of lists (default about 4·√rows)."),
    nprobe: Optional[int] = typer.Option(None, min=1, help="ivf: lists searched per query (default nlist / 8)."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
):
    """Build a FAISS index of one split's embeddings in RUN_DIR/index/ (vectors, rows, labels, file paths)."""
    from plait.inference.retrieval import build_index

    typer.echo(f"wrote {build_index(run_dir, split.value, output, kind.value, nlist, nprobe, checkpoint.value)}")


def search(
    run_dir: Path = typer.Argument(..., help="A run folder with an index (see `plait index`)."),
    input: str = typer.Option(..., "--input", help="Query rows: a table with the input columns, or a folder of files."),
    k: int = typer.Option(10, "--k", min=1, help="Neighbours per query."),
    output: Optional[str] = typer.Option(None, "--output", help="Write the neighbours to this .csv, .jsonl or .parquet "
                                         "file instead of printing them."),
    index_name: Optional[str] = typer.Option(None, "--index", help="Which index of the run (default: its only one)."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
):
    """The k nearest indexed rows of each query: rank, cosine score, and the neighbour's row, label and files."""
    from plait.inference.output import write_table
    from plait.inference.retrieval import search as search_index

    found = search_index(run_dir, input, k, index_name, checkpoint.value)
    if output:
        write_table(found, output)
        typer.echo(f"wrote {len(found)} neighbours to {output}")
    else:
        typer.echo(found.to_string(index=False))


def embed(
    run_dir: Path = typer.Argument(..., help="A run folder (or a folder written by `plait export`)."),
    input: str = typer.Option(..., "--input", help="Rows to embed: a table with the input columns, or a folder of files."),
    output: str = typer.Option(..., "--output", help="Where to write the vectors: .parquet (a vector per cell), "
                               ".jsonl, or .csv (a column per component)."),
    only: list[str] = typer.Option([], "--only", help="Keep only these vectors: an input's name, fused, or an "
                                   "embedding output's name (repeatable; default: all)."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
):
    """Export feature vectors: every input's encoder output, the fused vector and the embedding outputs."""
    from plait.inference.retrieval import embed_file

    result = embed_file(run_dir, input, output, only or None, checkpoint.value)
    typer.echo(f"wrote {len(result)} rows ({', '.join(c for c in result.columns if c != 'row')}) to {output}")


def caption(
    run_dir: Path = typer.Argument(..., help="A captioning run folder (or a folder written by `plait export`)."),
    files: list[Path] = typer.Argument(..., help="Image files to caption."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
    beam_size: Optional[int] = typer.Option(None, min=1, help=BEAM_HELP),
    length_penalty: Optional[float] = typer.Option(None, help="Default: the run's generation.length_penalty."),
    max_length: Optional[int] = typer.Option(None, min=1, help="Most tokens per caption (default: the run's)."),
):
    """Print a caption for each image: the caption alone for one file, FILE<TAB>caption for several."""
    from plait.inference.predict import predict_paths
    from plait.runs import Run

    run = Run.load(run_dir, checkpoint.value)
    outputs = [name for name, task in run.tasks.items() if task.generates]
    if not outputs:
        raise PlaitError(f"{run_dir}: this run has no caption output")
    result = predict_paths(run, [str(path) for path in files], "error", beam_size=beam_size,
                           length_penalty=length_penalty, max_length=max_length)
    captions = result[f"{outputs[0]}_pred"].tolist()
    for path, text in zip(files, captions):
        typer.echo(text if len(files) == 1 else f"{path}\t{text}")


def export(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    out: Optional[Path] = typer.Argument(None, help="New folder to write (default: RUN_DIR/export-FORMAT)."),
    format: ExportFormat = typer.Option(ExportFormat.hf, "--format", help="hf: a Hugging Face Hub model folder (weights, "
                                        "config, tokenizer, model card); onnx: the same folder with model.onnx for "
                                        "onnxruntime (captions stay on PyTorch)."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights: best or last."),
    push: Optional[str] = typer.Option(None, "--push", help="Also upload the folder to this Hub repository (user/name); needs the network and a token."),
    private: bool = typer.Option(False, help="With --push: create the repository as private."),
):
    """Write a trained run as a self-contained folder (for the Hub, or with an ONNX model), and optionally upload it."""
    from plait.inference.export import export_hf, push_to_hub

    folder = out or run_dir / f"export-{format.value}"
    if format == ExportFormat.onnx:
        from plait.inference.onnx import export_onnx, read_manifest

        manifest = read_manifest(export_onnx(run_dir, folder, checkpoint.value))
        typer.echo(f"wrote {folder}: model.onnx and onnx.json (inputs {', '.join(i['name'] for i in manifest['inputs'])}; "
                   f"outputs {', '.join(manifest['outputs'])}) beside the PyTorch weights and preprocessing")
        if manifest["pytorch_only"]:
            typer.echo(f"{', '.join(manifest['pytorch_only'])}: generated token by token, not in model.onnx; the folder's "
                       "PyTorch weights write them (plait predict / plait caption)")
    else:
        typer.echo(f"wrote {export_hf(run_dir, folder, checkpoint.value)}")
    if push:
        typer.echo(f"uploaded to {push_to_hub(folder, push, private)}")
