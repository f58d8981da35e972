"""`plait sagemaker CONFIG`: train a config as a SageMaker training job (the job definition lives in plait.sagemaker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from plait.errors import PlaitError
from plait.sagemaker import FRAMEWORK_VERSION, PY_VERSION, job_definition, launch


def sagemaker(
    config: Path = typer.Argument(..., help="The YAML config."),
    role: str = typer.Option(..., "--role", help="IAM role ARN the job runs as."),
    instance_type: str = typer.Option(..., "--instance-type", help="e.g. ml.g5.xlarge."),
    instance_count: int = typer.Option(1, "--instance-count", min=1, help="Instances."),
    output: Optional[str] = typer.Option(None, "--output", help="s3:// prefix for the model, outputs and (with --spot) "
                                         "checkpoints (default: the SDK's default bucket)."),
    input: list[str] = typer.Option([], "--input", help="A data channel, NAME=s3://...; the `train` channel becomes "
                                    "data.table (repeatable)."),
    spot: bool = typer.Option(False, "--spot", help="Managed spot training; checkpoints under --output let an "
                              "interrupted job resume."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the job definition as JSON; needs neither the SDK "
                                 "nor AWS."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, passed as a hyperparameter, e.g. "
                                   "--set train.epochs=3 (repeatable)."),
    framework_version: str = typer.Option(FRAMEWORK_VERSION, help="The SageMaker PyTorch image's version."),
    py_version: str = typer.Option(PY_VERSION, help="The SageMaker PyTorch image's Python."),
):
    """Run `plait train CONFIG` as a SageMaker training job with the PyTorch container; the model lands in
    OUTPUT/JOB/output/model.tar.gz."""
    channels = {}
    for text in input:
        name, sep, url = text.partition("=")
        if not sep or not name or not url:
            raise PlaitError(f"--input {text!r}: expected NAME=s3://..., e.g. train=s3://bucket/data/")
        channels[name] = url
    definition = job_definition(config, role, instance_type, instance_count, output, channels, spot, set_,
                                framework_version, py_version)
    if dry_run:
        typer.echo(json.dumps(definition, indent=2))
        return
    typer.echo(f"starting SageMaker job {definition['job_name']}")
    typer.echo(f"model: {launch(definition)}")
