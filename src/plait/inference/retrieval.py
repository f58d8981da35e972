"""`plait index`, `plait search` and `plait embed`: a trained run's embeddings put to use outside training.

`index` embeds one split of the run's table and keeps the vectors in a FAISS index in the run folder (`index/`),
with each vector's row, class and the row's file paths or texts. `search` embeds new rows (a table, or a folder of
files) and lists each one's nearest indexed rows. `embed` writes any input's encoder output, the fused vector and
the embedding outputs of new rows to a table, for other tools.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from plait.data.dataset import prepare_inputs, to_device
from plait.data.places import RowPlaces
from plait.errors import PlaitError
from plait.evaluation.evaluate import embeddings_of
from plait.inference.predict import encode_rows, file_input, read_rows
from plait.runs import Run

INDEX_FOLDER = "index"
STOP_HINT = "this command stops at the first bad row: fix or remove it"


def embedding_output(run: Run, name: str | None = None) -> str:
    """The embedding output to use: `name`, or the run's only one."""
    outputs = [n for n, task in run.tasks.items() if task.spec.type == "embedding"]
    if not outputs:
        raise PlaitError(f"{run.folder}: this run has no embedding output (outputs of type embedding are indexed)")
    if name is None:
        if len(outputs) > 1:
            raise PlaitError(f"{run.folder}: the run has several embedding outputs ({', '.join(outputs)}): choose one with --output")
        return outputs[0]
    if name not in outputs:
        raise PlaitError(f"--output {name}: not an embedding output of this run (those are: {', '.join(outputs)})")
    return name


def text_columns(run: Run, rows: pd.DataFrame) -> pd.DataFrame:
    """The input columns whose cells are text (file paths, sentences): what tells a person which row a neighbour is."""
    columns = [feature.spec.column for feature in run.features.values()]
    return rows[[c for c in dict.fromkeys(columns) if rows[c].map(lambda v: isinstance(v, str)).any()]]


def build_index(run_dir: str | Path, split: str = "train", output: str | None = None, kind: str = "auto",
                nlist: int | None = None, nprobe: int | None = None, which: str = "best") -> Path:
    """Index the embeddings of one split; returns the index's `.faiss` file (named OUTPUT_SPLIT)."""
    from plait.inference import index as faiss_index

    run = Run.load(run_dir, which)
    output = embedding_output(run, output)
    encoded = run.encode([split])[split]
    predictions = run.predict(encoded)
    vectors = embeddings_of(predictions[output]).numpy().astype(np.float32)
    target, names = encoded.targets[output], run.tasks[output].label_names()
    labels = [names[v] if present else None for v, present in zip(target["value"].tolist(), target["present"].tolist())]
    metadata = pd.concat([pd.DataFrame({"row": encoded.rows, "label": labels}),
                          text_columns(run, run.data.table.iloc[encoded.rows]).reset_index(drop=True)], axis=1)
    index = faiss_index.build_index(vectors, kind, nlist, nprobe)
    name = f"{output}_{split}"
    faiss_index.save_index(Path(run.folder) / INDEX_FOLDER, name, index, metadata,
                           {"split": split, "output": output, "checkpoint": str(run.checkpoint)})
    return Path(run.folder) / INDEX_FOLDER / f"{name}.faiss"


def chosen_index(folder: Path, name: str | None) -> str:
    from plait.inference.index import saved_indexes

    saved = saved_indexes(folder / INDEX_FOLDER)
    if not saved:
        raise PlaitError(f"{folder}: no index yet; build one with `plait index {folder} --split train`")
    if name is None and len(saved) > 1:
        raise PlaitError(f"{folder}: several indexes ({', '.join(saved)}): choose one with --index")
    return name or saved[0]


def search(run_dir: str | Path, input_path: str, k: int = 10, index_name: str | None = None,
           which: str = "best") -> pd.DataFrame:
    """The `k` nearest indexed rows of each row of a table (or file of a folder): one line per query and neighbour,
    with `query` (the query's row, or its file), `rank`, `score` (cosine similarity) and the neighbour's row, label
    and files or texts."""
    from plait.inference import index as faiss_index

    run = Run.load(run_dir, which)
    name = chosen_index(run.folder, index_name)
    index, metadata, info = faiss_index.load_index(run.folder / INDEX_FOLDER, name)
    table, places = read_rows(run, input_path)
    encoded = encode_rows(run, table, places, skip_hint=STOP_HINT)
    predictions = run.predict(encoded)
    queries = embeddings_of(predictions[info["output"]]).numpy().astype(np.float32)
    scores, positions = faiss_index.search(index, queries, k)
    if Path(input_path).is_dir():  # a folder: name each query by its file
        query_ids = table[file_input(run).spec.column].iloc[encoded.rows].tolist()
    else:
        query_ids = encoded.rows
    return faiss_index.neighbours_table(scores, positions, metadata, query_ids)


@torch.no_grad()
def embed(run: Run, table: pd.DataFrame, places: RowPlaces | str, only: list[str] | None = None) -> pd.DataFrame:
    """`row`, then a vector column per input (its encoder's output; a missing value's learned 'missing' vector),
    `fused` (the fused representation; not with late fusion) and one per embedding output; `only` keeps some."""
    model, features = run.model, run.features
    embedding_outputs = [n for n, task in run.tasks.items() if task.spec.type == "embedding"]
    available = [*features, *([] if model.late else ["fused"]), *embedding_outputs]
    unknown = sorted(set(only or []) - set(available))
    if unknown:
        raise PlaitError(f"--only {', '.join(unknown)}: not available; choose among {', '.join(available)}")
    wanted = list(only) if only else available
    encoded = encode_rows(run, table, places, skip_hint=STOP_HINT)
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in wanted}
    for indices in torch.arange(len(encoded)).split(run.config.train.evaluation_batch_size):
        inputs = prepare_inputs(features, to_device(encoded.batch(indices)["inputs"], run.device), training=False)
        vectors, _ = model.encode(inputs)
        fused = model.fusion(vectors)
        outputs = model.heads_forward(inputs, fused, {}) if set(wanted) & set(embedding_outputs) else {}
        for name in wanted:
            value = vectors.get(name) if name in features else fused if name == "fused" else outputs[name]
            collected[name].append(value.float().cpu())
    columns: dict[str, list] = {"row": encoded.rows}
    for name, parts in collected.items():
        columns[name] = list(torch.cat(parts).numpy()) if parts else []
    return pd.DataFrame(columns)


def embed_file(run_dir: str | Path, input_path: str, output_path: str, only: list[str] | None = None,
               which: str = "best") -> pd.DataFrame:
    """`embed` the rows of a table or the files of a folder; written to `output_path` (parquet keeps each vector in
    one cell, CSV spreads it over NAME_0, NAME_1, ...)."""
    from plait.inference.output import write_table

    run = Run.load(run_dir, which)
    table, places = read_rows(run, input_path)
    result = embed(run, table, places, only)
    write_table(result, output_path)
    return result
