"""SageMaker: `plait train` as a training job's entry point, and the job definition `plait sagemaker train` launches.

Inside a SageMaker PyTorch container (`SM_MODEL_DIR` or `SM_TRAINING_ENV` set) `plait train CONFIG` reads:

- hyperparameters from `SM_HPS` (else `/opt/ml/input/config/hyperparameters.json`): each key is a config path,
  each value a `--set` value (`{"train.epochs": 3}` is `--set train.epochs=3`); SageMaker's own `sagemaker_*`
  keys are dropped;
- the data channel `SM_CHANNEL_TRAIN` (else the job's only channel) as `data.table`: the file of the same name as
  the config's `data.table` in the channel folder (else the channel's only file), or, when `data.table` names a
  folder (no extension: an npy, pickle or MELD folder), the channel folder itself. A hyperparameter `data.table`
  wins over the channel. Other channels are mounted at `/opt/ml/input/data/NAME`; point keys at them
  (`data.root=/opt/ml/input/data/media`);
- `/opt/ml/checkpoints`, when the job has a checkpoint location: the run folder is `/opt/ml/checkpoints/NAME`,
  which SageMaker syncs to S3 and restores when a spot-interrupted job restarts, so plait resumes from
  `checkpoints/last` there.

After training, the best model goes to `SM_MODEL_DIR` as a `plait export` folder with the `code/` folder of a
SageMaker endpoint (SageMaker uploads it as model.tar.gz; `plait predict` reads it unpacked, the PyTorch serving
container serves it: plait/serving/sagemaker_handler.py) and the run's config, metrics, report, evaluations, plots and
TensorBoard events to `SM_OUTPUT_DATA_DIR` (output.tar.gz).

The job's own code is a folder holding the entry script, the config, plait's wheel (plait/wheel.py) and a
requirements.txt installing that wheel, so the job runs the plait that launched it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath

import yaml

from plait.errors import PlaitError

HYPERPARAMETERS_FILE = Path("/opt/ml/input/config/hyperparameters.json")
CHECKPOINT_ROOT = Path("/opt/ml/checkpoints")
CHANNEL = "train"  # the channel that becomes data.table
OUTPUTS = ("config.yaml", "metrics.jsonl", "report.html", "evaluation", "plots", "tensorboard", "skipped.jsonl", "augmentation.json")

ENTRY_POINT = "plait_entry.py"
ENTRY_SCRIPT = '''"""SageMaker entry point written by `plait sagemaker train`: `plait train config.yaml` from this folder.

plait reads the hyperparameters (SM_HPS), the data channel (SM_CHANNEL_TRAIN) and the output folders from the
environment itself, so the `--KEY VALUE` arguments SageMaker appends for each hyperparameter are not used."""
import os
import sys

from plait.cli import main

sys.argv = ["plait", "train", os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.yaml")]
main()
'''
FRAMEWORK_VERSION, PY_VERSION = "2.5", "py311"  # a SageMaker PyTorch training image; requirements.txt brings plait's torch
MAX_RUN_S = 24 * 3600


# ── inside the training container ─────────────────────────────────────────────────────────────────
def in_sagemaker(env=os.environ) -> bool:
    """Whether this process runs as a SageMaker training job."""
    return bool(env.get("SM_MODEL_DIR") or env.get("SM_TRAINING_ENV"))


def hyperparameters(env=os.environ, file: Path = HYPERPARAMETERS_FILE) -> dict:
    """The job's hyperparameters, decoded, without SageMaker's own `sagemaker_*` keys.

    The file holds every value JSON-encoded as a string (`"3"`, `"\\"adamw\\""`); `SM_HPS` holds them decoded
    already. A string that is not JSON is kept as written."""
    if env.get("SM_HPS"):
        raw, source = env["SM_HPS"], "SM_HPS"
    elif Path(file).is_file():
        raw, source = Path(file).read_text(encoding="utf-8"), str(file)
    else:
        return {}
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as error:
        raise PlaitError(f"{source}: not JSON: {error}") from None
    if not isinstance(values, dict):
        raise PlaitError(f"{source}: expected a JSON object of hyperparameters")
    return {key: _decode(value) for key, value in values.items() if not key.startswith("sagemaker_")}


def _decode(value):
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _as_set_value(value) -> str:
    """A value as `--set` text that reads back as the same value (a string stays as written, like on the command line)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=float("inf")).removesuffix("\n...\n").strip()


def channel_folder(env=os.environ) -> Path | None:
    """`SM_CHANNEL_TRAIN`, else the job's only channel; None without channels."""
    channels = {key.removeprefix("SM_CHANNEL_").lower(): value for key, value in env.items()
                if key.startswith("SM_CHANNEL_") and value}
    if CHANNEL in channels:
        return Path(channels[CHANNEL])
    if len(channels) == 1:
        return Path(next(iter(channels.values())))
    if channels:
        raise PlaitError(f"channels {', '.join(sorted(channels))}: name the one holding the table `{CHANNEL}`")
    return None


def channel_table(folder: Path, table: str) -> Path:
    """Where `data.table` is in a channel folder (see the module doc for the rule)."""
    name = PurePosixPath(table.rstrip("/")).name
    if not PurePosixPath(name).suffix:
        return folder
    if (folder / name).exists():
        return folder / name
    files = sorted(path for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []
    if len(files) == 1:
        return files[0]
    held = ", ".join(path.name for path in files[:5]) or "nothing"
    raise PlaitError(f"channel {folder}: data.table is {name}, but the channel holds no such file ({held})")


def sagemaker_overrides(env=os.environ, config_path: str | Path | None = None, file: Path = HYPERPARAMETERS_FILE) -> list[str]:
    """`--set` overrides from the job: `data.table` from the channel first, then the hyperparameters (so a
    `data.table` hyperparameter wins). `config_path` is the YAML whose `data.table` names the file to find in
    the channel."""
    from plait.config import read_yaml

    overrides = []
    folder = channel_folder(env)
    if folder is not None and config_path is not None:
        table = str((read_yaml(config_path).get("data") or {}).get("table", ""))
        overrides.append(f"data.table={channel_table(folder, table)}")
    overrides += [f"{key}={_as_set_value(value)}" for key, value in hyperparameters(env, file).items()]
    return overrides


def is_main_host(env=os.environ) -> bool:
    """The first host of the job and the first process there: the one that publishes the model."""
    from plait.distributed import world_from_env

    hosts = json.loads(env.get("SM_HOSTS") or "[]")
    first_host = not hosts or env.get("SM_CURRENT_HOST", hosts[0]) == hosts[0]
    return first_host and world_from_env(env).is_main


def sagemaker_run_dir(env=os.environ, config_name: str = "plait", checkpoint_root: Path = CHECKPOINT_ROOT) -> tuple[Path, bool]:
    """The run folder and whether to resume it: `CHECKPOINT_ROOT/NAME` when the job has a checkpoint location
    (resumed when `checkpoints/last` there holds a checkpoint), else a new temporary folder."""
    from plait.training.checkpoint import has_checkpoint

    if Path(checkpoint_root).is_dir():
        folder = Path(checkpoint_root) / config_name
        return folder, has_checkpoint(folder / "checkpoints" / "last")
    # not under SM_OUTPUT_DATA_DIR: publish copies what is worth keeping there, and output.tar.gz stays small
    return Path(tempfile.mkdtemp(prefix=f"plait-{config_name}-")), False


def _take_new_train_settings(run_dir: Path, fresh) -> None:
    """A resumed run continues with the job's `train` settings (more epochs, say); anything else must not change."""
    from plait.config import load_config, save_config, to_dict

    saved = to_dict(load_config(run_dir / "config.yaml"))
    now = to_dict(fresh)
    changed = sorted(key for key in now if key != "train" and now[key] != saved.get(key))
    if changed:
        raise PlaitError(f"{run_dir}: the checkpoint was trained with other {', '.join(changed)} settings; "
                         "resume with the same config, or give the job a new checkpoint location")
    # every process writes the same file, atomically, before reading it back: none can read a stale or torn one
    save_config(fresh, run_dir / "config.yaml")


def publish(run_dir: str | Path, env=os.environ) -> None:
    """The best model to `SM_MODEL_DIR` (a `plait export` folder with an endpoint's `code/`) and the run's outputs to
    `SM_OUTPUT_DATA_DIR`."""
    from plait.inference.export import export_hf

    run_dir = Path(run_dir)
    if env.get("SM_MODEL_DIR"):
        with tempfile.TemporaryDirectory() as staging:
            # exported beside, then copied in: SM_MODEL_DIR itself may be a mount that cannot be replaced
            exported = export_hf(run_dir, Path(staging) / "model", "best")
            shutil.copytree(exported, env["SM_MODEL_DIR"], dirs_exist_ok=True)
    if env.get("SM_OUTPUT_DATA_DIR"):
        out = Path(env["SM_OUTPUT_DATA_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:
            source = run_dir / name
            if source.is_dir():
                shutil.copytree(source, out / name, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, out / name)


def train_in_sagemaker(config_path: str | Path, extra_overrides: list[str] = (), env=os.environ,
                       checkpoint_root: Path = CHECKPOINT_ROOT, file: Path = HYPERPARAMETERS_FILE) -> Path:
    """`plait train CONFIG` in a training job: the job's channel and hyperparameters, then `extra_overrides`
    (`--set`), train or resume, then publish the model and outputs. Returns the run folder."""
    from plait.config import load_config
    from plait.runs.training import train

    overrides = [*sagemaker_overrides(env, config_path=config_path, file=file), *extra_overrides]
    config = load_config(config_path, overrides)
    run_dir, resume = sagemaker_run_dir(env, config.name, checkpoint_root)
    if resume:
        _take_new_train_settings(run_dir, config)
        config = load_config(run_dir / "config.yaml")
    folder = train(config, run_dir, resume)
    if is_main_host(env):
        publish(folder, env)
    return folder


# ── launching a job ───────────────────────────────────────────────────────────────────────────────
def job_name(config_name: str) -> str:
    """A new SageMaker job name: letters, digits and hyphens, at most 63 characters."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", config_name).strip("-")[:47] or "plait"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def job_definition(config_path: str | Path, role: str, instance_type: str, source_dir: str | Path, instance_count: int = 1,
                   output: str | None = None, inputs: dict[str, str] | None = None, spot: bool = False,
                   overrides: list[str] = (), framework_version: str = FRAMEWORK_VERSION,
                   py_version: str = PY_VERSION) -> dict:
    """The job: `estimator` (keyword arguments of `sagemaker.pytorch.PyTorch`, less `source_dir`), `inputs` (for
    `fit`), `job_name`, and `source_dir`, the folder uploaded as the job's code, written here: the entry script, the
    config, plait's wheel and a requirements.txt installing it (`source_files` lists them). `overrides` become
    hyperparameters, typed as `--set` reads them."""
    from plait.config import load_config
    from plait.wheel import ship_plait

    config = load_config(config_path, list(overrides))  # fail here, not minutes into a job
    inputs = dict(inputs or {})
    if len(inputs) > 1 and CHANNEL not in inputs:
        raise PlaitError(f"--input {', '.join(inputs)}: name the one holding the table `{CHANNEL}`")
    if not inputs and "://" not in config.data.table:
        raise PlaitError(f"data.table {config.data.table} is local: give the job its data with --input {CHANNEL}=s3://...")
    hyper = {}
    for text in overrides:  # load_config checked their form
        key, value = text.split("=", 1)
        hyper[key.strip()] = yaml.safe_load(value)
    name = job_name(config.name)
    estimator = {
        "entry_point": ENTRY_POINT, "framework_version": framework_version, "py_version": py_version,
        "role": role, "instance_type": instance_type, "instance_count": instance_count,
        "hyperparameters": hyper, "max_run": MAX_RUN_S,
    }
    if output:
        estimator["output_path"] = output.rstrip("/")
    if spot:
        if not output:
            raise PlaitError("--spot needs --output s3://...: the checkpoints that let an interrupted job resume go there")
        estimator.update(use_spot_instances=True, max_wait=2 * MAX_RUN_S,
                         checkpoint_s3_uri=f"{output.rstrip('/')}/{name}/checkpoints")
    source_dir = Path(source_dir)
    ship_plait(source_dir, ".")  # the training toolkit runs pip in the code folder
    (source_dir / ENTRY_POINT).write_text(ENTRY_SCRIPT, encoding="utf-8")
    (source_dir / "config.yaml").write_text(Path(config_path).read_text(encoding="utf-8"), encoding="utf-8")
    return {"job_name": name, "estimator": estimator, "inputs": inputs, "source_dir": str(source_dir),
            "source_files": sorted(path.name for path in source_dir.iterdir())}


def sagemaker_pytorch():
    """The SDK's `sagemaker.pytorch` module, or a PlaitError saying how to install it."""
    try:
        from sagemaker import pytorch
    except ImportError:
        raise PlaitError("talking to SageMaker needs the sagemaker package: pip install sagemaker "
                         "(or print the definition with --dry-run)") from None
    return pytorch


def launch(definition: dict) -> str:
    """Start the job with the `sagemaker` SDK and follow its log to the end; returns the model's S3 address."""
    estimator = sagemaker_pytorch().PyTorch(source_dir=definition["source_dir"], **definition["estimator"])
    estimator.fit(definition["inputs"] or None, job_name=definition["job_name"])
    return estimator.model_data
