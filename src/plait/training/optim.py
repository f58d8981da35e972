"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import fnmatch
import math
import re

import torch

from plait.errors import PlaitError


LAYER = re.compile(r"(?:^|\.)([A-Za-z_]+)\.(\d+)\.")  # the first numbered module in a parameter's name
LAYER_LISTS = ("layer", "layers", "h", "blocks")  # BERT/ViT/AST/VideoMAE, CLIP/nn.TransformerEncoder, GPT-2, timm


def component_of(name: str) -> str:
    """The model component a parameter belongs to: `encoders.INPUT`, `missing`, `fusion`, `heads.OUTPUT` or
    `criteria.OUTPUT` (the first two parts of its name under a ModuleDict, else the first)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("encoders", "heads", "criteria") else parts[0]


def layer_depths(names: list[str], component: str) -> dict[str, int]:
    """Each parameter's power of the layer decay: a parameter of layer i of L (`layer.i.`, `layers.i.`, `h.i.` or
    `blocks.i.` in its name, i counted from 0) gets L − i, those before the first layer (the embeddings) L + 1, those
    after the last (pooler, final norm, projection) 0."""
    layers = {}
    for name in names:
        match = LAYER.search(name)
        if match and match.group(1) in LAYER_LISTS:
            layers[name] = int(match.group(2))
    if not layers:
        raise PlaitError(f"train.optimizer.groups: layer_decay on {component}, which has no numbered transformer layers "
                         f"({', '.join(f'{word}.N.' for word in LAYER_LISTS)} in its parameter names)")
    count, seen_layer, depths = max(layers.values()) + 1, False, {}
    for name in names:
        seen_layer = seen_layer or name in layers
        depths[name] = count - layers[name] if name in layers else (0 if seen_layer else count + 1)
    return depths


def assign_groups(model, config) -> list[tuple[str, torch.nn.Parameter, tuple[int, int, bool]]]:
    """(name, parameter, key) for each trainable parameter of `model`, in order. key = (index of the first group of
    `config.groups` whose `params` glob matches its component, -1 for none; its power of that group's layer decay;
    whether it is exempt from weight decay). A group whose glob matches no component is an error."""
    named = list(model.named_parameters())
    components = list(dict.fromkeys(component_of(name) for name, _ in named))
    chosen = {}
    for index, group in enumerate(config.groups):
        matched = [c for c in components if fnmatch.fnmatchcase(c, group.params)]
        if not matched:
            raise PlaitError(f"train.optimizer.groups[{index}].params: {group.params!r} matches no component; the model's "
                             f"components are {', '.join(components)}")
        for component in matched:
            chosen.setdefault(component, index)  # the first group that matches wins
    powers = {}
    for component, index in chosen.items():
        if config.groups[index].layer_decay is not None:
            powers.update(layer_depths([name for name, _ in named if component_of(name) == component], component))
    assigned = []
    for name, parameter in named:
        if parameter.requires_grad:
            exempt = not config.decay_bias_and_norm and parameter.ndim <= 1
            assigned.append((name, parameter, (chosen.get(component_of(name), -1), powers.get(name, 0), exempt)))
    return assigned


def group_settings(config, key) -> tuple[float, float]:
    """(learning rate, weight decay) of the parameters with `key` (see `assign_groups`) under `config`."""
    index, power, exempt = key
    group = config.groups[index] if 0 <= index < len(config.groups) else None
    lr = group.lr if group is not None and group.lr is not None else config.lr
    decay = group.weight_decay if group is not None and group.weight_decay is not None else config.weight_decay
    if power:
        lr *= group.layer_decay ** power
    return lr, 0.0 if exempt else decay


def build_optimizer(model, config) -> torch.optim.Optimizer:
    """The optimizer over `model`'s trainable parameters: one param group per (config group, layer-decay power,
    weight-decay exemption), in the order they first appear; each keeps its key, so a resume can set its settings
    again. With no groups and every parameter decayed, one group, as `torch.optim` makes of `model.parameters()`."""
    groups: dict[tuple, list] = {}
    for _, parameter, key in assign_groups(model, config):
        groups.setdefault(key, []).append(parameter)
    param_groups = []
    for key, parameters in groups.items():
        lr, weight_decay = group_settings(config, key)
        param_groups.append({"params": parameters, "lr": lr, "weight_decay": weight_decay, "key": list(key)})
    if config.name == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum)
    kind = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return kind(param_groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)


def component_settings(model, config) -> dict[str, list[str]]:
    """Component → [its learning rate, its weight decay] as text, for the parameter table: one value, or the lowest
    and highest where layers (or exempt biases) differ; components with nothing to train are left out."""
    values: dict[str, list[tuple[float, float]]] = {}
    for name, _, key in assign_groups(model, config):
        values.setdefault(component_of(name), []).append(group_settings(config, key))

    def shown(numbers: list[float]) -> str:
        low, high = min(numbers), max(numbers)
        return f"{low:.3g}" if low == high else f"{low:.3g} – {high:.3g}"

    return {component: [shown([lr for lr, _ in pairs]), shown([decay for _, decay in pairs])] for component, pairs in values.items()}


def group_key(group: dict) -> tuple[int, int, bool]:
    """A param group's key; a checkpoint from before groups has one group, the default one."""
    return tuple(group.get("key", (-1, 0, False)))


def set_hyperparameters(optimizer: torch.optim.Optimizer, config, rate: bool = True) -> None:
    """A restored optimizer (its moments kept) given the settings of `config`; with `rate`, each group's base rate
    too (else the scheduled rate stays)."""
    for group in optimizer.param_groups:
        lr, group["weight_decay"] = group_settings(config, group_key(group))
        if rate:
            group.update(lr=lr, initial_lr=lr)
        if config.name == "sgd":
            group["momentum"] = config.momentum
        else:
            group.update(betas=tuple(config.betas), eps=config.eps)


def rates(optimizer: dict) -> tuple:
    """What sets the base rates in a dumped optimizer config: a resume that changes them restarts the schedule."""
    return optimizer["lr"], [(group["lr"], group["layer_decay"]) for group in optimizer.get("groups", [])]


def grouping(optimizer: dict) -> tuple:
    """What divides the parameters into param groups in a dumped optimizer config: a checkpoint's optimizer state
    is kept per param group, so a resume cannot change it."""
    return ([(group["params"], group["layer_decay"] is not None) for group in optimizer.get("groups", [])],
            optimizer.get("decay_bias_and_norm", True))


def warmup_then_decay(warmup: int, total: int, floor: float, shape: str):
    """Multiplier of the base rate at optimizer step `step`: linear warm-up, then linear or cosine decay to `floor`."""

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        decay = 1.0 - progress if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor + (1.0 - floor) * decay

    return multiplier


class Schedule:
    """A scheduler and when it steps: `step` (every optimizer step), `epoch`, or `validation` (plateau)."""

    def __init__(self, optimizer, config, total_steps: int, monitor_mode: str):
        self.interval = {"step": "epoch", "plateau": "validation", "none": "never"}.get(config.name, "step")
        if config.name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
        elif config.name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=monitor_mode, factor=config.factor, patience=config.patience)
        elif config.name == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(total_steps, 2), pct_start=config.pct_start
            )
        elif config.name in ("linear_warmup", "cosine"):
            shape = "linear" if config.name == "linear_warmup" else "cosine"
            rule = warmup_then_decay(config.warmup_steps, total_steps, config.min_lr_ratio, shape)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
        else:
            self.scheduler = None

    def after_step(self) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.interval == "epoch":
            self.scheduler.step()

    def after_validation(self, monitored: float) -> None:
        if self.interval == "validation":
            self.scheduler.step(monitored)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler else {}

    def load_state_dict(self, state: dict) -> None:
        """The saved position in the schedule. Its length stays this schedule's: a resume with more epochs follows
        the longer schedule from the saved step (OneCycleLR saves its length, which is therefore not restored)."""
        if self.scheduler:
            kept = ("total_steps", "_schedule_phases")
            self.scheduler.load_state_dict({key: value for key, value in state.items() if key not in kept})
