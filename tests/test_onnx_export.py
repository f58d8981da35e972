"""`plait export RUN --format onnx`: onnxruntime predicts what PyTorch predicts (within 1e-4) for tiny trained runs
built like every recipe that exports, on batches of one and several rows and of different text and sequence lengths;
captions stay on PyTorch; the folder reads back as a run; the command end to end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch
import yaml

from plait import api
from plait.config import apply_overrides, validate
from plait.data.dataset import prepare_inputs
from plait.errors import PlaitError
from plait.evaluation.evaluate import predict_split
from plait.inference.onnx import OnnxPredictor, export_onnx
from plait.inference.predict import encode_rows
from plait.runs import Run
from tests.conftest import ROOT, run_cli, run_cli_here

TINY_RESNET = "{embedding_size: 8, hidden_sizes: [8, 16], depths: [1, 1]}"
TINY_VIT = "{patch_size: 8, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32}"
QUICK = ["train.epochs=1", "report.write=false", "train.checkpoint_every_steps=null"]


@dataclass
class Tiny:
    recipe: str
    make_data: Callable[[Path], Path]  # folder → what data.table points at
    overrides: list[str]
    add: dict = field(default_factory=dict)  # section → items appended to the recipe's list (inputs, outputs)


def demo_data(folder):
    from plait.demo.synthetic import make_demo

    return make_demo(folder, rows=160)


def meld_data(folder):
    from plait.demo.synthetic_meld import make_meld

    return make_meld(folder, dialogues=(5, 2, 2), size=16, frames=4, fps=4)


def signal_data(folder):
    from plait.demo.synthetic_sequences import make_signal_pickles

    return make_signal_pickles(folder, samples=40)


def spectra_data(folder):
    from plait.demo.synthetic_sequences import make_spectra

    return make_spectra(folder, samples=60, length=64)


def retrieval_data(folder):
    from plait.demo.synthetic_retrieval import make_retrieval

    return make_retrieval(folder, rows=64, imbalance=1.0)


def caption_data(folder):
    from plait.demo.synthetic_captions import make_flickr30k

    return make_flickr30k(folder, images=20, size=32)


RUNS = {
    "demo": Tiny("demo.yaml", demo_data, []),
    # the demo's inputs through other encoders: ViT, a transformer over the note, a category embedding, attention fusion
    "demo_attention": Tiny("demo.yaml", demo_data, [
        f"inputs.photo.encoder={{name: hf_image, arch: vit, overrides: {TINY_VIT}}}",
        "inputs.note.encoder={name: transformer, dim: 16, heads: 2, layers: 1, ff: 32}",
        "fusion={name: attention, dim: 16, hidden: [16]}"],
        add={"inputs": [{"name": "word", "type": "category", "column": "note"}]}),
    "demo_late": Tiny("demo.yaml", demo_data, [
        f"inputs.photo.encoder={{name: hf_image, arch: clip, overrides: {TINY_VIT}}}", "fusion={name: late, hidden: [16]}"]),
    # R3D-18 and MiniLM frozen (their projections train), so training runs each once per clip; and the clips again
    # through the small 3-D CNN the sentiment demo uses
    "sentiment": Tiny("sentiment_video_audio_text.yaml", meld_data, [
        "inputs.video.frames=4", "inputs.video.size=16", "inputs.video.encoder.freeze=true", "inputs.audio.max_seconds=1",
        "inputs.text.max_length=16", "inputs.text.encoder.freeze=true", "train.batch_size=8"],
        add={"inputs": [{"name": "motion", "type": "video", "column": "clip", "frames": 4, "size": 16,
                         "encoder": {"name": "cnn3d", "channels": [4, 8]}}]}),
    # and a drift read by two layers of GRU with the time code
    "attention": Tiny("attention_regression.yaml", signal_data, [
        "inputs.pulse.encoder.hidden=8", "inputs.drift.encoder.hidden=8", "inputs.burst.encoder.hidden=8",
        "fusion.dim=8", "fusion.hidden=[8]", "train.batch_size=16"],
        add={"inputs": [{"name": "drift_gru", "type": "sequence", "column": "drift", "encoder": {
            "name": "lstm", "cell": "gru", "layers": 2, "hidden": 8, "pooling": "last", "positional_encoding": True}}]}),
    "binned": Tiny("binned_multitask_cnn_lstm.yaml", spectra_data, [
        "inputs.spectrum.encoder.filters=4", "inputs.spectrum.encoder.hidden=8", "inputs.spectrum.encoder.dense=[8]",
        "train.batch_size=16"]),
    "retrieval": Tiny("metric_learning_retrieval.yaml", retrieval_data, [
        "inputs.photo.size=32", f"inputs.photo.encoder.overrides={TINY_RESNET}", "inputs.sound.sample_rate=8000",
        "inputs.sound.max_seconds=0.5", "inputs.sound.n_mels=32", "inputs.description.max_length=16",
        "inputs.description.encoder.freeze=true",
        "outputs.similar.map=none", "train.batch_size=32", "train.monitor=validation.loss"]),
    # captions and a category output: the category is exported, the captions stay on PyTorch
    "captions": Tiny("image_captioning.yaml", caption_data, [
        "inputs.image.size=32", "inputs.image.encoder={name: cnn, channels: [8, 16]}", "inputs.image.augment={}",
        "outputs.caption.tokenizer.vocab_size=300", "outputs.caption.tokenizer.max_length=12",
        "outputs.caption.decoder={dim: 16, heads: 2, layers: 1, ff_dim: 32, dropout: 0.0}",
        "outputs.caption.generation.beam_size=1", "train.batch_size=16", "data.split.ratios=[0.7, 0.15, 0.15]"],
        add={"outputs": [{"name": "position", "type": "category", "column": "caption_number"}]}),
}
RUNS["captions_only"] = Tiny("image_captioning.yaml", caption_data, RUNS["captions"].overrides)


def train_tiny(name: str, folder: Path) -> Path:
    """A run of RUNS[name], one epoch, without its plots (seconds of matplotlib per run that these tests never read)."""
    tiny = RUNS[name]
    recipe = ROOT / "recipes" / tiny.recipe
    raw = yaml.safe_load(recipe.read_text())
    for section, items in tiny.add.items():
        raw[section] += items
    table = tiny.make_data(folder / "data")
    raw = apply_overrides(raw, [f"data.table={table}", *QUICK, *tiny.overrides])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("plait.runs.final.history_plots", lambda metrics, plots: [])
        patch.setattr(Run, "output_plots", lambda run, evaluation: {})
        return api.train(validate(raw, str(recipe)), run_dir=folder / "run")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name → a run folder of RUNS[name], trained on first use (with the module's own cache folder)."""
    folder, built = tmp_path_factory.mktemp("onnx"), {}

    def get(name: str) -> Path:
        if name not in built:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("PLAIT_CACHE_DIR", str(folder / "cache"))
                built[name] = train_tiny(name, folder / name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def exported(trained):
    """name → the ONNX export of that run, written on first use."""
    built = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = export_onnx(trained(name), trained(name).parent / "onnx")
        return built[name]

    return get


def varied_rows(run: Run, name: str):
    """Seven training rows, with texts and sequences of different lengths, and row 2 missing the last input."""
    table = run.data.rows("train").head(7).reset_index(drop=True).astype(object)
    for spec in run.config.inputs:
        if spec.type == "text":  # one word, and twice the text
            table.loc[1, spec.column] = str(table.loc[1, spec.column]).split()[0]
            table.loc[4, spec.column] = f"{table.loc[4, spec.column]} {table.loc[4, spec.column]}"
    if name == "binned":  # spectra are all 64 steps long: cut some shorter, one below the CNN's 8-step minimum
        table["spectrum"] = [np.asarray(s)[:n] for s, n in zip(table["spectrum"], [64, 40, 64, 5, 17, 9, 64])]
    table.loc[2, run.config.inputs[-1].column] = None
    return table


@pytest.mark.parametrize("name", [
    "demo", "demo_attention", "demo_late",
    pytest.param("sentiment", marks=pytest.mark.slow), "attention", "binned",
    pytest.param("retrieval", marks=pytest.mark.slow), "captions",
])
def test_onnxruntime_predicts_what_pytorch_predicts(exported, name):
    out = exported(name)
    run = Run.load(out)  # the export folder reads back as a run: its preprocessing and PyTorch weights
    split = encode_rows(run, varied_rows(run, name), "rows")
    predictor = OnnxPredictor(out)
    worst = 0.0
    for batch_size in (1, 3, len(split)):
        expected = predict_split(run.model, run.features, run.tasks, split, batch_size, run.device)
        predicted = predictor.predict(split, batch_size)
        assert predicted.keys() == expected.keys() and expected
        for output, value in expected.items():
            assert predicted[output].shape == value.shape, output
            worst = max(worst, float((predicted[output] - value).abs().max()))
    print(f"{name}: largest difference {worst:.2e} over {', '.join(expected)}")
    assert worst <= 1e-4


def test_the_manifest_lists_each_graph_input_with_its_dtype_and_free_axes(exported):
    import onnxruntime

    out = exported("demo")
    manifest = json.loads((out / "onnx.json").read_text())
    inputs = {i["name"]: i for i in manifest["inputs"]}
    assert inputs["note.ids"] == {"name": "note.ids", "dtype": "int64", "shape": ["batch", "note.tokens"]}
    assert inputs["photo.value"] == {"name": "photo.value", "dtype": "float32", "shape": ["batch", 3, 32, 32]}
    assert inputs["reading.present"]["dtype"] == "bool" and (manifest["outputs"], manifest["pytorch_only"]) == (["label"], [])
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert {i.name: i.shape for i in session.get_inputs()} == {name: i["shape"] for name, i in inputs.items()}


def test_series_shorter_than_a_cnn_lstm_reads_are_zero_padded_for_onnxruntime(exported):
    out = exported("binned")
    spectrum = json.loads((out / "onnx.json").read_text())["inputs"]
    assert {i["name"]: i.get("min_steps") for i in spectrum} == {"spectrum.value": 8, "spectrum.length": None,
                                                                   "spectrum.present": None}
    run, predictor, fed = Run.load(out), OnnxPredictor(out), {}
    session = predictor.session
    predictor.session = SimpleNamespace(run=lambda names, feeds: fed.update(feeds) or session.run(names, feeds))
    rows = run.data.rows("train").head(1).astype(object)
    rows["spectrum"] = [np.asarray(rows["spectrum"].iloc[0])[:3]]
    expected = predict_split(run.model, run.features, run.tasks, encode_rows(run, rows, "rows"), 1, run.device)
    predicted = predictor.predict(encode_rows(run, rows, "rows"), 1)
    assert fed["spectrum.value"].shape == (1, 8, 1) and not fed["spectrum.value"][:, 3:].any()
    assert all(torch.allclose(predicted[name], expected[name], atol=1e-4) for name in expected)


def test_an_encoder_the_tracer_cannot_follow_is_named(trained, tmp_path, monkeypatch):
    from plait.models.encoders.image import ImageCnn

    def histogram(self, batch):  # no ONNX symbolic for histc
        return torch.histc(batch["value"], bins=64)[None].expand(len(batch["value"]), -1)

    monkeypatch.setattr(ImageCnn, "forward", histogram)
    with pytest.raises(PlaitError, match="inputs.photo: encoder cnn cannot be exported to ONNX"):
        export_onnx(trained("demo"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_run_whose_outputs_all_generate_is_refused(trained, tmp_path):
    with pytest.raises(PlaitError, match=r"\(caption\) is a caption, written token by token on PyTorch: there is nothing to"):
        export_onnx(trained("captions_only"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_command_exports_the_other_outputs_and_says_captions_stay_on_pytorch(trained, tmp_path):
    run_dir, out = trained("captions"), tmp_path / "exported"
    result = run_cli("export", run_dir, "--format", "onnx", out)
    assert f"wrote {out}: model.onnx" in result.stdout and "outputs position)" in result.stdout
    assert "caption: generated token by token, not in model.onnx" in result.stdout
    assert {"model.onnx", "onnx.json", "model.safetensors", "preprocessing.json", "config.yaml", "config.json"} <= {
        path.name for path in out.iterdir()}
    assert (out / "tokenizers" / "caption" / "tokenizer.json").is_file()
    manifest = json.loads((out / "onnx.json").read_text())
    assert (manifest["outputs"], manifest["pytorch_only"]) == (["position"], ["caption"])
    run = Run.load(out)  # captions are still written from the folder's PyTorch weights
    split = encode_rows(run, run.data.rows("test").head(2), "rows")
    assert len(run.model.generate(prepare_inputs(run.features, split.batch(torch.arange(2))["inputs"], False), "caption")) == 2


def test_the_default_folder_is_beside_the_run(trained):
    run_dir = trained("attention")
    result = run_cli_here("export", run_dir, "--format", "onnx")
    assert result.returncode == 0, result.stderr
    assert (run_dir / "export-onnx" / "model.onnx").is_file() and str(run_dir / "export-onnx") in result.stdout
