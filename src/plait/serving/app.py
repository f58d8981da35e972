"""`plait serve`: a trained run behind an HTTP API (FastAPI on uvicorn).

The model loads in the background once the server is up (`GET /health` says `loading`, then `ready`); each
`POST /v1/predict` is parsed and decoded on worker threads, micro-batched with concurrent requests, and run on the
model's own thread, so the event loop only moves bytes. Every problem with a request is a 4xx JSON answer
`{"error": ..., "field": ...}`; a 500 is a bug. Uploads live in a temporary folder removed when the request ends.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import signal
import tempfile
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from plait.errors import PlaitError
from plait.inference.predict import predict_encoded_rows
from plait.runs import Run
from plait.serving.batching import MicroBatcher
from plait.serving.describe import describe
from plait.serving.fields import Fields, RequestError
from plait.serving.limits import BodyLimit
from plait.serving.metrics import CountRequests, ServerMetrics
from plait.serving.neighbours import Neighbours
from plait.serving.page import page_html
from plait.serving.requests import MediaPolicy, encode_request, rows_json, table_from_form, table_from_json

log = logging.getLogger("plait.serve")
PREDICT_BODY = {  # the two request forms of POST /v1/predict, for the OpenAPI page
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["rows"], "properties": {"rows": {
            "type": "array", "items": {"type": "object", "additionalProperties": True},
            "description": "One object per row: FIELD → value (media: base64 or a data: URL); null for a missing value. "
                           "GET /v1/model lists the fields."}}}},
        "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True,
                                           "description": "One row: a file part per media field, a plain part per other field."}},
    }},
}


@dataclass
class ServeSettings:
    source: str  # a run folder or an export folder
    checkpoint: str = "best"
    max_batch: int = 32
    max_wait_ms: float = 5.0
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_upload_mb: float = 100.0
    timeout_s: float = 60.0
    allow_urls: list[str] = field(default_factory=list)
    runtime: str = "torch"  # or "onnx": an export folder's model.onnx on onnxruntime


class Served:
    """The loaded run and what answering needs: its request fields and its description."""

    def __init__(self, settings: ServeSettings):
        self.run = Run.load(settings.source, settings.checkpoint)
        self.fields = Fields(self.run)
        self.neighbours = Neighbours.of_run(Path(settings.source))
        self.description = describe(self.run, self.fields, self.neighbours.describe() if self.neighbours else None)
        self.description["runtime"] = settings.runtime
        self.onnx = None
        if settings.runtime == "onnx":
            from plait.inference.onnx import OnnxPredictor

            if not (Path(settings.source) / "model.onnx").is_file():
                raise PlaitError(f"{settings.source} has no model.onnx: export the run with `plait export RUN --format onnx`")
            self.onnx = OnnxPredictor(settings.source, self.run.features)

    def predict_rows(self, encoded, options: dict):
        """What `plait predict` writes for these rows (runs on the model's thread)."""
        batch_size = self.run.config.train.evaluation_batch_size
        onnx = (lambda split: self.onnx.predict(split, batch_size)) if self.onnx else None
        return predict_encoded_rows(self.run, encoded, predict=onnx, **options)


def stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def create_app(settings: ServeSettings, on_load_failure=stop_this_process, load_first: bool = False) -> FastAPI:
    """The app; `on_load_failure()` is called when the model cannot load (by default the process stops: a server
    that can answer nothing should not look alive). The model loads in the background while `/health` answers
    503 `loading`; with `load_first` the app takes no request until it has loaded, which is what worker processes
    sharing one socket need (`--workers N`): a worker still loading then accepts no connection, rather than
    answering 503 beside workers that are ready."""
    metrics = ServerMetrics()
    state: dict = {"status": "loading", "served": None, "error": None, "batcher": None}

    async def load() -> None:
        try:
            served = await asyncio.to_thread(Served, settings)
        except Exception as error:  # noqa: BLE001 - any failure to load ends the server, saying why
            state.update(status="failed", error=str(error))
            log.error("cannot load %s: %s", settings.source, error)
            on_load_failure()
            return
        batcher = MicroBatcher(served.predict_rows, settings.max_batch, settings.max_wait_ms / 1000,
                               on_batch=metrics.batch_rows.observe)
        batcher.start()
        state.update(status="ready", served=served, batcher=batcher)
        log.info("ready: %s", settings.source)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.create_task(load())
        if load_first:
            await loading
        yield
        loading.cancel()
        if state["batcher"] is not None:
            await state["batcher"].stop()

    app = FastAPI(title="plait", summary=f"Predictions of the plait model in {settings.source}", lifespan=lifespan)
    app.state.serve = state
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_upload_mb * 2**20))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    app.add_middleware(CountRequests, metrics=metrics)  # added last: the outermost, so it counts the 413s too
    add_error_handlers(app)

    def ready():
        if state["status"] != "ready":
            raise RequestError(503, f"the model is {state['status']}" + (f": {state['error']}" if state["error"] else ""))
        return state["served"]

    def authorised(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.token}".encode()):
            raise RequestError(401, "missing or wrong token: send the header `Authorization: Bearer TOKEN`")

    @app.get("/health", summary="Whether the model is loaded and answering")
    async def health():
        code = 200 if state["status"] == "ready" else 503
        return JSONResponse({"status": state["status"], "error": state["error"]}, status_code=code)

    @app.get("/v1/model", summary="The fields a request holds and the outputs an answer holds",
             dependencies=[Depends(authorised)])
    async def model():
        return ready().description

    @app.post("/v1/predict", summary="Predictions for one or more rows", openapi_extra=PREDICT_BODY,
              dependencies=[Depends(authorised)])
    async def predict(request: Request,
                      beam_size: int | None = Query(None, ge=1, le=16, description="Caption outputs: beams of the search (1: greedy)."),
                      max_length: int | None = Query(None, ge=1, description="Caption outputs: most tokens to write."),
                      length_penalty: float | None = Query(None, description="Caption outputs: beam search length penalty."),
                      neighbours: int = Query(0, ge=0, le=100, description="With a `plait index` in the run folder: the "
                                              "nearest indexed rows to add to each row's answer.")):
        served = ready()
        if neighbours and served.neighbours is None:
            raise RequestError(422, f"{settings.source} has no index to search: build one with `plait index {settings.source}`",
                               "neighbours")
        options = {"beam_size": beam_size, "max_length": max_length, "length_penalty": length_penalty}
        request_id = uuid.uuid4().hex
        try:
            frame = await asyncio.wait_for(answer(served, state["batcher"], request, options), settings.timeout_s)
        except TimeoutError:
            raise RequestError(408, f"no answer within {settings.timeout_s:g} s (the server's --timeout)") from None
        if neighbours:
            frame = await asyncio.to_thread(served.neighbours.add_to, frame, neighbours)
        body = f'{{"request_id": {json.dumps(request_id)}, "rows": {rows_json(frame)}}}'
        return Response(body, media_type="application/json", headers={"X-Request-ID": request_id})

    async def answer(served: Served, batcher: MicroBatcher, request: Request, options: dict):
        media = MediaPolicy(settings.allow_urls)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        with tempfile.TemporaryDirectory(prefix="plait-request-") as folder:
            if kind == "application/json":
                try:
                    body = await request.json()
                except ValueError as error:
                    raise RequestError(400, f"not valid JSON: {error}") from None
                table = await asyncio.to_thread(table_from_json, served.fields, body, Path(folder), media)
            elif kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
                async with request.form(max_files=64, max_fields=256) as form:
                    table = await table_from_form(served.fields, form, Path(folder), media)
            else:
                raise RequestError(415, f"send application/json or multipart/form-data (or a urlencoded form without files), "
                                        f"not {kind or 'no content type'}")
            encoded = await asyncio.to_thread(encode_request, served.run, table, Path(folder))
        return await batcher.predict(encoded, {key: value for key, value in options.items() if value is not None})

    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(authorised)])
    async def prometheus():
        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return page_html(settings.token is not None)

    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error as `{"error": ..., "field": ...}` with its status; anything unforeseen is a logged 500."""

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        return JSONResponse(error.to_json(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        return JSONResponse({"error": first["msg"], "field": str(first["loc"][-1])}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": str(error.detail), "field": None}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):
        log.exception("error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); the server log has the details",
                             "field": None}, status_code=500)


def settings_from_environment() -> ServeSettings:
    """The settings `plait serve --workers N` hands each worker process (they import the app by name)."""
    return ServeSettings(**json.loads(os.environ["PLAIT_SERVE_SETTINGS"]))


def app_from_environment() -> FastAPI:
    return create_app(settings_from_environment(), load_first=True)


def settings_json(settings: ServeSettings) -> str:
    return json.dumps(asdict(settings))
