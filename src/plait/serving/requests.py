"""A prediction request → the run's encoded rows: JSON `{"rows": [...]}` or one multipart row, media written into
the request's temporary folder, every cell encoded by the run's own preprocessing. Anything wrong is a
RequestError naming the field; nothing here runs the model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from plait.data.dataset import EncodedSplit
from plait.data.remote import RemoteError, read_bytes
from plait.errors import PlaitError
from plait.runs import Run
from plait.serving.fields import Field, Fields, RequestError, decoded_base64, safe_suffix


@dataclass
class MediaPolicy:
    """Which URLs a media field may name (none by default: the server reads nothing the client did not send)."""

    allow_urls: list[str] = field(default_factory=list)

    def write(self, field: Field, value, target: Path) -> str:
        """A media field's JSON value (base64, a data: URL, or an allowed URL) as a file under `target`; its path."""
        if not isinstance(value, str):
            raise RequestError(422, f"field {field.column!r}: expected {field.describe()['holds']}, got {type(value).__name__}", field.column)
        if "://" in value[:16] and not value.startswith("data:"):
            return self.fetch(field, value, target)
        data, suffix = decoded_base64(value, field.column)
        path = target.with_suffix(suffix)
        path.write_bytes(data)
        return str(path)

    def fetch(self, field: Field, url: str, target: Path) -> str:
        if not any(url.startswith(prefix) for prefix in self.allow_urls):
            allowed = f"only URLs under {', '.join(self.allow_urls)}" if self.allow_urls else "no URLs (start it with --allow-url PREFIX)"
            raise RequestError(422, f"field {field.column!r}: this server reads {allowed}; send the file's bytes instead", field.column)
        try:
            data = read_bytes(url)
        except (RemoteError, PlaitError, OSError) as error:
            raise RequestError(422, f"field {field.column!r}: cannot read {url}: {error}", field.column) from None
        path = target.with_suffix(safe_suffix(url.split("?")[0]))
        path.write_bytes(data)
        return str(path)


def json_rows(body) -> list[dict]:
    if not isinstance(body, dict) or "rows" not in body:
        raise RequestError(400, 'expected a JSON object {"rows": [{FIELD: VALUE, ...}, ...]}', "rows")
    rows = body["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise RequestError(400, '"rows" must be a non-empty list of objects, one per row', "rows")
    unknown = [key for key in body if key != "rows"]
    if unknown:
        raise RequestError(400, f"unknown key {unknown[0]!r} beside \"rows\" (generation options go in the query string)", unknown[0])
    return rows


def table_from_json(fields: Fields, body, folder: Path, media: MediaPolicy) -> pd.DataFrame:
    rows = json_rows(body)
    return pd.DataFrame([fields.row(row, folder, index, media.write) for index, row in enumerate(rows)],
                        columns=list(fields.by_column))


async def table_from_form(fields: Fields, form, folder: Path, media: MediaPolicy) -> pd.DataFrame:
    """One row from multipart form parts: a file part per media field, plain parts for the rest (empty: missing)."""
    values, uploaded = {}, set()
    for key, value in form.multi_items():
        column = fields.column_of(key)
        field = fields.by_column[column]
        if hasattr(value, "read"):  # an uploaded file
            if not field.media:
                raise RequestError(422, f"field {key!r} holds {field.describe()['holds']}, not a file", key)
            path = folder / f"0-{len(values)}{safe_suffix(value.filename)}"
            path.write_bytes(await value.read())
            values[key] = str(path)
            uploaded.add(str(path))
        else:
            values[key] = None if value == "" else value

    def media_value(field: Field, value, target: Path) -> str:
        return value if value in uploaded else media.write(field, value, target)  # a plain part: base64 or a URL

    return pd.DataFrame([fields.row(values, folder, 0, media_value)], columns=list(fields.by_column))


def rows_json(frame: pd.DataFrame) -> str:
    """An answer's rows as a JSON list (numbers, lists and NaN as JSON has them: NaN is null)."""
    return frame.to_json(orient="records", double_precision=15)


def encode_request(run: Run, table: pd.DataFrame, folder: Path) -> EncodedSplit:
    """The rows encoded by the run's preprocessing; a cell it cannot read (corrupt media, a number that is not one)
    is a 422 naming the field and why (an upload as `the uploaded file`, not by the server's temporary path)."""
    encoded = run.preprocessor.encode(table, "request", "request", on_bad_sample="skip", with_targets=False)
    if encoded.skipped:
        bad = encoded.skipped[0]
        where = f"row {bad.row}: " if len(table) > 1 else ""
        reason = re.sub(re.escape(str(folder)) + r"[^\s'\"]*", "the uploaded file", bad.reason)
        raise RequestError(422, f"{where}field {bad.column!r}: {reason}", bad.column)
    return encoded
