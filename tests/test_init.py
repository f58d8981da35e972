"""`init:` on encoders, fusions and heads: how the weights start (issue 19, item 2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from plait.models.init import initialise
from plait.runs import Run
from tests.conftest import tabular_config, tabular_rows


def is_orthogonal(matrix: torch.Tensor) -> bool:
    rows, columns = matrix.shape
    product = matrix @ matrix.T if rows <= columns else matrix.T @ matrix
    return torch.allclose(product, torch.eye(min(rows, columns)), atol=1e-5)


def test_each_scheme_draws_the_weights_and_zeroes_the_biases():
    torch.manual_seed(0)
    layer = nn.Linear(40, 30)
    initialise(layer, "xavier_uniform")
    bound = math.sqrt(6 / (40 + 30))
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound and not layer.bias.any()
    initialise(layer, "orthogonal")
    assert is_orthogonal(layer.weight)
    initialise(layer, "kaiming_normal")
    assert abs(layer.weight.std().item() - math.sqrt(2 / 40)) < 0.02
    lstm = nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    initialise(lstm, "xavier_uniform")
    for name, parameter in lstm.named_parameters():
        if name.startswith("weight_hh"):
            assert all(is_orthogonal(gate) for gate in parameter.chunk(4))  # the recurrent weights: orthogonal per gate
        elif name.startswith("bias"):
            assert not parameter.any()
        else:
            assert parameter.abs().max() <= math.sqrt(6 / (6 + 20))
    before = [p.clone() for p in lstm.parameters()]
    initialise(lstm, "default")
    assert all(torch.equal(a, b) for a, b in zip(before, lstm.parameters()))


def test_a_config_starts_its_encoder_fusion_and_heads_as_it_says(tmp_path):
    table = tmp_path / "table.csv"
    tabular_rows(60).to_csv(table, index=False)
    raw = tabular_config(table)
    raw["inputs"][2]["encoder"] = {"name": "transformer", "dim": 8, "heads": 2, "layers": 1, "init": "orthogonal"}
    raw["fusion"]["init"] = "xavier_uniform"
    raw["outputs"][0].update(hidden=[8], init="kaiming_normal")
    run = Run.load(api.train(validate({**raw, "train": {**raw["train"], "epochs": 1, "optimizer": {"lr": 1e-12}}}),
                             run_dir=tmp_path / "run"), "last")
    model = run.model
    note = [m for m in model.encoders["note"].modules() if isinstance(m, nn.Linear)]
    assert note and all(is_orthogonal(m.weight) for m in note)  # a learning rate of 1e-12 leaves them as drawn
    fusion = model.fusion.mlp[0]
    assert fusion.weight.abs().max() <= math.sqrt(6 / (fusion.in_features + fusion.out_features)) + 1e-6
    assert not model.heads["label"][0].bias.abs().gt(1e-9).any()
    assert model.heads["target"].bias.abs().gt(0).any()  # the other head keeps PyTorch's default


def test_init_never_overwrites_pretrained_weights():
    raw = tabular_config("t.csv")
    raw["inputs"][2]["encoder"] = {"name": "hf", "path": "minilm", "init": "xavier_uniform"}
    with pytest.raises(PlaitError, match="would overwrite the pretrained weights it loads from minilm"):
        validate(raw)
