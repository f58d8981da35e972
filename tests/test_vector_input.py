"""`vector` inputs (issue 19 item 7): a fixed-length array of numbers per row, from parquet and JSON-lines list
cells, an `npy` table's 2-D array, CSV strings and `plait embed`'s output; `dim`, bad lengths, `normalize`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from tests.conftest import run_cli_here

DIM = 6


def vectors_and_labels(rows: int = 240, seed: int = 0):
    """Vectors whose first two components (far from zero mean, very different scales) decide the class; the split
    puts the training rows first."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, 1, size=(rows, DIM)) * np.array([50, 0.02, 1, 1, 1, 1]) + np.array([300, -7, 0, 0, 0, 0])
    label = np.where((vectors[:, 0] - 300) / 50 + (vectors[:, 1] + 7) / 0.02 > 0, "up", "down")
    split = np.array(["train"] * (rows * 2 // 3) + ["validation"] * (rows // 6) + ["test"] * (rows - rows * 2 // 3 - rows // 6))
    return vectors, label, split


def clear_rows(vectors, split, count: int = 3) -> list[int]:
    """Test rows far from the class boundary, for predictions that must be right."""
    margin = np.abs((vectors[:, 0] - 300) / 50 + (vectors[:, 1] + 7) / 0.02)
    return [int(i) for i in np.flatnonzero((split == "test") & (margin > 1.0))[:count]]


def config(table, column: str = "features", **extra) -> dict:
    vector = {"name": "features", "type": "vector", "column": column, **extra.pop("vector", {})}
    return {
        "name": "vectors",
        "data": {"table": str(table), "split": {"column": "split"}, **extra.pop("data", {})},
        "inputs": [vector],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 12, "batch_size": 16, "seed": 0, "threads": 1, "optimizer": {"lr": 0.01}},
        **extra,
    }


def frame(cells, label, split) -> pd.DataFrame:
    return pd.DataFrame({"features": cells, "label": label, "split": split})


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_list_cells_from_parquet_and_jsonl_train_and_predict(kind, tmp_path):
    vectors, label, split = vectors_and_labels()
    cells = [list(v) for v in vectors]
    cells[5], cells[9] = None, []  # missing: a null, an empty list (masked, not bad samples)
    table = frame(cells, label, split)
    path = tmp_path / f"rows.{kind}"
    table.to_parquet(path) if kind == "parquet" else table.to_json(path, orient="records", lines=True)

    run = api.train(validate(config(path)), run_dir=tmp_path / "run")
    assert api.evaluate(run, "test")["label.accuracy"] >= 0.9  # the classes are separable in the vectors

    chosen = clear_rows(vectors, split)
    new = pd.DataFrame({"features": [list(vectors[i]) for i in chosen]})
    new_path = tmp_path / f"new.{kind}"
    new.to_parquet(new_path) if kind == "parquet" else new.to_json(new_path, orient="records", lines=True)
    result = run_cli_here("predict", run, "--input", new_path, "--output", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(tmp_path / "out.csv")["label_pred"].tolist() == label[chosen].tolist()


def test_a_2d_array_of_an_npy_table_gives_each_row_its_vector(tmp_path):
    vectors, label, split = vectors_and_labels()
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "features.npy", vectors.astype(np.float32))  # [rows, dim]: row i's vector is features[i]
    np.save(folder / "label.npy", label)
    np.save(folder / "split.npy", split)

    run = api.train(validate(config(folder, data={"format": "npy"})), run_dir=tmp_path / "run")
    assert api.evaluate(run, "test")["label.accuracy"] >= 0.9
    from plait.runs import Run

    assert Run.load(run).features["features"].dim == DIM  # taken from the training rows (dim: null)


def test_csv_cells_hold_a_json_list_or_numbers_separated_by_spaces_or_commas(tmp_path):
    from plait.data.features.vector import parse_vector

    assert parse_vector("[1, 2.5, -3e-1]").tolist() == parse_vector("1 2.5 -3e-1").tolist() == [1, 2.5, -0.3]
    assert parse_vector("1,2.5, -3e-1").tolist() == parse_vector(" 1 ,\t2.5,-3e-1 ").tolist() == [1, 2.5, -0.3]
    vectors, label, split = vectors_and_labels()
    writers = [lambda v: json.dumps(v.tolist()), lambda v: " ".join(map(repr, v.tolist())),
               lambda v: ",".join(map(repr, v.tolist()))]
    cells = [writers[i % 3](v) for i, v in enumerate(vectors)]
    frame(cells, label, split).to_csv(tmp_path / "rows.csv", index=False)

    run = api.train(validate(config(tmp_path / "rows.csv")), run_dir=tmp_path / "run")
    assert api.evaluate(run, "test")["label.accuracy"] >= 0.9
    chosen = clear_rows(vectors, split)
    pd.DataFrame({"features": [cells[i] for i in chosen]}).to_csv(tmp_path / "new.csv", index=False)
    result = run_cli_here("predict", run, "--input", tmp_path / "new.csv", "--output", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(tmp_path / "out.csv")["label_pred"].tolist() == label[chosen].tolist()


def test_a_vector_of_another_length_is_a_bad_sample_naming_the_row_and_both_lengths(tmp_path):
    vectors, label, split = vectors_and_labels()
    cells = [json.dumps(v.tolist()) for v in vectors]
    cells[7] = json.dumps(vectors[7, :4].tolist())
    frame(cells, label, split).to_csv(tmp_path / "rows.csv", index=False)

    with pytest.raises(PlaitError, match=r"line 9.*column 'features'.*length 4, expected 6 \(the length of the training rows\)"):
        api.train(validate(config(tmp_path / "rows.csv")), run_dir=tmp_path / "error")
    with pytest.raises(PlaitError, match=r"line 2,.*length 6, expected 5 \(the length of the `dim` setting\)"):
        api.train(validate(config(tmp_path / "rows.csv", vector={"dim": 5})), run_dir=tmp_path / "error_dim")

    run = api.train(validate(config(tmp_path / "rows.csv", data={"on_bad_sample": "skip"})), run_dir=tmp_path / "skip")
    skipped = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert [(s["row"], s["reason"]) for s in skipped] == [(7, "vector of length 4, expected 6 (the length of the training rows)")]
    assert api.evaluate(run, "test")["label.accuracy"] >= 0.9


def test_standard_normalisation_is_fitted_on_training_rows_and_restored_with_the_run(tmp_path):
    from plait.runs import Run

    vectors, label, split = vectors_and_labels()
    frame([list(v) for v in vectors], label, split).to_parquet(tmp_path / "rows.parquet")
    run = api.train(validate(config(tmp_path / "rows.parquet", vector={"encoder": {"hidden": [16]}})), run_dir=tmp_path / "run")

    feature = Run.load(run).features["features"]
    train = vectors[split == "train"]
    np.testing.assert_allclose(feature.mean, train.mean(axis=0), rtol=1e-9)  # training rows only: not all rows'
    np.testing.assert_allclose(feature.std, train.std(axis=0), rtol=1e-9)
    assert not np.allclose(feature.mean, vectors.mean(axis=0), rtol=1e-6)  # all rows' mean differs
    import torch

    batch = feature.prepare({"value": torch.tensor(train[:4], dtype=torch.float32)}, training=False)
    np.testing.assert_allclose(batch["value"].numpy(), (train[:4] - train.mean(0)) / train.std(0), rtol=1e-4, atol=1e-4)

    final = json.loads((run / "evaluation" / "test.json").read_text())  # evaluated in the training process
    loaded = api.evaluate(run, "test")  # a fresh process's view: the statistics come from the checkpoint
    assert loaded == pytest.approx(final, abs=1e-6) and loaded["label.accuracy"] >= 0.9


def test_l2_and_none_and_an_identity_encoder(tmp_path):
    import torch

    from plait.runs import Run

    vectors, label, split = vectors_and_labels()
    frame([list(v) for v in vectors], label, split).to_parquet(tmp_path / "rows.parquet")
    run = api.train(validate(config(tmp_path / "rows.parquet", vector={"normalize": "l2", "encoder": {"hidden": []}},
                                    train={"epochs": 1, "batch_size": 32, "threads": 1})), run_dir=tmp_path / "run")
    loaded = Run.load(run)
    assert loaded.model.encoders["features"].out_dim == DIM  # hidden: [] hands the vector itself to fusion
    prepared = loaded.features["features"].prepare({"value": torch.tensor([[3.0, 4.0, 0, 0, 0, 0]])}, training=False)
    assert prepared["value"].tolist() == [pytest.approx([0.6, 0.8, 0, 0, 0, 0])]
    encoder = {"hidden": [8, 4], "out_dim": 3, "activation": "gelu", "dropout": 0.1}
    mlp = validate(config("x.parquet", vector={"encoder": encoder}))
    settings = mlp.inputs[0].encoder
    assert settings.hidden == [8, 4] and settings.projection.out_dim == 3  # out_dim: the projection after the MLP
    with pytest.raises(PlaitError, match="normalize"):
        validate(config("x.parquet", vector={"normalize": "minmax"}))


def test_plait_embed_output_is_read_as_a_vector_column(tmp_path):
    vectors, label, split = vectors_and_labels()
    table = frame([list(v) for v in vectors], label, split)
    table.to_parquet(tmp_path / "rows.parquet")
    first = api.train(validate(config(tmp_path / "rows.parquet")), run_dir=tmp_path / "first")

    for kind in ("parquet", "jsonl"):
        out = tmp_path / f"embedded.{kind}"
        result = run_cli_here("embed", first, "--input", tmp_path / "rows.parquet", "--output", out, "--only", "fused")
        assert result.returncode == 0, result.stderr
        embedded = pd.read_parquet(out) if kind == "parquet" else pd.read_json(out, lines=True)
        rows = table.iloc[embedded["row"]].reset_index(drop=True)
        joined = pd.concat([embedded, rows[["label", "split"]]], axis=1)
        joined.to_parquet(tmp_path / f"joined_{kind}.parquet") if kind == "parquet" else joined.to_json(
            tmp_path / f"joined_{kind}.jsonl", orient="records", lines=True)
        joined_config = validate(config(tmp_path / f"joined_{kind}.{kind}", column="fused"))
        second = api.train(joined_config, run_dir=tmp_path / f"second_{kind}")
        from plait.runs import Run

        assert Run.load(second).features["features"].dim == Run.load(first).model.fusion.out_dim
        assert api.evaluate(second, "test")["label.accuracy"] >= 0.9
