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


def test_generated_meld_has_the_published_layout_and_decodable_clips_with_both_tracks(tmp_path):
    from plait.data.features.audio import AudioFeature, AudioSettings
    from plait.data.features.video import VideoFeature, VideoSettings
    from plait.demo.synthetic_meld import EMOTIONS, SENTIMENT, make_meld

    make_meld(tmp_path, dialogues=(3, 1, 1), seed=3)
    table = read_meld(str(tmp_path))
    assert list(table.columns[: len(COLUMNS)]) == COLUMNS
    assert set(table["Emotion"]) <= set(EMOTIONS) and all(SENTIMENT[e] == s for e, s in zip(table["Emotion"], table["Sentiment"]))
    assert set(table["split"]) == {"train", "validation", "test"}
    assert table["Utterance"].map(str.isascii).all()  # the generated ’ and … arrive as ASCII
    video = VideoFeature(VideoSettings(name="video", column="clip", frames=8, size=32))
    audio = AudioFeature(AudioSettings(name="audio", column="clip", source="video_column", max_seconds=1))
    for clip in table["clip"]:
        assert int(video.encode(clip)["length"]) == 8
        assert audio.encode(clip)["value"].float().std() > 0
    again = tmp_path / "again"
    make_meld(again, dialogues=(3, 1, 1), seed=3)
    assert (again / "train_sent_emo.csv").read_bytes() == (tmp_path / "train_sent_emo.csv").read_bytes()


def test_a_missing_meld_clip_is_a_bad_sample_named_by_file(tmp_path):
    from plait.config import validate
    from plait.data.dataset import Preprocessor
    from plait.demo.synthetic_meld import make_meld

    make_meld(tmp_path, dialogues=(3, 1, 1))
    (tmp_path / "train_splits" / "dia1_utt0.mp4").unlink()
    config = validate({
        "data": {"table": str(tmp_path), "format": "meld"},
        "inputs": [{"name": "video", "type": "video", "column": "clip", "frames": 4, "size": 16, "encoder": {"name": "cnn3d"}}],
        "outputs": [{"name": "emotion", "type": "category", "column": "Emotion"}],
    })
    table = read_meld(str(tmp_path))
    train = table[table["split"] == "train"]
    missing_row = int(train.index[(train["Dialogue_ID"] == "1") & (train["Utterance_ID"] == "0")][0])
    preprocessor = Preprocessor(config, str(tmp_path))
    preprocessor.fit(train)
    with pytest.raises(PlaitError, match=rf"row {missing_row}, column 'clip': cannot read video .*dia1_utt0\.mp4': no such file"):
        preprocessor.encode(train, "train", str(tmp_path), row_numbers=train.index)
    split = preprocessor.encode(train, "train", str(tmp_path), on_bad_sample="skip", row_numbers=train.index)
    assert [s.row for s in split.skipped] == [missing_row] and len(split) == len(train) - 1


def test_no_single_cue_determines_the_emotion():
    from plait.demo.synthetic_meld import single_cue_ceiling

    assert single_cue_ceiling() == pytest.approx(3 / 8)
