"""The references of the documentation site, generated so they are never written twice by hand or stale.

`config_reference()` walks the schema generically (field annotations, defaults, descriptions, the registries),
so a new key or a new modality shows up without touching this module; `input_reference`, `output_reference` and
`fusion_reference` are its parts, for the page of each modality and output kind. `cli_reference()` documents the
commands from the Typer app itself. The site's pages hold marker lines (`<!-- plait: input text -->`) that the
MkDocs hook `docs/hooks.py` replaces through `expand_markers` at build time. `python -m plait.docs config|cli`
prints a reference.
"""

from __future__ import annotations

import json
import re
import sys
import types
from typing import Annotated, Any, Callable, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from plait.config import Config
from plait.errors import PlaitError
from plait.schema import PROJECTION_DESCRIPTION, Projection
from plait.settings.tune import Choice, IntRange, LogUniform, Uniform
import plait.settings as settings

DISTRIBUTIONS = (Uniform, LogUniform, IntRange, Choice)
_BOUNDS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "min length", "max_length": "max length"}


def _tag(model: type[BaseModel]) -> tuple[str, Any] | None:
    """The key that selects this model in a union (`type: text`, `name: bag`): a field typed as a one-value Literal."""
    for key, field in model.model_fields.items():
        if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
            return key, get_args(field.annotation)[0]
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def render_type(tp: Any) -> str:
    """A type annotation as a reader would write it: `int | None`, `list[int]`, `"error" | "skip"`, `{name: "a" | "b"}`."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is type(None):
        return "None"
    if origin is Annotated:
        return render_type(args[0])
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (Union, types.UnionType):
        if all(_is_model(a) for a in args):  # a discriminated union of sections: show the selecting key
            tags = [_tag(a) for a in args]
            if all(tags) and len({key for key, _ in tags}) == 1:
                return "{%s: %s}" % (tags[0][0], " | ".join(json.dumps(value) for _, value in tags))
            return "mapping"
        return " | ".join(dict.fromkeys(render_type(a) for a in args))  # `mapping | mapping` once
    if _is_model(tp):
        tag = _tag(tp)
        return "{%s: %s}" % (tag[0], json.dumps(tag[1])) if tag else "mapping"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else render_type(a) for a in args)}]" if args else name
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _bounds(field: FieldInfo) -> str:
    """Numeric and length constraints of a field (`ge=1` → `≥ 1`), read from its pydantic metadata."""
    found = []
    for item in field.metadata:
        for attr, sign in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(found)


def render_default(field: FieldInfo) -> str:
    """The default as a YAML-ish literal; `required` when there is none; a nested section → `see below`."""
    value = field.get_default(call_default_factory=True, validated_data={})
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        tag = _tag(type(value))
        return "{%s: %s}" % (tag[0], tag[1]) if tag else "see below"
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)


def _describe(field: FieldInfo) -> str:
    if field.description:
        return " ".join(field.description.split())
    if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
        return f"Selects this kind: always `{get_args(field.annotation)[0]}` here."
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def key_table(model: type[BaseModel]) -> str:
    """One row per key of a section (the key that selects it in a union first): key | type | default | description."""
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    tag = (_tag(model) or (None,))[0]
    for key, field in sorted(model.model_fields.items(), key=lambda item: item[0] != tag):
        kind = f"`{render_type(field.annotation)}` {_bounds(field)}".rstrip()
        default = render_default(field)
        default = default if default in ("required", "see below") else f"`{default}`"
        rows.append("| " + " | ".join(_cell(c) for c in (f"`{key}`", kind, default, _describe(field))) + " |")
    return "\n".join(rows)


def _registered() -> tuple:
    """Section classes that have their own headings (one per registered component, and the projection every encoder
    shares), or that their key's description covers (the search space's distributions), not nested `see below`s."""
    return (*settings.ENCODERS, *settings.FUSIONS, *settings.INPUTS, *settings.OUTPUTS, Projection, *DISTRIBUTIONS)


def _nested(tp: Any) -> list[type[BaseModel]]:
    """Plain sections inside an annotation (`X`, `X | None`, `list[X]`), leaving out registered components."""
    if _is_model(tp):
        return [] if issubclass(tp, _registered()) else [tp]
    if get_origin(tp) is Literal:
        return []
    return [model for arg in get_args(tp) for model in _nested(arg)]


def _sections(model: type[BaseModel], heading: str, path: str, level: int) -> list[str]:
    """`heading` and the key table of `model`, then (depth first) a `level` heading and table per nested section."""
    parts = [heading, key_table(model)]
    for key, field in model.model_fields.items():
        for nested in _nested(field.annotation):
            sub = f"{path}.{key}" if path else key
            parts += _sections(nested, "#" * level + f" `{sub}`", sub, level)
    return parts


def _inputs_by_type() -> dict[str, type[BaseModel]]:
    """The input models of the assembled schema (feature keys plus `encoder`), by their `type`."""
    annotation = get_args(Config.model_fields["inputs"].annotation)[0]
    members = get_args(get_args(annotation)[0]) if get_origin(annotation) is Annotated else (annotation,)
    return {(_tag(m) or ("", None))[1]: m for m in members}


def _named(sections: list, name: str, kind: str) -> Any:
    by_name = {settings.name_of(section): section for section in sections}
    if name not in by_name:
        raise PlaitError(f"no {kind} {name!r}; {kind}s: {', '.join(by_name)}")
    return by_name[name]


def input_reference(name: str, level: int = 2) -> list[str]:
    """The keys of an `inputs[]` item with `type: NAME` under a `level` heading, then each encoder it can take."""
    feature = _named(settings.INPUTS, name, "input type")
    parts = _sections(_inputs_by_type().get(name, feature), "#" * level + f" `inputs[]` with `type: {name}`",
                      "inputs[]", level + 1)
    for encoder in settings.ENCODERS:
        if name in encoder.modalities:
            encoder_name = settings.name_of(encoder)
            default = " (the default)" if encoder_name == feature.default_encoder else ""
            heading = "#" * (level + 1) + f" `encoder: {{name: {encoder_name}}}`{default}"
            parts += _sections(encoder, heading, "inputs[].encoder", level + 2)
    return parts


def output_reference(name: str, level: int = 2) -> list[str]:
    """The keys of an `outputs[]` item with `type: NAME` under a `level` heading, then its nested sections."""
    task = _named(settings.OUTPUTS, name, "output type")
    return _sections(task, "#" * level + f" `outputs[]` with `type: {name}`", "outputs[]", level + 1)


def fusion_reference(level: int = 2) -> list[str]:
    """The keys of each `fusion` kind, one `level` heading each."""
    return [part for fusion in settings.FUSIONS
            for part in _sections(fusion, "#" * level + f" `fusion: {{name: {settings.name_of(fusion)}}}`", "fusion",
                                  level + 1)]


def config_reference(level: int = 3) -> str:
    """The whole config reference as Markdown, its parts under `level` headings: top-level sections, then inputs
    with their encoders, outputs, fusions."""
    h = "#" * level
    parts = _sections(Config, f"{h} Top-level keys", "", level + 1)
    parts.append(f"{h} Inputs\n\nEach item of `inputs` picks a feature type with `type`, and an encoder with "
                 "`encoder: {name: ...}`.")
    parts += [f"{h}# `inputs[].encoder.projection`, on every encoder", " ".join(PROJECTION_DESCRIPTION.split()),
              key_table(Projection)]
    for feature in settings.INPUTS:
        parts += input_reference(settings.name_of(feature), level + 1)
    parts.append(f"{h} Outputs\n\nEach item of `outputs` picks a task type with `type`.")
    for task in settings.OUTPUTS:
        parts += output_reference(settings.name_of(task), level + 1)
    parts.append(f"{h} Fusion\n\n`fusion` picks how the encoders' outputs are combined, by `name`.")
    parts += fusion_reference(level + 1)
    return "\n\n".join(parts) + "\n"


def cli_reference() -> str:
    """Every command's usage, arguments and options, as Typer documents a Typer app (`typer ... utils docs`)."""
    import click
    import typer.cli
    import typer.main

    from plait.cli import app

    command = typer.main.get_command(app)
    text = typer.cli.get_docs_for_click(obj=command, ctx=click.Context(command, info_name="plait"), name="plait")
    return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)  # under the page's own title


MARKER = re.compile(r"^<!-- plait: (?P<kind>[a-z]+)(?: (?P<name>\w+))? -->$", re.MULTILINE)
_EXPANSIONS: dict[str, Callable[..., str]] = {  # marker kind → its reference, from the marker's name if it takes one
    "config": lambda: config_reference(level=2),
    "cli": cli_reference,
    "input": lambda name: "\n\n".join(input_reference(name)),
    "output": lambda name: "\n\n".join(output_reference(name)),
    "fusion": lambda: "\n\n".join(fusion_reference()),
}
_NAMED = {"input", "output"}


def expand_markers(text: str, where: str = "page") -> str:
    """Replace each marker line (`<!-- plait: input text -->`, `<!-- plait: config -->`, `<!-- plait: cli -->`...)
    with the reference it names, generated now; an unknown marker is an error naming `where`."""
    def expand(match: re.Match) -> str:
        kind, name = match["kind"], match["name"]
        if kind not in _EXPANSIONS:
            raise PlaitError(f"{where}: unknown marker {match[0]!r}; kinds: {', '.join(_EXPANSIONS)}")
        if (kind in _NAMED) != bool(name):
            raise PlaitError(f"{where}: marker {match[0]!r} {'takes no' if name else 'needs a'} name")
        return _EXPANSIONS[kind](name) if name else _EXPANSIONS[kind]()

    return MARKER.sub(expand, text)


def main(argv: list[str]) -> int:
    """`python -m plait.docs config|cli` prints that reference as Markdown (the site builds them the same way)."""
    kinds = {kind: _EXPANSIONS[kind] for kind in ("config", "cli")}
    if len(argv) != 1 or argv[0] not in kinds:
        print("usage: python -m plait.docs config|cli", file=sys.stderr)
        return 2
    print(kinds[argv[0]](), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
