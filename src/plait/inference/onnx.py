"""`plait export DIR --format onnx OUT`: the model after preprocessing (encoders, fusion, heads) as `model.onnx`, and
`OnnxPredictor`, which runs it with onnxruntime in place of PyTorch.

The folder holds what `--format hf` writes (weights, `preprocessing.json`, `config.yaml`, tokenizers), so plait still
encodes rows for it (`Run.load(OUT)`), plus `model.onnx` and `onnx.json`, the manifest: each graph input
(`INPUT.KEY`: the tensors `MultimodalModel.forward` gets after `prepare_inputs`, such as `photo.value`, `note.ids`,
`note.present`) with its dtype and shape (`batch`, and `INPUT.tokens` / `INPUT.steps` where a text's or sequence's
length varies from batch to batch), the outputs (each non-generating head's raw prediction, `OUTPUT@INPUT` under
late fusion, `fusion.attention` under attention fusion) and the outputs left to PyTorch (captions, which generate).

Exporter: `torch.onnx.export(..., dynamo=False)`, the TorchScript tracer. The dynamo exporter (torch.export, which
also needs the onnxscript package) stops at the model's data-dependent Python: with torch 2.13 and onnxscript 0.7
it fails on `present.any()` in `MultimodalModel.encode` (a guard on a data-dependent value), and the lengths that
`pack_padded_sequence` reads in the recurrent encoders are data too. The tracer records one example batch's ops
instead, maps packed sequences onto ONNX's LSTM/GRU `sequence_lens`, and keeps the `dynamic_axes` free. It is
deprecated since torch 2.9 but still ships in 2.13, and its warnings are silenced here; what it cannot follow in
plait's models is stood in for while it traces (onnx_trace.py). Tracing fixes Python branches at the example, so the
example batch has every input present (every encoder is in the graph; a missing row still gets its 'missing' vector
through `torch.where`) and texts and sequences at their longest (a CNN-LSTM's padding of short series is not in the
graph: the predictor pads them to the manifest's `min_steps`). The export is then checked against PyTorch on other
batch sizes and lengths: placeholder values, which catch shapes the trace fixed; the tests compare real rows.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from plait.config import load_config
from plait.data.dataset import EncodedSplit, prepare_inputs, to_device
from plait.errors import PlaitError
from plait.evaluation.evaluate import concatenate
from plait.inference.export import new_folder, write_export
from plait.inference.onnx_trace import traceable
from plait.runs import Run
from plait.runs.setup import make_preprocessor
from plait.training.checkpoint import load_preprocessing

OPSET = 17
TOLERANCE = 1e-4  # largest difference from PyTorch an export may show on its check batches
# The axes besides the batch whose size a batch's longest row sets (`stack` pads to it): per feature type, the name
# of the axis and the keys that have it as axis 1. Image, video and audio pad to a fixed size.
LENGTH_AXES = {"text": ("tokens", ("ids", "attention_mask")), "sequence": ("steps", ("value", "mask"))}


def longest(feature) -> int:
    """A text's or a sequence's most steps."""
    return feature.spec.max_length if feature.name == "text" else max(feature.max_length, 1)


def example_cells(feature, rows: int, shorter: bool) -> dict[str, torch.Tensor]:
    """A stacked batch of `rows` present rows: the feature's placeholder cells (its shapes and dtypes); texts and
    sequences at their longest in the first row (`shorter`: at about half) and at about half that in the others."""
    batch = feature.stack([feature.empty()] * rows)
    batch["present"] = torch.ones(rows, dtype=torch.bool)
    if feature.name in LENGTH_AXES:
        steps = max(1, longest(feature) // (2 if shorter else 1))
        lengths = torch.tensor([steps] + [max(1, steps // 2)] * (rows - 1))
        if feature.name == "text":
            batch["ids"] = torch.full((rows, steps), feature.pad_id, dtype=torch.long)
            batch["attention_mask"] = torch.arange(steps) < lengths[:, None]
        else:
            batch["value"] = torch.zeros(rows, steps, batch["value"].shape[-1])
            batch["length"] = lengths
    return batch


def example_inputs(features: dict, rows: int, shorter: bool = False) -> dict:
    """Prepared inputs for tracing, and (`shorter`) for checking the length axes."""
    return prepare_inputs(features, {name: example_cells(f, rows, shorter) for name, f in features.items()}, training=False)


class FlatModel(nn.Module):
    """`MultimodalModel.forward` over positional tensors, in `names` order, giving `outputs` as a tuple: what the
    tracer takes and gives."""

    def __init__(self, model: nn.Module, names: list[tuple[str, str]], outputs: list[str]):
        super().__init__()
        self.model, self.names, self.outputs = model, names, outputs

    def forward(self, *tensors):
        inputs: dict[str, dict] = {}
        for (name, key), tensor in zip(self.names, tensors):
            inputs.setdefault(name, {})[key] = tensor
        predictions = self.model(inputs)
        return tuple(predictions[name] for name in self.outputs)


def describe(run: Run, name: str, key: str, tensor: torch.Tensor) -> dict:
    """A graph input for the manifest: name, dtype, shape (`batch` and the length axis named), and `min_steps` where its
    encoder pads shorter series with zeros (a CNN-LSTM), which the traced graph does not: the predictor does."""
    shape: list = ["batch", *tensor.shape[1:]]
    described = {"name": f"{name}.{key}", "dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}
    axis, keys = LENGTH_AXES.get(run.features[name].name, ("", ()))
    if key in keys:
        shape[1] = f"{name}.{axis}"
        if getattr(run.model.encoders[name], "min_length", 1) > 1:
            described["min_steps"] = run.model.encoders[name].min_length
    return described


def traced(module: nn.Module, args: tuple, path, **names) -> None:
    """`torch.onnx.export` through the TorchScript tracer, with the stand-ins of onnx_trace.py in place."""
    with traceable(module, OPSET), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's deprecation notice, and the branches fixed at the example
        torch.onnx.export(module.eval(), args, path, dynamo=False, opset_version=OPSET, **names)


def trace(model: nn.Module, example: dict, outputs: list[str], path: Path, inputs: list[dict]) -> None:
    """Write `model` traced on `example` to `path`, with `inputs`' named axes free."""
    names = [tuple(i["name"].split(".", 1)) for i in inputs]
    dynamic = {i["name"]: {axis: size for axis, size in enumerate(i["shape"]) if isinstance(size, str)} for i in inputs}
    traced(FlatModel(model, names, outputs), tuple(example[n][k] for n, k in names), str(path),
           input_names=[i["name"] for i in inputs], output_names=outputs,
           dynamic_axes={**dynamic, **{output: {0: "batch"} for output in outputs}})


def failing_encoder(run: Run, example: dict, error: Exception) -> PlaitError:
    """The export failed: name the input whose encoder cannot be traced alone, if one cannot."""
    for spec in run.config.inputs:
        try:
            traced(run.model.encoders[spec.name], (example[spec.name], {}), io.BytesIO())  # {}: no keyword arguments
        except Exception as cause:  # noqa: BLE001 (whatever the tracer raises is the answer)
            return PlaitError(f"inputs.{spec.name}: encoder {spec.encoder.name} cannot be exported to ONNX: {cause}")
    return PlaitError(f"this model cannot be exported to ONNX: {error}")


def export_onnx(run_dir: str | Path, out: str | Path, checkpoint: str = "best") -> Path:
    """Write the export folder with `model.onnx` and `onnx.json` (see the module's docstring); return it."""
    run = Run.load(run_dir, checkpoint)
    kept = [name for name, task in run.tasks.items() if task.generates]
    if len(kept) == len(run.tasks):
        raise PlaitError(f"{run_dir}: every output of this run ({', '.join(kept)}) is a caption, written token by token on "
                         "PyTorch: there is nothing to export to ONNX (use --format hf)")
    run.model.cpu()  # traced where onnxruntime runs it, with the examples
    example = example_inputs(run.features, rows=2)
    with torch.no_grad():
        outputs = list(run.model(example))  # the generating heads give nothing without targets
    inputs = [describe(run, name, key, tensor) for name, tensors in example.items() for key, tensor in tensors.items()]
    with new_folder(out) as staging:
        write_export(run, run_dir, checkpoint, staging)
        try:
            trace(run.model, example, outputs, staging / "model.onnx", inputs)
        except Exception as error:  # noqa: BLE001 (the tracer raises many kinds; the message names the encoder)
            raise failing_encoder(run, example, error) from None
        read = {graph_input.name for graph_input in onnx.load(staging / "model.onnx", load_external_data=False).graph.input}
        manifest = {"opset": OPSET, "exporter": f"torch {torch.__version__} onnx.export(dynamo=False)",
                    "inputs": [described for described in inputs if described["name"] in read],
                    "outputs": outputs, "pytorch_only": kept}
        (staging / "onnx.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        predictor = OnnxPredictor(staging, run.features)
        for rows, shorter in ((1, False), (3, True)):
            check(run.model, predictor, example_inputs(run.features, rows, shorter))
    return Path(out)


def check(model: nn.Module, predictor: OnnxPredictor, inputs: dict) -> None:
    """Refuse an export whose outputs differ from PyTorch's on `inputs`."""
    with torch.no_grad():
        expected = model(inputs)
    for name, value in predictor.run(inputs).items():
        difference = float((value - expected[name].float()).abs().max())
        if not difference <= TOLERANCE:  # also NaN
            raise PlaitError(f"the ONNX export of output {name} differs from PyTorch by {difference:.3g} on a check batch "
                             f"of {len(value)} rows; please report it with the run's config")


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    if not (folder / "onnx.json").is_file() or not (folder / "model.onnx").is_file():
        raise PlaitError(f"{folder}: not an ONNX export (no onnx.json and model.onnx); write one with "
                         "`plait export RUN --format onnx`")
    return json.loads((folder / "onnx.json").read_text(encoding="utf-8"))


def load_features(folder: Path) -> dict:
    """The folder's fitted feature types, without building the PyTorch model."""
    preprocessor = make_preprocessor(load_config(folder / "config.yaml"))
    preprocessor.load_state_dict(load_preprocessing(folder))
    return preprocessor.features


def padded(array: np.ndarray, steps: int) -> np.ndarray:
    """`array` with zeros (False) after its steps (axis 1) up to `steps`."""
    if array.shape[1] >= steps:
        return array
    return np.pad(array, [(0, 0), (0, steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2))


class OnnxPredictor:
    """`model.onnx` of an export folder on onnxruntime's CPU provider; `predict` gives what `predict_split` gives
    for a split without targets. `features`: the run's fitted feature types (default: read from the folder)."""

    def __init__(self, folder: str | Path, features: dict | None = None):
        folder = Path(folder)
        self.manifest = read_manifest(folder)
        self.inputs, self.outputs = self.manifest["inputs"], self.manifest["outputs"]
        self.features = features if features is not None else load_features(folder)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only, not a warning for each initializer it folds away
        self.session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def run(self, inputs: dict) -> dict[str, torch.Tensor]:
        """Raw predictions for one batch of prepared inputs."""
        feeds = {}
        for graph_input in self.inputs:
            name, key = graph_input["name"].split(".", 1)
            if key not in inputs[name]:
                raise PlaitError(f"input {name} has no {key!r} tensor (it has {', '.join(inputs[name])}): give the ONNX "
                                 "model encoded rows, not a frozen encoder's cached embeddings")
            array = inputs[name][key].numpy()
            feeds[graph_input["name"]] = padded(array, graph_input["min_steps"]) if "min_steps" in graph_input else array
        results = self.session.run(self.outputs, feeds)
        return {name: torch.from_numpy(np.asarray(result)).float() for name, result in zip(self.outputs, results)}

    def predict(self, split: EncodedSplit, batch_size: int) -> dict[str, torch.Tensor]:
        """Raw predictions per exported output for every row of the split, in order (as `predict_split` without
        targets: category logits, numbers, embeddings, `fusion.attention`)."""
        collected: dict[str, list] = {name: [] for name in self.outputs}
        for indices in torch.arange(len(split)).split(batch_size):
            inputs = to_device(split.batch(indices)["inputs"], torch.device("cpu"))
            for name, value in self.run(prepare_inputs(self.features, inputs, training=False)).items():
                collected[name].append(value)
        return {name: concatenate(parts) for name, parts in collected.items() if parts}
