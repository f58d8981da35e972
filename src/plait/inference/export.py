"""`plait export DIR --format hf OUT`: a trained run as a self-contained folder that the Hugging Face Hub accepts
(`--format onnx` adds `model.onnx` to the same folder: inference/onnx.py).

The folder holds the weights (`model.safetensors`), what preprocessing learned (`preprocessing.json`), the resolved
plait config (`config.yaml`) and a summary of it (`config.json`), each caption output's tokenizer
(`tokenizers/NAME/vocab.json`, `merges.txt`, `tokenizer.json`), the evaluation results and a model card
(`README.md`). plait reads it back like a run folder: `plait caption OUT photo.jpg`, `plait predict OUT ...`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import yaml

from plait.config import config_hash, save_config
from plait.errors import PlaitError
from plait.runs import Run

PIPELINE_TAGS = {("image", "caption"): "image-to-text", ("image", "category"): "image-classification",
                 ("text", "category"): "text-classification", ("video", "category"): "video-classification",
                 ("audio", "category"): "audio-classification"}


def plait_version() -> str:
    try:
        return metadata.version("plait")
    except metadata.PackageNotFoundError:
        return "unknown"


def summary(run: Run, checkpoint: str) -> dict:
    config = run.config
    return {
        "library_name": "plait",
        "plait_version": plait_version(),
        "name": config.name,
        "config_hash": config_hash(config),
        "checkpoint": checkpoint,
        "inputs": [{"name": s.name, "type": s.type, "column": s.column, "encoder": s.encoder.name} for s in config.inputs],
        "outputs": [{"name": s.name, "type": s.type, "column": s.column} for s in config.outputs],
    }


def pipeline_tag(run: Run) -> str | None:
    inputs = {spec.type for spec in run.config.inputs}
    outputs = {spec.type for spec in run.config.outputs}
    if len(inputs) == 1 and len(outputs) == 1:
        return PIPELINE_TAGS.get((inputs.pop(), outputs.pop()))
    return None


def model_card(run: Run, evaluations: dict[str, dict]) -> str:
    """README.md: Hub metadata up front, then what the model reads and writes, its scores and how to use it."""
    config = run.config
    front = {"library_name": "plait", "tags": ["plait", *sorted({s.type for s in config.outputs})]}
    tag = pipeline_tag(run)
    if tag:
        front["pipeline_tag"] = tag
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {config.name}", "",
             f"A model trained with [plait](https://pypi.org/project/plait/) {plait_version()} from one YAML config "
             f"(`config.yaml`, hash `{config_hash(config)}`).", "", "## Inputs", "", "| name | type | column | encoder |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {s.name} | {s.type} | `{s.column}` | {s.encoder.name} |" for s in config.inputs]
    lines += ["", "## Outputs", "", "| name | type | column |", "| --- | --- | --- |"]
    lines += [f"| {s.name} | {s.type} | `{s.column}` |" for s in config.outputs]
    for split, metrics in evaluations.items():
        lines += ["", f"## Results on the {split} split", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {key} | {value:.4f} |" for key, value in metrics.items() if isinstance(value, (int, float))]
    lines += ["", "## Use", "", "```bash", "pip install plait"]
    if any(spec.type == "caption" for spec in config.outputs):
        lines.append("plait caption . photo.jpg                      # prints a caption")
    lines += ["plait predict . --input rows.csv --output predictions.csv", "```", ""]
    return "\n".join(lines)


@contextmanager
def new_folder(out: str | Path) -> Iterator[Path]:
    """A folder to fill, written under a temporary name and renamed to `out` when the block ends without error."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PlaitError(f"{out}: folder exists and is not empty; give a new folder")
    staging = out.with_name(f".{out.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    staging.rename(out)


def write_export(run: Run, run_dir: str | Path, checkpoint: str, folder: Path) -> None:
    """What every export folder holds: weights, preprocessing, config, tokenizers, evaluations, the model card, and
    `code/` for a SageMaker endpoint (inference.py, plait's wheel, requirements.txt)."""
    from plait.sagemaker_code import write_endpoint_code

    source = Path(run.checkpoint)
    for name in ("model.safetensors", "preprocessing.json"):
        shutil.copy2(source / name, folder / name)
    save_config(run.config, folder / "config.yaml")
    (folder / "config.json").write_text(json.dumps(summary(run, checkpoint), indent=2), encoding="utf-8")
    for task in run.tasks.values():
        task.save_files(folder)
    evaluations = {}
    for path in sorted((Path(run_dir) / "evaluation").glob("*.json")):
        (folder / "evaluation").mkdir(exist_ok=True)
        shutil.copy2(path, folder / "evaluation" / path.name)
        if "_" not in path.stem:  # SPLIT.json, not a samples file
            evaluations[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    (folder / "README.md").write_text(model_card(run, evaluations), encoding="utf-8")
    write_endpoint_code(folder / "code")


def export_hf(run_dir: str | Path, out: str | Path, checkpoint: str = "best") -> Path:
    """Write the export folder (written under a temporary name, then renamed into place)."""
    run = Run.load(run_dir, checkpoint)
    with new_folder(out) as staging:
        write_export(run, run_dir, checkpoint, staging)
    return Path(out)


def push_to_hub(folder: str | Path, repo: str, private: bool = False) -> str:
    """Upload an export folder to the Hub repository `repo` (created when missing); returns its URL. Needs the
    network and a token (`HF_TOKEN` or `huggingface-cli login`)."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise PlaitError("--push needs the huggingface_hub package (pip install huggingface_hub)") from None
    api = HfApi()
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message="Upload a plait model")
    except Exception as error:  # network, authentication, permissions: all end the command the same way
        raise PlaitError(f"pushing {folder} to the Hub repository {repo} failed: {error}") from None
    return f"https://huggingface.co/{repo}"
