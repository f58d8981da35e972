"""What a request to a served model holds: one field per table column the run's inputs read, named as the column
(or, when unambiguous, as the input or the column in another case), and what each field's value must be.

A row arrives as JSON values or as multipart form parts; media fields (image, video, audio) carry bytes, which are
written into the request's own temporary folder so the run's preprocessing reads them as it reads files in a table.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from plait.data.features.base import FileFeature
from plait.runs import Run
from plait.schema import nearest

HOLDS = {
    "image": "an image file: a multipart file part, or in JSON base64 / a data: URL",
    "video": "a video file: a multipart file part, or in JSON base64 / a data: URL",
    "audio": "an audio (or video) file: a multipart file part, or in JSON base64 / a data: URL",
    "text": "a string",
    "numeric": "a number",
    "category": "a string (one of the training values; others fall in the unknown bucket)",
    "sequence": "a list of numbers, or of lists of numbers (one per channel) per step",
    "vector": "a list of numbers",
}
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,", re.IGNORECASE)


class RequestError(Exception):
    """A request the server cannot answer, with the HTTP status to give it and the field at fault (if one is)."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def to_json(self) -> dict:
        return {"error": self.message, "field": self.field}


@dataclass
class Field:
    column: str  # the table column the run's preprocessing reads
    inputs: list[tuple[str, str]]  # (input name, feature type) of each input reading it
    media: bool  # a file: bytes in the request

    def describe(self) -> dict:
        kinds = {kind for _, kind in self.inputs}
        holds = HOLDS.get(next(iter(kinds)), "a value") if len(kinds) == 1 else HOLDS["video"]
        return {"field": self.column, "inputs": [{"name": name, "type": kind} for name, kind in self.inputs],
                "media": self.media, "holds": holds}


class Fields:
    """The run's request fields and the other names each is accepted under."""

    def __init__(self, run: Run):
        self.by_column: dict[str, Field] = {}
        for name, feature in run.features.items():
            field = self.by_column.setdefault(feature.spec.column, Field(feature.spec.column, [], False))
            field.inputs.append((name, feature.spec.type))
            field.media = field.media or isinstance(feature, FileFeature)
        aliases: dict[str, set[str]] = {}
        for field in self.by_column.values():
            for alias in {field.column.lower(), *(name for name, _ in field.inputs)}:
                aliases.setdefault(alias, set()).add(field.column)
        self.aliases = {alias: columns.pop() for alias, columns in aliases.items() if len(columns) == 1}

    def column_of(self, key: str) -> str:
        """The column a request's key names; an unknown key is a 422 naming the nearest field."""
        column = key if key in self.by_column else self.aliases.get(key, self.aliases.get(key.lower()))
        if column is None:
            hint = nearest(key, list(self.by_column))
            suggestion = f"; did you mean {hint}?" if hint else ""
            raise RequestError(422, f"unknown field {key!r}{suggestion} (fields: {', '.join(self.by_column)})", key)
        return column

    def row(self, values: dict, folder: Path, index: int, media_value) -> dict:
        """A request row's values by column; every field must be given (null: a missing value). `media_value(field,
        value, target)` turns a media field's value into a file path under `folder`."""
        row = {}
        for key, value in values.items():
            column = self.column_of(key)
            if column in row:
                raise RequestError(422, f"field {column!r} given twice (as {key!r})", key)
            field = self.by_column[column]
            row[column] = media_value(field, value, folder / f"{index}-{len(row)}") if field.media and value is not None else value
        absent = [column for column in self.by_column if column not in row]
        if absent:
            raise RequestError(422, f"missing field {absent[0]!r} (give null for a missing value)", absent[0])
        return row


def decoded_base64(text: str, field: str) -> tuple[bytes, str]:
    """The bytes of base64 text or a `data:` URL, and a file suffix from the URL's media type ('' when none)."""
    suffix = ""
    match = DATA_URL.match(text)
    if match:
        suffix = mimetypes.guess_extension(match.group("type") or "") or ""
        text = text[match.end():]
    try:
        return base64.b64decode(text, validate=True), suffix
    except (binascii.Error, ValueError):
        raise RequestError(422, f"field {field!r}: not base64 (send the file's bytes as base64 or a data: URL)", field) from None


def safe_suffix(name: str | None) -> str:
    """An upload's file suffix (`.mp4`), which some decoders use to pick a format; anything odd is dropped."""
    suffix = Path(name or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
