"""Predictions of a trained run for new rows, in user values: labels, class probabilities, numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from plait.data.tables import read_table, require_columns, resolve_root, table_format
from plait.errors import PlaitError
from plait.evaluation.evaluate import predict_split
from plait.runs import TrainedRun


def predict_table(run: TrainedRun, table: pd.DataFrame, source: str, on_bad_sample: str | None = None) -> pd.DataFrame:
    """`row` (position in the input), then per output `NAME_pred` (and `NAME_prob_LABEL` for categories)."""
    require_columns(table, run.preprocessor.required_columns(with_targets=False), source)
    policy = on_bad_sample or run.config.data.on_bad_sample
    encoded = run.preprocessor.encode(table, "predict", source, policy, with_targets=False)
    predictions = predict_split(run.model, run.preprocessor.features, encoded, run.config.train.evaluation_batch_size, run.device)
    columns: dict[str, list] = {"row": encoded.rows}
    for name, task in run.preprocessor.tasks.items():
        columns.update(task.decode(predictions[name]))
    return pd.DataFrame(columns)


def predict_file(run: TrainedRun, input_path: str, output_path: str, on_bad_sample: str | None = None) -> pd.DataFrame:
    table = read_table(input_path)
    # file paths in the input's cells resolve against the input's own folder
    for feature in run.preprocessor.features.values():
        feature.base_dir = resolve_root(input_path, None)
    result = predict_table(run, table, input_path, on_bad_sample)
    write_table(result, output_path)
    return result


def write_table(frame: pd.DataFrame, path: str) -> None:
    kind = table_format(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = str(Path(path).with_name(f".{Path(path).name}.tmp"))
    if kind == "csv":
        frame.to_csv(temporary, index=False)
    elif kind == "jsonl":
        frame.to_json(temporary, orient="records", lines=True)
    elif kind == "parquet":
        frame.to_parquet(temporary, index=False)
    else:
        raise PlaitError(f"{path}: cannot write {kind}")
    Path(temporary).replace(path)
