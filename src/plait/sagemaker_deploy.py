"""`plait sagemaker deploy`: a SageMaker real-time endpoint serving a model.tar.gz (what a `plait sagemaker train` job
writes) in the PyTorch inference container, with plait's handlers (plait/serving/sagemaker_handler.py).

The SDK's `PyTorchModel` packs the source folder written here (inference.py, plait's wheel, requirements.txt) into
the model as its `code/` folder, replacing the one the training job wrote, so the endpoint runs the plait that
deploys it.
"""

from __future__ import annotations

import re
from pathlib import Path

from plait.errors import PlaitError
from plait.sagemaker import FRAMEWORK_VERSION, PY_VERSION, job_name, sagemaker_pytorch
from plait.sagemaker_code import ENTRY_POINT, write_endpoint_code

ENDPOINT_NAME = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")


def endpoint_definition(model_data: str, role: str, instance_type: str, source_dir: str | Path, instance_count: int = 1,
                        endpoint_name: str | None = None, framework_version: str = FRAMEWORK_VERSION,
                        py_version: str = PY_VERSION) -> dict:
    """The endpoint: `model` (keyword arguments of `sagemaker.pytorch.PyTorchModel`, less `source_dir`), `deploy`
    (of its `deploy`), `endpoint_name`, and `source_dir`, the endpoint's code folder, written here (`source_files`
    lists it)."""
    if not (model_data.startswith("s3://") and model_data.endswith(".tar.gz")):
        raise PlaitError(f"{model_data}: give the s3:// address of a model.tar.gz (the model a `plait sagemaker train` "
                         "job wrote: OUTPUT/JOB/output/model.tar.gz)")
    name = endpoint_name or job_name("plait")
    if not ENDPOINT_NAME.fullmatch(name):
        raise PlaitError(f"--endpoint-name {name!r}: at most 63 letters, digits and hyphens, starting with a letter or digit")
    source_dir = write_endpoint_code(source_dir)
    model = {"model_data": model_data, "role": role, "entry_point": ENTRY_POINT,
             "framework_version": framework_version, "py_version": py_version}
    deploy = {"initial_instance_count": instance_count, "instance_type": instance_type, "endpoint_name": name}
    return {"endpoint_name": name, "model": model, "deploy": deploy, "source_dir": str(source_dir),
            "source_files": sorted(path.name for path in source_dir.iterdir())}


def deploy(definition: dict) -> str:
    """Create the model and the endpoint with the `sagemaker` SDK, waiting until it is in service; returns its name."""
    model = sagemaker_pytorch().PyTorchModel(source_dir=definition["source_dir"], **definition["model"])
    model.deploy(**definition["deploy"])
    return definition["endpoint_name"]
