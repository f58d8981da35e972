"""The `code/` folder of a SageMaker model: the serving container's entry point `inference.py` (a shim: the
handlers are plait.serving.sagemaker_handler's, tested and versioned with plait), plait's wheel, and a
requirements.txt that installs that wheel before the container imports the entry point.

It names the handler module without importing it, so whatever writes model folders (a training job, an export) can
write this one without importing the serving floor."""

from __future__ import annotations

from pathlib import Path

from plait.wheel import ship_plait

ENTRY_POINT = "inference.py"
ENTRY_SCRIPT = '''"""SageMaker serving entry point written by plait: model_fn, input_fn, predict_fn and output_fn for the model
folder this code/ folder sits in. The handlers live in plait.serving.sagemaker_handler."""
from plait.serving.sagemaker_handler import input_fn, model_fn, output_fn, predict_fn  # noqa: F401
'''
# where the container finds code/: its requirements.txt is installed from another working folder, so the wheel is
# named by this absolute path
CONTAINER_CODE = "/opt/ml/model/code"


def write_endpoint_code(folder: str | Path) -> Path:
    """Write the code folder (created if missing): inference.py, plait's wheel, requirements.txt; returns it."""
    folder = Path(folder)
    ship_plait(folder, CONTAINER_CODE)
    (folder / ENTRY_POINT).write_text(ENTRY_SCRIPT, encoding="utf-8")
    return folder
