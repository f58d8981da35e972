"""The gallery of sample predictions: rows of the shown split with their inputs (thumbnails, poster frames,
spectrograms, text) and, per output, what the model predicted next to the truth: a class with its probability, a
number with its error, a written caption next to the references, an embedding's nearest neighbours."""

from __future__ import annotations

import numpy as np
import torch

from plait.data.features.numeric import finite_numbers
from plait.evaluation.evaluate import embeddings_of
from plait.html import escape, missing
from plait.report.page import number, table
from plait.report.previews import preview, preview_row

VISUAL = ("image", "video")  # what a neighbour is shown by, in this order of preference


def samples(report) -> str:
    count = report.run.config.report.samples
    if count == 0 or len(report.split) == 0:
        return ""
    run, split = report.run, report.split
    positions = sample_positions(report, count)
    features, tasks = run.features, run.tasks
    headers = ["row", *features, *tasks]
    rows = []
    for position in positions:
        table_row = report.table.iloc[split.rows[position]]
        inputs = preview_row(features, table_row)
        predicted = [output_cell(report, name, task, position, table_row) for name, task in tasks.items()]
        rows.append([str(split.rows[position]), *(inputs[name] for name in features), *predicted])
    note = (f"{len(positions)} rows of the {escape(split.name)} split, spread evenly over it (row: its number in the "
            "table). A right prediction is green, a wrong one red.")
    return f'<p class="note">{note}</p>' + table(headers, rows, "gallery")


def sample_positions(report, count: int) -> list[int]:
    """Evenly spread positions in the split; for a captioning run, one row per image (the row its caption was
    written for), so no image appears twice."""
    candidates = list(range(len(report.split)))
    for prediction in report.predictions.values():
        generated = prediction.get("generated") if isinstance(prediction, dict) else None
        if generated is not None:
            candidates = list(generated.rows)
            break
    if len(candidates) <= count:
        return candidates
    return [candidates[i] for i in np.linspace(0, len(candidates) - 1, count).round().astype(int)]


def output_cell(report, name: str, task, position: int, table_row) -> str:
    prediction, target = report.predictions.get(name), report.split.targets[name]
    if isinstance(prediction, dict) and prediction.get("generated") is not None:
        return caption_cell(prediction["generated"], position)
    if task.spec.type == "embedding":
        return neighbours_cell(report, name, task, position)
    if prediction is None:
        return missing("not predicted")
    truth = table_row.get(task.spec.column)
    names = task.class_names()
    if names and isinstance(prediction, torch.Tensor) and prediction.dim() == 2:
        return class_cell(prediction[position], names, target, position)
    decoded = task.decode(prediction[position:position + 1])
    guess = decoded.get(f"{name}_pred", [None])[0]
    if isinstance(guess, float):
        true_value = next(iter(finite_numbers([truth])), None)
        shown = f"{number(guess)}<br><span class=\"caption\">true {escape(truth)}"
        return shown + (f", error {number(abs(guess - true_value))}</span>" if true_value is not None else "</span>")
    return f"{escape(guess)}<br><span class=\"caption\">true {escape(truth)}</span>"


def class_cell(logits: torch.Tensor, names: list[str], target: dict, position: int) -> str:
    probabilities = logits.float().softmax(-1)
    guess = int(probabilities.argmax())
    shown = f"{escape(names[guess])} <span class=\"caption\">p={float(probabilities[guess]):.2f}</span>"
    if not bool(target["present"][position]):
        return shown + "<br>" + missing("no target")
    truth = int(target["value"][position])
    verdict = "right" if truth == guess else "wrong"
    return f'<span class="{verdict}">{shown}</span><br><span class="caption">true {escape(names[truth])}</span>'


def caption_cell(generated, position: int) -> str:
    index = generated.rows.index(position)
    references = "".join(f"<li>{escape(text)}</li>" for text in generated.references[index][:5])
    return (f'<div class="text"><b>{escape(generated.texts[index])}</b></div>'
            f'<span class="caption">references:</span><ul class="caption">{references}</ul>')


def neighbours_cell(report, name: str, task, position: int) -> str:
    """The row's nearest rows by cosine similarity: among the gallery split's when the output searches one (its
    training rows), else among the other rows of the shown split. Same class: green."""
    k = report.run.config.report.neighbours
    query = embeddings_of(report.predictions[name])[position]
    gallery_name = getattr(task.spec, "gallery", None)
    if gallery_name in report.galleries:
        gallery, gallery_predictions = report.galleries[gallery_name]
        vectors, exclude = embeddings_of(gallery_predictions[name]), None
    else:
        gallery, vectors, exclude = report.split, embeddings_of(report.predictions[name]), position
    usable = gallery.targets[name]["present"].clone()
    if exclude is not None:
        usable[exclude] = False
    scores = torch.where(usable, vectors.float() @ query.float(), torch.tensor(float("-inf")))
    best = scores.topk(min(k, int(usable.sum()))).indices.tolist()
    labels, target = task.label_names(), report.split.targets[name]
    own = int(target["value"][position]) if bool(target["present"][position]) else None
    shown = []
    for index in best:
        label = int(gallery.targets[name]["value"][index])
        verdict = "right" if label == own else "wrong"
        picture = _visual(report, gallery.rows[index])
        shown.append(f'<div class="neighbour">{picture}<span class="{verdict}">{escape(labels[label])}</span>'
                     f'<br>{float(scores[index]):.3f}</div>')
    heading = f"class {escape(labels[own])}" if own is not None else missing("no class")
    return (f'<span class="caption">{heading}; nearest in {escape(gallery.name)}:</span>'
            f'<div class="neighbours">{"".join(shown)}</div>')


def _visual(report, table_row_number: int) -> str:
    """A small picture of a table row: its first image or video input, else its first input of any kind."""
    features = report.run.features
    chosen = next((f for f in features.values() if f.spec.type in VISUAL), next(iter(features.values())))
    return preview(chosen, report.table.iloc[table_row_number].get(chosen.spec.column), size=72)
