"""How much slower is plait's `Trainer.fit` than a hand-written PyTorch loop doing the same work?

In one process, the same model (same initial weights), the same data and the same batches in the same
order are trained for the same number of optimizer steps twice:

  plait         `Trainer.fit()` as `plait train` runs it: a `Tracker` writing metrics.jsonl and TensorBoard
                events into a temporary run folder (every `log_every_steps`, default 50), the rich progress
                bar (live only when stderr is a terminal, as for a user), `checkpoints/last` saved at every
                epoch end, `checkpoint_every_steps: null`, validation only after the last epoch.
  hand-written  ~20 lines: for each epoch, `epoch_order(rows, seed, epoch).split(batch_size)`;
                `split.batch(indices)`, `to_device`, `prepare_inputs`, forward, sum of the tasks' losses,
                `backward()`, `optimizer.step()`, `zero_grad(set_to_none=True)`. AdamW with the settings
                plait's optimizer gets from the config.

What each time includes:
  plait ms/step  = (wall time of `fit()` − time inside `Trainer.validate`) / steps. It INCLUDES the loss
                   bookkeeping, tracker logging, progress bar and the epoch-end `last` checkpoints (their
                   share is also shown on its own); it EXCLUDES the end-of-fit validation, its `best`
                   checkpoint, and building the Trainer/Tracker (both done before the clock starts).
  hand ms/step   = wall time of the hand-written loop / steps (it saves, logs and validates nothing).
  Both exclude reading and encoding the table (done once, shared). Warm-up runs of both (one epoch each)
  come first and are not timed. The two are interleaved for `--rounds` rounds (order alternating); each round
  is a pair run back to back, so its ratio is little affected by the machine's speed drifting between rounds.
  The headline is the median of the per-round ratios; the ratio of the median times and of the best rounds
  are printed as checks (on a busy machine other processes only ever add time, so ratios that differ a lot
  mean noise).
  The median CPU time of the process (all threads, so the TensorBoard writer thread counts) is printed too,
  as a second check that other processes disturb less. The final weights of both are compared, to show that the two
  loops did exactly the same arithmetic (same RNG seed before each run, so dropout masks match too).

The data is generated (numeric columns, one category input, one category output) into a temporary folder,
so the script needs nothing but plait. `--model small` shrinks the network so a step is mostly Python
overhead: the worst case for the ratio. Timings are printed, never asserted: the script always exits 0.

    .venv/bin/python benchmarks/trainer_overhead.py                 # default model, 1000 steps in 2 epochs, 5 rounds
    .venv/bin/python benchmarks/trainer_overhead.py --model small
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from plait import console as plait_console
from plait.config import validate
from plait.data.dataset import prepare_inputs, to_device
from plait.models.model import MultimodalModel
from plait.runs.setup import configure_torch, encode_split, make_preprocessor, read_data
from plait.training.tracking import Tracker
from plait.training.sampler import epoch_order
from plait.training.trainer import Trainer

MODELS = {
    # numeric encoder width, category embedding size, fusion MLP widths
    "default": {"numeric_hidden": 32, "embedding_dim": 16, "fusion": [256, 256]},
    "small": {"numeric_hidden": 4, "embedding_dim": 4, "fusion": [16]},
}
NUMERIC_COLUMNS, CATEGORIES, CLASSES, VALIDATION_ROWS = 6, 30, 5, 512


def write_table(folder: Path, train_rows: int, seed: int) -> Path:
    """x0..x5 numbers, a 30-value category `group`, a 5-class `label` that depends on both, a `split` column."""
    rng = np.random.default_rng(seed)
    rows = train_rows + VALIDATION_ROWS
    numbers = rng.normal(size=(rows, NUMERIC_COLUMNS))
    group = rng.integers(CATEGORIES, size=rows)
    logits = numbers @ rng.normal(size=(NUMERIC_COLUMNS, CLASSES)) + rng.normal(size=(CATEGORIES, CLASSES))[group]
    label = (logits + rng.gumbel(size=logits.shape)).argmax(1)
    table = pd.DataFrame({f"x{i}": numbers[:, i].round(5) for i in range(NUMERIC_COLUMNS)})
    table["group"] = [f"g{g}" for g in group]
    table["label"] = [f"class{c}" for c in label]
    table["split"] = ["train"] * train_rows + ["validation"] * VALIDATION_ROWS
    path = folder / "table.csv"
    table.to_csv(path, index=False)
    return path


def make_config(table: Path, model: str, epochs: int, batch_size: int, threads: int, device: str):
    sizes = MODELS[model]
    inputs = [{"name": f"x{i}", "type": "numeric", "column": f"x{i}", "encoder": {"name": "mlp", "hidden": sizes["numeric_hidden"]}}
              for i in range(NUMERIC_COLUMNS)]
    inputs.append({"name": "group", "type": "category", "column": "group", "encoder": {"name": "embedding", "dim": sizes["embedding_dim"]}})
    return validate({
        "name": "trainer-overhead",
        "data": {"table": str(table), "split": {"column": "split"}},
        "inputs": inputs,
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "fusion": {"name": "concat", "hidden": sizes["fusion"], "dropout": 0.1},
        "train": {"epochs": epochs, "batch_size": batch_size, "seed": 0, "threads": threads, "device": device,
                  "validate_every_epochs": epochs, "checkpoint_every_steps": None},
    }, "trainer_overhead")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def hand_written(model, features, tasks, split, train_config, device) -> dict:
    """The loop a user would write by hand; returns {loop, loop_cpu}: its wall and CPU time in seconds."""
    opt = train_config.optimizer
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opt.lr, betas=tuple(opt.betas),
                                  eps=opt.eps, weight_decay=opt.weight_decay)
    model.train()
    start, start_cpu = time.perf_counter(), time.process_time()
    for epoch in range(train_config.epochs):
        for indices in epoch_order(len(split), train_config.seed, epoch).split(train_config.batch_size):
            batch = to_device(split.batch(indices), device)
            outputs = model(prepare_inputs(features, batch["inputs"], training=True))
            loss = sum(task.loss(outputs[name], batch["targets"][name]) for name, task in tasks.items())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return {"loop": time.perf_counter() - start, "loop_cpu": time.process_time() - start_cpu}


def with_timer(method, seconds: dict, key: str, quiet: bool = False):
    """Wrap a bound method so the wall (CPU) time spent inside it adds up in `seconds[key]` (`seconds[key_cpu]`)."""
    def timed(*args, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        was_quiet = plait_console.console.quiet
        plait_console.console.quiet = quiet or was_quiet  # the "epoch 3/3 ..." line would clutter the table
        try:
            return method(*args, **kwargs)
        finally:
            plait_console.console.quiet = was_quiet
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
            seconds[f"{key}_cpu"] = seconds.get(f"{key}_cpu", 0.0) + time.process_time() - start_cpu
    return timed


def plait_fit(model, preprocessor, splits, train_config, device, run_dir: Path) -> dict:
    """`Trainer.fit()` as `plait train` wires it; returns {fit, validate, save_last} (and *_cpu) in seconds."""
    run_dir.mkdir(parents=True)
    tracker = Tracker(run_dir)
    trainer = Trainer(model, preprocessor.features, preprocessor.tasks, splits["train"], splits["validation"],
                      train_config, run_dir, preprocessor.state_dict(), device, tracker)
    seconds: dict[str, float] = {}
    trainer.validate = with_timer(trainer.validate, seconds, "validate", quiet=True)
    save = trainer.save
    trainer.save = lambda which: with_timer(save, seconds, f"save_{which}")(which)
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        trainer.fit()
    finally:
        seconds["fit"], seconds["fit_cpu"] = time.perf_counter() - start, time.process_time() - start_cpu
        tracker.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per timed run (rounded up to whole epochs)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs the steps are divided into (each ends with a checkpoint, a fixed per-epoch cost)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each loop, interleaved")
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both loops")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    args = parser.parse_args()

    steps_per_epoch = -(-args.steps // args.epochs)
    steps = steps_per_epoch * args.epochs
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as temporary:
        folder = Path(temporary)
        table = write_table(folder, steps_per_epoch * args.batch_size, seed=0)
        config = make_config(table, args.model, args.epochs, args.batch_size, args.threads, args.device)
        device = configure_torch(config.train)  # seeds, threads, deterministic algorithms: as in `plait train`
        preprocessor = make_preprocessor(config)
        data = read_data(config, preprocessor)
        preprocessor.fit(data.rows("train"))
        splits = {name: encode_split(data, preprocessor, name, config) for name in ("train", "validation")}
        features, tasks = preprocessor.features, preprocessor.tasks

        model = MultimodalModel(config, features, tasks).to(device)
        initial = copy.deepcopy(model.state_dict())
        parameters = sum(p.numel() for p in model.parameters())

        def fresh() -> MultimodalModel:
            model.load_state_dict(initial)
            model.zero_grad(set_to_none=True)
            torch.manual_seed(config.train.seed)  # same dropout masks in both loops
            gc.collect()
            return model

        runs = 0

        def run_plait(train_config) -> dict:
            nonlocal runs
            runs += 1
            return plait_fit(fresh(), preprocessor, splits, train_config, device, folder / f"run{runs}")

        def run_hand(train_config) -> dict:
            return hand_written(fresh(), features, tasks, splits["train"], train_config, device)

        warm_up = config.train.model_copy(update={"epochs": 1, "validate_every_epochs": 1})
        run_plait(warm_up)
        run_hand(warm_up)

        plait_runs, hand_runs, final = [], [], {}
        for round_ in range(args.rounds):
            order = ("plait", "hand") if round_ % 2 == 0 else ("hand", "plait")
            for which in order:
                if which == "plait":
                    plait_runs.append(run_plait(config.train))
                else:
                    hand_runs.append(run_hand(config.train))
                final[which] = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])

    ms = 1000.0 / steps
    plait_step = [(r["fit"] - r["validate"]) * ms for r in plait_runs]
    loop_step = [(r["fit"] - r["validate"] - r.get("save_last", 0.0)) * ms for r in plait_runs]
    hand_step = [r["loop"] * ms for r in hand_runs]
    plait_cpu = statistics.median((r["fit_cpu"] - r["validate_cpu"]) * ms for r in plait_runs)
    hand_cpu = statistics.median(r["loop_cpu"] * ms for r in hand_runs)
    checkpoint = statistics.median(r.get("save_last", 0.0) for r in plait_runs) * 1000 / args.epochs
    validation = statistics.median(r["validate"] for r in plait_runs) * 1000
    difference = float((final["plait"] - final["hand"]).abs().max())

    print(f"model {args.model}: {NUMERIC_COLUMNS} numeric + 1 category input -> concat {MODELS[args.model]['fusion']} -> "
          f"{CLASSES} classes, {parameters:,} parameters; batch {args.batch_size}, {steps} steps "
          f"({args.epochs} epochs x {steps_per_epoch}), {device.type}, {torch.get_num_threads()} thread(s)")
    print(f"{'round':<8}{'plait ms/step':>15}{'  (loop only)':>15}{'hand ms/step':>15}{'plait/hand':>12}")
    for index, (p, loop, h) in enumerate(zip(plait_step, loop_step, hand_step), 1):
        print(f"{index:<8}{p:>15.3f}{loop:>15.3f}{h:>15.3f}{p / h:>11.3f}x")
    plait_median, hand_median = statistics.median(plait_step), statistics.median(hand_step)
    print(f"{'median':<8}{plait_median:>15.3f}{statistics.median(loop_step):>15.3f}{hand_median:>15.3f}{plait_median / hand_median:>11.3f}x")
    print(f"{'best':<8}{min(plait_step):>15.3f}{min(loop_step):>15.3f}{min(hand_step):>15.3f}{min(plait_step) / min(hand_step):>11.3f}x")
    print(f"plait extras: epoch-end checkpoint {checkpoint:.1f} ms/epoch (included above; 'loop only' leaves it out), "
          f"end-of-fit validation {validation:.1f} ms (excluded)")
    print(f"CPU time of this process (all its threads; less disturbed by other processes), median: plait {plait_cpu:.3f}, "
          f"hand {hand_cpu:.3f} ms/step, ratio {plait_cpu / hand_cpu:.3f}x")
    print(f"final weights identical in both loops: {'yes' if difference == 0 else f'no (max |diff| {difference:.3g})'}")
    paired = statistics.median(p / h for p, h in zip(plait_step, hand_step))
    print(f"median of the per-round ratios: {paired:.3f}x")
    print(f"ratio plait/hand-written: {paired:.2f}x (target <= 1.03)")


if __name__ == "__main__":
    main()
