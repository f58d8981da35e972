"""A SageMaker endpoint for a trained model, without AWS: the model folder a training job writes holds `code/`
(inference.py, plait's wheel, requirements.txt), and its handlers are called as the SageMaker PyTorch serving
container calls them (model_fn on the model folder, input_fn with the body and content type, predict_fn, output_fn
with the Accept header); `plait sagemaker deploy --dry-run` prints the endpoint without the SDK."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import sys
import types
import zipfile
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from plait.cli import app
from plait.errors import PlaitError
from plait.inference.predict import predict_table
from plait.runs import Run
from plait.sagemaker import publish
from plait.serving import sagemaker_handler
from plait.serving.sagemaker_handler import Endpoint, EndpointError

NOTE = "the afternoon felt balmy in the park."


@pytest.fixture(scope="module")
def model_dir(demo_run, tmp_path_factory) -> Path:
    """/opt/ml/model as the serving container unpacks it: what the training job published to SM_MODEL_DIR."""
    folder = tmp_path_factory.mktemp("opt-ml") / "model"
    folder.mkdir()
    publish(demo_run, {"SM_MODEL_DIR": str(folder)})
    return folder


@pytest.fixture(scope="module")
def container(model_dir):
    """The entry point the container imports (code/inference.py) and the model its model_fn loaded."""
    spec = importlib.util.spec_from_file_location("inference", model_dir / "code" / "inference.py")
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    return inference, inference.model_fn(str(model_dir))


@pytest.fixture
def uploads(tmp_path, monkeypatch) -> Path:
    """Where requests' temporary folders go (each test checks nothing is left there)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def photo(demo_run: Path, row: int = 0) -> Path:
    return Path(Run.load(demo_run).config.data.table).parent / f"images/{row:05d}.png"


def invoke(container, body, content_type: str, accept: str | None = "application/json") -> tuple[str, str]:
    """One request through the four handlers, in the container's order."""
    inference, model = container
    return inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), accept)


def expected(demo_run: Path, photos: list, notes: list, readings: list) -> pd.DataFrame:
    table = pd.DataFrame({"photo": [str(path) if path else None for path in photos], "note": notes, "reading": readings})
    return predict_table(Run.load(demo_run), table, "rows")


def assert_same_predictions(got: list[dict], want: pd.DataFrame) -> None:
    assert len(got) == len(want)
    for row, (_, truth) in zip(got, want.iterrows()):
        assert row["label_pred"] == truth["label_pred"]
        probabilities = [column for column in want.columns if column.startswith("label_prob_")]
        assert probabilities and all(row[column] == pytest.approx(truth[column], abs=1e-6) for column in probabilities)


def test_the_model_folder_a_training_job_writes_holds_the_endpoint_code(model_dir):
    code = model_dir / "code"
    assert (model_dir / "model.safetensors").is_file()  # the export folder itself, beside code/
    shim = (code / "inference.py").read_text()
    assert "from plait.serving.sagemaker_handler import input_fn, model_fn, output_fn, predict_fn" in shim
    wheel = next(code.glob("plait-*-py3-none-any.whl"))
    assert (code / "requirements.txt").read_text() == f"/opt/ml/model/code/{wheel.name}\n"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert {"plait/serving/sagemaker_handler.py", "plait/cli/__init__.py", "plait/recipes/demo.yaml"} <= set(names)
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    assert "Name: plait" in metadata and "Requires-Dist: torch" in metadata


def test_json_rows_are_answered_as_plait_predict_and_plait_serve_answer_them(container, demo_run, uploads):
    import base64

    rows = [{"photo": base64.b64encode(photo(demo_run, 0).read_bytes()).decode(), "note": NOTE, "reading": 2.0},
            {"photo": None, "note": None, "reading": -1}]
    body = json.dumps({"rows": rows})  # the container hands application/json over as text
    answer, content_type = invoke(container, body, "application/json")
    assert content_type == "application/json"
    got = json.loads(answer)
    assert list(got) == ["rows"] and [row["row"] for row in got["rows"]] == [0, 1]
    assert_same_predictions(got["rows"], expected(demo_run, [photo(demo_run, 0), None], [NOTE, None], [2.0, -1]))
    for accept in ("*/*", None, "text/html, application/json;q=0.9"):  # any type, no header, JSON among others
        assert invoke(container, body.encode(), "application/json; charset=utf-8", accept) == (answer, "application/json")
    assert list(uploads.iterdir()) == []


def test_one_multipart_row(container, demo_run, uploads):
    form = httpx.Request("POST", "http://endpoint/invocations", data={"note": NOTE, "reading": "2.0"},
                         files={"photo": ("x.png", photo(demo_run, 1).read_bytes(), "image/png")})
    answer, _ = invoke(container, form.read(), form.headers["content-type"])
    assert_same_predictions(json.loads(answer)["rows"], expected(demo_run, [photo(demo_run, 1)], [NOTE], [2.0]))
    assert list(uploads.iterdir()) == []


def test_raw_image_bytes_are_one_row_and_csv_answers_like_plait_predict(container, demo_run, uploads):
    answer, content_type = invoke(container, photo(demo_run, 2).read_bytes(), "image/png", "text/csv")
    assert content_type == "text/csv"
    got = pd.read_csv(io.StringIO(answer))
    want = expected(demo_run, [photo(demo_run, 2)], [None], [None])  # every other field missing
    assert list(got.columns) == list(want.columns)
    assert_same_predictions(got.to_dict("records"), want)
    assert invoke(container, photo(demo_run, 2).read_bytes(), "image/*", "text/csv")[0] == answer
    assert list(uploads.iterdir()) == []


BAD_REQUESTS = [
    ("corrupt media", b"not an image at all", "image/png", 422, "photo", "the uploaded file"),
    ("corrupt media in a form", "form", None, 422, "photo", "not an image"),
    ("an unknown field", {"rows": [{"phot": None, "note": "x", "reading": 1}]}, "application/json", 422, "phot",
     "did you mean photo?"),
    ("a missing field", {"rows": [{"note": "x", "reading": 1}]}, "application/json", 422, "photo", "missing field"),
    ("not rows", [1, 2], "application/json", 400, "rows", '{"rows"'),
    ("invalid JSON", "{rows: [", "application/json", 400, None, "not valid JSON"),
    ("a multipart body without a boundary", b"x", "multipart/form-data", 400, None, "not a multipart body"),
    ("an unsupported content type", b"photo=1", "text/plain", 415, None, "multipart/form-data"),
    ("no content type", b"{}", None, 415, None, "no content type"),
]


@pytest.mark.parametrize("name, body, content_type, status, field, words", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_each_bad_request_is_an_error_with_its_status_and_nothing_is_left_on_disk(container, uploads, name, body,
                                                                                  content_type, status, field, words):
    if body == "form":
        form = httpx.Request("POST", "http://endpoint/invocations", data={"note": NOTE, "reading": "1"},
                             files={"photo": ("a.png", b"garbage", "image/png")})
        body, content_type = form.read(), form.headers["content-type"]
    elif isinstance(body, (dict, list)):
        body = json.dumps(body)
    with pytest.raises(EndpointError) as caught:
        invoke(container, body, content_type)
    error = caught.value
    assert (error.status_code, error.field) == (status, field) and words in error.message, error.message
    assert str(error) == error.message == error.phrase and str(uploads) not in error.message
    assert list(uploads.iterdir()) == []


def test_an_answer_type_other_than_json_or_csv_is_a_406(container, demo_run):
    inference, model = container
    prediction = inference.predict_fn(inference.input_fn(photo(demo_run).read_bytes(), "image/png"), model)
    with pytest.raises(EndpointError, match="application/json or text/csv") as caught:
        inference.output_fn(prediction, "application/xml")
    assert caught.value.status_code == 406


def test_raw_media_needs_a_model_with_one_media_field(container):
    inference, model = container
    fields = copy.copy(model.fields)
    fields.by_column = {column: field for column, field in model.fields.by_column.items() if not field.media}
    with pytest.raises(EndpointError, match="this model has none") as caught:
        inference.predict_fn(inference.input_fn(b"\x00", "video/mp4"), Endpoint(model.run, fields))
    assert caught.value.status_code == 415


def test_in_the_container_errors_are_the_toolkits_own_so_it_answers_with_their_status(monkeypatch):
    """The serving toolkit answers a BaseInferenceToolkitError with its status_code and phrase, anything else with a
    500: the handler module loaded again beside a stand-in for the toolkit, as the container imports it."""
    class BaseInferenceToolkitError(Exception):
        pass

    errors = types.ModuleType("sagemaker_inference.errors")
    errors.BaseInferenceToolkitError = BaseInferenceToolkitError
    monkeypatch.setitem(sys.modules, "sagemaker_inference", types.ModuleType("sagemaker_inference"))
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", errors)
    spec = importlib.util.spec_from_file_location("handler_in_the_container", sagemaker_handler.__file__)
    handler = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, handler)
    spec.loader.exec_module(handler)
    with pytest.raises(BaseInferenceToolkitError) as caught:
        handler.input_fn(b"", "text/plain")
    assert caught.value.status_code == 415 and "multipart/form-data" in caught.value.phrase


def test_deploy_dry_run_prints_the_endpoint_and_writes_its_code_without_the_sdk(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # `import sagemaker` fails, installed or not
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    model_data = "s3://bucket/jobs/demo-20250101-000000/output/model.tar.gz"
    result = CliRunner().invoke(app, ["sagemaker", "deploy", model_data, "--role", "arn:aws:iam::1:role/r",
                                      "--instance-type", "ml.m5.large", "--endpoint-name", "demo-endpoint", "--dry-run"])
    assert result.exit_code == 0, result.output
    definition = json.loads(result.stdout)
    assert definition["model"] == {"model_data": model_data, "role": "arn:aws:iam::1:role/r", "entry_point": "inference.py",
                                   "framework_version": "2.5", "py_version": "py311"}
    assert definition["deploy"] == {"initial_instance_count": 1, "instance_type": "ml.m5.large", "endpoint_name": "demo-endpoint"}
    source = Path(definition["source_dir"])
    assert source.parent == tmp_path  # kept after a dry run, for a look
    wheel = next(source.glob("plait-*.whl"))
    assert sorted(definition["source_files"]) == sorted(["inference.py", "requirements.txt", wheel.name])
    assert (source / "requirements.txt").read_text() == f"/opt/ml/model/code/{wheel.name}\n"
    assert "plait.serving.sagemaker_handler" in (source / "inference.py").read_text()

    default = CliRunner().invoke(app, ["sagemaker", "deploy", model_data, "--role", "r", "--instance-type", "ml.m5.large",
                                       "--dry-run"])
    assert json.loads(default.stdout)["endpoint_name"].startswith("plait-")


def test_deploy_refuses_what_cannot_be_deployed_and_says_how_to_get_the_sdk(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for arguments, words in [(["runs/demo"], "s3:// address of a model.tar.gz"),
                             (["s3://b/m.tar.gz", "--endpoint-name", "no_underscores"], "--endpoint-name"),
                             (["s3://b/m.tar.gz"], "pip install sagemaker")]:
        result = CliRunner().invoke(app, ["sagemaker", "deploy", *arguments, "--role", "r", "--instance-type", "ml.m5.large",
                                          *(["--dry-run"] if "pip" not in words else [])])
        assert isinstance(result.exception, PlaitError) and words in str(result.exception), result.output
