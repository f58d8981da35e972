"""`audio`: a file path per row: an audio file (wav, flac, mp3, ogg, ...) or a video whose sound track is used,
decoded with PyAV (FFmpeg), mixed down to mono, resampled to `sample_rate`, cut to `max_seconds` and turned
into a log-mel spectrogram once, when the dataset is built.

Cells become `{"value": float16 [n_mels, F], "length": int64 []}` where F = `frames`, the spectrogram frames of
`max_seconds`; a shorter clip is padded with silence and `length` counts the frames that cover real sound.
A file without an audio track, or a silent clip, is a missing value (handled by the input's `missing` policy).
`prepare` standardises with `mean` / `std` on the device and, for `length: variable`, zeroes the padding.
Encoders read the fitted feature's `n_mels`, `frames` and `sample_rate`.
"""

from __future__ import annotations

import math
import os
from typing import ClassVar

import numpy as np
import torch

from plait.data import media
from plait.data.features.base import FileFeature
from plait.data.features.preview_media import audio_seconds, clip_length, heatmap
from plait.errors import BadSample, MissingValue
from plait.html import captioned, image_uri, img, missing
from plait.registry import FEATURES
from plait.settings.audio import AudioSettings

FLOOR = 1e-6  # added before the log, so silence gives log(1e-6) ≈ -13.8 instead of -inf


def hz_to_mel(hz):
    """The HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filters(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters [n_mels, n_fft // 2 + 1], evenly spaced on the HTK mel scale, each peaking at 1 on its
    centre frequency and reaching 0 at its neighbours' centres (HTK / Kaldi style, no area normalisation)."""
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None)).float()


@FEATURES.register("audio")
class AudioFeature(FileFeature):
    Settings = AudioSettings
    cache_by_default: ClassVar[bool] = True
    # `length` and `source` change nothing in `encode`: both lengths are padded alike, only `prepare` differs
    cache_keys: ClassVar[tuple[str, ...]] = (
        "sample_rate", "n_mels", "window_ms", "hop_ms", "f_min", "f_max", "max_seconds", "crop", "silence_db",
    )

    def __init__(self, spec: AudioSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.sample_rate: int = spec.sample_rate
        self.n_mels: int = spec.n_mels
        self.window = max(1, round(spec.sample_rate * spec.window_ms / 1000))  # samples
        self.hop = max(1, round(spec.sample_rate * spec.hop_ms / 1000))
        self.n_fft = 1 << (self.window - 1).bit_length()  # next power of two
        self.samples = max(1, round(spec.max_seconds * spec.sample_rate))
        self.frames: int = 1 + self.samples // self.hop  # stft with center=True
        f_max = spec.f_max if spec.f_max is not None else spec.sample_rate / 2
        self.filters = mel_filters(spec.n_mels, self.n_fft, spec.sample_rate, spec.f_min, f_max)
        self.hann = torch.hann_window(self.window)

    def clip(self, wave: np.ndarray) -> tuple[np.ndarray, int]:
        """Cut to at most `max_seconds` (start or middle), zero-pad to exactly that; also the real sample count."""
        real = min(len(wave), self.samples)
        start = (len(wave) - real) // 2 if self.spec.crop == "center" else 0
        padded = np.zeros(self.samples, dtype=np.float32)
        padded[:real] = wave[start : start + real]
        return padded, real

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Mono waveform [S] → log-mel [n_mels, 1 + S // hop] (float32)."""
        spectrum = torch.stft(
            wave, self.n_fft, hop_length=self.hop, win_length=self.window, window=self.hann,
            center=True, pad_mode="constant", return_complex=True,
        )
        return torch.log(self.filters @ spectrum.abs().square() + FLOOR)

    def read_wave(self, local: str) -> np.ndarray:
        """The mono waveform of the local file at `sample_rate`: up to `max_seconds` when cropping from the start,
        all of it for `crop: center` (the middle needs the whole clip)."""
        until = self.spec.max_seconds if self.spec.crop == "start" else None
        return media.read_audio(local, self.sample_rate, until)

    def encode(self, value):
        path = self.locate(value)
        local = self.local_path(value)  # a remote file is downloaded once, then read from disk
        try:
            wave = self.read_wave(local)
        except media.NoStream:
            raise MissingValue("no audio track") from None
        except media.MediaError as error:
            raise BadSample(f"cannot read audio '{path}': {error}") from None
        padded, real = self.clip(wave)
        if real == 0:
            raise MissingValue("empty audio track")
        peak = float(np.abs(padded[:real]).max())
        if peak == 0 or 20 * math.log10(peak) < self.spec.silence_db:
            raise MissingValue("silent")
        return {
            "value": self.log_mel(torch.from_numpy(padded)).half(),
            "length": torch.tensor(min(self.frames, 1 + real // self.hop), dtype=torch.int64),
        }

    def empty(self):
        return {
            "value": torch.zeros((self.n_mels, self.frames), dtype=torch.float16),
            "length": torch.tensor(0, dtype=torch.int64),
        }

    def prepare(self, batch, training):
        """float16 → float32, standardised; for `length: variable` the padding (frames >= length) becomes 0."""
        values = (batch["value"].float() - self.spec.mean) / self.spec.std
        if self.spec.length == "variable" and "length" in batch:
            real = torch.arange(values.shape[-1], device=values.device) < batch["length"].to(values.device)[:, None]
            values = values * real[:, None, :]
        return {**batch, "value": values}

    def preview(self, value, size):
        """The log-mel spectrogram the model sees, magma-coloured, low frequencies at the bottom, captioned with the
        clip's duration."""
        local = self.local_path(value)
        seconds = audio_seconds(local)
        try:
            wave = self.read_wave(local)
        except media.NoStream:
            return missing("no audio track")
        padded, real = self.clip(wave)  # the stretch the model uses
        if real == 0:
            return missing("empty audio track")
        spectrogram = self.log_mel(torch.from_numpy(padded[:real])).numpy()
        seconds = len(wave) / self.sample_rate if seconds is None else seconds
        picture = heatmap(spectrogram, size, max(1, size // 2))
        return captioned(img(image_uri(picture, "PNG"), f"spectrogram of {os.path.basename(str(value))}"),
                         clip_length(seconds))
