import fsspec
import pandas as pd
import pytest

from plait.config import SplitConfig
from plait.data.tables import assign_splits, read_table, require_columns, resolve_root
from plait.errors import PlaitError

FRAME = pd.DataFrame({"id": ["007", "8"], "value": [1.5, None], "split": ["train", "val"]})


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_reads_each_format(tmp_path, suffix):
    path = tmp_path / f"t.{suffix}"
    {"csv": lambda: FRAME.to_csv(path, index=False), "jsonl": lambda: FRAME.to_json(path, orient="records", lines=True),
     "parquet": lambda: FRAME.to_parquet(path)}[suffix]()
    table = read_table(str(path))
    assert list(table.columns) == ["id", "value", "split"] and len(table) == 2
    assert pd.isna(table["value"][1])  # an empty cell reads as missing
    assert str(table["id"][0]) == "007"  # identifiers keep leading zeros


def test_reads_through_any_fsspec_url():
    with fsspec.open("memory://bucket/table.csv", "w") as handle:
        handle.write("a,b\n1,2\n")
    assert read_table("memory://bucket/table.csv")["b"].tolist() == ["2"]
    assert resolve_root("memory://bucket/table.csv", None) == "memory://bucket"


def test_missing_table_and_unknown_format_are_clear(tmp_path):
    with pytest.raises(PlaitError, match="table not found"):
        read_table(str(tmp_path / "nope.csv"))
    with pytest.raises(PlaitError, match="set data.format"):
        read_table(str(tmp_path / "t.xlsx"))


def test_missing_column_names_the_user_and_nearest_column():
    with pytest.raises(PlaitError, match=r"no column 'valeu' \(needed by input v\); did you mean 'value'\?"):
        require_columns(FRAME, {"valeu": "input v"}, "t.csv")


def test_split_column_accepts_aliases_and_rejects_others():
    assert assign_splits(FRAME, SplitConfig(column="split"), "t.csv").tolist() == ["train", "validation"]
    bad = FRAME.assign(split=["train", "holdout"])
    with pytest.raises(PlaitError, match="row 1, column 'split': unknown split 'holdout'"):
        assign_splits(bad, SplitConfig(column="split"), "t.csv")


def test_ratio_split_is_seeded_and_stratified():
    table = pd.DataFrame({"label": ["a"] * 80 + ["b"] * 20})
    config = SplitConfig(ratios=(0.5, 0.25, 0.25), seed=3, stratify="label")
    first, second = assign_splits(table, config, "t"), assign_splits(table, config, "t")
    assert first.tolist() == second.tolist()
    counts = pd.crosstab(table["label"], first)
    assert counts.loc["a"].tolist() == [20, 40, 20]  # test, train, validation (alphabetical columns)
    assert counts.loc["b"].tolist() == [5, 10, 5]
    other = assign_splits(table, SplitConfig(ratios=(0.5, 0.25, 0.25), seed=4, stratify="label"), "t")
    assert other.tolist() != first.tolist()
