"""`plait augment ...`: make data for `data.augment`. The work is in `plait.data.generate_images`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

augment_app = typer.Typer(no_args_is_help=True, help="Make extra training data, e.g. generated images for rare classes.")


@augment_app.command("generate")
def generate(
    pipeline: Path = typer.Option(..., "--pipeline", help="A local diffusers pipeline folder (with model_index.json); "
                                  "nothing is downloaded."),
    out: Path = typer.Option(..., "--out", help="Folder to write OUT/<label>/gen_NNNN.png into: the "
                             "`data.augment.generated.folder` of a config."),
    labels: list[str] = typer.Option(..., "--label", help="A class to draw, as written in the label column (repeatable)."),
    count: int = typer.Option(..., "--count", min=1, help="Images per label."),
    prompt: str = typer.Option("a photo of a {label}", help="Prompt template; {label} becomes the label with "
                               "underscores as spaces."),
    steps: int = typer.Option(25, min=1, help="Denoising steps per image."),
    seed: int = typer.Option(0, help="Seed; each image's own seed comes from it, the label and the image's number."),
    guidance: float = typer.Option(7.5, help="Classifier-free guidance scale (1: none)."),
    size: Optional[int] = typer.Option(None, min=8, help="Height and width in pixels (default: the pipeline's)."),
    batch_size: int = typer.Option(4, min=1, help="Images per call of the pipeline."),
):
    """Draw COUNT images of each label from a text-to-image diffusion pipeline (needs `pip install diffusers`)."""
    from plait.data.generate_images import generate_images

    written = generate_images(pipeline, out, labels, count, prompt=prompt, steps=steps, seed=seed, guidance=guidance,
                              size=size, batch_size=batch_size)
    typer.echo(f"wrote {len(written)} images to {out}")
