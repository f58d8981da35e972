from pathlib import Path

import pytest
import yaml

from plait.config import ConfigError, apply_overrides, config_hash, load_config, validate
from plait.errors import PlaitError
from tests.conftest import ROOT, run_cli, tabular_config

MINIMAL = {
    "data": {"table": "t.csv"},
    "inputs": [{"name": "x", "type": "numeric", "column": "x"}],
    "outputs": [{"name": "y", "type": "category", "column": "y"}],
}


def errors_of(raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    return caught.value.lines


def test_misspelt_key_names_path_and_nearest_key():
    assert errors_of({**MINIMAL, "train": {"epcohs": 3}}) == ["train.epcohs: unknown key; did you mean epochs?"]


def test_misspelt_nested_encoder_key_uses_the_input_name():
    raw = {**MINIMAL, "inputs": [{"name": "reading", "type": "numeric", "column": "x", "encoder": {"name": "mlp", "hiden": 8}}]}
    assert errors_of(raw) == ["inputs.reading.encoder.hiden: unknown key; did you mean hidden?"]


def test_wrong_type_is_named_by_path():
    lines = errors_of({**MINIMAL, "train": {"batch_size": "many"}})
    assert len(lines) == 1 and lines[0].startswith("train.batch_size:") and "'many'" in lines[0]


def test_unknown_type_suggests_the_nearest():
    raw = {**MINIMAL, "inputs": [{"name": "x", "type": "numric", "column": "x"}]}
    assert errors_of(raw) == ["inputs.x.type: unknown value 'numric'; did you mean numeric?"]


def test_missing_required_key_and_duplicate_names():
    assert "outputs.y.column: required key is missing" in errors_of({**MINIMAL, "outputs": [{"name": "y", "type": "category"}]})
    duplicate = {**MINIMAL, "outputs": [{"name": "x", "type": "category", "column": "y"}]}
    assert any("repeated: x" in line for line in errors_of(duplicate))


def test_defaults_are_filled_in():
    config = validate(MINIMAL)
    assert config.train.epochs == 10 and config.data.split.column == "split"
    assert config.inputs[0].encoder.name == "mlp" and config.fusion.name == "concat"


def test_split_column_and_ratios_are_exclusive():
    raw = {**MINIMAL, "data": {"table": "t.csv", "split": {"column": "s", "ratios": [0.8, 0.1, 0.1]}}}
    assert any("either" in line for line in errors_of(raw))


def test_overrides_by_path_and_by_item_name():
    raw = apply_overrides(MINIMAL, ["train.epochs=3", "inputs.x.encoder.hidden=7", "train.optimizer.lr=0.5"])
    config = validate(raw)
    assert (config.train.epochs, config.inputs[0].encoder.hidden, config.train.optimizer.lr) == (3, 7, 0.5)
    assert MINIMAL.get("train") is None  # the original is untouched
    with pytest.raises(PlaitError, match="no item named 'nope'"):
        apply_overrides(MINIMAL, ["inputs.nope.column=z"])


def test_hash_is_stable_and_follows_settings():
    assert config_hash(validate(MINIMAL)) == config_hash(validate(MINIMAL))
    assert config_hash(validate({**MINIMAL, "train": {"epochs": 10}})) == config_hash(validate(MINIMAL))  # defaults resolved
    assert config_hash(validate({**MINIMAL, "train": {"epochs": 11}})) != config_hash(validate(MINIMAL))


def test_relative_table_resolves_against_the_config_folder(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    assert Path(load_config(path).data.table) == tmp_path / "t.csv"


RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_the_recipes_are_found():
    assert "demo.yaml" in [recipe.name for recipe in RECIPES]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates(recipe):
    load_config(recipe)


def test_validate_command_prints_ok_or_errors_without_traceback(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tabular_config(tmp_path / "t.csv")))
    assert run_cli("validate", good).stdout.strip() == "OK"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**tabular_config(tmp_path / "t.csv"), "train": {"epcohs": 2}}))
    result = run_cli("validate", bad, check=False)
    assert result.returncode == 1
    assert "train.epcohs: unknown key; did you mean epochs?" in result.stderr
    assert "Traceback" not in result.stderr
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("inputs: [\n")
    result = run_cli("validate", not_yaml, check=False)
    assert result.returncode == 1 and "not valid YAML" in result.stderr and "Traceback" not in result.stderr


def test_every_setting_has_its_component_and_every_component_its_setting():
    """The schema is assembled from `plait.settings` (no torch); the components that use those keys are registered
    by name. Both sides list the same names, and each component reads exactly its own settings class."""
    from plait import settings
    from plait.registry import ENCODERS, FEATURES, FUSIONS, TASKS

    for declared, registry, attribute in ((settings.INPUTS, FEATURES, "Settings"), (settings.ENCODERS, ENCODERS, "Config"),
                                          (settings.OUTPUTS, TASKS, "Settings"), (settings.FUSIONS, FUSIONS, "Config")):
        assert sorted(settings.name_of(s) for s in declared) == sorted(registry)
        assert all(getattr(registry[settings.name_of(s)], attribute) is s for s in declared)
    assert FEATURES["video"].default_encoder == "r3d18" and ENCODERS["cnn"].modalities == ("image",)
    assert TASKS["caption"].generates and not TASKS["category"].generates

