"""The `sequence` encoders (`lstm`, `cnn_lstm`) and the attention fusion. A stand-in feature object keeps these tests
independent of the sequence feature's decoding; the batches follow its contract (zero padding, `length` >= 1)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from plait.inference.predict import predict_table
from plait.models.encoders.sequence import CnnLstmConfig, LstmConfig, SequenceCnnLstm, SequenceLstm
from plait.models.fusion import AttentionConfig, AttentionFusion, ConcatConfig, ConcatFusion
from plait.registry import ENCODERS, FUSIONS
from plait.runs import Run
from tests.conftest import tabular_config

ENCODER_CLASSES = [(SequenceLstm, LstmConfig), (SequenceCnnLstm, CnnLstmConfig)]


def series_feature(channels=3, max_length=50):
    return SimpleNamespace(channels=channels, max_length=max_length, vocab_size=0, spec=SimpleNamespace(name="series", tokens=None))


def series(lengths, steps=None, channels=3, seed=0) -> dict:
    """Random rows, zero from each row's length on, padded to `steps` (default: the longest)."""
    lengths = torch.tensor(lengths)
    steps = steps or int(lengths.max())
    mask = torch.arange(steps) < lengths[:, None]
    value = torch.randn(len(lengths), steps, channels, generator=torch.Generator().manual_seed(seed)) * mask[..., None]
    return {"value": value, "length": lengths, "mask": mask, "present": torch.ones(len(lengths), dtype=torch.bool)}


def rows(batch: dict, index: int, steps: int) -> dict:
    """Row `index` of a batch alone, cut to `steps` time steps."""
    return {key: value[index:index + 1, :steps] if value.dim() > 1 else value[index:index + 1] for key, value in batch.items()}


def trained_encoder(cls, config, **keys):
    """An encoder in eval mode whose batch-norm statistics have moved off their defaults."""
    torch.manual_seed(0)
    encoder = cls(config(**keys), series_feature())
    encoder.train()(series([50, 31, 9], seed=1))
    return encoder.eval()


def test_registered_names_and_documented_keys():
    for name, cls in [("lstm", SequenceLstm), ("cnn_lstm", SequenceCnnLstm)]:
        assert ENCODERS[name] is cls and cls.modalities == ("sequence",) and cls.Config().name == name
        assert all(field.description for key, field in cls.Config.model_fields.items() if key != "name"), name
    assert FUSIONS["attention"] is AttentionFusion and AttentionConfig().name == "attention"
    assert all(field.description for key, field in AttentionConfig.model_fields.items() if key != "name")


@pytest.mark.parametrize("cls, config", ENCODER_CLASSES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes_and_gradients(cls, config, cell, pooling, bidirectional):
    encoder = cls(config(cell=cell, pooling=pooling, bidirectional=bidirectional, hidden=8, layers=2), series_feature())
    out = encoder(series([50, 17, 1]))
    recurrent = 8 * (2 if bidirectional else 1)
    assert encoder.out_dim == (recurrent if cls is SequenceLstm else 128)
    assert out.shape == (3, encoder.out_dim) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_output_sizes_from_config():
    feature = series_feature()
    lstm = SequenceLstm.build(LstmConfig(hidden=8, bidirectional=True, out_dim=5), feature)
    assert lstm(series([4, 2])).shape == (2, 16) and lstm.encode(series([4, 2]))[0].shape == (2, 5)
    encoder = SequenceCnnLstm(CnnLstmConfig(filters=4, blocks=2, dense=[16, 6]), feature)
    assert encoder.channels_after_cnn == 8 and encoder.out_dim == 6
    assert SequenceCnnLstm(CnnLstmConfig(hidden=8, bidirectional=True, dense=[]), feature).out_dim == 16


@pytest.mark.parametrize("cls, config", ENCODER_CLASSES)
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_row_does_not_depend_on_the_rest_of_its_batch(cls, config, pooling, bidirectional):
    encoder = trained_encoder(cls, config, pooling=pooling, bidirectional=bidirectional, positional_encoding=True)
    batch = series([20, 7, 1, 13])  # lengths below the cnn's shortest input (8) too
    padded = {**batch, "value": F.pad(batch["value"], (0, 0, 0, 31)), "mask": F.pad(batch["mask"], (0, 31))}
    with torch.no_grad():
        out, out_padded = encoder(batch), encoder(padded)
        for index, length in enumerate([20, 7, 1, 13]):
            assert torch.allclose(encoder(rows(batch, index, length)), out[index:index + 1], atol=1e-6)
    assert torch.allclose(out, out_padded, atol=1e-6)


@pytest.mark.parametrize("cls, config", ENCODER_CLASSES)
def test_deterministic_on_cpu(cls, config):
    first, second = (trained_encoder(cls, config) for _ in range(2))
    with torch.no_grad():
        assert torch.equal(first(series([30, 12])), second(series([30, 12])))


@pytest.mark.parametrize("cls, config", ENCODER_CLASSES)
def test_positional_encoding_changes_the_output(cls, config):
    torch.manual_seed(0)
    plain = cls(config(), series_feature())
    torch.manual_seed(0)
    positional = cls(config(positional_encoding=True), series_feature())
    batch = series([30, 12])
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(batch), positional.eval()(batch), atol=1e-4)


@pytest.mark.parametrize("keys", [{}, {"blocks": 2, "kernel_size": 3}, {"blocks": 3, "pool": 3, "kernel_size": 1}, {"blocks": 1, "pool": 5}])
def test_size_after_cnn_matches_the_convolutions(keys):
    encoder = SequenceCnnLstm(CnnLstmConfig(filters=4, **keys), series_feature(max_length=1000))
    for length in (7, 50, 64, 101, 1000):
        expected = encoder.size_after_cnn(length)
        if expected < 1:
            assert length < encoder.min_length
            continue
        x, pooled = encoder.convolve(torch.randn(2, 3, length), torch.tensor([length, 1]))
        assert x.shape == (2, encoder.channels_after_cnn, expected)
        assert pooled.tolist() == [expected, 1]  # each row's own length shrinks the same way, never below 1
    assert encoder.size_after_cnn(encoder.min_length) == 1 and encoder.size_after_cnn(encoder.min_length - 1) < 1


def test_too_short_for_the_pools_is_a_clear_error():
    with pytest.raises(ValidationError, match="4 is even"):
        CnnLstmConfig(kernel_size=4)
    with pytest.raises(PlaitError, match=r"inputs\.series\.encoder: .* 20 steps, but 5 max pools of 2 need at least 32"):
        SequenceCnnLstm(CnnLstmConfig(blocks=5), series_feature(max_length=20))
    SequenceCnnLstm(CnnLstmConfig(blocks=5), series_feature(max_length=32))


def test_attention_weights_are_per_row_and_sum_to_one():
    fusion = AttentionFusion(AttentionConfig(dim=8, hidden=[16]), {"a": 4, "b": 6, "c": 2})
    out = fusion({"a": torch.randn(5, 4), "b": torch.randn(5, 6), "c": torch.randn(5, 2)})
    assert out.shape == (5, fusion.out_dim) and fusion.out_dim == 16 and fusion.order == ["a", "b", "c"]
    assert fusion.weights.shape == (5, 3) and not fusion.weights.requires_grad
    assert torch.allclose(fusion.weights.sum(-1), torch.ones(5))
    assert AttentionFusion(AttentionConfig(dim=8, hidden=[]), {"a": 4}).out_dim == 8


def test_attention_learns_to_weight_the_input_that_decides():
    """The target depends on input b only; a is louder noise. Training moves the weight onto b."""
    torch.manual_seed(0)
    fusion = AttentionFusion(AttentionConfig(dim=16, hidden=[16], dropout=0.0), {"a": 4, "b": 4})
    head = nn.Linear(fusion.out_dim, 1)
    optimizer = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    rule = torch.randn(4, 1, generator=generator)
    for _ in range(300):
        a, b = 3 * torch.randn(64, 4, generator=generator), torch.randn(64, 4, generator=generator)
        loss = F.mse_loss(head(fusion({"a": a, "b": b})), b @ rule)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fusion.weights[:, 1].mean() > 0.6


def test_concat_fusion_keeps_no_weights():
    fusion = ConcatFusion(ConcatConfig(hidden=[8]), {"a": 4, "b": 6})
    assert fusion({"a": torch.randn(3, 4), "b": torch.randn(3, 6)}).shape == (3, 8)
    assert getattr(fusion, "weights", None) is None


def test_attention_weights_reach_predictions(tabular, tmp_path):
    table, _ = tabular
    config = tabular_config(table, epochs=1)
    config["fusion"] = {"name": "attention", "dim": 8, "hidden": [16]}
    run = Run.load(api.train(validate(config), run_dir=tmp_path / "run"))
    assert 0 <= api.evaluate(run.folder, "test")["label.accuracy"] <= 1  # scoring ignores the weights
    rows = pd.read_csv(table).drop(columns=["label", "target"]).head(10)
    out = predict_table(run, rows, "rows")
    columns = ["attention_x", "attention_colour", "attention_note"]
    assert set(columns) <= set(out.columns) and len(out) == 10
    assert (out[columns].sum(axis=1) - 1).abs().max() < 1e-5
