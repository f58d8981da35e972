"""Continuing a run with changed train settings (`plait train --resume DIR --set train.epochs=30`) from a chosen
checkpoint (`--checkpoint best | last | PATH`), and starting a new run from another run's weights (`--init-from`)."""

from __future__ import annotations

import json
from pathlib import Path

from plait.config import TrainConfig, flatten, read_yaml
from plait.console import say
from plait.errors import PlaitError
from plait.runs.setup import chosen_checkpoint, write_json
from plait.training.checkpoint import checkpoint_folder, has_checkpoint, load_matching, load_state
from plait.training.optim import grouping

ORDER = "it sets the order of the training rows in every epoch still to come"
STEPS = "the checkpoint's step count, schedule and place in its epoch are counted in batches of the old size"
BEST = "the checkpoint's best value and patience count are of the metric it monitored"
# train keys a resume refuses to change, and why: the checkpoint could not continue as the key says
REFUSED = {
    "train.seed": ORDER,
    "train.sampler": ORDER,
    "train.batch_size": STEPS,
    "train.grad_accum_steps": STEPS,
    "train.optimizer.name": "the checkpoint holds another optimizer's state",
    "train.monitor": BEST,
    "train.monitor_mode": BEST,
}
# keys whose change leaves the run as one started with the new value would have gone (where it had not yet stopped)
SAME_COURSE = {"train.epochs", "train.early_stopping_patience", "train.threads", "train.eval_batch_size",
               "train.log_every_steps", "train.checkpoint_every_steps", "train.master_address", "train.master_port"}
HORIZON = ("cosine", "onecycle", "linear_warmup")  # schedules whose length is the run's step count


def check_overrides(overrides: list[str]) -> None:
    """A resume changes train.* keys only: anything else shapes the data or the model its checkpoint belongs to."""
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key != "train" and not key.startswith("train."):
            raise PlaitError(f"--set {key}: a resumed run can change train.* keys only, and {key} shapes the data or the "
                             "model its checkpoint was trained with; start a new run instead (plait train CONFIG "
                             "--init-from RUN begins from that run's weights)")


def resume_checkpoint(run_dir: Path, which: str) -> Path | None:
    """The checkpoint a resume continues from: `last` (None when the run has none yet: it starts cleanly), `best`,
    or the checkpoint folder at the path `which`."""
    if which == "last":
        last = Path(run_dir) / "checkpoints" / "last"
        return last if has_checkpoint(last) else None
    folder = Path(run_dir) / "checkpoints" / "best" if which == "best" else Path(which)
    if not has_checkpoint(folder):
        raise PlaitError(f"--checkpoint {which}: no checkpoint at {folder}")
    return checkpoint_folder(folder)


def changed_keys(previous: dict, now: dict) -> dict[str, list]:
    """`train.KEY` → [before, now] for every train setting a resume changes."""
    before, after = flatten({"train": previous}), flatten({"train": now})
    return {key: [before.get(key), after.get(key)] for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)}


def resume_notes(changed: dict[str, list], now: dict, progress: dict) -> list[str]:
    """How the resumed run will differ from an uninterrupted one (empty: it will not); raises for a change a
    checkpoint cannot continue with."""
    for key in changed:
        for refused, reason in REFUSED.items():
            if key == refused or key.startswith(refused + "."):
                raise PlaitError(f"--set {key}: cannot change when resuming: {reason}; start a new run instead "
                                 "(plait train CONFIG --init-from RUN begins from that run's weights)")
    notes, step, epochs = [], progress["step"], now["epochs"]
    new_schedule = [key for key in changed if key.startswith("train.scheduler.") or key == "train.optimizer.lr"
                    or (key.startswith("train.optimizer.groups.") and key.endswith((".lr", ".layer_decay")))]
    if new_schedule:
        notes.append(f"the {now['scheduler']['name']} schedule starts afresh at step {step} from optimizer.lr "
                     f"{now['optimizer']['lr']:g}{' (and each group its own rate)' if now['optimizer']['groups'] else ''} "
                     "and spans the remaining epochs")
    elif "train.epochs" in changed and now["scheduler"]["name"] in HORIZON:
        notes.append(f"the {now['scheduler']['name']} schedule now spans {epochs} epochs instead of "
                     f"{changed['train.epochs'][0]}: from step {step} the rate follows the longer schedule (it rises "
                     f"again if it had decayed), unlike a run planned for {epochs} epochs from the start")
    others = [key for key in changed if key not in SAME_COURSE and key not in new_schedule]
    if others:
        notes.append(f"{', '.join(others)} {'changes' if len(others) == 1 else 'change'} the training from here on")
    if progress["stopped_early"] and ({"train.epochs", "train.early_stopping_patience"} & set(changed)):
        notes.append(f"it had stopped early after epoch {progress['epoch']}: it trains on, patience counting again from here")
    return notes


def announce_resume(folder: Path, source: Path, progress: dict, changed: dict[str, list], notes: list[str],
                    write: bool) -> None:
    """One printed line for the resume, and with `write` a record appended to the run's resumes.json."""
    shown = source.relative_to(folder) if source.is_relative_to(folder) else source
    changes = ", ".join(f"{key} {old} → {new}" for key, (old, new) in changed.items())
    line = f"resuming from {shown} (epoch {progress['epoch']}, step {progress['step']})"
    if changes:
        line += f" with {changes}; config.yaml updated"
    if notes:
        line += ". It differs from an uninterrupted run: " + "; ".join(notes)
    say(line)
    if write:
        path = folder / "resumes.json"
        earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        write_json(path, [*earlier, {"checkpoint": str(Path(source).resolve()), "epoch": progress["epoch"], "step": progress["step"],
                                     "changed": changed, "differs": notes}])


def init_source(path: str | Path) -> Path:
    """The checkpoint `--init-from` names: a run folder's best (else last), or a checkpoint (or exported) folder."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        return checkpoint_folder(chosen_checkpoint(path, "best"))
    if (path / "model.safetensors").is_file():
        return path
    raise PlaitError(f"--init-from {path}: neither a run folder nor a checkpoint folder (with model.safetensors)")


def warm_start(model, source: Path, folder: Path, write: bool, shown: int = 10) -> dict:
    """Load the tensors of `source` whose names and shapes match the model's; print what loaded, what is new and
    what was dropped for a shape mismatch; with `write`, keep it all in the run's init_from.json."""
    report = {"source": str(Path(source).resolve()), **load_matching(source, model)}
    new, mismatched = report["new"], report["mismatched"]
    say(f"init from {source}: {report['loaded']} tensors loaded, {len(new)} new (not in the source), {len(mismatched)} "
        f"dropped for a shape mismatch, {len(report['unused'])} of the source's unused")
    for name in new[:shown]:
        say(f"  new: {name}")
    for name, own, theirs in mismatched[:shown]:
        say(f"  shape mismatch: {name} {tuple(own)} here, {tuple(theirs)} in the source")
    if len(new) > shown or len(mismatched) > shown:
        say(f"  (every name in {folder / 'init_from.json'})")
    if write:
        write_json(folder / "init_from.json", report)
    return report


def resume_plan(folder: Path, source: Path, config) -> tuple[dict, dict[str, list], list[str], dict]:
    """(the train settings the checkpoint was trained with, the keys this resume changes, how it will differ from
    an uninterrupted run, the checkpoint's progress); raises for a change it cannot continue with."""
    state = load_state(source)
    saved = state.get("train") or read_yaml(Path(folder) / "config.yaml").get("train", {})  # older checkpoints: config.yaml
    previous = TrainConfig.model_validate(saved).model_dump(mode="json")
    now = config.train.model_dump(mode="json")
    if grouping(previous["optimizer"]) != grouping(now["optimizer"]):
        raise PlaitError("--set train.optimizer: cannot change which parameters form each of train.optimizer.groups "
                         "(their params, whether they have a layer_decay, decay_bias_and_norm) when resuming: the "
                         "checkpoint holds the optimizer's state per group; a group's lr, weight_decay and layer_decay "
                         "value can change. Start a new run instead (plait train CONFIG --init-from RUN begins from that "
                         "run's weights)")
    changed = changed_keys(previous, now)
    return previous, changed, resume_notes(changed, now, state["progress"]), state["progress"]
