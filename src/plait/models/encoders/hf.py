"""What the Hugging Face encoders (`hf`, `hf_image`, `hf_audio`, `hf_video`) share: a transformers model loaded
from a local folder (never downloaded), or, when the config names no folder, built with random weights from the
config's `overrides` and the shape the input fixes. Each encoder then checks the model against its input; its
pooled output goes to the encoder's `projection`."""

from __future__ import annotations

import json
from pathlib import Path

from plait.errors import PlaitError
from plait.pretrained import resolve_pretrained


def square_or_pair(size: tuple[int, int]):
    """(height, width) as a transformers config's `image_size`: one number for a square."""
    return size[0] if size[0] == size[1] else tuple(size)


def load_hf(path: str, model_class, model_types: set[str] | None, overrides: dict, wanted: str | None = None):
    """A transformers model from a local folder whose config.json names one of `model_types` (None: any type)."""
    folder = resolve_pretrained(path)
    if model_types is not None:
        model_type = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type")
        if model_type not in model_types:
            raise PlaitError(f"{path}: a `{model_type}` model, not {wanted or 'a ' + ' / '.join(sorted(model_types)) + ' one'}")
    try:
        return model_class.from_pretrained(folder, local_files_only=True, **overrides)
    except (OSError, ValueError, TypeError) as error:
        raise PlaitError(f"{path}: cannot load a Hugging Face model from this folder: {error}") from None


def hf_model(config, config_class, model_class, model_types: set[str], shape: dict, *, extra: dict | None = None,
             check=None, wanted: str | None = None):
    """The model `config` (an encoder's settings with `path` and `overrides`) asks for: from the folder `path`, or
    when it is null, random weights from `overrides` with `shape` over them, once `check(model_config)` has found
    that the input fits. `extra`: keyword arguments of the model class (not of its config)."""
    extra = extra or {}
    if config.path is not None:
        return load_hf(config.path, model_class, model_types, {**config.overrides, **extra}, wanted)
    model_config = config_class(**{**config.overrides, **shape})
    if check is not None:
        check(model_config)
    return model_class(model_config, **extra)
