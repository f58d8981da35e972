"""Pictures and captions for the feature types' cell previews in the report's sample gallery: photo thumbnails, a
clip's poster frame, spectrogram heatmaps, sparklines. Each feature type's `preview` puts them into
HTML (`plait.html`); they live here, below the report, because the feature types own their previews."""

from __future__ import annotations

import functools

import av
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from plait.data import media

SPARK_CHANNELS = 4  # channels drawn in a sparkline; more would be unreadable at thumbnail size
SPARK_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]  # matplotlib's first four
SPECTROGRAM_RANGE = 18.4  # natural-log power range shown (80 dB); quieter bins are black


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """The largest (width, height) with the same aspect that fits size × size (never enlarged)."""
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


# pictures


def thumbnail(path: str, size: int) -> Image.Image:
    """The picture in the file at `path`, upright and fitting size × size, transparency made white."""
    with open(path, "rb") as handle:
        picture = Image.open(handle)
        picture.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster for large photos
        picture = ImageOps.exif_transpose(picture)
        picture.thumbnail((size, size), Image.Resampling.BILINEAR)
    return on_background(picture)


def on_background(picture: Image.Image, colour: str = "white") -> Image.Image:
    """Transparent pixels laid over `colour`. Dropping the alpha channel (`convert("RGB")`) would show whatever
    colour the file stores under them: black, white or noise, depending on the program that saved it."""
    if picture.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in picture.info:
        return picture
    foreground = picture.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", foreground.size, colour), foreground)


# video and audio


def clip_length(seconds: float | None) -> str:
    return "length unknown" if seconds is None else f"{seconds:.1f} s"


def stream_seconds(container, stream) -> float | None:
    """A track's duration from the file's header, without decoding; None when the header does not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def audio_seconds(path: str) -> float | None:
    """The duration of the file's first audio track from its header; None when it has none or does not say."""
    with media.open_media(path) as container:
        return stream_seconds(container, container.streams.audio[0]) if container.streams.audio else None


def poster_frame(path: str, size: int) -> tuple[Image.Image, float | None, int]:
    """The frame on screen at the middle of the clip, as a thumbnail; the clip's duration (None: unknown) and frame
    count (0: unknown, as for many mkv and webm files). Seeks to the keyframe before the middle and decodes from
    there, so a long clip costs a few frames, not all of them."""
    with media.open_media(path) as container:
        if not container.streams.video:
            raise media.NoStream("no video track")
        stream = container.streams.video[0]
        seconds = stream_seconds(container, stream)
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        middle = start + (seconds or 0.0) / 2
        if middle > start:
            container.seek(int(middle / stream.time_base), stream=stream, backward=True)
        shown = None
        try:
            for frame in container.decode(stream):
                if shown is not None and (frame.time is None or frame.time > middle + 1e-6):
                    break  # `shown` started at or before the middle and this one after it
                shown = frame
        except (av.error.FFmpegError, ValueError) as error:
            if shown is None:
                raise media.MediaError(f"cannot decode video: {media.short_reason(error)}") from None
        if shown is None:
            raise media.MediaError("no frames")
        width, height = fit_within(shown.width, shown.height, size)
        return shown.to_image(width=width, height=height), seconds, stream.frames


@functools.cache
def magma() -> np.ndarray:
    """matplotlib's magma colormap as a [256, 3] uint8 table (no figure involved)."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def heatmap(values: np.ndarray, width: int, height: int) -> Image.Image:
    """[rows, columns] values, row 0 the lowest frequency → an RGB picture with row 0 at the bottom, the top
    SPECTROGRAM_RANGE of values mapped through magma and anything quieter black."""
    top = float(values.max())
    levels = np.clip((values - (top - SPECTROGRAM_RANGE)) / SPECTROGRAM_RANGE, 0.0, 1.0)
    picture = Image.fromarray(magma()[(levels[::-1] * 255).astype(np.uint8)])
    return picture.resize((width, height), Image.Resampling.BILINEAR)


# sequences


def sparkline(steps: np.ndarray, width: int, height: int) -> Image.Image:
    """[L, C] numbers → a white picture with one line per channel (the first SPARK_CHANNELS), each scaled to its
    own range, since channels often differ in scale. Long sequences are sampled at about two points a pixel."""
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    picks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 2 * width)).round().astype(int))
    values = np.nan_to_num(np.asarray(steps[picks, :SPARK_CHANNELS], dtype=np.float64))
    xs = picks / max(len(steps) - 1, 1) * (width - 1)
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    ys = (height - 2) - (values - low) / span * (height - 3)  # a pixel of margin top and bottom
    for channel in range(values.shape[1]):
        points = list(zip(xs.tolist(), ys[:, channel].tolist()))
        if len(points) == 1:
            points.append((width - 1, points[0][1]))
        draw.line(points, fill=SPARK_COLOURS[channel], width=1)
    return picture
