"""`GET /v1/model`: what a client needs to build requests and read answers without the YAML: the fields a request
holds (and what each holds), the outputs with their labels, the config's hash and the index `?neighbours=K` searches. An answer row then holds, per
output, the columns `plait predict` writes (`NAME_pred`, `NAME_prob_LABEL`, ...)."""

from __future__ import annotations

from plait.config import config_hash
from plait.runs import Run
from plait.serving.fields import Fields


def describe(run: Run, fields: Fields, index: dict | None = None) -> dict:
    """`index`: the run's `plait index` (name, output, rows, split), which `?neighbours=K` searches."""
    outputs = []
    for name, task in run.tasks.items():
        output = {"name": name, "type": task.spec.type}
        labels = task.class_names()
        if labels:
            output["labels"] = [str(label) for label in labels]
        outputs.append(output)
    return {
        "name": run.config.name,
        "config_hash": config_hash(run.config),
        "fields": [field.describe() for field in fields.by_column.values()],
        "outputs": outputs,
        "fusion": run.config.fusion.name,
        "index": index,
    }
