"""`plait init`: each column's type decided from its values in every layout plait reads, and a config that validates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from plait.config import validate
from plait.demo.synthetic import make_demo
from plait.demo.synthetic_captions import make_flickr30k
from plait.demo.synthetic_meld import make_meld
from plait.demo.synthetic_retrieval import make_retrieval
from plait.demo.synthetic_sequences import make_spectra
from plait.errors import PlaitError
from plait.starter import describe_table
from tests.conftest import run_cli
from tests.test_s3 import aws, bucket, moto  # noqa: F401  (the S3 server and credentials fixtures)


def described(table, *targets, binned=()) -> dict:
    """The config for `table`, with `types` (column → input type), `tasks` (column → output type) and `left_out`."""
    text = describe_table(str(table), list(targets), list(binned), gpu=False)
    raw = yaml.safe_load(text)
    validate(raw, "test")
    raw["types"] = {entry["column"] if entry["type"] != "audio" or "source" not in entry else entry["column"] + "+audio":
                    entry["type"] for entry in raw["inputs"]}
    raw["tasks"] = {entry["column"]: entry["type"] for entry in raw["outputs"]}
    raw["left_out"] = [line.split(":")[0].strip("# ").strip() for line in text.split("# left out:\n")[-1].splitlines()
                       if line.startswith("#   ")]
    raw["text"] = text
    return raw


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_the_demo_table_in_each_file_format(tmp_path, suffix):
    table = pd.read_csv(make_demo(tmp_path / "demo", rows=120))
    path = tmp_path / "demo" / f"table.{suffix}"
    {"csv": lambda: table.to_csv(path, index=False), "jsonl": lambda: table.to_json(path, orient="records", lines=True),
     "parquet": lambda: table.to_parquet(path)}[suffix]()
    config = described(path, "label")
    assert config["types"] == {"photo": "image", "note": "text", "reading": "numeric"}
    assert config["tasks"] == {"label": "category"}
    assert config["data"]["split"] == {"column": "split"}
    assert "3 of 3 probed open as images" in config["text"]  # the evidence is written beside the decision


def test_meld_clips_give_a_video_and_its_sound_track_and_ids_and_times_are_left_out(tmp_path):
    config = described(make_meld(tmp_path / "meld", dialogues=(6, 2, 2), size=24), "Emotion", "Sentiment")
    assert config["data"]["format"] == "meld"
    assert config["types"] == {"Utterance": "text", "Speaker": "category", "Season": "category", "Episode": "numeric",
                               "clip": "video", "clip+audio": "audio"}
    assert config["tasks"] == {"Emotion": "category", "Sentiment": "category"}
    assert set(config["left_out"]) == {"Sr No.", "Dialogue_ID", "Utterance_ID", "StartTime", "EndTime"}
    video = next(entry for entry in config["inputs"] if entry["type"] == "video")
    assert video["encoder"]["name"] == "cnn3d"  # sized for a CPU


def test_flickr_captions_become_a_caption_output_split_by_image(tmp_path):
    config = described(make_flickr30k(tmp_path / "flickr", images=12, size=32), "caption")
    assert config["types"] == {"image": "image"} and config["tasks"] == {"caption": "caption"}
    assert config["data"]["format"] == "flickr30k" and config["data"]["split"]["group"] == "image"
    assert {"image_id", "caption_number"} <= set(config["left_out"])


def test_npy_columns_give_a_sequence_and_a_binned_target_when_asked(tmp_path):
    folder = make_spectra(tmp_path, samples=60, length=128)
    config = described(folder, "peak1_position", "peak1_width", binned=["peak1_position"])
    assert config["data"]["format"] == "npy" and config["types"]["spectrum"] == "sequence"
    assert config["tasks"] == {"peak1_position": "binned", "peak1_width": "number"}


def test_the_retrieval_layout_reads_photos_sounds_and_descriptions(tmp_path):
    config = described(make_retrieval(tmp_path / "retrieval", rows=120), "label")
    assert config["types"] == {"photo": "image", "sound": "audio", "description": "text"}


def test_ids_constants_features_and_whole_number_targets(tmp_path):
    rng = np.random.default_rng(0)
    rows = 200
    table = pd.DataFrame({
        "row": np.arange(rows), "site": ["A"] * rows, "features": [rng.normal(size=16) for _ in range(rows)],
        "wave": [np.sin(np.linspace(0, 6, 64) + phase) for phase in rng.uniform(0, 3, rows)],
        "grade": rng.integers(1, 6, rows), "price": rng.normal(100, 20, rows).round(2),
        "photo": ["missing/%d.png" % i for i in range(rows)],
    })
    table.to_parquet(tmp_path / "t.parquet")
    config = described(tmp_path / "t.parquet", "grade", "price")
    assert config["types"] == {"features": "vector", "wave": "sequence"}
    assert config["tasks"] == {"grade": "category", "price": "number"}
    assert config["left_out"] == ["row", "site", "photo"]  # increasing ids, one value, files that are not there
    assert "0 of 3 probed open as images; 3 not found" in config["text"]
    assert config["data"]["split"]["ratios"] == [0.8, 0.1, 0.1]


def test_errors_name_the_problem(tmp_path):
    table = make_demo(tmp_path / "demo", rows=40)
    with pytest.raises(PlaitError, match="--target lable: no such column .*label"):
        describe_table(str(table), ["lable"])
    with pytest.raises(PlaitError, match="--binned note: the column holds text"):
        describe_table(str(table), ["note"], ["note"])
    with pytest.raises(PlaitError, match="give the column to predict"):
        describe_table(str(table), [])
    pd.DataFrame({"y": [1, 2, 3] * 10}).to_csv(tmp_path / "only.csv", index=False)
    with pytest.raises(PlaitError, match="no column is left to learn from"):
        describe_table(str(tmp_path / "only.csv"), ["y"])
    with pytest.raises(PlaitError, match="no such file or folder"):
        describe_table(str(tmp_path / "nothing.csv"), ["y"])


def test_the_command_writes_a_config_that_validates_and_keeps_an_existing_one(tmp_path):
    table = make_demo(tmp_path / "demo", rows=60)
    output = tmp_path / "config.yaml"
    result = run_cli("init", table, "--target", "label", "--output", output)
    assert f"wrote {output}" in result.stdout
    assert "OK" in run_cli("validate", output).stdout
    again = run_cli("init", table, "--target", "label", "--output", output, check=False)
    assert again.returncode != 0 and "exists; pass --force" in again.stderr
    assert run_cli("init", table, "--target", "label", "--output", output, "--force").returncode == 0


@pytest.mark.slow
def test_train_on_a_table_with_no_config_reaches_the_demos_accuracy(tmp_path):
    table = make_demo(tmp_path / "demo", rows=600)
    run_cli("train", table, "--target", "label", "--set", "train.log_every_steps=7", "--run-dir", tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "evaluation" / "test.json").read_text())
    assert metrics["label.accuracy"] >= 0.9, metrics
    inferred = (tmp_path / "run" / "inferred.yaml").read_text()
    assert "# photo: 600 paths to image files" in inferred  # the decisions and their evidence, kept with the run
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["log_every_steps"] == 7  # --set applied


def test_train_with_a_target_refuses_what_goes_with_a_config(tmp_path):
    result = run_cli("train", tmp_path / "t.csv", "--target", "y", "--folds", "3", check=False)
    assert result.returncode != 0 and "--target trains a new run from a table" in result.stderr
    result = run_cli("train", tmp_path / "c.yaml", "--binned", "y", check=False)
    assert result.returncode != 0 and "--binned goes with --target" in result.stderr


def test_a_table_and_its_photos_on_s3(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_CACHE_DIR", str(tmp_path / "cache"))
    name, client = bucket
    table = pd.read_csv(make_demo(tmp_path / "demo", rows=40))
    for photo in table["photo"]:
        client.put_object(Bucket=name, Key=photo, Body=(tmp_path / "demo" / photo).read_bytes())
    table["photo"] = [f"s3://{name}/{photo}" for photo in table["photo"]]
    client.put_object(Bucket=name, Key="demo.csv", Body=table.to_csv(index=False).encode())
    config = described(f"s3://{name}/demo.csv", "label")
    assert config["data"]["table"] == f"s3://{name}/demo.csv"
    assert config["types"]["photo"] == "image" and "3 of 3 probed open as images" in config["text"]
