"""Assemble the model from the config: an encoder per input, the fusion, a head per output."""

from __future__ import annotations

import torch
from torch import nn

from plait.registry import ENCODERS, FUSIONS


class MultimodalModel(nn.Module):
    """encoders[input] → fusion → heads[output].

    A missing value (or an input left out on purpose via `drop`) does not reach fusion as zeros: the
    encoder's vector is replaced by a learned 'missing' vector of that input.
    """

    def __init__(self, config, features: dict, tasks: dict):
        super().__init__()
        self.encoders = nn.ModuleDict()
        for spec in config.inputs:
            encoder = ENCODERS[spec.encoder.name](spec.encoder, features[spec.name])
            if spec.encoder.freeze:
                encoder.freeze()
            self.encoders[spec.name] = encoder
        self.missing = nn.ParameterDict({name: nn.Parameter(torch.zeros(enc.out_dim)) for name, enc in self.encoders.items()})
        self.fusion = FUSIONS[config.fusion.name](config.fusion, {name: enc.out_dim for name, enc in self.encoders.items()})
        self.heads = nn.ModuleDict({name: task.build_head(self.fusion.out_dim) for name, task in tasks.items()})

    def encode(self, inputs: dict, drop: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
        vectors = {}
        for name, encoder in self.encoders.items():
            present = inputs[name]["present"]
            missing = self.missing[name].expand(present.shape[0], -1)
            if name in drop or not present.any():
                vectors[name] = missing  # the encoder is not run at all
            elif "embedding" in inputs[name]:  # a frozen encoder's output, computed once (models/frozen.py)
                vectors[name] = torch.where(present[:, None], inputs[name]["embedding"], missing)
            else:
                with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder.frozen):
                    vector = encoder(inputs[name])
                vectors[name] = torch.where(present[:, None], vector, missing.to(vector.dtype))
        return vectors

    def forward(self, inputs: dict, drop: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
        fused = self.fusion(self.encode(inputs, drop))
        return {name: head(fused) for name, head in self.heads.items()}


def parameter_table(model: MultimodalModel) -> list[list]:
    """[component, trainable, frozen] for each encoder, the fusion and each head, then the total."""
    components = [(f"encoder {n}", m) for n, m in model.encoders.items()]
    components += [("missing-value vectors", model.missing), ("fusion", model.fusion)]
    components += [(f"head {n}", m) for n, m in model.heads.items()]
    rows = []
    for label, module in components:
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        rows.append([label, trainable, frozen])
    rows.append(["total", sum(r[1] for r in rows), sum(r[2] for r in rows)])
    return rows
