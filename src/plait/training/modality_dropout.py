"""`train.modality_dropout`: hide whole inputs of random rows while training, so the model learns to predict when
a modality is missing. A hidden cell is marked absent, so it takes the same path as an empty cell (the input's
learned 'missing' vector); a row never loses every input it has."""

from __future__ import annotations

import torch


def hide_inputs(inputs: dict[str, dict], probability: float) -> dict[str, dict]:
    """The batch's inputs with each present cell hidden with `probability`. Drawn from the CPU generator (whose
    state every checkpoint holds), so a resumed run hides the same cells and CPU and GPU runs agree."""
    names = list(inputs)
    if probability <= 0 or len(names) < 2:
        return inputs
    present = torch.stack([inputs[name]["present"] for name in names], dim=1)  # [rows, inputs]
    hidden = (torch.rand(present.shape) < probability).to(present.device)
    kept = present & ~hidden
    kept = torch.where(kept.any(dim=1, keepdim=True), kept, present)  # all hidden: the row keeps what it had
    return {name: {**inputs[name], "present": kept[:, index]} for index, name in enumerate(names)}
