"""`GET /metrics`, in Prometheus' text format (prometheus_client): requests and errors by path and status code,
request latency, and rows per forward pass (what micro-batching achieved). Each server process counts its own."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("plait_requests", "HTTP requests answered, by route and status code", ["path", "code"],
                                registry=self.registry)
        self.latency = Histogram("plait_request_latency_seconds", "Time from a request's arrival to its answer", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("plait_batch_rows", "Rows in each forward pass of the model", buckets=BATCH_BUCKETS,
                                    registry=self.registry)

    def answered(self, path: str, code: int, seconds: float) -> None:
        self.requests.labels(path, str(code)).inc()
        self.latency.labels(path).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class CountRequests:
    """ASGI middleware: each HTTP answer counted by its route and status, and timed (a plain ASGI wrapper: starlette's
    `@app.middleware("http")` costs a task and a stream per request)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # the router records the matched route in the scope
            self.metrics.answered(getattr(route, "path", "unmatched"), status, time.perf_counter() - started)
