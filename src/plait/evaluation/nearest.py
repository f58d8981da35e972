"""The retrieval baseline a captioner must beat: for each image of a split, the caption of the nearest training
image, scored like the model's own captions. Nearest by raw pixels (a 16×16 thumbnail, as one would match pictures
by eye) or by an encoder's own vectors (trained, or untrained)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from plait.data.dataset import EncodedSplit, prepare_inputs, to_device
from plait.evaluation.evaluate import caption_groups

THUMBNAIL = 16  # pixels a side of the images compared by `pixel_vectors`

VectorOf = Callable[[dict], torch.Tensor]  # a batch's inputs → one vector per row


def pixel_vectors(name: str) -> VectorOf:
    """Each row's image input `name`, averaged down to THUMBNAIL × THUMBNAIL pixels."""
    return lambda inputs: F.adaptive_avg_pool2d(inputs[name]["value"].float(), THUMBNAIL).flatten(1)


def encoder_vectors(model, features: dict, name: str, device) -> VectorOf:
    """Each row's vector from `model`'s encoder of input `name`."""
    def vector_of(inputs):
        prepared = prepare_inputs(features, to_device(inputs, device), training=False)
        return model.encode(prepared)[0][name]
    return vector_of


def has_pixels(split: EncodedSplit, name: str) -> bool:
    """Whether the split holds input `name` as images [N, C, H, W] (not, say, a frozen encoder's cached vectors)."""
    sample = split.batch(torch.arange(min(1, len(split))))["inputs"][name]
    return "value" in sample and sample["value"].dim() == 4


@torch.no_grad()
def nearest_caption_metrics(tasks: dict, train: EncodedSplit, split: EncodedSplit, vector_of: VectorOf,
                            batch_size: int) -> dict[str, float]:
    """`OUTPUT.METRIC` for each caption output, writing for each image of `split` the caption of its nearest
    training image (cosine similarity of `vector_of`), scored against all of the image's references. Each image is
    embedded once (its first row), however many captions it has."""
    metrics = {}
    for output, task in tasks.items():
        if not task.generates:
            continue
        train_rows = list(caption_groups(train.row_info[output])[0].values())
        first, references = caption_groups(split.row_info[output])
        nearest = _nearest(_row_vectors(split, list(first.values()), vector_of, batch_size),
                           _row_vectors(train, train_rows, vector_of, batch_size), batch_size)
        captions = [train.row_info[output]["caption"][train_rows[index]] for index in nearest]
        scores = task.text_metrics(captions, [references[group] for group in first])
        metrics.update({f"{output}.{key}": value for key, value in scores.items()})
    return metrics


def _row_vectors(split: EncodedSplit, rows: list[int], vector_of: VectorOf, batch_size: int) -> torch.Tensor:
    """L2-normalised vectors of some rows of the split."""
    parts = [vector_of(split.batch(indices)["inputs"]).float().cpu() for indices in torch.tensor(rows).split(batch_size)]
    return F.normalize(torch.cat(parts), dim=1)


def _nearest(queries: torch.Tensor, gallery: torch.Tensor, chunk: int) -> list[int]:
    """Each query's most similar gallery vector, a chunk of queries at a time (a full similarity matrix of tens of
    thousands of images each way would take gigabytes)."""
    return [index for part in queries.split(max(chunk, 256)) for index in (part @ gallery.T).argmax(1).tolist()]
