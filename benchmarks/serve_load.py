"""`plait serve` under load: requests/s and latency with micro-batching against one row per forward pass.

    .venv/bin/python benchmarks/serve_load.py                      # the demo model, then the sentiment recipe's (~4 min)
    .venv/bin/python benchmarks/serve_load.py --model demo --seconds 10
    .venv/bin/python benchmarks/serve_load.py --run runs/my-run --field photo=photo.png --field note="a note"

For each model it trains a small run on generated data (or takes --run), then starts `plait serve` twice on a free
loopback port, once with the default micro-batching (`--max-batch 32`) and once with `--max-batch 1`, and sends
multipart requests from `--clients` concurrent clients (one asyncio task each, one row per request) for `--seconds`.
It prints, per server, requests/s, p50 and p99 latency and failed requests, then the ratio of batched to unbatched
requests/s (target on the demo model: >= 3x; failed requests: 0), and the model's own rows/s on PyTorch and on
onnxruntime (`plait export --format onnx`) over the test split. Clients and server share the machine's cores,
so absolute numbers depend on it; the ratio is what to compare. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plait(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "plait", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"plait {' '.join(map(str, args))} failed:\n{done.stderr}")


def demo_model(folder: Path) -> tuple[Path, dict]:
    from plait.demo.synthetic import make_demo

    table = make_demo(folder / "data", rows=300)
    plait("train", ROOT / "recipes/demo.yaml", "--set", f"data.table={table}", "--set", "train.epochs=2",
          "--set", "train.checkpoint_every_steps=null", "--run-dir", folder / "run")
    return folder / "run", {"photo": folder / "data/images/00000.png", "note": "the afternoon felt balmy in the park.",
                            "reading": "1.5"}


def sentiment_model(folder: Path) -> tuple[Path, dict]:
    """The recipe as it is (R3D-18 over 16 frames of 112×112, Conv1D over 64 mel bands, MiniLM), one epoch on a few
    generated MELD dialogues: the weights do not matter here, the work per request does."""
    from plait.demo.synthetic_meld import make_meld

    table = make_meld(folder / "MELD.Raw", dialogues=(4, 1, 1), size=112, frames=24)
    plait("train", ROOT / "recipes/sentiment_video_audio_text.yaml", "--set", f"data.table={table}",
          "--set", "train.epochs=1", "--set", "train.batch_size=4", "--run-dir", folder / "run")
    clip = next((folder / "MELD.Raw").rglob("*.mp4"))
    return folder / "run", {"clip": clip, "utterance": "Oh my God, that's so great!"}


async def load(url: str, fields: dict, clients: int, seconds: float) -> tuple[list[float], int]:
    files = {key: (Path(value).name, Path(value).read_bytes()) for key, value in fields.items() if isinstance(value, Path)}
    data = {key: value for key, value in fields.items() if not isinstance(value, Path)}
    latencies, failures = [], 0
    stop = time.perf_counter() + seconds

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                answer = await session.post(f"{url}/v1/predict", files=files, data=data)
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, failures


def measure(run: Path, fields: dict, max_batch: int, clients: int, seconds: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "plait", "serve", str(run), "--port", str(port),
                               "--max-batch", str(max_batch), "--timeout", "300"], stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        asyncio.run(load(url, fields, 4, 2.0))  # warm up
        latencies, failures = asyncio.run(load(url, fields, clients, seconds))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    latencies.sort()
    return {"requests/s": len(latencies) / seconds, "p50 ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
            "p99 ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"), "failed": failures}


def report(name: str, run: Path, fields: dict, clients: int, seconds: float) -> None:
    print(f"\n{name}: {clients} concurrent clients for {seconds:g} s, one row per request")
    results = {}
    for max_batch in (32, 1):
        results[max_batch] = measure(run, fields, max_batch, clients, seconds)
        shown = "  ".join(f"{key} {value:.1f}" if isinstance(value, float) else f"{key} {value}" for key, value in results[max_batch].items())
        print(f"  --max-batch {max_batch:<3} {shown}")
    ratio = results[32]["requests/s"] / max(results[1]["requests/s"], 1e-9)
    print(f"  batched / unbatched requests/s: {ratio:.2f}x (target on the demo model >= 3x); "
          f"failed requests: {results[32]['failed'] + results[1]['failed']} (target 0)")


def runtimes(run: Path, folder: Path, rows: int, repeats: int = 3) -> None:
    """Rows/s of the model alone (no HTTP, no decoding) on PyTorch and on onnxruntime, over the run's test split
    encoded once and repeated to `rows` rows, in batches of the run's evaluation_batch_size; the best of `repeats`
    passes each."""
    from plait.inference.onnx import OnnxPredictor, export_onnx
    from plait.runs import Run
    from plait.inference.predict import encode_rows
    from plait.serving.batching import joined

    exported = export_onnx(run, folder / "export-onnx")
    loaded = Run.load(exported)
    test = encode_rows(loaded, loaded.data.rows("test"), "the test split")  # held in memory: no cache reads timed
    split = joined([test] * -(-rows // len(test)))
    onnx = OnnxPredictor(exported, loaded.features)
    batch = loaded.config.train.evaluation_batch_size
    seconds = {}
    for name, predict in (("pytorch", lambda: loaded.predict(split)), ("onnxruntime", lambda: onnx.predict(split, batch))):
        predict()  # warm up
        seconds[name] = min(timed(predict) for _ in range(repeats))
    print(f"  model alone, {len(split)} rows in batches of {batch}: " + ", ".join(
        f"{name} {len(split) / value:.0f} rows/s" for name, value in seconds.items())
        + f"; onnxruntime / pytorch: {seconds['pytorch'] / seconds['onnxruntime']:.2f}x")


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["demo", "sentiment", "both"], default="both")
    parser.add_argument("--run", type=Path, help="serve this run instead of training one (give its --field values)")
    parser.add_argument("--field", action="append", default=[], help="FIELD=VALUE for --run; a VALUE that is a file is uploaded")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    options = parser.parse_args()
    os.environ.setdefault("PLAIT_CACHE_DIR", tempfile.mkdtemp(prefix="plait-bench-cache-"))
    if options.run:
        fields = dict(item.split("=", 1) for item in options.field)
        fields = {key: Path(value) if Path(value).is_file() else value for key, value in fields.items()}
        report(str(options.run), options.run, fields, options.clients, options.seconds)
        return
    with tempfile.TemporaryDirectory(prefix="plait-serve-load-") as scratch:
        for name, build, rows in (("demo", demo_model, 2048), ("sentiment", sentiment_model, 16)):
            if options.model in (name, "both"):
                run, fields = build(Path(scratch) / name)
                report(f"{name} model", run, fields, options.clients, options.seconds)
                runtimes(run, Path(scratch) / name, rows)


if __name__ == "__main__":
    main()
