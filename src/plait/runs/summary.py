"""`plait summary`: the model a config builds, layer by layer, before any training. The preprocessing is fitted on the
training rows as training fits it (so vocabularies, image sizes and class counts are real), and torchinfo follows one
real batch of a few training rows through the model; nothing is written but the preprocessing cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from plait.config import Config
from plait.data.dataset import load_batch, prepare_inputs
from plait.errors import PlaitError
from plait.models.model import parameter_table
from plait.runs.run import Run
from plait.runs.setup import encode_split

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
    split = encode_split(run.data, run.preprocessor, "train", config, run.cache, limit=rows)
    if not len(split):
        raise PlaitError(f"{run.data.source}: the first {rows} training rows were all skipped as bad samples")
    model = run.build_model()
    model.eval()
    batch = load_batch(split, torch.arange(len(split)), run.tasks, run.device)
    inputs = prepare_inputs(run.features, batch["inputs"], training=False)
    statistics = summary(model, input_data={"inputs": inputs, "targets": batch["targets"] or None}, depth=depth,
                         col_names=COLUMNS, row_settings=("var_names",), mode="eval", verbose=0)
    return Summary(str(statistics), parameter_table(model), len(split))
