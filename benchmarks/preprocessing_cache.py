"""What the preprocessing cache and the frozen-embedding cache buy, measured in one run on generated MELD clips.

1. Decoding vs cached data epochs. The sentiment recipe's inputs (16 frames at 112×112 from each clip's video
   track, a log-mel spectrogram of its audio track, the utterance's tokens) are produced for every training row
   and every batch is assembled once, as one training epoch reads them:
     epoch 1    the cache is cold: every clip is decoded (PyAV), resized, turned into a spectrogram, and stored;
     epoch 2    the same run's next epoch: batches are read from the memory-mapped shards;
     next run   a new process-like start with a warm cache: every file is fingerprinted, found, and read.
   Target: epoch 1 / epoch 2 >= 20.
2. Full forward vs cached frozen embeddings. The recipe with the video (R3D-18) and text (MiniLM) encoders
   frozen, the audio encoder, fusion and heads trained: one training epoch (forward, loss, backward, Adam step)
   where the frozen encoders run on every batch, vs one where their outputs were computed once and come from the
   cache. The one-time cost of computing the embeddings is printed separately. Target: ratio >= 10.

Clips are 3 s at 24 fps, 320×240, with 16 kHz audio (MELD's are 1280×720 and longer, so real decoding costs
more and the ratios here are conservative). Timings are printed, never asserted; the script always exits 0.

    .venv/bin/python benchmarks/preprocessing_cache.py               # 48 clips (~2 minutes on 2 cores)
    .venv/bin/python benchmarks/preprocessing_cache.py --clips 96 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from plait.config import OptimizerConfig, apply_overrides, read_yaml, validate
from plait.data.cache import FeatureCache
from plait.data.dataset import prepare_inputs
from plait.data.meld import CLIP_FOLDERS, CSV_NAMES
from plait.demo.synthetic_media import write_clip
from plait.demo.synthetic_meld import EMOTIONS, SENTIMENT, moving_patch, utterance, voice
from plait.demo.runner import demo_recipe
from plait.models.frozen import embed_frozen_inputs
from plait.models.model import MultimodalModel
from plait.runs.setup import configure_torch, make_preprocessor, read_data
from plait.training.optim import build_optimizer


def write_clips(folder: Path, clips: int, seed: int = 0) -> Path:
    """A MELD folder whose training split has `clips` utterances of 3 s at 24 fps, 320×240 (validation: 4)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", clips), ("validation", 4), ("test", 4)):
        (folder / CLIP_FOLDERS[split][0]).mkdir(parents=True, exist_ok=True)
        records = []
        for turn in range(count):
            square = moving_patch(bool(turn % 2), rng, 72, 240)
            frames = np.concatenate([square, square[:, :, :80]], axis=2)  # 240 × 320
            write_clip(folder / CLIP_FOLDERS[split][0] / f"dia0_utt{turn}.mp4", frames, 24, voice(bool(turn % 3), rng, 3.0, 16000))
            emotion = EMOTIONS[turn % len(EMOTIONS)]
            records.append({"Sr No.": turn + 1, "Utterance": utterance(turn % 2, rng), "Speaker": "Joey", "Emotion": emotion,
                            "Sentiment": SENTIMENT[emotion], "Dialogue_ID": 0, "Utterance_ID": turn, "Season": 1, "Episode": 1,
                            "StartTime": "00:00:00,000", "EndTime": "00:00:03,000"})
        pd.DataFrame(records).to_csv(folder / CSV_NAMES[split], index=False)
    return folder


def recipe_config(folder: Path, cache_dir: Path, extra: list[str]):
    overrides = [f"data.table={folder}", f"data.cache_dir={cache_dir}", "inputs.audio.max_seconds=3", "train.batch_size=8", *extra]
    return validate(apply_overrides(read_yaml(demo_recipe("sentiment")), overrides))


def data_epoch(split, batch_size: int) -> float:
    """Seconds to assemble every batch of one epoch."""
    started = time.perf_counter()
    for indices in torch.randperm(len(split)).split(batch_size):
        split.batch(indices)
    return time.perf_counter() - started


def encode_train(config, cache_dir: Path):
    preprocessor = make_preprocessor(config)
    data = read_data(config, preprocessor)
    preprocessor.fit(data.rows("train"))
    rows = data.rows("train")
    return preprocessor, preprocessor.encode(rows, "train", data.source, cache=FeatureCache(cache_dir))


def decoding_vs_cached(folder: Path, cache_dir: Path) -> None:
    config = recipe_config(folder, cache_dir, [])
    started = time.perf_counter()
    _, split = encode_train(config, cache_dir)
    first = time.perf_counter() - started + data_epoch(split, 8)
    second = data_epoch(split, 8)
    started = time.perf_counter()
    _, again = encode_train(config, cache_dir)
    next_run = time.perf_counter() - started + data_epoch(again, 8)
    print(f"\n1. data epoch over {len(split)} clips (video 16×112×112, audio log-mel, text tokens)")
    print(f"   epoch 1, cold cache (decode + store): {first:8.2f} s")
    print(f"   epoch 2, from the cache:              {second:8.3f} s")
    print(f"   next run, warm cache (fingerprint + read): {next_run:8.3f} s")
    print(f"   ratio epoch 1 / epoch 2: {first / second:.1f}x (target >= 20)")
    print(f"   ratio epoch 1 / next run: {first / next_run:.1f}x")


def train_epoch(model, features, tasks, split, batch_size: int) -> float:
    """Seconds for one training epoch: forward, loss, backward and an Adam step per batch."""
    optimizer = build_optimizer(model.parameters(), OptimizerConfig(name="adam", lr=1e-4))
    model.train()
    started = time.perf_counter()
    for indices in torch.randperm(len(split)).split(batch_size):
        batch = split.batch(indices)
        outputs = model(prepare_inputs(features, batch["inputs"], training=True))
        loss = sum(task.loss(outputs[name], batch["targets"][name]) for name, task in tasks.items())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def full_forward_vs_cached_embeddings(folder: Path, cache_dir: Path) -> None:
    frozen = ["inputs.video.encoder.freeze=true", "inputs.text.encoder.freeze=true", "inputs.text.encoder.out_dim=null",
              "inputs.video.encoder.out_dim=null"]
    results = {}
    for cached in (False, True):
        extra = frozen + [f"inputs.{n}.encoder.cache_embeddings={str(cached).lower()}" for n in ("video", "text")]
        config = recipe_config(folder, cache_dir, extra)
        device = configure_torch(config.train)
        preprocessor, split = encode_train(config, cache_dir)
        model = MultimodalModel(config, preprocessor.features, preprocessor.tasks).to(device)
        started = time.perf_counter()
        if cached:
            embed_frozen_inputs(model, preprocessor.features, config, {"train": split}, FeatureCache(cache_dir), device)
        embedding = time.perf_counter() - started
        train_epoch(model, preprocessor.features, preprocessor.tasks, split, 8)  # warm-up
        results[cached] = (train_epoch(model, preprocessor.features, preprocessor.tasks, split, 8), embedding)
    full, (cached, embedding) = results[False][0], results[True]
    print("\n2. training epoch, video (R3D-18) and text (MiniLM) encoders frozen; audio, fusion and heads trained")
    print(f"   frozen encoders run every batch:     {full:8.2f} s")
    print(f"   frozen encoders' outputs from cache: {cached:8.3f} s   (computing them once took {embedding:.2f} s)")
    print(f"   ratio: {full / cached:.1f}x (target >= 10)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=48, help="Training clips to generate.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="plait-bench-cache-") as temporary:
        folder, cache_dir = Path(temporary) / "meld", Path(temporary) / "cache"
        started = time.perf_counter()
        write_clips(folder, args.clips)
        print(f"generated {args.clips} clips (3 s, 24 fps, 320x240, 16 kHz audio) in {time.perf_counter() - started:.1f} s; "
              f"torch threads: {torch.get_num_threads()}")
        decoding_vs_cached(folder, cache_dir)
        full_forward_vs_cached_embeddings(folder, cache_dir)


if __name__ == "__main__":
    main()
