"""The two sequence recipes: their settings, the attention recipe reading its pickles from S3, and both trained end
to end on generated data against a baseline that knows only the training targets."""

import json

import pytest
import yaml

from plait import api
from plait.config import validate
from plait.demo.synthetic_sequences import PARAMETERS, make_signal_pickles, make_spectra
from plait.demo.runner import run_demo
from tests.conftest import ROOT
from tests.test_s3 import aws, bucket, moto  # noqa: F401  (the S3 server and credentials fixtures)

ATTENTION = ROOT / "recipes" / "attention_regression.yaml"
BINNED = ROOT / "recipes" / "binned_multitask_cnn_lstm.yaml"


def recipe(path, **data) -> dict:
    raw = yaml.safe_load(path.read_text())
    raw["data"].update(data)
    return raw


def test_the_attention_recipe_is_the_documented_pipeline():
    config = validate(recipe(ATTENTION))
    assert {(s.name, s.type, s.encoder.name) for s in config.inputs} == {
        ("pulse", "sequence", "lstm"), ("drift", "sequence", "lstm"), ("burst", "sequence", "lstm")}
    assert (config.fusion.name, config.outputs[0].type, config.data.format) == ("attention", "number", "pickle")
    assert config.data.table.startswith("s3://")
    train = config.train
    assert (train.optimizer.name, train.scheduler.name, train.monitor) == ("adam", "step", "validation.loss")


def test_the_binned_recipe_has_fifteen_heads_on_a_cnn_lstm():
    config = validate(recipe(BINNED))
    assert [o.name for o in config.outputs] == PARAMETERS and {(o.type, o.bins) for o in config.outputs} == {("binned", 10)}
    assert (config.inputs[0].encoder.name, config.data.format, config.train.scheduler.name) == ("cnn_lstm", "npy", "onecycle")


def test_the_attention_recipe_trains_from_pickles_in_a_bucket(bucket, tmp_path):
    name, client = bucket
    folder = make_signal_pickles(tmp_path, samples=60)
    for path in sorted(folder.iterdir()):
        client.put_object(Bucket=name, Key=f"signals/{path.name}", Body=path.read_bytes())
    raw = recipe(ATTENTION, table=f"s3://{name}/signals/")
    raw["train"].update(epochs=1, batch_size=16)
    run = api.train(validate(raw), run_dir=tmp_path / "run")
    metrics = json.loads((run / "evaluation" / "test.json").read_text())
    assert {"score.spearman", "score.pearson", "score.r2"} <= set(metrics)
    assert (run / "plots" / "loss.png").is_file()
    from tests.test_report import section

    assert section(run, "samples").count("steps × 1 channel") >= 3  # a sparkline per signal of a sample row
    from plait.data.tables import read_table
    from plait.inference.predict import predict_table
    from plait.runs import Run

    rows = read_table(f"s3://{name}/signals/", "pickle").head(5)
    predicted = predict_table(Run.load(run), rows, "bucket")
    weights = predicted[["attention_pulse", "attention_drift", "attention_burst"]].sum(axis=1)
    assert predicted["score_pred"].notna().all() and weights.sub(1).abs().max() < 1e-5  # which signal each row relied on


@pytest.mark.slow
def test_the_attention_recipe_beats_predicting_the_mean(tmp_path):
    results = run_demo(tmp_path, name="attention")
    trained, baseline = results["trained"], results["baseline"]
    print(f"attention regression, test: R² {trained['score.r2']:.3f} vs {baseline['score.r2']:.3f}, Spearman "
          f"{trained['score.spearman']:.3f}, RMSE {trained['score.rmse']:.3f} vs {baseline['score.rmse']:.3f}")
    assert trained["score.r2"] >= 0.5 and baseline["score.r2"] <= 0.05
    assert trained["score.spearman"] >= 0.7 and trained["score.rmse"] <= 0.7 * baseline["score.rmse"]


@pytest.mark.slow
def test_the_binned_recipe_beats_the_most_frequent_bin(tmp_path):
    results = run_demo(tmp_path, name="spectra")
    trained, baseline = results["trained"], results["baseline"]
    accuracy = sum(trained[f"{p}.accuracy"] for p in PARAMETERS) / len(PARAMETERS)
    floor = sum(baseline[f"{p}.accuracy"] for p in PARAMETERS) / len(PARAMETERS)
    print(f"binned CNN-LSTM, test: mean accuracy over 15 heads {accuracy:.3f} vs most frequent bin {floor:.3f}")
    assert accuracy >= floor + 0.25
    assert sum(trained[f"{p}.accuracy"] > baseline[f"{p}.accuracy"] for p in PARAMETERS) >= 12
    assert (tmp_path / "run" / "plots" / f"confusion_{PARAMETERS[0]}.png").is_file()


def test_generated_spectra_are_columns_of_npy_files(tmp_path):
    folder = make_spectra(tmp_path, samples=10, length=64)
    assert {p.stem for p in folder.glob("*.npy")} == {"spectrum", *PARAMETERS}
    from plait.data.tables import read_table

    table = read_table(str(folder), "npy")
    assert len(table) == 10 and table["spectrum"][0].shape == (64,)
