"""Images of named classes from a local diffusers pipeline (Stable Diffusion or another text-to-image one),
written as `OUT/<label>/gen_NNNN.png`: the layout `data.augment.generated` reads to fill up rare classes.

Every image has its own seed, drawn from `seed`, its label and its number, so an image does not depend on the
batch it was made in, and asking for more images later with the same seed starts with the same ones.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

from plait.console import new_progress
from plait.errors import PlaitError

INSTALL = "pip install diffusers (or pip install 'plait[generate]')"


def load_pipeline(folder: str | Path, device: str | None = None):
    """The pipeline saved in `folder` (`save_pretrained`), on `device` (default: CUDA when available); never
    downloads anything."""
    try:
        import diffusers
    except ImportError:
        raise PlaitError(f"generating images needs the diffusers package: {INSTALL}") from None
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise PlaitError(f"{folder}: not a diffusers pipeline folder (no model_index.json); write one with "
                         "pipeline.save_pretrained(FOLDER), or download a model's files into it")
    try:
        pipeline = diffusers.DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as error:  # missing weights, a config diffusers cannot read
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PlaitError(f"{folder}: cannot load the pipeline: {reason}") from None
    pipeline.set_progress_bar_config(disable=True)  # plait shows its own bar, per image
    return pipeline.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def image_seed(seed: int, label: str, index: int) -> int:
    return zlib.crc32(f"{seed}/{label}/{index}".encode())


def check_labels(labels: list[str], prompt: str) -> None:
    if "{label}" not in prompt:
        raise PlaitError(f"the prompt {prompt!r} has no {{label}} to put the class in")
    for label in labels:
        if not label.strip() or Path(label).name != label or label in (".", ".."):
            raise PlaitError(f"label {label!r} cannot be a folder name")


def generate_images(pipeline_dir: str | Path, out: str | Path, labels: list[str], count: int,
                    prompt: str = "a photo of a {label}", steps: int = 25, seed: int = 0, guidance: float = 7.5,
                    size: int | None = None, batch_size: int = 4) -> list[Path]:
    """Write `count` images per label to `OUT/<label>/gen_NNNN.png` (existing ones are replaced); return their
    paths. The prompt of a label is `prompt` with `{label}` replaced by the label, underscores as spaces."""
    check_labels(labels, prompt)
    pipeline = load_pipeline(pipeline_dir)
    device = pipeline.device
    jobs = [(label, index) for label in labels for index in range(count)]
    extra = {"height": size, "width": size} if size else {}
    written = []
    with new_progress() as progress:
        bar = progress.add_task("generating", total=len(jobs), info="")
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            prompts = [prompt.format(label=label.replace("_", " ")) for label, _ in batch]
            generators = [torch.Generator(device).manual_seed(image_seed(seed, *job)) for job in batch]
            images = pipeline(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generators, **extra).images
            for (label, index), image in zip(batch, images):
                path = Path(out) / label / f"gen_{index:04d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path)
                written.append(path)
            progress.advance(bar, len(batch))
    return written
