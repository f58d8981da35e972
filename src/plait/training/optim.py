"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import math

import torch


def build_optimizer(parameters, config) -> torch.optim.Optimizer:
    trainable = [p for p in parameters if p.requires_grad]
    if config.name == "sgd":
        return torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    kind = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return kind(trainable, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay)


def set_hyperparameters(optimizer: torch.optim.Optimizer, config, rate: bool = True) -> None:
    """A restored optimizer (its moments kept) given the settings of `config`; with `rate`, its base rate too (else
    the scheduled rate stays)."""
    for group in optimizer.param_groups:
        group["weight_decay"] = config.weight_decay
        if rate:
            group.update(lr=config.lr, initial_lr=config.lr)
        if config.name == "sgd":
            group["momentum"] = config.momentum
        else:
            group.update(betas=tuple(config.betas), eps=config.eps)


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
