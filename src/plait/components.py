"""Imports every feature type, encoder, task type and fusion so they register themselves by name."""

from plait.data.features import category, numeric  # noqa: F401
from plait.models import fusion  # noqa: F401
from plait.models.encoders import category as _category_encoder, numeric as _numeric_encoder  # noqa: F401
import plait.data.features.text, plait.models.encoders.text  # noqa: E401, F401
from plait.tasks import category as _category_task, number  # noqa: F401
