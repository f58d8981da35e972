"""`plait init`: a commented config for a table nobody has described yet. `layout` reads a sample of it in any
layout plait reads, `decide` gives each column a role from its values, `probe` opens a few of its files, and
`write` writes the config with each decision's evidence."""

from __future__ import annotations

from plait.errors import PlaitError


def describe_table(url: str, targets: list[str], binned: list[str] = (), gpu: bool | None = None) -> str:
    """The config text for the table at `url` predicting `targets` (`binned`: numeric targets to predict as bins),
    checked against the schema. `gpu`: size the encoders for one (default: whether this machine has one)."""
    import yaml

    from plait.config import validate
    from plait.starter.decide import decide_all
    from plait.starter.layout import read_sample
    from plait.starter.write import config_text

    if not targets:
        raise PlaitError("give the column to predict: --target COLUMN (more than one: --target A --target B)")
    unknown = set(binned) - set(targets)
    if unknown:
        raise PlaitError(f"--binned {sorted(unknown)[0]}: not one of the --target columns")
    sample = read_sample(str(url))
    decisions = decide_all(sample.table, sample.root, list(targets), set(binned))
    if not any(decision.role == "input" for decision in decisions):
        raise PlaitError(f"{url}: no column is left to learn from once the targets, the split and the left-out "
                         "columns are set aside")
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    text = config_text(sample, decisions, list(targets), gpu)
    validate(yaml.safe_load(text), "the config plait init wrote")
    return text
