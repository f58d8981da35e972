"""Every component's keys, in modules that import pydantic and never torch: `plait validate`, `plait --help` and the
schema docs load these alone. The classes that use them (feature types, encoders, tasks, fusions) are registered by
name in `plait/components.py`, and `tests/test_config.py` checks that each setting here has its component there.

The lists keep the order the schema (and its generated reference) lists them in. Adding a modality adds its
settings module here, and its feature and encoder beside the others.
"""

from __future__ import annotations

from plait.settings import audio, caption, category, embedding, fusion, image, numeric, outputs, sequence, text, vector, video

INPUTS = [audio.AudioSettings, category.CategorySettings, image.ImageSettings, numeric.NumericSettings,
          sequence.SequenceSettings, text.TextSettings, vector.VectorSettings, video.VideoSettings]
ENCODERS = [image.CnnConfig, image.HfImageConfig, video.R3d18Config, video.Cnn3dConfig, video.HfVideoConfig,
            audio.Conv1dConfig, audio.HfAudioConfig, category.EmbeddingConfig, numeric.MlpConfig, text.BagConfig,
            text.TransformerConfig, text.HfConfig, sequence.LstmConfig, sequence.CnnLstmConfig, vector.VectorMlpConfig]
OUTPUTS = [outputs.CategoryOutput, outputs.BinnedOutput, caption.CaptionOutput, embedding.EmbeddingOutput,
           outputs.NumberOutput]
FUSIONS = [fusion.ConcatConfig, fusion.AttentionConfig, fusion.LateConfig]


def name_of(settings) -> str:
    """The name a settings class is chosen by: the default of its `type` (inputs, outputs) or `name` field."""
    field = settings.model_fields.get("type") or settings.model_fields["name"]
    return field.default
