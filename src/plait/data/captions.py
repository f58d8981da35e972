"""Image–caption datasets in their published layouts, read into one row per (image, caption) pair.

`data.format` names the layout; `data.table` is the captions file, or the folder holding it:

- `flickr30k`: Flickr30k or Flickr8k captions in any of their three published forms. Kaggle's `results.csv`
  (header `image_name| comment_number| comment`, pipe-separated, values padded with a space), the original
  `results_20130124.token` (no header, lines `1000092795.jpg#0<TAB>caption`; Flickr8k's `Flickr8k.token.txt` is
  alike), or Kaggle's `captions.txt` (header `image,caption`; a caption's commas may be unquoted, so everything
  after the first comma is the caption). The form is told by the first line, not the file name. No splits.
- `coco`: `captions_{train,val,test}{2014,2017}.json` (`images: [{id, file_name}]`, `annotations: [{image_id,
  caption}]`), one file or a COCO folder holding `annotations/captions_*.json` (or the files themselves). The
  split comes from the file name: `train*` → train, `val*` → validation, `test*` → test.
- `karpathy`: Karpathy's split files `dataset_{flickr8k,flickr30k,coco}.json` (`images: [{filename, filepath?,
  split, sentences: [{raw, tokens}]}]`). `restval`, the part of COCO's val2014 that Karpathy moved into
  training, counts as train.

Every layout gives the columns `image`, `caption` (the raw text, stripped), `image_id` (one value per image: the
file name, Karpathy's `filepath/filename`, COCO's numeric id as text), `caption_number` (0..k-1 within the
image, in file order) and, where the layout defines splits, `split`. Rows keep the file's order. A caption with
no text (Kaggle's `results.csv` has such rows) is left out and counted; a caption fused into the number column
(`img.jpg| 4 A dog runs .`, also in `results.csv`) is recovered.

Images are looked for near the captions file, by checking whether the first image exists in a few candidate
folders (the file's own folder, `images/`, `flickr30k_images/`, COCO's split folder such as `val2017/` beside
or one level above `annotations/`, ...). When found, `image` holds each image's absolute path (its full URL for
a remote table), which opens whatever `data.root` is, as MELD's clip paths do. When not, `image` keeps the name
as the captions file writes it, which resolves against `data.root` (default: the table's folder), and the image
input names any file it cannot open.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field

import pandas as pd

from plait.console import say
from plait.data import remote
from plait.data.meld import join
from plait.data.places import RowPlaces
from plait.errors import PlaitError

LAYOUTS = ("flickr30k", "coco", "karpathy")
FLICKR_FILES = ("results.csv", "captions.txt", "results_20130124.token", "Flickr8k.token.txt")
# where the images are, relative to the captions file's folder: the names of the published archives once unpacked
IMAGE_FOLDERS = ("", "images", "Images", "flickr30k_images", "flickr30k-images", "flickr8k_images",
                 "Flicker8k_Dataset", "Flickr8k_Dataset")
PIPE_HEADER = ["image_name", "comment_number", "comment"]
FUSED = re.compile(r"\s*\d+\s+(\S.*)")  # `4 A dog runs .`: the number and the comment with no pipe between
TOKEN_LINE = re.compile(r"[^\t]+#\d+\t")
COCO_SPLITS = {"train": "train", "val": "validation", "test": "test"}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "validation", "test": "test"}


@dataclass
class Pairs:
    """(image, caption) pairs as they are read; a caption without text is counted and left out."""

    source: str
    images: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    places: list[tuple[str, str]] = field(default_factory=list)  # (file, place in it) of each pair, for messages
    dropped: int = 0
    first_dropped: str = ""

    def add(self, image: str, caption, image_id: str, split: str | None, where: str, file: str | None = None) -> None:
        text = caption.strip() if isinstance(caption, str) else ""
        if not text:
            self.dropped += 1
            self.first_dropped = self.first_dropped or where
            return
        self.places.append((file or self.source, where))
        self.images.append(image)
        self.captions.append(text)
        self.image_ids.append(image_id)
        self.splits.append(split)

    def locate_images(self, start: int, candidates: list[str]) -> None:
        """Pairs from `start` on name images relative to one folder: find it among `candidates`, make paths full."""
        if start >= len(self.images):
            return
        first = self.images[start]
        filesystem, _ = remote.filesystem(candidates[0])
        folder = next((c for c in dict.fromkeys(candidates) if filesystem.exists(join(c, first))), None)
        if folder is None:
            say(f"{self.source}: image {first!r} is in none of {', '.join(dict.fromkeys(candidates))}; "
                "image paths stay as written, relative to data.root")
            return
        self.images[start:] = [join(folder, name) for name in self.images[start:]]

    def table(self) -> pd.DataFrame:
        if self.dropped:
            say(f"{self.source}: {self.dropped} caption(s) without text left out (the first at {self.first_dropped})")
        table = pd.DataFrame({"image": self.images, "caption": self.captions, "image_id": self.image_ids})
        table["caption_number"] = table.groupby("image_id", sort=False).cumcount()
        if any(split is not None for split in self.splits):
            table["split"] = self.splits
        table.attrs["places"] = RowPlaces.of_labels(self.source, self.places)
        return table


def parent(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[0]


def name_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def near(folder: str) -> list[str]:
    """The image-folder candidates in `folder` and in the folder above it."""
    return [join(base, name) if name else base for base in (folder, parent(folder)) for name in IMAGE_FOLDERS]


def read_text(url: str, what: str) -> str:
    try:
        return remote.read_text(url)
    except (FileNotFoundError, IsADirectoryError):
        raise PlaitError(f"{url}: {what} not found") from None


def load_json(url: str, what: str):
    try:
        return json.loads(read_text(url, what))
    except json.JSONDecodeError as error:
        raise PlaitError(f"{url}: not valid JSON ({error.msg} at line {error.lineno}); expected {what}") from None


def read_captions(url: str, layout: str) -> pd.DataFrame:
    """A captions file or folder in `layout` (`flickr30k`, `coco`, `karpathy`; `auto`: a .json file whose content
    tells COCO from Karpathy) → one row per (image, caption) pair."""
    url = url if "://" in url else os.path.abspath(os.path.expanduser(url))
    if layout == "flickr30k":
        return read_flickr(url)
    if layout == "coco":
        return read_coco(url)
    if layout == "karpathy":
        return read_karpathy(url)
    if layout != "auto":
        raise PlaitError(f"{url}: unknown caption layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    document = load_json(url, "a JSON table")
    kind = json_layout(document)
    if kind is None:
        raise PlaitError(f"{url}: cannot tell what this JSON holds: plait reads COCO captions (an object with "
                         "`images` and `annotations`) and Karpathy split files (`images` with `sentences`); "
                         "set data.format to coco or karpathy, or write a table as .jsonl")
    pairs = Pairs(url)
    if kind == "coco":
        add_coco_file(pairs, url, document, split_of_coco_file(url), [])
    else:
        add_karpathy(pairs, url, document)
    return pairs.table()


def json_layout(document) -> str | None:
    """`coco`, `karpathy`, or None for any other JSON."""
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        return None
    if isinstance(document.get("annotations"), list):
        return "coco"
    images = document["images"]
    if images and isinstance(images[0], dict) and "sentences" in images[0]:
        return "karpathy"
    return None


# ---- Flickr30k / Flickr8k: results.csv, .token, captions.txt ----

def flickr_file(url: str) -> str:
    """`url` itself, or the captions file in the folder `url` (or in its `flickr30k_images/`, as Kaggle unpacks)."""
    filesystem, _ = remote.filesystem(url)
    if not filesystem.isdir(url):
        if not filesystem.exists(url):
            raise PlaitError(f"{url}: no such Flickr captions file or folder")
        return url
    for folder in (url, join(url, "flickr30k_images")):
        for name in FLICKR_FILES:
            if filesystem.isfile(join(folder, name)):
                return join(folder, name)
    tokens = sorted(name_of(p) for p in filesystem.ls(url, detail=False) if p.endswith(".token"))
    if tokens:
        return join(url, tokens[0])
    raise PlaitError(f"{url}: no Flickr captions file here (looked for {', '.join(FLICKR_FILES)} and *.token)")


def pipe_rows(lines: list[str]):
    """Kaggle's results.csv → (line number, image, caption); `|` inside a comment stays in the comment."""
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            parts = line.split("|", 2)
            fused = FUSED.fullmatch(parts[1]) if len(parts) == 2 else None
            caption = parts[2] if len(parts) == 3 else fused.group(1) if fused else ""
            yield number, parts[0].strip(), caption


def token_rows(lines: list[str]):
    """`1000092795.jpg#0<TAB>caption` → (line number, image, caption)."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            key, _, caption = line.partition("\t")
            yield number, key.rsplit("#", 1)[0].strip(), caption


def comma_rows(lines: list[str]):
    """captions.txt → (line number, image, caption): everything after the first comma is the caption, whether
    or not it was quoted."""
    reader = csv.reader(lines[1:])
    before = 0
    for fields in reader:
        if fields:
            yield before + 2, fields[0].strip(), ",".join(fields[1:])  # the line the record starts on (header: 1)
        before = reader.line_num


def read_flickr(url: str) -> pd.DataFrame:
    url = flickr_file(url)
    lines = read_text(url, "Flickr captions file").splitlines()
    first = lines[0] if lines else ""
    if [part.strip() for part in first.split("|")] == PIPE_HEADER:
        rows = pipe_rows(lines)
    elif [part.strip().lower() for part in first.split(",")] == ["image", "caption"]:
        rows = comma_rows(lines)
    elif TOKEN_LINE.match(first):
        rows = token_rows(lines)
    else:
        raise PlaitError(f"{url}: not a Flickr captions file: expected the header `image_name| comment_number| "
                         "comment` (Kaggle's results.csv), the header `image,caption` (captions.txt) or lines "
                         f"`NAME.jpg#N<TAB>caption` (.token); the first line is {first[:80]!r}")
    pairs = Pairs(url)
    for number, image, caption in rows:
        pairs.add(image, caption, image, None, f"line {number}")
    pairs.locate_images(0, near(parent(url)))
    return pairs.table()


# ---- COCO: captions_{train,val,test}{2014,2017}.json ----

def split_of_coco_file(url: str) -> str | None:
    stem = name_of(url).removeprefix("captions_")
    return next((split for prefix, split in COCO_SPLITS.items() if stem.startswith(prefix)), None)


def coco_files(folder: str) -> list[str]:
    """The captions_*.json files of a COCO folder, train then validation then test."""
    filesystem, _ = remote.filesystem(folder)
    for where in (join(folder, "annotations"), folder):
        if filesystem.isdir(where):
            names = sorted(name_of(p) for p in filesystem.ls(where, detail=False))
            found = [join(where, n) for n in names if n.startswith("captions_") and n.endswith(".json")]
            if found:
                order = list(COCO_SPLITS.values())
                return sorted(found, key=lambda f: order.index(split_of_coco_file(f) or "train"))
    raise PlaitError(f"{folder}: no COCO captions here (looked for annotations/captions_*.json and captions_*.json)")


def add_coco_file(pairs: Pairs, url: str, document, split: str | None, roots: list[str]) -> None:
    """One captions JSON's pairs; its images are looked for in the split folder named like the file
    (`captions_val2017.json` → `val2017/`) beside it, above `annotations/`, or under one of `roots`."""
    if json_layout(document) != "coco":
        raise PlaitError(f"{url}: not a COCO captions file (expected a JSON object with `images` and `annotations` lists)")
    try:
        file_names = {image["id"]: image["file_name"] for image in document["images"]}
    except (KeyError, TypeError):
        raise PlaitError(f"{url}: every entry of `images` needs `id` and `file_name`") from None
    start = len(pairs.images)
    for index, annotation in enumerate(document["annotations"]):
        try:
            image_id, caption = annotation["image_id"], annotation["caption"]
        except (KeyError, TypeError):
            raise PlaitError(f"{url}: annotations[{index}] needs `image_id` and `caption`") from None
        if image_id not in file_names:
            raise PlaitError(f"{url}: annotations[{index}] names image_id {image_id!r}, which is not in `images`")
        pairs.add(file_names[image_id], caption, str(image_id), split, f"annotations[{index}]", url)
    folder = parent(url)
    split_folder = name_of(url).removeprefix("captions_").removesuffix(".json")  # e.g. val2017
    bases = [folder, parent(folder), *roots]
    candidates = [join(b, split_folder) for b in bases] + [join(b, f"images/{split_folder}") for b in bases]
    pairs.locate_images(start, candidates + bases + [join(b, "images") for b in bases])


def read_coco(url: str) -> pd.DataFrame:
    filesystem, _ = remote.filesystem(url)
    pairs = Pairs(url)
    if filesystem.isdir(url):
        for file in coco_files(url):
            split = split_of_coco_file(file)
            if split is None:
                raise PlaitError(f"{file}: cannot tell its split from the name (captions_train*, captions_val* or captions_test*)")
            add_coco_file(pairs, file, load_json(file, "COCO captions"), split, [url])
    elif filesystem.isfile(url):
        add_coco_file(pairs, url, load_json(url, "COCO captions"), split_of_coco_file(url), [])
    else:
        raise PlaitError(f"{url}: no such COCO captions file or folder")
    return pairs.table()


# ---- Karpathy: dataset_{flickr8k,flickr30k,coco}.json ----

def add_karpathy(pairs: Pairs, url: str, document) -> None:
    if json_layout(document) != "karpathy":
        raise PlaitError(f"{url}: not a Karpathy split file (expected a JSON object whose `images` each have "
                         "`filename`, `split` and `sentences`)")
    for index, image in enumerate(document["images"]):
        try:
            path = f"{image['filepath']}/{image['filename']}" if image.get("filepath") else image["filename"]
            split = KARPATHY_SPLITS.get(image["split"])
            sentences = list(image["sentences"])
        except (KeyError, TypeError):
            raise PlaitError(f"{url}: images[{index}] needs `filename`, `split` and `sentences`") from None
        if split is None:
            raise PlaitError(f"{url}: images[{index}] ({path}) has split {image['split']!r}; "
                             f"expected one of {', '.join(KARPATHY_SPLITS)}")
        for number, sentence in enumerate(sentences):
            text = (sentence.get("raw") or " ".join(sentence.get("tokens", []))) if isinstance(sentence, dict) else ""
            pairs.add(path, text, path, split, f"images[{index}].sentences[{number}]")
    pairs.locate_images(0, near(parent(url)))


def read_karpathy(url: str) -> pd.DataFrame:
    filesystem, _ = remote.filesystem(url)
    if filesystem.isdir(url):
        found = sorted(n for n in map(name_of, filesystem.ls(url, detail=False)) if n.startswith("dataset_") and n.endswith(".json"))
        if len(found) != 1:
            raise PlaitError(f"{url}: expected one Karpathy split file (dataset_*.json) here, found "
                             f"{', '.join(found) or 'none'}; set data.table to the file")
        url = join(url, found[0])
    pairs = Pairs(url)
    add_karpathy(pairs, url, load_json(url, "a Karpathy split file"))
    return pairs.table()
