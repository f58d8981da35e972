"""The data path across processes: each cell decoded once per world (and once per machine with node-local caches),
frozen backbones' outputs computed once, evaluation shared among the processes with the metrics of one."""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from plait.config import validate
from plait.data.cache import FeatureCache
from plait.data.dataset import Preprocessor
from plait.data.division import Division
from plait.demo.synthetic_captions import make_flickr30k
from tests.conftest import run_cli, tabular_config
from tests.test_captioning import caption_config
from tests.test_cache import config_dict, write_images


# ── the division, with threads standing in for processes ─────────────────────────────────────────────────
def thread_world(size: int) -> list:
    """An all-gather among `size` threads: `exchanges[rank](value)` returns every thread's value, in rank order."""
    barrier, slots = threading.Barrier(size, timeout=60), [None] * size

    def exchange_of(rank):
        def exchange(value):
            slots[rank] = value
            barrier.wait()
            values = list(slots)
            barrier.wait()  # nobody writes the next round's value before everyone has read this one
            return values
        return exchange
    return [exchange_of(rank) for rank in range(size)]


@pytest.fixture
def images_with_a_bad_one(tmp_path):
    table = write_images(tmp_path / "images", count=24)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    table.loc[5, "photo"] = "images/broken.png"
    table.loc[7, "photo"] = "images/3.png"  # the same file in two rows: one cell
    return table


def encode_in_threads(tmp_path, table, divisions: list[Division], folders: list[Path]):
    """Each thread encodes the table through its own cache object, counting every decode of the photo input."""
    decodes, lock = Counter(), threading.Lock()
    results = [None] * len(divisions)

    def work(rank):
        preprocessor = Preprocessor(validate(config_dict(on_bad_sample="skip")), str(tmp_path))
        preprocessor.fit(table)
        photo = preprocessor.features["photo"]
        decode = photo.encode

        def counted(value):
            with lock:
                decodes[value] += 1
            return decode(value)
        photo.encode = counted
        results[rank] = preprocessor.encode(table, "train", "t.csv", "skip", cache=FeatureCache(folders[rank]),
                                            workers=2, division=divisions[rank])

    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(len(divisions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(result is not None for result in results), "a thread failed"
    return decodes, results


def same_batches(first, second) -> bool:
    indices = torch.arange(len(first))
    ours, theirs = first.batch(indices), second.batch(indices)
    return all(torch.equal(ours[kind][name][field], theirs[kind][name][field])
               for kind in ours for name in ours[kind] for field in ours[kind][name])


def test_processes_sharing_a_cache_decode_each_cell_once_bad_ones_too(tmp_path, images_with_a_bad_one, monkeypatch):
    from plait.data import shared_split

    monkeypatch.setattr(shared_split, "INLINE_BYTES", 0)  # every in-memory tensor goes through a mapped file
    encodings = []
    encode_rows = Preprocessor._encode_rows
    monkeypatch.setattr(Preprocessor, "_encode_rows", lambda self, *args: encodings.append(1) or encode_rows(self, *args))
    table = images_with_a_bad_one
    exchanges = thread_world(2)
    divisions = [Division(rank, 2, 0, exchanges[rank]) for rank in range(2)]
    decodes, (first, second) = encode_in_threads(tmp_path, table, divisions, [tmp_path / "cache"] * 2)
    assert set(decodes) == set(table["photo"]) and set(decodes.values()) == {1}  # the broken file too
    assert len(encodings) == 1  # the rows were encoded by the first process; the other mapped its columns
    assert not list((tmp_path / "cache").glob(".encoded-*"))  # the files are gone, the maps stay
    _, (alone,) = encode_in_threads(tmp_path, table, [Division()], [tmp_path / "cache"])
    for split in (first, second):
        assert split.rows == alone.rows and 5 not in split.rows and 7 in split.rows
        assert [s.reason for s in split.skipped] == [s.reason for s in alone.skipped] and len(split.skipped) == 1
        assert split.inputs["photo"].keys == alone.inputs["photo"].keys
        assert same_batches(split, alone)


def test_node_local_caches_decode_each_cell_once_per_machine(tmp_path, images_with_a_bad_one):
    """Two groups of one (two machines, each with its own cache folder): each decodes every cell, once."""
    table = images_with_a_bad_one
    exchanges = thread_world(2)
    divisions = [Division(0, 1, rank, exchanges[rank]) for rank in range(2)]
    decodes, (first, second) = encode_in_threads(tmp_path, table, divisions, [tmp_path / "a", tmp_path / "b"])
    assert set(decodes.values()) == {2}
    assert first.rows == second.rows and first.inputs["photo"].keys == second.inputs["photo"].keys
    assert same_batches(first, second)


def test_a_frozen_encoder_outside_the_cache_embeds_a_share_of_the_rows_in_each_process(tabular):
    from plait.models.frozen import embed_frozen_inputs
    from plait.runs import Run

    table, _ = tabular
    raw = tabular_config(table)
    raw["inputs"][2]["encoder"] = {"name": "bag", "dim": 8, "freeze": True}
    raw["data"]["cache"] = False
    run = Run.start(validate(raw))
    run.preprocessor.fit(run.data.rows("train"))
    encoded = run.encode(["train"])["train"]  # before the model is built, which would embed it at once
    run.build_model()
    embedded_rows = []
    run.model.encoders["note"].register_forward_hook(lambda module, args, output: embedded_rows.append(len(output)))

    def embedded(division):
        splits = {"train": copy.copy(encoded)}
        splits["train"].inputs = dict(encoded.inputs)
        embed_frozen_inputs(run.model, run.features, run.config, splits, None, run.device, division)
        return splits["train"].inputs["note"]

    alone = embedded(Division())
    embedded_rows.clear()
    exchanges, shared = thread_world(2), [None, None]
    threads = [threading.Thread(target=lambda r=rank: shared.__setitem__(r, embedded(Division(r, 2, 0, exchanges[r]))))
               for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(embedded_rows) == len(alone["embedding"])  # each row once, by one of the two
    for found in shared:
        assert found.keys() == alone.keys() and all(torch.equal(found[key], alone[key]) for key in alone)


# ── torchrun, two processes on gloo ─────────────────────────────────────────────────────────────────────────
@pytest.fixture
def media_config(tmp_path):
    """48 rows: a photo, a note through a frozen encoder (both cached, and the encoder's output), a number; a label and an
    embedding searched among the training rows. One photo is broken (skipped), one shared by two rows."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    rows = 48
    labels = rng.choice(["a", "b"], rows)
    for i in range(rows):
        pixels = rng.integers(0, 120, (20, 20, 3)) + (120 if labels[i] == "a" else 0)
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    photos = [f"images/{i}.png" for i in range(rows)]
    photos[4], photos[9] = "images/broken.png", "images/8.png"
    table = pd.DataFrame({"photo": photos, "note": [f"note {i % 13} {label}" for i, label in enumerate(labels)],
                          "x": rng.normal(size=rows).round(4), "label": labels,
                          "split": ["train"] * 32 + ["validation"] * 8 + ["test"] * 8})
    table.to_csv(tmp_path / "table.csv", index=False)
    raw = {
        "name": "media",
        "data": {"table": str(tmp_path / "table.csv"), "on_bad_sample": "skip"},
        "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 16,
                    "encoder": {"name": "cnn", "channels": [4, 8]}},
                   {"name": "note", "type": "text", "column": "note", "cache": True,
                    "encoder": {"name": "bag", "dim": 8, "freeze": True}},
                   {"name": "x", "type": "numeric", "column": "x"}],
        "outputs": [{"name": "label", "type": "category", "column": "label"},
                    {"name": "kind", "type": "embedding", "column": "label", "dim": 8, "gallery": "train"}],
        "fusion": {"name": "concat", "hidden": [16], "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 3, "seed": 0, "threads": 1,
                  "checkpoint_every_steps": None},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, table


def cache_counts(cache: Path) -> dict[str, dict[str, int]]:
    """Per namespace kind (`image`, `embedding`): cells stored (shard keys, duplicates included) and cells decoded
    (misses over every process's recorded sessions)."""
    counts: dict[str, dict[str, int]] = {}
    for keys_file in cache.glob("*/shard-*/keys.json"):
        kind = counts.setdefault(keys_file.parent.parent.name.split("-")[0], {"stored": 0, "decoded": 0})
        kind["stored"] += len(json.loads(keys_file.read_text())["keys"])
    for stats in cache.glob("stats/*.json"):
        for namespace, count in json.loads(stats.read_text()).items():
            counts.setdefault(namespace.split("-")[0], {"stored": 0, "decoded": 0})["decoded"] += count["misses"]
    return counts


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "last" / "model.safetensors")


@pytest.mark.slow
def test_two_processes_decode_once_train_as_on_a_warm_cache_and_evaluate_as_one(media_config, tmp_path):
    config, table = media_config
    good_photos = table["photo"].nunique() - 1  # the broken one is never stored
    notes = table["note"].nunique()

    run_cli("cache", "build", config, "--set", f"data.cache_dir={tmp_path / 'warm'}")  # one process
    run_cli("train", config, "--nproc", "2", "--set", f"data.cache_dir={tmp_path / 'warm'}", "--run-dir", tmp_path / "warm-run")
    run_cli("train", config, "--nproc", "2", "--set", f"data.cache_dir={tmp_path / 'cold'}", "--run-dir", tmp_path / "run")

    counts = cache_counts(tmp_path / "cold")
    assert counts["image"] == {"stored": good_photos, "decoded": good_photos}  # each photo once, by one of the two
    assert counts["embedding"] == {"stored": notes, "decoded": notes}  # each note through the frozen encoder once
    assert cache_counts(tmp_path / "warm")["image"]["decoded"] == good_photos  # cache build; training only hit
    warm, cold = weights(tmp_path / "warm-run"), weights(tmp_path / "run")
    assert warm.keys() == cold.keys() and all(torch.equal(warm[name], cold[name]) for name in warm)
    skipped = [json.loads(line) for line in (tmp_path / "run" / "skipped.jsonl").read_text().splitlines()]
    assert [(row["split"], row["row"]) for row in skipped] == [("train", 4)]

    written = json.loads((tmp_path / "run" / "evaluation" / "test.json").read_text())  # shared by the two processes
    alone = json.loads(run_cli("evaluate", tmp_path / "run", "--split", "test", "--json").stdout)
    together = json.loads(run_cli("evaluate", tmp_path / "run", "--split", "test", "--json", "--nproc", "2").stdout)
    assert "kind.vs_train.precision_at_1" in written
    assert written == alone == together  # to the bit, retrieval among the training rows included

    run_cli("cache", "build", config, "--nproc", "2", "--set", f"data.cache_dir={tmp_path / 'built'}")
    assert cache_counts(tmp_path / "built")["image"] == {"stored": good_photos, "decoded": good_photos}


@pytest.mark.slow
def test_captions_evaluated_by_two_processes_equal_one(tmp_path):
    flickr = make_flickr30k(tmp_path / "flickr", images=30, size=32)
    raw = caption_config(flickr, epochs=1, eval_batch_size=3)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    run_cli("train", tmp_path / "config.yaml", "--run-dir", tmp_path / "run")
    alone = json.loads(run_cli("evaluate", tmp_path / "run", "--split", "test", "--json").stdout)
    together = json.loads(run_cli("evaluate", tmp_path / "run", "--split", "test", "--json", "--nproc", "2").stdout)
    assert "caption.cider" in alone and alone == together


def test_evaluate_refuses_floors_across_processes(tmp_path):
    result = run_cli("evaluate", tmp_path, "--nproc", "2", "--baseline", check=False)
    assert result.returncode != 0 and "--baseline and --untrained are evaluated in one process" in result.stderr
