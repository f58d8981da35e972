"""The config reference is generated from the schema, and README.md holds the current one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal, Optional

import pytest

from plait.config import Config, TrainConfig
from plait.docs import END, START, config_reference, render_type, update_readme
from plait.errors import PlaitError
from plait.registry import ENCODERS, FEATURES

README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(scope="module")
def reference() -> str:
    return config_reference()


def _row(reference: str, key: str) -> str:
    return next(line for line in reference.splitlines() if line.startswith(f"| `{key}` |"))


def _section(reference: str, heading: str) -> str:
    """The text from `heading` to the next heading of the same or a higher level."""
    lines = reference.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading in line)
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level),
        len(lines),
    )
    return "\n".join(lines[start:end])


def test_top_level_and_train_keys_with_descriptions(reference):
    for key in Config.model_fields:
        assert f"| `{key}` |" in reference
    train = _section(reference, "`train`")
    for key, field in TrainConfig.model_fields.items():
        row = _row(train, key)
        assert " ".join(field.description.split()).replace("|", "\\|") in row
    for heading in ("`data`", "`data.split`", "`train.optimizer`", "`train.scheduler`"):
        assert any(line.startswith("#") and line.endswith(heading) for line in reference.splitlines())


def test_section_order(reference):
    wanted = ["Top-level keys", "`data`", "`data.split`", "`train`", "`train.optimizer`", "`train.scheduler`", "Inputs", "Outputs", "Fusion"]
    headings = [line.lstrip("# ") for line in reference.splitlines() if line.startswith("#")]
    assert [h for h in headings if h in wanted] == wanted


def test_rows_show_types_defaults_and_required(reference):
    train = _section(reference, "`train`")
    assert _row(train, "epochs").startswith("| `epochs` | `int` ≥ 1 | `10` |")
    assert "| `float \\| None` > 0 | `null` |" in _row(train, "grad_clip")
    assert "| see below |" in _row(train, "optimizer")
    assert "| required |" in _row(reference, "data")
    assert "| `tuple[float, float]` | `[0.9, 0.999]` |" in _row(_section(reference, "`train.optimizer`"), "betas")


def test_every_feature_type_and_its_encoders_have_their_keys(reference):
    for name, feature in FEATURES.items():
        section = _section(reference, f"`inputs[]` with `type: {name}`")
        for key in ("name", "column", "missing", "type", "encoder", *feature.Settings.model_fields):
            assert f"| `{key}` |" in section, (name, key)
        for encoder_name, encoder in ENCODERS.items():
            if name in encoder.modalities:
                block = _section(section, f"`encoder: {{name: {encoder_name}}}`")
                for key in encoder.Config.model_fields:
                    assert f"| `{key}` |" in block, (name, encoder_name, key)


def test_numeric_input_and_mlp_encoder(reference):
    numeric = _section(reference, "`inputs[]` with `type: numeric`")
    assert '| `normalize` | `"standard" \\| "none"` | `"standard"` |' in numeric
    mlp = _section(numeric, "`encoder: {name: mlp}`")
    assert "| `hidden` | `int` ≥ 1 | `32` |" in mlp
    assert "| `freeze` | `bool` | `false` |" in mlp


def test_literal_types_render_as_choices(reference):
    assert render_type(Literal["error", "skip"]) == '"error" | "skip"'
    assert render_type(Optional[float]) == "float | None"
    assert render_type(int | None) == "int | None"
    assert render_type(list[int]) == "list[int]"
    assert render_type(tuple[float, float]) == "tuple[float, float]"
    assert render_type(dict[str, float]) == "dict[str, float]"
    assert '| `on_bad_sample` | `"error" \\| "skip"` | `"error"` |' in reference


def test_reference_is_deterministic(reference):
    assert config_reference() == reference


def test_update_readme_fills_markers_then_is_current(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nIntro.\n\n{START}\nold text\n{END}\n\nAfter.\n", encoding="utf-8")
    assert update_readme(readme, check=True) is False
    assert "old text" in readme.read_text(encoding="utf-8")  # check writes nothing
    assert update_readme(readme) is False
    text = readme.read_text(encoding="utf-8")
    assert "old text" not in text and config_reference() in text
    assert text.startswith("# Title\n\nIntro.\n\n" + START) and text.endswith(END + "\n\nAfter.\n")
    assert update_readme(readme, check=True) is True
    assert update_readme(readme) is True


def test_update_readme_without_markers_fails(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nNo markers here.\n", encoding="utf-8")
    with pytest.raises(PlaitError, match="config-reference:start"):
        update_readme(readme)
    readme.write_text(f"{END}\n{START}\n", encoding="utf-8")
    with pytest.raises(PlaitError):
        update_readme(readme, check=True)


def test_command_line_check_and_update(tmp_path):
    (tmp_path / "README.md").write_text(f"{START}\n{END}\n", encoding="utf-8")
    command = [sys.executable, "-m", "plait.docs"]
    stale = subprocess.run([*command, "--check"], cwd=tmp_path, capture_output=True, text=True)
    assert stale.returncode == 1 and "python -m plait.docs" in stale.stderr
    assert subprocess.run(command, cwd=tmp_path, capture_output=True).returncode == 0
    assert subprocess.run([*command, "--check"], cwd=tmp_path, capture_output=True).returncode == 0


def test_repository_readme_is_up_to_date():
    assert update_readme(README, check=True), "run: python -m plait.docs"
