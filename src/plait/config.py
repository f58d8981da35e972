"""The schema: every key, its default and its doc string; load YAML, apply `--set` overrides, validate, hash.

Inputs, encoders, outputs and fusions declare their own keys in their modules (one hop from a key to the code
that uses it); this module assembles them into one schema from the registries.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, PositiveInt, ValidationError, create_model, field_validator, model_validator

from plait.settings import ENCODERS, FUSIONS, INPUTS, OUTPUTS, name_of
from plait.settings.fusion import ConcatConfig
from plait.settings.tune import TuneConfig
from plait.errors import PlaitError
from plait.files import write_atomic
from plait.schema import Section, format_validation_error


class ConfigError(PlaitError):
    def __init__(self, source: str, lines: list[str]):
        self.lines = lines
        super().__init__(f"{source}: invalid config\n" + "\n".join(f"  {line}" for line in lines))


def _union(members: list, tag: str):
    if len(members) == 1:
        return members[0]
    return Annotated[Union[tuple(members)], Field(discriminator=tag)]


def _input_model(input_settings):
    kind = name_of(input_settings)
    encoders = [encoder for encoder in ENCODERS if kind in encoder.modalities]
    default = next(encoder for encoder in encoders if name_of(encoder) == input_settings.default_encoder)
    return create_model(
        f"{kind.title()}Input",
        __base__=input_settings,
        encoder=(_union(encoders, "name"), Field(default_factory=default, description="Encoder for this input, by `name`.")),
    )


def _input_union():
    return _union([_input_model(input_settings) for input_settings in INPUTS], "type")


InputConfig = _input_union()
OutputConfig = _union(OUTPUTS, "type")
FusionConfig = _union(FUSIONS, "name")


class SamplerConfig(Section):
    name: Literal["shuffle", "m_per_class", "balanced"] = Field(
        "shuffle", description="`shuffle`: a fresh random order each epoch. `m_per_class`: batches made of groups of `m` "
        "rows of one class (rows of a class shuffled, cut into groups, the groups shuffled), so a metric-learning loss "
        "finds positive pairs in every batch; still every row once per epoch. Leftover groups smaller than `m` come last. "
        "`balanced`: every class of `output` visited equally often per epoch (the counts differ by at most one); the "
        "epoch keeps its length, the number of training rows, so rows of rare classes repeat and rows of frequent "
        "classes are left out, each row of a class as evenly as possible and a different choice every epoch. Rows "
        "without a label in `output` are each visited once, as with `shuffle`, and the labelled rows' share is split "
        "among the classes. Like the others it depends only on (`seed`, epoch), so a resumed run replays it exactly.",
    )
    m: PositiveInt = Field(4, ge=2, description="`m_per_class`: rows of one class per group; `train.batch_size` must be a multiple of it.")
    output: str | None = Field(None, description="`m_per_class`, `balanced`: the output whose classes group the rows (`m_per_class`: "
                               "a `category` or `embedding` output; `balanced`: a `category` or `binned` output); default: "
                               "the first such output.")


class SplitConfig(Section):
    column: str | None = Field(None, description="Column holding `train` / `validation` (or `val`, `dev`) / `test`. The default when `ratios` is not given: `split`.")
    ratios: tuple[float, float, float] | None = Field(None, description="Train / validation / test fractions for a seeded random split, e.g. [0.8, 0.1, 0.1].")
    seed: int = Field(0, description="Seed of the random split.")
    stratify: str | None = Field(None, description="Column whose value proportions each split keeps (a random split, and the folds of `folds`; with `group`, every group of a random split must hold one value).")
    group: str | None = Field(None, description="Column whose equal values always land in the same split, e.g. `image_id` so that all captions of one image stay together. A random split then shuffles groups and its `ratios` are fractions of groups, not rows; a `column` split is checked, and a group found in two splits is an error.")
    folds: int | None = Field(None, ge=2, description="k-fold cross-validation: the rows outside the test split (a `column` split's test rows, or the test share of `ratios`, held out first with `seed`) are divided into this many folds (seeded by `seed`; keeping `stratify`'s class mix and `group`s whole, with scikit-learn's KFold, StratifiedKFold, GroupKFold or StratifiedGroupKFold); fold `fold` is the validation split and the others train. `plait train CONFIG --folds K` (or this key without `fold`) trains one run per fold under one folder and writes `folds.json`. null: no folds.")
    fold: int | None = Field(None, ge=1, description="Which fold of `folds` (1 to `folds`) this run validates on; set for each fold's run by `plait train --folds`, so its config.yaml says which rows it trained on.")

    @model_validator(mode="after")
    def _one_way(self):
        if self.column is not None and self.ratios is not None:
            raise ValueError("give either `column` or `ratios`, not both")
        if self.ratios is not None and abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ValueError(f"ratios must add up to 1 (they add up to {sum(self.ratios):g})")
        if self.column is None and self.ratios is None:
            self.column = "split"
        if self.fold is not None and (self.folds is None or self.fold > self.folds):
            raise ValueError(f"fold {self.fold} needs folds of at least {self.fold} (folds is {self.folds})")
        return self


class StorageConfig(Section):
    endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. `http://127.0.0.1:9000` for MinIO; default: $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS itself.")
    profile: str | None = Field(None, description="AWS profile (from ~/.aws) whose credentials to use. Default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when set, else $AWS_PROFILE, else the usual AWS chain (instance role, ...). The region comes from AWS_DEFAULT_REGION or the profile. Keep secrets out of the config: it is saved in the run folder.")
    anonymous: bool = Field(False, description="Read public buckets without credentials.")
    retries: int = Field(5, ge=1, description="Attempts at reading one remote file. Connection errors, timeouts, throttling (SlowDown) and HTTP 5xx are retried after 0.2 s, doubling each time, with jitter (on top of the per-request retries of s3fs and botocore); a missing object or bucket, or denied access, fails at once.")
    options: dict[str, Any] = Field({}, description="Passed to the fsspec filesystem as they are, overriding the keys above, e.g. `{client_kwargs: {region_name: eu-west-1}}` or `{config_kwargs: {max_pool_connections: 64}}` for s3fs.")


class GeneratedImagesConfig(Section):
    folder: str = Field(description="A local folder of generated images, one subfolder per class named by its label: `<label>/*.png` (or .jpg, .jpeg, .webp, .bmp), e.g. written by `plait augment generate`. Relative to the config file. A subfolder whose name is not a label of the training split is ignored (and listed in `augmentation.json`).")
    per_class: int = Field(ge=1, description="A class with fewer training rows than this gets generated images, taken in file-name order, until it has this many rows or its subfolder runs out. Classes already this large are left as they are. Only the training split grows: validation and test keep only real rows.")
    input: str | None = Field(None, description="The image input whose column the generated files fill. null: the config's only image input (an error when it has none or several). Every other input of a generated row is empty, so each must have `missing: mask`.")
    label: str | None = Field(None, description="The output whose column holds the class of each row. null: the first output of type `category` or `embedding`. Other outputs are left out of a generated row's loss.")


class AugmentDataConfig(Section):
    generated: GeneratedImagesConfig | None = Field(None, description="Fill up rare classes of the training split with generated images (null: off). What was added is written to `augmentation.json` in the run folder.")


class DataConfig(Section):
    table: str = Field(description="The manifest: a .csv, .jsonl or .parquet file (or a folder of .npy arrays, a pickle or folder of pickles, a MELD folder, an image–caption file or folder, see `format`), a local path or any fsspec URL (s3://...). Relative to the config file.")
    format: Literal["auto", "csv", "jsonl", "parquet", "npy", "pickle", "meld", "flickr30k", "coco", "karpathy"] = Field("auto", description="Table format; `auto` goes by the file extension (`.json`: COCO or Karpathy, told by its content; `.token`: `flickr30k`; `.pkl`/`.pickle`: `pickle`; `.npz`: `npy`); a folder is never guessed, so name its format. "
        "`npy`: `table` is a folder of `NAME.npy` files, one array per column with the same first dimension (the row count), or one `.npz` file of such arrays; a 1-D array gives a value per row, a larger one gives each row its slice `array[i]`, memory-mapped, so data larger than memory stays on disk; a `split.npy` of strings, or a `split.txt` file with one split name per line, is the `split` column. "
        "`pickle`: `table` is a pickle of a list of dicts (rows), a dict of equal-length lists or arrays (columns) or a dict of dicts (rows, the key in column `key`); or a folder (or `s3://` prefix) of pickles, one row per file, each a dict of column → value, with the file's name in column `file`. Pickles are read by a restricted unpickler that admits only plain containers, numbers, strings and NumPy arrays (a pickled DataFrame is refused: save it as parquet). "
        "`meld`: `table` is a MELD folder (`{train,dev,test}_sent_emo.csv` and a clip folder per split) or one of its CSVs; rows gain `clip` (the path of `dia{Dialogue_ID}_utt{Utterance_ID}.mp4`) and `split`. "
        "The image–caption layouts give one row per (image, caption) pair with columns `image`, `caption`, `image_id`, `caption_number` and, where the layout has splits, `split`: "
        "`flickr30k`: Flickr30k or Flickr8k captions, `table` being Kaggle's `results.csv` (`image_name| comment_number| comment`), the original `results_20130124.token`, Kaggle's `captions.txt` (`image,caption`) or the folder holding one; no splits (use `split: {ratios: ..., group: image_id}`). "
        "`coco`: `captions_{train,val}2017.json` (or 2014), one file or a COCO folder holding `annotations/captions_*.json`; the split comes from each file's name. "
        "`karpathy`: `dataset_{flickr8k,flickr30k,coco}.json`; the split from each image's `split`, `restval` counting as train. "
        "Images are looked for beside the captions file and one folder up (`images/`, `flickr30k_images/`, `flickr30k-images/`, COCO's `train2017/`-style split folders, Karpathy's `filepath/filename`); found, `image` holds full paths; not found, the names as written, relative to `root`.")
    csv_separator: str = Field(",", description="Field separator of a CSV table.")
    root: str | None = Field(None, description="Folder that relative file paths in cells resolve against; default: the table's folder.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="How rows are divided into train / validation / test.")
    filter: str | None = Field(None, description="Keep only the rows for which this pandas query is true, e.g. `\"quality > 0.5 and site == 'A'\"` (`DataFrame.eval` syntax: `and`, `or`, `not`, `in`, `==`; a column name with spaces in `backticks`). Applied after the table is read and before the split: with `split.column` each row keeps its split, with `split.ratios` the kept rows alone are divided (so the ratios hold among them). Every verb that reads the table (train, evaluate, cache build, summary) sees the same rows; `plait predict --input` predicts every row it is given. A column the query names whose every cell is a number (CSV cells are read as text) is compared as a number. Dropped rows are in no split: `splits.csv` lists them with split `filtered`, and training starts by printing how many rows each split kept. A query that does not parse or names an unknown column is an error. null: every row.")
    cache: bool = Field(True, description="Use the preprocessing cache: decoded and preprocessed cells (frames, spectrograms, resized images) are stored once and memory-mapped by every later run. Which inputs use it: each input's `cache`.")
    workers: int | None = Field(None, ge=1, description="Threads that decode media cells missing from the cache (PyAV and Pillow decode outside Python's lock). null: one per CPU core, shared among the processes training on this machine; under several processes each decodes only its share of the missing cells.")
    cache_dir: str | None = Field(None, description="Folder of the preprocessing cache; default: $PLAIT_CACHE_DIR, else ~/.cache/plait. Safe to share between concurrent runs.")
    on_bad_sample: Literal["error", "skip"] = Field("error", description="`error`: stop with a message naming the file, row and column. `skip`: leave the row out and list it in `skipped.jsonl`.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="How remote files (`s3://...` tables and file cells) are reached. Each remote file is downloaded once per version (ETag) into `downloads/` of the cache folder and read from there.")
    augment: AugmentDataConfig = Field(default_factory=AugmentDataConfig, description="Rows added to the training split only, before preprocessing is fitted: generated images for rare classes.")


class OptimizerGroupConfig(Section):
    params: str = Field(description="A glob over the model's components: `encoders.INPUT` (the parameter table's `encoder INPUT`), `missing` (the missing-value vectors), `fusion`, `heads.OUTPUT`, `criteria.OUTPUT` (a loss's own parameters), e.g. `encoders.text` or `heads.*`. A glob that matches no component is an error that lists them.")
    lr: float | None = Field(None, gt=0, description="Learning rate of these components; null: the optimizer's `lr`. Schedules scale it as they scale `lr`.")
    weight_decay: float | None = Field(None, ge=0, description="Weight decay of these components; null: the optimizer's `weight_decay`.")
    layer_decay: float | None = Field(None, gt=0, le=1, description="Layer-wise rate decay for a transformer (`hf`, `hf_image`, `hf_audio`, `hf_video`, `transformer` encoders): a parameter of layer i of L (`layer.i.`, `layers.i.`, `h.i.` or `blocks.i.` in its name, i from 0) gets `lr` × layer_decay^(L − i), the embeddings before the first layer `lr` × layer_decay^(L + 1), and what follows the last layer (pooler, final norm, projection) `lr` itself. A matched component without such layers is an error. null: one rate.")


class OptimizerConfig(Section):
    name: Literal["adamw", "adam", "sgd"] = Field("adamw", description="Optimizer.")
    lr: float = Field(1e-3, gt=0, description="Learning rate (the peak rate for `onecycle` and warm-up schedules).")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW epsilon.")
    momentum: float = Field(0.9, ge=0, description="SGD momentum.")
    groups: list[OptimizerGroupConfig] = Field([], description="Learning rate, weight decay and layer-wise decay per component, e.g. `[{params: encoders.text, lr: 2.0e-5, layer_decay: 0.8}, {params: \"heads.*\", lr: 1.0e-3}]`. Each component takes the first group whose `params` matches it; the rest use `lr` and `weight_decay`. The parameter table printed when training starts shows each component's rate and decay.")
    decay_bias_and_norm: bool = Field(True, description="Apply weight decay to every parameter, as `torch.optim` does with `model.parameters()` (and the seed pipelines with it). false: biases, normalisation weights and the missing-value vectors (every parameter with one dimension) get none, as BERT and GPT are trained.")


class SchedulerConfig(Section):
    name: Literal["none", "step", "plateau", "onecycle", "linear_warmup", "cosine"] = Field("none", description="Learning-rate schedule. `step` and `plateau` act once per epoch, the others once per optimizer step.")
    step_size: int = Field(1, ge=1, description="`step`: epochs between decays.")
    gamma: float = Field(0.1, gt=0, description="`step`: factor applied every `step_size` epochs.")
    factor: float = Field(0.1, gt=0, lt=1, description="`plateau`: factor applied when the monitored metric stalls.")
    patience: int = Field(2, ge=0, description="`plateau`: validations without improvement before the rate drops.")
    monitor: str = Field("auto", description="`plateau`: the metric it watches, e.g. `validation.loss` while the best checkpoint is chosen by `train.monitor`. `auto`: `train.monitor`.")
    warmup_steps: int = Field(0, ge=0, description="`linear_warmup`, `cosine`: steps of linear warm-up from 0 to `lr`.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="`linear_warmup`, `cosine`: final rate as a fraction of `lr`.")
    pct_start: float = Field(0.3, gt=0, lt=1, description="`onecycle`: fraction of the steps spent increasing the rate.")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, description="Rows per batch (per optimizer micro-step).")
    eval_batch_size: int | None = Field(None, ge=1, description="Rows per batch when evaluating; default: `batch_size`.")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="Optimizer and its settings.")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description="Learning-rate schedule.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradients' global norm to this value.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches whose gradients add up before each optimizer step.")
    seed: int = Field(0, description="Seed of weights, data order, augmentation and dropout.")
    deterministic: bool = Field(True, description="Use deterministic algorithms only, so a resumed run equals an uninterrupted one bit for bit on CPU.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto`: CUDA when available, else CPU.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Mixed precision of the training steps: `bf16` (bfloat16 autocast: recent GPUs and CPUs, no scaling needed), `fp16` (float16 autocast with a gradient scaler, whose state is checkpointed; GPUs), or `fp32` (none). Evaluation runs in float32.")
    channels_last: bool = Field(True, description="On CUDA: image and video convolutions in channels-last memory order, which GPU kernels run fastest on (ignored on a CPU).")
    compile: bool = Field(False, description="Wrap the model in `torch.compile` for training (the first steps compile; worth it for long runs on GPUs).")
    threads: int | None = Field(None, ge=1, description="CPU threads for PyTorch; default: PyTorch's choice.")
    validate_every_epochs: int = Field(1, ge=1, description="Evaluate on the validation split every this many epochs (and after the last).")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="Also save `checkpoints/last` every this many optimizer steps (always at each epoch end).")
    monitor: str = Field("auto", description="Metric that picks the best checkpoint, drives `plateau` and early stopping, e.g. `validation.label.accuracy`. `auto`: `validation.loss`.")
    monitor_mode: Literal["auto", "min", "max"] = Field("auto", description="Whether a lower or higher monitored value is better; `auto`: lower for a loss, else as the output's task type says for that metric.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Stop after this many validations without improvement of the monitored metric.")
    log_every_steps: int = Field(50, ge=1, description="Write training loss and rate to metrics.jsonl and TensorBoard every this many steps.")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig, description="The order of the training rows in each epoch.")
    modality_dropout: float = Field(0.0, ge=0, lt=1, description="While training, hide each input of each row with this probability (it takes the missing-value path, as a missing cell does), never all of a row's inputs at once: the model learns to cope when a modality is missing. `plait ablate` shows the effect.")
    master_address: str | None = Field(None, description="Several processes: the address of rank 0's process-group server, when the launcher did not set MASTER_ADDR (torchrun does; mpirun does not). null: 127.0.0.1. Under mpirun across hosts, name the host of rank 0.")
    master_port: int | None = Field(None, ge=1, le=65535, description="Several processes: its port, when the launcher did not set MASTER_PORT. null: 29500.")

    @property
    def evaluation_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size


class ReportConfig(Section):
    write: bool = Field(True, description="Write `report.html` into the run folder when training ends (`plait report DIR` writes it for any run).")
    split: Literal["auto", "validation", "test"] = Field("auto", description="The split whose predictions, per-class table, sample gallery and ablation the report shows. `auto`: test, or validation when there is no test split.")
    samples: int = Field(12, ge=0, le=200, description="Rows of the split shown in the gallery of sample predictions, with their inputs.")
    neighbours: int = Field(5, ge=1, le=20, description="Nearest training rows shown beside each sample of an embedding output that searches a gallery.")
    ablation: bool = Field(True, description="Evaluate the split with each input masked in turn, and with one input kept, and show the change in each output's main metric (as `plait ablate`).")


class Config(Section):
    name: str = Field("run", description="Name of the experiment; run folders are called NAME-TIMESTAMP.")
    data: DataConfig = Field(description="Where the table is and how it splits.")
    inputs: list[InputConfig] = Field(min_length=1, description="The columns the model reads, each with a `type` and an `encoder`.")  # type: ignore[valid-type]
    outputs: list[OutputConfig] = Field(min_length=1, description="The columns the model predicts, each with a `type`.")  # type: ignore[valid-type]
    fusion: FusionConfig = Field(default_factory=ConcatConfig, description="How the encoders' outputs are combined: `concat` and `attention` fuse early (one vector, then one head per output), `late` gives each input its own heads and combines their predictions.")  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=TrainConfig, description="The training loop.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="The run report, `report.html`: one self-contained page of how the run went.")
    tune: TuneConfig | None = Field(None, description="The search `plait tune` runs: trials, sampler, pruner and the space of config paths to try; `plait train` ignores it.")
    tracking: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(["tensorboard"], description="Where metrics go besides `metrics.jsonl`, which is always written. `wandb` (Weights & Biases) needs `pip install wandb` and reads WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY, WANDB_DIR... from the environment; the project defaults to `name`, and WANDB_MODE=offline logs locally with no network. `mlflow` needs `pip install 'plait[mlflow]'` (or `pip install mlflow`) and reads MLFLOW_TRACKING_URI (e.g. `sqlite:///mlflow.db`, or a server's http:// address; unset: MLflow's default) and MLFLOW_EXPERIMENT_NAME (unset: `name`), plus MLflow's other MLFLOW_* settings such as MLFLOW_TRACKING_TOKEN; the MLflow run is named after the run folder.")

    @field_validator("tracking")
    @classmethod
    def _unique_trackers(cls, tracking: list[str]) -> list[str]:
        repeated = sorted({t for t in tracking if tracking.count(t) > 1})
        if repeated:
            raise ValueError(f"each tracker once; repeated: {', '.join(repeated)}")
        return tracking

    @model_validator(mode="after")
    def _unique_names(self):
        names = [i.name for i in self.inputs] + [o.name for o in self.outputs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"input and output names must be unique; repeated: {', '.join(repeated)}")
        for spec in self.inputs:
            augment = getattr(spec, "augment", None)
            if spec.encoder.cache_embeddings and augment is not None and augment.active:
                raise ValueError(f"inputs.{spec.name}: encoder.cache_embeddings computes each row's embedding once, "
                                 "so it cannot follow random augmentation; turn `augment` off or the cache off")
        return self

    @model_validator(mode="after")
    def _late_fusion_outputs(self):
        if self.fusion.name == "late":
            generating = [spec.name for spec in self.outputs if spec.generates]
            if generating:
                raise ValueError(f"fusion late combines one prediction per input, which a generated sequence is not: "
                                 f"use concat or attention with the output(s) {', '.join(generating)}")
        return self

    @model_validator(mode="after")
    def _optimizer_groups_match(self):
        """Each `train.optimizer.groups` glob names a component of this model (the trainer checks the built model)."""
        components = [f"encoders.{i.name}" for i in self.inputs] + ["missing", "fusion"] + [f"heads.{o.name}" for o in self.outputs]
        for index, group in enumerate(self.train.optimizer.groups):
            candidates = components + [f"criteria.{o.name}" for o in self.outputs]
            if not any(fnmatch.fnmatchcase(name, group.params) for name in candidates):
                raise ValueError(f"train.optimizer.groups[{index}].params: {group.params!r} matches no component; the "
                                 f"model's components are {', '.join(components)}")
        return self

    @model_validator(mode="after")
    def _caption_references(self):
        """A caption's references default to the first input's column (the image), and a random split keeps all
        captions of one image on the same side unless told otherwise."""
        captions = [spec for spec in self.outputs if spec.type == "caption"]
        for spec in captions:
            spec.references = spec.references or self.inputs[0].column
        split = self.data.split
        if captions and split.ratios is not None and split.group is None:
            split.group = captions[0].references
        return self


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise PlaitError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`train.epochs=3`, `inputs.photo.encoder.name=cnn`: list items are addressed by `name` or index."""
    return with_values(raw, [(*_parse_override(text), text) for text in overrides])


def with_values(raw: dict, values: list[tuple[list[str], Any, str]]) -> dict:
    """A copy of `raw` with each (path, value, how the user wrote it) set, as `--set` sets them."""
    raw = copy.deepcopy(raw)
    for path, value, text in values:
        node: Any = raw
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, list):
                matches = [i for i, item in enumerate(node) if isinstance(item, dict) and item.get("name") == part]
                if matches:
                    index = matches[0]
                elif part.isdigit() and int(part) < len(node):
                    index = int(part)
                else:
                    raise PlaitError(f"--set {text}: no item named {part!r} in {'.'.join(path[:depth])}")
                if last:
                    node[index] = value
                node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise PlaitError(f"--set {text}: {'.'.join(path[:depth])} is not a section")
    return raw


def add_input_settings(settings: type, encoders: list[type]) -> None:
    """Make the schema accept an input type defined outside plait: its settings (`type` and keys) and its encoders'
    settings join the lists, and `Config` is rebuilt in place, so every module holding it sees the new type."""
    INPUTS.append(settings)
    ENCODERS.extend(encoders)
    rebuild_schema()


def rebuild_schema() -> None:
    """`Config` rebuilt from the current lists of input and encoder settings (after they change)."""
    Config.model_fields["inputs"].annotation = list[_input_union()]
    Config.model_rebuild(force=True)


def validate(raw: Any, source: str = "config") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): expected a mapping of keys to values"])
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, format_validation_error(error, raw)) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise PlaitError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PlaitError(f"{path}: not valid YAML: {error}") from None
    return raw if raw is not None else {}


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config; a relative `data.table` resolves against the config file's folder."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    config = validate(raw, str(path))
    table = config.data.table
    if "://" not in table and not Path(table).is_absolute():
        config.data.table = str((Path(path).parent / table).resolve())
    generated = config.data.augment.generated
    if generated is not None and not Path(generated.folder).is_absolute():
        generated.folder = str((Path(path).parent / generated.folder).resolve())
    return config


def to_dict(config: Config) -> dict:
    return config.model_dump(mode="json")


def config_hash(config: Config) -> str:
    """Stable hash of the resolved config (every default filled in): same settings, same hash."""
    canonical = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def config_text(config: Config | dict) -> str:
    """The resolved config as YAML, keys in schema order: what a run folder's config.yaml holds."""
    return yaml.safe_dump(to_dict(config) if isinstance(config, Config) else config, sort_keys=False)


def save_config(config: Config, path: str | Path) -> None:
    write_atomic(path, config_text(config))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested config. Lists of named sections (inputs, outputs) are keyed by name
    (`inputs.note.encoder.dim`), other lists of sections by position; lists of plain values stay whole."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        named = all("name" in item for item in value) and len({item["name"] for item in value}) == len(value)
        value = {str(item["name"]) if named else str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    flat = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat
