"""The training loop, readable top to bottom: epochs of optimizer steps, validation, best/last checkpoints.

The trainer knows nothing about modalities: it moves batches, calls the model, sums the tasks' losses.
Everything that changes while training lives in `Progress`, the optimizer, the scheduler and the RNG
states, and all of it goes into every checkpoint, so `resume` continues exactly where a run stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from plait.console import new_progress, say
from plait.data.dataset import EncodedSplit, load_batch, prepare_inputs
from plait.errors import PlaitError
from plait.evaluation.evaluate import evaluate_split
import plait.distributed as distributed
from plait.training.checkpoint import CheckpointWriter, load_state, load_weights, rng_state, set_rng_state
from plait.training.modality_dropout import hide_inputs
from plait.training.optim import Schedule, build_optimizer, group_key, rates, set_hyperparameters
from plait.training.precision import autocast, grad_scaler, to_channels_last
from plait.training.sampler import make_sampler


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    batch_in_epoch: int = 0  # micro-batches of the current epoch already trained on
    epoch_loss_sum: float = 0.0  # loss × rows over the current epoch's steps so far
    epoch_rows: int = 0
    best: float | None = None  # best monitored value so far
    validations_without_improvement: int = 0
    stopped_early: bool = False


def resolve_monitor(name: str, mode: str, tasks: dict, has_validation: bool, key: str = "train.monitor") -> tuple[str, str]:
    """The monitored name (`auto`: `validation.loss`; `train.loss` without a validation split) and its mode (`auto`:
    the way the output's task type says its metric is better). `tasks`: output → its task type (class or instance)."""
    name = name if name != "auto" else "validation.loss"
    if not has_validation:
        name = "train.loss"
    parts = name.split(".")
    if parts[0] not in ("validation", "train") or (len(parts) == 3 and parts[1] not in tasks) or len(parts) not in (2, 3):
        raise PlaitError(f"{key}: {name!r} is not validation.loss or validation.OUTPUT.METRIC (outputs: {', '.join(tasks)})")
    if mode == "auto":
        mode = monitor_mode(name, tasks)
    return name, mode


def monitor_mode(name: str, tasks: dict) -> str:
    """"min" for a loss (`validation.loss`), else as OUTPUT's task type says for `validation.OUTPUT.METRIC`."""
    _, *output, metric = name.split(".")
    return tasks[output[0]].metric_mode(metric) if output else "min"


class Trainer:
    def __init__(self, model, features, tasks, train_split: EncodedSplit, validation_split: EncodedSplit | None,
                 config, run_dir: Path, preprocessing: dict, device, tracker, on_validation=None):
        if len(train_split) == 0:
            raise PlaitError("the training split is empty")
        self.model, self.features, self.tasks, self.config = model, features, tasks, config
        self.train_split, self.validation_split = train_split, validation_split
        self.run_dir, self.preprocessing, self.device, self.tracker = Path(run_dir), preprocessing, device, tracker
        self.on_validation = on_validation  # (epoch, monitored value) after each validation: a search's reporter
        self.world = distributed.current()
        # the module that trains: under several processes DDP averages the ranks' gradients; `model` is what is saved
        if config.channels_last and device.type == "cuda":
            to_channels_last(model)
        self.trained = model
        if self.world.is_distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
        self.has_validation = validation_split is not None and len(validation_split) > 0
        self.monitor, self.mode = resolve_monitor(config.monitor, config.monitor_mode, tasks, self.has_validation)
        scheduler_monitor = config.scheduler.monitor if config.scheduler.monitor != "auto" else self.monitor
        self.schedule_monitor, self.schedule_mode = resolve_monitor(scheduler_monitor, "auto" if config.scheduler.monitor != "auto" else self.mode,
                                                               tasks, self.has_validation, "train.scheduler.monitor")
        self.order = make_sampler(config.sampler, train_split, tasks, config.seed, config.batch_size)
        if config.compile:  # compiled on the first step; the weights stay those of `model`, which is what is saved
            self.trained = torch.compile(self.trained)
        self.optimizer = build_optimizer(model, config.optimizer)
        # the rate logged as `lr`: of the parameters at the optimizer's own `lr` (where groups set others)
        keys = [group_key(group) for group in self.optimizer.param_groups]
        self.logged_group = next((i for i, key in enumerate(keys) if key[:2] == (-1, 0)), 0)
        self.scaler = grad_scaler(config.precision, device)
        micro_batches = math.ceil(len(train_split) / config.batch_size)
        self.steps_per_epoch = math.ceil(micro_batches / config.grad_accum_steps)
        self.schedule = Schedule(self.optimizer, config.scheduler, self.steps_per_epoch * config.epochs, self.schedule_mode)
        self.progress = Progress()
        self.last_monitored = ""  # shown in the progress bar
        self.pending: list[tuple[torch.Tensor, int]] = []  # (loss × rows, rows) of this rank's steps not yet folded
        self.writer = CheckpointWriter()

    # ── the loop ──────────────────────────────────────────────────────────────────────────────────
    def fit(self) -> Progress:
        with new_progress() as bar:
            self.bar = bar
            self.bar_task = bar.add_task("training", total=self.steps_per_epoch * self.config.epochs, completed=self.progress.step, info="")
            try:
                while self.progress.epoch < self.config.epochs and not self.progress.stopped_early:
                    epoch_loss = self.train_epoch()
                    self.schedule.after_epoch()  # before validation, so the best checkpoint holds the epoch's schedule too
                    if self.is_validation_epoch():
                        self.validate(epoch_loss)
                    self.save("last")
            finally:
                self.writer.wait()
        if self.progress.stopped_early:
            say(f"early stop after epoch {self.progress.epoch}: {self.monitor} did not improve for {self.config.early_stopping_patience} validations")
        return self.progress

    def train_epoch(self) -> float:
        progress, config = self.progress, self.config
        micro_batches = self.order(progress.epoch).split(config.batch_size)
        self.model.train()
        window_start = time.perf_counter()
        for start in range(progress.batch_in_epoch, len(micro_batches), config.grad_accum_steps):
            group = micro_batches[start:start + config.grad_accum_steps]
            rows = sum(len(indices) for indices in group)
            self.pending.append(self.train_step(group, rows))
            progress.step += 1
            progress.batch_in_epoch = start + len(group)
            if progress.step % config.log_every_steps == 0:
                self.log_training(time.perf_counter() - window_start)
                window_start = time.perf_counter()
            self.bar.advance(self.bar_task)
            if config.checkpoint_every_steps and progress.step % config.checkpoint_every_steps == 0:
                self.save("last")
        self.fold_pending()
        mean_loss = progress.epoch_loss_sum / max(progress.epoch_rows, 1)
        if progress.epoch_rows:
            self.tracker.log(progress.step, {"train.epoch_loss": mean_loss}, epoch=progress.epoch + 1)
        progress.epoch += 1
        progress.batch_in_epoch, progress.epoch_loss_sum, progress.epoch_rows = 0, 0.0, 0
        return mean_loss

    def train_step(self, group: list[torch.Tensor], rows: int) -> tuple[torch.Tensor, int]:
        """One optimizer step over one or more global micro-batches (gradient accumulation) of `rows` rows in all,
        of which this rank takes its share. Returns this rank's (loss × rows, rows), the loss as a tensor (reading
        it would make every step wait for the device)."""
        loss_sum, local_rows = None, 0
        for indices in group:
            indices = distributed.shard(indices, self.world)
            batch = load_batch(self.train_split, indices, self.tasks, self.device)
            inputs = hide_inputs(batch["inputs"], self.config.modality_dropout)
            with autocast(self.config.precision, self.device):
                outputs = self.trained(prepare_inputs(self.features, inputs, training=True), targets=batch["targets"])
                loss = self.total_loss(outputs, batch["targets"]).float()
            # weighted by the share of the step's rows, times the ranks whose gradients DDP averages: the sum over
            # ranks and micro-batches is the mean loss of the whole global step
            self.scaler.scale(loss * (len(indices) * self.world.size / rows)).backward()
            part = loss.detach() * len(indices)
            loss_sum, local_rows = (part if loss_sum is None else loss_sum + part), local_rows + len(indices)
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.after_step()
        return loss_sum, local_rows

    def total_loss(self, outputs: dict, targets: dict) -> torch.Tensor:
        total = None
        input_loss = getattr(self.model.fusion, "input_loss", 0.0)  # late fusion: each input's own predictions learn too
        for name, task in self.tasks.items():
            loss = task.loss(outputs[name], targets[name])
            parts = [part for key, part in outputs.items() if key.startswith(f"{name}@")] if input_loss else []
            if parts:
                loss = loss + input_loss * torch.stack([task.loss(part, targets[name]) for part in parts]).mean()
            if task.spec.loss_weight != 1.0:
                loss = task.spec.loss_weight * loss
            total = loss if total is None else total + loss
        return total

    def fold_pending(self) -> tuple[float, int]:
        """Move the per-step losses (kept as tensors so steps never wait on a sync) into the epoch totals, summed over
        the ranks; returns the mean step loss and the row count of the steps folded. Every rank calls it at the same
        points (it is a collective under several processes)."""
        if not self.pending:
            return 0.0, 0
        sums = torch.stack([loss_sum for loss_sum, _ in self.pending]).double().cpu()
        rows = torch.tensor([n for _, n in self.pending], dtype=torch.float64)
        self.pending = []
        sums, rows = distributed.total(torch.stack([sums, rows]), self.world)
        self.progress.epoch_loss_sum += float(sums.sum())
        self.progress.epoch_rows += int(rows.sum())
        return float((sums / rows.clamp(min=1)).mean()), int(rows.sum())

    # ── validation, best checkpoint, early stopping ───────────────────────────────────────────────
    def is_validation_epoch(self) -> bool:
        epoch = self.progress.epoch
        return epoch % self.config.validate_every_epochs == 0 or epoch == self.config.epochs

    def validate(self, epoch_loss: float) -> None:
        progress = self.progress
        values = {"train.loss": epoch_loss}
        if self.has_validation:
            metrics, _ = evaluate_split(self.model, self.features, self.tasks, self.validation_split,
                                        self.config.evaluation_batch_size, self.device, world=self.world)
            values.update({f"validation.{key}": value for key, value in metrics.items()})
            self.tracker.log(progress.step, {k: v for k, v in values.items() if k != "train.loss"}, epoch=progress.epoch)
        for key, name in (("train.monitor", self.monitor), ("train.scheduler.monitor", self.schedule_monitor)):
            if name not in values:
                raise PlaitError(f"{key}: {name!r} is not among the validation metrics: {', '.join(sorted(values))}")
        monitored = values[self.monitor]
        self.last_monitored = f"  {self.monitor} {monitored:.4f}"
        self.schedule.after_validation(values[self.schedule_monitor])
        improved = progress.best is None or (monitored < progress.best if self.mode == "min" else monitored > progress.best)
        if improved:
            progress.best, progress.validations_without_improvement = monitored, 0
            self.save("best")
        else:
            progress.validations_without_improvement += 1
            patience = self.config.early_stopping_patience
            progress.stopped_early = bool(patience and progress.validations_without_improvement >= patience)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items() if k.count(".") <= 1 or k == self.monitor)
        say(f"epoch {progress.epoch}/{self.config.epochs}  {shown}{'  (best)' if improved else ''}")
        if self.on_validation is not None:
            self.on_validation(progress.epoch, monitored)

    def log_training(self, seconds: float) -> None:
        loss, rows = self.fold_pending()
        samples_per_second = rows / max(seconds, 1e-9)
        lr = self.optimizer.param_groups[self.logged_group]["lr"]
        self.tracker.log(self.progress.step, {"train.loss": loss, "lr": lr, "samples_per_s": samples_per_second}, epoch=self.progress.epoch)
        self.bar.update(self.bar_task, info=f"loss {loss:.4f}  lr {lr:.2e}  {samples_per_second:,.0f} samples/s{self.last_monitored}")

    # ── checkpoints ───────────────────────────────────────────────────────────────────────────────
    def save(self, which: str) -> None:
        self.fold_pending()
        rng_by_rank = distributed.gather(rng_state(), self.world)  # each rank draws its own dropout masks
        if not self.world.is_main:
            return
        state = {
            "progress": asdict(self.progress),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_by_rank[0],
            "train": self.config.model_dump(mode="json"),  # what a resume with --set train.* compares against
            **({"rng_by_rank": rng_by_rank} if self.world.is_distributed else {}),
        }
        self.writer.save(self.run_dir / "checkpoints" / which, self.model, state, self.preprocessing)

    def restore(self, folder: Path, previous: dict | None = None) -> None:
        """Continue from a checkpoint: weights, optimizer, scheduler, counters, then the RNG states last.
        `previous`: the train settings the checkpoint was trained with, when a resume changes some (`--set train.*`):
        new optimizer settings apply from here (its moments kept), a changed schedule or rate starts afresh at
        `optimizer.lr` over the remaining steps, and a run that had stopped early trains on if its epochs or patience
        changed."""
        load_weights(folder, self.model)
        state = load_state(folder)
        saved = [(group_key(group), len(group["params"])) for group in state["optimizer"]["param_groups"]]
        if saved != [(group_key(group), len(group["params"])) for group in self.optimizer.param_groups]:
            raise PlaitError(f"{folder}: the checkpoint's optimizer holds other parameter groups than "
                             "train.optimizer.groups makes of this model; start a new run (--init-from) instead")
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress(**state["progress"])
        now = self.config.model_dump(mode="json")
        previous = previous or now
        restart = previous["scheduler"] != now["scheduler"] or rates(previous["optimizer"]) != rates(now["optimizer"])
        if restart or previous["optimizer"] != now["optimizer"]:
            set_hyperparameters(self.optimizer, self.config.optimizer, rate=restart)
        if restart:
            remaining = self.steps_per_epoch * self.config.epochs - self.progress.step
            self.schedule = Schedule(self.optimizer, self.config.scheduler, remaining, self.schedule_mode)
        else:
            self.schedule.load_state_dict(state["scheduler"])
        stops_elsewhere = any(previous[key] != now[key] for key in ("epochs", "early_stopping_patience"))
        if self.progress.stopped_early and stops_elsewhere:  # patience counts again from here
            self.progress.stopped_early, self.progress.validations_without_improvement = False, 0
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        by_rank = state.get("rng_by_rank")
        set_rng_state(by_rank[self.world.rank] if by_rank and len(by_rank) == self.world.size else state["rng"])
