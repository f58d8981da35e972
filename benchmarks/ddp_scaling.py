"""Training throughput of one process against several (DDP through `plait train --nproc N`), measured in one run.

The multimodal demo's data (photos, notes, readings; `plait.demo.synthetic.make_demo`) is trained by its recipe for
a few epochs with the same global batch, first in one process, then in N (gloo on a CPU, NCCL on GPUs). Throughput
is the training rows per second that `metrics.jsonl` reports (`samples_per_s`, rows of the global batch over the
wall time of each logging window), the median over the windows after the first epoch (which warms the cache and
the allocator). Each process gets `cores / N` threads, so N processes on a CPU share the same cores as one: on a
CPU the ratio shows what DDP costs or buys there, not a speed-up from more hardware. Printed, never asserted.

    .venv/bin/python benchmarks/ddp_scaling.py                    # 1 and 2 processes, 3000 rows, 4 epochs
    .venv/bin/python benchmarks/ddp_scaling.py --processes 1 2 4 --rows 6000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def config(table: Path, cache: Path, epochs: int, threads: int) -> dict:
    from plait.demo.runner import demo_recipe

    raw = yaml.safe_load(demo_recipe("multimodal").read_text())
    raw["data"].update(table=str(table), cache_dir=str(cache))
    raw["train"].update(epochs=epochs, batch_size=64, log_every_steps=10, checkpoint_every_steps=None, threads=threads,
                        scheduler={"name": "none"})
    return raw


def throughput(run_dir: Path, skip_epochs: int = 1) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records if "samples_per_s" in r and r.get("epoch", 0) >= skip_epochs]
    return statistics.median(rates)


def train(processes: int, raw: dict, folder: Path) -> float:
    path = folder / f"config-{processes}.yaml"
    path.write_text(yaml.safe_dump(raw))
    run_dir = folder / f"run-{processes}"
    command = [sys.executable, "-m", "plait", "train", str(path), "--run-dir", str(run_dir), "--nproc", str(processes)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"training in {processes} processes failed:\n{result.stderr[-3000:]}")
    return throughput(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    from plait.demo.synthetic import make_demo

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="plait-ddp-") as folder:
        folder = Path(folder)
        table = make_demo(folder / "data", rows=args.rows)
        rates = {}
        for processes in args.processes:
            raw = config(table, folder / "cache", args.epochs, max(1, cores // processes))
            rates[processes] = train(processes, raw, folder)
            threads = max(1, cores // processes)
            print(f"{processes} process{'es' if processes > 1 else ''} ({threads} thread{'s' if threads > 1 else ''} each): "
                  f"{rates[processes]:,.0f} samples/s", flush=True)
    base = rates[args.processes[0]]
    for processes, rate in rates.items():
        print(f"ratio {processes} / {args.processes[0]} processes: {rate / base:.2f}x")


if __name__ == "__main__":
    main()
