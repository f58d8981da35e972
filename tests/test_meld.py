"""The MELD layout: the published CSVs and clip folders, missing clips, and the CSVs' non-ASCII punctuation."""

from __future__ import annotations

import pandas as pd
import pytest

from plait.data.meld import plain_punctuation, read_meld
from plait.data.tables import read_table
from plait.errors import PlaitError

COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode",
           "StartTime", "EndTime"]


def write_split(folder, csv_name, clip_folder, rows, encoding="utf-8"):
    records = [[i + 1, text, "Joey", emotion, "neutral", dialogue, turn, 1, 2, "00:01:02,003", "00:01:04,500"]
               for i, (text, emotion, dialogue, turn) in enumerate(rows)]
    pd.DataFrame(records, columns=COLUMNS).to_csv(folder / csv_name, index=False, encoding=encoding)
    (folder / clip_folder).mkdir(parents=True, exist_ok=True)
    for _, _, dialogue, turn in rows:
        (folder / clip_folder / f"dia{dialogue}_utt{turn}.mp4").write_bytes(b"clip")


def test_a_meld_folder_reads_all_splits_with_clip_paths(tmp_path):
    write_split(tmp_path, "train_sent_emo.csv", "train_splits", [("Hi.", "joy", 0, 0), ("Bye.", "anger", 0, 1)])
    write_split(tmp_path, "dev_sent_emo.csv", "dev_splits_complete", [("So?", "neutral", 3, 0)])
    write_split(tmp_path, "test_sent_emo.csv", "output_repeated_splits_test", [("Oh.", "fear", 7, 2)])
    table = read_table(str(tmp_path), "meld")
    assert list(table["split"]) == ["train", "train", "validation", "test"]
    assert list(table["clip"]) == [str(tmp_path / p) for p in (
        "train_splits/dia0_utt0.mp4", "train_splits/dia0_utt1.mp4",
        "dev_splits_complete/dia3_utt0.mp4", "output_repeated_splits_test/dia7_utt2.mp4")]
    assert list(table.columns[: len(COLUMNS)]) == COLUMNS and table["Emotion"].tolist() == ["joy", "anger", "neutral", "fear"]


def test_one_csv_reads_its_split_and_renamed_clip_folders_are_found(tmp_path):
    write_split(tmp_path, "dev_sent_emo.csv", "dev", [("So?", "neutral", 3, 0)])
    table = read_meld(str(tmp_path / "dev_sent_emo.csv"))
    assert table["split"].tolist() == ["validation"] and table["clip"][0] == str(tmp_path / "dev" / "dia3_utt0.mp4")


def test_typographic_and_misdecoded_punctuation_becomes_ascii(tmp_path):
    assert plain_punctuation("I can’t… “no” — ok") == "I can't... \"no\" - ok"
    assert plain_punctuation("Iâ€™m fine") == "I'm fine"  # UTF-8 bytes once read as cp1252
    assert plain_punctuation("You\x92re here\x85") == "You're here..."  # cp1252 bytes read as Latin-1
    write_split(tmp_path, "train_sent_emo.csv", "train_splits", [("It’s “fine”…", "joy", 0, 0)], encoding="cp1252")
    table = read_meld(str(tmp_path))  # not valid UTF-8: read as cp1252 instead of failing
    assert table["Utterance"][0] == 'It\'s "fine"...'


def test_not_meld_is_a_clear_error(tmp_path):
    with pytest.raises(PlaitError, match="no MELD CSV here"):
        read_meld(str(tmp_path))
    (tmp_path / "train_sent_emo.csv").write_text("a,b\n1,2\n")
    with pytest.raises(PlaitError, match="not a MELD CSV"):
        read_meld(str(tmp_path))
    with pytest.raises(PlaitError, match="no such MELD folder"):
        read_meld(str(tmp_path / "absent"))
