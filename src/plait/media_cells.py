"""In-memory media in DataFrame cells, written as files for the data path (which reads, decodes and caches files).

`plait.Model` takes a table whose media cells are file paths or objects in memory:

- an image: a PIL image, or a uint8 array [H, W], [H, W, 3] or [H, W, 4] → PNG;
- a video: a uint8 array of RGB frames [T, H, W, 3], or `(frames, fps)` → an uncompressed AVI (any frame size,
  the pixels exactly as given; 25 frames per second when no rate is given);
- audio: a float array of samples in [-1, 1], mono [S], or [S, channels] or [channels, S] (the shorter side is
  the channels; averaged to mono), or `(samples, sample_rate)` → 16-bit PCM WAV (at the input's `sample_rate` when
  no rate is given).

Images and clips are told apart by their shape; an array of samples is audio only in a column the config reads as
`type: audio` (elsewhere a 1-D array is a sequence or a vector). A file is named after its content, so the same
image on several rows (an image with five captions) is one file, as the caption references and the split expect.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from plait.errors import PlaitError

DEFAULT_FPS = 25


def image_of(cell):
    """The cell as an image to write (PIL image or uint8 array), or None."""
    from PIL import Image

    if isinstance(cell, Image.Image):
        return cell
    if isinstance(cell, np.ndarray) and cell.dtype == np.uint8 and (cell.ndim == 2 or (cell.ndim == 3 and cell.shape[2] in (3, 4))):
        return cell
    return None


def clip_of(cell) -> tuple[np.ndarray, float] | None:
    """The cell as (frames uint8 [T, H, W, 3], fps), or None."""
    frames, fps = cell if isinstance(cell, tuple) and len(cell) == 2 else (cell, DEFAULT_FPS)
    if isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[3] == 3:
        return frames, fps
    return None


def sound_of(cell, sample_rate: int) -> tuple[np.ndarray, int] | None:
    """The cell as (mono float32 samples, sample rate), or None."""
    samples, rate = cell if isinstance(cell, tuple) and len(cell) == 2 else (cell, sample_rate)
    if not isinstance(samples, np.ndarray) or samples.dtype.kind != "f" or samples.ndim not in (1, 2):
        return None
    if samples.ndim == 2:  # mixed down to mono, whichever side holds the channels
        samples = samples.mean(axis=1 if samples.shape[0] >= samples.shape[1] else 0)
    return np.clip(samples, -1.0, 1.0).astype(np.float32), int(rate)


def write_clip(path: Path, frames: np.ndarray, fps: float) -> None:
    """Uncompressed RGB frames in an AVI: exact pixels and any width and height (H.264 in yuv420p needs even ones)."""
    import av

    from plait.demo.synthetic_media import encode_frames

    if len(frames) == 0:
        raise PlaitError(f"{path.name}: a clip needs at least one frame")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=Fraction(float(fps)).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr24"
        encode_frames(container, stream, frames)


def _no_sound(clip, path: Path) -> str:
    raise PlaitError(f"{path.parent.name}: frames in memory have no sound track for an audio input with "
                     "`source: video_column` to read; give that column file paths")


def _writer(kind: str, sample_rate: int):
    """(recognise, write) for one input type: `recognise(cell)` is what to write or None; `write(what, path)`
    writes it and returns the path (with its suffix)."""
    from PIL import Image

    from plait.demo.synthetic_media import write_audio

    if kind == "sound of video":
        return clip_of, _no_sound
    if kind == "image":
        return image_of, lambda image, path: _saved(path.with_suffix(".png"), lambda p: (
            image if isinstance(image, Image.Image) else Image.fromarray(image)).save(p))
    if kind == "video":
        return clip_of, lambda clip, path: _saved(path.with_suffix(".avi"), lambda p: write_clip(p, *clip))
    if kind == "audio":
        return (lambda cell: sound_of(cell, sample_rate),
                lambda sound, path: _saved(path.with_suffix(".wav"), lambda p: write_audio(p, *sound)))
    return None


def _saved(path: Path, write) -> str:
    if not path.exists():  # the same content on another row: the same file
        write(path)
    return str(path)


def content_name(item) -> str:
    """A file name from what a cell holds: equal images, clips and sounds get the same name."""
    from PIL import Image

    digest = hashlib.sha256()
    for part in item if isinstance(item, tuple) else (item,):
        if isinstance(part, Image.Image):
            digest.update(f"{part.mode}{part.size}".encode())
            part = part.tobytes()
        elif isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            part = np.ascontiguousarray(part).tobytes()
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
    return digest.hexdigest()[:20]


def guessed_kind(cells: list) -> str | None:
    """What a column without a config holds, from its cells: image or video arrays (samples need a config)."""
    if any(image_of(cell) is not None for cell in cells):
        return "image"
    if any(clip_of(cell) is not None for cell in cells):
        return "video"
    return None


def with_files(table: pd.DataFrame, folder: Path, kinds: dict[str, str] | None = None,
               sample_rates: dict[str, int] | None = None) -> pd.DataFrame:
    """`table` with the in-memory media of each column written as files under `folder/COLUMN/` and replaced by
    their paths. `kinds`: a column's input type from the config (image, video or audio); a column it does not
    name is guessed from its cells (images and clips). Other cells (paths, missing values) stay as they are. Each
    column's files go to a folder named by its position (`column-3/`), whatever the column's name."""
    kinds, sample_rates = kinds or {}, sample_rates or {}
    table = table.copy()
    for position, column in enumerate(table.columns):
        cells = table.iloc[:, position].tolist()
        kind = kinds.get(str(column)) or guessed_kind(cells)
        writer = _writer(kind, sample_rates.get(str(column), 16000)) if kind else None
        if writer is None:
            continue
        recognise, write = writer
        found = [recognise(cell) for cell in cells]
        if all(item is None for item in found):
            continue
        where = folder / f"column-{position}"
        where.mkdir(parents=True, exist_ok=True)
        table.isetitem(position, [cell if item is None else write(item, where / content_name(item))
                                  for cell, item in zip(cells, found)])
    return table
