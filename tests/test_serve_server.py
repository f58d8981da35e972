"""Micro-batching, and `plait serve` as a user starts it: a process on a free loopback port, stopped by its PID, that
batches concurrent requests and serves a page a person can use in a browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest
import torch

from plait.data.dataset import EncodedSplit
from plait.runs import Run
from plait.serving.batching import MicroBatcher
from tests.browser import find_chromium, render
from tests.conftest import free_port


def rows(*values: float) -> EncodedSplit:
    count = len(values)
    cells = {"value": torch.tensor(values)[:, None], "present": torch.ones(count, dtype=torch.bool)}
    return EncodedSplit(name="request", rows=list(range(count)), inputs={"x": cells}, targets={})


def echo(encoded: EncodedSplit, options: dict) -> pd.DataFrame:
    """A stand-in model: each row's value back, with the options it ran under."""
    values = encoded.inputs["x"]["value"][:, 0].tolist()
    return pd.DataFrame({"row": range(len(values)), "x": values, "beam": [options.get("beam_size")] * len(values)})


def batches_of(requests: list[tuple[tuple, dict]], max_batch: int, max_wait_s: float = 0.05) -> tuple[list[int], list]:
    """The batch sizes MicroBatcher made of `requests` (values, options) sent at once, and each request's answer."""
    sizes: list[int] = []

    async def main():
        batcher = MicroBatcher(echo, max_batch, max_wait_s, on_batch=sizes.append)
        batcher.start()
        answers = await asyncio.gather(*(batcher.predict(rows(*values), options) for values, options in requests))
        await batcher.stop()
        return answers

    return sizes, asyncio.run(main())


def test_concurrent_requests_share_a_pass_and_each_gets_its_own_rows():
    sizes, answers = batches_of([((1.0,), {}), ((2.0, 3.0), {}), ((4.0,), {})], max_batch=32)
    assert sizes == [4]
    assert [answer["x"].tolist() for answer in answers] == [[1.0], [2.0, 3.0], [4.0]]
    assert [answer["row"].tolist() for answer in answers] == [[0], [0, 1], [0]]  # rows counted per request


def test_a_batch_never_exceeds_max_batch_except_for_one_large_request():
    sizes, answers = batches_of([((1.0, 2.0), {}), ((3.0, 4.0), {}), ((5.0,), {}), ((6.0, 7.0, 8.0), {})], max_batch=3)
    assert sizes == [3, 2, 3]  # 2 + 2 rows would be 4: the 1-row request joins the first instead; 2 + 3 would be 5
    assert [answer["x"].tolist() for answer in answers] == [[1.0, 2.0], [3.0, 4.0], [5.0], [6.0, 7.0, 8.0]]


def test_only_requests_with_the_same_generation_options_share_a_pass():
    sizes, answers = batches_of([((1.0,), {"beam_size": 1}), ((2.0,), {"beam_size": 3}), ((3.0,), {"beam_size": 1})], max_batch=8)
    assert sorted(sizes) == [1, 2]
    assert [answer["beam"].tolist() for answer in answers] == [[1], [3], [1]]


def test_a_failing_pass_fails_each_of_its_requests_and_the_next_pass_runs():
    calls = []

    def flaky(encoded, options):
        calls.append(len(encoded))
        if len(calls) == 1:
            raise RuntimeError("broken batch")
        return echo(encoded, options)

    async def main():
        batcher = MicroBatcher(flaky, 8, 0.02)
        batcher.start()
        first = await asyncio.gather(batcher.predict(rows(1.0)), batcher.predict(rows(2.0)), return_exceptions=True)
        second = await batcher.predict(rows(3.0))
        await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    assert [str(error) for error in first] == ["broken batch", "broken batch"] and second["x"].tolist() == [3.0]


class Server:
    """`plait serve RUN` in its own process on a free port, with its temporary files under `tmp`."""

    def __init__(self, run: Path, tmp: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        env = {**os.environ, "TMPDIR": str(tmp)}
        self.log = open(tmp.parent / f"serve-{self.port}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "plait", "serve", str(run), "--port", str(self.port), *options],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, Path(self.log.name).read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, Path(self.log.name).read_text()
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # by its PID, as the user's Ctrl-C or a supervisor would
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def predict_photo(url: str, photo: Path, note: str = "the afternoon felt balmy in the park.") -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", files={"photo": (photo.name, photo.read_bytes(), "image/png")},
                      data={"note": note, "reading": "1.5"}, timeout=60)


def demo_photo(run: Path, row: int = 0) -> Path:
    return Path(Run.load(run).config.data.table).parent / f"images/{row:05d}.png"


@pytest.mark.slow
def test_the_server_batches_concurrent_requests_and_stops_cleanly(demo_run, tmp_path):
    (tmp_path / "tmp").mkdir()
    with Server(demo_run, tmp_path / "tmp", "--max-wait-ms", "100") as server:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda row: predict_photo(server.url, demo_photo(demo_run, row)), range(32)))
        assert [answer.status_code for answer in answers] == [200] * 32
        assert len({answer.json()["request_id"] for answer in answers}) == 32
        metrics = httpx.get(f"{server.url}/metrics").text
        count = float(re.search(r"^plait_batch_rows_count ([\d.]+)$", metrics, re.M).group(1))
        total = float(re.search(r"^plait_batch_rows_sum ([\d.]+)$", metrics, re.M).group(1))
        assert total == 32 and count < 32  # some passes held more than one request's row
        assert server.stop() == -signal.SIGTERM  # uvicorn shut down, then ended as the signal asks
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("plait-request-")] == []


@pytest.mark.slow
def test_several_worker_processes_answer(demo_run, tmp_path):
    (tmp_path / "tmp").mkdir()
    with Server(demo_run, tmp_path / "tmp", "--workers", "2") as server:
        # a worker still loading takes no connection, so no request meets a 503 while the other is ready
        answers = [predict_photo(server.url, demo_photo(demo_run)) for _ in range(8)]
        assert [answer.status_code for answer in answers] == [200] * 8, [answer.text for answer in answers]


def serve_once(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plait", "serve", str(folder), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120)


def test_a_folder_that_is_not_a_run_or_whose_weights_cannot_load_ends_the_server_with_the_reason(demo_run, tmp_path):
    result = serve_once(tmp_path)
    assert result.returncode == 1 and "not a plait run folder (no config.yaml)" in result.stderr
    broken = tmp_path / "broken"
    shutil.copytree(demo_run, broken)
    for weights in broken.rglob("model.safetensors"):
        weights.write_bytes(b"not weights")
    result = serve_once(broken)
    assert result.returncode == 1 and f"error: cannot serve {broken}" in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (CI installs Debian's chromium)")
def test_a_person_picks_a_photo_on_the_page_and_sees_the_probabilities(demo_run, tmp_path):
    (tmp_path / "tmp").mkdir()
    photo = demo_photo(demo_run)

    def use(tab) -> None:
        tab.wait_until("document.querySelectorAll('#fields input').length === 3")
        tab.pick_files("#field-photo", [photo])
        tab.wait_until("document.querySelector('.preview img') !== null")
        tab.evaluate("document.getElementById('field-note').value = 'the afternoon felt balmy in the park.'")
        tab.evaluate("document.getElementById('field-reading').value = '1.5'")
        tab.evaluate("document.getElementById('predict').click()")
        tab.wait_until("!document.getElementById('result').hidden")

    with Server(demo_run, tmp_path / "tmp") as server:
        page = render(f"{server.url}/", tmp_path / "page.png", width=900, height=700, act=use,
                      evaluate=["document.querySelectorAll('.bar').length", "document.querySelector('.bar.top .name').textContent"])
        expected = predict_photo(server.url, photo).json()["rows"][0]["label_pred"]
    labels = Run.load(demo_run).tasks["label"].labels
    assert page.values == [len(labels), expected]  # a bar per label, the predicted one highlighted
    assert all(label in page.text for label in labels) and "%" in page.text
    assert page.console_errors == [] and page.failed_requests == []
    assert all(url.startswith((server.url, "blob:", "data:")) for url in page.requests), page.requests
    assert page.screenshot_size[1] > 300


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (CI installs Debian's chromium)")
def test_the_page_of_an_indexed_embedding_run_lists_the_nearest_rows(indexed_run, tmp_path):
    (tmp_path / "tmp").mkdir()

    def use(tab) -> None:
        tab.wait_until("document.querySelectorAll('#fields input').length === 3")
        tab.evaluate("document.getElementById('field-x').value = '0.5'")
        tab.evaluate("document.getElementById('field-colour').value = 'red'")
        tab.evaluate("document.getElementById('field-note').value = 'a bright sunny day number 3'")
        tab.evaluate("document.getElementById('predict').click()")
        tab.wait_until("!document.getElementById('result').hidden")

    with Server(indexed_run, tmp_path / "tmp") as server:
        page = render(f"{server.url}/", tmp_path / "page.png", act=use, evaluate=["document.querySelectorAll('#result table tr').length"])
    assert page.values == [1 + 5]  # a header and the five nearest rows
    assert "nearest train rows" in page.text and "numbers, length 1.000" in page.text and page.console_errors == []
