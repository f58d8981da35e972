"""The embedded demo end to end, through the real commands: fusion beats every single modality, `plait ablate`
shows that each modality matters, and the run's report.html renders in headless Chromium with no network request."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plait.demo.synthetic import make_demo
from tests.browser import external_requests, find_chromium, render
from tests.conftest import run_cli

MODALITIES = ["photo", "note", "reading"]


def test_generated_demo_data_has_the_documented_layout(tmp_path):
    table = pd.read_csv(make_demo(tmp_path, rows=40, seed=1))
    assert list(table.columns) == ["photo", "note", "reading", "label", "split"]
    assert all((tmp_path / path).is_file() for path in table["photo"])
    assert table["label"].str.count("_").eq(2).all()
    again = pd.read_csv(make_demo(tmp_path / "again", rows=40, seed=1))
    assert again.equals(table)  # seeded


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(`plait demo` stdout, its folder); the module's own cache folder, as fixtures of this scope get no private one."""
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLAIT_CACHE_DIR", str(folder / "cache"))
        return run_cli("demo", "--folder", folder).stdout, folder


@pytest.mark.slow
def test_demo_prints_fused_accuracy_above_each_modality(demo):
    stdout, folder = demo
    accuracy = {name.strip(): float(value) for name, value in re.findall(r"│ ([a-z ]+?)\s+│\s+([0-9.]+) │", stdout)}
    assert accuracy["fused"] >= 0.9, stdout
    for name in MODALITIES:
        assert accuracy[f"only {name}"] <= 0.6, stdout
        assert accuracy[f"without {name}"] < accuracy["fused"] - 0.3, stdout
    assert (folder / "run" / "evaluation" / "test.json").is_file()


@pytest.mark.slow
def test_plait_ablate_shows_each_modality_matters(demo):
    _, folder = demo
    result = json.loads(run_cli("ablate", folder / "run", "--split", "test", "--json").stdout)
    fused = result["variants"]["fused"]["metrics"]["label.accuracy"]
    assert fused == pytest.approx(json.loads((folder / "run" / "evaluation" / "test.json").read_text())["label.accuracy"])
    for name in MODALITIES:
        assert result["variants"][f"without {name}"]["dropped"] == [name]
        assert result["variants"][f"without {name}"]["metrics"]["label.accuracy"] < fused - 0.3


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium_with_no_network_request(demo, tmp_path):
    _, folder = demo
    page = render(folder / "run" / "report.html", tmp_path / "report.png", width=1280, height=900)
    assert external_requests(page) == [] and page.failed_requests == [] and page.console_errors == []
    assert [url for url in page.requests if not url.startswith("data:")] == [page.url] and page.url.startswith("file://")
    for heading in ["Summary", "Final metrics", "Training curves", "Outputs", "Sample predictions", "Modality ablation",
                    "Model", "Config"]:
        assert heading in page.headings
    # every picture decoded: curves, the confusion matrix, and a thumbnail per sample row
    assert len(page.images) >= 4 + 1 + 12
    assert all(image["complete"] and image["naturalWidth"] > 0 and image["src"].startswith("data:image/") for image in page.images)
    plots = [image for image in page.images if image["naturalWidth"] >= 400]
    assert len(plots) >= 5
    # tables: final metrics (loss + 4 per output), per-class (8 classes), the gallery (12 rows), the ablation (7 variants)
    assert {1 + 5, 1 + 8, 1 + 12, 1 + 7} <= set(page.tables)
    assert "without photo" in page.text and "only reading" in page.text
    screenshot = np.asarray(Image.open(page.screenshot).convert("RGB"), dtype=np.float32)
    assert screenshot.shape[1] == 1280 and screenshot.shape[0] > 3000  # the whole page, not just the window
    assert screenshot.std() > 20  # rendered content, not a blank page


def masked_weighted_f1(run) -> float:
    """The mean weighted F1 of the label over the ablation's variants with inputs masked."""
    variants = json.loads((run / "evaluation" / "ablation_test.json").read_text())["variants"]
    return float(np.mean([v["metrics"]["label.weighted_f1"] for name, v in variants.items() if name != "fused"]))


@pytest.mark.slow
def test_modality_dropout_keeps_the_model_useful_when_inputs_are_missing(demo, tmp_path):
    _, folder = demo
    run_cli("demo", "--folder", tmp_path, "--set", "train.modality_dropout=0.3")
    fused = json.loads((tmp_path / "run" / "evaluation" / "test.json").read_text())["label.accuracy"]
    assert fused >= 0.9  # hiding inputs while training costs nothing when all are there
    # measured: 0.234 → 0.344 (seed 0) and 0.218 → 0.294 (seed 1); any two inputs allow at most 0.5 accuracy
    assert masked_weighted_f1(tmp_path / "run") >= masked_weighted_f1(folder / "run") + 0.04
