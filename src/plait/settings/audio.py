"""The keys of `audio` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/audio.py`) and the encoders
(`plait/models/encoders/audio.py`) read them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from plait.schema import EncoderBase, InputBase, Projection, check_transformers_overrides, projection_field


class AudioSettings(InputBase):
    default_encoder: ClassVar[str] = "conv1d"  # the encoder used when the config names none
    type: Literal["audio"] = "audio"
    source: Literal["audio_file", "video_column"] = Field(
        "audio_file",
        description="`audio_file`: the column holds audio files (wav, flac, mp3, ogg, ...). `video_column`: the column "
        "holds video files and their sound track is used, e.g. the same column as a `video` input. Decoding is the "
        "same either way; a file without an audio track counts as a missing value.",
    )
    sample_rate: PositiveInt = Field(16000, description="Resample every clip to this many samples per second.")
    n_mels: PositiveInt = Field(64, description="Mel bands of the spectrogram.")
    window_ms: PositiveFloat = Field(25.0, description="Length of the analysis window (Hann), in milliseconds.")
    hop_ms: PositiveFloat = Field(10.0, description="Step between spectrogram frames, in milliseconds.")
    f_min: float = Field(0.0, ge=0, description="Lowest frequency covered by the mel bands, in Hz.")
    f_max: PositiveFloat | None = Field(
        None, description="Highest frequency covered by the mel bands, in Hz (null: half of `sample_rate`)."
    )
    max_seconds: PositiveFloat = Field(8.0, description="Longest stretch of each clip used; longer clips are cut.")
    length: Literal["fixed", "variable"] = Field(
        "fixed",
        description="`fixed`: every clip becomes exactly `max_seconds` (cut, or padded with silence), and the padding "
        "is treated as sound. `variable`: clips keep their length up to `max_seconds`; the padding is zeroed after "
        "normalisation and encoders mask it using each clip's real length.",
    )
    crop: Literal["start", "center"] = Field(
        "start", description="Which part of a clip longer than `max_seconds` is kept: its start or its middle."
    )
    silence_db: float = Field(
        -60.0,
        le=0,
        description="A clip whose loudest sample is below this level (dB relative to full scale) is silent, and "
        "counts as a missing value.",
    )
    mean: float = Field(
        -5.0,
        description="Subtracted from the log-mel values (natural log of mel power) before dividing by `std`. Speech "
        "recorded at ordinary levels gives values from about -14 (silence) to +6 (loud voiced sounds) with these "
        "window settings; -5 and 4 bring that range near [-2, 3]. Compute your data's own for best results.",
    )
    std: PositiveFloat = Field(4.0, description="Divides the log-mel values after subtracting `mean` (see `mean`).")

    @model_validator(mode="after")
    def _frequencies(self):
        nyquist = self.sample_rate / 2
        top = nyquist if self.f_max is None else self.f_max
        if top > nyquist:
            raise ValueError(f"f_max ({top:g} Hz) is above half the sample rate ({nyquist:g} Hz)")
        if self.f_min >= top:
            raise ValueError(f"f_min ({self.f_min:g} Hz) must be below f_max ({top:g} Hz)")
        if self.hop_ms > self.window_ms:
            raise ValueError(f"hop_ms ({self.hop_ms:g}) must not exceed window_ms ({self.window_ms:g})")
        return self


class Conv1dConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("audio",)  # the input types it reads
    name: Literal["conv1d"] = "conv1d"
    channels: tuple[PositiveInt, PositiveInt] = Field(
        (64, 128),
        description="Widths of the two 1-D convolutions over time (the mel bins are the first one's input channels); "
        "each is followed by batch norm and ReLU, the first also by a 2× max pool.",
    )
    kernel_size: PositiveInt = Field(
        3, description="Time steps each convolution sees; odd, so it is centred (zero-padded by kernel_size // 2 each side)."
    )
    projection: Projection | None = projection_field(128, dropout=0.2)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value):
        if value % 2 == 0:
            raise ValueError(f"{value} is even; an odd kernel keeps every frame centred (e.g. {value + 1})")
        return value


class HfAudioConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("audio",)  # the input types it reads
    name: Literal["hf_audio"] = "hf_audio"
    path: str | None = Field(
        None,
        description="Local folder of a pretrained Hugging Face Audio Spectrogram Transformer (config.json + weights, "
        "e.g. written by `save_pretrained`); never downloaded. Its num_mel_bins must equal the input's n_mels; "
        "clips are cropped or zero-padded to its max_length frames. null: random weights from `overrides`.",
    )
    overrides: dict[str, Any] = Field(
        {},
        description="Keys of transformers' ASTConfig, e.g. {hidden_size: 64, num_hidden_layers: 2, "
        "num_attention_heads: 2, intermediate_size: 128}. Without `path` they shape a randomly initialised model; "
        "with it they change the loaded config (e.g. dropout). `num_mel_bins` and `max_length` come from the input.",
    )
    projection: Projection | None = projection_field(128)

    @field_validator("overrides")
    @classmethod
    def _known_overrides(cls, value):
        return check_transformers_overrides(value, "ASTConfig", AUDIO_FROM_INPUT)


AUDIO_FROM_INPUT = {"num_mel_bins": "n_mels", "max_length": "frames"}
