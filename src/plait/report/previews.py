"""Small previews of input cells for the report's sample gallery: each cell, whatever its modality, as a bit of
self-contained HTML (pictures are `data:` URIs, text is escaped).

    image     a JPEG thumbnail fitting size × size
    video     the frame on screen at the middle of the clip (one seek, a few frames decoded), captioned with
              the clip's duration and frame count
    audio     the log-mel spectrogram the model sees (the feature's own decoding and settings), magma-coloured,
              low frequencies at the bottom, captioned with the clip's duration
    sequence  a sparkline of up to four channels, captioned with the shape of the steps the model sees
    text      the text, cut at about 300 characters
    others    the value as text (numeric, category, and any modality added later)

A preview never raises: an empty cell gives `missing("missing")` and a cell that cannot be read gives
`missing("unreadable: <reason>")`, so one broken file never stops a report.
"""

from __future__ import annotations

import functools
import os

import av
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageOps

from plait.data import media
from plait.data.columns import is_missing
from plait.data.features.image import short_reason as image_reason
from plait.report.html import escape, image_uri, img, missing

TEXT_CHARACTERS = 300  # longer texts are cut here, with an ellipsis
SPARK_CHANNELS = 4  # channels drawn in a sparkline; more would be unreadable at thumbnail size
SPARK_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]  # matplotlib's first four
SPECTROGRAM_RANGE = 18.4  # natural-log power range shown (80 dB); quieter bins are black


def preview(feature, value, size: int = 160) -> str:
    """HTML for one input cell of `feature` (a fitted or unfitted feature type), at most `size` pixels a side."""
    if is_missing(value) or value is pd.NA:
        return missing("missing")
    render = RENDERERS.get(feature.spec.type, show_value)
    try:
        return render(feature, value, size)
    except Exception as error:  # any failure (missing file, corrupt data, odd cell) is shown, never raised
        return missing(f"unreadable: {short_reason(error)}")


def preview_row(features: dict, row: pd.Series, size: int = 160) -> dict[str, str]:
    """Input name → HTML preview of that input's cell in `row` (a row of the data table)."""
    return {name: preview(feature, row.get(feature.spec.column), size) for name, feature in features.items()}


def short_reason(error: Exception) -> str:
    """A few words on why a cell could not be read. Project errors read 'context: reason', where the context
    names the file (already shown in the gallery); only the reason is kept."""
    text = image_reason(error)  # also turns FileNotFoundError, "not an image file" etc. into a few words
    reason = text.rsplit(": ", 1)[-1].strip() or type(error).__name__
    return reason if len(reason) <= 80 else reason[:79].rstrip() + "…"


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def captioned(picture: str, caption: str) -> str:
    return f'<div class="preview">{picture}<div class="caption">{escape(caption)}</div></div>'


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """The largest (width, height) with the same aspect that fits size × size (never enlarged)."""
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


# image and video


def show_image(feature, value, size: int) -> str:
    with open(feature.local_path(value), "rb") as handle:
        picture = Image.open(handle)
        picture.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster for large photos
        picture = ImageOps.exif_transpose(picture)
        picture.thumbnail((size, size), Image.Resampling.BILINEAR)
    return img(image_uri(on_white(picture), "JPEG"), os.path.basename(str(value)))


def on_white(picture: Image.Image) -> Image.Image:
    """Transparent pixels made white: JPEG has no transparency, and dropping the alpha channel often shows black."""
    if picture.mode not in ("RGBA", "LA", "PA") and "transparency" not in picture.info:
        return picture
    foreground = picture.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", foreground.size, "white"), foreground)


def show_video(feature, value, size: int) -> str:
    poster, seconds, frames = poster_frame(feature.local_path(value), size)
    caption = clip_length(seconds) + (f" · {counted(frames, 'frame')}" if frames else "")
    return captioned(img(image_uri(poster, "JPEG"), os.path.basename(str(value))), caption)


def clip_length(seconds: float | None) -> str:
    return "length unknown" if seconds is None else f"{seconds:.1f} s"


def stream_seconds(container, stream) -> float | None:
    """A track's duration from the file's header, without decoding; None when the header does not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


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


# audio


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


def show_audio(feature, value, size: int) -> str:
    local = feature.local_path(value)
    with media.open_media(local) as container:
        seconds = stream_seconds(container, container.streams.audio[0]) if container.streams.audio else None
    until = feature.spec.max_seconds if feature.spec.crop == "start" else None  # as `encode` reads it
    try:
        wave = media.read_audio(local, feature.sample_rate, until)
    except media.NoStream:
        return missing("no audio track")
    padded, real = feature.clip(wave)  # the stretch the model uses
    if real == 0:
        return missing("empty audio track")
    spectrogram = feature.log_mel(torch.from_numpy(padded[:real])).numpy()
    seconds = len(wave) / feature.sample_rate if seconds is None else seconds
    picture = heatmap(spectrogram, size, max(1, size // 2))
    return captioned(img(image_uri(picture, "PNG"), f"spectrogram of {os.path.basename(str(value))}"),
                     clip_length(seconds))


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


def show_sequence(feature, value, size: int) -> str:
    steps, _ = feature.steps(value)  # the steps the model sees: cropped to max_length, laid out [L, C]
    if len(steps) == 0:
        return missing("empty sequence")
    length, channels = steps.shape
    caption = f"{counted(length, 'step')} × {counted(channels, 'channel')}"
    if channels > SPARK_CHANNELS:
        caption += f" (first {SPARK_CHANNELS} drawn)"
    picture = sparkline(steps, size, max(1, size // 2))
    return captioned(img(image_uri(picture, "PNG"), "sparkline"), caption)


# text and values


def shortened(text: str) -> str:
    """`text` cut at TEXT_CHARACTERS, with an ellipsis when something was cut."""
    return text if len(text) <= TEXT_CHARACTERS else text[:TEXT_CHARACTERS].rstrip() + "…"


def show_text(feature, value, size: int) -> str:
    return f'<div class="text">{escape(shortened(str(value)))}</div>'


def show_value(feature, value, size: int) -> str:
    """Numbers, categories, and any modality without a preview of its own: the value as (short) text."""
    return escape(shortened(f"{value:.6g}" if isinstance(value, float) else str(value)))


RENDERERS = {
    "image": show_image,
    "video": show_video,
    "audio": show_audio,
    "sequence": show_sequence,
    "text": show_text,
}
