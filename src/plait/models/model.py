"""Assemble the model from the config: an encoder per input, the fusion, a head per output."""

from __future__ import annotations

import torch
from torch import nn

from plait.errors import PlaitError
from plait.models.init import initialise
from plait.models.late import LateHead
from plait.registry import ENCODERS, FUSIONS


class MultimodalModel(nn.Module):
    """encoders[input] → fusion → heads[output].

    A missing value (or an input left out on purpose via `drop`) does not reach fusion as zeros: the
    encoder's vector is replaced by a learned 'missing' vector of that input. A head that attends to the inputs
    (a caption decoder) also gets each input's token sequence, and is run only when its targets are given
    (teacher forcing); it writes outputs through `generate`.
    """

    def __init__(self, config, features: dict, tasks: dict):
        super().__init__()
        self.encoders = nn.ModuleDict()
        for spec in config.inputs:
            encoder = ENCODERS.get_or_fail(spec.encoder.name).build(spec.encoder, features[spec.name])
            initialise(encoder, spec.encoder.init)
            if spec.encoder.freeze:
                encoder.freeze()
            self.encoders[spec.name] = encoder
        self.missing = nn.ParameterDict({name: nn.Parameter(torch.zeros(enc.out_dim)) for name, enc in self.encoders.items()})
        self.fusion = FUSIONS.get_or_fail(config.fusion.name)(config.fusion, {name: enc.out_dim for name, enc in self.encoders.items()})
        initialise(self.fusion, config.fusion.init)
        widths = {name: enc.out_dim for name, enc in self.encoders.items()}
        self.late = getattr(self.fusion, "late", False)
        if self.late:  # a head per input for each output (models/late.py)
            self.heads = nn.ModuleDict({name: LateHead(task, self.fusion.out_dims, config.fusion.combine) for name, task in tasks.items()})
        else:
            self.heads = nn.ModuleDict({name: task.build_head(self.fusion.out_dim, widths) for name, task in tasks.items()})
        for name, head in self.heads.items():
            initialise(head, getattr(tasks[name].spec, "init", "default"))  # caption and embedding heads have none
        criteria = {name: task.build_criterion() for name, task in tasks.items()}
        self.criteria = nn.ModuleDict({name: criterion for name, criterion in criteria.items() if criterion is not None})
        self.attending = [name for name, head in self.heads.items() if getattr(head, "attends_to_inputs", False)]

    def encode(self, inputs: dict, drop: frozenset[str] = frozenset(), with_tokens: bool = False):
        """Each input's vector [N, D] and, `with_tokens`, its token sequence [N, L, D] (missing rows: one token,
        the 'missing' vector)."""
        vectors, tokens = {}, {}
        for name, encoder in self.encoders.items():
            present = inputs[name]["present"]
            missing = self.missing[name].expand(present.shape[0], -1)
            if name in drop or not present.any():
                vectors[name], tokens[name] = missing, missing[:, None]  # the encoder is not run at all
                continue
            if "embedding" in inputs[name]:  # a frozen backbone's output, computed once (models/frozen.py)
                vector, sequence = encoder.projected(inputs[name]["embedding"], inputs[name].get("tokens") if with_tokens else None)
            else:
                vector, sequence = encoder.encode(inputs[name], with_tokens)
            missing = missing.to(vector.dtype)
            vectors[name] = torch.where(present[:, None], vector, missing)
            if with_tokens:
                tokens[name] = torch.where(present[:, None, None], sequence, missing[:, None])
        return vectors, tokens

    def forward(self, inputs: dict, drop: frozenset[str] = frozenset(), targets: dict | None = None) -> dict[str, torch.Tensor]:
        vectors, tokens = self.encode(inputs, drop, with_tokens=bool(self.attending and targets))
        return self.heads_forward(inputs, self.fusion(vectors), tokens, drop, targets)

    def heads_forward(self, inputs: dict, fused, tokens: dict, drop: frozenset[str] = frozenset(),
                      targets: dict | None = None) -> dict[str, torch.Tensor]:
        """Every head's prediction from the fused representation (late fusion: the per-input vectors)."""
        outputs = {}
        for name, head in self.heads.items():
            if self.late:  # also each input's own prediction, as `OUTPUT@INPUT`
                # no `tensor & bool`: the ONNX tracer (inference/onnx.py) cannot record it
                present = {i: torch.zeros_like(inputs[i]["present"]) if i in drop else inputs[i]["present"]
                           for i in self.encoders}
                outputs[name], parts = head(fused, present)
                outputs.update({f"{name}@{i}": part for i, part in parts.items()})
            elif name not in self.attending:
                outputs[name] = head(fused)
            elif targets and name in targets:
                outputs[name] = head(fused, tokens, targets[name])
        if getattr(self.fusion, "weights", None) is not None:  # attention fusion: which inputs each row leaned on
            outputs["fusion.attention"] = self.fusion.weights
        return outputs

    @torch.no_grad()
    def generate(self, inputs: dict, output: str, drop: frozenset[str] = frozenset(), **options) -> list[list[int]]:
        """Token ids written by the head of `output` for each row (options: beam_size, length_penalty, max_length)."""
        vectors, tokens = self.encode(inputs, drop, with_tokens=True)
        return self.heads[output].generate(self.fusion(vectors), tokens, **options)


def require_trainable(model: MultimodalModel) -> None:
    """Refuse a model whose only trainable weights are the missing-value vectors: training would change nothing else."""
    if not any(p.requires_grad for name, p in model.named_parameters() if not name.startswith("missing.")):
        frozen = [name for name, encoder in model.encoders.items() if encoder.frozen]
        raise PlaitError(f"nothing in this model trains: the encoders of {', '.join(frozen) or 'no input'} are frozen with no "
                         "`projection`, and the fusion and heads have no weights; give a frozen encoder a projection "
                         "(`out_dim: 128`), unfreeze one, or add fusion `hidden` layers")


def parameter_table(model: MultimodalModel, settings: dict[str, list[str]] | None = None) -> list[list]:
    """[component, trainable, frozen] for each encoder, the fusion and each head, then the total; with `settings`
    (component → [learning rate, weight decay] as text, keyed as `train.optimizer.groups` names components:
    `encoders.INPUT`, `missing`, `fusion`, `heads.OUTPUT`, `criteria.OUTPUT`), those two columns too."""
    components = [(f"encoder {n}", f"encoders.{n}", m) for n, m in model.encoders.items()]
    components += [("missing-value vectors", "missing", model.missing), ("fusion", "fusion", model.fusion)]
    components += [(f"head {n}", f"heads.{n}", m) for n, m in model.heads.items()]
    components += [(f"loss {n}", f"criteria.{n}", m) for n, m in model.criteria.items() if any(True for _ in m.parameters())]
    rows = []
    for label, name, module in components:
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        rows.append([label, trainable, frozen, *(settings.get(name, ["-", "-"]) if settings is not None else [])])
    rows.append(["total", sum(r[1] for r in rows), sum(r[2] for r in rows), *(["", ""] if settings is not None else [])])
    return rows
