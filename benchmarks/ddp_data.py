"""The data path across processes, measured in one run: decodes per cell, preprocessing and evaluation wall time in
1 and 2 processes, and peak memory per rank on an npy table and one 10× longer.

1. **Decodes per cell.** Generated MELD clips (`plait.demo.synthetic_meld`, 3-second clips with a video and an audio
   track) go through the sentiment recipe's preprocessing (video frames, the audio track's log-mel spectrogram, the
   frozen MiniLM's text embeddings) with `plait cache build` on a cold cache: in one process, in 2 processes that
   divide the cells (`--nproc 2`), and in 2 processes that each encode everything into the same cache, as every rank
   did before the data path was divided (target: exactly 1 decode per clip with `--nproc 2`, against 2). Decodes are
   the cache's misses, which every process records in `stats/`.
2. **Preprocessing wall time** of those cache builds, 2 processes against 1 (target <= 0.6×), each process on one
   thread (`data.workers=1`, OMP_NUM_THREADS=1), as each rank of a multi-GPU machine has cores of its own; and
   against one process decoding on both of this machine's cores (its default), with the CPU time of each.
3. **Evaluation wall time**: a run trained for one epoch on the warm cache, `plait evaluate --split test` in 1 and 2
   processes (whole commands: start, load, encode from the cache, predict, gather).
4. **Peak RSS per rank**: the binned CNN-LSTM recipe's npy layout (as `benchmarks/memory_flat.py`), N spectra and
   10×N, trained one epoch by 2 processes on a cold cache; each rank reports its VmHWM (target: flat, 10×N / N <= 1.1).

Printed, never asserted. On 2 cores: about 12 minutes (637 clips; the data generation alone takes 2).

    .venv/bin/python benchmarks/ddp_data.py
    .venv/bin/python benchmarks/ddp_data.py --dialogues 24 --samples 1000     # 147 clips: quicker, more start-up
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

RSS_CHILD = r"""
import json, os, sys, threading, time
from pathlib import Path
from plait import api

def status(field):
    return next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(field + ":"))

peaks = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
def sample():
    while True:
        for field in peaks:
            peaks[field] = max(peaks[field], status(field))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
api.train(sys.argv[1], run_dir=sys.argv[2])
Path(sys.argv[3], f"rank-{os.environ.get('RANK', '0')}.json").write_text(json.dumps({"peak_rss": status("VmHWM"), **peaks}))
"""


def timed(commands: list[list[str]], one_thread: bool = False) -> tuple[float, float]:
    """Run the commands together to the end: (wall seconds, CPU seconds of every process they started).
    `one_thread`: torch and the decoders on one thread per process (torchrun already sets OMP_NUM_THREADS=1)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if one_thread else None
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-m", "plait", *command], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env) for command in commands]
    for child, command in zip(children, commands):
        _, error = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"plait {' '.join(command[:2])} failed:\n{error.decode()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - start, cpu


def meld_config(folder: Path, dialogues: int) -> Path:
    """The sentiment recipe on generated MELD clips, with a small 3-D CNN in place of R3D-18 (the model is not
    what is measured) and the MiniLM frozen, its embeddings cached."""
    from plait.config import apply_overrides, read_yaml
    from plait.demo.synthetic_meld import make_meld

    data = make_meld(folder / "meld", dialogues=(dialogues, dialogues // 4, dialogues // 2), size=128, frames=48, fps=16)
    raw = apply_overrides(read_yaml(ROOT / "recipes/sentiment_video_audio_text.yaml"), [
        f"data.table={data}", "inputs.video.encoder={name: cnn3d, channels: [8, 16]}",
        "inputs.text.encoder.freeze=true", "inputs.text.encoder.out_dim=null", "train.epochs=1",
        "train.eval_batch_size=8", "train.checkpoint_every_steps=null",
    ])
    path = folder / "meld.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def decodes(cache: Path) -> Counter:
    """Clips decoded per kind of cache entry (video, audio), over every process's recorded sessions."""
    counted = Counter()
    for stats in cache.glob("stats/*.json"):
        for namespace, count in json.loads(stats.read_text()).items():
            counted[namespace.split("-")[0]] += count["misses"]
    return counted


# (processes, threads per process, divided): how `plait cache build` runs
BUILDS = {
    "1 process, 1 thread": (1, 1, True),
    "2 processes, 1 thread each, divided (--nproc 2)": (2, 1, True),
    "2 processes, 1 thread each, each encoding all (before)": (2, 1, False),
    "1 process, 2 threads (this machine's default)": (1, 2, True),
}


def build_cache(config: Path, cache: Path, processes: int, threads: int, divided: bool) -> tuple[float, float]:
    """`plait cache build` into a cold `cache`: one command of `processes` processes, or (not `divided`) that many
    separate single-process commands started together, each encoding every cell. (wall, CPU) seconds."""
    command = ["cache", "build", str(config), "--set", f"data.cache_dir={cache}", "--set", f"data.workers={threads}"]
    if not divided:
        return timed([command] * processes, one_thread=threads == 1)
    return timed([[*command, "--nproc", str(processes)]], one_thread=threads == 1)


def data_path(config: Path, folder: Path) -> None:
    clips = sum(1 for _ in (config.parent / "meld").rglob("*.mp4"))
    print(f"{clips} clips of 3 s at 128×128 (16 frames at 112×112 and a 64-mel spectrogram each), texts through a "
          f"frozen MiniLM")
    seconds = {}
    for label, (processes, threads, divided) in BUILDS.items():
        cache = folder / f"cache-{processes}-{threads}-{divided}"
        seconds[label], cpu = build_cache(config, cache, processes, threads, divided)
        per_clip = ", ".join(f"{kind} {count / clips:.2f}" for kind, count in sorted(decodes(cache).items()))
        print(f"  {label:<56} {seconds[label]:6.1f} s wall, {cpu:6.1f} s CPU; decodes per clip: {per_clip}", flush=True)
    one, two, whole = (seconds[label] for label in list(BUILDS)[:2] + list(BUILDS)[3:])
    print(f"preprocessing wall time, 2 processes / 1 process, a core each: {two / one:.2f}x   (target <= 0.6x)")
    print(f"preprocessing wall time, 2 processes / 1 process with both cores: {two / whole:.2f}x")

    run = folder / "run"
    timed([["train", str(config), "--set", f"data.cache_dir={folder / 'cache-1-2-True'}", "--run-dir", str(run)]])
    evaluate = ["evaluate", str(run), "--split", "test"]
    for label, commands, one_thread in (("1 process, 1 thread", [evaluate], True),
                                        ("2 processes, 1 thread each (--nproc 2)", [[*evaluate, "--nproc", "2"]], True),
                                        ("1 process, 2 threads", [evaluate], False)):
        wall, cpu = timed(commands, one_thread)
        print(f"  plait evaluate --split test, {label:<40} {wall:6.1f} s wall, {cpu:6.1f} s CPU", flush=True)


def peak_rss_per_rank(samples: int, length: int, folder: Path) -> list[dict]:
    """Each of 2 ranks' peak RSS (and peak anonymous, file-backed and shared memory), training one epoch on `samples` spectra with a cold cache."""
    from memory_flat import config as spectra_config

    from plait.demo.synthetic_sequences import make_spectra

    table = make_spectra(folder / f"spectra-{samples}", samples=samples, length=length)
    raw = spectra_config(table, folder / f"spectra-cache-{samples}")
    raw["train"]["threads"] = 1
    config, out = folder / f"spectra-{samples}.yaml", folder / f"rss-{samples}"
    config.write_text(yaml.safe_dump(raw))
    out.mkdir()
    child = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                            "--no-python", sys.executable, "-c", RSS_CHILD, str(config),
                            str(folder / f"spectra-run-{samples}"), str(out)], capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"training on {samples} spectra failed:\n{child.stderr[-3000:]}")
    return [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(2)]


def memory(samples: int, length: int, folder: Path) -> None:
    peaks = {count: peak_rss_per_rank(count, length, folder) for count in (samples, 10 * samples)}
    for count, ranks in peaks.items():
        mib = count * length * 4 / 2**20
        print(f"  {count:>7,} spectra ({mib:6.1f} MiB): peak RSS per rank " + ", ".join(
            f"{rank['peak_rss'] / 2**20:.0f} MiB (anonymous {rank['RssAnon'] / 2**20:.0f}, file {rank['RssFile'] / 2**20:.0f},"
            f" shared {rank['RssShmem'] / 2**20:.0f})" for rank in ranks), flush=True)
    ratios = [large["peak_rss"] / small["peak_rss"] for small, large in zip(peaks[samples], peaks[10 * samples])]
    print("peak RSS ratio per rank (10×N / N): " + ", ".join(f"{ratio:.3f}" for ratio in ratios) + "   (target <= 1.1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=100, help="training dialogues (2-5 clips each); a quarter as many "
                        "for validation and half as many for test")
    parser.add_argument("--samples", type=int, default=2000, help="N spectra for the memory measurement")
    parser.add_argument("--length", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plait-ddp-data-") as folder:
        folder = Path(folder)
        data_path(meld_config(folder, args.dialogues), folder)
        memory(args.samples, args.length, folder)


if __name__ == "__main__":
    main()
