"""`sequence`: a series of steps per row, each step C numbers (channels): a spectrum, a sensor trace, a time
series. A cell is a NumPy array (from an `npy` or `pickle` table), a list of numbers, or the path or URL of an
array file (`.npy`, `.npz`, `.pkl`), shaped [length] (one channel) or [length, channels] ([channels, length]
with `layout: channels_length`). Rows may differ in length.

Encoded cell: `{"value": float32 [L, C], "length": int64 []}`, cropped to at most `max_length` steps (the fitted
one, below) but neither padded nor scaled, so the preprocessing cache stores each row at its own length.
`stack` pads the cells it is given with zeros to the longest of them: `{"value": [N, L_max, C], "length": [N],
"present": bool [N]}`, a missing row having length 0. Cells read from the cache are stacked batch by batch, so
batches are padded to their own longest row; without the cache, a split is stacked once and `prepare` trims.

`prepare` (on the device) trims `value` to the batch's longest row, scales each channel with the training
split's statistics on real steps only (padding stays 0), and adds `mask`: bool [N, T], True on the first
`length` steps. A missing row leaves `prepare` as one zero step (length 1, mask True at step 0), so a packed
LSTM or a masked mean never meets an empty row; the model puts its learned 'missing' vector in that row's place
through `present`.

Fitted, for encoders: `channels` and `max_length` (the longest training sequence, at most the `max_length`
setting). Statistics are gathered in one streaming pass over the training cells, a bounded block of steps at a
time, so a memory-mapped dataset larger than memory is read once and never held whole.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from plait.data.arrays import load_array_file, release_pages
from plait.data.features.base import FileFeature
from plait.data.features.preview_media import SPARK_CHANNELS, counted, sparkline
from plait.console import say
from plait.errors import BadSample, MissingValue, PlaitError
from plait.html import captioned, image_uri, img, missing
from plait.registry import FEATURES
from plait.settings.sequence import SequenceSettings

BLOCK_STEPS = 65536  # steps converted to float64 at a time while fitting or fingerprinting
NUMBERS = "biuf"  # NumPy dtype kinds a sequence may hold: bool, signed and unsigned integers, floats
FEW_VALUES = 256  # whole numbers with no more distinct values than this may well be token ids


@dataclass
class ChannelStats:
    """Per-channel step count, mean, sum of squared deviations, minimum and maximum, merged block by block with
    Chan et al.'s parallel update (a plain sum of squares loses precision when the mean is large); and whether every
    value is a whole number, with up to FEW_VALUES + 1 of the distinct values."""

    count: int
    mean: np.ndarray
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray
    longest: int = 0
    cells: int = 0
    whole: bool = True
    distinct: set = field(default_factory=set)

    @classmethod
    def of_block(cls, block: np.ndarray) -> ChannelStats:
        mean = block.mean(axis=0)
        whole = bool((block == np.floor(block)).all())
        distinct = set(np.unique(block)[: FEW_VALUES + 1].tolist()) if whole else set()
        return cls(len(block), mean, ((block - mean) ** 2).sum(axis=0), block.min(axis=0), block.max(axis=0),
                   whole=whole, distinct=distinct)

    def merge(self, other: ChannelStats) -> ChannelStats:
        count = self.count + other.count
        delta = other.mean - self.mean
        return ChannelStats(
            count, self.mean + delta * other.count / count, self.m2 + other.m2 + delta**2 * self.count * other.count / count,
            np.minimum(self.low, other.low), np.maximum(self.high, other.high),
            max(self.longest, other.longest), self.cells + other.cells, self.whole and other.whole,
            set(sorted(self.distinct | other.distinct)[: FEW_VALUES + 1]) if self.whole and other.whole else set(),
        )


def of_cell(steps: np.ndarray) -> ChannelStats | None:
    """The statistics of one cell [L, C] (L >= 1), read a block at a time; None when it holds NaN or infinity."""
    total = None
    for start in range(0, len(steps), BLOCK_STEPS):
        block = np.asarray(steps[start : start + BLOCK_STEPS], dtype=np.float64)
        if not np.isfinite(block).all():
            return None
        stats = ChannelStats.of_block(block)
        total = stats if total is None else total.merge(stats)
    total.longest, total.cells = len(steps), 1
    return total


def window(length: int, keep: int | None, crop: str) -> tuple[int, int]:
    """The [start, stop) steps kept of a sequence of `length` steps."""
    if not keep or length <= keep:
        return 0, length
    start = {"start": 0, "end": length - keep, "center": (length - keep) // 2}[crop]
    return start, start + keep


@FEATURES.register("sequence")
class SequenceFeature(FileFeature):
    Settings = SequenceSettings
    cache_by_default: ClassVar[bool] = True  # arrays from files are decoded once into memory-mapped shards
    # scaling happens in prepare; `tokens` is checked when a cell is encoded, so a cell cached without it is checked again
    cache_keys: ClassVar[tuple[str, ...]] = ("max_length", "crop", "member", "layout", "tokens")

    def __init__(self, spec: SequenceSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.channels: int = 0  # 0 until fitted
        self.max_length: int = spec.max_length or 0  # 0: no limit (before fitting)
        self.offset: list[float] = []
        self.scale: list[float] = []
        self.vocab_size: int = 0  # `tokens`: ids run from 0 to vocab_size - 1 (0 until fitted)

    # reading a cell

    def where(self, value) -> str:
        """How a cell is named in errors: its file, when it is one."""
        return f"'{self.locate(value)}': " if isinstance(value, (str, os.PathLike)) else ""

    def member_of(self, content, source: str):
        if not isinstance(content, dict):
            return content
        names = ", ".join(map(repr, content)) or "nothing"
        if self.spec.member is None:
            if len(content) == 1:
                return next(iter(content.values()))
            raise BadSample(f"{source} holds several arrays ({names}); set `member` to the one to use")
        if self.spec.member not in content:
            raise BadSample(f"{source} has no array {self.spec.member!r} (it holds {names})")
        return content[self.spec.member]

    def load(self, value) -> np.ndarray:
        """A cell → an array as stored (a memory-mapped file stays mapped)."""
        if isinstance(value, (str, os.PathLike)):
            url = self.locate(value)
            try:
                content = load_array_file(url)
            except PlaitError as error:  # names the file and why (not found, refused pickle, not an array file)
                raise BadSample(str(error)) from None
            value = self.member_of(content, f"'{url}'")
        elif isinstance(value, dict):
            value = self.member_of(value, "the cell")
        if isinstance(value, (list, tuple)):
            try:
                value = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise BadSample(f"{self.where(value)}not a list of numbers or of equal-length lists of numbers") from None
        if not isinstance(value, np.ndarray):
            raise BadSample(f"not an array or an array file's path: {type(value).__name__} {str(value)[:60]!r}")
        return value

    def steps(self, value) -> tuple[np.ndarray, int]:
        """A cell → its kept steps [L, C], not yet converted (only they are read from a mapped file), and the index
        of the first kept step in the whole sequence."""
        array = self.load(value)
        if array.dtype.kind not in NUMBERS:
            raise BadSample(f"{self.where(value)}holds {array.dtype} values, not numbers")
        if array.ndim == 1:
            array = array[:, None]
        elif array.ndim == 2 and self.spec.layout == "channels_length":
            array = array.T
        elif array.ndim != 2:
            expected = "[length, channels]" if self.spec.layout == "length_channels" else "[channels, length]"
            raise BadSample(f"{self.where(value)}an array of shape {list(array.shape)}; expected [length] or {expected}")
        start, stop = window(len(array), self.max_length, self.spec.crop)
        return array[start:stop], start

    # learning from the training split

    def fit(self, values):
        """Per-channel statistics of the training cells (cropped as `encode` crops them). Cells that cannot be
        read, or hold NaN, or have an unusual channel count are left out here and reported by `encode`."""
        self.max_length = self.spec.max_length or 0
        by_channels: dict[int, ChannelStats] = {}
        for value in values:
            try:
                steps, _ = self.steps(value)
            except BadSample:
                continue
            stats = of_cell(steps) if len(steps) else None
            release_pages(steps)
            if stats is not None:
                channels = steps.shape[1]
                by_channels[channels] = by_channels[channels].merge(stats) if channels in by_channels else stats
        if not by_channels:
            raise BadSample("no readable, non-empty sequence of finite numbers in the training split")
        self.channels, stats = max(by_channels.items(), key=lambda item: item[1].cells)  # the most common count
        self.max_length = stats.longest
        if self.spec.tokens:
            self.fit_token_ids(stats)
            return
        if stats.whole and 2 < len(stats.distinct) <= FEW_VALUES:
            say(f"[yellow]inputs.{self.spec.name}: every step is a whole number and there are only "
                f"{len(stats.distinct)} distinct ones; if they are token ids, set `tokens: {{dim: 32}}` so that each is "
                "embedded rather than scaled as a measurement[/yellow]")
        if self.spec.scaling == "standard":
            offset, scale = stats.mean, np.sqrt(stats.m2 / stats.count)
        elif self.spec.scaling == "minmax":
            offset, scale = stats.low, stats.high - stats.low
        else:
            offset, scale = np.zeros(self.channels), np.ones(self.channels)
        self.offset, self.scale = offset.tolist(), np.where(scale > 0, scale, 1.0).tolist()

    def fit_token_ids(self, stats: ChannelStats) -> None:
        if self.channels != 1:
            raise PlaitError(f"inputs.{self.spec.name}.tokens: a step must be one token id, but the training sequences "
                             f"have {self.channels} channels")
        if not stats.whole or stats.low.min() < 0:
            raise PlaitError(f"inputs.{self.spec.name}.tokens: the training sequences hold values that are not whole "
                             f"numbers from 0 (the smallest is {stats.low.min():g})")
        self.vocab_size = self.spec.tokens.vocab_size or int(stats.high.max()) + 1
        self.offset, self.scale = [0.0], [1.0]

    def state_dict(self):
        return {"channels": self.channels, "max_length": self.max_length, "offset": self.offset, "scale": self.scale,
                "vocab_size": self.vocab_size}

    def load_state_dict(self, state):
        self.channels, self.max_length = state["channels"], state["max_length"]
        self.offset, self.scale = list(state["offset"]), list(state["scale"])
        self.vocab_size = state.get("vocab_size", 0)  # runs from before token ids had none

    # one cell, a list of cells, a batch on the device

    def fingerprint(self, value) -> str:
        """A file's content (as for every file feature); an in-memory array's dtype, shape and bytes, hashed a
        block of steps at a time so that a memory-mapped row is streamed, never copied whole."""
        if isinstance(value, (str, os.PathLike)):
            return super().fingerprint(value)
        array = self.load(value)
        if array.dtype.kind not in NUMBERS:
            self.steps(value)  # raises the BadSample naming the dtype
        hasher = hashlib.blake2b(digest_size=16)
        hasher.update(f"{array.dtype.str} {array.shape}".encode())
        rows = array.reshape(1, *array.shape) if array.ndim == 0 else array
        for start in range(0, len(rows), BLOCK_STEPS):
            hasher.update(np.ascontiguousarray(rows[start : start + BLOCK_STEPS]))
        release_pages(array)
        return hasher.hexdigest()

    def encode(self, value):
        steps, start = self.steps(value)
        if len(steps) == 0:
            raise MissingValue("empty sequence")
        if self.channels and steps.shape[1] != self.channels:
            raise BadSample(f"{self.where(value)}{steps.shape[1]} channels, but the training data has {self.channels}")
        numbers = np.array(steps, dtype=np.float32)  # a copy: the only read of a memory-mapped row
        release_pages(steps)
        bad = ~np.isfinite(numbers)
        if bad.any():
            step, channel = np.argwhere(bad)[0]
            raise BadSample(f"{self.where(value)}{int(bad.sum())} values are NaN or infinite in float32 (the first at "
                            f"step {start + int(step)}, channel {int(channel)})")
        if self.spec.tokens:
            self.check_token_ids(numbers[:, 0], start, value)
        return {"value": torch.from_numpy(numbers), "length": torch.tensor(len(numbers), dtype=torch.int64)}

    def check_token_ids(self, ids: np.ndarray, start: int, value) -> None:
        wrong = (ids < 0) | (ids >= self.vocab_size) | (ids != np.floor(ids))
        if wrong.any():
            step = int(np.argmax(wrong))
            raise BadSample(f"{self.where(value)}step {start + step} holds {ids[step]:g}, not a token id from 0 to "
                            f"{self.vocab_size - 1}")

    def empty(self):
        """A missing cell, as `stack` pads one: a zero step of length 0."""
        return {"value": torch.zeros(1, max(self.channels, 1)), "length": torch.tensor(0, dtype=torch.int64)}

    def stack(self, values):
        """Cells (None: missing) → zero-padded to the longest cell of this list (see the module's docstring)."""
        cells = [cell for cell in values if cell is not None]
        channels = cells[0]["value"].shape[1] if cells else max(self.channels, 1)
        longest = max((cell["value"].shape[0] for cell in cells), default=1)
        value = torch.zeros(len(values), longest, channels)
        length = torch.zeros(len(values), dtype=torch.int64)
        for row, cell in enumerate(values):
            if cell is not None:
                length[row] = cell["value"].shape[0]
                value[row, : cell["value"].shape[0]] = cell["value"]
        return {"value": value, "length": length, "present": torch.tensor([v is not None for v in values], dtype=torch.bool)}

    def prepare(self, batch, training):
        """Trim to the batch's longest row, scale real steps per channel, add `mask`; missing rows become one
        zero step (see the module's docstring)."""
        length = batch["length"]
        steps = max(int(length.max()), 1) if length.numel() else 1
        value = batch["value"][:, :steps]
        if self.spec.scaling != "none" and self.offset and not self.spec.tokens:
            offset = torch.tensor(self.offset, dtype=value.dtype, device=value.device)
            scale = torch.tensor(self.scale, dtype=value.dtype, device=value.device)
            real = torch.arange(steps, device=value.device) < length[:, None]
            value = (value - offset) / scale * real[..., None]
        length = length.clamp(min=1)
        mask = torch.arange(steps, device=value.device) < length[:, None]
        return {**batch, "value": value, "length": length, "mask": mask}

    def preview(self, value, size):
        """A sparkline of up to four channels, captioned with the shape of the steps the model sees."""
        steps, _ = self.steps(value)  # cropped to max_length, laid out [L, C]
        if len(steps) == 0:
            return missing("empty sequence")
        length, channels = steps.shape
        caption = f"{counted(length, 'step')} × {counted(channels, 'channel')}"
        if channels > SPARK_CHANNELS:
            caption += f" (first {SPARK_CHANNELS} drawn)"
        picture = sparkline(steps, size, max(1, size // 2))
        return captioned(img(image_uri(picture, "PNG"), "sparkline"), caption)
