"""The `tune:` search space checked against the config it searches: every path names a key that exists (an unknown
one is named with the nearest valid path, as `--set` would need it), and every value a distribution can give (each
bound, each choice) makes a valid config. `plait validate` and `plait tune` run it; it needs neither torch nor Optuna."""

from __future__ import annotations

from typing import Any

from plait.config import Config, ConfigError, to_dict, validate, with_values
from plait.schema import nearest
from plait.settings.tune import Choice, IntRange, LogUniform, Uniform


def searched_config(config: Config) -> dict:
    """The config a trial changes: everything but the `tune:` section, defaults filled in."""
    raw = to_dict(config)
    raw.pop("tune", None)
    return raw


def edges(distribution) -> list[Any]:
    """The values worth checking: a range's two ends, every choice."""
    if isinstance(distribution, Uniform):
        return list(distribution.uniform)
    if isinstance(distribution, LogUniform):
        return list(distribution.loguniform)
    if isinstance(distribution, IntRange):
        return list(distribution.int)
    assert isinstance(distribution, Choice)
    return list(distribution.choice)


class MissingPath(Exception):
    """A space path that names no key of the config; the message says why, with the nearest valid path."""


def value_at(raw: dict, path: str) -> Any:
    """The config's value at `path` (list items by name); MissingPath when there is none."""
    node: Any = raw
    parts = path.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the top level"
        if isinstance(node, list):
            names = [item.get("name") for item in node if isinstance(item, dict)]
            if part not in names:
                hint = nearest(part, names)
                raise MissingPath(f"no item named {part!r} in {where}" + (f"; did you mean {hint}?" if hint else f" ({', '.join(map(str, names))})"))
            node = node[names.index(part)]
        elif isinstance(node, dict):
            if part not in node:
                hint = nearest(part, node)
                full = ".".join([*parts[:depth], hint]) if hint else None
                raise MissingPath(f"no key {part!r} in {where}" + (f"; did you mean {full}?" if full else ""))
            node = node[part]
        else:
            raise MissingPath(f"{where} is a value, not a section")
    return node


def check_space(config: Config, source: str = "config") -> None:
    """Raise a ConfigError with one line per problem of `config.tune.space` (nothing without a `tune:` section)."""
    if config.tune is None:
        return
    raw, problems = searched_config(config), []
    for path, distribution in config.tune.space.items():
        try:
            value_at(raw, path)
        except MissingPath as problem:
            problems.append(f"tune.space.{path}: {problem}")
            continue
        for value in edges(distribution):
            try:
                validate(with_values(raw, [(path.split("."), value, f"{path}={value}")]), source)
            except ConfigError as error:
                problems += [f"tune.space.{path}: with {value!r}, {line}" for line in error.lines]
    if problems:
        raise ConfigError(source, problems)


def contains(distribution, value) -> bool:
    """Whether `distribution` can give `value` (the config's own, tried first)."""
    if isinstance(distribution, Choice):
        return value in distribution.choice
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    low, high = edges(distribution)
    if isinstance(distribution, IntRange):
        return isinstance(value, int) and low <= value <= high and (value - low) % distribution.step == 0
    return low <= value <= high
