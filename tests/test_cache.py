"""The preprocessing cache: hits, misses, invalidation by content and by settings, atomic shards, frozen embeddings."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import run_cli
from plait.api import evaluate
from plait.config import ConfigError, validate
from plait.data.cache import CachedCells, FeatureCache, ShardStore
from plait.data.cache_folder import cache_folder, remove_abandoned, summarise
from plait.data.dataset import Preprocessor
from plait.errors import PlaitError
from plait.evaluation.evaluate import evaluate_split
from plait.runs import Run
from plait.runs.setup import encode_split, read_data


def write_images(folder, count=12, size=24):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return pd.DataFrame({
        "photo": [f"images/{i}.png" for i in range(count)],
        "note": [f"row {i} says {'yes' if i % 2 else 'no'}" for i in range(count)],
        "label": ["a" if i % 2 else "b" for i in range(count)],
    })


def config_dict(table="t.csv", image=None, text=None, **data):
    return {
        "data": {"table": table, **data},
        "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 16, **(image or {})},
                   {"name": "note", "type": "text", "column": "note", **(text or {})}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
    }


def encode(tmp_path, table, cache, **settings):
    preprocessor = Preprocessor(validate(config_dict(**settings)), str(tmp_path))
    preprocessor.fit(table)
    return preprocessor.encode(table, "train", "t.csv", cache=cache), preprocessor


def test_first_encode_misses_second_hits_and_both_equal_the_uncached_values(tmp_path):
    table = write_images(tmp_path / "images")
    plain, _ = encode(tmp_path, table, None)
    first_cache = FeatureCache(tmp_path / "cache")
    first, _ = encode(tmp_path, table, first_cache)
    assert isinstance(first.inputs["photo"], CachedCells)
    assert not isinstance(first.inputs["note"], CachedCells)  # text is not cached unless asked
    second_cache = FeatureCache(tmp_path / "cache")
    second, _ = encode(tmp_path, table, second_cache)
    [row] = summarise(tmp_path / "cache")
    assert (row["cells"], row["hits"], row["misses"]) == (12, 12, 12)
    indices = torch.tensor([3, 0, 11])
    for split in (first, second):
        batch = split.batch(indices)
        assert torch.equal(batch["inputs"]["photo"]["value"], plain.batch(indices)["inputs"]["photo"]["value"])
        assert torch.equal(batch["targets"]["label"]["value"], plain.batch(indices)["targets"]["label"]["value"])


def test_an_edited_file_misses_alone_and_a_settings_change_starts_a_new_namespace(tmp_path):
    table = write_images(tmp_path / "images")
    encode(tmp_path, table, FeatureCache(tmp_path / "cache"))
    Image.fromarray(np.zeros((24, 28, 3), dtype=np.uint8)).save(tmp_path / "images" / "5.png")
    cache = FeatureCache(tmp_path / "cache")
    split, _ = encode(tmp_path, table, cache)
    [stats] = cache.stats.values()
    assert (stats.hits, stats.misses) == (0, 0)  # saved and reset at the end of the encode
    [row] = summarise(tmp_path / "cache")
    assert (row["hits"], row["misses"]) == (11, 12 + 1)
    assert split.batch(torch.tensor([5]))["inputs"]["photo"]["value"].sum() == 0  # the new content, not the old
    encode(tmp_path, table, FeatureCache(tmp_path / "cache"), image={"size": 8})
    rows = summarise(tmp_path / "cache")
    assert len(rows) == 2 and sorted(r["misses"] for r in rows) == [12, 13]


def test_text_can_be_cached_and_ragged_cells_round_trip(tmp_path):
    table = write_images(tmp_path / "images")
    plain, _ = encode(tmp_path, table, None)
    cached, _ = encode(tmp_path, table, FeatureCache(tmp_path / "cache"), text={"cache": True})
    assert isinstance(cached.inputs["note"], CachedCells)
    indices = torch.arange(12)
    for key in ("ids", "attention_mask", "present"):
        assert torch.equal(cached.batch(indices)["inputs"]["note"][key], plain.batch(indices)["inputs"]["note"][key])


def test_a_missing_file_follows_the_bad_sample_policy_through_the_cache(tmp_path):
    table = write_images(tmp_path / "images")
    (tmp_path / "images" / "2.png").unlink()
    preprocessor = Preprocessor(validate(config_dict()), str(tmp_path))
    preprocessor.fit(table)
    with pytest.raises(PlaitError, match=r"row 2, column 'photo': cannot read image .*2\.png': no such file"):
        preprocessor.encode(table, "train", "t.csv", cache=FeatureCache(tmp_path / "cache"))
    split = preprocessor.encode(table, "train", "t.csv", on_bad_sample="skip", cache=FeatureCache(tmp_path / "cache"))
    assert len(split) == 11 and [s.row for s in split.skipped] == [2]


def store_cells(folder, cells):
    store = ShardStore(folder, {})
    for key, cell in cells:
        store.add(key, cell)
    store.flush()


def test_a_kill_during_a_shard_write_leaves_no_visible_shard_and_the_next_writer_succeeds(tmp_path):
    folder = tmp_path / "cache" / "ns"
    script = textwrap.dedent(f"""
        import os, signal, torch
        import plait.data.cache as cache
        store = cache.ShardStore({str(folder)!r}, {{}})
        for i in range(5):
            store.add(f"k{{i}}", {{"value": torch.full((3,), i), "length": torch.tensor(i)}})
        cache.os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # die with every file written but one step short
        store.flush()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9
    assert list(folder.glob(".tmp-shard-*"))  # the half-done work is there...
    store = ShardStore(folder, {})
    assert store.index == {}  # ...but no reader sees it
    store_cells(folder, [(f"k{i}", {"value": torch.full((3,), i), "length": torch.tensor(i)}) for i in range(5)])
    store = ShardStore(folder, {})
    assert torch.equal(store.read("k4")["value"], torch.full((3,), 4)) and int(store.read("k4")["length"]) == 4
    assert remove_abandoned(tmp_path / "cache", older_than_s=0) == 1
    assert not list(folder.glob(".tmp-shard-*"))


def _write_same_cells(folder):
    store_cells(folder, [(f"k{i}", torch.arange(1000) * i) for i in range(300)])


def test_concurrent_writers_of_the_same_cells_both_finish_and_readers_see_whole_values(tmp_path):
    folder = tmp_path / "ns"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_same_cells, args=(folder,)) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [w.exitcode for w in writers] == [0, 0]
    store = ShardStore(folder, {})
    assert len(store.index) == 300 and len(store.shards) == 4  # 2 writers × 2 shards of at most 256 cells
    for i in (0, 255, 256, 299):
        assert torch.equal(store.read(f"k{i}"), torch.arange(1000) * i)


def frozen_config(tmp_path, table_path, **encoder):
    return {
        "data": {"table": str(table_path), "split": {"ratios": [0.6, 0.2, 0.2]}},
        "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 16,
                    "encoder": {"name": "cnn", "freeze": True, "cache_embeddings": True, **encoder}},
                   {"name": "note", "type": "text", "column": "note"}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 2, "batch_size": 4},
    }


def test_frozen_embeddings_are_computed_once_and_equal_the_encoder_output(tmp_path):
    table = write_images(tmp_path / "images", count=20)
    table.to_csv(tmp_path / "t.csv", index=False)
    config = tmp_path / "frozen.yaml"
    config.write_text(yaml.safe_dump(frozen_config(tmp_path, tmp_path / "t.csv")))
    run_cli("train", config, "--run-dir", tmp_path / "run1")
    rows = {r["namespace"].split("-")[0]: r for r in summarise(cache_folder())}
    assert rows["embedding"]["cells"] == 20 and rows["embedding"]["misses"] == 20
    run_cli("train", config, "--run-dir", tmp_path / "run2")
    rows = {r["namespace"].split("-")[0]: r for r in summarise(cache_folder())}
    assert rows["embedding"]["hits"] == 20 and rows["embedding"]["misses"] == 20  # the second run never ran the CNN
    # the cached embedding is what the frozen encoder computes: evaluating with the full model gives the same loss
    with_cache = evaluate(tmp_path / "run2", "test")
    run = Run.load(tmp_path / "run2")
    full = encode_split(read_data(run.config, run.preprocessor), run.preprocessor, "test", run.config)
    without_cache, _ = evaluate_split(run.model, run.preprocessor.features, run.preprocessor.tasks, full, 4, run.device)
    assert with_cache["loss"] == pytest.approx(without_cache["loss"], rel=1e-5)


def test_cache_embeddings_needs_a_frozen_encoder_and_no_augmentation(tmp_path):
    with pytest.raises(ConfigError, match="cache_embeddings needs freeze: true"):
        validate(frozen_config(tmp_path, "t.csv", freeze=False))
    augmented = frozen_config(tmp_path, "t.csv")
    augmented["inputs"][0]["augment"] = {"hflip": 0.5}
    with pytest.raises(ConfigError, match="cannot follow random augmentation"):
        validate(augmented)


def test_cache_build_then_info_through_the_cli(tmp_path):
    table = write_images(tmp_path / "images", count=20)
    table.to_csv(tmp_path / "t.csv", index=False)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**config_dict(str(tmp_path / "t.csv"), split={"ratios": [0.6, 0.2, 0.2]})}))
    folder = tmp_path / "my-cache"
    built = run_cli("cache", "build", config, "--set", f"data.cache_dir={folder}")
    assert "image-" in built.stdout
    run_cli("cache", "build", config, "--set", f"data.cache_dir={folder}")
    info = json.loads(run_cli("cache", "info", "--dir", folder, "--json").stdout)
    [row] = info["namespaces"]
    assert (row["cells"], row["hits"], row["misses"], row["hit_rate"]) == (20, 20, 20, 0.5)
    assert "50.0%" in run_cli("cache", "info", "--dir", folder).stdout
    assert "removed" in run_cli("cache", "clear", "--dir", folder).stdout and not folder.exists()


def test_parallel_decoding_stores_the_same_cells_and_counts_each_once(tmp_path):
    table = write_images(tmp_path / "images")
    (tmp_path / "images" / "4.png").write_bytes(b"not a png")
    preprocessor = Preprocessor(validate(config_dict()), str(tmp_path))
    preprocessor.fit(table)
    plain = preprocessor.encode(table, "train", "t.csv", on_bad_sample="skip")
    threaded = preprocessor.encode(table, "train", "t.csv", on_bad_sample="skip", cache=FeatureCache(tmp_path / "c"), workers=2)
    assert [s.row for s in threaded.skipped] == [4] and "not an image" in threaded.skipped[0].reason
    indices = torch.arange(len(plain))
    assert torch.equal(threaded.batch(indices)["inputs"]["photo"]["value"], plain.batch(indices)["inputs"]["photo"]["value"])
    [row] = summarise(tmp_path / "c")
    assert (row["cells"], row["hits"], row["misses"]) == (11, 0, 11)
