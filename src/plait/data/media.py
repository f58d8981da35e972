"""Decoding video and audio with PyAV (FFmpeg), shared by the `video` and `audio` inputs.

Files open through fsspec, so a local path and any URL (`s3://`, `memory://`) read the same way. Every failure
is a `MediaError` whose message is a short reason ("no such file", "no video track", "cannot decode video:
..."); the feature types add the path and turn it into a `BadSample` (or, for a missing audio track, a
`MissingValue`).
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

import av
import fsspec
import numpy as np

from plait.errors import file_error_reason, first_line


class MediaError(Exception):
    """A file that cannot be used; the message is a short reason."""


class NoStream(MediaError):
    """The file has no track of the kind asked for (a video without sound, an audio file given as a video)."""


def short_reason(error: Exception) -> str:
    """Why a media file could not be used, in a few words."""
    if reason := file_error_reason(error):
        return reason
    if isinstance(error, av.error.InvalidDataError):
        return "not a media file, or corrupt"
    if isinstance(error, av.error.EOFError):
        return "truncated or corrupt file"
    if isinstance(error, av.error.FFmpegError) and error.errno == errno.EINVAL:
        return "not a media file, or corrupt"  # FFmpeg's "Invalid argument", e.g. for a file it cannot probe
    if isinstance(error, (av.error.FFmpegError, OSError)) and error.strerror:
        return error.strerror[:200]  # words only: without the errno and the file name FFmpeg appends
    return first_line(error)


@contextmanager
def open_media(path: str) -> Iterator[av.container.InputContainer]:
    """The file at `path` (local or fsspec URL), opened by FFmpeg."""
    try:
        handle = fsspec.open(path, "rb").open()
    except OSError as error:
        raise MediaError(short_reason(error)) from None
    try:
        try:
            container = av.open(handle, "r")
        except (OSError, ValueError, av.error.FFmpegError) as error:
            raise MediaError(short_reason(error)) from None
        with container:
            yield container
    finally:
        handle.close()


def _video_stream(container):
    if not container.streams.video:
        raise NoStream("no video track")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _decoded(container, stream, kind: str):
    """Every frame of `stream`, with decoding errors as `MediaError`."""
    try:
        yield from container.decode(stream)
    except (av.error.FFmpegError, ValueError) as error:  # ValueError: PyAV's own checks on broken streams
        raise MediaError(f"cannot decode {kind}: {short_reason(error)}") from None


def _rgb(frame, height: int, width: int) -> np.ndarray:
    return frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BILINEAR")


def count_video_frames(path: str) -> int:
    """The number of frames in the first video track: from the header when it says, else by reading the packets
    (one per frame; cheap, nothing is decoded). Mp4 and avi headers say; mkv and webm often do not."""
    with open_media(path) as container:
        stream = _video_stream(container)
        if stream.frames > 0:
            return stream.frames
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as error:
            raise MediaError(f"cannot decode video: {short_reason(error)}") from None


def read_frames_at(path: str, indices: list[int], size: tuple[int, int]) -> np.ndarray:
    """The frames at `indices` (sorted, distinct) of the first video track, as RGB uint8 [n, H, W, 3] at `size`
    (height, width); fewer than asked when the track ends early. Only the wanted frames are converted."""
    height, width = size
    wanted, kept = set(indices), []
    with open_media(path) as container:
        stream = _video_stream(container)
        for position, frame in enumerate(_decoded(container, stream, "video")):
            if position in wanted:
                kept.append(_rgb(frame, height, width))
                if len(kept) == len(wanted):
                    break
    return _stacked(kept, size)


def read_frames_every(path: str, count: int, fps: float, size: tuple[int, int]) -> np.ndarray:
    """Up to `count` frames at `fps` frames per second from the start of the first video track: for the times
    0, 1/fps, 2/fps, ... the frame on screen at that time (the last one starting at or before it). Fewer when
    the clip ends first. RGB uint8 [n, H, W, 3] at `size` (height, width)."""
    height, width = size
    times = [k / fps for k in range(count)]
    kept: list[np.ndarray] = []
    with open_media(path) as container:
        stream = _video_stream(container)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        start = previous = shown = None  # shown: `previous` converted, reused when fps is above the clip's rate
        last_time = 0.0
        for position, frame in enumerate(_decoded(container, stream, "video")):
            time = frame.time if frame.time is not None else position / rate
            start = time if start is None else start
            time -= start  # clips whose first frame is not at 0 (edit lists, trimmed streams)
            while previous is not None and len(kept) < count and times[len(kept)] < time - 1e-4:
                shown = _rgb(previous, height, width) if shown is None else shown
                kept.append(shown)
            if len(kept) == count:
                break
            previous, shown, last_time = frame, None, time
        else:
            end = last_time + 1 / rate  # the last frame stays on screen for one frame's duration
            while previous is not None and len(kept) < count and times[len(kept)] < end - 1e-4:
                shown = _rgb(previous, height, width) if shown is None else shown
                kept.append(shown)
    return _stacked(kept, size)


def _stacked(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    if not frames:
        return np.zeros((0, *size, 3), dtype=np.uint8)
    return np.stack(frames)


def read_audio(path: str, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """The first audio track, mixed down to mono float32 [S] at `sample_rate` (FFmpeg's resampler). With
    `max_seconds`, decoding stops once that much is read (the result may be slightly longer)."""
    with open_media(path) as container:
        if not container.streams.audio:
            raise NoStream("no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = None if max_seconds is None else int(np.ceil(max_seconds * sample_rate))
        chunks, total = [], 0
        for frame in _decoded(container, stream, "audio"):
            frame.pts = None  # the resampler then just continues the stream; odd timestamps cannot upset it
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                total += out.samples
            if limit is not None and total >= limit:
                break
        for out in resampler.resample(None):  # the samples still inside the resampler's filter
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)
