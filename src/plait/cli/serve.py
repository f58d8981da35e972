"""`plait serve`: a trained run (or export folder) behind an HTTP API and a page to try it."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from plait.cli.choices import Checkpoint, Runtime


def serve(
    source: Path = typer.Argument(..., help="A run folder or an export folder."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most rows in one forward pass of the model."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0, help="How long a request waits for others to share its pass."),
    workers: int = typer.Option(1, min=1, help="Server processes, each with its own copy of the model."),
    token: Optional[str] = typer.Option(None, help="Answer only requests with the header `Authorization: Bearer TOKEN` "
                                                   "(/health and the page itself stay open). Default: $PLAIT_SERVE_TOKEN."),
    cors_origin: List[str] = typer.Option([], "--cors-origin", help="A web origin whose pages may call the API (repeatable)."),
    max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", min=0.001, help="Largest request body, in MiB."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds a request may take before it is answered 408."),
    allow_url: List[str] = typer.Option([], "--allow-url", help="A URL prefix media fields may name instead of sending "
                                                                "the bytes, e.g. s3://bucket/uploads/ (repeatable; none by default)."),
    checkpoint: Checkpoint = typer.Option(Checkpoint.best, help="Which weights of a run folder: best or last."),
    runtime: Runtime = typer.Option(Runtime.torch, help="torch, or onnx: the model.onnx of a `plait export --format onnx` "
                                                        "folder on onnxruntime (captions are still written by PyTorch)."),
):
    """Serve predictions over HTTP: POST /v1/predict (JSON or multipart), GET /v1/model, /health, /metrics, the API
    reference at /docs, and a page at / to try the model. Concurrent requests share forward passes."""
    import os

    import uvicorn

    from plait.runs import Run
    from plait.serving.app import ServeSettings, create_app, settings_json

    Run.locate(source, checkpoint.value)  # a wrong folder is an error now, not once the server is up
    settings = ServeSettings(str(source), checkpoint.value, max_batch, max_wait_ms, token or os.environ.get("PLAIT_SERVE_TOKEN"),
                             list(cors_origin), max_upload_mb, timeout, list(allow_url), runtime.value)
    typer.echo(f"serving {source} on http://{host}:{port} (try it at /, API reference at /docs)", err=True)
    if workers > 1:
        os.environ["PLAIT_SERVE_SETTINGS"] = settings_json(settings)
        uvicorn.run("plait.serving.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
        return
    server: uvicorn.Server | None = None
    app = create_app(settings, on_load_failure=lambda: setattr(server, "should_exit", True))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server.run()
    failed = app.state.serve["error"]
    if failed:
        from plait.errors import PlaitError

        raise PlaitError(f"cannot serve {source}: {failed}")
