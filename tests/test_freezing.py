"""`freeze: true` freezes an encoder's backbone and trains its `projection`; a frozen backbone's output is computed
once wherever that is exact; the projection block and its `out_dim` shorthand; settings that would train nothing."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from plait import api
from plait.config import ConfigError, validate
from plait.errors import PlaitError
from plait.models.frozen import embedded_inputs, frozen_notes
from plait.models.model import require_trainable
from plait.registry import ENCODERS
from plait.runs.run import Run
from tests.test_cache import write_images


def assert_backbone_frozen_projection_trains(encoder, batch) -> None:
    """After `freeze()`: in a model put in training mode, the backbone stays in eval mode and one optimizer step
    changes the projection's weights and nothing else (batch-norm statistics included)."""
    encoder.freeze()
    torch.nn.Sequential(encoder).train()
    assert encoder.project.training
    assert not any(module.training for name, module in encoder.named_modules() if name and not name.startswith("project"))
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    vector, _ = encoder.encode(batch)
    (vector - 1).square().sum().backward()
    optimizer.step()
    changed = {key for key, value in encoder.state_dict().items() if not torch.equal(before[key], value)}
    assert changed == {"project.0.weight", "project.0.bias"}
    assert all(p.grad is None for p in encoder.backbone_parameters())


def test_out_dim_is_short_for_a_projection_merged_over_the_encoders_default():
    conv1d, hf, cnn = (ENCODERS[name].Config for name in ("conv1d", "hf", "cnn"))
    assert conv1d().projection.model_dump() == {"out_dim": 128, "activation": "relu", "dropout": 0.2}
    assert conv1d(out_dim=64).projection.model_dump() == {"out_dim": 64, "activation": "relu", "dropout": 0.2}
    assert conv1d(projection={"activation": "none"}).projection.model_dump() == {"out_dim": 128, "activation": "none", "dropout": 0.2}
    assert conv1d(out_dim=None).projection is None and cnn().projection is None and hf(path="x").projection is None
    assert hf(path="x", out_dim=32, projection={"dropout": 0.1}).projection.model_dump() == {"out_dim": 32, "activation": "relu", "dropout": 0.1}


def test_projection_mistakes_are_errors_naming_the_key(tmp_path):
    def problem(encoder: dict) -> str:
        config = {"data": {"table": "t.csv"}, "inputs": [{"name": "photo", "type": "image", "column": "photo", "encoder": encoder}],
                  "outputs": [{"name": "label", "type": "category", "column": "label"}]}
        with pytest.raises(ConfigError) as raised:
            validate(config)
        return str(raised.value)

    assert "give out_dim or projection.out_dim, not both" in problem({"name": "cnn", "out_dim": 8, "projection": {"out_dim": 4}})
    assert "inputs.photo.encoder.projection.out_dim: required key is missing" in problem({"name": "cnn", "projection": {"dropout": 0.1}})
    assert "inputs.photo.encoder.projection.activaton: unknown key; did you mean activation?" in problem(
        {"name": "cnn", "projection": {"out_dim": 8, "activaton": "gelu"}})


def test_every_projection_setting_reaches_the_layers():
    photo = validate({"data": {"table": "t.csv"}, "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 16,
                      "encoder": {"name": "cnn", "channels": [4], "projection": {"out_dim": 8, "activation": "gelu", "dropout": 0.3}}}],
                      "outputs": [{"name": "label", "type": "category", "column": "label"}]}).inputs[0]
    from plait.data.features.image import ImageFeature

    feature = ImageFeature(photo)
    feature.channels, feature.size = 3, (16, 16)
    encoder = ENCODERS["cnn"].build(photo.encoder, feature)
    linear, activation, dropout = encoder.project
    assert (linear.in_features, linear.out_features, type(activation).__name__, dropout.p) == (4, 8, "GELU", 0.3)
    assert (encoder.feature_dim, encoder.out_dim) == (4, 8)


def frozen_run_config(table, **encoder) -> dict:
    return {
        "data": {"table": str(table), "split": {"ratios": [0.6, 0.2, 0.2]}},
        "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 16,
                    "encoder": {"name": "cnn", "channels": [4, 8], "freeze": True, "out_dim": 6, **encoder}},
                   {"name": "note", "type": "text", "column": "note", "encoder": {"name": "bag", "dim": 4}}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 2, "batch_size": 4, "threads": 1},
    }


def losses(run) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [value for record in records for key, value in record.items() if key.endswith("loss")]


def train_saying(config: dict, run_dir) -> tuple:
    """The run folder, and what training said on the terminal."""
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        run = api.train(validate(config), run_dir=run_dir)
    return run, said.getvalue()


@pytest.fixture(scope="module")
def frozen_runs(tmp_path_factory):
    """The same frozen-CNN config trained twice: its backbone's outputs cached (the default) and computed every batch;
    each run's folder and what training said."""
    folder = tmp_path_factory.mktemp("frozen")
    write_images(folder / "images", count=20).to_csv(folder / "t.csv", index=False)
    return (train_saying(frozen_run_config(folder / "t.csv"), folder / "cached"),
            train_saying(frozen_run_config(folder / "t.csv", cache_embeddings=False), folder / "uncached"))


def test_a_frozen_encoder_trains_its_projection_and_not_its_backbone_cached_or_not(frozen_runs):
    for run, _ in frozen_runs:
        trained = Run.load(run).model.encoders["photo"]
        fresh = Run.load(run)
        fresh.reset_weights()  # the weights training started from (train.seed)
        start = fresh.model.encoders["photo"].state_dict()
        for key, value in trained.state_dict().items():
            assert torch.equal(value, start[key]) != key.startswith("project."), (run.name, key)


def test_frozen_outputs_are_cached_by_default_and_train_the_same_as_computed_each_batch(frozen_runs):
    (cached, said_cached), (uncached, said_uncached) = frozen_runs
    assert "inputs.photo: the frozen backbone's output is computed once per row" in " ".join(said_cached.split())
    assert "computed once" not in said_uncached
    assert len(losses(cached)) >= 4
    assert losses(cached) == pytest.approx(losses(uncached), abs=1e-5)


def test_outputs_are_cached_by_default_only_where_that_is_exact(tmp_path):
    config = frozen_run_config("t.csv")
    assert [spec.name for spec in embedded_inputs(validate(config))] == ["photo"]
    config["inputs"][0]["augment"] = {"hflip": 0.5}  # a new draw every epoch: no single output to keep
    assert embedded_inputs(validate(config)) == []
    config["inputs"][0].pop("augment")
    config["inputs"][0]["encoder"]["cache_embeddings"] = False
    assert embedded_inputs(validate(config)) == []
    config["inputs"][0]["encoder"].update(freeze=False, cache_embeddings=None)
    assert embedded_inputs(validate(config)) == []
    captions = frozen_run_config("t.csv")
    captions["outputs"] = [{"name": "caption", "type": "caption", "column": "note"}]  # attends to float16 tokens
    assert embedded_inputs(validate(captions)) == []


def test_a_frozen_random_backbone_and_a_freeze_with_nothing_to_freeze_are_told(frozen_runs):
    (folder, said), _ = frozen_runs
    run = Run.load(folder)
    spec, encoder = run.config.inputs[0], run.model.encoders["photo"]
    [note] = frozen_notes(spec, encoder, warm_started=False)
    assert "frozen at its random initial weights" in note and "its projection and the layers after it learn" in note
    assert frozen_notes(spec, encoder, warm_started=True) == []
    assert "inputs.photo.encoder: frozen at its random initial weights" in " ".join(said.split())
    settings = ENCODERS["vector_mlp"].Config(hidden=[], freeze=True, out_dim=4)
    vector = type("Feature", (), {"dim": 3})()
    bare = ENCODERS["vector_mlp"].build(settings, vector)
    assert "nothing to freeze" in frozen_notes(type("Spec", (), {"encoder": settings})(), bare, warm_started=False)[0]


def test_a_model_where_nothing_but_the_missing_vectors_would_train_is_refused(frozen_runs):
    model = Run.load(frozen_runs[0][0]).model
    require_trainable(model)
    for name, parameter in model.named_parameters():
        if not name.startswith("missing.") and not name.startswith("encoders.photo.project."):
            parameter.requires_grad_(False)
    require_trainable(model)  # the projection still trains
    model.encoders["photo"].project.requires_grad_(False)
    with pytest.raises(PlaitError, match="nothing in this model trains: the encoders of photo are frozen"):
        require_trainable(model)
