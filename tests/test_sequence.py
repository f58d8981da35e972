"""The `sequence` feature: cells from arrays and array files, per-channel statistics fitted in one pass, cropping
and layouts, padding per list of cells, and the batch its encoders read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from plait.data.cache import FeatureCache
from plait.data.features.sequence import SequenceFeature, SequenceSettings
from plait.errors import BadSample, MissingValue


def feature(tmp_path=".", **settings) -> SequenceFeature:
    return SequenceFeature(SequenceSettings(name="trace", column="trace", **settings), str(tmp_path))


def series(rows: int = 8, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(10.0 * np.arange(channels), 1 + np.arange(channels), size=(int(n), channels))
            for n in rng.integers(2, 30, rows)]


def test_fit_gives_per_channel_statistics_of_every_training_step(tmp_path):
    cells = series()
    np.save(tmp_path / "a.npy", cells[0])
    np.savez(tmp_path / "b.npz", trace=cells[1], other=np.zeros(3))
    (tmp_path / "c.pkl").write_bytes(pickle.dumps({"trace": cells[2]}))
    values = ["a.npy", "b.npz", "c.pkl", cells[3].tolist(), *cells[4:]]
    every_step = np.concatenate(cells)
    standard = feature(tmp_path, member="trace")
    standard.fit(values)
    assert standard.channels == 3 and standard.max_length == max(len(c) for c in cells)
    assert np.allclose(standard.offset, every_step.mean(0)) and np.allclose(standard.scale, every_step.std(0))
    minmax = feature(tmp_path, member="trace", scaling="minmax")
    minmax.fit(values)
    assert np.allclose(minmax.offset, every_step.min(0)) and np.allclose(minmax.scale, np.ptp(every_step, 0))
    restored = feature(tmp_path, member="trace")
    restored.load_state_dict(standard.state_dict())
    assert restored.state_dict() == standard.state_dict()


def test_fit_skips_unusable_cells_and_a_constant_channel_keeps_scale_one():
    cells = [np.stack([np.full(5, 4.0), np.arange(5.0)], 1), np.stack([np.full(3, 4.0), np.arange(3.0)], 1)]
    odd = [np.full((4, 2), np.nan), np.ones((4, 5)), np.zeros((0, 2)), "missing.npy"]
    trace = feature()
    trace.fit(cells + odd)
    assert trace.channels == 2 and trace.offset[0] == 4.0 and trace.scale[0] == 1.0
    with pytest.raises(BadSample, match="no readable"):
        feature().fit(odd[:1])


@pytest.mark.parametrize("crop, kept", [("start", [0, 1, 2, 3]), ("end", [6, 7, 8, 9]), ("center", [3, 4, 5, 6])])
def test_max_length_crops_the_chosen_end(crop, kept):
    trace = feature(max_length=4, crop=crop)
    trace.fit([np.arange(10.0), np.arange(3.0)])
    assert trace.max_length == 4
    cell = trace.encode(np.arange(10.0))
    assert cell["value"][:, 0].tolist() == kept and cell["length"].item() == 4 and cell["value"].dtype == torch.float32
    assert trace.encode(np.arange(2.0))["length"].item() == 2  # shorter ones are not padded
    short = feature(max_length=50)
    short.fit([np.arange(10.0)])
    assert short.max_length == 10  # the longest training sequence, below the setting


def test_layouts_and_one_channel_sequences():
    channels_first = np.arange(12.0).reshape(3, 4)  # 3 channels, 4 steps
    trace = feature(layout="channels_length")
    trace.fit([channels_first])
    assert trace.channels == 3 and trace.encode(channels_first)["value"].tolist() == channels_first.T.tolist()
    single = feature()
    single.fit([np.arange(5)])
    assert single.channels == 1 and single.encode(np.arange(5))["value"].shape == (5, 1)


def test_stack_pads_to_the_longest_cell_of_the_list():
    trace = feature()
    trace.fit(series(channels=2))
    cells = [trace.encode(np.ones((n, 2))) for n in (3, 7, 5)]
    batch = trace.stack([cells[0], None, cells[2]])
    assert batch["value"].shape == (3, 5, 2)  # the longest of these three rows, not of the data set
    assert batch["length"].tolist() == [3, 0, 5] and batch["present"].tolist() == [True, False, True]
    assert batch["value"][0, 3:].abs().sum() == 0 and batch["value"][1].abs().sum() == 0
    nothing = trace.stack([None, None])
    assert nothing["value"].shape == (2, 1, 2) and nothing["length"].tolist() == [0, 0]
    assert trace.empty()["value"].shape == (1, 2) and trace.empty()["length"].item() == 0


def test_prepare_trims_to_the_batch_scales_real_steps_and_masks():
    trace = feature()
    trace.fit([np.full((4, 2), 3.0) + np.arange(2), np.full((2, 2), 5.0) + np.arange(2)])
    mean, std = np.array(trace.offset), np.array(trace.scale)
    split = trace.stack([trace.encode(np.ones((n, 2))) for n in (9, 2, 3)] + [None])  # padded to 9 for the split
    batch = trace.prepare({key: tensor[[1, 2, 3]] for key, tensor in split.items()}, training=True)
    assert batch["value"].shape == (3, 3, 2)  # trimmed to the longest row of this batch
    assert batch["mask"].tolist() == [[True, True, False], [True, True, True], [True, False, False]]
    assert batch["length"].tolist() == [2, 3, 1]  # the missing row counts as one (zero) step
    assert torch.allclose(batch["value"][1], torch.tensor((1 - mean) / std, dtype=torch.float32).expand(3, 2))
    assert batch["value"][0, 2].abs().sum() == 0 and batch["value"][2].abs().sum() == 0  # padding stays zero
    assert batch["present"].tolist() == [True, True, False]
    unscaled = feature(scaling="none")
    unscaled.fit([np.full((3, 1), 7.0)])
    assert unscaled.prepare(unscaled.stack([unscaled.encode(np.full((3, 1), 7.0))]), False)["value"].unique().tolist() == [7.0]


def test_bad_cells_say_what_is_wrong(tmp_path):
    trace = feature(tmp_path)
    trace.fit(series(channels=2))
    broken = np.ones((6, 2))
    broken[4, 1] = np.nan
    with pytest.raises(BadSample, match=r"1 values are NaN or infinite .*step 4, channel 1"):
        trace.encode(broken)
    with pytest.raises(BadSample, match="3 channels, but the training data has 2"):
        trace.encode(np.ones((4, 3)))
    with pytest.raises(MissingValue, match="empty"):
        trace.encode(np.zeros((0, 2)))
    with pytest.raises(BadSample, match=r"nope\.npy: file not found"):
        trace.encode("nope.npy")
    with pytest.raises(BadSample, match="not numbers"):
        trace.encode(np.array(["a", "b"]))
    with pytest.raises(BadSample, match=r"shape \[2, 2, 2\]"):
        trace.encode(np.ones((2, 2, 2)))
    np.savez(tmp_path / "two.npz", a=np.ones((3, 2)), b=np.ones((3, 2)))
    with pytest.raises(BadSample, match="holds several arrays .*'a', 'b'.*set `member`"):
        trace.encode("two.npz")
    with pytest.raises(BadSample, match="no array 'c'"):
        feature(tmp_path, member="c").encode("two.npz")
    np.save(tmp_path / "wide.npy", np.ones((4, 3)))
    with pytest.raises(BadSample, match=r"wide\.npy': 3 channels"):
        trace.encode("wide.npy")


def test_fingerprints_follow_content_not_identity(tmp_path):
    trace = feature(tmp_path)
    data = np.arange(40000.0).reshape(20000, 2)
    np.save(tmp_path / "m.npy", data)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    assert trace.fingerprint(mapped[5:]) == trace.fingerprint(data[5:].copy())
    assert trace.fingerprint(data) != trace.fingerprint(data.astype(np.float32))
    changed = data.copy()
    changed[10000, 1] = -1  # the middle: str() of both arrays is the same summary
    assert str(changed) == str(data) and trace.fingerprint(changed) != trace.fingerprint(data)
    assert trace.fingerprint("m.npy") == trace.fingerprint(str(tmp_path / "m.npy"))


def test_cached_cells_are_padded_per_batch(tmp_path):
    trace = feature()
    cells = [np.arange(n * 2.0).reshape(n, 2) for n in (3, 600, 4, 2)]
    cells.append(cells[1].copy())
    cells[4][300, 0] = -1.0
    assert str(cells[4]) == str(cells[1])  # the same summary, so a cache keyed by str() would mix them up
    trace.fit(cells)
    cached = FeatureCache(tmp_path / "cache").wrap(trace)
    keys = [cached.encode(cell) for cell in cells]
    assert len(set(keys)) == 5
    split = cached.stack(keys + [None])
    batch = split.select(torch.tensor([0, 2, 5]))
    assert batch["value"].shape == (3, 4, 2) and batch["length"].tolist() == [3, 4, 0]
    assert batch["value"][1].tolist() == cells[2].tolist()
    assert split.select(torch.tensor([4]))["value"][0, 300, 0].item() == -1.0


def test_trains_end_to_end_from_a_pickle_of_variable_length_rows(tmp_path):
    """Through the real entry point: a pickled table, cached cells padded per batch, the `lstm` encoder."""
    import yaml

    from plait.api import train

    rng = np.random.default_rng(0)
    rows = []
    for index in range(96):
        level = rng.normal()
        steps = level + rng.normal(0, 0.1, size=(int(rng.integers(5, 40)), 2))
        rows.append({"trace": steps, "level": float(level), "split": ["train", "train", "validation", "test"][index % 4]})
    (tmp_path / "rows.pkl").write_bytes(pickle.dumps(rows))
    config = {
        "name": "sequence",
        "data": {"table": str(tmp_path / "rows.pkl")},
        "inputs": [{"name": "trace", "type": "sequence", "column": "trace", "max_length": 32, "encoder": {"name": "lstm", "hidden": 8}}],
        "outputs": [{"name": "level", "type": "number", "column": "level"}],
        "train": {"epochs": 2, "batch_size": 16, "seed": 0, "threads": 1},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = train(tmp_path / "config.yaml", run_dir=tmp_path / "run")
    assert (run / "checkpoints" / "last").is_dir()
