"""`plait summary`: the model a config builds, layer by layer, before any training. The preprocessing is fitted on the
training rows as training fits it (so vocabularies, image sizes and class counts are real), and torchinfo follows one
real batch of a few training rows through the model; nothing is written but the preprocessing cache."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from plait.config import Config
from plait.data.dataset import load_batch, prepare_inputs
from plait.errors import PlaitError
from plait.models.model import parameter_table
from plait.runs.run import Run

COLUMNS = ("output_size", "num_params", "trainable")


@dataclass
class Summary:
    """torchinfo's layer table (`layers`, as it prints it), plait's parameter table (`parameters`: component,
    trainable, frozen) and the rows of the batch that went through the model."""

    layers: str
    parameters: list[list]
    rows: int


def summarize(config: Config, depth: int = 3, rows: int = 4) -> Summary:
    """The model `config` builds (fresh weights, drawn with train.seed) followed through `rows` training rows."""
    from torchinfo import summary

    run = Run.start(config)  # a run with no folder: nothing of it is written
    train = run.data.rows("train")
    if not len(train):
        raise PlaitError(f"{run.data.source}: no row is in the training split")
    run.preprocessor.fit(train)
    positions = np.flatnonzero((run.data.split_of_row == "train").to_numpy())[:rows]
    split = run.preprocessor.encode(train.iloc[:rows], "train", run.data.places, config.data.on_bad_sample,
                                    row_numbers=positions.tolist(), cache=run.cache,
                                    workers=config.data.workers or os.cpu_count() or 1)
    if not len(split):
        raise PlaitError(f"{run.data.source}: the first {rows} training rows were all skipped as bad samples")
    model = run.build_model()
    model.eval()
    batch = load_batch(split, torch.arange(len(split)), run.tasks, run.device)
    inputs = prepare_inputs(run.features, batch["inputs"], training=False)
    statistics = summary(model, input_data={"inputs": inputs, "targets": batch["targets"] or None}, depth=depth,
                         col_names=COLUMNS, row_settings=("var_names",), mode="eval", verbose=0)
    return Summary(str(statistics), parameter_table(model), len(split))
