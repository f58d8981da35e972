"""Training throughput of the recipes on this machine's accelerator, in float32, bfloat16 and float16, eager or compiled.

Each recipe's demo (`plait demo --recipe NAME`: generated data in the recipe's layout, the recipe with the demo's
CPU-sized overrides) is trained for a few epochs once per setting, each in a fresh process; throughput is the
median `samples_per_s` that `metrics.jsonl` logged after the first epoch (which fills the cache and compiles).
On a machine without CUDA it runs on the CPU (float16 is left out there), which shows that the settings work but
says nothing about GPU speed. Printed, never asserted.

    .venv/bin/python benchmarks/gpu_throughput.py                                  # multimodal and retrieval
    .venv/bin/python benchmarks/gpu_throughput.py --recipes sentiment captioning --epochs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def throughput(run_dir: Path) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records if "samples_per_s" in r and r.get("epoch", 0) >= 1]
    return statistics.median(rates) if rates else float("nan")


def measure(recipe: str, setting: dict, epochs: int, folder: Path) -> float:
    overrides = [f"train.epochs={epochs}", "train.log_every_steps=5", "train.device=auto",
                 *(f"train.{key}={str(value).lower()}" for key, value in setting.items())]
    command = [sys.executable, "-m", "plait", "demo", "--recipe", recipe, "--folder", str(folder)]
    for text in overrides:
        command += ["--set", text]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{recipe} {setting} failed:\n{result.stderr[-3000:]}")
    return throughput(folder / "run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["multimodal", "retrieval"])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'CPU (no CUDA device: float16 left out)'}")
    settings = [{"precision": "fp32"}, {"precision": "bf16"}, *([{"precision": "fp16"}] if cuda else []),
                {"precision": "bf16" if not cuda else "fp16", "compile": True}]
    with tempfile.TemporaryDirectory(prefix="plait-throughput-") as folder:
        for recipe in args.recipes:
            base = None
            for number, setting in enumerate(settings):
                rate = measure(recipe, setting, args.epochs, Path(folder) / f"{recipe}-{number}")
                base = base or rate
                label = ", ".join(f"{k}={v}" for k, v in setting.items())
                print(f"{recipe:<12} {label:<28} {rate:>10,.0f} samples/s  ({rate / base:.2f}x fp32)", flush=True)


if __name__ == "__main__":
    main()
