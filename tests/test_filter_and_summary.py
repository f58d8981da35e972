"""`data.filter` (a pandas query over the table's rows, before the split) and `plait summary` (the layer table
before training)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from plait.config import Config
from plait.data.places import RowPlaces
from plait.data.tables import Data
from plait.errors import PlaitError
from tests.conftest import run_cli_here, tabular_config, tabular_rows

QUERY = "x > -0.5 and colour != 'green'"


def write_config(tmp_path, table, **data) -> str:
    raw = tabular_config(table, epochs=1)
    raw["data"].update(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "table.csv"
    tabular_rows(240).to_csv(path, index=False)
    return path


def kept_by_pandas(path) -> pd.Series:
    """The rows the query keeps, worked out from the table as pandas types it (x a number)."""
    frame = pd.read_csv(path)
    return (frame["x"] > -0.5) & (frame["colour"] != "green")


def test_filter_drops_the_rows_the_query_excludes_in_every_split(tmp_path, table):
    keep = kept_by_pandas(table)
    split = pd.read_csv(table)["split"]
    assert 0 < keep.sum() < len(keep)
    result = run_cli_here("train", write_config(tmp_path, table, filter=QUERY), "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr

    counts = ", ".join(f"{name} {int((keep & (split == name)).sum())}/{int((split == name).sum())}"
                       for name in ("train", "validation", "test"))
    assert f"data.filter kept {int(keep.sum())} of 240 rows: {counts}" in result.stderr
    encoded = ", ".join(f"{name} {int((keep & (split == name)).sum())}" for name in ("train", "validation", "test"))
    assert f"rows: {encoded}" in result.stderr  # the encoded splits hold exactly the kept rows

    written = pd.read_csv(tmp_path / "run" / "splits.csv")
    assert len(written) == 240  # every source row is accounted for
    assert (written["split"] == "filtered").tolist() == (~keep).tolist()
    assert (written["split"][keep] == split[keep]).all()  # a kept row keeps its split

    from plait.runs import Run

    run = Run.load(tmp_path / "run")  # evaluate, report and predict-on-splits read the table the same way
    for name in ("train", "validation", "test"):
        assert sorted(run.encode([name])[name].rows) == sorted(keep[keep & (split == name)].index.tolist())


def test_ratio_split_divides_only_the_kept_rows(table):
    config = Config.model_validate(tabular_config(table) | {"data": {"table": str(table), "filter": QUERY,
                                                                       "split": {"ratios": [0.5, 0.25, 0.25], "seed": 1}}})
    frame = pd.read_csv(table, dtype=str)
    data = Data.of(frame, config.data.split, config.data.filter, str(table), RowPlaces.of(str(table)))
    keep = kept_by_pandas(table)
    assert (data.split_of_row == "filtered").tolist() == (~keep).tolist()
    kept = data.split_of_row[keep]
    assert set(kept) == {"train", "validation", "test"}
    assert (kept == "train").sum() == round(0.5 * keep.sum())  # the ratios hold among the kept rows
    assert data.filter_note == (f"data.filter kept {keep.sum()} of 240 rows (then split by data.split.ratios): "
                                + ", ".join(f"{name} {(kept == name).sum()}" for name in ("train", "validation", "test")))


def filter_error(table, query) -> str:
    config = Config.model_validate(tabular_config(table) | {"data": {"table": str(table), "filter": query}})
    with pytest.raises(PlaitError) as error:
        Data.of(pd.read_csv(table, dtype=str), config.data.split, config.data.filter, "table.csv", RowPlaces.of("table.csv"))
    return str(error.value)


def test_a_query_that_does_not_parse_is_an_error(table):
    message = filter_error(table, "x > and colour")
    assert message.startswith("data.filter 'x > and colour' does not parse as a pandas query")


def test_a_query_that_is_no_condition_is_an_error(table):
    assert "must be a condition, true or false for each row" in filter_error(table, "x + 1")


def test_an_unknown_column_names_the_nearest(tmp_path, table):
    assert filter_error(table, "colur == 'red'") == ("data.filter \"colur == 'red'\": table.csv has no column 'colur'; "
                                                     "did you mean 'colour'?")
    result = run_cli_here("train", write_config(tmp_path, table, filter="colur == 'red'"), "--run-dir", tmp_path / "run")
    assert result.returncode == 1
    assert "has no column 'colur'; did you mean 'colour'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_summary_prints_the_layer_table_and_writes_no_run_folder(tmp_path, table, monkeypatch):
    raw = tabular_config(table)
    raw["inputs"][2]["encoder"]["freeze"] = True  # the text encoder's 16 × 8 embedding: frozen
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = run_cli_here("summary", "config.yaml", "--rows", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "layers, over a batch of 3 training rows (torchinfo):" in out
    assert re.search(r"Output Shape\s+Param #\s+Trainable", out)
    assert re.search(r"TextBag \(note\)\s+\[3, 8\]", out)  # real output shapes of the real batch
    assert re.search(r"Linear \(label\)\s+\[3, 2\]\s+66\s+True", out)
    assert re.search(r"Embedding \(embedding\)\s+\[3, \d+, 8\]\s+\(128\)\s+False", out)  # the frozen one
    assert "Trainable params: 3,163" in out and "Non-trainable params: 128" in out
    assert re.search(r"encoder note\s+│\s+0\s+│\s+128", out)  # plait's own table: trainable 0, frozen 128
    assert re.search(r"total\s+│\s+3,163\s+│\s+128", out)
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, nothing written beside the config

    shallow = run_cli_here("summary", "config.yaml", "--depth", "1").stdout
    assert "ConcatFusion (fusion)" in shallow and "TextBag" not in shallow
