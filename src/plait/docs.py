"""The config reference in Markdown, generated from the pydantic schema, so it is never written twice by hand.

`config_reference()` walks the schema generically (field annotations, defaults, descriptions, the registries),
so a new key or a new modality shows up without touching this module. `update_readme()` puts the reference
between two marker lines of README.md; `python -m plait.docs [--check]` is the command-line form.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from plait.config import Config
from plait.errors import PlaitError
from plait.schema import PROJECTION_DESCRIPTION, Projection
from plait.settings.tune import Choice, IntRange, LogUniform, Uniform
import plait.settings as settings

DISTRIBUTIONS = (Uniform, LogUniform, IntRange, Choice)
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
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


def config_reference() -> str:
    """The whole config reference as Markdown: top-level sections, then inputs with their encoders, outputs, fusions."""
    parts = _sections(Config, "### Top-level keys", "", 4)
    inputs = _inputs_by_type()
    parts.append("### Inputs\n\nEach item of `inputs` picks a feature type with `type`, and an encoder with `encoder: {name: ...}`.")
    parts += ["#### `inputs[].encoder.projection`, on every encoder", " ".join(PROJECTION_DESCRIPTION.split()), key_table(Projection)]
    for feature in settings.INPUTS:
        name = settings.name_of(feature)
        parts += _sections(inputs.get(name, feature), f"#### `inputs[]` with `type: {name}`", "inputs[]", 5)
        for encoder in settings.ENCODERS:
            if name in encoder.modalities:
                encoder_name = settings.name_of(encoder)
                default = " (the default)" if encoder_name == feature.default_encoder else ""
                heading = f"##### `encoder: {{name: {encoder_name}}}`{default}"
                parts += _sections(encoder, heading, "inputs[].encoder", 6)
    parts.append("### Outputs\n\nEach item of `outputs` picks a task type with `type`.")
    for task in settings.OUTPUTS:
        parts += _sections(task, f"#### `outputs[]` with `type: {settings.name_of(task)}`", "outputs[]", 5)
    parts.append("### Fusion\n\n`fusion` picks how the encoders' outputs are combined, by `name`.")
    for fusion in settings.FUSIONS:
        parts += _sections(fusion, f"#### `fusion: {{name: {settings.name_of(fusion)}}}`", "fusion", 5)
    return "\n\n".join(parts) + "\n"


def update_readme(path: str | Path = "README.md", check: bool = False) -> bool:
    """Put the reference between the marker lines of `path`. `check=True` writes nothing and says whether it is current.

    Returns True when the file already held the current reference.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise PlaitError(f"{path}: needs the lines {START} and {END} (in this order) around the config reference")
    updated = text[: start + len(START)] + "\n\n" + config_reference() + "\n" + text[end:]
    if updated == text:
        return True
    if not check:
        path.write_text(updated, encoding="utf-8")
    return False


def main(argv: list[str]) -> int:
    """`python -m plait.docs` updates ./README.md; with `--check` it only reports (exit 1) when the file is stale."""
    check = "--check" in argv
    try:
        current = update_readme("README.md", check=check)
    except (PlaitError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if current:
        print("README.md: config reference is up to date")
    elif check:
        print("README.md: config reference is stale; run: python -m plait.docs", file=sys.stderr)
        return 1
    else:
        print("README.md: config reference updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
