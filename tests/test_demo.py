"""The embedded demo end to end, through the real command: fusion beats every single modality."""

import re

import pandas as pd
import pytest

from plait.data.synthetic import make_demo
from tests.conftest import run_cli


def test_generated_demo_data_has_the_documented_layout(tmp_path):
    table = pd.read_csv(make_demo(tmp_path, rows=40, seed=1))
    assert list(table.columns) == ["photo", "note", "reading", "label", "split"]
    assert all((tmp_path / path).is_file() for path in table["photo"])
    assert table["label"].str.count("_").eq(2).all()
    again = pd.read_csv(make_demo(tmp_path / "again", rows=40, seed=1))
    assert again.equals(table)  # seeded


@pytest.mark.slow
def test_demo_prints_fused_accuracy_above_each_modality(tmp_path):
    result = run_cli("demo", "--folder", tmp_path)
    accuracy = {name.strip(): float(value) for name, value in re.findall(r"│ ([a-z ]+?)\s+│\s+([0-9.]+) │", result.stdout)}
    assert accuracy["fused"] >= 0.9, result.stdout
    for name in ["photo", "note", "reading"]:
        assert accuracy[f"only {name}"] <= 0.6, result.stdout
        assert accuracy[f"without {name}"] < accuracy["fused"] - 0.3, result.stdout
    assert (tmp_path / "run" / "evaluation" / "test.json").is_file()
