"""Bad input never crashes with a traceback and never vanishes: a clear error, or skipped and listed."""

import json

import pandas as pd
import yaml

from plait.data.tables import SPLITS
from tests.conftest import run_cli, tabular_config, tabular_rows

BAD_CELLS = [  # (row, column, value, what the reason says)
    (3, "x", "twelve", "not a number: 'twelve'"),
    (5, "x", "NaN", "not a finite number: 'NaN'"),
]


def bad_table(tmp_path, extra_bad=()):
    frame = tabular_rows(120).astype({"x": object})
    for row, column, value, _ in [*BAD_CELLS, *extra_bad]:
        frame.loc[row, column] = value
    frame.loc[7, "split"] = "test"
    frame.loc[7, "label"] = "maybe"  # a label the training split never had
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def write_config(tmp_path, table, **data):
    config = tabular_config(table, epochs=1)
    config["data"].update(data)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_error_policy_names_file_row_and_column_without_traceback(tmp_path):
    table = bad_table(tmp_path)
    result = run_cli("train", write_config(tmp_path, table), "--run-dir", tmp_path / "run", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # the line in the CSV a user opens: line 1 is the header, so table row 3 is line 5
    expected = [f"error: {table}, line {row + 2}, column '{column}': {reason}" for row, column, _, reason in BAD_CELLS]
    assert any(line in result.stderr for line in expected), result.stderr  # the first bad cell met, whichever split it is in
    assert "on_bad_sample: skip" in result.stderr  # says how to go on


def test_skip_policy_lists_every_skipped_row_and_trains(tmp_path):
    table = bad_table(tmp_path)
    result = run_cli("train", write_config(tmp_path, table, on_bad_sample="skip"), "--run-dir", tmp_path / "run")
    skipped = [json.loads(line) for line in (tmp_path / "run" / "skipped.jsonl").read_text().splitlines()]
    by_row = {entry["row"]: entry for entry in skipped}
    assert set(by_row) == {3, 5, 7}
    assert by_row[3]["column"] == "x" and by_row[3]["reason"] == "not a number: 'twelve'"
    assert by_row[3]["file"] == str(table) and by_row[3]["place"] == "line 5" and by_row[3]["split"] in SPLITS
    assert by_row[5]["reason"] == "not a finite number: 'NaN'"
    assert by_row[7]["column"] == "label" and "does not occur in the training split" in by_row[7]["reason"]
    assert "skipped 3 bad rows" in result.stderr
    assert (tmp_path / "run" / "evaluation" / "test.json").is_file()


def test_empty_cells_are_masked_inputs_not_bad_rows(tmp_path):
    frame = tabular_rows(120)
    frame.loc[[2, 4], "x"] = None
    frame.loc[[6], "note"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    run_cli("train", write_config(tmp_path, tmp_path / "t.csv"), "--run-dir", tmp_path / "run")
    assert not (tmp_path / "run" / "skipped.jsonl").exists()


def test_missing_column_is_named(tmp_path):
    table = bad_table(tmp_path)
    config = tabular_config(table, epochs=1)
    config["inputs"][0]["column"] = "xx"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("train", path, "--run-dir", tmp_path / "run", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no column 'xx' (needed by input x); did you mean 'x'?" in result.stderr


def test_predict_reports_bad_rows_too(tmp_path):
    table = tmp_path / "t.csv"
    tabular_rows(120).to_csv(table, index=False)
    run_cli("train", write_config(tmp_path, table), "--run-dir", tmp_path / "run")
    rows = tabular_rows(10).drop(columns=["label", "target"]).astype({"x": object})
    rows.loc[4, "x"] = "n/a"
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = run_cli("predict", tmp_path / "run", "--input", tmp_path / "new.csv", "--output", tmp_path / "o.csv", check=False)
    assert result.returncode == 1 and f"{tmp_path / 'new.csv'}, line 6, column 'x'" in result.stderr
    assert "(pass --on-bad-sample skip to leave such rows out)" in result.stderr  # predict's own option, not the config key
    result = run_cli("predict", tmp_path / "run", "--input", tmp_path / "new.csv", "--output", tmp_path / "o.csv",
                     "--on-bad-sample", "skip")
    assert pd.read_csv(tmp_path / "o.csv")["row"].tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    listed = tmp_path / "o.skipped.jsonl"
    assert "wrote 9 predictions" in result.stdout and f"skipped 1 bad row; see {listed}" in result.stderr
    assert [json.loads(line) for line in listed.read_text().splitlines()] == [
        {"split": "predict", "row": 4, "file": str(tmp_path / "new.csv"), "place": "line 6", "column": "x",
         "reason": "not a number: 'n/a'"}]
    elsewhere = tmp_path / "lists" / "bad.jsonl"
    run_cli("predict", tmp_path / "run", "--input", tmp_path / "new.csv", "--output", tmp_path / "o.csv",
            "--on-bad-sample", "skip", "--skipped", elsewhere)
    assert json.loads(elsewhere.read_text())["row"] == 4


def image_table(tmp_path):
    """A demo-layout table whose rows 0-2 point at a missing, a non-image and a truncated image file."""
    from plait.demo.synthetic import make_demo

    table_path = make_demo(tmp_path / "data", rows=60)
    table = pd.read_csv(table_path)
    table.loc[0:2, "split"] = "train"
    (tmp_path / "data" / "images" / "00000.png").unlink()
    (tmp_path / "data" / "images" / "00001.png").write_text("not an image")
    truncated = tmp_path / "data" / "images" / "00002.png"
    truncated.write_bytes(truncated.read_bytes()[:120])
    table.to_csv(table_path, index=False)
    return table_path


def image_config(tmp_path, table, policy):
    from plait.demo.runner import demo_recipe

    config = yaml.safe_load(demo_recipe().read_text())
    config["data"].update(table=str(table), on_bad_sample=policy)
    config["train"].update(epochs=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_image_files_stop_the_run_with_the_file_named(tmp_path):
    table = image_table(tmp_path)
    result = run_cli("train", image_config(tmp_path, table, "error"), "--run-dir", tmp_path / "run", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {table}, line 2, column 'photo': cannot read image" in result.stderr
    assert "00000.png" in result.stderr


def test_bad_image_files_are_skipped_with_reasons(tmp_path):
    table = image_table(tmp_path)
    run_cli("train", image_config(tmp_path, table, "skip"), "--run-dir", tmp_path / "run")
    skipped = {entry["row"]: entry for entry in map(json.loads, (tmp_path / "run" / "skipped.jsonl").read_text().splitlines())}
    images = {row: entry for row, entry in skipped.items() if entry["column"] == "photo"}
    assert set(images) == {0, 1, 2}  # other skipped rows, if any, have labels the small training split lacks
    assert [images[row]["reason"].split(": ")[-1] for row in (0, 1, 2)] == ["no such file", "not an image file", "truncated or corrupt image"]
