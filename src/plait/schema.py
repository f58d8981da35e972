"""Base classes for every config section, and turning pydantic errors into one line per problem.

Modality, encoder, task and fusion modules declare their own keys by subclassing these; `config.py`
assembles them into the full schema.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator
from pydantic_core import PydanticCustomError


def nearest(word: str, choices) -> str | None:
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return found[0] if found else None


class Section(BaseModel):
    """A config block: typed, defaulted, documented keys; an unknown key is an error naming the nearest valid one."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [str(key) for key in data if key not in cls.model_fields]
            if unknown:
                hints = [nearest(key, cls.model_fields) for key in unknown]
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key(s) {keys}",
                    {"keys": unknown, "hints": hints, "valid": sorted(cls.model_fields)},
                )
        return data


class InputBase(Section):
    """Keys every input shares; each feature type adds its own preprocessing keys."""

    name: str = Field(description="Name of this input, used in logs, tables and `--set inputs.NAME...`.")
    column: str = Field(description="Column of the table that holds this input's values (or file paths).")
    missing: Literal["mask", "error"] = Field(
        "mask",
        description="An empty cell: `mask` feeds a learned 'missing' embedding instead of the encoder output; "
        "`error` treats it as a bad sample.",
    )
    cache: bool | None = Field(
        None,
        description="Keep this input's preprocessed cells in the preprocessing cache (`data.cache_dir`). null: on for "
        "video, audio and image (decoding is the slow part), off for text and tabular inputs.",
    )


class OutputBase(Section):
    """Keys every output shares; each task type adds its own."""

    name: str = Field(description="Name of this output, used in metrics (`validation.NAME.accuracy`) and predictions.")
    column: str = Field(description="Column of the table that holds the target values.")
    loss_weight: float = Field(1.0, ge=0, description="Weight of this output's loss in the total loss.")
    generates: ClassVar[bool] = False  # evaluated and predicted by generating sequences (captions)


Initialisation = Literal["default", "xavier_uniform", "kaiming_normal", "orthogonal"]
INIT_DESCRIPTION = (
    "How the weights start: `default` (PyTorch's own per layer), or for every Linear, convolution and recurrent layer "
    "`xavier_uniform` or `kaiming_normal` (recurrent-to-recurrent weights orthogonal, as Keras does) or `orthogonal`; "
    "biases start at zero. Drawn with train.seed."
)
Activation = Literal["relu", "gelu", "tanh", "leaky_relu", "elu", "silu"]


class Projection(Section):
    """Linear → activation → Dropout from an encoder's own features to the vector fusion gets; it trains even when the
    encoder is frozen."""

    out_dim: PositiveInt = Field(description="Width of the encoder's output vector.")
    activation: Activation | Literal["none"] = Field("relu", description="Activation after the Linear (`none`: a plain Linear).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the output vector, in training.")


PROJECTION_DESCRIPTION = (
    "`{out_dim, activation, dropout}` on any encoder: a Linear from the encoder's own features to `out_dim`, then the "
    "activation and dropout. It trains even with `freeze: true`, which fixes only the encoder's own weights. Each "
    "encoder's default is in its table (null: its features go to fusion as they are); keys left out of a block keep "
    "that default, else `relu` and 0. `out_dim: N` beside `name` is short for `projection: {out_dim: N}`, and "
    "`out_dim: null` for `projection: null`."
)


def projection_field(out_dim: int | None = None, **keys) -> Any:
    """The `projection` key of an encoder whose default is `{out_dim, **keys}` (None: no projection)."""
    default = None if out_dim is None else {"out_dim": out_dim, **keys}
    return Field(default, validate_default=True, description="Linear → activation → dropout to `out_dim` after the "
                 "encoder (see `inputs[].encoder.projection`; `out_dim: N` is short for it); null: none.")


class EncoderBase(Section):
    """Keys every encoder shares."""

    freeze: bool = Field(
        False, description="Keep the encoder's own weights (its backbone) fixed; its `projection` still trains."
    )
    cache_embeddings: bool | None = Field(
        None,
        description="With `freeze: true`: compute the frozen backbone's output once per row, keep it in the "
        "preprocessing cache, and train only the rest of the model (the projection included), so later epochs and runs "
        "skip the backbone. null: on for a frozen encoder wherever that is exact: its input has no augmentation and no "
        "caption decoder attends to its tokens (those are kept in float16, so `true` there trades exactness for speed).",
    )
    projection: Projection | None = projection_field()
    init: Initialisation = Field("default", description=INIT_DESCRIPTION)

    @model_validator(mode="before")
    @classmethod
    def _out_dim_is_short_for_projection(cls, data: Any) -> Any:
        """`out_dim: N` → `projection: {out_dim: N}` merged over the encoder's default projection; a partial
        `projection` block is merged over that default too."""
        if not isinstance(data, dict) or ("out_dim" not in data and not isinstance(data.get("projection"), dict)):
            return data
        data = dict(data)
        default = cls.model_fields["projection"].default or {}
        if "out_dim" in data:
            out_dim = data.pop("out_dim")
            block = data.get("projection")
            if block is not None and (out_dim is None or not isinstance(block, dict) or "out_dim" in block):
                raise PydanticCustomError("out_dim_twice", "give out_dim or projection.out_dim, not both")
            if out_dim is None:
                data["projection"] = None
                return data
            data["projection"] = {**(block or {}), "out_dim": out_dim}
        data["projection"] = {**default, **data["projection"]}
        return data

    @model_validator(mode="after")
    def _cache_needs_freeze(self):
        if self.cache_embeddings and not self.freeze:
            raise ValueError("cache_embeddings needs freeze: true (a trained encoder's output changes every step)")
        return self

    @property
    def pretrained(self) -> str | None:
        """Where the encoder loads pretrained weights from (`path` or `weights`), if anywhere."""
        return getattr(self, "path", None) or getattr(self, "weights", None)

    @model_validator(mode="after")
    def _init_keeps_pretrained_weights(self):
        if self.init != "default" and self.pretrained:
            raise ValueError(f"init: {self.init} would overwrite the pretrained weights it loads from {self.pretrained}")
        return self


def _display_path(loc: tuple, raw: Any) -> str:
    """`('inputs', 0, 'image', 'encoder', 'cnn', 'chanels')` → `inputs.photo.encoder.chanels`.

    Walks the raw YAML alongside the error location: list indices become the item's `name`, and the
    discriminator tags pydantic inserts for unions (`image`, `cnn`) are dropped.
    """
    parts: list[str] = []
    node = raw
    for element in loc:
        if isinstance(node, list) and isinstance(element, int) and element < len(node):
            node = node[element]
            label = node.get("name") if isinstance(node, dict) else None
            parts.append(str(label) if label else str(element))
        elif isinstance(node, dict) and element in node:
            node = node[element]
            parts.append(str(element))
        elif isinstance(node, dict) and element in (node.get("type"), node.get("name")):
            continue  # a union tag, not a key the user wrote
        elif isinstance(node, list) and isinstance(element, str):
            continue  # a union tag that is also the key above it (`{int: [1, 2]}`)
        else:
            node = None
            parts.append(str(element))
    return ".".join(parts)


def format_validation_error(error: ValidationError, raw: Any) -> list[str]:
    """One line per problem, each starting with the config path."""
    lines = []
    for item in error.errors():
        path = _display_path(tuple(item["loc"]), raw)
        prefix = f"{path}." if path else ""
        ctx = item.get("ctx") or {}
        if item["type"] == "unknown_key":
            for key, hint in zip(ctx["keys"], ctx["hints"]):
                suggestion = f"did you mean {hint}?" if hint else f"valid keys: {', '.join(ctx['valid'])}"
                lines.append(f"{prefix}{key}: unknown key; {suggestion}")
        elif item["type"] == "union_tag_invalid":
            tags = [t.strip(" '\"") for t in str(ctx.get("expected_tags", "")).split(",")]
            hint = nearest(ctx.get("tag"), tags)
            suggestion = f"did you mean {hint}?" if hint else f"choose one of {', '.join(tags)}"
            key = str(ctx.get("discriminator", "")).strip("'")
            lines.append(f"{prefix}{key}: unknown value {ctx.get('tag')!r}; {suggestion}")
        elif item["type"] == "literal_error" and re.findall(r"'([^']*)'", str(ctx.get("expected", ""))):
            choices = re.findall(r"'([^']*)'", str(ctx["expected"]))
            hint = nearest(item.get("input"), choices)
            suggestion = f"did you mean {hint}?" if hint else f"choose one of {', '.join(choices)}"
            lines.append(f"{path}: unknown value {item.get('input')!r}; {suggestion}")
        elif item["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            got = item.get("input")
            shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
            lines.append(f"{path or '(top level)'}: {item['msg']}{shown}")
    return lines


def check_overrides(value: dict[str, Any], config_class, from_input: dict[str, str] | None = None) -> dict[str, Any]:
    """Reject override keys transformers would silently ignore (misspelt), and the ones the input decides."""
    from_input = from_input or {}
    taken = [key for key in value if key in from_input]
    if taken:
        raise ValueError(f"{', '.join(taken)}: set by the input's {', '.join(from_input[k] for k in taken)}, not here")
    defaults = config_class()
    unknown = [key for key in value if not hasattr(defaults, key)]
    if unknown:
        hint = nearest(unknown[0], [k for k in vars(defaults) if not k.startswith("_")])
        suggestion = f"; did you mean {hint}?" if hint else ""
        raise ValueError(f"{', '.join(unknown)}: not a key of {config_class.__name__}{suggestion}")
    return value


def check_transformers_overrides(value: dict[str, Any], config_name: str, from_input: dict[str, str] | None = None):
    """`check_overrides` against transformers' config class `config_name` (e.g. `ViTConfig`); transformers is imported
    only when there are overrides to check, so validating a config never loads it otherwise."""
    if not value:
        return value
    import transformers

    return check_overrides(value, getattr(transformers, config_name), from_input)

