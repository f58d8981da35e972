"""Per-component optimisation: `train.optimizer.groups` (learning rate, weight decay and layer-wise decay per
encoder, fusion and head), the rates in the parameter table, schedules scaling every group, exact resume."""

import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from plait.config import ConfigError, OptimizerConfig, validate
from plait.errors import PlaitError
from plait.pretrained import resolve_pretrained
from plait.training.checkpoint import load_state
from plait.training.optim import build_optimizer
from tests.conftest import run_cli, tabular_config

HEADS = {"params": "heads.*", "lr": 0.01, "weight_decay": 0.1}


def write_config(tmp_path, table, note_encoder=None, name="config.yaml", **train):
    config = tabular_config(table, **train)
    if note_encoder:
        config["inputs"][2]["encoder"] = note_encoder
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def param_groups(run, which="last"):
    """The saved optimizer's param groups, by key [config group, layer-decay power, exempt from decay]."""
    return {tuple(group["key"]): group for group in load_state(run / "checkpoints" / which)["optimizer"]["param_groups"]}


def tiny_bert(folder, layers=3):
    """A randomly initialised BERT of `layers` layers, with the packaged MiniLM's tokenizer, as a model folder."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=8, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=32)).save_pretrained(folder)
    source = resolve_pretrained("minilm")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{source}/{name}", folder / name)
    return folder


def test_each_group_gets_its_rate_and_decay_the_first_match_wins_and_the_table_shows_them(tabular, tmp_path):
    table, _ = tabular
    groups = [HEADS, {"params": "heads.label", "lr": 0.5}, {"params": "encoders.x", "lr": 0.002}]
    config = write_config(tmp_path, table, epochs=1, optimizer={"lr": 0.001, "weight_decay": 0.01, "groups": groups})
    result = run_cli("train", config, "--run-dir", tmp_path / "run")
    saved = param_groups(tmp_path / "run")
    assert {key[0] for key in saved} == {-1, 0, 2}  # heads.label went to the first group that matched, not the second
    assert (saved[(0, 0, False)]["lr"], saved[(0, 0, False)]["weight_decay"]) == (0.01, 0.1)
    assert (saved[(2, 0, False)]["lr"], saved[(2, 0, False)]["weight_decay"]) == (0.002, 0.01)  # unset: the optimizer's
    assert (saved[(-1, 0, False)]["lr"], saved[(-1, 0, False)]["weight_decay"]) == (0.001, 0.01)
    weights = load_file(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")
    assert len(saved[(0, 0, False)]["params"]) == len([name for name in weights if name.startswith("heads.")])
    assert len(saved[(2, 0, False)]["params"]) == len([name for name in weights if name.startswith("encoders.x.")])
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:6]]
            for line in result.stderr.splitlines() if line.count("│") >= 6}
    assert rows["head label"][2:] == ["0.01", "0.1"] and rows["head target"][2:] == ["0.01", "0.1"]
    assert rows["encoder x"][2:] == ["0.002", "0.01"] and rows["fusion"][2:] == ["0.001", "0.01"]


def test_a_group_that_matches_no_component_is_an_error_naming_the_components(tabular, tmp_path):
    table, _ = tabular
    raw = tabular_config(table, optimizer={"groups": [{"params": "encoder.x", "lr": 0.1}]})
    with pytest.raises(ConfigError, match=r"groups\[0\]\.params: 'encoder\.x' matches no component; the model's "
                                          r"components are encoders\.x, encoders\.colour, encoders\.note, missing, "
                                          r"fusion, heads\.label, heads\.target"):
        validate(raw)
    # the built model is checked too (a loss without parameters is no component)
    model = nn.ModuleDict({"fusion": nn.Linear(2, 2), "heads": nn.ModuleDict({"label": nn.Linear(2, 2)})})
    with pytest.raises(PlaitError, match="'criteria.label' matches no component; the model's components are fusion, heads.label"):
        build_optimizer(model, OptimizerConfig(groups=[{"params": "criteria.label"}]))


def test_layer_decay_gives_each_bert_layer_its_rate_and_biases_and_norms_no_decay(tmp_path):
    from tests.test_text import make_encoder, make_feature

    encoder = make_encoder(make_feature(max_length=16, encoder={"name": "hf", "path": str(tiny_bert(tmp_path / "bert")),
                                                                "out_dim": 4}))
    model = nn.ModuleDict({"encoders": nn.ModuleDict({"note": encoder}), "fusion": nn.Linear(4, 4)})
    config = OptimizerConfig(lr=1e-3, weight_decay=0.05, decay_bias_and_norm=False,
                             groups=[{"params": "encoders.*", "lr": 1e-4, "layer_decay": 0.5}])
    optimizer = build_optimizer(model, config)
    rate = {id(p): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]}
    names = dict(model.named_parameters())
    prefix = "encoders.note.model."

    def lr(name):
        return rate[id(names[name])][0]

    for word in ("word_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight"):
        assert lr(prefix + "embeddings." + word) == pytest.approx(1e-4 * 0.5 ** 4)  # L + 1, L = 3
    for i in range(3):
        assert lr(f"{prefix}encoder.layer.{i}.attention.self.query.weight") == pytest.approx(1e-4 * 0.5 ** (3 - i))
        assert lr(f"{prefix}encoder.layer.{i}.output.LayerNorm.bias") == pytest.approx(1e-4 * 0.5 ** (3 - i))
    assert lr(prefix + "pooler.dense.weight") == pytest.approx(1e-4)
    assert lr("encoders.note.project.0.weight") == pytest.approx(1e-4)  # after the last layer: the group's own rate
    assert lr("fusion.weight") == 1e-3
    assert rate[id(names[prefix + "encoder.layer.1.attention.self.query.weight"])][1] == 0.05
    for name in (prefix + "encoder.layer.1.attention.self.query.bias", prefix + "embeddings.LayerNorm.weight", "fusion.bias"):
        assert rate[id(names[name])][1] == 0.0  # decay_bias_and_norm: false

    with pytest.raises(PlaitError, match="layer_decay on fusion, which has no numbered transformer layers"):
        build_optimizer(model, OptimizerConfig(groups=[{"params": "fusion", "layer_decay": 0.5}]))


def test_the_table_shows_the_range_of_layer_decayed_rates(tabular, tmp_path):
    table, _ = tabular
    bert = tiny_bert(tmp_path / "bert", layers=2)
    config = write_config(tmp_path, table, {"name": "hf", "path": str(bert), "out_dim": 4}, epochs=1,
                          optimizer={"lr": 0.001, "groups": [{"params": "encoders.note", "lr": 0.0008, "layer_decay": 0.5}]})
    result = run_cli("train", config, "--run-dir", tmp_path / "run", "--set", "inputs.note.max_length=16")
    assert any("encoder note" in line and "0.0001 – 0.0008" in line for line in result.stderr.splitlines()), result.stderr
    saved = param_groups(tmp_path / "run")
    assert sorted(round(group["lr"], 10) for key, group in saved.items() if key[0] == 0) == [0.0001, 0.0002, 0.0004, 0.0008]


def test_the_schedule_scales_every_group_keeping_their_ratios(tabular, tmp_path):
    table, _ = tabular
    config = write_config(tmp_path, table, {"name": "transformer", "dim": 8, "heads": 2, "layers": 2, "ff": 16}, epochs=2,
                          scheduler={"name": "cosine", "warmup_steps": 3, "min_lr_ratio": 0.2},
                          optimizer={"lr": 0.001, "groups": [HEADS, {"params": "encoders.note", "lr": 0.004, "layer_decay": 0.5}]})
    run_cli("train", config, "--run-dir", tmp_path / "run")
    saved = param_groups(tmp_path / "run")
    factor = saved[(-1, 0, False)]["lr"] / 0.001
    assert 0.2 <= factor < 0.99  # the schedule moved the rate
    assert saved[(0, 0, False)]["lr"] == pytest.approx(0.01 * factor)
    assert {key[1] for key in saved if key[0] == 1} == {1, 2, 3}
    for power in (1, 2, 3):  # the transformer's two layers (1, 2) and its embeddings before them (3)
        assert saved[(1, power, False)]["lr"] == pytest.approx(0.004 * 0.5 ** power * factor)


def test_resume_with_groups_is_exact_and_a_groups_rate_may_change_but_not_its_parameters(tabular, tmp_path):
    table, _ = tabular
    optimizer = {"lr": 0.003, "weight_decay": 0.01, "decay_bias_and_norm": False,
                 "groups": [HEADS, {"params": "encoders.note", "lr": 0.002, "layer_decay": 0.7}]}
    encoder = {"name": "transformer", "dim": 8, "heads": 2, "layers": 2, "ff": 16, "dropout": 0.2}
    scheduler = {"name": "step", "step_size": 1, "gamma": 0.5}
    whole = write_config(tmp_path, table, encoder, "whole.yaml", epochs=4, optimizer=optimizer, scheduler=scheduler)
    part = write_config(tmp_path, table, encoder, "part.yaml", epochs=2, optimizer=optimizer, scheduler=scheduler)
    run_cli("train", whole, "--run-dir", tmp_path / "whole")
    run_cli("train", part, "--run-dir", tmp_path / "part")
    shutil.copytree(tmp_path / "part", tmp_path / "changed")
    run_cli("train", "--resume", tmp_path / "part", "--set", "train.epochs=4")
    a, b = [load_file(tmp_path / run / "checkpoints" / "last" / "model.safetensors") for run in ("whole", "part")]
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    assert param_groups(tmp_path / "whole").keys() == param_groups(tmp_path / "part").keys()

    regrouped = "train.optimizer.groups=[{params: 'heads.*', lr: 0.01}]"
    result = run_cli("train", "--resume", tmp_path / "changed", "--set", regrouped, check=False)
    assert result.returncode != 0 and "cannot change which parameters form each of train.optimizer.groups" in result.stderr
    new_rate = ("train.optimizer.groups=[{params: 'heads.*', lr: 0.02, weight_decay: 0.1}, "
                "{params: encoders.note, lr: 0.002, layer_decay: 0.7}]")
    out = run_cli("train", "--resume", tmp_path / "changed", "--set", new_rate, "--set", "train.epochs=3")
    assert "schedule starts afresh at step" in out.stderr and "each group its own rate" in out.stderr
    saved = param_groups(tmp_path / "changed")
    assert saved[(0, 0, True)]["lr"] == pytest.approx(0.02 * 0.5) and saved[(0, 0, True)]["weight_decay"] == 0.0
    assert saved[(0, 0, False)]["lr"] == pytest.approx(0.02 * 0.5)  # the new rate, one epoch into the new schedule
    assert saved[(-1, 0, False)]["lr"] == pytest.approx(0.003 * 0.5)
