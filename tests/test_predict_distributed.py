"""`plait predict` a chunk at a time and across processes: the same predictions, row for row and in input order, as
predicting the whole table at once; bad rows in later chunks named by their real line; an error on one rank ends
every rank, leaving nothing behind."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from plait.data.places import RowPlaces
from plait.errors import PlaitError
from plait.inference import predict as predict_module
from plait.inference.chunks import read_chunks
from plait.inference.output import Parts, write_table
from plait.inference.predict import predict_file, predict_paths, predict_table
from plait.runs import Run
from plait.distributed import World
from tests.conftest import run_cli

CHUNK = 7  # rows per chunk: the 40-row inputs below are 6 chunks, 3 per rank with 2 processes


@pytest.fixture(scope="module")
def run(demo_run) -> Run:
    return Run.load(demo_run)


def rows(demo_run, count: int = 40) -> pd.DataFrame:
    """The demo's input columns for `count` rows, photo paths absolute (so the table can live anywhere), and a note
    that spans two lines in row 3 (so a CSV's line numbers and row numbers part from there on)."""
    data = demo_run.parent / "data"
    table = pd.read_csv(data / "demo.csv", dtype=str, keep_default_na=False).head(count)
    table = table[["photo", "note", "reading"]].copy()
    table["photo"] = [str(data / path) for path in table["photo"]]
    table.loc[3, "note"] = "a note\nover two lines"
    return table


def write_rows(table: pd.DataFrame, path) -> str:
    if str(path).endswith(".jsonl"):
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_csv(path, index=False)
    return str(path)


def assert_same_predictions(written: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same columns and rows, the same labels, and numbers equal to float32 rounding (a batch of 7 rows and one of
    40 go through different matrix kernels)."""
    pd.testing.assert_frame_equal(written, expected, check_exact=False, rtol=1e-5, atol=1e-6)


def test_one_process_in_chunks_writes_what_the_whole_table_gave(run, demo_run, tmp_path):
    table = rows(demo_run)
    source = write_rows(table, tmp_path / "new.csv")
    whole = predict_table(run, table.copy(), RowPlaces.of_file(source, "csv"))
    write_table(whole, tmp_path / "whole.csv")  # what predict_file wrote before it read in chunks
    write_table(whole, tmp_path / "whole.parquet")

    for name in ("chunked.csv", "chunked.parquet"):
        written = predict_file(run, source, str(tmp_path / name), chunk_rows=CHUNK)
        assert written.rows == 40 and written.skipped == 0 and written.skipped_file is None
    assert_same_predictions(pd.read_csv(tmp_path / "chunked.csv"), pd.read_csv(tmp_path / "whole.csv"))
    assert_same_predictions(pd.read_parquet(tmp_path / "chunked.parquet"), pd.read_parquet(tmp_path / "whole.parquet"))
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "chunked.csv", "chunked.parquet", "new.csv", "whole.csv", "whole.parquet"]  # no parts folder left


def test_the_input_is_read_and_predicted_a_chunk_at_a_time(run, demo_run, tmp_path, monkeypatch):
    table = rows(demo_run, 20)
    source = write_rows(table, tmp_path / "new.csv")
    table.to_parquet(tmp_path / "new.parquet")  # one row group of 20 rows
    write_rows(table, tmp_path / "new.jsonl")
    for path in (source, tmp_path / "new.parquet", tmp_path / "new.jsonl"):
        chunks, _ = read_chunks(run, str(path), CHUNK)
        assert [(c.index, c.offset, len(c.table)) for c in chunks] == [(0, 0, 7), (1, 7, 7), (2, 14, 6)], path

    # lazily: a broken row in the last chunk is met only when that chunk is read
    with open(source, "a") as table_file:
        table_file.write('"an unclosed quote,x,1\n')
    chunks, _ = read_chunks(run, source, CHUNK)
    assert len(next(chunks).table) == CHUNK

    encoded_sizes = []
    real = predict_module.encode_rows
    monkeypatch.setattr(predict_module, "encode_rows", lambda run, table, *a, **kw: encoded_sizes.append(len(table)) or real(run, table, *a, **kw))
    assert predict_file(run, str(tmp_path / "new.parquet"), str(tmp_path / "out.csv"), chunk_rows=CHUNK).rows == 20
    assert encoded_sizes == [7, 7, 6]


@pytest.mark.parametrize("kind, line", [("csv", 26), ("jsonl", 25)])
def test_a_bad_row_in_a_later_chunk_is_named_by_its_line_and_its_neighbours_are_predicted(run, demo_run, tmp_path, kind, line):
    table = rows(demo_run)
    table.loc[23, "reading"] = "n/a"  # chunk 3; in the CSV, row 3's note takes two lines, so row 23 starts on line 26
    source = write_rows(table, tmp_path / f"new.{kind}")
    if kind == "jsonl":  # a blank line before it: JSON lines count lines as they are in the file
        text = open(source).read().splitlines()
        open(source, "w").write("\n".join(text[:10] + [""] + text[10:]) + "\n")
    written = predict_file(run, source, str(tmp_path / "out.csv"), "skip", chunk_rows=CHUNK)
    assert written.rows == 39 and written.skipped == 1 and written.skipped_file == tmp_path / "out.skipped.jsonl"
    assert pd.read_csv(tmp_path / "out.csv")["row"].tolist() == [row for row in range(40) if row != 23]
    assert [json.loads(record) for record in written.skipped_file.read_text().splitlines()] == [
        {"split": "predict", "row": 23, "file": source, "place": f"line {line}", "column": "reading",
         "reason": "not a number: 'n/a'"}]

    with pytest.raises(PlaitError, match=rf"new\.{kind}, line {line}, column 'reading': not a number"):
        predict_file(run, source, str(tmp_path / "again.csv"), "error", chunk_rows=CHUNK)
    assert not (tmp_path / "again.csv").exists() and not list(tmp_path.glob(".again.csv.parts-*"))


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_parts_join_into_one_table_whatever_a_chunk_holds(tmp_path, kind):
    chunks = [
        pd.DataFrame({"row": [0, 1], "label_pred": ["a", "b"], "note": [None, None], "vector": [[1.0, 2.0], [3.0, 4.0]]}),
        pd.DataFrame({"row": pd.Series([], dtype="int64"), "label_pred": pd.Series([], dtype="float64"),
                      "note": pd.Series([], dtype="float64"), "vector": pd.Series([], dtype=object)}),  # every row skipped
        pd.DataFrame({"row": [4], "label_pred": ["c"], "note": ["late"], "vector": [[5.0, 6.0]]}),
    ]
    output = tmp_path / f"out.{kind}"
    with Parts.beside(str(output), World()) as parts:
        for index, frame in enumerate(chunks):
            parts.write(index, frame)
        parts.finish([len(frame) for frame in chunks], tmp_path / "out.skipped.jsonl")
    assert [path.name for path in tmp_path.iterdir()] == [output.name]
    joined = (pd.read_csv(output) if kind == "csv" else pd.read_json(output, lines=True) if kind == "jsonl"
              else pd.read_parquet(output))
    assert joined["row"].tolist() == [0, 1, 4] and joined["label_pred"].tolist() == ["a", "b", "c"]
    assert joined["note"].tolist()[2] == "late" and pd.isna(joined["note"].tolist()[0])
    if kind == "csv":
        assert list(joined.columns) == ["row", "label_pred", "note", "vector_0", "vector_1"]
    else:
        assert [list(v) for v in joined["vector"]] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def test_a_folder_of_files_is_chunked_over_its_sorted_files(run, demo_run, tmp_path):
    photos = sorted((demo_run.parent / "data" / "images").glob("*.png"))[:10]
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in reversed(photos):
        (folder / photo.name).write_bytes(photo.read_bytes())
    expected = predict_paths(run, sorted(str(path) for path in folder.iterdir()))
    assert predict_file(run, str(folder), str(tmp_path / "out.parquet"), chunk_rows=3).rows == 10
    assert_same_predictions(pd.read_parquet(tmp_path / "out.parquet"), expected)


@pytest.mark.slow
def test_two_processes_write_what_one_does_in_input_order(run, demo_run, tmp_path):
    table = rows(demo_run)
    table.loc[[2, 10, 30], "reading"] = "n/a"  # bad rows in chunks 0, 1 and 4: ranks 0, 1 and 0
    source = write_rows(table, tmp_path / "new.csv")
    one = predict_file(run, source, str(tmp_path / "one.csv"), "skip", chunk_rows=CHUNK)
    assert one.rows == 37 and one.skipped == 3

    result = run_cli("predict", demo_run, "--input", source, "--output", tmp_path / "two.csv", "--on-bad-sample", "skip",
                     "--chunk-rows", CHUNK, "--nproc", 2)
    assert result.stdout.count("wrote 37 predictions") == 1  # rank 0 alone speaks
    assert_same_predictions(pd.read_csv(tmp_path / "two.csv"), pd.read_csv(tmp_path / "one.csv"))
    assert (tmp_path / "two.skipped.jsonl").read_text() == (tmp_path / "one.skipped.jsonl").read_text()
    assert [json.loads(line)["place"] for line in (tmp_path / "two.skipped.jsonl").read_text().splitlines()] == [
        "line 4", "line 13", "line 33"]

    predict_file(run, source, str(tmp_path / "one.parquet"), "skip", chunk_rows=CHUNK)
    run_cli("predict", demo_run, "--input", source, "--output", tmp_path / "two.parquet", "--on-bad-sample", "skip",
            "--chunk-rows", CHUNK, "--nproc", 2)
    two = pd.read_parquet(tmp_path / "two.parquet")
    assert_same_predictions(two, pd.read_parquet(tmp_path / "one.parquet"))
    assert two["row"].tolist() == [row for row in range(40) if row not in (2, 10, 30)]
    assert not list(tmp_path.glob(".*.parts-*"))


@pytest.mark.slow
def test_a_bad_row_on_rank_1_ends_every_rank_and_leaves_nothing(demo_run, tmp_path):
    table = rows(demo_run)
    table.loc[10, "reading"] = "n/a"  # chunk 1: rank 1's
    source = write_rows(table, tmp_path / "new.csv")
    result = run_cli("predict", demo_run, "--input", source, "--output", tmp_path / "out" / "predictions.csv",
                     "--on-bad-sample", "error", "--chunk-rows", CHUNK, "--nproc", 2, check=False)
    assert result.returncode != 0
    assert f"error (rank 1 of 2): {source}, line 13, column 'reading': not a number: 'n/a'" in result.stderr
    assert "error (rank 0 of 2): stopped, as rank 1 of 2 failed" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []  # neither the output nor the parts folder
