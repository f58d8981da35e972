"""`plait serve`'s HTTP API, in process (starlette's TestClient runs the app, its lifespan included): every endpoint,
JSON and multipart requests answered as `plait predict` answers, every bad request a 4xx naming the problem with the
server answering afterwards, the token, the upload limit, timeouts, and nothing uploaded left on disk."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from plait.config import config_hash
from plait.inference.predict import predict_encoded_rows, predict_table
from plait.runs import Run
from plait.serving.app import ServeSettings, create_app

FIELDS = {"note": "the afternoon felt balmy in the park.", "reading": 2.0}


def settled_health(client: TestClient) -> dict:
    """`/health` once the model has loaded or failed to."""
    deadline = time.monotonic() + 60
    while (health := client.get("/health").json())["status"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return health


def wait_ready(client: TestClient) -> None:
    assert settled_health(client)["status"] == "ready"


@pytest.fixture
def serve(demo_run, tmp_path, monkeypatch):
    """A started app for `demo_run` with the given settings; uploads go under tmp_path/uploads."""
    (tmp_path / "uploads").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "uploads"))
    clients = []

    def start(**settings) -> TestClient:
        client = TestClient(create_app(ServeSettings(str(demo_run), **settings)), raise_server_exceptions=False)
        clients.append(client.__enter__())
        wait_ready(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def photo_path(demo_run: Path, row: int = 0) -> Path:
    return Path(Run.load(demo_run).config.data.table).parent / f"images/{row:05d}.png"


def test_health_model_and_docs(serve, demo_run):
    client = serve()
    assert client.get("/health").json() == {"status": "ready", "error": None}
    model = client.get("/v1/model").json()
    run = Run.load(demo_run)
    assert model["config_hash"] == config_hash(run.config) and model["name"] == "demo"
    assert [(f["field"], f["inputs"][0]["type"], f["media"]) for f in model["fields"]] == [
        ("photo", "image", True), ("note", "text", False), ("reading", "numeric", False)]
    assert model["outputs"] == [{"name": "label", "type": "category", "labels": run.tasks["label"].labels}]
    schema = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(schema["requestBody"]["content"])
    assert "beam_size" in {parameter["name"] for parameter in schema["parameters"]}
    assert client.get("/docs").status_code == 200


def test_json_and_multipart_rows_are_answered_as_plait_predict_answers_them(serve, demo_run):
    client = serve()
    images = [photo_path(demo_run, row) for row in (0, 1)]
    rows = [{"photo": base64.b64encode(images[0].read_bytes()).decode(), **FIELDS},
            {"photo": "data:image/png;base64," + base64.b64encode(images[1].read_bytes()).decode(), "note": None, "reading": -1}]
    answer = client.post("/v1/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["request_id"]) == 32 and answer.headers["x-request-id"] == body["request_id"]
    run = Run.load(demo_run)
    table = pd.DataFrame({"photo": [str(p) for p in images], "note": [FIELDS["note"], None], "reading": [2.0, -1]})
    expected = predict_table(run, table, "rows")
    assert [row["row"] for row in body["rows"]] == [0, 1]
    for got, (_, want) in zip(body["rows"], expected.iterrows()):
        assert got["label_pred"] == want["label_pred"]
        for label in run.tasks["label"].labels:
            assert got[f"label_prob_{label}"] == pytest.approx(want[f"label_prob_{label}"], abs=1e-6)
    form = client.post("/v1/predict", files={"photo": ("x.png", images[0].read_bytes(), "image/png")},
                       data={"note": FIELDS["note"], "reading": "2.0"})
    assert form.status_code == 200, form.text
    assert form.json()["rows"][0]["label_prob_" + run.tasks["label"].labels[0]] == pytest.approx(
        body["rows"][0]["label_prob_" + run.tasks["label"].labels[0]], abs=1e-6)
    aliased = client.post("/v1/predict", json={"rows": [{"PHOTO": rows[0]["photo"], "Note": "x", "reading": 1}]})
    assert aliased.status_code == 200, aliased.text  # a column's name in another case is the same field


BAD_REQUESTS = [
    ("corrupt image", {"files": {"photo": ("a.png", b"not an image at all", "image/png")}, "data": {**FIELDS}}, 422, "photo", "not an image"),
    ("truncated image", "truncated", 422, "photo", "the uploaded file"),
    ("a number that is not one", {"json": {"rows": [{"photo": None, "note": "x", "reading": "abc"}]}}, 422, "reading", "not a number"),
    ("a missing field", {"json": {"rows": [{"note": "x", "reading": 1}]}}, 422, "photo", "missing field 'photo'"),
    ("an unknown field", {"json": {"rows": [{"phot": None, "note": "x", "reading": 1}]}}, 422, "phot", "did you mean photo?"),
    ("a field given twice", {"json": {"rows": [{"photo": None, "PHOTO": None, "note": "x", "reading": 1}]}}, 422, "PHOTO", "given twice"),
    ("media that is not base64", {"json": {"rows": [{"photo": "%%%", "note": "x", "reading": 1}]}}, 422, "photo", "not base64"),
    ("media given as a number", {"json": {"rows": [{"photo": 7, "note": "x", "reading": 1}]}}, 422, "photo", "got int"),
    ("a URL the server may not read", {"json": {"rows": [{"photo": "https://example.com/a.png", "note": "x", "reading": 1}]}},
     422, "photo", "--allow-url"),
    ("a text field sent as a file", {"files": {"note": ("n.txt", b"hello", "text/plain")}, "data": {"photo": "", "reading": "1"}},
     422, "note", "not a file"),
    ("no rows", {"json": {"rows": []}}, 400, "rows", "non-empty list"),
    ("not an object", {"json": [1, 2]}, 400, "rows", '{"rows"'),
    ("an unknown key beside rows", {"json": {"rows": [{}], "beam": 2}}, 400, "beam", "query string"),
    ("invalid JSON", {"content": b"{rows: [", "headers": {"content-type": "application/json"}}, 400, None, "not valid JSON"),
    ("another content type", {"content": b"photo=1", "headers": {"content-type": "text/plain"}}, 415, None, "multipart/form-data"),
    ("a bad query parameter", {"json": {"rows": [{}]}, "params": {"beam_size": 0}}, 422, "beam_size", "greater than or equal"),
    ("a body over the limit", {"content": b"x" * (2 * 2**20), "headers": {"content-type": "application/json"}}, 413, None, "MiB"),
]


@pytest.mark.parametrize("name, request_, status, field, words", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_each_bad_request_is_a_4xx_naming_the_problem_and_the_server_still_answers(serve, demo_run, tmp_path, name,
                                                                                  request_, status, field, words):
    client = serve(max_upload_mb=1)
    if request_ == "truncated":
        request_ = {"files": {"photo": ("t.png", photo_path(demo_run).read_bytes()[:120], "image/png")}, "data": FIELDS}
    answer = client.post("/v1/predict", **request_)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and words in answer.json()["error"], answer.json()
    assert str(tmp_path) not in answer.json()["error"]  # the server's own paths stay its own
    good = client.post("/v1/predict", files={"photo": ("x.png", photo_path(demo_run).read_bytes(), "image/png")}, data=FIELDS)
    assert good.status_code == 200, good.text
    assert list((tmp_path / "uploads").glob("plait-request-*")) == []  # nothing uploaded is kept after its request


def test_a_missing_value_is_null_in_json_and_an_empty_part_in_a_form(serve):
    client = serve()
    assert client.post("/v1/predict", json={"rows": [{"photo": None, "note": None, "reading": None}]}).status_code == 200
    assert client.post("/v1/predict", data={"photo": "", "note": "", "reading": ""}).status_code == 200


def test_with_a_token_only_requests_that_carry_it_are_answered(serve):
    client = serve(token="s3cret")
    assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        answer = client.get("/v1/model", headers=headers)
        assert answer.status_code == 401 and "Authorization: Bearer" in answer.json()["error"]
        assert client.post("/v1/predict", json={"rows": [{}]}, headers=headers).status_code == 401
        assert client.get("/metrics", headers=headers).status_code == 401
    assert client.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_slow_answer_is_a_408_and_a_failing_model_a_500_and_both_leave_the_server_answering(serve, monkeypatch):
    client = serve(timeout_s=0.3)
    real = predict_encoded_rows
    monkeypatch.setattr("plait.serving.app.predict_encoded_rows", lambda *args, **kw: time.sleep(1.0) or real(*args, **kw))
    row = {"rows": [{"photo": None, **FIELDS}]}
    answer = client.post("/v1/predict", json=row)
    assert answer.status_code == 408 and "0.3 s" in answer.json()["error"]
    time.sleep(1.0)  # the slow pass still holds the model's thread

    def broken(*args, **kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr("plait.serving.app.predict_encoded_rows", broken)
    answer = client.post("/v1/predict", json=row)
    assert answer.status_code == 500 and answer.json()["error"].startswith("internal error (RuntimeError)")
    monkeypatch.setattr("plait.serving.app.predict_encoded_rows", real)
    assert client.post("/v1/predict", json=row).status_code == 200


def test_a_run_that_cannot_load_is_reported_by_health(tmp_path, monkeypatch):
    monkeypatch.setattr("os.kill", lambda pid, sig: None)  # in `plait serve` this stops uvicorn
    with TestClient(create_app(ServeSettings(str(tmp_path)))) as client:
        assert settled_health(client)["status"] == "failed"
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["error"]
        assert client.get("/v1/model").status_code == 503


def test_metrics_count_requests_by_route_and_code(serve):
    client = serve()
    client.post("/v1/predict", json={"rows": [{"photo": None, **FIELDS}]})
    client.post("/v1/predict", json={"rows": []})
    text = client.get("/metrics").text
    assert 'plait_requests_total{code="200",path="/v1/predict"} 1.0' in text
    assert 'plait_requests_total{code="400",path="/v1/predict"} 1.0' in text
    assert "plait_batch_rows_count 1.0" in text and "plait_request_latency_seconds_bucket" in text


def test_the_page_is_self_contained(serve):
    page = serve().get("/").text
    assert "<script>" in page and "/v1/predict" in page and "http://" not in page and "https://" not in page
    assert "const NEEDS_TOKEN = false;" in page


def test_cors_origins_are_allowed_only_when_given(serve):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    allowed = serve(cors_origins=["https://app.example"]).options("/v1/predict", headers=preflight)
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    closed = serve().options("/v1/predict", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers


def test_jpeg_and_rgba_uploads_decode(serve, demo_run):
    from PIL import Image

    client = serve()
    image = Image.open(photo_path(demo_run)).convert("RGBA")
    for kind in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        (image if kind == "PNG" else image.convert("RGB")).save(buffer, kind)
        answer = client.post("/v1/predict", files={"photo": (f"p.{kind.lower()}", buffer.getvalue())}, data=FIELDS)
        assert answer.status_code == 200, answer.text


def test_neighbours_come_from_the_runs_index_as_plait_search_finds_them(indexed_run, tmp_path):
    from plait.inference.retrieval import search

    row = {"x": 0.5, "colour": "red", "note": "a bright sunny day number 3"}
    with TestClient(create_app(ServeSettings(str(indexed_run)))) as client:
        wait_ready(client)
        assert client.get("/v1/model").json()["index"] == {"name": "kind_train", "output": "kind", "rows": len(
            Run.load(indexed_run).encode(["train"])["train"]), "split": "train"}
        answer = client.post("/v1/predict", params={"neighbours": 4}, json={"rows": [row]})
        assert answer.status_code == 200, answer.text
        found = answer.json()["rows"][0]["neighbours"]
        assert "neighbours" not in client.post("/v1/predict", json={"rows": [row]}).json()["rows"][0]
    pd.DataFrame([row]).to_csv(tmp_path / "query.csv", index=False)
    expected = search(indexed_run, str(tmp_path / "query.csv"), k=4)
    assert [n["rank"] for n in found] == [1, 2, 3, 4] and [n["row"] for n in found] == expected["row"].tolist()
    assert [n["score"] for n in found] == pytest.approx(expected["score"].tolist(), abs=1e-5)
    assert {"label", "note"} <= set(found[0])


def test_neighbours_without_an_index_is_a_422(serve):
    answer = serve().post("/v1/predict", params={"neighbours": 3}, json={"rows": [{"photo": None, **FIELDS}]})
    assert answer.status_code == 422 and answer.json()["field"] == "neighbours" and "plait index" in answer.json()["error"]


def test_the_onnx_runtime_answers_as_pytorch_does(demo_run, tmp_path):
    from plait.inference.onnx import export_onnx

    exported = export_onnx(demo_run, tmp_path / "export-onnx")
    rows = {"rows": [{"photo": base64.b64encode(photo_path(demo_run, row).read_bytes()).decode(), **FIELDS} for row in (0, 1, 2)]}
    answers = {}
    for runtime in ("torch", "onnx"):
        with TestClient(create_app(ServeSettings(str(exported), runtime=runtime))) as client:
            wait_ready(client)
            assert client.get("/v1/model").json()["runtime"] == runtime
            answers[runtime] = client.post("/v1/predict", json=rows).json()["rows"]
    for torch_row, onnx_row in zip(answers["torch"], answers["onnx"]):
        assert torch_row["label_pred"] == onnx_row["label_pred"]
        assert [onnx_row[key] for key in torch_row if key.startswith("label_prob_")] == pytest.approx(
            [torch_row[key] for key in torch_row if key.startswith("label_prob_")], abs=1e-5)


def test_the_onnx_runtime_needs_an_onnx_export(demo_run, monkeypatch):
    monkeypatch.setattr("os.kill", lambda pid, sig: None)
    with TestClient(create_app(ServeSettings(str(demo_run), runtime="onnx"))) as client:
        assert "plait export RUN --format onnx" in settled_health(client)["error"]
