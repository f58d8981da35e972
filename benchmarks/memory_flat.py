"""Peak memory of training on memory-mapped `.npy` data: N samples against 10×N, measured in one run.

Each size is a folder of `.npy` columns (long 1-D spectra in `spectrum.npy`, fifteen parameters beside it, as the
binned CNN-LSTM recipe reads them) trained for one epoch in its own fresh process with a cold preprocessing cache:
the spectra are read once from the memory map, stored in the cache's shards, and every batch is read from the
shards. The child reports its peak resident set size (VmHWM: anonymous memory plus the file pages it had mapped in)
and its peak anonymous memory (sampled). Target: peak RSS at 10×N / peak RSS at N <= 1.1. Printed, never asserted.

    .venv/bin/python benchmarks/memory_flat.py                  # N = 2000 spectra of 4096 steps (31 MiB; 10×N 312 MiB)
    .venv/bin/python benchmarks/memory_flat.py --samples 500 --length 2048
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import yaml
from plait import api
from plait.config import validate

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

peak_anon, peak_file = [0], [0]
def sample():
    while True:
        peak_anon[0] = max(peak_anon[0], status("RssAnon"))
        peak_file[0] = max(peak_file[0], status("RssFile"))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
config = validate(yaml.safe_load(sys.argv[1]))
api.train(config, run_dir=sys.argv[2])
print(json.dumps({"peak_rss": status("VmHWM"), "peak_anon": max(peak_anon[0], status("RssAnon")), "peak_file": peak_file[0]}))
"""


def config(table: Path, cache: Path) -> dict:
    from plait.demo.synthetic_sequences import PARAMETERS

    return {
        "name": "memory",
        "data": {"table": str(table), "format": "npy", "split": {"ratios": [0.9, 0.1, 0.0]}, "cache_dir": str(cache)},
        "inputs": [{"name": "spectrum", "type": "sequence", "column": "spectrum",
                    "encoder": {"name": "cnn_lstm", "filters": 8, "blocks": 4, "pool": 4, "hidden": 16, "dense": [32]}}],
        "outputs": [{"name": name, "type": "binned", "column": name, "bins": 5} for name in PARAMETERS],
        "fusion": {"name": "concat", "hidden": []},
        "train": {"epochs": 1, "batch_size": 64, "threads": 2, "log_every_steps": 1000},
    }


def measure(samples: int, length: int, folder: Path) -> dict:
    import yaml

    from plait.demo.synthetic_sequences import make_spectra

    table = make_spectra(folder / f"data-{samples}", samples=samples, length=length)
    child = subprocess.run([sys.executable, "-c", CHILD, yaml.safe_dump(config(table, folder / f"cache-{samples}")),
                            str(folder / f"run-{samples}")], capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"training on {samples} samples failed:\n{child.stderr[-3000:]}")
    data_bytes = (table / "spectrum.npy").stat().st_size
    return {"samples": samples, "data_mib": data_bytes / 2**20, **json.loads(child.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--length", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plait-memory-") as folder:
        small = measure(args.samples, args.length, Path(folder))
        large = measure(10 * args.samples, args.length, Path(folder))
    for row in (small, large):
        print(f"{row['samples']:>7} samples ({row['data_mib']:7.1f} MiB of spectra): peak RSS {row['peak_rss'] / 2**20:7.1f} MiB, "
              f"peak anonymous {row['peak_anon'] / 2**20:7.1f} MiB, peak file-backed {row['peak_file'] / 2**20:7.1f} MiB")
    print(f"peak RSS ratio (10×N / N): {large['peak_rss'] / small['peak_rss']:.3f}   (target <= 1.1)")
    print(f"peak anonymous memory ratio: {large['peak_anon'] / small['peak_anon']:.3f}")


if __name__ == "__main__":
    main()
