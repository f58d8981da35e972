"""Peak memory of `plait predict` on a table and on one 10× longer, and its wall time in 1 and 2 processes.

A demo run is trained for one epoch on generated data (photos, notes, readings). Its input columns are repeated
into a CSV of N rows and one of 10×N rows, each predicted by `plait predict` in its own fresh process, which
reports its peak resident set size (VmHWM). Prediction reads, encodes, predicts and writes `--chunk-rows` rows at
a time, so the two peaks should be about the same (target: 10×N / N <= 1.3). Then the 10×N table is predicted with
`--nproc 1` and `--nproc 2` (torchrun, gloo on a CPU; the processes share the machine's cores) and both wall
times are printed with their ratio. Printed, never asserted.

    .venv/bin/python benchmarks/predict_stream.py                  # N = 5,000 rows (~1-2 minutes on 2 cores)
    .venv/bin/python benchmarks/predict_stream.py --rows 2000 --chunk-rows 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from pathlib import Path
from plait.cli import main

sys.argv = ["plait", *sys.argv[1:]]
try:
    main()
except SystemExit as done:
    if done.code:
        raise
status = Path("/proc/self/status").read_text().splitlines()
print(json.dumps({"peak_rss": next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))}))
"""


def plait(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "plait", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"plait {' '.join(map(str, args[:2]))} failed:\n{result.stderr[-3000:]}")
    return result


def trained_demo(folder: Path) -> tuple[Path, Path]:
    """(the run folder, the data folder) of the demo recipe trained for one epoch on 300 generated rows."""
    from plait.demo.synthetic import make_demo

    table = make_demo(folder / "data", rows=300)
    plait("train", ROOT / "recipes/demo.yaml", "--set", f"data.table={table}", "--set", "train.epochs=1",
          "--set", "train.checkpoint_every_steps=null", "--run-dir", folder / "run")
    return folder / "run", folder / "data"


def input_table(data: Path, rows: int, path: Path) -> Path:
    """The demo's photo, note and reading columns repeated to `rows` rows (photos by absolute path)."""
    demo = pd.read_csv(data / "demo.csv")[["photo", "note", "reading"]]
    demo["photo"] = [str(data / photo) for photo in demo["photo"]]
    pd.concat([demo] * (rows // len(demo) + 1), ignore_index=True).head(rows).to_csv(path, index=False)
    return path


def peak_rss(run: Path, table: Path, output: Path, chunk_rows: int) -> int:
    command = [sys.executable, "-c", CHILD, "predict", str(run), "--input", str(table), "--output", str(output),
               "--chunk-rows", str(chunk_rows)]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"predicting {table.name} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])["peak_rss"]


def wall_time(run: Path, table: Path, output: Path, chunk_rows: int, processes: int) -> float:
    start = time.perf_counter()
    plait("predict", run, "--input", table, "--output", output, "--chunk-rows", chunk_rows, "--nproc", processes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--chunk-rows", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plait-predict-") as folder:
        folder = Path(folder)
        run, data = trained_demo(folder)
        small = input_table(data, args.rows, folder / "small.csv")
        large = input_table(data, 10 * args.rows, folder / "large.csv")
        peaks = {}
        for table in (small, large):
            rows = sum(1 for _ in open(table)) - 1
            peaks[rows] = peak_rss(run, table, folder / f"out-{table.stem}.csv", args.chunk_rows)
            print(f"{rows:>8,} rows ({table.stat().st_size / 2**20:6.1f} MiB of CSV): peak RSS {peaks[rows] / 2**20:7.1f} MiB",
                  flush=True)
        low, high = peaks.values()
        print(f"peak RSS ratio (10×N / N): {high / low:.3f}   (target <= 1.3)")
        times = {processes: wall_time(run, large, folder / f"out-{processes}.csv", args.chunk_rows, processes)
                 for processes in (1, 2)}
        for processes, seconds in times.items():
            print(f"--nproc {processes}: {seconds:6.1f} s for {10 * args.rows:,} rows")
        print(f"wall time ratio --nproc 2 / --nproc 1: {times[2] / times[1]:.2f}x")


if __name__ == "__main__":
    main()
