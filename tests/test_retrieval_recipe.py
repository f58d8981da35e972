"""The metric-learning recipe: its settings, and trained end to end on generated photos, sounds and descriptions
(`plait demo --recipe retrieval`), then indexed and searched."""

import json

import pandas as pd
import pytest
import yaml

from plait.config import validate
from plait.demo.runner import run_demo
from plait.inference.retrieval import build_index, search
from tests.conftest import ROOT

RECIPE = ROOT / "recipes" / "metric_learning_retrieval.yaml"


def test_the_recipe_is_the_documented_pipeline():
    config = validate(yaml.safe_load(RECIPE.read_text()))
    assert [(s.name, s.type) for s in config.inputs] == [("photo", "image"), ("sound", "audio"), ("description", "text")]
    similar, label = config.outputs
    assert (similar.type, similar.loss.name, similar.miner.name, similar.gallery, similar.map) == (
        "embedding", "multi_similarity", "multi_similarity", "train", "umap")
    assert label.type == "category" and config.fusion.name == "concat"
    assert (config.train.sampler.name, config.train.sampler.m, config.train.monitor) == (
        "m_per_class", 4, "validation.similar.precision_at_1")
    assert validate({**yaml.safe_load(RECIPE.read_text()), "fusion": {"name": "late"}}).fusion.name == "late"


@pytest.mark.slow
def test_trained_embeddings_retrieve_far_better_than_untrained(tmp_path):
    results = run_demo(tmp_path, name="retrieval")
    trained, untrained = results["trained"], results["untrained"]
    assert trained["similar.precision_at_1"] >= untrained["similar.precision_at_1"] + 0.3
    assert trained["similar.map_at_r"] >= 0.4 and trained["similar.map_at_r"] >= 4 * untrained["similar.map_at_r"]
    assert trained["similar.vs_train.precision_at_1"] >= untrained["similar.vs_train.precision_at_1"] + 0.2
    run_dir = tmp_path / "run"
    assert (run_dir / "plots" / "embeddings_test.png").stat().st_size > 10_000
    added = json.loads((run_dir / "augmentation.json").read_text())["added"]
    assert added > 0

    build_index(run_dir, "train")
    rows = pd.read_csv(tmp_path / "data" / "retrieval.csv")
    queries = rows[rows["split"] == "test"]
    queries.to_csv(tmp_path / "data" / "queries.csv", index=False)  # beside the images its paths name
    found = search(run_dir, str(tmp_path / "data" / "queries.csv"), k=1)
    assert len(found) == len(queries) and found["label"].notna().all()  # generated rows are trained on, not indexed
    truth = queries["label"].reset_index(drop=True)
    agreement = (found.sort_values("query")["label"].reset_index(drop=True) == truth).mean()
    assert agreement == pytest.approx(trained["similar.vs_train.precision_at_1"], abs=0.02)  # FAISS and torch may order near-ties apart
