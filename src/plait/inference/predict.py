"""Predictions of a trained run for new rows, in user values: labels, class probabilities, numbers, captions.

The rows come from a table, or from a folder of files (or a list of paths) when the run reads one file input, such
as the photos of a captioning run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from plait.data.dataset import EncodedSplit, SkippedRow, write_skipped
from plait.data.features.base import FileFeature
from plait.data.places import RowPlaces
from plait.data.tables import read_table_at, require_columns, resolve_root, table_format
from plait.errors import PlaitError
from plait.files import atomic_path
from plait.evaluation.evaluate import generate_rows
from plait.runs import Run


PREDICT_SKIP_HINT = "pass --on-bad-sample skip to leave such rows out"


@dataclass
class Predictions:
    """What `predict_file` wrote: the predictions, the rows left out under `skip`, and where those are listed."""

    table: pd.DataFrame
    skipped: list[SkippedRow] = field(default_factory=list)
    skipped_file: Path | None = None


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
                skip_hint: str = PREDICT_SKIP_HINT) -> EncodedSplit:
    """New rows' inputs, encoded with the run's preprocessing (no targets needed)."""
    places = RowPlaces.of(places)
    require_columns(table, run.preprocessor.required_columns(with_targets=False), places.source)
    policy = on_bad_sample or run.config.data.on_bad_sample
    return run.preprocessor.encode(table, "predict", places, policy, with_targets=False, skip_hint=skip_hint)


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


def file_input(run: Run) -> FileFeature:
    """The run's one file input (image, video, audio), which a folder or a list of paths fills."""
    files = [feature for feature in run.features.values() if isinstance(feature, FileFeature)]
    if len(files) != 1:
        names = ", ".join(f"{f.spec.name} ({f.name})" for f in run.features.values())
        raise PlaitError(f"a folder or list of files needs a run with exactly one file input; this run reads {names}: give a table instead")
    return files[0]


def files_table(run: Run, paths: list[str]) -> pd.DataFrame:
    """One row per path: the file input's column holds it, every other input is empty (its `missing` policy applies)."""
    feature = file_input(run)
    table = pd.DataFrame({feature.spec.column: [str(Path(path).resolve()) for path in paths]})
    for other in run.features.values():
        if other is not feature:
            table[other.spec.column] = np.nan
    return table


def folder_files(folder: str) -> list[str]:
    paths = sorted(str(path) for path in Path(folder).iterdir() if path.is_file() and not path.name.startswith("."))
    if not paths:
        raise PlaitError(f"{folder}: no files in this folder")
    return paths


def predict_paths(run: Run, paths: list[str], on_bad_sample: str | None = None, **generation) -> pd.DataFrame:
    """Predictions for a list of files, with the file path as the first column."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise PlaitError(f"{missing[0]}: no such file")
    table = files_table(run, paths)
    result = predict_table(run, table, RowPlaces.of_files("the given files", paths),
                           on_bad_sample, **generation)
    return with_paths(run, table, result)


def with_paths(run: Run, table: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
    """`result` with the file input's path of each row as its second column."""
    column = file_input(run).spec.column
    result.insert(1, column, table[column].iloc[result["row"]].tolist())
    return result


def predict_file(run: Run, input_path: str, output_path: str, on_bad_sample: str | None = None,
                 skipped_path: str | None = None, **generation) -> Predictions:
    """Predictions for a table of rows, or for every file in a folder; written to `output_path`. Rows left out
    under `skip` are listed in `skipped_path` (default: OUTPUT's name with `.skipped.jsonl`), as training lists
    them in skipped.jsonl."""
    table, places = read_rows(run, input_path)
    encoded = encode_rows(run, table, places, on_bad_sample)
    result = predict_encoded_rows(run, encoded, **generation)
    if os.path.isdir(input_path):
        result = with_paths(run, table, result)
    write_table(result, output_path)
    skipped_file = Path(skipped_path) if skipped_path else skipped_beside(output_path)
    written = write_skipped([encoded], skipped_file)
    return Predictions(result, encoded.skipped, skipped_file if written else None)


def skipped_beside(output_path: str) -> Path:
    """`out/predictions.csv` → `out/predictions.skipped.jsonl`."""
    path = Path(output_path)
    return path.with_name(f"{path.name.split('.')[0] or path.name}.skipped.jsonl")


def write_table(frame: pd.DataFrame, path: str) -> None:
    """CSV, JSON lines or parquet by the file's extension; in a CSV, a column of vectors becomes a column per component
    (`NAME_0`, `NAME_1`, ...)."""
    kind = table_format(path)
    if kind == "csv":
        frame = spread_vectors(frame)
    if kind not in ("csv", "jsonl", "parquet"):
        raise PlaitError(f"{path}: cannot write {kind}")
    with atomic_path(path) as temporary:
        if kind == "csv":
            frame.to_csv(temporary, index=False)
        elif kind == "jsonl":
            frame.to_json(temporary, orient="records", lines=True)
        else:
            frame.to_parquet(temporary, index=False)


def spread_vectors(frame: pd.DataFrame) -> pd.DataFrame:
    """Each column whose cells are lists of numbers → one column per component."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if len(values) and isinstance(values.iloc[0], (list, np.ndarray)):
            matrix = np.asarray(values.tolist())
            columns.update({f"{name}_{i}": matrix[:, i] for i in range(matrix.shape[1])})
        else:
            columns[name] = values
    return pd.DataFrame(columns, index=frame.index)
