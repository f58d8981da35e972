"""Imports every feature type, encoder, task type and fusion so they register themselves by name.

A new modality of plait's own adds its feature module and its encoder module here, and its keys to `plait.settings`
(torch-free, so a config validates without loading any of these); one kept outside plait registers itself with
`plait.modalities.add_modality` instead (CONTRIBUTING.md)."""

from plait.data.features import audio, category, image, numeric, sequence, text, vector, video  # noqa: F401
from plait.models import fusion, late  # noqa: F401
from plait.models.encoders import audio as _audio_encoders, video as _video_encoders  # noqa: F401
from plait.models.encoders import category as _category_encoders, image as _image_encoders  # noqa: F401
from plait.models.encoders import numeric as _numeric_encoders, text as _text_encoders  # noqa: F401
from plait.tasks import binned, caption, category as _category_task, embedding, number  # noqa: F401
from plait.models.encoders import sequence as _sequence_encoders  # noqa: F401
from plait.models.encoders import vector as _vector_encoders  # noqa: F401
