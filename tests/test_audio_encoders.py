"""The `audio` encoders: the Conv1D stack over a log-mel spectrogram (averaged over real frames only) and a
Hugging Face Audio Spectrogram Transformer (`hf_audio`). A stand-in feature object keeps these tests independent
of the audio feature's decoding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from plait.errors import PlaitError
from plait.models.encoders.audio import AudioConv1d, AudioHf, Conv1dConfig, HfAudioConfig
from plait.registry import ENCODERS

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def voice_feature(n_mels=64, frames=101):
    return SimpleNamespace(n_mels=n_mels, frames=frames, sample_rate=16000, spec=SimpleNamespace(name="voice"))


def spectrograms(lengths, n_mels=8, frames=None, seed=0) -> dict:
    """Random log-mels, zero from each clip's length on, padded to `frames` (default: the longest)."""
    lengths = torch.tensor(lengths)
    frames = frames or int(lengths.max())
    value = torch.randn(len(lengths), n_mels, frames, generator=torch.Generator().manual_seed(seed))
    value = value * (torch.arange(frames) < lengths[:, None]).unsqueeze(1)
    return {"value": value, "length": lengths, "present": torch.ones(len(lengths), dtype=torch.bool)}


def test_registered_names_and_modality():
    for name, cls in [("conv1d", AudioConv1d), ("hf_audio", AudioHf)]:
        assert ENCODERS[name] is cls and cls.modalities == ("audio",) and cls.Config().name == name
        assert cls.Config().projection.out_dim == 128
        assert all(field.description for key, field in cls.Config.model_fields.items() if key != "name"), name
    config = Conv1dConfig()
    assert (config.channels, config.kernel_size, config.projection.dropout) == ((64, 128), 3, 0.2)
    with pytest.raises(ValidationError):
        Conv1dConfig(projection={"dropout": 1.0})
    with pytest.raises(ValidationError, match="4 is even"):
        Conv1dConfig(kernel_size=4)


def test_conv1d_shape_and_gradients():
    encoder = AudioConv1d.build(Conv1dConfig(channels=(8, 16), kernel_size=5, out_dim=12), voice_feature(n_mels=8, frames=30))
    out, _ = encoder.encode(spectrograms([30, 17, 1]))
    assert (encoder.feature_dim, encoder.out_dim) == (16, 12) and out.shape == (3, 12) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    assert encoder.eval().encode({"value": torch.randn(2, 8, 1)})[0].shape == (2, 12)  # a 1-frame clip, no `length`


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_conv1d_padding_after_the_clip_changes_nothing(kernel_size):
    torch.manual_seed(0)
    encoder = AudioConv1d(Conv1dConfig(channels=(8, 16), kernel_size=kernel_size), voice_feature(n_mels=8, frames=40))
    encoder.train()(spectrograms([40, 25, 12], seed=1))  # move the batch-norm statistics off their defaults
    encoder.eval()
    batch = spectrograms([13, 9, 6])  # odd and even lengths, the longest unpadded
    padded = {**batch, "value": F.pad(batch["value"], (0, 11))}
    with torch.no_grad():
        out, out_padded = encoder(batch), encoder(padded)
        alone = encoder({**batch, "value": batch["value"][1:2, :, :9], "length": batch["length"][1:2]})
        unmasked = encoder({"value": padded["value"]})
    assert torch.allclose(out, out_padded, atol=1e-6)
    assert torch.allclose(alone, out[1:2], atol=1e-6)
    assert not torch.allclose(unmasked, out_padded, atol=1e-3)  # without `length` the padding would count
    full = spectrograms([13, 13])
    with torch.no_grad():
        assert torch.allclose(encoder(full), encoder({"value": full["value"]}), atol=1e-6)


def test_hf_audio_random_weights_from_overrides():
    feature = voice_feature()
    encoder = AudioHf.build(HfAudioConfig(overrides=TINY, out_dim=24), feature)
    assert (encoder.model.config.num_mel_bins, encoder.model.config.max_length) == (64, 101)
    for frames in (101, 60, 130):  # the batch's longest clip may be shorter; crop anything longer
        out, _ = encoder.encode(spectrograms([frames, 40], n_mels=64))
        assert encoder.out_dim == 24 and out.shape == (2, 24)
    out.sum().backward()
    grad = encoder.model.embeddings.patch_embeddings.projection.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with pytest.raises(PlaitError, match=r"inputs\.voice\.n_mels: 8 is less than the model's patch_size \(16\)"):
        AudioHf(HfAudioConfig(overrides=TINY), voice_feature(n_mels=8))


def test_hf_audio_rejects_misspelt_and_input_owned_overrides():
    with pytest.raises(ValidationError, match="hiden_size: not a key of ASTConfig; did you mean hidden_size?"):
        HfAudioConfig(overrides={"hiden_size": 32})
    with pytest.raises(ValidationError, match="num_mel_bins: set by the input's n_mels"):
        HfAudioConfig(overrides={"num_mel_bins": 128})


def test_hf_audio_loads_a_local_folder(tmp_path):
    from transformers import ASTConfig, ASTModel, VideoMAEConfig, VideoMAEModel

    saved = ASTModel(ASTConfig(num_mel_bins=64, max_length=48, **TINY)).eval()
    saved.save_pretrained(tmp_path / "ast")
    encoder = AudioHf(HfAudioConfig(path=str(tmp_path / "ast")), voice_feature()).eval()
    assert encoder.max_length == 48
    batch = spectrograms([101, 30], n_mels=64)
    with torch.no_grad():
        expected = saved(input_values=batch["value"][:, :, :48].transpose(1, 2)).pooler_output
        assert torch.allclose(encoder(batch), expected, atol=1e-6)
    with pytest.raises(PlaitError, match=r"inputs\.voice\.n_mels: the model takes 64 mel bins, the input gives 128"):
        AudioHf(HfAudioConfig(path=str(tmp_path / "ast")), voice_feature(n_mels=128))
    VideoMAEModel(VideoMAEConfig(num_frames=2, image_size=16, patch_size=16, **TINY)).save_pretrained(tmp_path / "videomae")
    with pytest.raises(PlaitError, match="a `videomae` model"):
        AudioHf(HfAudioConfig(path=str(tmp_path / "videomae")), voice_feature())


@pytest.mark.parametrize("build", [
    lambda: AudioConv1d.build(Conv1dConfig(channels=(8, 16)), voice_feature(n_mels=8, frames=20)),
    lambda: AudioHf.build(HfAudioConfig(overrides=TINY), voice_feature(n_mels=16, frames=20)),
])
def test_freeze_keeps_the_backbone_in_eval_mode_and_trains_the_projection(build):
    from tests.test_freezing import assert_backbone_frozen_projection_trains

    encoder = build()
    n_mels = encoder.model.config.num_mel_bins if isinstance(encoder, AudioHf) else 8
    assert_backbone_frozen_projection_trains(encoder, spectrograms([20, 7], n_mels=n_mels))
