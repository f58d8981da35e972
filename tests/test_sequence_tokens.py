"""Sequences of token ids (`tokens`): each id looked up in a learned embedding instead of scaled as a number, as the
attention-regression pipeline feeds ids through Embedding(vocab_size, dim) into each LSTM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plait import api
from plait.config import validate
from plait.data.features.sequence import SequenceFeature, SequenceSettings
from plait.errors import BadSample, PlaitError
from plait.models.encoders.sequence import SequenceCnnLstm, SequenceLstm
from plait.runs import Run
from plait.settings.sequence import CnnLstmConfig, LstmConfig


def feature(**settings) -> SequenceFeature:
    return SequenceFeature(SequenceSettings(name="words", column="words", **settings))


def test_ids_are_checked_and_not_scaled_and_the_vocabulary_comes_from_the_training_ids():
    words = feature(tokens={"dim": 8})
    words.fit([[3, 1, 4], [1, 5, 9, 2]])
    assert words.vocab_size == 10 and words.channels == 1
    batch = words.prepare(words.stack([words.encode([9, 0, 2])]), training=False)
    assert batch["value"][0, :, 0].tolist() == [9.0, 0.0, 2.0]  # ids as they are: no mean, no scale
    with pytest.raises(BadSample, match="step 1 holds 10, not a token id from 0 to 9"):
        words.encode([2, 10])
    restored = feature(tokens={"dim": 8})
    restored.load_state_dict(json.loads(json.dumps(words.state_dict())))
    assert restored.vocab_size == 10
    sized = feature(tokens={"vocab_size": 50, "dim": 8})
    sized.fit([[3, 1, 4]])
    assert sized.vocab_size == 50 and sized.encode([49])["value"].tolist() == [[49.0]]


@pytest.mark.parametrize("cells, problem", [
    ([[0.5, 1.0]], "not whole numbers from 0"),
    ([[-1, 2]], "not whole numbers from 0"),
    ([[[1, 2], [3, 4]]], "one token id, but the training sequences have 2 channels"),
])
def test_what_cannot_be_token_ids_is_refused_by_name(cells, problem):
    with pytest.raises(PlaitError, match=problem):
        feature(tokens={"dim": 4}).fit(cells)


@pytest.mark.parametrize("encoder_class, config", [(SequenceLstm, LstmConfig(hidden=6)),
                                                   (SequenceCnnLstm, CnnLstmConfig(filters=4, blocks=1, hidden=6))])
def test_the_encoders_embed_each_id(encoder_class, config):
    words = feature(tokens={"dim": 5})
    words.fit([[1, 2, 3, 4, 5, 6, 7]])
    encoder = encoder_class(config, words)
    assert isinstance(encoder.steps.embed, torch.nn.Embedding) and encoder.steps.embed.weight.shape == (8, 5)
    encoder.eval()
    batch = words.prepare(words.stack([words.encode([1, 2, 3, 4]), words.encode([1, 2, 3, 7])]), training=False)
    embedded = encoder.steps(batch["value"], batch["length"])
    assert torch.equal(embedded[0, 3], encoder.steps.embed.weight[4]) and torch.equal(embedded[1, 3], encoder.steps.embed.weight[7])
    encoder(batch).sum().backward()
    touched = encoder.steps.embed.weight.grad.abs().sum(1) > 0
    assert touched[[1, 2, 3, 4, 7]].all() and not touched[[0, 5, 6]].any()  # only the ids the batch holds


def test_whole_numbers_with_few_values_read_as_measurements_get_a_warning(capsys):
    feature().fit([[3, 1, 4, 1, 5], [9, 2, 6]])
    assert "set `tokens: {dim: 32}`" in capsys.readouterr().err
    feature().fit([[0.5, 1.5, 2.25]])
    feature(tokens={"dim": 4}).fit([[3, 1, 4]])
    assert "tokens" not in capsys.readouterr().err


def test_a_model_learns_which_token_a_sequence_holds(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for index in range(240):
        ids = rng.integers(0, 30, int(rng.integers(4, 12))).tolist()
        if index % 2:
            ids[int(rng.integers(len(ids)))] = 30  # the token that decides the label
        rows.append({"words": ids, "label": "yes" if index % 2 else "no"})
    table = tmp_path / "rows.jsonl"
    table.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    config = validate({
        "name": "tokens", "data": {"table": str(table), "split": {"ratios": [0.7, 0.15, 0.15], "seed": 0}},
        "inputs": [{"name": "words", "type": "sequence", "column": "words", "tokens": {"dim": 16},
                    "encoder": {"name": "lstm", "hidden": 32, "pooling": "max"}}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 15, "batch_size": 16, "optimizer": {"lr": 0.01}, "threads": 1},
    })
    run_dir = api.train(config, run_dir=tmp_path / "run")
    assert api.evaluate(run_dir, "test")["label.accuracy"] >= 0.9
    assert Run.load(run_dir).features["words"].vocab_size == 31
