"""Predictions of a trained run for new rows, in user values: labels, class probabilities, numbers, captions.

The rows come from a table, or from a folder of files (or a list of paths) when the run reads one file input, such
as the photos of a captioning run. `predict_file` reads them a chunk at a time and shares the chunks among the
processes a launcher started (chunk k to rank k % N), so its memory stays flat whatever the input's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import pandas as pd
import torch

from plait.data.dataset import EncodedSplit, SkippedRow
from plait.data.places import RowPlaces
from plait.data.tables import read_table_at, require_columns, resolve_root
from plait.errors import PlaitError
from plait.evaluation.evaluate import generate_rows
from plait.inference.chunks import Chunk, file_input, files_table, folder_files, read_chunks
from plait.inference.output import Parts
from plait.inference.ranks import together
from plait.runs import Run
from plait.distributed import world_from_env

CHUNK_ROWS = 4096
PREDICT_SKIP_HINT = "pass --on-bad-sample skip to leave such rows out"


@dataclass
class Written:
    """What `predict_file` wrote: how many predictions, how many rows it left out under `skip`, and where those are
    listed (None when none was)."""

    rows: int
    skipped: int = 0
    skipped_file: Path | None = None


@dataclass
class ChunkDone:
    """One rank's part of a round: the chunk it predicted (None when the round had none for it), the predictions it
    wrote, the rows it left out."""

    index: int | None = None
    rows: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)


def predict_table(run: Run, table: pd.DataFrame, places: RowPlaces | str, on_bad_sample: str | None = None,
                  **generation) -> pd.DataFrame:
    """`row` (position in the input), then per output `NAME_pred` (and `NAME_prob_LABEL` for categories), and with
    the attention fusion `attention_INPUT`, its weight on each input.
    `generation` changes how captions are written (beam_size, length_penalty, max_length)."""
    return predict_encoded_rows(run, encode_rows(run, table, places, on_bad_sample), **generation)


def predict_encoded_rows(run: Run, encoded: EncodedSplit, predict=None, **generation) -> pd.DataFrame:
    """`predict_table` of rows already encoded; `predict(encoded)` gives the raw predictions (default: the run's
    PyTorch model; `plait serve --runtime onnx` passes onnxruntime's). Captions are always written by PyTorch."""
    features, tasks, batch_size = run.features, run.tasks, run.config.train.evaluation_batch_size
    predictions = (predict or run.predict)(encoded)
    columns: dict[str, list] = {"row": encoded.rows}
    for name, task in tasks.items():
        if task.generates:
            ids = generate_rows(run.model, features, name, encoded, list(range(len(encoded))), batch_size, run.device,
                                **task.generation_options(**generation))
            columns.update(task.decode(ids))
        else:
            columns.update(task.decode(predictions[name]))
    if "fusion.attention" in predictions:  # the attention fusion's weight on each input, per row
        weights = predictions["fusion.attention"].numpy()
        columns.update({f"attention_{name}": weights[:, i] for i, name in enumerate(run.model.fusion.order)})
    return pd.DataFrame(columns)


def encode_rows(run: Run, table: pd.DataFrame, places: RowPlaces | str, on_bad_sample: str | None = None,
                skip_hint: str = PREDICT_SKIP_HINT, first_row: int = 0) -> EncodedSplit:
    """New rows' inputs, encoded with the run's preprocessing (no targets needed). `first_row`: the position of the
    table's first row in the whole input (a chunk's offset), which its rows are numbered from and `places` answer for."""
    places = RowPlaces.of(places)
    require_columns(table, run.preprocessor.required_columns(with_targets=False), places.source)
    policy = on_bad_sample or run.config.data.on_bad_sample
    return run.preprocessor.encode(table, "predict", places, policy, row_numbers=range(first_row, first_row + len(table)),
                                   with_targets=False, skip_hint=skip_hint)


def read_rows(run: Run, input_path: str) -> tuple[pd.DataFrame, RowPlaces]:
    """The rows of a table (file paths in its cells resolve against the table's own folder), or one row per file of a
    folder, the run's one file input holding its path; and where each row is."""
    if os.path.isdir(input_path):
        paths = folder_files(input_path)
        return files_table(run, paths), RowPlaces.of_files(input_path, paths)
    table, places = read_table_at(input_path)
    for feature in run.features.values():
        feature.base_dir = resolve_root(input_path, None)
    return table, places


def predict_paths(run: Run, paths: list[str], on_bad_sample: str | None = None, **generation) -> pd.DataFrame:
    """Predictions for a list of files, with the file path as the first column."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise PlaitError(f"{missing[0]}: no such file")
    table = files_table(run, paths)
    result = predict_table(run, table, RowPlaces.of_files("the given files", paths),
                           on_bad_sample, **generation)
    return with_paths(run, table, result)


def with_paths(run: Run, table: pd.DataFrame, result: pd.DataFrame, first_row: int = 0) -> pd.DataFrame:
    """`result` with the file input's path of each row as its second column (`table`'s first row is `first_row`)."""
    column = file_input(run).spec.column
    result.insert(1, column, table[column].iloc[result["row"] - first_row].tolist())
    return result


def predict_file(run: Run, input_path: str, output_path: str, on_bad_sample: str | None = None,
                 skipped_path: str | None = None, chunk_rows: int = CHUNK_ROWS, **generation) -> Written:
    """Predictions for a table of rows, or for every file in a folder; written to `output_path`, `chunk_rows` rows at
    a time. In a process group (`Run.join_processes`), chunk k is predicted by rank k % N and every rank must call
    this. Rows left out under `skip` are listed in `skipped_path` (default: OUTPUT's name with `.skipped.jsonl`),
    as training lists them in skipped.jsonl."""
    world = run.world
    chunks, places = read_chunks(run, input_path, chunk_rows)
    of_files = os.path.isdir(input_path)

    def predict_round() -> ChunkDone | None:
        """This rank's chunk of the next round (of N chunks), predicted and written; None when the input is done."""
        chunks_of_round = list(islice(chunks, world.size))
        if not chunks_of_round:
            return None
        if world.rank >= len(chunks_of_round):
            return ChunkDone()
        return predict_chunk(run, chunks_of_round[world.rank], places, parts, of_files, on_bad_sample, generation)

    rows_per_chunk, skipped = [], 0
    with Parts.beside(output_path, world) as parts:
        while True:
            round_done = together(predict_round, world, parts.remove)
            if all(done is None for done in round_done):
                break
            for done in round_done:  # in rank order, so the round's chunks in input order
                if done is not None and done.index is not None:
                    rows_per_chunk.append(done.rows)
                    parts.add_skipped(done.skipped)
                    skipped += len(done.skipped)
        skipped_file = Path(skipped_path) if skipped_path else skipped_beside(output_path)
        together(lambda: parts.finish(rows_per_chunk, skipped_file), world, parts.remove)
    return Written(sum(rows_per_chunk), skipped, skipped_file if skipped else None)


def predict_chunk(run: Run, chunk: Chunk, places: RowPlaces, parts: Parts, of_files: bool, on_bad_sample: str | None,
                  generation: dict) -> ChunkDone:
    encoded = encode_rows(run, chunk.table, places, on_bad_sample, first_row=chunk.offset)
    result = predict_encoded_rows(run, encoded, **generation)
    if of_files:
        result = with_paths(run, chunk.table, result, chunk.offset)
    parts.write(chunk.index, result)
    return ChunkDone(chunk.index, len(result), encoded.skipped)


def load_joined(folder: str | Path, which: str = "best") -> Run:
    """A run loaded by each of the processes a launcher (torchrun, mpirun) started, joined in their process group, on
    its own device (cuda:LOCAL_RANK); the run alone, in a world of one, without a launcher."""
    world = world_from_env()
    if world.is_distributed and torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)  # so that loading puts the weights on this rank's device, not all on cuda:0
    return Run.load(folder, which, join_processes=True)


def skipped_beside(output_path: str) -> Path:
    """`out/predictions.csv` → `out/predictions.skipped.jsonl`."""
    path = Path(output_path)
    return path.with_name(f"{path.name.split('.')[0] or path.name}.skipped.jsonl")
