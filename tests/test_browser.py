"""The headless-Chromium test driver (tests/browser.py) on small pages written here; nothing goes to the network."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.browser import Browser, BrowserError, external_requests, find_chromium, process_group_members, render

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (.ci/run installs Debian's chromium)")

BLUE = (0, 0, 255)


def png_data_uri(width: int, height: int) -> str:
    """A solid red PNG of WIDTH x HEIGHT pixels as a data: URI."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (255, 0, 0)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def browser():
    """One Chromium launch shared by the rendering tests."""
    with Browser(timeout=60) as shared:
        yield shared


def test_inline_image_table_and_full_page_screenshot(browser, tmp_path):
    # 2000 px tall, so the blue block at y = 1500 lies below the 900 px viewport: only a full-page shot shows it
    html, image = tmp_path / "inline.html", png_data_uri(4, 3)
    html.write_text(f"""<!doctype html><html><head><style>body {{ margin: 0; height: 2000px; }} h1 {{ margin-top: 0; }}</style></head><body>
        <h1>Run summary</h1><h2>Metrics</h2>
        <img src="{image}">
        <table><tr><th>metric</th><th>value</th></tr><tr><td>accuracy</td><td>0.91</td></tr>
            <tr><td>loss</td><td>0.25</td></tr></table>
        <div style="position: absolute; left: 100px; top: 1500px; width: 200px; height: 100px; background: rgb{BLUE}">
        </div></body></html>""")

    page = browser.render(html, tmp_path / "inline.png", evaluate=["document.title", "1 + 1"])

    assert page.images == [{"src": image[:30], "naturalWidth": 4, "naturalHeight": 3, "complete": True}]
    assert page.tables == [3]
    assert page.headings == ["Run summary", "Metrics"]
    assert "accuracy" in page.text
    assert page.values == ["", 2]
    assert page.console_errors == []
    assert external_requests(page) == []
    assert page.requests[0] == html.resolve().as_uri()

    screenshot = Image.open(page.screenshot)
    assert screenshot.format == "PNG"
    assert screenshot.size == page.screenshot_size == (1280, 2000)
    pixels = np.asarray(screenshot.convert("RGB"))
    assert pixels.std() > 0  # not blank
    assert tuple(pixels[1550, 200]) == BLUE
    assert tuple(pixels[1550, 400]) == (255, 255, 255)


def test_viewport_screenshot_when_not_full_page(browser, tmp_path):
    html = tmp_path / "tall.html"
    html.write_text("<body style='height: 3000px; background: rgb(0, 0, 255)'></body>")

    page = browser.render(html, tmp_path / "tall.png", width=640, height=480, full_page=False)

    assert Image.open(page.screenshot).size == page.screenshot_size == (640, 480)


def test_external_requests_and_console_errors_are_recorded(browser, tmp_path):
    # 127.0.0.1:9 is refused (an unsafe port to Chromium) and .invalid never resolves: both fail without a network
    html = tmp_path / "leaky.html"
    html.write_text("""<!doctype html><html><head><link rel="stylesheet" href="https://example.invalid/a.css"></head>
        <body><img src="http://127.0.0.1:9/x.png"><img src="inline.png">
        <script>console.error("plot failed", 3); null.draw();</script></body></html>""")
    (tmp_path / "inline.png").write_bytes(base64.b64decode(png_data_uri(2, 2).split(",")[1]))

    page = browser.render(html, tmp_path / "leaky.png")

    assert sorted(external_requests(page)) == ["http://127.0.0.1:9/x.png", "https://example.invalid/a.css"]
    assert {url for url, _ in page.failed_requests} == {"http://127.0.0.1:9/x.png", "https://example.invalid/a.css"}
    assert [(image["naturalWidth"], image["complete"]) for image in page.images] == [(0, True), (2, True)]
    assert page.console_errors[0] == "plot failed 3"
    assert "TypeError" in page.console_errors[1]


def test_render_closes_the_browser_it_starts(tmp_path, monkeypatch):
    launched = []

    def remember_launch(browser):
        launched.append(browser)
        return browser

    monkeypatch.setattr(Browser, "__enter__", remember_launch)
    html = tmp_path / "page.html"
    html.write_text("<p>hello</p>")

    page = render(html, tmp_path / "page.png")

    assert page.text == "hello"
    [browser] = launched
    assert browser.process.returncode is not None
    assert process_group_members(browser.process.pid) == []


def test_a_page_that_never_loads_times_out_and_is_killed(tmp_path):
    quick, hang = tmp_path / "quick.html", tmp_path / "hang.html"
    quick.write_text("<p>started</p>")
    hang.write_text("<script>while (true) {}</script>")
    browser = Browser(timeout=60)

    with pytest.raises(BrowserError, match="Page.loadEventFired"):
        with browser:
            browser.render(quick, tmp_path / "quick.png")  # started with a generous timeout, however busy the machine
            browser.timeout = 2
            browser.render(hang, tmp_path / "hang.png")

    assert browser.process.returncode is not None
    assert process_group_members(browser.process.pid) == []


def test_a_missing_file_is_an_error_not_an_error_page(browser, tmp_path):
    with pytest.raises(BrowserError, match="ERR_FILE_NOT_FOUND"):
        browser.render(tmp_path / "missing.html", tmp_path / "missing.png")
