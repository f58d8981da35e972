"""`plait sagemaker train CONFIG` (a SageMaker training job; plait.sagemaker) and `plait sagemaker deploy MODEL_DATA`
(an endpoint serving its model; plait.sagemaker_deploy)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from plait.errors import PlaitError
from plait.sagemaker import FRAMEWORK_VERSION, PY_VERSION, job_definition, launch, sagemaker_pytorch

sagemaker_app = typer.Typer(no_args_is_help=True, help="Train on SageMaker, and serve the model on a SageMaker endpoint.")
ROLE_HELP = "IAM role ARN the job or endpoint runs as."
DRY_RUN_HELP = "Print the definition as JSON and keep the source folder it names; needs neither the SDK nor AWS."


@contextmanager
def source_folder(dry_run: bool) -> Iterator[Path]:
    """The folder uploaded as the code: kept after a dry run, for a look at what would be uploaded."""
    if dry_run:
        yield Path(tempfile.mkdtemp(prefix="plait-sagemaker-"))
        return
    sagemaker_pytorch()  # without the SDK, say so before building anything
    with tempfile.TemporaryDirectory(prefix="plait-sagemaker-") as folder:
        yield Path(folder)


@sagemaker_app.command("train")
def train(
    config: Path = typer.Argument(..., help="The YAML config."),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    instance_type: str = typer.Option(..., "--instance-type", help="e.g. ml.g5.xlarge."),
    instance_count: int = typer.Option(1, "--instance-count", min=1, help="Instances."),
    output: Optional[str] = typer.Option(None, "--output", help="s3:// prefix for the model, outputs and (with --spot) "
                                         "checkpoints (default: the SDK's default bucket)."),
    input: list[str] = typer.Option([], "--input", help="A data channel, NAME=s3://...; the `train` channel becomes "
                                    "data.table (repeatable)."),
    spot: bool = typer.Option(False, "--spot", help="Managed spot training; checkpoints under --output let an "
                              "interrupted job resume."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    set_: list[str] = typer.Option([], "--set", help="Override a key, passed as a hyperparameter, e.g. "
                                   "--set train.epochs=3 (repeatable)."),
    framework_version: str = typer.Option(FRAMEWORK_VERSION, help="The SageMaker PyTorch image's version."),
    py_version: str = typer.Option(PY_VERSION, help="The SageMaker PyTorch image's Python."),
):
    """Run `plait train CONFIG` as a SageMaker training job with the PyTorch container; the model lands in
    OUTPUT/JOB/output/model.tar.gz, ready for `plait sagemaker deploy`."""
    channels = {}
    for text in input:
        name, sep, url = text.partition("=")
        if not sep or not name or not url:
            raise PlaitError(f"--input {text!r}: expected NAME=s3://..., e.g. train=s3://bucket/data/")
        channels[name] = url
    with source_folder(dry_run) as folder:
        definition = job_definition(config, role, instance_type, folder, instance_count, output, channels, spot, set_,
                                    framework_version, py_version)
        if dry_run:
            typer.echo(json.dumps(definition, indent=2))
            return
        typer.echo(f"starting SageMaker job {definition['job_name']}")
        typer.echo(f"model: {launch(definition)}")


@sagemaker_app.command("deploy")
def deploy(
    model_data: str = typer.Argument(..., help="s3:// address of the model.tar.gz a `plait sagemaker train` job wrote."),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    instance_type: str = typer.Option(..., "--instance-type", help="e.g. ml.m5.large, ml.g5.xlarge."),
    instance_count: int = typer.Option(1, "--instance-count", min=1, help="Instances behind the endpoint."),
    endpoint_name: Optional[str] = typer.Option(None, "--endpoint-name", help="The endpoint's name (default: "
                                                "plait-DATE-TIME)."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    framework_version: str = typer.Option(FRAMEWORK_VERSION, help="The SageMaker PyTorch inference image's version."),
    py_version: str = typer.Option(PY_VERSION, help="The SageMaker PyTorch inference image's Python."),
):
    """Serve a trained model on a SageMaker real-time endpoint (the PyTorch inference container with plait's
    handlers): it takes JSON rows, one multipart row, or a media file, and answers JSON or CSV."""
    from plait.sagemaker_deploy import deploy as create_endpoint, endpoint_definition

    with source_folder(dry_run) as folder:
        definition = endpoint_definition(model_data, role, instance_type, folder, instance_count, endpoint_name,
                                         framework_version, py_version)
        if dry_run:
            typer.echo(json.dumps(definition, indent=2))
            return
        typer.echo(f"creating SageMaker endpoint {definition['endpoint_name']} (this takes several minutes)")
        name = create_endpoint(definition)
    typer.echo(f"endpoint {name} is in service: aws sagemaker-runtime invoke-endpoint --endpoint-name {name} "
               "--content-type application/json --body fileb://rows.json answer.json")
