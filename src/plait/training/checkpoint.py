"""Checkpoints: `model.safetensors` + `state.pt` + `preprocessing.json` in one folder, swapped in atomically.

The folder is written under a temporary name and renamed into place, so a kill at any instant leaves either
the old checkpoint or the new one whole, never a mix of files from both.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from plait.errors import PlaitError


def rng_state() -> dict:
    """torch, numpy and python RNG states as tensors and plain values (loadable with weights_only=True)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def snapshot(tree):
    """A copy of every tensor in a nested dict/list (on the CPU), so later training steps cannot change it."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {key: snapshot(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(snapshot(value) for value in tree)
    return tree


class CheckpointWriter:
    """Writes checkpoints on a background thread so training never waits on the disk.

    The state is snapshotted when `save` is called, so what lands on disk is exactly the state at that
    instant; one write runs at a time, and `wait` (called at the end of training) surfaces any error."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def save(self, folder: Path, model: torch.nn.Module, state: dict, preprocessing: dict) -> None:
        weights, state = snapshot(model.state_dict()), snapshot(state)
        self.wait()
        self.thread = threading.Thread(target=self._write, args=(folder, weights, state, preprocessing), name="plait-checkpoint")
        self.thread.start()

    def _write(self, folder, weights, state, preprocessing) -> None:
        try:
            save_checkpoint(folder, weights, state, preprocessing)
        except BaseException as error:  # re-raised on the training thread by `wait`
            self.error = error

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise PlaitError(f"writing a checkpoint failed: {error}") from error


def save_checkpoint(folder: Path, weights: dict[str, torch.Tensor], state: dict, preprocessing: dict) -> None:
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.writing")
    previous = folder.with_name(f".{folder.name}.previous")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file({name: tensor.contiguous() for name, tensor in weights.items()}, staging / "model.safetensors")
    torch.save(state, staging / "state.pt")
    (staging / "preprocessing.json").write_text(json.dumps(preprocessing), encoding="utf-8")
    for path in staging.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        os.replace(folder, previous)
    os.replace(staging, folder)  # the commit point
    shutil.rmtree(previous, ignore_errors=True)


def is_checkpoint(folder: Path) -> bool:
    """Weights and preprocessing: enough to predict (an exported model has no training state)."""
    return (folder / "model.safetensors").is_file() and (folder / "preprocessing.json").is_file()


def checkpoint_folder(folder: Path) -> Path:
    """The checkpoint at `folder`, or the one a kill between the two renames left under its previous name."""
    folder = Path(folder)
    if is_checkpoint(folder):
        return folder
    previous = folder.with_name(f".{folder.name}.previous")
    if is_checkpoint(previous):
        return previous
    raise PlaitError(f"{folder}: no checkpoint here")


def has_checkpoint(folder: Path) -> bool:
    try:
        checkpoint_folder(folder)
        return True
    except PlaitError:
        return False


def load_preprocessing(folder: Path) -> dict:
    return json.loads((checkpoint_folder(folder) / "preprocessing.json").read_text(encoding="utf-8"))


def load_weights(folder: Path, model: torch.nn.Module) -> None:
    model.load_state_dict(load_file(checkpoint_folder(folder) / "model.safetensors"))


def load_state(folder: Path) -> dict:
    path = checkpoint_folder(folder) / "state.pt"
    if not path.is_file():
        raise PlaitError(f"{folder}: the checkpoint has no training state (state.pt), so training cannot continue from it")
    return torch.load(path, weights_only=True)


def load_matching(source: Path, model: torch.nn.Module) -> dict:
    """Warm start: the tensors of `source/model.safetensors` whose names and shapes match `model`'s, loaded into it.
    Returns what happened: `loaded` (a count), `new` (the model's names the source lacks, left as initialised),
    `mismatched` ([name, model shape, source shape] for names whose shapes differ, left as initialised) and
    `unused` (the source's names the model lacks)."""
    weights = load_file(Path(source) / "model.safetensors")
    own = model.state_dict()
    matching = {name: tensor for name, tensor in weights.items() if name in own and own[name].shape == tensor.shape}
    model.load_state_dict(matching, strict=False)  # the rest keep their values
    return {
        "loaded": len(matching),
        "new": [name for name in own if name not in weights],
        "mismatched": [[name, list(own[name].shape), list(weights[name].shape)] for name in own
                       if name in weights and name not in matching],
        "unused": [name for name in weights if name not in own],
    }
