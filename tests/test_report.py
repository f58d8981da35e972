"""report.html after training and from `plait report`, the modality ablation (`plait ablate`), per-class scores and
`train.modality_dropout`, on a small tabular run (the browser checks of a demo run's report are in test_demo.py)."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from plait import api
from plait.config import validate
from plait.evaluation.ablation import Ablation, variants
from plait.evaluation.per_class import per_class
from plait.training.modality_dropout import hide_inputs
from tests.conftest import run_cli_here, tabular_config, tabular_rows

SECTIONS = ["summary", "metrics", "curves", "outputs", "samples", "ablation", "model", "config"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    table = folder / "table.csv"
    tabular_rows(240).to_csv(table, index=False)
    config = tabular_config(table, epochs=4)
    config["report"] = {"samples": 5}
    return api.train(validate(config), run_dir=folder / "run"), table


def section(run, name: str) -> str:
    """One section of a run's report.html (also used by the tests of other output and input types)."""
    html = (run / "report.html").read_text(encoding="utf-8")
    return html.split(f'<section id="{name}">')[1].split("</section>")[0] if f'<section id="{name}">' in html else ""


def sources(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#][^"]*)"', html)


def test_training_writes_a_self_contained_report_with_every_section(trained):
    run, _ = trained
    html = (run / "report.html").read_text(encoding="utf-8")
    assert all(f'<section id="{name}">' in html for name in SECTIONS)
    assert sources(html) and all(source.startswith("data:image/") for source in sources(html))
    assert "<script" not in html and "url(" not in html  # nothing that could fetch
    test_metrics = json.loads((run / "evaluation" / "test.json").read_text())
    assert f"{test_metrics['label.accuracy']:.4f}" in html
    assert "nearest training image" not in section(run, "metrics")  # a floor of captioners only
    gallery = section(run, "samples")
    assert gallery.count("<tr>") == 1 + 5  # the heading and report.samples rows
    assert gallery.count('class="right"') + gallery.count('class="wrong"') == 5  # each label prediction judged
    assert gallery.count(", error ") == 5  # each number prediction next to its truth
    for heading in ["loss per epoch", "confusion matrix (test)", "predicted against true (test)"]:
        assert heading in html


def test_report_per_class_table_matches_the_confusion_of_the_test_predictions(trained):
    run, _ = trained
    outputs = section(run, "outputs")
    rows = re.findall(r'<tr><td class="left">(no|yes)</td>((?:<td class="num">[^<]*</td>){4})</tr>', outputs)
    assert [label for label, _ in rows] == ["no", "yes"]
    support = sum(int(re.findall(r">([^<]*)<", cells)[-1].replace(",", "")) for _, cells in rows)
    table = pd.read_csv(trained[1])
    assert support == int((table["split"] == "test").sum())


def test_per_class_equals_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    generator = torch.Generator().manual_seed(0)
    logits, truth = torch.randn(200, 4, generator=generator), torch.randint(0, 4, (200,), generator=generator)
    present = torch.rand(200, generator=generator) > 0.1
    rows = per_class(logits, {"value": truth, "present": present}, list("abcd"))
    expected = precision_recall_fscore_support(truth[present], logits[present].argmax(-1), labels=range(4), zero_division=0)
    for column, values in zip(["precision", "recall", "f1", "support"], expected):
        assert np.allclose([row[column] for row in rows], values)


def test_ablation_is_the_missing_value_path_and_plait_ablate_prints_it(trained, tmp_path):
    run, table = trained
    saved = Ablation.from_json(json.loads((run / "evaluation" / "ablation_test.json").read_text()))
    assert list(saved.metrics) == list(variants(["x", "colour", "note"]))
    assert saved.dropped["only note"] == ["colour", "x"]
    printed = json.loads(run_cli_here("ablate", run, "--json").stdout)
    assert Ablation.from_json(printed).metrics["without note"] == pytest.approx(saved.metrics["without note"])
    assert printed["variants"]["fused"]["metrics"]["label.accuracy"] == pytest.approx(
        json.loads((run / "evaluation" / "test.json").read_text())["label.accuracy"])

    # leaving `note` out must equal the same rows with their note cells empty (masked), not zeros or a blank text
    blank = pd.read_csv(table)
    blank["note"] = np.nan
    blank.to_csv(tmp_path / "blank.csv", index=False)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"]["table"] = str(tmp_path / "blank.csv")
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert api.evaluate(copy, "test")["label.loss"] == pytest.approx(saved.metrics["without note"]["label.loss"], rel=1e-5)

    headers, rows = saved.table()
    assert headers == ["inputs", "label.accuracy", "target.rmse"]
    assert [row[0] for row in rows] == list(saved.metrics) and "(" in rows[1][1]


def test_ablation_change_and_harm_follow_each_metrics_direction():
    result = Ablation("test", {"label": "label.accuracy", "score": "score.rmse"}, {"label": True, "score": False},
                      {"fused": [], "without a": ["a"]},
                      {"fused": {"label.accuracy": 0.9, "score.rmse": 1.0}, "without a": {"label.accuracy": 0.6, "score.rmse": 1.5}})
    assert result.change("without a", "label") == pytest.approx(-0.3) and result.harm("without a", "label") == pytest.approx(0.3)
    assert result.change("without a", "score") == pytest.approx(0.5) and result.harm("without a", "score") == pytest.approx(0.5)
    assert Ablation.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert list(variants(["a"])) == ["fused"]
    assert list(variants(["a", "b"])) == ["fused", "without a", "without b"]  # only a = without b


def test_plait_report_rewrites_the_page_for_another_split(trained, tmp_path, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "report.html").unlink()
    printed = run_cli_here("report", copy, "--split", "validation", "--open").stdout.strip().splitlines()[-1]
    assert printed == str(copy / "report.html") and opened == [(copy / "report.html").resolve().as_uri()]
    html = (copy / "report.html").read_text(encoding="utf-8")
    assert "shown: validation split" in html and "confusion matrix (validation)" in html
    assert (copy / "evaluation" / "ablation_validation.json").is_file()
    failed = run_cli_here("report", copy, "--split", "nope")  # a usage mistake: the usage line and one error line
    assert failed.returncode == 2 and failed.stderr.startswith("Usage: plait report")
    assert "error: invalid value for '--split': 'nope' is not one of 'train', 'validation', 'test'" in failed.stderr


def test_report_and_its_ablation_can_be_turned_off(tmp_path):
    table = tmp_path / "table.csv"
    tabular_rows(120).to_csv(table, index=False)
    config = tabular_config(table, epochs=1)
    config["report"] = {"write": False}
    run = api.train(validate(config), run_dir=tmp_path / "run")
    assert not (run / "report.html").exists() and not (run / "evaluation" / "ablation_test.json").exists()
    assert (run / "plots" / "confusion_label.png").is_file()  # the outputs' plots do not wait for the page
    config["report"] = {"ablation": False}
    run = api.train(validate(config), run_dir=tmp_path / "run2")
    html = (run / "report.html").read_text(encoding="utf-8")
    assert '<section id="ablation">' not in html and '<section id="samples">' in html


def test_modality_dropout_hides_cells_but_never_a_whole_row():
    torch.manual_seed(0)
    rows = 4000
    inputs = {name: {"present": torch.rand(rows) > 0.2, "value": torch.zeros(rows)} for name in "abc"}
    hidden = hide_inputs(inputs, 0.5)
    before = torch.stack([inputs[n]["present"] for n in "abc"], 1)
    after = torch.stack([hidden[n]["present"] for n in "abc"], 1)
    assert not (after & ~before).any()  # a missing cell never comes back
    assert (after.any(1) == before.any(1)).all()  # a row keeps at least one of the inputs it has
    share = 1 - after.sum() / before.sum()
    assert 0.25 < float(share) < 0.5  # half, less the rows that would have lost all they have (~1 in 3 here)
    assert hidden["a"]["value"] is inputs["a"]["value"]  # only the presence changes
    torch.manual_seed(0)
    again = hide_inputs({name: {"present": torch.rand(rows) > 0.2} for name in "abc"}, 0.5)
    assert all(torch.equal(again[n]["present"], hidden[n]["present"]) for n in "abc")  # the seeded generator decides
    assert hide_inputs(inputs, 0.0) is inputs


def test_modality_dropout_trains_and_is_validated():
    config = tabular_config("t.csv")
    config["train"]["modality_dropout"] = 0.25
    assert validate(config).train.modality_dropout == 0.25
    config["train"]["modality_dropout"] = 1.0
    with pytest.raises(Exception, match="modality_dropout"):
        validate(config)


def test_with_many_outputs_the_report_draws_one_curve_plot_per_metric(tmp_path):
    table = tmp_path / "table.csv"
    tabular_rows(160).to_csv(table, index=False)
    config = tabular_config(table, epochs=2)
    config["outputs"] += [{"name": f"bins{k}", "type": "binned", "column": "target", "bins": 3 + k} for k in range(2)]
    config["report"] = {"ablation": False, "samples": 2}
    run = api.train(validate(config), run_dir=tmp_path / "run")
    curves = section(run, "curves")
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", curves)
    # label: accuracy, macro_f1, weighted_f1; target: mae, rmse, r2, spearman, pearson; bins: accuracy, within_one, mae, rmse
    metrics = ["accuracy", "macro_f1", "weighted_f1", "mae", "rmse", "r2", "spearman", "pearson", "within_one"]
    assert sorted(captions) == sorted(["loss per epoch", *(f"validation {m} per epoch, a line per output" for m in metrics)])
    assert len(list((run / "plots").glob("*.*.png"))) == 3 + 5 + 2 * 4  # the run folder keeps one plot per output and metric
