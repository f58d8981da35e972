"""The shapes the seed pipelines use: a BatchNorm fusion layer and two-layer heads (issue 19, item 2), counted as the
video+audio+text sentiment pipeline prints them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from plait import api
from plait.config import validate
from plait.models.fusion import ConcatFusion
from plait.models.layers import RowBatchNorm, head
from plait.runs import Run
from plait.settings.fusion import ConcatConfig
from plait.settings.outputs import CategoryOutput
from tests.conftest import tabular_config, tabular_rows


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_the_sentiment_pipelines_fusion_and_heads_have_its_parameter_counts():
    fusion = ConcatFusion(ConcatConfig(hidden=[256], batch_norm=True, dropout=0.3), {"text": 128, "video": 128, "audio": 128})
    assert parameters(fusion) == 99_072  # Linear 384→256 → BatchNorm1d → ReLU → Dropout
    assert [type(layer) for layer in fusion.mlp] == [nn.Linear, RowBatchNorm, nn.ReLU, nn.Dropout]
    keys = {"name": "emotion", "column": "emotion", "hidden": [64], "dropout": 0.2}
    assert parameters(head(256, 7, CategoryOutput(**keys))) == 16_903  # Linear 256→64 → ReLU → Dropout → Linear 64→7
    assert parameters(head(256, 3, CategoryOutput(**keys))) == 16_643
    gelu = head(256, 3, CategoryOutput(**keys, activation="gelu"))
    assert [type(layer) for layer in gelu] == [nn.Linear, nn.GELU, nn.Dropout, nn.Linear]


def test_a_head_without_hidden_layers_is_the_one_linear_layer_older_checkpoints_hold():
    plain = head(32, 5, CategoryOutput(name="label", column="label"))
    assert isinstance(plain, nn.Linear) and set(plain.state_dict()) == {"weight", "bias"}


def test_batch_norm_takes_a_lone_training_row_through_its_running_statistics():
    norm = RowBatchNorm(4)
    norm.train()
    norm(torch.randn(8, 4) * 3 + 1)  # moves the running statistics
    lone = torch.randn(1, 4)
    expected = (lone - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias
    before = norm.running_mean.clone()
    assert torch.allclose(norm(lone), expected, atol=1e-6) and torch.equal(norm.running_mean, before)
    batch = torch.randn(6, 4)
    assert torch.allclose(norm(batch).mean(0), torch.zeros(4), atol=1e-5)  # a real batch: its own statistics


def test_a_model_with_a_batch_norm_fusion_and_mlp_heads_trains_and_reloads(tmp_path):
    table = tmp_path / "table.csv"
    rows = tabular_rows(210)
    assert (rows["split"] == "train").sum() % 7 == 1  # every epoch ends with a batch of one row
    rows.to_csv(table, index=False)
    raw = tabular_config(table, epochs=6, optimizer={"lr": 0.01}, batch_size=7)
    raw["fusion"] = {"name": "concat", "hidden": [32], "dropout": 0.1, "batch_norm": True, "activation": "gelu"}
    raw["outputs"][0].update(hidden=[16], dropout=0.1)
    raw["outputs"][1].update(hidden=[16, 8], activation="tanh")
    run_dir = api.train(validate(raw), run_dir=tmp_path / "run")
    metrics = api.evaluate(run_dir, "test")
    assert metrics["label.accuracy"] >= 0.8
    model = Run.load(run_dir).model
    assert isinstance(model.fusion.mlp[1], RowBatchNorm) and model.fusion.mlp[1].num_batches_tracked > 0
    assert [type(layer) for layer in model.heads["target"]] == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Tanh,
                                                               nn.Dropout, nn.Linear]


@pytest.mark.parametrize("fusion", [{"name": "attention", "batch_norm": True, "activation": "silu"},
                                    {"name": "late", "batch_norm": True, "hidden": [8]}])
def test_every_fusion_takes_the_mlp_keys(fusion, tmp_path):
    table = tmp_path / "table.csv"
    tabular_rows(60).to_csv(table, index=False)
    raw = tabular_config(table, epochs=1)
    raw["fusion"] = fusion
    model = Run.load(api.train(validate(raw), run_dir=tmp_path / "run")).model
    kinds = {type(layer) for layer in model.fusion.modules()}
    assert RowBatchNorm in kinds and (nn.SiLU in kinds or fusion["name"] == "late")
