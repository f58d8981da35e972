"""`data.augment.generated`: rare training classes filled up with generated images, validation and test untouched,
the report, the checks on the config, and a training run that uses it; `plait augment generate` drawing such images
from a tiny random diffusion pipeline."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from plait import api
from plait.config import load_config, validate
from plait.data.balancing import add_generated_rows, summary
from plait.data.columns import is_missing
from plait.demo.synthetic_retrieval import class_image, make_generated_images
from plait.errors import PlaitError
from plait.runs.setup import make_preprocessor, read_data
from plait.training.checkpoint import load_state

# training rows per class; validation and test get 2 of each
TRAIN = {"red_circle": 8, "blue_square": 4, "white_bar": 2}
PER_CLASS = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(table, generated folder): red_circle needs nothing, blue_square 2 of its 5 files, white_bar 4 but has 2."""
    folder = tmp_path_factory.mktemp("balancing")
    (folder / "images").mkdir()
    rows, rng = [], np.random.default_rng(0)
    for label, train in TRAIN.items():
        for split in ["train"] * train + ["validation", "test"] * 2:
            photo = f"images/{len(rows):03d}.png"
            class_image(label, rng, 16).save(folder / photo)
            rows.append({"photo": photo, "note": f"a {label.split('_')[1]} seen", "label": label, "split": split})
    pd.DataFrame(rows).to_csv(folder / "table.csv", index=False)
    generated = folder / "generated"
    make_generated_images(generated, ["red_circle", "blue_square"], per_class=5, image_size=16)
    make_generated_images(generated, ["white_bar"], per_class=2, image_size=16)
    (generated / "unicorn").mkdir()  # a folder naming no class
    (generated / "unicorn" / "gen_0000.png").write_bytes((generated / "white_bar" / "gen_0000.png").read_bytes())
    return folder / "table.csv", generated


def config_dict(table, generated, **augment) -> dict:
    return {
        "name": "balanced",
        "data": {"table": str(table), "augment": {"generated": {"folder": str(generated), "per_class": PER_CLASS, **augment}}},
        "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 16, "encoder": {"name": "cnn", "channels": [4]}},
                   {"name": "note", "type": "text", "column": "note", "encoder": {"name": "bag", "dim": 4}}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "fusion": {"name": "concat", "hidden": []},
        "train": {"epochs": 1, "batch_size": 1, "threads": 1, "seed": 0},
    }


def balanced(raw: dict):
    config = validate(raw)
    data = read_data(config, make_preprocessor(config))
    return data, *add_generated_rows(data, config)


def test_rare_training_classes_are_filled_and_held_out_rows_are_untouched(dataset):
    table, generated = dataset
    before, after, report = balanced(config_dict(table, generated))
    for split in ("validation", "test"):
        pd.testing.assert_frame_equal(after.rows(split), before.rows(split))
    counts = after.rows("train")["label"].value_counts().to_dict()
    assert counts == {"red_circle": 8, "blue_square": PER_CLASS, "white_bar": 4}
    assert report["classes"] == {
        "blue_square": {"real": 4, "added": 2, "available": 5, "target": PER_CLASS, "short": 0},
        "red_circle": {"real": 8, "added": 0, "available": 5, "target": PER_CLASS, "short": 0},
        "white_bar": {"real": 2, "added": 2, "available": 2, "target": PER_CLASS, "short": 2},
    }
    assert report["ignored_folders"] == ["unicorn"] and report["added"] == 4
    assert "added 4 to 2 training classes (1 still short of 6 rows)" in summary(report)


def test_generated_rows_hold_the_first_files_and_nothing_else(dataset):
    table, generated = dataset
    before, after, _ = balanced(config_dict(table, generated))
    new = after.table.iloc[len(before.table):]
    assert (after.split_of_row.iloc[len(before.table):] == "train").all()
    assert new["photo"].tolist() == [str((generated / name).resolve()) for name in
                                     ["blue_square/gen_0000.png", "blue_square/gen_0001.png",
                                      "white_bar/gen_0000.png", "white_bar/gen_0001.png"]]
    assert new["label"].tolist() == ["blue_square", "blue_square", "white_bar", "white_bar"]
    assert all(is_missing(v) for column in ("note", "split") for v in new[column])
    again = balanced(config_dict(table, generated))[1]  # a resumed run adds the same rows
    pd.testing.assert_frame_equal(again.table, after.table)


def test_an_input_that_cannot_be_empty_is_named(dataset):
    table, generated = dataset
    raw = config_dict(table, generated)
    raw["inputs"][1]["missing"] = "error"
    with pytest.raises(PlaitError, match=r"input\(s\) note have `missing: error`.*inputs\.note\.missing=mask"):
        balanced(raw)


def test_the_image_input_and_the_label_output_default_or_are_named(dataset):
    table, generated = dataset
    raw = config_dict(table, generated)
    raw["outputs"].insert(0, {"name": "kind", "type": "category", "column": "note"})
    assert balanced(raw)[2]["output"] == "kind"  # the first category output
    assert balanced(config_dict(table, generated, label="label", input="photo"))[2]["output"] == "label"

    two_images = config_dict(table, generated)
    two_images["inputs"][1] = {"name": "copy", "type": "image", "column": "photo", "size": 16}
    with pytest.raises(PlaitError, match="image inputs photo, copy; name the one"):
        balanced(two_images)
    with pytest.raises(PlaitError, match="'note' is not an image input \\(image inputs: photo\\)"):
        balanced(config_dict(table, generated, input="note"))
    no_class = config_dict(table, generated)
    no_class["outputs"] = [{"name": "size", "type": "number", "column": "label"}]
    with pytest.raises(PlaitError, match="no category or embedding output"):
        balanced(no_class)


def test_a_missing_folder_is_an_error_and_a_relative_one_follows_the_config(dataset, tmp_path):
    table, generated = dataset
    with pytest.raises(PlaitError, match="no such folder"):
        balanced(config_dict(table, generated / "nowhere"))
    raw = config_dict(table, "generated")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    assert load_config(tmp_path / "config.yaml").data.augment.generated.folder == str((tmp_path / "generated").resolve())


def test_training_uses_the_generated_rows_and_evaluates_on_the_real_ones(dataset, tmp_path):
    table, generated = dataset
    run_dir = api.train(validate(config_dict(table, generated)), run_dir=tmp_path / "run")
    report = json.loads((run_dir / "augmentation.json").read_text())
    assert report["added"] == 4 and report["classes"]["white_bar"]["short"] == 2
    steps = load_state(run_dir / "checkpoints" / "last")["progress"]["step"]
    assert steps == sum(TRAIN.values()) + 4  # one row per step: the training split grew by the generated rows
    written = json.loads((run_dir / "evaluation" / "test.json").read_text())
    assert written == api.evaluate(run_dir, "test")  # `evaluate` reads the table alone: the same 6 real test rows


def tiny_pipeline(folder):
    """A Stable Diffusion pipeline of random, tiny parts (a 2-level UNet, a 1-level VAE, a 1-layer CLIP text
    encoder with a character vocabulary), saved like a downloaded model."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab[char], vocab[char + "</w>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    vae = AutoencoderKL(block_out_channels=(8,), latent_channels=4, norm_num_groups=4, sample_size=8,
                        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",))
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=40, bos_token_id=0, eos_token_id=1,
                                        pad_token_id=1))
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        tokenizer=CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=40),
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1))
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def test_generate_writes_the_layout_training_reads(tmp_path):
    pytest.importorskip("diffusers")
    import typer
    from typer.testing import CliRunner

    from plait.cli.augment import augment_app
    from plait.data.generate_images import load_pipeline

    cli = typer.Typer()
    cli.add_typer(augment_app, name="augment")  # as `plait` registers it
    pipeline = tiny_pipeline(tmp_path)
    args = ["augment", "generate", "--pipeline", str(pipeline), "--label", "white_bar", "--label", "cyan_diamond", "--count", "3",
            "--steps", "2", "--size", "16", "--seed", "5"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "wrote 6 images" in result.output
    names = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.png"))
    assert names == [f"{label}/gen_{i:04d}.png" for label in ("cyan_diamond", "white_bar") for i in range(3)]
    with Image.open(tmp_path / "a" / "white_bar" / "gen_0002.png") as image:
        assert image.size == (16, 16) and image.mode == "RGB"
    # each image has its own seed: the same images whatever the batching (up to rounding in batched arithmetic)
    CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b"), "--batch-size", "1"])
    pixels = {folder: [np.asarray(Image.open(tmp_path / folder / name), dtype=float) for name in names] for folder in "ab"}
    for first, second in zip(pixels["a"], pixels["b"]):
        assert np.abs(first - second).max() <= 2
    assert np.abs(pixels["a"][0] - pixels["a"][1]).mean() > 10 * np.abs(pixels["a"][0] - pixels["b"][0]).mean()
    with pytest.raises(PlaitError, match="not a diffusers pipeline folder"):
        load_pipeline(tmp_path / "a")


def test_generate_without_diffusers_or_a_pipeline_says_what_to_do(tmp_path, monkeypatch):
    from plait.data.generate_images import generate_images, load_pipeline

    with pytest.raises(PlaitError, match=r"has no \{label\}"):
        generate_images(tmp_path, tmp_path / "out", ["white_bar"], 1, prompt="a photo")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now fails as if it were not installed
    with pytest.raises(PlaitError, match="needs the diffusers package: pip install diffusers"):
        load_pipeline(tmp_path)
