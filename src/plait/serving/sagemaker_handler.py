"""A plait model folder as a SageMaker endpoint: the four functions the SageMaker PyTorch serving container calls
(`code/inference.py` in the model folder imports them from here).

- `model_fn(model_dir)`: the run (a run or export folder) and its request fields, loaded once per worker;
- `input_fn(body, content_type)`: the request read by its content type: JSON `{"rows": [...]}` and one multipart
  row, as `plait serve` takes them, or (for a run with one media field) the file itself as `image/*`, `video/*` or
  `audio/*`: one row holding it, every other field missing;
- `predict_fn(request, model)`: the rows decoded by the run's preprocessing (media in a temporary folder removed
  once encoded) and predicted: what `plait predict` writes;
- `output_fn(prediction, accept)`: `application/json` (`{"rows": [...]}`, as `plait serve` answers; also for `*/*`
  or no Accept header) or `text/csv`.

A request the model cannot answer raises EndpointError: inside the container it is the toolkit's own error class,
so the endpoint answers with its status (400, 406, 415, 422) and message instead of a 500.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser

from plait.inference.output import spread_vectors
from plait.inference.predict import predict_encoded_rows
from plait.runs import Run
from plait.serving.fields import Fields, RequestError
from plait.serving.requests import MediaPolicy, encode_request, rows_json, table_from_form, table_from_json

try:  # the serving container's toolkit answers its own errors with their status; anything else is a 500
    from sagemaker_inference.errors import BaseInferenceToolkitError as ContainerError
except ImportError:
    ContainerError = Exception

JSON, CSV, MULTIPART = "application/json", "text/csv", "multipart/form-data"
MEDIA = ("image/", "video/", "audio/")
ANSWERS = {JSON: JSON, "application/*": JSON, "*/*": JSON, CSV: CSV, "text/*": CSV}


class EndpointError(ContainerError):
    """A request the endpoint cannot answer: `status_code` and `message` are what the container sends back."""

    def __init__(self, status: int, message: str, field: str | None = None):
        Exception.__init__(self, message)
        self.status_code, self.message, self.phrase, self.field = status, message, message, field

    @classmethod
    def of(cls, error: RequestError) -> EndpointError:
        return cls(error.status, error.message, error.field)


@dataclass
class Endpoint:
    run: Run
    fields: Fields


@dataclass
class Request:
    kind: str  # json | multipart | media
    content_type: str  # as sent: a multipart body's boundary is in it
    body: object  # json: the decoded body; multipart and media: the bytes


def model_fn(model_dir: str) -> Endpoint:
    run = Run.load(model_dir)
    return Endpoint(run, Fields(run))


def input_fn(request_body, request_content_type: str | None) -> Request:
    """The body by its content type (the container hands JSON over as text, everything else as bytes)."""
    content_type = request_content_type or ""
    kind = content_type.split(";")[0].strip().lower()
    body = request_body.encode() if isinstance(request_body, str) else request_body
    if kind == JSON:
        if isinstance(body, (dict, list)):  # a model server that decodes JSON itself
            return Request("json", content_type, body)
        try:
            return Request("json", content_type, json.loads(body))
        except ValueError as error:
            raise EndpointError(400, f"not valid JSON: {error}") from None
    if kind == MULTIPART:
        return Request("multipart", content_type, bytes(body))
    if kind.startswith(MEDIA):
        return Request("media", kind, bytes(body))
    raise EndpointError(415, f"send {JSON}, {MULTIPART}, or the file itself as image/*, video/* or audio/* (for a "
                             f"model with one media field), not {kind or 'no content type'}")


def predict_fn(request: Request, model: Endpoint) -> pd.DataFrame:
    with tempfile.TemporaryDirectory(prefix="plait-request-") as folder:
        try:
            encoded = encode_request(model.run, request_table(model.fields, request, Path(folder)), Path(folder))
        except RequestError as error:
            raise EndpointError.of(error) from None
    return predict_encoded_rows(model.run, encoded)


def output_fn(prediction: pd.DataFrame, accept: str | None) -> tuple[str, str]:
    """The answer and its content type (the container sends that type when given a pair)."""
    kind = answer_type(accept)
    if kind == CSV:
        return spread_vectors(prediction).to_csv(index=False), CSV
    return f'{{"rows": {rows_json(prediction)}}}', JSON


def answer_type(accept: str | None) -> str:
    """The first type of the Accept header that an answer can have."""
    for item in (accept or "*/*").split(","):
        kind = ANSWERS.get(item.split(";")[0].strip().lower())
        if kind:
            return kind
    raise EndpointError(406, f"answers are {JSON} or {CSV}, not {accept}")


def request_table(fields: Fields, request: Request, folder: Path) -> pd.DataFrame:
    if request.kind == "json":
        return table_from_json(fields, request.body, folder, MediaPolicy())
    if request.kind == "multipart":
        return asyncio.run(table_from_multipart(fields, request, folder))
    return media_table(fields, request, folder)


async def table_from_multipart(fields: Fields, request: Request, folder: Path) -> pd.DataFrame:
    """One row from a multipart body, read as `plait serve` reads an uploaded form."""
    async def chunks():
        yield request.body

    parser = MultiPartParser(Headers({"content-type": request.content_type}), chunks(), max_files=64, max_fields=256)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise RequestError(400, f"not a multipart body: {error.message}") from None
    try:
        return await table_from_form(fields, form, folder, MediaPolicy())
    finally:
        await form.close()


def media_table(fields: Fields, request: Request, folder: Path) -> pd.DataFrame:
    """One row: the body is the run's one media field, every other field is missing."""
    media = [field.column for field in fields.by_column.values() if field.media]
    if len(media) != 1:
        held = f"{len(media)} ({', '.join(media)})" if media else "none"
        raise RequestError(415, f"a {request.content_type} body is one file, for a model with one media field; this "
                                f"model has {held}: send {JSON} or {MULTIPART}")
    path = folder / f"0-0{mimetypes.guess_extension(request.content_type) or ''}"
    path.write_bytes(request.body)
    values = {column: None for column in fields.by_column} | {media[0]: str(path)}
    return pd.DataFrame([values], columns=list(fields.by_column))
