"""The documentation site's generated references (config from the schema, CLI from the Typer app), its pages
for every input, output and recipe, and the examples in them. `make docs` builds the site strictly in CI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from plait.config import Config, TrainConfig, validate
from plait.docs import cli_reference, config_reference, expand_markers, render_type
from plait.errors import PlaitError
from plait.registry import ENCODERS, FEATURES
import plait.settings as settings

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


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


def test_expand_markers_fills_each_reference():
    page = "# Text\n\nIntro.\n\n<!-- plait: input text -->\n\nAfter.\n"
    text = expand_markers(page)
    assert text.startswith("# Text\n\nIntro.\n\n## `inputs[]` with `type: text`") and text.endswith("\n\nAfter.\n")
    assert "### `encoder: {name: hf}`" in text and "plait:" not in text
    assert expand_markers("<!-- plait: output caption -->").startswith("## `outputs[]` with `type: caption`")
    assert "## `fusion: {name: attention}`" in expand_markers("<!-- plait: fusion -->")
    assert expand_markers("<!-- plait: config -->") == config_reference(level=2).rstrip("\n") + "\n" or \
        expand_markers("<!-- plait: config -->").startswith("## Top-level keys")
    assert "not a marker <!-- plait: cli --> mid-line" == expand_markers("not a marker <!-- plait: cli --> mid-line")


def test_expand_markers_refuses_unknown_and_malformed_markers():
    with pytest.raises(PlaitError, match=r"guide/x.md: unknown marker .*plait: tabel.*kinds: config, cli"):
        expand_markers("<!-- plait: tabel -->", where="guide/x.md")
    with pytest.raises(PlaitError, match="no input type 'txt'; input types: audio, category"):
        expand_markers("<!-- plait: input txt -->")
    with pytest.raises(PlaitError, match="needs a name"):
        expand_markers("<!-- plait: output -->")
    with pytest.raises(PlaitError, match="takes no name"):
        expand_markers("<!-- plait: cli extra -->")


def test_cli_reference_documents_every_command_and_option():
    from plait.cli import app

    text = cli_reference()
    for name in [c.name or c.callback.__name__ for c in app.registered_commands] + ["cache build", "sagemaker deploy"]:
        assert f"`plait {name}`" in text, name
    assert "`--resume <path>`" in text and "`--folds <int range>`" in text
    assert text.startswith("## `plait`")


def test_every_input_output_and_recipe_has_a_page_with_its_reference():
    for feature in settings.INPUTS:
        name = settings.name_of(feature)
        assert f"<!-- plait: input {name} -->" in (DOCS / "modalities" / f"{name}.md").read_text(), name
    for task in settings.OUTPUTS:
        name = settings.name_of(task)
        assert f"<!-- plait: output {name} -->" in (DOCS / "outputs" / f"{name}.md").read_text(), name
    assert "<!-- plait: fusion -->" in (DOCS / "outputs" / "fusion.md").read_text()
    recipes = sorted((ROOT / "src" / "plait" / "recipes").glob("*.yaml"))
    assert len(recipes) >= 7
    for recipe in recipes:  # included from the file, never copied
        assert f'--8<-- "src/plait/recipes/{recipe.name}"' in (DOCS / "recipes" / f"{recipe.stem}.md").read_text()


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages and all(page in nav for page in pages), sorted(p for p in pages if p not in nav)


def _yaml_examples(path: Path):
    return re.findall(r"^```yaml[^\n]*\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def test_config_examples_in_the_docs_validate():
    """Every YAML example in the pages and the README is a valid config, once the parts it leaves out are filled in
    (a table, an input, an output), so a renamed key cannot linger in an example."""
    checked = 0
    for path in [README, *DOCS.rglob("*.md")]:
        for block in _yaml_examples(path):
            example = yaml.safe_load(block)
            if not isinstance(example, dict) or not set(example) & set(Config.model_fields):
                continue
            named = sorted(set(re.findall(r"(?:encoders|inputs)\.(\w+)", block))) or ["x"]  # inputs the example names
            raw = {"name": "example", "inputs": [{"name": name, "type": "text", "column": name} for name in named],
                   "outputs": [{"name": "y", "type": "category", "column": "y"}], **example}
            raw["data"] = {"table": "table.csv", **(example.get("data") or {})}
            validate(raw, f"{path.relative_to(ROOT)}: example")
            checked += 1
    assert checked >= 20


def test_readme_links_point_at_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    assert len(links) >= 20
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, missing
    assert len(README.read_text(encoding="utf-8").splitlines()) < 150  # the site holds the rest


def test_python_api_page_documents_the_public_api():
    import plait

    page = (DOCS / "reference" / "python.md").read_text(encoding="utf-8")
    for name in plait.__all__:
        if name != "__version__":
            assert f"::: plait.{name}" in page, name
            assert getattr(plait, name).__doc__ and ">>>" in getattr(plait, name).__doc__, f"plait.{name}: an example"


def test_command_line_prints_a_reference():
    done = subprocess.run([sys.executable, "-m", "plait.docs", "config"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("## Top-level keys")
    wrong = subprocess.run([sys.executable, "-m", "plait.docs", "readme"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage: python -m plait.docs config|cli" in wrong.stderr
