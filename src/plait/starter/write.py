"""The config `plait init` writes: each input and output on one line under a comment naming its evidence, encoders
sized to the data and to the machine (a CPU gets small from-scratch encoders and short clips; a GPU the recipes'
sizes), the columns left out listed with why."""

from __future__ import annotations

import datetime
import os
import re

import yaml

from plait.starter.decide import Decision
from plait.starter.layout import Sample


def flow(value) -> str:
    """A YAML value on one line: `{name: cnn, channels: [16, 32]}`."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip().removesuffix("\n...")


def config_name(url: str) -> str:
    stem = os.path.splitext(os.path.basename(url.rstrip("/")))[0]
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "table"


def entry_names(decisions: list[Decision]) -> dict[str, str]:
    """Column → an input or output name (lower case, underscores), unique."""
    names: dict[str, str] = {}
    for decision in decisions:
        base = re.sub(r"[^a-z0-9]+", "_", decision.column.lower()).strip("_") or "column"
        name, suffix = base if not base[0].isdigit() else f"c_{base}", 2
        while name in names.values():
            name, suffix = f"{base}_{suffix}", suffix + 1
        names[decision.column] = name
    return names


def input_entries(decision: Decision, name: str, rows: int, gpu: bool) -> list[dict]:
    entry = {"name": name, "type": decision.type, "column": decision.column}
    kind, settings = decision.type, decision.settings
    if kind == "image":
        size = min(128 if gpu else 64, settings.get("smallest_side") or 224)  # never larger than the photos
        entry.update(size=size, encoder={"name": "cnn", "channels": [32, 64, 128, 256] if gpu else [16, 32, 64]})
    elif kind == "video":
        entry.update({"frames": 16, "size": 112, "encoder": {"name": "r3d18", "out_dim": 128}} if gpu else
                     {"frames": 8, "size": 64, "encoder": {"name": "cnn3d", "channels": [16, 32, 64]}})
    elif kind == "text":
        entry["max_length"] = int(min(256, max(16, 8 * round(settings["longest"] * 1.5 / 8))))
        long_texts = settings["words"] >= 8 and rows >= 1000
        entry["encoder"] = ({"name": "hf", "path": "minilm", "freeze": True} if long_texts else
                            {"name": "bag", "dim": 64 if rows >= 5000 else 32})
    elif kind == "sequence":
        entry.update(settings)
    entries = [entry]
    if kind == "video" and settings.get("has_audio"):  # the clip's sound track, a second input from the same files
        entries.append({"name": f"{name}_audio", "type": "audio", "column": decision.column, "source": "video_column",
                        "sample_rate": 16000, "max_seconds": 8, "encoder": {"name": "conv1d", "out_dim": 128}})
    return entries


def output_entry(decision: Decision, name: str) -> dict:
    entry = {"name": name, "type": decision.type, "column": decision.column}
    if decision.type == "binned":
        entry["bins"] = 10
    return entry


def input_note(decision: Decision) -> str:
    if decision.type == "video" and decision.settings.get("has_audio"):
        return f"{decision.evidence}; its sound track → audio"
    if decision.type == "text" and decision.settings["words"] >= 8:
        return f"{decision.evidence}; long texts: a pretrained MiniLM, frozen (its outputs computed once)"
    return decision.evidence


def config_text(sample: Sample, decisions: list[Decision], targets: list[str], gpu: bool) -> str:
    names = entry_names(decisions)
    inputs = [d for d in decisions if d.role == "input"]
    outputs = [next(d for d in decisions if d.role == "target" and d.column == target) for target in targets]
    split = next((d for d in decisions if d.role == "split"), None)
    left_out = [d for d in decisions if d.role == "left out"]
    table = os.path.abspath(sample.url) if "://" not in sample.url else sample.url
    data = {"table": table, **({"format": sample.format} if sample.format != "auto" else {})}
    command = f"plait init {sample.url} " + " ".join(f"--target {target}" for target in targets)
    lines = [f"# Written by `{command}` on {datetime.date.today()}, from {len(sample.table):,} of the table's "
             f"{sample.rows:,} rows, for a {'GPU' if gpu else 'CPU'}.",
             "# Each input and output says what decided it. Edit anything, check with `plait validate`, then `plait train`.",
             f"name: {config_name(sample.url)}", "data:"]
    lines += [f"  {key}: {flow(value)}" for key, value in data.items()]
    if split is not None:
        lines.append(f"  split: {flow({'column': split.column})}   # {split.evidence}")
    else:
        grouped = next((d.column for d in inputs if d.type == "image"), None) if any(
            d.type == "caption" for d in outputs) else None
        split_keys = {"ratios": [0.8, 0.1, 0.1], "seed": 0, **({"group": grouped} if grouped else {})}
        lines.append(f"  split: {flow(split_keys)}   # no column of train / validation / test: a seeded random split"
                     + (f", each {grouped}'s captions kept together" if grouped else ""))
    lines.append("inputs:")
    for decision in inputs:
        lines.append(f"  # {decision.column}: {input_note(decision)}")
        lines += [f"  - {flow(entry)}" for entry in input_entries(decision, names[decision.column], sample.rows, gpu)]
    lines.append("outputs:")
    for decision in outputs:
        lines += [f"  # {decision.column}: {decision.evidence}", f"  - {flow(output_entry(decision, names[decision.column]))}"]
    if left_out:
        lines.append("# left out:")
        lines += [f"#   {decision.column}: {decision.evidence}" for decision in left_out]
    hidden = [256] if gpu or sample.rows >= 20000 else [64]
    lines.append(f"fusion: {flow({'name': 'concat', 'hidden': hidden, 'dropout': 0.1})}")
    epochs = 10 if sample.rows >= 20000 else 20
    train = {"epochs": epochs, "batch_size": 64 if gpu else 32, "optimizer": {"name": "adamw", "lr": 3.0e-3},
             "scheduler": {"name": "cosine", "warmup_steps": 30}, "grad_clip": 1.0, "seed": 0}
    lines.append(f"train: {flow(train)}")
    return "\n".join(lines) + "\n"
