"""The MELD layout, as published: `{train,dev,test}_sent_emo.csv` with columns `Sr No., Utterance, Speaker, Emotion,
Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime`, and one folder of clips per split named
`dia{Dialogue_ID}_utt{Utterance_ID}.mp4`.

`data.format: meld` with `data.table` set to the MELD folder reads all three splits (or to one of the CSVs, for
that split alone). Every row gains `clip` (the full path of its clip, whether or not the file exists: a missing
clip is then reported by the bad-sample policy) and `split`. Utterances are read in UTF-8 (cp1252 when the file is
not valid UTF-8) and their typographic punctuation, including the mis-decoded forms found in the published CSVs,
is turned into plain ASCII so every tokenizer sees the same words.
"""

from __future__ import annotations

import io
import re

import pandas as pd

from plait.data import remote
from plait.data.places import RowPlaces, joined
from plait.errors import PlaitError

CSV_NAMES = {"train": "train_sent_emo.csv", "validation": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
# where each split's clips are after unpacking MELD.Raw's tarballs, and the plainer names people rename them to
CLIP_FOLDERS = {
    "train": ["train_splits", "train/train_splits", "train"],
    "validation": ["dev_splits_complete", "dev/dev_splits_complete", "dev_splits", "dev"],
    "test": ["output_repeated_splits_test", "test/output_repeated_splits_test", "test_splits", "test"],
}
REQUIRED = ("Utterance", "Dialogue_ID", "Utterance_ID")

# cp1252 punctuation, as it appears after a wrong decode (UTF-8 bytes read as cp1252, or cp1252 read as Latin-1)
MOJIBAKE = {"â€™": "'", "â€˜": "'", "â€œ": '"', "â€\x9d": '"', "â€": '"', "â€¦": "...", "â€”": "-", "â€“": "-", "Â": ""}
PLAIN = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": "-", "\u2013": "-",
         "\x92": "'", "\x91": "'", "\x93": '"', "\x94": '"', "\x85": "...", "\x97": "-", "\x96": "-", "\xa0": " "}
MOJIBAKE_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(MOJIBAKE, key=len, reverse=True)))
PLAIN_PATTERN = re.compile("|".join(map(re.escape, PLAIN)))


def plain_punctuation(text: str) -> str:
    """Curly quotes, ellipses and dashes (and their mis-decoded forms) → ASCII."""
    text = MOJIBAKE_PATTERN.sub(lambda match: MOJIBAKE[match.group()], text)
    return PLAIN_PATTERN.sub(lambda match: PLAIN[match.group()], text)


def join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def read_csv_text(url: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(remote.read_text(url)), dtype=str, keep_default_na=False, na_values=[""])


def clip_folder(root: str, split: str) -> str:
    filesystem, _ = remote.filesystem(root)
    for candidate in CLIP_FOLDERS[split]:
        folder = join(root, candidate)
        if filesystem.isdir(folder):
            return folder
    return join(root, CLIP_FOLDERS[split][0])  # clips then count as missing, one bad sample per row


def read_split(csv_url: str, root: str, split: str) -> pd.DataFrame:
    table = read_csv_text(csv_url)
    table.columns = [str(c).strip() for c in table.columns]
    absent = [c for c in REQUIRED if c not in table.columns]
    if absent:
        raise PlaitError(f"{csv_url}: not a MELD CSV (no column {', '.join(map(repr, absent))})")
    folder = clip_folder(root, split)
    table["Utterance"] = table["Utterance"].map(lambda u: plain_punctuation(u) if isinstance(u, str) else u)
    table["clip"] = [join(folder, f"dia{int(d)}_utt{int(u)}.mp4") for d, u in zip(table["Dialogue_ID"], table["Utterance_ID"])]
    table["split"] = split
    return table


def read_meld(url: str) -> pd.DataFrame:
    """A MELD folder (all three splits) or one of its CSVs (that split) → one table with `clip` and `split`."""
    filesystem, _ = remote.filesystem(url)
    if url.lower().endswith(".csv"):
        root, name = url.rstrip("/").rsplit("/", 1) if "/" in url else (".", url)
        split = next((s for s, csv in CSV_NAMES.items() if name.startswith(csv.split("_")[0])), None)
        if split is None:
            raise PlaitError(f"{url}: a MELD CSV is named train_, dev_ or test_sent_emo.csv")
        table = read_split(url, root, split)
        table.attrs["places"] = RowPlaces.of_file(url, "csv")
        return table
    if not filesystem.isdir(url):
        raise PlaitError(f"{url}: no such MELD folder")
    found = {split: join(url, name) for split, name in CSV_NAMES.items() if filesystem.isfile(join(url, name))}
    if not found:
        raise PlaitError(f"{url}: no MELD CSV here (looked for {', '.join(CSV_NAMES.values())})")
    tables = {csv: read_split(csv, url, split) for split, csv in found.items()}
    table = pd.concat(list(tables.values()), ignore_index=True)
    table.attrs["places"] = joined([(len(part), RowPlaces.of_file(csv, "csv")) for csv, part in tables.items()], url)
    return table
