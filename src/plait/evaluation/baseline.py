"""The floor a trained output must clear: its metrics when predicting from the training targets alone."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from plait.data.columns import is_missing
from plait.errors import BadSample, MissingValue
from plait.evaluation.evaluate import score


def target_cells(task, values) -> dict:
    """One output's target cells of some rows, stacked; an unusable cell counts as missing."""
    cells = []
    for value in values:
        try:
            cells.append(None if is_missing(value) else task.encode(value))
        except (BadSample, MissingValue):
            cells.append(None)
    return task.stack(cells)


def baseline_metrics(tasks: dict, train_rows: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Metrics on `rows` of each output's baseline fitted on `train_rows` (the most frequent class of a category or
    binned output, the mean of a number); outputs without a baseline are left out."""
    chosen, predictions, targets = {}, {}, {}
    for name, task in tasks.items():
        column = task.spec.column
        target = target_cells(task, rows[column].tolist())
        prediction = task.baseline(target_cells(task, train_rows[column].tolist()), len(target["present"]))
        if prediction is not None:
            chosen[name], predictions[name], targets[name] = task, prediction, target
    return score(chosen, predictions, SimpleNamespace(targets=targets))
