"""Remote data over real HTTP: a `moto_server` on 127.0.0.1 plays S3. Tables and image cells are read from
`s3://`, each object is downloaded once per ETag, a missing object fails at once, and failures injected by a
small proxy in front of moto (503 SlowDown replies, a reply cut off mid-body) are retried until the read succeeds.
"""

from __future__ import annotations

import http.client
import io
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import s3fs
from PIL import Image

from plait import api
from plait.config import validate
from plait.data import remote
from plait.data.features.image import ImageFeature, ImageSettings
from plait.data.tables import read_table
from plait.errors import BadSample, PlaitError
from tests.conftest import free_port

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
                 "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS")
SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message><RequestId>plait-test</RequestId></Error>")
NO_INNER_RETRIES = {"config_kwargs": {"retries": {"total_max_attempts": 1}}}  # botocore: one request, no retry


def moto_executable() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    return str(beside) if beside.exists() else shutil.which("moto_server")


@pytest.fixture(scope="module")
def moto() -> str:
    """The endpoint of a moto S3 server, started for this module and stopped (by its PID) at the end."""
    executable = moto_executable()
    if executable is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]', part of plait's test extra)")
    port = free_port()
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"moto_server exited with {process.returncode}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling for readiness
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True)
def aws(moto, monkeypatch, tmp_path):
    """Test credentials, the moto endpoint, no ~/.aws, tiny back-off; plait's storage settings reset around."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(remote, "BACKOFF_BASE_S", 0.001)
    remote.configure()
    yield
    remote.configure()


@pytest.fixture
def bucket(moto):
    """A fresh bucket: (its name, a boto3 client talking to moto directly, never through a proxy)."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"plait-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name, client


class FlakyProxy:
    """An HTTP proxy in front of moto that forwards every request, and can answer GETs with 503 SlowDown (the
    first `fail_first`, or every `fail_every`-th) or send the next `cut` GET replies' bodies only half way and
    drop the connection. Counts what it saw and what it broke."""

    def __init__(self, target: str, fail_first: int = 0, fail_every: int = 0, cut: int = 0):
        self.target = urlsplit(target)
        self.fail_first, self.fail_every, self.cut = fail_first, fail_every, cut
        self.requests: list[tuple[str, str]] = []
        self.failed = self.cut_short = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def forward(self):
                proxy.forward(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str, key: str = "") -> int:
        with self.lock:
            return sum(1 for m, path in self.requests if m == method and urlsplit(path).path.endswith(key))

    def verdict(self, method: str, path: str) -> str:
        with self.lock:
            self.requests.append((method, path))
            if method != "GET":
                return "forward"
            gets = sum(1 for m, _ in self.requests if m == "GET")
            if gets <= self.fail_first or (self.fail_every and gets % self.fail_every == 0):
                self.failed += 1
                return "fail"
            if self.cut:
                self.cut -= 1
                self.cut_short += 1
                return "cut"
            return "forward"

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        verdict = self.verdict(request.command, request.path)
        if verdict == "fail":
            request.send_response(503, "Slow Down")
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(SLOWDOWN)))
            request.end_headers()
            request.wfile.write(SLOWDOWN)
            return
        connection = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("connection", "proxy-connection")}
            connection.request(request.command, request.path, body=body, headers=headers)
            reply = connection.getresponse()
            data = reply.read()
        finally:
            connection.close()
        request.send_response(reply.status, reply.reason)
        for key, value in reply.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "date", "server", "content-length"):
                request.send_header(key, value)
        head = request.command == "HEAD"
        request.send_header("Content-Length", reply.getheader("Content-Length", "0") if head else str(len(data)))
        request.end_headers()
        if head:
            return
        if verdict == "cut":
            request.wfile.write(data[: len(data) // 2])
            request.wfile.flush()
            request.connection.shutdown(socket.SHUT_RDWR)  # the client sees the body end early
            request.close_connection = True
            return
        request.wfile.write(data)


def through(proxy: FlakyProxy, monkeypatch, retries: int = 5, inner_retries: bool = False) -> None:
    """Point plait at `proxy` (through the config's endpoint, not the environment); without `inner_retries`,
    s3fs and botocore try each request once, so every recovery below is plait's own."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    if not inner_retries:
        monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    remote.configure(validate_storage(endpoint_url=proxy.url, retries=retries,
                                      options={} if inner_retries else NO_INNER_RETRIES))


def validate_storage(**storage):
    return validate(config(table="t.csv", storage=storage)).data.storage


def config(table: str, **data) -> dict:
    return {
        "name": "s3",
        "data": {"table": table, **data},
        "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 8, "encoder": {"name": "cnn"}}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 1, "batch_size": 8, "threads": 1, "seed": 0},
        "tracking": [],
    }


def png(seed: int, bright: bool) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 100, (8, 8, 3), dtype=np.uint8) + (150 if bright else 0)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- tables ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_read_table_from_s3(bucket, suffix):
    name, client = bucket
    frame = pd.DataFrame({"id": ["007", "8"], "text": ["a, b", "c"]})
    buffer = io.BytesIO()
    {"csv": lambda: frame.to_csv(buffer, index=False), "jsonl": lambda: frame.to_json(buffer, orient="records", lines=True),
     "parquet": lambda: frame.to_parquet(buffer, index=False)}[suffix]()
    client.put_object(Bucket=name, Key=f"data/table.{suffix}", Body=buffer.getvalue())
    table = read_table(f"s3://{name}/data/table.{suffix}")
    assert table.astype(str).to_dict("list") == {"id": ["007", "8"], "text": ["a, b", "c"]}


def test_missing_objects_fail_at_once_with_the_url(bucket, moto, monkeypatch):
    name, _ = bucket
    monkeypatch.setattr(remote, "BACKOFF_BASE_S", 30.0)  # a retry would make this test time out
    with FlakyProxy(moto) as proxy:
        through(proxy, monkeypatch)
        started = time.monotonic()
        with pytest.raises(PlaitError, match=rf"s3://{name}/nothing.csv: no such file"):
            read_table(f"s3://{name}/nothing.csv")
        with pytest.raises(PlaitError, match=r"s3://plait-no-such-bucket/t.csv: no such bucket"):
            read_table("s3://plait-no-such-bucket/t.csv")
        with pytest.raises(BadSample, match=rf"cannot read image 's3://{name}/gone.png': no such file"):
            ImageFeature(ImageSettings(name="photo", column="photo"), f"s3://{name}").encode("gone.png")
        assert time.monotonic() - started < 10
        assert proxy.count("GET", "nothing.csv") == 0 and proxy.count("HEAD", "nothing.csv") == 1


# --- the download cache ----------------------------------------------------------------------------------------

def test_open_cached_downloads_once_and_again_after_a_change(bucket, moto, monkeypatch):
    name, client = bucket
    url = f"s3://{name}/images/a.png"
    client.put_object(Bucket=name, Key="images/a.png", Body=b"first version")
    with FlakyProxy(moto) as proxy:
        through(proxy, monkeypatch)
        first = remote.open_cached(url)
        assert Path(first).read_bytes() == b"first version" and first.endswith(".png")
        assert Path(first).parent == remote.downloads_folder()
        assert remote.open_cached(url) == first
        assert proxy.count("GET", "a.png") == 1 and proxy.count("HEAD", "a.png") == 2
        fingerprint = remote.fingerprint(url)
        assert proxy.count("GET", "a.png") == 1  # a fingerprint is a HEAD, never a download

        client.put_object(Bucket=name, Key="images/a.png", Body=b"second version, longer")
        second = remote.open_cached(url)
        assert second != first and Path(second).read_bytes() == b"second version, longer"
        assert proxy.count("GET", "a.png") == 2
        assert remote.fingerprint(url) != fingerprint
    assert not list(remote.downloads_folder().glob(".*.tmp"))  # nothing half-written left behind


def test_local_paths_come_back_as_they_are(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n")
    assert remote.open_cached(str(path)) == str(path)
    assert remote.open_cached(f"file://{path}") == str(path)
    assert remote.read_bytes(str(path)) == b"x\n1\n"
    assert not remote.downloads_folder().exists()


# --- injected failures -----------------------------------------------------------------------------------------

def test_throttled_reads_are_retried_until_they_succeed(bucket, moto, monkeypatch):
    name, client = bucket
    client.put_object(Bucket=name, Key="t.csv", Body=b"x,label\n1,a\n2,b\n")
    client.put_object(Bucket=name, Key="blob.bin", Body=bytes(range(256)) * 64)
    with FlakyProxy(moto, fail_first=3) as proxy:
        through(proxy, monkeypatch)
        assert read_table(f"s3://{name}/t.csv")["x"].tolist() == ["1", "2"]
        assert proxy.failed == 3 and proxy.count("GET", "t.csv") == 4
        proxy.requests.clear()
        proxy.fail_first, proxy.fail_every = 0, 2  # every other GET from now on
        for _ in range(3):
            assert remote.read_bytes(f"s3://{name}/blob.bin") == bytes(range(256)) * 64
        assert proxy.failed == 5 and proxy.count("GET", "blob.bin") == 5


def test_a_reply_cut_off_mid_body_is_read_again(bucket, moto, monkeypatch):
    name, client = bucket
    payload = np.random.default_rng(0).bytes(300_000)
    client.put_object(Bucket=name, Key="big.bin", Body=payload)
    client.put_object(Bucket=name, Key="small.bin", Body=payload[:1000])
    with FlakyProxy(moto, cut=1) as proxy:
        through(proxy, monkeypatch)
        assert Path(remote.open_cached(f"s3://{name}/big.bin")).read_bytes() == payload
        assert proxy.cut_short == 1 and proxy.count("GET", "big.bin") == 2
        proxy.cut = 1
        assert remote.read_bytes(f"s3://{name}/small.bin") == payload[:1000]
        assert proxy.cut_short == 2


def test_s3fs_and_botocore_retries_still_work_beneath(bucket, moto, monkeypatch):
    name, client = bucket
    client.put_object(Bucket=name, Key="t.csv", Body=b"x\n1\n")
    with FlakyProxy(moto, fail_first=1) as proxy:
        through(proxy, monkeypatch, retries=1, inner_retries=True)  # plait alone would give up at the first 503
        assert read_table(f"s3://{name}/t.csv")["x"].tolist() == ["1"]
        assert proxy.failed == 1


def test_persistent_failures_give_up_with_the_url_and_the_reason(bucket, moto, monkeypatch):
    name, client = bucket
    client.put_object(Bucket=name, Key="t.csv", Body=b"x\n1\n")
    with FlakyProxy(moto, fail_every=1) as proxy:
        through(proxy, monkeypatch, retries=3)
        with pytest.raises(PlaitError, match=rf"s3://{name}/t.csv: gave up after 3 attempts: .*SlowDown"):
            read_table(f"s3://{name}/t.csv")
        assert proxy.failed == 3


def test_an_unreachable_endpoint_is_retried_then_named(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    remote.configure(validate_storage(endpoint_url=f"http://127.0.0.1:{free_port()}", retries=2, options=NO_INNER_RETRIES))
    with pytest.raises(PlaitError, match=r"s3://plait-any/t.csv: gave up after 2 attempts: Could not connect"):
        remote.open_cached("s3://plait-any/t.csv")


def test_credentials_from_a_profile_and_none_at_all(bucket, monkeypatch, tmp_path):
    name, client = bucket
    client.put_object(Bucket=name, Key="t.csv", Body=b"x\n1\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "credentials").write_text("[plait]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    remote.configure(validate_storage(profile="plait"))
    assert read_table(f"s3://{name}/t.csv")["x"].tolist() == ["1"]
    remote.configure()
    monkeypatch.setattr(remote, "BACKOFF_BASE_S", 30.0)  # a retry would make this test time out
    with pytest.raises(PlaitError, match=rf"s3://{name}/u.csv: .*credentials"):
        read_table(f"s3://{name}/u.csv")


def test_which_errors_are_worth_retrying():
    import aiohttp
    import botocore.exceptions as boto

    def client_error(code, status):
        return boto.ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    for transient in [client_error("SlowDown", 503), client_error("InternalError", 500), client_error("502", 502),
                      boto.EndpointConnectionError(endpoint_url="http://x"), boto.ReadTimeoutError(endpoint_url="http://x"),
                      aiohttp.ClientPayloadError("cut"), ConnectionResetError(), TimeoutError(), OSError(16, "busy")]:
        assert remote.permanent_reason(transient) is None, transient
    wrapped = OSError(16, "Please reduce your request rate.")
    wrapped.__cause__ = client_error("NoSuchKey", 404)
    assert remote.permanent_reason(wrapped) == "no such file"
    assert remote.permanent_reason(client_error("NoSuchBucket", 404)) == "no such bucket"
    assert remote.permanent_reason(PermissionError("Forbidden")).startswith("access denied")
    assert remote.permanent_reason(client_error("InvalidRange", 416)) is not None
    assert remote.permanent_reason(ValueError("bad URL")) == "bad URL"


# --- a whole run -----------------------------------------------------------------------------------------------

def test_a_run_trains_on_images_in_s3_and_a_second_pass_downloads_nothing(bucket, moto, monkeypatch, tmp_path):
    name, client = bucket
    rows = []
    for i in range(24):
        client.put_object(Bucket=name, Key=f"set/images/{i}.png", Body=png(i, bright=i % 2 == 0))
        rows.append({"photo": f"images/{i}.png", "label": "bright" if i % 2 == 0 else "dark",
                     "split": "train" if i < 16 else ("validation" if i < 20 else "test")})
    rows.append({"photo": "images/missing.png", "label": "dark", "split": "train"})
    client.put_object(Bucket=name, Key="set/table.csv", Body=pd.DataFrame(rows).to_csv(index=False).encode())
    with FlakyProxy(moto, fail_every=7) as proxy:
        monkeypatch.delenv("AWS_ENDPOINT_URL")  # the config alone says where the data is
        settings = config(f"s3://{name}/set/table.csv", on_bad_sample="skip",
                          storage={"endpoint_url": proxy.url, "options": NO_INNER_RETRIES})
        monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
        run = api.train(validate(settings), run_dir=tmp_path / "run")
        assert (run / "checkpoints" / "last" / "model.safetensors").is_file()
        assert "no such file" in (run / "skipped.jsonl").read_text()
        assert proxy.failed > 0 and proxy.count("GET", ".png") >= 24
        downloads = proxy.count("GET", ".png")
        api.build_cache(validate(settings))  # every image is in the preprocessing cache: HEADs, no GETs
        assert proxy.count("GET", ".png") == downloads
