"""Writers for generated video and audio files (tests, demos), with PyAV. Output is deterministic: the same
arrays give the same bytes (muxers and encoders run with FFmpeg's `bitexact` flags, so no random stream ids,
no timestamps, no version strings).

`write_clip` picks the codecs from the file extension:

    .mp4 / .mkv   H.264 (libx264, yuv420p) video, AAC audio
    .avi          MPEG-4 part 2 video, 16-bit PCM audio (AVI stores AAC's start-up delay by shifting the video)
    .webm         VP9 video, Opus (or Vorbis) audio

yuv420p stores colour at half resolution, so H.264 and MPEG-4 need an even width and height.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VIDEO_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9"}
EXACT = {"fflags": "+bitexact"}  # muxer option: no random ids or version strings in the file


def can_encode(codec: str) -> bool:
    """Whether this FFmpeg build has an encoder called `codec`."""
    try:
        av.Codec(codec, "w")
    except Exception:  # av raises UnknownCodecError or ValueError depending on the name
        return False
    return True


def audio_codec_for(suffix: str) -> str:
    """The audio encoder used for a container, given what this FFmpeg build has; ValueError when none."""
    if suffix in (".mp4", ".mkv"):
        choices = ["aac"]
    elif suffix in (".webm", ".ogg"):
        choices = ["libopus", "libvorbis", "vorbis"]
    elif suffix == ".mp3":
        choices = ["libmp3lame", "libshine"]
    else:
        choices = {".wav": ["pcm_s16le"], ".avi": ["pcm_s16le"], ".flac": ["flac"]}.get(suffix, [])
    for codec in choices:
        if can_encode(codec):
            return codec
    raise ValueError(f"no audio encoder for {suffix or 'a file without extension'} in this FFmpeg build")


def _add_audio_stream(container, codec: str, sample_rate: int):
    rate = 48000 if codec == "libopus" else sample_rate  # Opus runs at 48 kHz; the encoder resamples for us
    stream = container.add_stream(codec, rate=rate, layout="mono")
    stream.codec_context.flags |= av.codec.context.Flags.bitexact
    if codec == "vorbis":
        stream.codec_context.strict_std_compliance = -2  # FFmpeg's own Vorbis encoder is marked experimental
    return stream


def _audio_frames(samples: np.ndarray, sample_rate: int, chunk: int = 1024):
    samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    for start in range(0, len(samples), chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def _encode_audio(container, stream, samples: np.ndarray, sample_rate: int) -> None:
    for frame in _audio_frames(samples, sample_rate):
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def encode_frames(container, stream, frames: np.ndarray) -> None:
    """Encode RGB `frames` (uint8 [T, H, W, 3]) into `stream`, one frame per time step, and flush the encoder."""
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_clip(path, frames: np.ndarray, fps: int, audio: np.ndarray | None = None, sample_rate: int = 16000) -> Path:
    """Write RGB `frames` (uint8 [T, H, W, 3]) at `fps`, with `audio` (float32 [S] in [-1, 1], mono) as a second
    track when given. The codecs follow the extension (see the module docstring). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise ValueError(f"write_clip writes {', '.join(VIDEO_CODECS)} (got {path.name!r})")
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1 (got shape {frames.shape})")
    height, width = frames.shape[1:3]
    codec = VIDEO_CODECS[suffix]
    if codec != "libvpx-vp9" and (height % 2 or width % 2):
        raise ValueError(f"{codec} with yuv420p needs an even width and height (got {width}x{height})")
    audio_codec = audio_codec_for(suffix) if audio is not None else None
    with av.open(str(path), "w", options=EXACT) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.flags |= av.codec.context.Flags.bitexact
        video.codec_context.thread_count = 1  # one thread: identical output on any machine
        if codec == "libx264":
            # near-lossless, so tests can read pixel values back; a constant quantiser, because x264's crf rate
            # control wrote different bytes from run to run for tiny (24-pixel) frames
            video.options = {"qp": "12", "preset": "medium"}
        else:
            video.codec_context.bit_rate = 4_000_000
        sound = _add_audio_stream(container, audio_codec, sample_rate) if audio_codec else None
        encode_frames(container, video, frames)
        if sound is not None:
            _encode_audio(container, sound, audio, sample_rate)
    return path


def write_audio(path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono `samples` (float32 [S] in [-1, 1]) as .wav (16-bit PCM), .flac, .ogg (Opus, or Vorbis) or .mp3
    (only where this FFmpeg build has an MP3 encoder: ValueError otherwise). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".wav", ".flac", ".ogg", ".mp3"):
        raise ValueError(f"write_audio writes .wav, .flac, .ogg and .mp3 (got {path.name!r})")
    codec = audio_codec_for(suffix)
    with av.open(str(path), "w", options=EXACT) as container:
        stream = _add_audio_stream(container, codec, sample_rate)
        _encode_audio(container, stream, samples, sample_rate)
    return path


def tone(frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine wave, float32 [S]."""
    times = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * times)).astype(np.float32)


def ramp_frames(count: int, height: int = 32, width: int = 32) -> np.ndarray:
    """`count` flat grey frames whose brightness grows with the frame index (frame i has value
    `ramp_value(i, count)`), so a decoded frame tells which source frame it came from."""
    values = np.array([ramp_value(i, count) for i in range(count)], dtype=np.uint8)
    return np.broadcast_to(values[:, None, None, None], (count, height, width, 3)).copy()


def ramp_value(index: int, count: int) -> int:
    return int(round(16 + 224 * index / max(count - 1, 1)))
